"""Verification at the new site, by the drill itself and with real clients: every
canary present or counted lost, a new message delivered over SMTP and read over IMAP,
an LDAP write replicated to every reachable master, an S3 put readable.

The writes made here are the new site's first writes: the caller carries them into the
next leg as canaries, so a failback proves they came back too.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from orchestrator.config.model import Topology
from orchestrator.drill import canaries
from orchestrator.drill.model import Canary, Verification
from orchestrator.errors import SitectlError

# Bounds on waiting for asynchronous replication and delivery, not timing assertions:
# a canary still missing after this long is counted lost.
MAIL_WAIT_S = 20.0
LDAP_WAIT_S = 20.0
S3_WAIT_S = 30.0


def check_canaries(topo: Topology, site: str, drill_id: str, written: list[Canary]) -> str:
    """Mark each canary found or lost at `site`; return one sentence for the report."""
    endpoint = canaries.mail_endpoint(topo, site)
    prefix = canaries.subject(drill_id, "")
    mail = [c for c in written if c.kind in ("smtp", "probe") and c.found is None]
    wanted = {c.key for c in mail}

    def all_mail_here() -> bool:
        nonlocal present
        present = canaries.subjects_present(endpoint, prefix.rstrip())
        return wanted <= present

    present: set[str] = set()
    if wanted:
        _safe_poll(all_mail_here, MAIL_WAIT_S)
    for c in mail:
        c.found = c.key in present
    for c in (c for c in written if c.kind == "ldap" and c.found is None):
        c.found = canaries.poll(lambda c=c: _ldap_at_site(topo, site, c.key), LDAP_WAIT_S)
    for c in (c for c in written if c.kind == "s3" and c.found is None):
        c.found = canaries.poll(lambda c=c: canaries.object_present(topo, site, c.key), S3_WAIT_S)
    lost = [c for c in written if c.found is False]
    if not lost:
        return f"all {len(written)} writes made at the old site are present at {site}"
    return (
        f"{len(lost)} of {len(written)} writes lost at {site}: "
        + ", ".join(c.key for c in lost[:5])
        + (" …" if len(lost) > 5 else "")
    )


def _ldap_at_site(topo: Topology, site: str, token: str) -> bool:
    return any(canaries.ldap_shows(topo, m, token) for m in canaries.masters(topo, site))


def _safe_poll(condition: Callable[[], bool], within: float) -> bool:
    def guarded() -> bool:
        try:
            return condition()
        except SitectlError:
            return False  # IMAP not answering yet is "not yet", until the bound

    return canaries.poll(guarded, within)


def new_site_works(
    topo: Topology, site: str, drill_id: str, leg: str
) -> tuple[list[Verification], list[Canary]]:
    """The three end-to-end checks; also returns the writes they made (for the next leg)."""
    checks = [
        _mail(topo, site, drill_id, leg),
        _ldap(topo, site, drill_id, leg),
        _s3(topo, site, drill_id, leg),
    ]
    return [v for v, _ in checks], [c for _, c in checks if c is not None]


def _timed(
    name: str, site: str, body: Callable[[], tuple[bool, str, Canary | None]]
) -> tuple[Verification, Canary | None]:
    started = time.time()
    try:
        ok, detail, canary = body()
    except SitectlError as exc:
        ok, detail, canary = False, str(exc), None
    return Verification(name, site, ok, detail, started, time.time()), canary


def _mail(topo: Topology, site: str, drill_id: str, leg: str) -> tuple[Verification, Canary | None]:
    def body() -> tuple[bool, str, Canary | None]:
        endpoint = canaries.mail_endpoint(topo, site)
        title = canaries.subject(drill_id, f"{leg} delivery check at {site}")
        at = canaries.send(*endpoint.smtp, endpoint.recipient, title, tls=endpoint.smtp_tls)
        canary = Canary("smtp", title, site, at)
        if _safe_poll(lambda: title in canaries.subjects_present(endpoint, title), MAIL_WAIT_S):
            return (
                True,
                f"sent over SMTP {endpoint.smtp[0]}:{endpoint.smtp[1]}, read over "
                f"IMAP {endpoint.imap[0]}:{endpoint.imap[1]}",
                canary,
            )
        return (
            False,
            f"accepted over SMTP but not readable over IMAP within {MAIL_WAIT_S:g} s",
            canary,
        )

    return _timed("mail delivered over SMTP and read over IMAP", site, body)


def _ldap(topo: Topology, site: str, drill_id: str, leg: str) -> tuple[Verification, Canary | None]:
    def body() -> tuple[bool, str, Canary | None]:
        if topo.ldap is None:
            return True, "no LDAP in the topology", None
        token = f"{drill_id} {leg} written at {site} {uuid.uuid4().hex[:8]}"
        canary = canaries.write_ldap(topo, site, token)
        reachable = [m for m in canaries.masters(topo) if canaries.ldap_reachable(topo, m)]
        missing = [
            m.uri
            for m in reachable
            if not canaries.poll(lambda m=m: canaries.ldap_shows(topo, m, token), LDAP_WAIT_S)
        ]
        silent = len(canaries.masters(topo)) - len(reachable)
        note = f"; {silent} master(s) did not answer" if silent else ""
        if missing:
            return False, f"{canary.detail}; not replicated to {', '.join(missing)}{note}", canary
        return True, f"{canary.detail}; on all {len(reachable)} reachable masters{note}", canary

    return _timed("LDAP write replicated to every reachable master", site, body)


def _s3(topo: Topology, site: str, drill_id: str, leg: str) -> tuple[Verification, Canary | None]:
    def body() -> tuple[bool, str, Canary | None]:
        if topo.object_store is None:
            return True, "no object store in the topology", None
        key = f"{canaries.OBJECT_PREFIX}{drill_id}/{leg}-written-at-{site}"
        canary = canaries.put_object(topo, site, key)
        if canaries.object_present(topo, site, key):
            return True, f"put and read back {key} ({canary.detail})", canary
        return False, f"put {key} but could not read it back", canary

    return _timed("S3 object put and read back", site, body)


def replicated_back(topo: Topology, to_site: str, written: list[Canary]) -> Verification:
    """After a reprotect: the S3 objects written at the active site reached `to_site`."""
    started = time.time()
    objects = [c for c in written if c.kind == "s3"]
    missing = [
        c.key
        for c in objects
        if not canaries.poll(lambda c=c: canaries.object_present(topo, to_site, c.key), S3_WAIT_S)
    ]
    detail = (
        f"{len(objects)} object(s) written at the active site are in {to_site}"
        if not missing
        else f"{len(missing)} object(s) written at the active site not in {to_site} after "
        f"{S3_WAIT_S:g} s: {', '.join(missing)}"
    )
    return Verification(
        "S3 objects replicated back once reprotected",
        to_site,
        not missing,
        detail,
        started,
        time.time(),
    )
