"""The lab's three networks: a namespace per site, a WAN router joining them and ops.

    ops (the namespace `lab up` runs in)   198.18.0.1/24 on <prefix>-ops
        │ veth
    router namespace <prefix>-wan          .254 in every network; forwards; nft cuts
        │ veth "dc1" / "dc2" / "witness"
    site namespaces <prefix>-dc1, …        198.18.N.0/24 on "wan"; route 198.18.0.0/15 via .254

Each site namespace reaches the others and ops only through the router, and nothing
routes out of the machine: the router has no interface but these. The prefix is derived
from the state dir, so two labs (a developer's and a CI lane's, each in its own caller
namespace) never share a namespace name.

Servers are started with `nsenter --net=…` (never `ip netns exec`): that one also gives
the command a mount namespace of its own, and a volume mounted there (by sshd, so by
every Ansible task) would be invisible to everyone else. Clients (`lab exec`) use
`ip netns exec`, whose bind mount of /etc/netns/<ns>/resolv.conf gives them the site's
DNS server as their resolver.

Every namespace and link is recorded in the lab's state before it is made, so `down`
removes exactly what `up` made, after a crash too.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
from collections.abc import Iterable
from pathlib import Path

from orchestrator.lab import layout, shape, wan
from orchestrator.lab.state import LabState

NETNS_DIR = Path("/run/netns")
ETC_NETNS = Path("/etc/netns")
ROUTER = "wan"
SITE_LINK = "wan"  # the interface of a site namespace towards the router


class NetworkError(Exception):
    """A network command failed; the message carries the command's own error."""


def prefix(root: Path) -> str:
    """`sl` + 6 hex digits of the state dir's path: short enough for interface names."""
    return "sl" + hashlib.sha256(str(root.absolute()).encode()).hexdigest()[:6]


def namespace(root: Path, site_or_router: str) -> str:
    return f"{prefix(root)}-{site_or_router}"


def path(name: str) -> str:
    return str(NETNS_DIR / name)


def ops_link(root: Path) -> str:
    return f"{prefix(root)}-ops"


def enter(root: Path, site: str) -> list[str]:
    """The argv prefix that runs a server in the site's network namespace."""
    return enter_namespace(namespace(root, site))


def enter_namespace(name: str) -> list[str]:
    # Only the network namespace: a mount made by the server (sshd's sessions mount
    # volumes) must stay visible to everyone, which `ip netns exec` would not allow.
    return [shutil.which("nsenter") or "/usr/bin/nsenter", f"--net={path(name)}", "--"]


def _run(argv: list[str], stdin: str | None = None, check: bool = True) -> str:
    proc = subprocess.run(argv, input=stdin, capture_output=True, text=True)
    if check and proc.returncode != 0:
        error = " ".join((proc.stderr or proc.stdout).split()) or f"exit {proc.returncode}"
        raise NetworkError(f"{' '.join(argv)}: {error}")
    return proc.stdout


def exists(name: str) -> bool:
    return Path(path(name)).exists()


def _link_exists(link: str, netns: str | None = None) -> bool:
    argv = ["ip", *(["-n", netns] if netns else []), "link", "show", link]
    return subprocess.run(argv, capture_output=True).returncode == 0


def _record(state: LabState, key: str, value: str) -> None:
    """Written before the thing is made: a crash in between must not leave it behind."""
    made = state.resources.setdefault("network", {}).setdefault(key, [])
    if value not in made:
        made.append(value)
        state.save()


def _add_namespace(state: LabState, name: str) -> None:
    _record(state, "namespaces", name)
    if not exists(name):
        _run(["ip", "netns", "add", name])
    _run(["ip", "-n", name, "link", "set", "lo", "up"])


def _veth(netns: str | None, local: str, peer: str, peer_netns: str) -> None:
    """A veth pair: `local` in `netns` (None: the namespace we run in), `peer` in
    `peer_netns`; made in one command, so no half-placed pair is ever left."""
    if _link_exists(local, netns):
        return
    ns = ["-n", netns] if netns else []
    _run(
        ["ip", *ns, "link", "add", local, "type", "veth", "peer", "name", peer, "netns", peer_netns]
    )


def _address(netns: str | None, link: str, cidr: str) -> None:
    ns = ["-n", netns] if netns else []
    shown = _run(["ip", *ns, "-o", "-4", "addr", "show", "dev", link])
    if f" {cidr} " not in shown and f" {cidr}\\" not in shown:
        _run(["ip", *ns, "addr", "add", cidr, "dev", link])
    _run(["ip", *ns, "link", "set", link, "up"])


class NetworkInUse(NetworkError):
    """The ops network's range is already used in this namespace (another lab's, or not
    ours at all): starting would take its route away."""


def check_free(root: Path) -> None:
    """Raise NetworkInUse if 198.18.0.0/15 is already on a link or route here, not ours.

    Checked before anything is made: a second lab in one namespace would replace the first
    one's route to its sites.
    """
    ours = ops_link(root)
    for line in _run(["ip", "-o", "-4", "addr", "show"]).splitlines():
        fields = line.split()
        link, cidr = fields[1], fields[3]
        if cidr.startswith(f"{layout.NETWORK_PREFIX}.") and link != ours:
            raise NetworkInUse(f"{cidr} on {link} is already in use in this network namespace")
    for line in _run(["ip", "-o", "-4", "route", "show", "match", layout.ops_ip()]).splitlines():
        if line.split()[0] != "default" and f" dev {ours} " not in f"{line} ":
            raise NetworkInUse(f"the route {line.strip()!r} is already in use here")


def create(state: LabState) -> None:
    """Namespaces, links, addresses and routes; idempotent (a second `up` changes nothing)."""
    root = state.root
    router = namespace(root, ROUTER)
    _add_namespace(state, router)
    _run([*enter(root, ROUTER), "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])
    for site in layout.SITES:
        site_ns = namespace(root, site)
        _add_namespace(state, site_ns)
        _veth(router, site, SITE_LINK, site_ns)
        for address in layout.site_addresses(site, shape.extra_octets(state.resources)):
            _address(site_ns, SITE_LINK, f"{address}/24")
        _address(router, site, f"{layout.router_ip(site)}/24")
        via = layout.router_ip(site)
        _run(["ip", "-n", site_ns, "route", "replace", layout.WAN_RANGE, "via", via])
        _resolver(state, site)
    link = ops_link(root)
    _record(state, "links", link)
    _veth(None, link, layout.OPS, router)
    _address(None, link, f"{layout.ops_ip()}/24")
    _address(router, layout.OPS, f"{layout.router_ip(layout.OPS)}/24")
    _run(["ip", "route", "replace", layout.WAN_RANGE, "via", layout.router_ip(layout.OPS)])
    apply_cuts(state, cuts(state))


def _resolver(state: LabState, site: str) -> None:
    """/etc/netns/<ns>/resolv.conf: what `ip netns exec` shows a site's clients."""
    directory = ETC_NETNS / namespace(state.root, site)
    _record(state, "etc", str(directory))
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "resolv.conf").write_text(
        f"# sitectl lab: {site}'s clients ask {site}'s DNS server\n"
        f"nameserver {layout.service_ip(site)}\n"
        f"search {layout.INTERNAL_ZONE.rstrip('.')}\n"
        "options timeout:1 attempts:1\n"
    )


def destroy(state: LabState) -> list[str]:
    """Remove every namespace, link, route and resolver file recorded; return problems.

    Run after every process is stopped: a namespace whose last process is gone is freed
    with its interfaces (and the router's nft table) when its name is removed.
    """
    problems = []
    made = state.resources.get("network", {})
    for name in list(made.get("namespaces", [])):
        for pid in _run(["ip", "netns", "pids", name], check=False).split():
            # Only a process we started can be in a namespace named after our state dir.
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
        try:
            if exists(name):
                _run(["ip", "netns", "del", name])
            made["namespaces"].remove(name)
        except NetworkError as exc:
            problems.append(str(exc))
    for link in list(made.get("links", [])):
        try:
            if _link_exists(link):  # gone with its router peer, normally
                _run(["ip", "link", "del", link])
            made["links"].remove(link)
        except NetworkError as exc:
            problems.append(str(exc))
    for directory in list(made.get("etc", [])):
        shutil.rmtree(directory, ignore_errors=True)
        made["etc"].remove(directory)
    if not problems:
        state.resources.pop("network", None)
    return problems


def cuts(state: LabState) -> set[wan.Link]:
    return {(a, b) for a, b in state.resources.get("network", {}).get("cuts", [])}


def apply_cuts(state: LabState, links: Iterable[wan.Link]) -> None:
    """Record `links` as the whole set of cuts, then make the router drop exactly those."""
    links = set(links)
    state.resources.setdefault("network", {})["cuts"] = sorted([a, b] for a, b in links)
    state.save()
    _run([*enter(state.root, ROUTER), "nft", "-f", "-"], stdin=wan.ruleset(links))


def client_argv(root: Path, site: str, argv: list[str]) -> list[str]:
    """Run `argv` as a client inside the site: its network, its DNS server as resolver."""
    return ["ip", "netns", "exec", namespace(root, site), *argv]


def leftovers(root: Path) -> list[str]:
    """Namespaces and links of this lab that still exist (for tests and `down`'s check)."""
    found = [name for name in (namespace(root, s) for s in (ROUTER, *layout.SITES)) if exists(name)]
    if _link_exists(ops_link(root)):
        found.append(ops_link(root))
    return found
