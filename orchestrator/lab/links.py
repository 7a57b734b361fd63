"""The lab's WAN cuts and a client's way into a site: `lab partition`, `heal-network`,
the cut line of `lab status`, and `lab exec`.

Apart from the lab's lifecycle, whose modules import every server's client (LDAP, DNS,
ZooKeeper, S3, Jinja): about a second of CPU a call that these commands never use, and
scenarios run `lab exec` several times a second while they time a fence.
"""

from __future__ import annotations

from pathlib import Path

from orchestrator.exitcodes import ExitCode
from orchestrator.lab import layout, netns, volumes, wan
from orchestrator.lab import state as lab_state
from orchestrator.lab.readiness import LabError
from orchestrator.lab.state import LabState


def site_name(site: str) -> str:
    """`site` if it is one of the lab's sites; a bad-input LabError otherwise."""
    try:
        return layout.check_site(site)
    except ValueError as exc:
        raise LabError(str(exc), ExitCode.BAD_INPUT) from exc


def require_lab(state: LabState) -> None:
    if not state.components:
        raise LabError(f"no lab in {state.root} — run `sitectl lab up` first", ExitCode.BAD_INPUT)


def existing_lab(root: Path) -> Path:
    """`root`, absolute, if a lab was ever started there; checked before any lock is taken,
    because taking it creates the state dir, its lock file and an empty record."""
    root = root.absolute()
    require_lab(lab_state.load(root))
    return root


def _endpoint(name: str) -> str:
    try:
        return wan.check_endpoint(name)
    except ValueError as exc:
        raise LabError(str(exc), ExitCode.BAD_INPUT) from exc


def set_cuts(state: LabState, links: set[wan.Link]) -> None:
    """Make the router drop exactly `links`, and tell the mirror daemon."""
    try:
        netns.apply_cuts(state, links)
    except netns.NetworkError as exc:
        raise LabError(f"cannot change the WAN's cuts: {exc}") from exc
    volumes.mark_cuts(state, links)


def partition(
    root: Path, site: str, others: list[str] | None = None, oneway: bool = False
) -> list[str]:
    """Cut SITE's links at the router (every other network, or `others`); the cuts after."""
    site = _endpoint(site)
    try:
        links = wan.partition_links(site, [_endpoint(o) for o in others or []], oneway)
    except ValueError as exc:
        raise LabError(str(exc), ExitCode.BAD_INPUT) from exc
    with lab_state.locked(existing_lab(root)) as state:
        set_cuts(state, netns.cuts(state) | links)
        return wan.describe(netns.cuts(state))


def heal_network(root: Path, site: str | None = None) -> list[str]:
    """Undo every cut (or every cut touching SITE); the cuts left after."""
    if site is not None:
        site = _endpoint(site)
    with lab_state.locked(existing_lab(root)) as state:
        set_cuts(state, wan.healed(netns.cuts(state), site))
        return wan.describe(netns.cuts(state))


def network_cuts(root: Path) -> list[str]:
    return wan.describe(netns.cuts(lab_state.load(existing_lab(root))))


def client_argv(root: Path, site: str, argv: list[str]) -> list[str]:
    """How `lab exec SITE -- CMD` runs CMD: inside SITE, its DNS server as resolver."""
    site = site_name(site)
    root = existing_lab(root)
    if not netns.exists(netns.namespace(root, site)):
        raise LabError(f"{site}'s network is not up in {root}: run `sitectl lab up`")
    return netns.client_argv(root, site, argv)
