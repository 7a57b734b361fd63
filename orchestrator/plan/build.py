"""From (topology, observed state, mode, target site) to a Plan. Pure: no I/O.

The order follows the Zimbra two-site procedure: pre-flight checks, readiness gate,
disable the application on the old site, unmount there, (switchover: final mirror
transfer), break the mirrors, mount on the new site, repoint DNS, start services in role
order, verify, and only then record the new site as active.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from itertools import groupby

from orchestrator.config.model import (
    BtrfsVolume,
    CommandVolume,
    DnsZone,
    NetappVolume,
    Role,
    Topology,
)
from orchestrator.errors import ConfigError
from orchestrator.plan.custom import anchor_problems, place_custom_steps
from orchestrator.plan.model import Action, Group, Mode, Phase, Plan, Step, Trigger
from orchestrator.plan.observed import MirrorView, ObservedState


class PlanRefused(ConfigError):
    """The operation cannot be planned as asked. `gate` is True when the request was
    well-formed but the state of the world forbids it (exit 4), False for bad input."""

    def __init__(self, message: str, *, gate: bool = False) -> None:
        super().__init__(message)
        self.gate = gate


def build_plan(
    topo: Topology,
    observed: ObservedState,
    mode: Mode,
    to_site: str,
    trigger: Trigger = "manual",
) -> Plan:
    from_site = observed.active_site
    _refuse_if_impossible(topo, observed, mode, to_site)
    old_up = observed.reachable(from_site)
    # In a failover the old site's steps never block: skipped when the site is known to be
    # down, otherwise tried with policy.unreachable_timeout and skipped if it stops answering.
    skip_old = "skip" if mode == "failover" else "fail"
    notes: list[str] = []
    if not old_up:
        notes.append(
            f"{from_site} did not answer: its steps are recorded as skipped, not attempted"
        )
    if mode == "failover":
        notes.append(
            "failover takes no final mirror transfer: whatever the mirror had not sent "
            "is lost, as the readiness gate estimates"
        )

    groups: list[Group] = [_preflight(topo, from_site, to_site)]
    groups.append(
        _group(
            Phase.READINESS,
            [
                Step(
                    id="readiness/gate",
                    phase=Phase.READINESS,
                    action=Action.GATE_READINESS,
                    site=to_site,
                    target="replication",
                    description=(
                        f"refuse unless what {to_site} would lose (mirror, LDAP and "
                        "object-store lag) is within the RPO limits"
                    ),
                    params={
                        "rpo_limits": topo.policy.rpo_limits.model_dump(),
                        "mode": mode,
                    },
                )
            ],
        )
    )
    volumes = list(topo.volumes)
    if mode == "switchover" and volumes and topo.policy.pre_sync_above is not None:
        groups.append(_pre_sync(volumes, from_site, to_site, topo.policy.pre_sync_above))
    if mode == "switchover":
        # Written while the old site still serves, so the verify step can prove the last
        # write before the cutover reached the new site.
        groups.append(
            _group(
                Phase.DISABLE_APPLICATION,
                [
                    Step(
                        id=f"disable-application/{from_site}/canary",
                        phase=Phase.DISABLE_APPLICATION,
                        action=Action.WRITE_CANARY,
                        site=from_site,
                        target="canary",
                        description=(
                            f"write a canary message on {from_site} just before its "
                            "application stops"
                        ),
                    )
                ],
            )
        )
    moving = {name: role for name, role in topo.roles.items() if role.moves}
    for order, names in _by_order(moving, reverse=True):
        groups.append(
            _group(
                Phase.DISABLE_APPLICATION,
                [
                    Step(
                        id=f"disable-application/{from_site}/{name}",
                        phase=Phase.DISABLE_APPLICATION,
                        action=Action.APP_STOP,
                        site=from_site,
                        target=name,
                        hosts=_host_names(topo, from_site, name),
                        if_unreachable=skip_old,
                        description=f"stop {name} on {from_site} so nothing writes there",
                        params={"services": list(topo.roles[name].services), "order": order},
                    )
                    for name in names
                ],
            )
        )
    # Unmount before the final transfer: with nothing mounted on the old site no dirty
    # page can miss the last snapshot (the storage vendors' cutover order).
    if volumes:
        groups.append(
            _group(
                Phase.UNMOUNT,
                [
                    Step(
                        id=f"unmount/{from_site}/{v.name}",
                        phase=Phase.UNMOUNT,
                        action=Action.VOLUME_UNMOUNT,
                        site=from_site,
                        target=v.name,
                        hosts=_volume_host_names(topo, from_site, v),
                        if_unreachable=skip_old,
                        description=(
                            f"unmount volume {v.name} from {v.mount_point_at(from_site)} on "
                            f"{from_site}"
                        ),
                        params={"driver": v.driver, "mount_point": v.mount_point},
                    )
                    for v in volumes
                ],
            )
        )
    groups.append(_ticket_leaves(topo, mode, from_site, to_site, groups))
    if mode == "switchover" and volumes:
        groups.append(
            _group(
                Phase.FINAL_SYNC,
                [
                    Step(
                        id=f"final-sync/{v.name}",
                        phase=Phase.FINAL_SYNC,
                        action=Action.MIRROR_UPDATE,
                        site=to_site,
                        target=v.name,
                        description=(
                            f"transfer the last changes of volume {v.name} from {from_site} "
                            f"to {to_site} now that the application is stopped"
                        ),
                        params={"driver": v.driver, "source": from_site},
                    )
                    for v in volumes
                ],
            )
        )
    promotions = [z for z in topo.dns.zones if _needs_promotion(z, mode, to_site)]
    promote_steps = [
        Step(
            id=f"dns/promote/{zone.name}",
            phase=Phase.DNS,
            action=Action.DNS_PROMOTE,
            site=to_site,
            target=zone.name,
            hosts=(zone.promote[to_site].host,),
            description=(
                f"promote {to_site}'s server {zone.promote[to_site].server} to "
                f"primary of {zone.name}"
            ),
            params={"server": str(zone.promote[to_site].server)},
        )
        for zone in promotions
    ]
    if promotions:
        notes.append(
            f"{to_site}'s DNS server is promoted to primary of "
            f"{', '.join(z.name for z in promotions)} while the mirrors break, unless it "
            f"already is: the primary may have been lost with {from_site}"
        )
    if volumes:
        groups.append(
            _group(
                Phase.BREAK_MIRRORS,
                [
                    Step(
                        id=f"break-mirrors/{v.name}",
                        phase=Phase.BREAK_MIRRORS,
                        action=Action.MIRROR_BREAK,
                        site=to_site,
                        target=v.name,
                        description=(
                            f"quiesce and break the mirror of volume {v.name} so {to_site}'s "
                            "copy becomes writable"
                        ),
                        params={"driver": v.driver, "source": from_site},
                    )
                    for v in volumes
                ]
                # Independent of storage, and each a playbook run of its own: side by
                # side with the mirrors' break rather than after the mounts.
                + promote_steps,
            )
        )
        groups.append(
            _group(
                Phase.MOUNT,
                [
                    Step(
                        id=f"mount/{to_site}/{v.name}",
                        phase=Phase.MOUNT,
                        action=Action.VOLUME_MOUNT,
                        site=to_site,
                        target=v.name,
                        hosts=_volume_host_names(topo, to_site, v),
                        description=(
                            f"mount volume {v.name} at {v.mount_point_at(to_site)} on {to_site}"
                        ),
                        params={"driver": v.driver, "mount_point": v.mount_point},
                    )
                    for v in volumes
                ],
            )
        )
    if promote_steps and not volumes:
        groups.append(_group(Phase.DNS, promote_steps))
    groups.append(
        _group(
            Phase.DNS,
            [
                Step(
                    id=f"dns/{zone.name}",
                    phase=Phase.DNS,
                    action=Action.DNS_UPDATE,
                    site=to_site,
                    target=zone.name,
                    description=(
                        f"point the {zone.scope} zone {zone.name} at {to_site} "
                        f"({len(zone.records)} record(s), {zone.provider})"
                    ),
                    params={
                        "provider": zone.provider,
                        "records": [
                            {
                                "name": zone.fqdn(r),
                                "type": r.type,
                                "ttl": r.ttl,
                                "value": r.values[to_site],
                                "old_value": r.values.get(from_site),
                            }
                            for r in zone.records
                        ],
                        "servers": _update_candidates(
                            zone, to_site if zone in promotions else None
                        ),
                        "verify_servers": _verify_servers(zone, mode, from_site),
                    },
                )
                for zone in topo.dns.zones
            ],
        )
    )
    groups.append(_ticket_grant(topo, to_site))
    for order, names in _by_order(topo.roles):
        groups.append(
            _group(
                Phase.START_SERVICES,
                [
                    Step(
                        id=f"start-services/{to_site}/{name}",
                        phase=Phase.START_SERVICES,
                        action=Action.APP_START,
                        site=to_site,
                        target=name,
                        hosts=_host_names(topo, to_site, name),
                        description=(
                            f"start {name} on {to_site}"
                            if topo.roles[name].moves
                            else f"make sure {name} runs on {to_site} (it runs on both sites)"
                        ),
                        params={"services": list(topo.roles[name].services), "order": order},
                    )
                    for name in names
                ],
            )
        )
    groups.append(_verify(topo, mode, from_site, to_site))
    groups.append(
        _group(
            Phase.VERIFY,
            [
                Step(
                    id="verify/activate",
                    phase=Phase.VERIFY,
                    action=Action.ACTIVATE,
                    site=to_site,
                    target=topo.cluster,
                    description=f"record {to_site} as the active site of {topo.cluster}",
                )
            ],
        )
    )
    plan = Plan(
        cluster=topo.cluster,
        mode=mode,
        from_site=from_site,
        to_site=to_site,
        old_site_reachable=old_up,
        groups=tuple(groups),
        notes=tuple(notes),
        trigger=trigger,
    )
    return place_custom_steps(plan, topo)


def _ticket_leaves(
    topo: Topology, mode: Mode, from_site: str, to_site: str, before: list[Group]
) -> Group:
    """The old site gives up the site ticket once its application has stopped. In a
    switchover it releases it. In a failover it may be gone or cut off, so nothing at the
    new site becomes writable (break, mount, DNS) until the old site is known stopped
    (its stop steps succeeded) or its ticket has expired: last renewal + ttl + drift."""
    if mode == "switchover":
        return _ticket_step(
            f"ticket/release/{from_site}",
            Action.TICKET_RELEASE,
            from_site,
            f"release {from_site}'s site ticket now that its application has stopped: "
            "nothing there may serve again without a new grant",
        )
    drift = topo.policy.clock_drift
    return _ticket_step(
        f"fence/wait/{from_site}",
        Action.FENCE_WAIT,
        # Run for the new site, which waits: never skipped with the old site.
        to_site,
        f"make nothing at {to_site} writable until {from_site} cannot be serving: at once "
        f"if {from_site}'s stop steps succeeded, else once its site ticket's last renewal "
        f"+ ttl + {drift:g} s clock drift has passed",
        target=from_site,
        params={
            "old_site": from_site,
            "stop_steps": [s.id for g in before for s in g.steps if s.site == from_site],
            "clock_drift": drift,
        },
    )


def _ticket_grant(topo: Topology, to_site: str) -> Group:
    return _ticket_step(
        f"ticket/grant/{to_site}",
        Action.TICKET_GRANT,
        to_site,
        f"grant the site ticket to {to_site} before its application starts (ttl "
        f"{topo.ticket_ttl:g} s, renewed by {to_site}'s controllers)",
        params={"ttl": topo.ticket_ttl, "clock_drift": topo.policy.clock_drift},
    )


def _ticket_step(
    step_id: str,
    action: Action,
    site: str,
    description: str,
    *,
    target: str = "ticket",
    params: Mapping[str, object] | None = None,
) -> Group:
    """A group of one step that moves or waits for the site ticket."""
    step = Step(
        id=step_id,
        phase=Phase.TICKET,
        action=action,
        site=site,
        target=target,
        description=description,
        params=params or {},
    )
    return _group(Phase.TICKET, [step])


def _refuse_if_impossible(
    topo: Topology, observed: ObservedState, mode: Mode, to_site: str
) -> None:
    if to_site not in topo.sites:
        raise PlanRefused(
            f"site {to_site!r} is not in the topology — use one of: {', '.join(topo.datacenters())}"
        )
    if topo.sites[to_site].kind != "datacenter":
        raise PlanRefused(
            f"{to_site!r} is the witness, which only votes — move to a datacenter: "
            f"{', '.join(d for d in topo.datacenters() if d != observed.active_site)}"
        )
    if to_site == observed.active_site:
        raise PlanRefused(f"{to_site} is already the active site — nothing to move")
    if not observed.reachable(to_site):
        raise PlanRefused(
            f"{to_site} is unreachable — cannot move the service to a site that does not answer",
            gate=True,
        )
    if mode == "switchover" and not observed.reachable(observed.active_site):
        raise PlanRefused(
            f"{observed.active_site} is unreachable and a switchover needs it to stop cleanly "
            f"— use `sitectl failover --to {to_site}`",
            gate=True,
        )
    for vol in topo.volumes:
        view = observed.mirror(topo, vol.name)
        # Broken or not, the data flows towards the destination only: moving anywhere
        # else would serve a copy that misses everything written since the break.
        if view.destination != to_site:
            raise PlanRefused(
                f"volume {vol.name} mirrors {view.source}→{view.destination}, not towards "
                f"{to_site} — run `sitectl reprotect` (reverse the mirrors) before moving back",
                gate=True,
            )


def _preflight(topo: Topology, from_site: str, to_site: str) -> Group:
    checks: list[tuple[Action, str, str]] = [
        (Action.CHECK_ZOOKEEPER, "zookeeper", "ZooKeeper has a quorum and we hold a session"),
    ]
    if topo.ldap is not None:
        checks.append(
            (
                Action.CHECK_LDAP,
                "ldap",
                f"every LDAP master answers and the contextCSN lag of {to_site}'s masters is known",
            )
        )
    if topo.object_store is not None:
        checks.append(
            (
                Action.CHECK_OBJECT_STORE,
                "object-store",
                "the S3 endpoints answer and the buckets replicate across sites",
            )
        )
    if topo.volumes:
        checks.append(
            (
                Action.CHECK_MIRRORS,
                "mirrors",
                f"every volume mirrors {from_site}→{to_site} and its lag is known",
            )
        )
    checks.append(
        (Action.CHECK_DNS, "dns", "every authoritative DNS server answers and the keys work")
    )
    checks.append(
        (
            Action.CHECK_APPLICATION,
            "application",
            f"{topo.application.name} answers on {from_site} and is installed on {to_site}",
        )
    )
    return _group(
        Phase.PREFLIGHT,
        [
            Step(
                id=f"preflight/{target}",
                phase=Phase.PREFLIGHT,
                action=action,
                site=None,
                target=target,
                description=f"check that {text}",
            )
            for action, target, text in checks
        ],
    )


def _verify(topo: Topology, mode: Mode, from_site: str, to_site: str) -> Group:
    steps = [
        Step(
            id="verify/dns",
            phase=Phase.VERIFY,
            action=Action.VERIFY_DNS,
            site=to_site,
            target="dns",
            description=f"every authoritative DNS server answers {to_site}'s addresses",
            params={"zones": {z.name: _verify_servers(z, mode, from_site) for z in topo.dns.zones}},
        ),
        Step(
            id=f"verify/application/{to_site}",
            phase=Phase.VERIFY,
            action=Action.VERIFY_APPLICATION,
            site=to_site,
            target="application",
            hosts=tuple(h.name for h in topo.hosts if h.site == to_site),
            description=f"{topo.application.name} answers its protocol probes on {to_site}",
            params={
                "probes": {
                    name: [p.model_dump() for p in role.probes]
                    for name, role in topo.roles.items()
                    if role.probes
                }
            },
        ),
    ]
    if mode == "switchover":
        steps.append(
            Step(
                id="verify/canary",
                phase=Phase.VERIFY,
                action=Action.VERIFY_CANARY,
                site=to_site,
                target="canary",
                description=(
                    f"the last message written on {from_site} before the cutover is readable "
                    f"on {to_site}"
                ),
            )
        )
    return _group(Phase.VERIFY, steps)


def _needs_promotion(zone: DnsZone, mode: Mode, to_site: str) -> bool:
    """A failover to a site that can promote its own server. The primary may be on the
    lost site even when the topology names the new site's server: an earlier failover
    promoted the other one, and reprotect demoted this one. A server that already is
    the primary is found so when the step runs, which then changes nothing."""
    return mode == "failover" and to_site in zone.promote


def _update_candidates(zone: DnsZone, promoted_site: str | None) -> list[str]:
    """Servers that may take the update, preferred first. Which one is primary right
    now is observed when the step runs (the one that accepts a signed no-op update), so
    a zone promoted by an earlier failover keeps working without stored state."""
    candidates = [str(s) for s in zone.update_servers]
    for site, promotion in zone.promote.items():
        server = str(promotion.server)
        if site == promoted_site:
            candidates.insert(0, server)
        elif server not in candidates:
            candidates.append(server)
    return list(dict.fromkeys(candidates))


def _verify_servers(zone: DnsZone, mode: Mode, from_site: str) -> list[str]:
    # A failover cannot expect the lost site's servers to answer (or to be current).
    return [str(s) for s in zone.verify_servers if not (mode == "failover" and s.site == from_site)]


def _group(phase: Phase, steps: list[Step]) -> Group:
    return Group(phase=phase, steps=tuple(steps))


def _by_order(
    roles: Mapping[str, Role], *, reverse: bool = False
) -> Iterable[tuple[int, list[str]]]:
    """Roles grouped by start order (stop order when reversed), names sorted inside."""
    sign = -1 if reverse else 1
    ordered = sorted(roles, key=lambda n: (sign * roles[n].start_order, n))
    for order, names in groupby(ordered, key=lambda n: roles[n].start_order):
        yield order, list(names)


def _host_names(topo: Topology, site: str, role: str) -> tuple[str, ...]:
    return tuple(h.name for h in topo.hosts_of(site, role))


def _pre_sync(
    volumes: list[BtrfsVolume | NetappVolume | CommandVolume],
    from_site: str,
    to_site: str,
    above: float,
) -> Group:
    """One transfer per volume while the application still serves: the final transfer,
    after the stop and inside the downtime, then carries only what came since. The
    step is already true (skipped) for a mirror lagging `above` seconds or less."""
    return _group(
        Phase.PRE_SYNC,
        [
            Step(
                id=f"pre-sync/{v.name}",
                phase=Phase.PRE_SYNC,
                action=Action.MIRROR_UPDATE,
                site=to_site,
                target=v.name,
                description=(
                    f"transfer volume {v.name}'s changes from {from_site} to {to_site} "
                    f"while the application still serves, if its mirror lags more than "
                    f"{above:g} s"
                ),
                params={"driver": v.driver, "source": from_site, "lag_above": above},
            )
            for v in volumes
        ],
    )


def _volume_host_names(
    topo: Topology, site: str, volume: BtrfsVolume | NetappVolume | CommandVolume
) -> tuple[str, ...]:
    return tuple(h.name for h in topo.volume_hosts(volume, site))


def build_reprotect_plan(
    topo: Topology, observed: ObservedState, trigger: Trigger = "manual"
) -> Plan:
    """Reverse every mirror so the active site's volumes protect towards the standby.

    The step after a switchover or failover that makes moving back possible: until then
    the old site's copy is stale and the planner refuses to move there.
    """
    active = observed.active_site
    standby = next(dc for dc in topo.datacenters() if dc != active)
    if not topo.volumes and topo.object_store is None:
        raise PlanRefused("the topology has no mirrored volumes or buckets: nothing to reprotect")
    if not observed.reachable(standby):
        raise PlanRefused(
            f"{standby} is unreachable: a reprotect writes to it; heal it first", gate=True
        )
    steps = [
        Step(
            id=f"reprotect/{vol.name}",
            phase=Phase.REPROTECT,
            action=Action.MIRROR_REVERSE,
            site=active,
            target=vol.name,
            description=(
                f"reverse the mirror of volume {vol.name} so {active} protects towards "
                f"{standby}, and wait until it is in sync"
            ),
            params={"driver": vol.driver, "destination": standby},
        )
        for vol in topo.volumes
    ]
    demotions = [
        Step(
            id=f"reprotect/dns/{zone.name}",
            phase=Phase.REPROTECT,
            action=Action.DNS_DEMOTE,
            site=standby,
            target=zone.name,
            description=(
                f"make sure only one server is primary of {zone.name}: demote {standby}'s "
                f"if it came back as a primary"
            ),
            params={"servers": _update_candidates(zone, active)},
        )
        for zone in topo.dns.zones
        if standby in zone.promote
    ]
    if topo.object_store is not None:
        steps += [
            Step(
                id=f"reprotect/object-store/{bucket.name}",
                phase=Phase.REPROTECT,
                action=Action.OBJECT_STORE_REVERSE,
                site=active,
                target=bucket.name,
                description=(
                    f"replicate bucket {bucket.name} from {active} to {standby} (and no "
                    "longer the other way)"
                ),
                params={"destination": standby},
            )
            for bucket in topo.object_store.buckets
            if bucket.replicated
        ]
    # A site that comes back after a failover may restart its application on its own:
    # stop it before its volumes become the mirrors' destination.
    fence = [
        Step(
            id=f"reprotect/disable-application/{standby}/{name}",
            phase=Phase.REPROTECT,
            action=Action.APP_STOP,
            site=standby,
            target=name,
            hosts=_host_names(topo, standby, name),
            description=f"make sure {name} is stopped on {standby}, which no longer serves",
            params={"services": list(topo.roles[name].services), "order": order},
        )
        for order, names in _by_order(
            {n: r for n, r in topo.roles.items() if r.moves}, reverse=True
        )
        for name in names
    ]
    groups = [Group(phase=Phase.REPROTECT, steps=tuple(fence))] if fence else []
    groups += _salvage(topo, active, standby)
    groups.append(Group(phase=Phase.REPROTECT, steps=tuple(steps)))
    if demotions:
        groups.append(Group(phase=Phase.REPROTECT, steps=tuple(demotions)))
    plan = Plan(
        cluster=topo.cluster,
        mode="reprotect",
        from_site=active,
        to_site=standby,
        old_site_reachable=True,
        groups=tuple(groups),
        notes=(f"{active} stays active; {standby} becomes the mirrors' destination",),
        trigger=trigger,
    )
    return place_custom_steps(plan, topo)


def _salvage(topo: Topology, active: str, standby: str) -> list[Group]:
    """Before the mirrors turn: snapshot the standby's (old site's) copy of each volume
    sitectl can read, copy what only it holds into the active site (mail by Message-ID,
    objects by key and ETag), report its LDAP changes since the takeover, and refuse to go
    on while anything divergent is left, unless the operator said why to discard it."""
    readable = [v for v in topo.volumes if isinstance(v, BtrfsVolume)]
    uninspected = [
        f"volume {v.name} ({v.driver}): sitectl cannot read {standby}'s copy"
        for v in topo.volumes
        if not isinstance(v, BtrfsVolume)
    ]
    buckets = (
        [b.name for b in topo.object_store.buckets if b.replicated] if topo.object_store else []
    )
    snapshots = [
        Step(
            id=f"salvage/snapshot/{vol.name}",
            phase=Phase.SALVAGE,
            action=Action.SALVAGE_SNAPSHOT,
            site=standby,
            target=vol.name,
            description=(
                f"take a read-only snapshot of {standby}'s copy of volume {vol.name} before "
                "the mirror reverses it"
            ),
            params={"active": active},
        )
        for vol in readable
    ]
    listings = [
        Step(
            id=f"salvage/mail/{vol.name}",
            phase=Phase.SALVAGE,
            action=Action.SALVAGE_MAIL,
            site=active,
            target=vol.name,
            description=(
                f"copy into {active}'s Maildirs every message {standby}'s snapshot of "
                f"{vol.name} holds that {active} lacks (by Message-ID)"
            ),
            params={"old_site": standby},
        )
        for vol in readable
    ]
    listings += [
        Step(
            id=f"salvage/objects/{bucket}",
            phase=Phase.SALVAGE,
            action=Action.SALVAGE_OBJECTS,
            site=active,
            target=bucket,
            description=(
                f"copy into {active}'s bucket {bucket} every object {standby}'s holds that "
                f"{active}'s lacks (by key and ETag; a differing key goes under salvaged/)"
            ),
            params={"old_site": standby},
        )
        for bucket in buckets
    ]
    if topo.ldap is not None:
        listings.append(
            Step(
                id="salvage/ldap-report",
                phase=Phase.SALVAGE,
                action=Action.SALVAGE_LDAP,
                site=standby,
                target="ldap",
                description=(
                    f"list the LDAP entries {standby}'s masters changed after {active} took "
                    "over, for a person to review"
                ),
                params={"active": active},
            )
        )
    decide = Step(
        id="salvage/decide",
        phase=Phase.SALVAGE,
        action=Action.SALVAGE_DECIDE,
        site=active,
        target="divergence",
        description=(
            f"refuse to reverse the mirrors while {standby} holds mail or objects {active} "
            'lacks, unless --discard-divergent "REASON" was given'
        ),
        params={
            "old_site": standby,
            "volumes": [v.name for v in readable],
            "buckets": buckets,
            "uninspected": uninspected,
        },
    )
    groups = [_group(Phase.SALVAGE, snapshots)] if snapshots else []
    if listings:
        groups.append(_group(Phase.SALVAGE, listings))
    groups.append(_group(Phase.SALVAGE, [decide]))
    return groups


def every_plan(topo: Topology) -> list[Plan]:
    """The plans the topology allows, without custom steps' scopes: each mode from each
    datacenter to the other, as a person, the controller or a drill would start it."""
    plans = []
    for from_site in topo.datacenters():
        to_site = next(dc for dc in topo.datacenters() if dc != from_site)
        observed = ObservedState(
            active_site=from_site,
            mirrors={v.name: MirrorView(from_site, to_site) for v in topo.volumes},
        )
        for mode in ("switchover", "failover"):
            plans.append(build_plan(topo, observed, mode, to_site))
        if topo.volumes or topo.object_store is not None:
            plans.append(build_reprotect_plan(topo, observed))
    return plans


def custom_step_findings(topo: Topology) -> list[tuple[tuple[str | int, ...], str]]:
    """Custom steps whose anchor no plan has: (field path, what to fix), for the loader
    (config.load_topology's `checks`)."""
    if not topo.custom_steps or len(topo.datacenters()) != 2:
        return []
    try:
        plans = every_plan(topo)
    except PlanRefused:  # a topology the planner refuses says so when it is planned
        return []
    return [
        (("custom_steps", index, "before" if topo.custom_steps[index].before else "after"), text)
        for index, text in anchor_problems(topo, plans)
    ]
