"""The application: each role's protocol probes on the hosts of both datacenters.

On the active site every probe must answer. On the standby, roles that move must be
stopped (a refused connection is the healthy answer there); roles that run on both
sites at all times (`moves: false`, e.g. LDAP) must answer everywhere. Where IMAP must
answer and the topology names a probe user, the probe logs in as that user: a mailbox
server that greets but refuses logins serves nobody. Probes speak TLS as the topology's
`tls` says, the certificate verified (`probe_tls`).

Two sites answering for a role that moves is a finding of its own (`summarize`): a split
brain, down, whatever each probe says on its own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from orchestrator.adapters.probes import Answer, Login, ProbeResult, Tls, probe
from orchestrator.adapters.secrets import SecretError, read_secret
from orchestrator.checks.result import SPLIT_BRAIN, Check, CheckResult, Status, one_line
from orchestrator.config.model import Host, Probe, Topology, fill

SYSTEM = "application"


def checks(topo: Topology, timeout: float) -> list[Check]:
    del timeout
    try:
        login, unusable = probe_login(topo), ""
    except SecretError as exc:
        login, unusable = None, one_line(exc)
    out = []
    for site in topo.datacenters():
        for name, role in topo.roles.items():
            for host in topo.hosts_of(site, name):
                for p in role.probes:
                    expect_up = site == topo.active_site or not role.moves
                    # Log in only where the service must run: on a standby that should
                    # be stopped, any answer at all is already the finding.
                    logs_in = expect_up and p.kind == "imap"
                    prober = _prober(
                        topo,
                        name,
                        host,
                        p,
                        expect_up,
                        login if logs_in else None,
                        unusable if logs_in else "",
                    )
                    out.append(Check(SYSTEM, site, target(name, host, p), prober))
    return out


def probe_login(topo: Topology) -> Login | None:
    """The probe user's IMAP login, None when the topology names none; SecretError when
    its password cannot be read."""
    user = topo.application.probe_user
    if user is None:
        return None
    return Login(user.user, read_secret(user.password, topo.base_dir).reveal())


def probe_tls(topo: Topology, p: Probe, host: str | None = None) -> Tls | None:
    """How probe `p` speaks TLS to `host` (a host's name in the topology; None: an
    address no host has, whose server_name cannot hold {host}); None: in clear."""
    if p.tls is None:
        return None
    name = p.server_name
    if name is not None and "{host}" in name:
        name = fill(name, host=host) if host is not None else None
    return Tls(p.tls, str(topo.resolve(p.ca_file)) if p.ca_file else None, name)


def target(role: str, host: Host, p: Probe) -> str:
    return f"{role} {p.kind}://{host.address}:{p.port}"


def _prober(
    topo: Topology,
    role: str,
    host: Host,
    p: Probe,
    expect_up: bool,
    login: Login | None,
    unusable: str,
) -> Callable[[float], CheckResult]:
    tls = probe_tls(topo, p, host.name)

    def run(timeout: float) -> CheckResult:
        answer = probe(p.kind, host.address, p.port, timeout, login=login, tls=tls)
        status, reason = judge(answer, expect_up)
        if status is Status.OK and unusable:
            status, reason = Status.DEGRADED, f"answers, but the login was not tried: {unusable}"
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
        if answer.answer is Answer.DENIED:
            return Status.DOWN, f"login refused ({answer.detail})"
        if answer.answer is Answer.WRONG:
            return Status.DEGRADED, f"answered, but not as {answer.kind} should ({answer.detail})"
        return Status.DOWN, f"not running ({answer.detail})"
    if answer.answer is Answer.REFUSED:
        return Status.OK, ""  # stopped, as a standby must be
    return Status.DEGRADED, (
        f"running on the standby site: both sites may be serving ({answer.describe()})"
    )


SPLIT_TARGET = "split-brain"


def summarize(topo: Topology, results: Sequence[CheckResult]) -> list[CheckResult]:
    """Adds one down finding when the roles that move answer on two sites (pure)."""
    moving = {name for name, role in topo.roles.items() if role.moves}
    serving: dict[str, list[str]] = {}
    for r in results:
        role = r.target.split(" ", 1)[0]
        if r.system == SYSTEM and r.site and role in moving and r.figures.get("up") == 1.0:
            serving.setdefault(r.site, []).append(r.target)
    if len(serving) < 2:
        return list(results)
    where = "; ".join(f"{site}: {', '.join(sorted(t))}" for site, t in sorted(serving.items()))
    finding = CheckResult(
        SYSTEM,
        None,
        SPLIT_TARGET,
        Status.DOWN,
        f"split brain: {len(serving)} sites serve the application ({where}); stop it where "
        f"{topo.active_site} is not, or fail over",
        {SPLIT_BRAIN: 1.0},
    )
    return [*results, finding]
