"""What fencing a host means, read from the topology (pure).

An agent guards the hosts of one site at one address (each host in production; the
lab's one address per site). Fencing them, in this order:
1. stop every application role that moves, last-started first: the role's `stop`
   command, or its services with systemctl;
2. drop the site's copy of every zone its DNS server serves, by `deadman.dns_fence_command`
   with {zone} and {primary} (the primary to follow once reachable: the zone's update
   server when it lives elsewhere, else the server another datacenter would promote),
   so that a client at the site is no longer sent to it;
3. unmount the mirrored volumes the site's hosts mount.

Restoring them (the lone survivor's override, `ticket grant --force --no-quorum`) is the
reverse: mount the volumes, take the zones back by `deadman.dns_restore_command` with
{zone}, start the roles that move, first-started first. The roles' start goes through
the same start gate as any other start, which honours the override.

Commands may name the host's inventory variables as `{{ name }}`, as they do for
Ansible; nothing else of Jinja is evaluated.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from orchestrator.config.model import (
    BtrfsVolume,
    CommandVolume,
    DnsZone,
    Host,
    NetappVolume,
    Topology,
    fill,
)

VarsOf = Callable[[Host], Mapping[str, object]]
_VAR = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


@dataclass(frozen=True)
class FenceAction:
    what: str  # "stop role mta on dc1-mta", for the log
    argv: tuple[str, ...] = ()  # run as is
    shell: str = ""  # an operator's command line, run by /bin/sh

    @property
    def command(self) -> str:
        return self.shell or " ".join(self.argv)


def render(template: str, host_vars: Mapping[str, object]) -> str:
    """Fill `{{ name }}` from the host's variables; a name it does not have is an error."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in host_vars:
            raise ValueError(f"{template!r} names {{{{ {name} }}}}, which the host does not set")
        return str(host_vars[name])

    return _VAR.sub(value, template)


def needs_agent(topo: Topology, host: Host) -> bool:
    """Whether fencing touches `host`: it runs a role that moves, serves a zone the fence
    drops, or mounts a mirrored volume (LDAP masters, which never move, do not)."""
    moving = any(topo.roles[r].moves for r in host.roles if r in topo.roles)
    volume = any(_mounts(topo, v, host) for v in topo.volumes)
    return moving or volume or any(h is host for _, h in _zones_served(topo, host.site, [host]))


def _mounts(topo: Topology, volume: BtrfsVolume | NetappVolume | CommandVolume, host: Host) -> bool:
    """Whether `host` mounts `volume` at its site: the host its `hosts` names there, or
    any host of its role."""
    return any(h.name == host.name for h in topo.volume_hosts(volume, host.site))


def guarded_hosts(topo: Topology, site: str, address: str | None) -> list[Host]:
    return [h for h in topo.hosts if h.site == site and (address is None or h.address == address)]


def fence_actions(
    topo: Topology, site: str, hosts: list[Host], inventory_vars: Mapping[str, Mapping[str, object]]
) -> list[FenceAction]:
    """Everything that fences `hosts` of `site`, in order. `inventory_vars`: each host's
    variables as Ansible would see them (the topology's vars under the inventory's)."""

    def vars_of(host: Host) -> Mapping[str, object]:
        return {**host.vars, **inventory_vars.get(host.name, {})}

    return [
        *_stop_roles(topo, hosts, vars_of),
        *_drop_zones(topo, site, hosts, vars_of),
        *_unmount_volumes(topo, site, hosts, vars_of),
    ]


def restore_actions(
    topo: Topology, site: str, hosts: list[Host], inventory_vars: Mapping[str, Mapping[str, object]]
) -> list[FenceAction]:
    """Everything that brings fenced `hosts` of `site` back to serving, in order."""

    def vars_of(host: Host) -> Mapping[str, object]:
        return {**host.vars, **inventory_vars.get(host.name, {})}

    return [
        *_mount_volumes(topo, site, hosts, vars_of),
        *_take_zones(topo, site, hosts, vars_of),
        *_start_roles(topo, hosts, vars_of),
    ]


def _moving_roles(topo: Topology, hosts: list[Host], last_first: bool) -> list[tuple[str, Host]]:
    moving = sorted(
        ((name, role) for name, role in topo.roles.items() if role.moves),
        key=lambda item: -item[1].start_order if last_first else item[1].start_order,
    )
    return [(name, host) for name, _ in moving for host in hosts if name in host.roles]


def _start_roles(topo: Topology, hosts: list[Host], vars_of: VarsOf) -> list[FenceAction]:
    return _role_actions(topo, hosts, vars_of, "start")


def _stop_roles(topo: Topology, hosts: list[Host], vars_of: VarsOf) -> list[FenceAction]:
    return _role_actions(topo, hosts, vars_of, "stop")


def _role_actions(
    topo: Topology, hosts: list[Host], vars_of: VarsOf, verb: str
) -> list[FenceAction]:
    """`verb` (start or stop) each moving role on `hosts`: stop last-started first, each
    role's services in reverse; by the role's command, or systemctl."""
    stopping = verb == "stop"
    actions: list[FenceAction] = []
    for name, host in _moving_roles(topo, hosts, last_first=stopping):
        role = topo.roles[name]
        what = f"{verb} role {name} on {host.name}"
        if role.commands is not None:
            command = role.commands.stop if stopping else role.commands.start
            actions.append(FenceAction(what, shell=render(command, vars_of(host))))
        else:
            services = reversed(role.services) if stopping else role.services
            actions += [FenceAction(what, argv=("systemctl", verb, s)) for s in services]
    return actions


def primary_to_follow(zone: DnsZone, site: str) -> str | None:
    """The address a fenced site's server should take the zone from once reachable."""
    for server in zone.update_servers:
        if server.site != site:
            return server.address
    for other, promotion in zone.promote.items():
        if other != site:
            return promotion.server.address
    return None


def _drop_zones(topo: Topology, site: str, hosts: list[Host], vars_of: VarsOf) -> list[FenceAction]:
    command = topo.deadman.dns_fence_command if topo.deadman else None
    actions: list[FenceAction] = []
    for zone, host in _zones_served(topo, site, hosts):
        primary = primary_to_follow(zone, site)
        if command is None or primary is None:
            continue
        # The operator's {{ host_var }} first: a value filled in is never read again.
        line = fill(render(command, vars_of(host)), zone=zone.name, primary=primary)
        actions.append(FenceAction(f"drop zone {zone.name} on {host.name}", shell=line))
    return actions


def _take_zones(topo: Topology, site: str, hosts: list[Host], vars_of: VarsOf) -> list[FenceAction]:
    command = topo.deadman.dns_restore_command if topo.deadman else None
    actions: list[FenceAction] = []
    for zone, host in _zones_served(topo, site, hosts):
        if command is None:
            continue
        line = fill(render(command, vars_of(host)), zone=zone.name)
        actions.append(FenceAction(f"take zone {zone.name} on {host.name}", shell=line))
    return actions


def _zones_served(topo: Topology, site: str, hosts: list[Host]) -> list[tuple[DnsZone, Host]]:
    """Each RFC 2136 zone with the host of `hosts` whose DNS server at `site` serves it."""
    addresses = {h.address: h for h in hosts}
    served = []
    for zone in topo.dns.zones:
        if zone.provider != "rfc2136":
            continue
        for server in zone.verify_servers:
            host = addresses.get(server.address)
            if server.site == site and host is not None:
                served.append((zone, host))
    return served


def _unmount_volumes(
    topo: Topology, site: str, hosts: list[Host], vars_of: VarsOf
) -> list[FenceAction]:
    return _volume_actions(topo, site, hosts, vars_of, "unmount")


def _mount_volumes(
    topo: Topology, site: str, hosts: list[Host], vars_of: VarsOf
) -> list[FenceAction]:
    return _volume_actions(topo, site, hosts, vars_of, "mount")


def _volume_actions(
    topo: Topology, site: str, hosts: list[Host], vars_of: VarsOf, verb: str
) -> list[FenceAction]:
    actions: list[FenceAction] = []
    for volume in topo.volumes:
        mounting = [h for h in hosts if _mounts(topo, volume, h)]
        if not mounting:
            continue
        what = f"{verb} volume {volume.name} at {site}"
        if isinstance(volume, BtrfsVolume):
            if volume.mirror_config is None or site not in volume.sites:
                continue
            config = str(topo.resolve(volume.mirror_config))
            argv = (sys.executable, "-m", "orchestrator.storage", "--config", config)
            actions.append(FenceAction(what, argv=(*argv, verb, site)))
        elif isinstance(volume, CommandVolume):
            line = fill(
                render(volume.commands[verb], vars_of(mounting[0])),
                volume=volume.name,
                site=site,
                mount_point=volume.mount_point_at(site),
            )
            actions.append(FenceAction(what, shell=line))
        else:
            point = volume.mount_point_at(site)
            actions.append(
                FenceAction(what, argv=("umount", point) if verb == "unmount" else ("mount", point))
            )
    return actions
