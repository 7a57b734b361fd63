"""The application's start gate on the lab: `sitectl ticket check SITE`, run inside the
site's network as a unit's `ExecStartPre=` runs on a real host at boot.

`heal-site` brings a site's application back only through it, the way services enabled
at boot come back: a site that heals after losing a failover stays passive because it
does not hold the site ticket, not because the lab knows better. The role start
commands of the lab's topology run it too (`{{ lab_start_gate }} && …`).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from orchestrator.lab import deadman, netns
from orchestrator.lab.environment import topology_path


def argv(root: Path, site: str) -> list[str]:
    """`sitectl ticket check SITE`'s decision (orchestrator/startgate.py, without the
    CLI's start-up) on the lab's topology, with this interpreter."""
    return [
        *(sys.executable, "-m", "orchestrator.startgate", site),
        *("-c", str(topology_path(root))),
        *("--agent-state", str(deadman.memory_file(root, site))),
    ]


def refused(root: Path, site: str) -> str | None:
    """Why the site's application may not start now, in the gate's own words, or None."""
    done = subprocess.run(
        [*netns.enter(root, site), *argv(root, site)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode == 0:
        return None
    said = (done.stderr or done.stdout).strip().splitlines()
    return said[-1] if said else f"the gate exited {done.returncode}"
