"""The dead-man agents of the lab's datacenters, one per site, in the site's network.

`sitectl lab controllers up` starts them with the controllers and `controllers down`
stops them first, forgetting what they remembered (a lab convenience: in production a
stopped controller leaves its agent armed, and the agent fences the site). Each guards
its site's service address, where the application, the DNS server and the volume live,
and runs `sitectl deadman run` on the lab's topology.

A wide lab's mailbox servers have addresses of their own, which the controllers feed too
(`deadman.feeder.agent_addresses`): each gets an agent of its own, as each host has in
production, so a fenced site's Dovecots stop and their volumes come off. The start gate
reads the site's agent, fed with them by the same controller.
"""

from __future__ import annotations

import sys
from pathlib import Path

from orchestrator.lab import layout, shape
from orchestrator.lab.credentials import ensure_password
from orchestrator.lab.state import Component, LabState, topology_path

KIND = "deadman"
PORT = 9401


def key_file(state: LabState) -> Path:
    return state.root / "secrets" / "deadman.key"


def state_file(state: LabState, site: str) -> Path:
    return memory_file(state.root, site)


def memory_file(root: Path, site: str) -> Path:
    """The site's agent's state file, which the start gate reads for an override."""
    return root / site / KIND / "memory.json"


def argv(state: LabState, site: str, address: str, memory: Path) -> list[str]:
    return [
        *(sys.executable, "-m", "orchestrator.cli.deadman", "deadman", "run", "--site", site),
        *("--address", address, "--state-file", str(memory)),
        *("-c", str(topology_path(state.root))),
    ]


def _agents(state: LabState, site: str) -> list[tuple[str, str, Path]]:
    """(name, address, home) of each agent at `site`: the site's, then its mailbox servers'."""
    agents = [(f"{site}-{KIND}", layout.service_ip(site), state.site_dir(site, KIND))]
    for server in shape.servers(shape.recorded(state.resources)):
        agents.append(
            (
                f"{site}-{server.name}-{KIND}",
                layout.site_ip(site, server.octet),
                state.site_dir(site, f"{server.name}-{KIND}"),
            )
        )
    return agents


def prepare(state: LabState, programs: dict[str, str]) -> list[Component]:
    del programs  # sitectl itself, from this venv
    ensure_password(key_file(state))
    comps = []
    for site in layout.DATACENTERS:
        for name, address, home in _agents(state, site):
            home.mkdir(parents=True, exist_ok=True)
            comps.append(
                Component(
                    name=name,
                    site=site,
                    kind=KIND,
                    address=f"{address}:{PORT}",
                    argv=argv(state, site, address, home / "memory.json"),
                    cwd=str(home),
                    log=str(home / "deadman.log"),
                    wanted=False,  # until `lab controllers up`
                )
            )
    return comps


def forget(state: LabState, site: str) -> None:
    """Every agent of the site forgets what it was fed."""
    for _, _, home in _agents(state, site):
        (home / "memory.json").unlink(missing_ok=True)


def ready(comp: Component) -> bool:
    """Its UDP socket is bound: /proc/PID/net/udp shows the process's own network."""
    if comp.pid is None:
        return False
    rows = Path(f"/proc/{comp.pid}/net/udp").read_text().splitlines()[1:]
    return any(row.split()[1].endswith(f":{PORT:04X}") for row in rows)
