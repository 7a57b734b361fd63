"""Canary writes and the reads that find them again: mail over SMTP (found over IMAP),
a value added to an LDAP entry, an S3 object.

Each write returns a `Canary` stamped with the moment the server accepted it, so the
drill can count, at the new site, exactly which writes survived the move. Reads never
raise for "not there": absent is an answer. Servers that do not answer raise
`Unavailable` (writes) or count as absent (reads), bounded by `timeout`.
"""

from __future__ import annotations

import contextlib
import imaplib
import re
import smtplib
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage

import ldap3

from orchestrator.adapters.probes import Tls, TlsUnusable, imap_session, smtp_session
from orchestrator.adapters.secrets import read_secret
from orchestrator.checks import ldap as ldap_check
from orchestrator.checks import object_store
from orchestrator.checks.application import probe_tls
from orchestrator.config.model import Host, LdapMaster, Probe, Topology
from orchestrator.drill.model import Canary
from orchestrator.errors import Failed, Unavailable

TIMEOUT_S = 5.0
SUBJECT_PREFIX = "sitectl-drill"
OBJECT_PREFIX = "_sitectl/drill/"


def subject(drill_id: str, label: str) -> str:
    return f"{SUBJECT_PREFIX} {drill_id} {label}"


# --- mail -------------------------------------------------------------------------


@dataclass(frozen=True)
class MailEndpoint:
    """Where a site's application takes and serves mail, from the topology's probes, and
    how each speaks TLS (as the probe does)."""

    site: str
    smtp: tuple[str, int]
    imap: tuple[str, int]
    user: str
    password: str
    recipient: str
    smtp_tls: Tls | None = None
    imap_tls: Tls | None = None


def mail_endpoint(topo: Topology, site: str) -> MailEndpoint:
    user = topo.application.probe_user
    if user is None:
        raise Failed("the topology names no application.probe_user: a drill needs a mailbox")
    smtp_host, smtp = _probe_of(topo, site, "smtp")
    imap_host, imap = _probe_of(topo, site, "imap")
    return MailEndpoint(
        site,
        (smtp_host.address, smtp.port),
        (imap_host.address, imap.port),
        user.user,
        read_secret(user.password, topo.base_dir).reveal(),
        user.address or user.user,
        probe_tls(topo, smtp, smtp_host.name),
        probe_tls(topo, imap, imap_host.name),
    )


def smtp_port(topo: Topology) -> int:
    return smtp_probe(topo).port


def smtp_probe(topo: Topology) -> Probe:
    """The topology's first SMTP probe: what the write probe sends with."""
    return next(p for r in topo.roles.values() for p in r.probes if p.kind == "smtp")


def smtp_tls_at(topo: Topology, address: str) -> Tls | None:
    """How the write probe speaks TLS to `address` (where DNS sent it): as the first SMTP
    probe does, for the host at that address if the topology has one."""
    host = next((h.name for h in topo.hosts if h.address == address), None)
    return probe_tls(topo, smtp_probe(topo), host)


def _probe_of(topo: Topology, site: str, kind: str) -> tuple[Host, Probe]:
    for name, role in topo.roles.items():
        for probe in role.probes:
            hosts = topo.hosts_of(site, name)
            if probe.kind == kind and hosts:
                return hosts[0], probe
    raise Failed(f"no host of {site} has a role with an {kind} probe: add one to the topology")


def send(
    address: str,
    port: int,
    recipient: str,
    title: str,
    timeout: float = TIMEOUT_S,
    tls: Tls | None = None,
) -> float:
    """Send one message; return when the server accepted it. Unavailable if it did not
    (a certificate that does not verify included: no message goes to an impostor)."""
    message = EmailMessage()
    message["From"] = f"sitectl@{recipient.partition('@')[2] or 'localhost'}"
    message["To"] = recipient
    message["Subject"] = title
    message.set_content("Written by a sitectl DR drill to prove that writes survive a move.\n")
    try:
        with smtp_session(address, port, timeout, tls) as smtp:
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException, TlsUnusable) as exc:
        raise Unavailable(f"SMTP {address}:{port}: {exc.__class__.__name__}: {exc}") from None
    return time.time()


def write_series(
    endpoint: MailEndpoint, drill_id: str, leg: str, count: int, spacing: float
) -> list[Canary]:
    """`count` numbered messages; one the server refuses is recorded, not raised."""
    out = []
    for number in range(1, count + 1):
        title = subject(drill_id, f"{leg} canary {number:03d}/{count:03d}")
        try:
            at = send(*endpoint.smtp, endpoint.recipient, title, tls=endpoint.smtp_tls)
            out.append(Canary("smtp", title, endpoint.site, at))
        except Unavailable as exc:
            out.append(Canary("smtp", title, endpoint.site, time.time(), False, str(exc)))
        time.sleep(spacing)
    return out


def subjects_present(endpoint: MailEndpoint, prefix: str, timeout: float = TIMEOUT_S) -> set[str]:
    """Subjects in INBOX that start with `prefix`; Unavailable if IMAP does not answer."""
    address, port = endpoint.imap
    try:
        imap = imap_session(address, port, timeout, endpoint.imap_tls)
    except (OSError, imaplib.IMAP4.error, TlsUnusable) as exc:
        raise Unavailable(f"IMAP {address}:{port}: {exc}") from None
    try:
        imap.login(endpoint.user, endpoint.password)
        imap.select("INBOX", readonly=True)
        code, data = imap.search(None, "SUBJECT", f'"{prefix}"')
        if code != "OK" or not data or not data[0]:
            return set()
        ids = b",".join(data[0].split())
        code, rows = imap.fetch(ids.decode(), "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        return {s for s in (_subject_of(row) for row in rows) if s.startswith(prefix)}
    except (imaplib.IMAP4.error, OSError) as exc:
        raise Unavailable(f"IMAP {address}:{port}: {exc}") from None
    finally:
        with contextlib.suppress(imaplib.IMAP4.error, OSError):
            imap.logout()


def _subject_of(row: object) -> str:
    if not isinstance(row, tuple) or len(row) < 2 or not isinstance(row[1], bytes):
        return ""
    text = row[1].decode("utf-8", "replace")
    # Long subjects are folded onto continuation lines: unfold before matching.
    match = re.search(r"^Subject:\s*(.*?)\s*$", re.sub(r"\r?\n[ \t]+", " ", text), re.M | re.I)
    return match.group(1) if match else ""


# --- LDAP -------------------------------------------------------------------------


def entry_dn(topo: Topology) -> str:
    assert topo.ldap is not None
    # Not the checks' canary entry: its value is replaced on every run, ours accumulate
    # one value per write so a later write cannot hide an earlier one.
    return topo.ldap.child_dn("cn=sitectl-drill")


def masters(topo: Topology, site: str | None = None) -> list[LdapMaster]:
    assert topo.ldap is not None
    return [m for m in topo.ldap.masters if site is None or m.site == site]


def write_ldap(topo: Topology, site: str, token: str, timeout: float = TIMEOUT_S) -> Canary:
    """Add `token` to the drill entry on the first master of `site` that takes it."""
    problems = []
    for master in masters(topo, site):
        try:
            conn = ldap_check.connect(topo, master, timeout)
        except ldap_check.Unusable as exc:
            problems.append(f"{master.uri}: {exc}")
            continue
        try:
            if _add_value(conn, entry_dn(topo), token):
                return Canary("ldap", token, site, time.time(), detail=f"written at {master.uri}")
            problems.append(f"{master.uri}: refused: {conn.result.get('description')}")
        finally:
            ldap_check.close(conn)
    raise Unavailable("no LDAP master of " + site + " took the write: " + "; ".join(problems))


def _add_value(conn: ldap3.Connection, dn: str, token: str) -> bool:
    if conn.modify(dn, {"description": [(ldap3.MODIFY_ADD, [token])]}):
        return True
    if conn.result.get("description") != "noSuchObject":
        return False
    return bool(conn.add(dn, ["applicationProcess"], {"cn": "sitectl-drill", "description": token}))


def ldap_shows(topo: Topology, master: LdapMaster, token: str, timeout: float = TIMEOUT_S) -> bool:
    """True if `master` holds `token`; False if not, or if it does not answer."""
    try:
        conn = ldap_check.connect(topo, master, timeout)
    except ldap_check.Unusable:
        return False
    try:
        found = conn.search(
            entry_dn(topo), "(objectClass=*)", search_scope=ldap3.BASE, attributes=["description"]
        )
        if not found or not conn.entries:
            return False
        return token in conn.entries[0].entry_attributes_as_dict.get("description", [])
    except Exception:  # ldap3's tree is wide: a read that fails shows nothing
        return False
    finally:
        ldap_check.close(conn)


def ldap_reachable(topo: Topology, master: LdapMaster, timeout: float = TIMEOUT_S) -> bool:
    try:
        ldap_check.close(ldap_check.connect(topo, master, timeout))
    except ldap_check.Unusable:
        return False
    return True


def remove_ldap_values(topo: Topology, site: str, tokens: list[str]) -> None:
    """Tidy up the drill's values (best effort: replication carries the delete)."""
    for master in masters(topo, site):
        with contextlib.suppress(ldap_check.Unusable):
            conn = ldap_check.connect(topo, master, TIMEOUT_S)
            try:
                for token in tokens:
                    conn.modify(entry_dn(topo), {"description": [(ldap3.MODIFY_DELETE, [token])]})
                return
            finally:
                ldap_check.close(conn)


# --- S3 ---------------------------------------------------------------------------


def _s3(topo: Topology, site: str) -> tuple[object, str]:
    store = topo.object_store
    assert store is not None
    endpoint = next((e for e in store.endpoints if e.site == site), None)
    if endpoint is None:
        raise Failed(f"the object store has no endpoint in {site}")
    bucket = next((b.name for b in store.buckets if b.replicated), store.buckets[0].name)
    return object_store.client(topo, endpoint, TIMEOUT_S), bucket


def put_object(topo: Topology, site: str, key: str) -> Canary:
    s3, bucket = _s3(topo, site)
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())  # type: ignore[attr-defined]
    except Exception as exc:  # boto3's tree is wide; describe_error names it
        raise Unavailable(
            f"S3 put at {site}: {object_store.describe_error(exc, TIMEOUT_S)[1]}"
        ) from None
    return Canary("s3", key, site, time.time(), detail=f"bucket {bucket}")


def object_present(topo: Topology, site: str, key: str) -> bool:
    try:
        s3, bucket = _s3(topo, site)
        s3.head_object(Bucket=bucket, Key=key)  # type: ignore[attr-defined]
    except Exception:  # 404, or the store does not answer: it does not hold it for us
        return False
    return True


def poll(condition: Callable[[], bool], within: float, interval: float = 0.2) -> bool:
    """Ask until true or `within` seconds passed: a bound on waiting for replication."""
    deadline = time.monotonic() + within
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
