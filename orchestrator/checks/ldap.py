"""LDAP multi-master: every master reachable and bindable, and replication lag per sid.

Each master is read on its own (StartTLS + bind + the suffix's contextCSN), bounded by
`receive_timeout`, because a SIGSTOPped slapd accepts TCP and then never answers. The
comparison across masters (`summarize`) is pure and runs on the readings afterwards.
"""

from __future__ import annotations

import contextlib
import math
import ssl
import time
from collections.abc import Callable, Sequence

import ldap3
from ldap3.core import exceptions as ldap_exc

from orchestrator.adapters.secrets import read_secret
from orchestrator.checks import csn
from orchestrator.checks.result import Check, CheckResult, Status, one_line
from orchestrator.config.model import LdapMaster, Topology
from orchestrator.errors import SitectlError

SYSTEM = "ldap"
CSN_FIGURE = "csn_sid_"  # + sid: the newest change time of that writer this master holds
LAG_FIGURE = "sid_{}_lag_seconds"
CANARY_TARGET = "canary"  # the canary's result (ldap_canary), not a master's reading
EMPTY_DN = '"" (the empty DN)'  # how a message names an empty suffix
STARTTLS_RETRY_PAUSE_S = 0.1  # see open_with_starttls


def checks(topo: Topology, timeout: float, clock: Callable[[], float] = time.time) -> list[Check]:
    if topo.ldap is None:
        return []
    return [Check(SYSTEM, m.site, m.uri, _reader(topo, m, clock)) for m in topo.ldap.masters]


def _reader(
    topo: Topology, master: LdapMaster, clock: Callable[[], float]
) -> Callable[[float], CheckResult]:
    def run(timeout: float) -> CheckResult:
        return read_master(topo, master, timeout, clock)

    return run


def read_master(
    topo: Topology, master: LdapMaster, timeout: float, clock: Callable[[], float] = time.time
) -> CheckResult:
    started = time.monotonic()
    assert topo.ldap is not None

    def result(
        status: Status, reason: str = "", figures: dict[str, float] | None = None
    ) -> CheckResult:
        return CheckResult(SYSTEM, master.site, master.uri, status, reason, figures or {})

    try:
        conn = connect(topo, master, timeout)
    except Unusable as exc:
        return result(Status.DOWN, str(exc))
    try:
        values = _context_csn(conn, topo.ldap.suffix)
    except Unusable as exc:
        return result(Status.DOWN, str(exc))
    finally:
        close(conn)
    figures: dict[str, float] = {"seconds": round(time.monotonic() - started, 3)}
    if values is None:
        return result(
            Status.DEGRADED,
            f"the suffix {topo.ldap.suffix or EMPTY_DN} has no contextCSN "
            "(syncprov missing, or nothing written yet)",
            figures,
        )
    reading = csn.read_context_csn(values, clock())
    figures.update({f"{CSN_FIGURE}{sid}": t for sid, t in reading.newest.items()})
    if reading.problems:
        return result(Status.DEGRADED, "; ".join(reading.problems), figures)
    return result(Status.OK, "", figures)


class Unusable(Exception):
    """The master cannot be used; the message is the result's reason."""


def connect(topo: Topology, master: LdapMaster, timeout: float) -> ldap3.Connection:
    """A bound connection; every wait bounded by `timeout`. Raises Unusable with the reason."""
    section = topo.ldap
    assert section is not None
    ca_file = master.ca_file or section.ca_file
    starttls = section.starttls if master.starttls is None else master.starttls
    try:
        password = read_secret(master.password or section.password, topo.base_dir).reveal()
    except SitectlError as exc:
        raise Unusable(one_line(exc)) from None
    tls = None
    if starttls or master.uri.startswith("ldaps://"):
        # Always verify: without a Tls object ldap3's StartTLS accepts any certificate.
        # Without a ca_file, the system's trust store decides.
        tls = ldap3.Tls(
            ca_certs_file=str(topo.resolve(ca_file)) if ca_file else None,
            validate=ssl.CERT_REQUIRED,
        )
    # ldap3 packs receive_timeout into SO_RCVTIMEO with struct: it must be an int.
    wait = max(1, math.ceil(timeout))
    # get_info=NONE: the checks read contextCSN by name; fetching the server's schema and
    # root DSE on every bind was most of what remained of an idle controller's CPU.
    server = ldap3.Server(master.uri, tls=tls, connect_timeout=timeout, get_info=ldap3.NONE)

    def fresh() -> ldap3.Connection:
        return ldap3.Connection(
            server,
            user=master.bind_dn or section.bind_dn,
            password=password,
            receive_timeout=wait,
            raise_exceptions=False,
        )

    conn: ldap3.Connection | None = None
    try:
        if starttls and not master.uri.startswith("ldaps://"):
            conn = open_with_starttls(fresh)  # closes what it opened if it fails
        else:
            conn = fresh()
            conn.open()
        if not conn.bind():
            raise Unusable(f"bind as {conn.user} refused: {_result_text(conn)}")
    except Exception as exc:  # ldap3 raises a wide tree; every branch means "unusable"
        if conn is not None:
            close(conn)
        if isinstance(exc, Unusable):
            raise
        raise Unusable(describe_error(exc, timeout)) from None
    return conn


def describe_error(exc: BaseException, timeout: float) -> str:
    """One sentence for an ldap3 or socket error (pure, table-tested)."""
    text = one_line(exc)
    if isinstance(exc, ldap_exc.LDAPSocketOpenError):
        if "refused" in text.lower():
            return "connection refused (slapd not running)"
        if "timed out" in text.lower():
            return f"no TCP connection within {timeout:g} s"
        return f"cannot connect: {text}"
    if isinstance(
        exc, ldap_exc.LDAPSocketReceiveError | ldap_exc.LDAPResponseTimeoutError | TimeoutError
    ):
        return f"accepted the connection but did not answer within {timeout:g} s (hung?)"
    if isinstance(
        exc, ldap_exc.LDAPStartTLSError | ldap_exc.LDAPSSLConfigurationError | ssl.SSLError
    ):
        return f"StartTLS failed: {text}"
    if isinstance(exc, ldap_exc.LDAPSessionTerminatedByServerError | ConnectionResetError):
        return "the server closed the connection"
    return f"{type(exc).__name__}: {text}"


def _context_csn(conn: ldap3.Connection, suffix: str) -> list[str] | None:
    try:
        found = conn.search(
            suffix, "(objectClass=*)", search_scope=ldap3.BASE, attributes=["contextCSN"]
        )
    except Exception as exc:  # see connect(): any failure here means the read failed
        raise Unusable(describe_error(exc, conn.receive_timeout or 0)) from None
    if not found or not conn.entries:
        if conn.result and conn.result.get("description") not in (None, "success"):
            raise Unusable(f"reading the suffix failed: {_result_text(conn)}")
        return None
    values = conn.entries[0].entry_attributes_as_dict.get("contextCSN") or []
    return [str(v) for v in values] or None


def _result_text(conn: ldap3.Connection) -> str:
    result = conn.result or {}
    message = one_line(result.get("message", ""))
    return f"{result.get('description', 'no answer')}" + (f" ({message})" if message else "")


def open_with_starttls(fresh: Callable[[], ldap3.Connection]) -> ldap3.Connection:
    """A connection from `fresh()`, opened, with TLS started.

    slapd under load can refuse a brand-new connection's StartTLS with operationsError
    ("cannot start TLS when operations are outstanding"): it still counts the operations
    of a connection just closed on the same descriptor. That answer is asked once more,
    on a new connection, after a moment; any other refusal stands."""
    first = fresh()
    try:
        return _tls_started(first)
    except ldap_exc.LDAPStartTLSError:
        if (first.result or {}).get("description") != "operationsError":
            raise
    time.sleep(STARTTLS_RETRY_PAUSE_S)
    return _tls_started(fresh())


def _tls_started(conn: ldap3.Connection) -> ldap3.Connection:
    """`conn` opened with TLS started; else closed, whatever went wrong, and raised."""
    try:
        conn.open()
        if not conn.start_tls():
            raise ldap_exc.LDAPStartTLSError(f"StartTLS not started: {_result_text(conn)}")
    except BaseException:
        close(conn)  # no socket is left to the garbage collector
        raise
    return conn


def close(conn: ldap3.Connection) -> None:
    # Closing a dead connection must not turn a result into a crash.
    with contextlib.suppress(Exception):
        conn.unbind()


# --- across masters (pure) ----------------------------------------------------------


def views(results: Sequence[CheckResult]) -> dict[str, dict[int, float]]:
    """Each answering master's contextCSN (sid → time), from the readers' figures."""
    return {
        r.target: {
            int(k[len(CSN_FIGURE) :]): v for k, v in r.figures.items() if k.startswith(CSN_FIGURE)
        }
        for r in results
        if r.system == SYSTEM and r.status is not Status.DOWN and r.target != CANARY_TARGET
    }


def summarize(results: Sequence[CheckResult], limit: float) -> list[CheckResult]:
    """Add per-sid lag to every answering master; degraded beyond `limit` seconds."""
    lags = csn.lag_per_sid(views(results))
    out = []
    for r in results:
        mine = lags.get(r.target) if r.system == SYSTEM else None
        if mine is None:
            out.append(r)
            continue
        figures = dict(r.figures)
        known = [v for v in mine.values() if v is not None]
        figures.update({LAG_FIGURE.format(sid): v for sid, v in mine.items() if v is not None})
        figures["lag_seconds"] = max(known, default=0.0)
        problems = [r.reason] if r.reason else []
        missing = [sid for sid, v in mine.items() if v is None]
        if missing:
            problems.append(
                f"holds no change from sid {', '.join(map(str, missing))} that "
                "other masters hold (replication from it never arrived)"
            )
        behind = {sid: v for sid, v in mine.items() if v is not None and v > limit}
        if behind:
            problems.append(
                "behind "
                + ", ".join(f"sid {s} by {v:.1f} s" for s, v in behind.items())
                + f" (limit {limit:g} s)"
            )
        status = r.status if not problems or r.status is Status.DOWN else Status.DEGRADED
        out.append(CheckResult(r.system, r.site, r.target, status, "; ".join(problems), figures))
    return out
