"""The application: each role's protocol probes on the hosts of both datacenters.

On the active site every probe must answer. On the standby, roles that move must be
stopped (a refused connection is the healthy answer there); roles that run on both
sites at all times (`moves: false`, e.g. LDAP) must answer everywhere.
"""

from __future__ import annotations

from collections.abc import Callable

from orchestrator.adapters.probes import Answer, ProbeResult, probe
from orchestrator.checks.result import Check, CheckResult, Status
from orchestrator.config.model import Host, Probe, Topology

SYSTEM = "application"


def checks(topo: Topology, timeout: float) -> list[Check]:
    del timeout
    out = []
    for site in topo.datacenters():
        for name, role in topo.roles.items():
            for host in topo.hosts_of(site, name):
                for p in role.probes:
                    expect_up = site == topo.active_site or not role.moves
                    out.append(
                        Check(
                            SYSTEM, site, target(name, host, p), _prober(name, host, p, expect_up)
                        )
                    )
    return out


def target(role: str, host: Host, p: Probe) -> str:
    return f"{role} {p.kind}://{host.address}:{p.port}"


def _prober(role: str, host: Host, p: Probe, expect_up: bool) -> Callable[[float], CheckResult]:
    def run(timeout: float) -> CheckResult:
        answer = probe(p.kind, host.address, p.port, timeout)
        status, reason = judge(answer, expect_up)
        return CheckResult(
            SYSTEM,
            host.site,
            target(role, host, p),
            status,
            reason,
            {"up": 1.0 if answer.up else 0.0, "seconds": round(answer.seconds, 3)},
        )

    return run


def judge(answer: ProbeResult, expect_up: bool) -> tuple[Status, str]:
    """Whether a probe's answer is healthy where it was taken (pure)."""
    if answer.answer is Answer.TIMEOUT:
        return Status.DOWN, f"accepts connections but did not answer ({answer.detail})"
    if expect_up:
        if answer.up:
            return Status.OK, ""
        if answer.answer is Answer.WRONG:
            return Status.DEGRADED, f"answered, but not as {answer.kind} should ({answer.detail})"
        return Status.DOWN, f"not running ({answer.detail})"
    if answer.answer is Answer.REFUSED:
        return Status.OK, ""  # stopped, as a standby must be
    return Status.DEGRADED, (
        f"running on the standby site: both sites may be serving ({answer.describe()})"
    )
