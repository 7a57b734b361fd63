"""Volume mirrors: state, lag and last transfer of each relationship, via its driver.

The result lives at the mirror's destination site: that is where the replica a failover
would mount is, so readiness for that site reads it.
"""

from __future__ import annotations

from collections.abc import Callable

from orchestrator.checks.result import Check, CheckResult, Status, one_line
from orchestrator.config.model import BtrfsVolume, NetappVolume, Topology, Volume
from orchestrator.errors import SitectlError
from orchestrator.storage import BtrfsMirror, MirrorConfig, MirrorState, MirrorStatus, netapp

SYSTEM = "mirrors"
STATE_CODES = {MirrorState.MIRRORED: 0.0, MirrorState.QUIESCED: 1.0, MirrorState.BROKEN: 2.0}


def checks(topo: Topology, timeout: float) -> list[Check]:
    del timeout  # each run is handed the sweep's bound (btrfs reads a local file)
    limit = topo.policy.rpo_limits.volume
    return [
        Check(SYSTEM, v.mirror.destination, target(v.name), _reader(topo, v, limit))
        for v in topo.volumes
    ]


def target(volume: str) -> str:
    return f"mirror {volume}"


def _reader(topo: Topology, volume: Volume, limit: float) -> Callable[[float], CheckResult]:
    def run(timeout: float) -> CheckResult:
        where = (SYSTEM, volume.mirror.destination, target(volume.name))
        if isinstance(volume, NetappVolume):
            return _netapp(topo, volume, limit, timeout)
        if not isinstance(volume, BtrfsVolume):
            return CheckResult(
                *where,
                Status.DEGRADED,
                f"the {volume.driver} driver's status is not read by health "
                "checks yet: check the array by hand",
                {},
            )
        if volume.mirror_config is None:
            return CheckResult(
                *where,
                Status.DEGRADED,
                "no mirror_config in the topology: cannot read its state",
                {},
            )
        try:
            status = BtrfsMirror(MirrorConfig.load(topo.resolve(volume.mirror_config))).status()
        except SitectlError as exc:
            return CheckResult(*where, Status.DOWN, one_line(exc), {})
        # The live direction, not the topology's first one: after a failover and a
        # reprotect the replica lives on the other site.
        return judge(status, SYSTEM, status.destination, target(volume.name), limit=limit)

    return run


def _netapp(topo: Topology, volume: NetappVolume, limit: float, timeout: float) -> CheckResult:
    standby = _standby(topo, volume)
    try:
        # The relationship into the standby's copy; after a failover not yet reprotected
        # there is none, and the one into the active site's copy (broken off) is read.
        status = netapp.volume_status(
            topo, volume, destination=standby, timeout=timeout, either_way=True
        )
    except SitectlError as exc:
        # Unreachable, refused, no relationship, unreadable credentials: nothing known.
        return CheckResult(SYSTEM, standby, target(volume.name), Status.DOWN, one_line(exc), {})
    return judge(status, SYSTEM, status.destination, target(volume.name), limit=limit)


def _standby(topo: Topology, volume: NetappVolume) -> str:
    """The copy that should be receiving: the site that does not serve."""
    others = [s for s in volume.sites if s != topo.active_site]
    if topo.active_site in volume.sites and len(others) == 1:
        return others[0]
    return volume.mirror.destination


def judge(
    status: MirrorStatus, system: str, site: str | None, name: str, *, limit: float
) -> CheckResult:
    """The result for one driver reading (pure)."""
    figures: dict[str, float] = {
        "state": STATE_CODES[status.state],
        "healthy": 1.0 if status.healthy else 0.0,
    }
    if status.lag_seconds is not None:
        figures["lag_seconds"] = round(status.lag_seconds, 3)
    if status.last_transfer_duration is not None:
        figures["last_transfer_seconds"] = round(status.last_transfer_duration, 3)
    problems = []
    if status.last_error:
        problems.append(f"the last transfer failed: {one_line(status.last_error)}")
    if status.state is MirrorState.QUIESCED:
        problems.append("transfers are quiesced")
    elif status.state is MirrorState.BROKEN:
        problems.append(
            f"broken off: {status.writable_site} is writable and nothing is "
            "mirrored until a reprotect"
        )
    if status.lag_seconds is None:
        problems.append("no snapshot has been transferred yet")
    elif status.lag_seconds > limit:
        problems.append(f"lags {status.lag_seconds:.0f} s, over the {limit:g} s RPO limit")
    elif not status.healthy and not problems:
        problems.append(f"the driver reports it unhealthy (lag {status.lag_seconds:.0f} s)")
    return CheckResult(
        system, site, name, Status.DEGRADED if problems else Status.OK, "; ".join(problems), figures
    )
