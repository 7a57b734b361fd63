"""docs/operators-guide.md's commands, run as written against the lab: each ```sh block
the guide marks `<!-- lab-test -->` runs in bash (-e, -o pipefail) with SITECTL_CONFIG
naming the lab's topology (and the guide's /etc/sitectl/topology.yaml replaced by it),
from a scratch directory. A marked command that no longer works fails here with its
block and its output. The blocks are the cheap ones (validate, plan, dry runs, status,
health, history, schema); drills and evaluate have suites of their own."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import LabHandle

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "operators-guide.md"
MARK = "<!-- lab-test -->"
GUIDE_TOPOLOGY = "/etc/sitectl/topology.yaml"
BUDGET_S = 60.0  # what these blocks may cost the suite; said, not asserted (CI's load varies)


def marked_blocks(text: str) -> list[str]:
    """The body of each ```sh block right after a lab-test mark, a line of its own (blank
    lines between allowed); a mark followed by anything else is an error, not a skip."""
    blocks = []
    for match in re.finditer(rf"^{re.escape(MARK)}$", text, re.MULTILINE):
        rest = text[match.end() :].lstrip("\n")
        fenced = re.match(r"```sh\n(.*?)\n```", rest, re.DOTALL)
        if fenced is None:
            line = text.count("\n", 0, match.start()) + 1
            raise AssertionError(f"{GUIDE.name}:{line}: a lab-test mark not before a ```sh block")
        blocks.append(fenced[1])
    return blocks


def test_the_guide_marks_its_checkable_commands() -> None:
    blocks = marked_blocks(GUIDE.read_text())
    commands = " ".join(blocks)
    for verb in ("validate", "plan", "status", "health", "schema", "drill"):
        assert f"sitectl {verb}" in commands, f"no lab-tested `sitectl {verb}` in the guide"


@pytest.mark.lab
def test_the_guides_marked_commands_run_on_the_lab(lab: LabHandle, tmp_path: Path) -> None:
    topology = str(lab.env["topology"])
    bindir = str(Path(sys.executable).parent)  # the venv's `sitectl`
    env = {
        **os.environ,
        "SITECTL_CONFIG": topology,
        "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    started = time.monotonic()
    timings = []
    for index, block in enumerate(marked_blocks(GUIDE.read_text()), start=1):
        script = block.replace(GUIDE_TOPOLOGY, topology)
        began = time.monotonic()
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        timings.append(f"block {index}: {time.monotonic() - began:.1f} s")
        assert done.returncode == 0, (
            f"the guide's block {index} exited {done.returncode}:\n{script}\n"
            f"--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
        )
    spent = time.monotonic() - started
    print(f"operator's guide on the lab: {spent:.1f} s (budget {BUDGET_S:g} s); {timings}")
