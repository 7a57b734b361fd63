"""What a DNS server's answer (or silence) means for sitectl: the error mapping.

- silence, refused connections, resets, SERVFAIL → `Unavailable` (retry, or the next server)
- REFUSED, NOTAUTH, NOTZONE, FORMERR, NOTIMP, TSIG errors → `Failed` (fix config/keys)
- a failed prerequisite on the fence record (NXRRSET, YXRRSET) → `LeaseLost`

Every message is one line naming the server and the zone; no traceback is needed to
understand it.
"""

from __future__ import annotations

import dns.exception
import dns.message
import dns.rcode
import dns.tsig

from orchestrator.errors import Failed, LeaseLost, SitectlError, Unavailable

# What each refusal most likely means, so the operator knows what to fix.
_RCODE_HINTS: dict[int, str] = {
    dns.rcode.REFUSED: "the server refused it — is the TSIG key granted in the zone's "
    "update-policy, and is this the primary?",
    dns.rcode.NOTAUTH: "the server is not authoritative for the zone, or rejected the key "
    "— check update_servers and the zone name",
    dns.rcode.NOTZONE: "a record is outside the zone",
    dns.rcode.FORMERR: "the server could not parse the message",
    dns.rcode.NOTIMP: "the server does not implement dynamic updates",
    dns.rcode.YXDOMAIN: "a name that must not exist exists",
    dns.rcode.NXDOMAIN: "a name that must exist does not",
}
_TSIG_HINTS: dict[type[Exception], str] = {
    dns.tsig.PeerBadKey: "BADKEY: the server does not know this TSIG key (wrong key name, "
    "or the server is a secondary that does not hold it)",
    dns.tsig.PeerBadSignature: "BADSIG: the TSIG secret does not match the server's",
    dns.tsig.PeerBadTime: "BADTIME: the clocks of this host and the server differ too much",
    dns.tsig.PeerBadTruncation: "BADTRUNC: the server refused the truncated MAC",
    dns.tsig.BadSignature: "the server's answer carries a TSIG signature that does not "
    "verify with our key",
    dns.tsig.BadKey: "the server signed its answer with a key we did not use",
    dns.tsig.BadAlgorithm: "the TSIG algorithm is not supported",
    dns.tsig.BadTime: "the server's signature time is outside the fudge window",
}
# Our own TSIG parameter errors (dnspython's PeerError subclasses) are permanent.
_PERMANENT = (
    dns.tsig.PeerError,
    dns.tsig.BadSignature,
    dns.tsig.BadKey,
    dns.tsig.BadAlgorithm,
    dns.tsig.BadTime,
)


class UpdateRefused(Failed):
    """The server answered REFUSED: a secondary's answer to an update, so a server that is
    not the zone's primary says this; for the primary it means the key is not granted."""


def where(action: str, server: object, zone: str) -> str:
    return f"{action} of zone {zone} at {server}"


def from_exception(exc: BaseException, action: str, server: object, zone: str) -> SitectlError:
    """Our error for an exception raised while talking to `server`."""
    place = where(action, server, zone)
    if isinstance(exc, _PERMANENT):
        hint = next((h for t, h in _TSIG_HINTS.items() if isinstance(exc, t)), str(exc))
        return Failed(f"{place} failed: {hint}")
    if isinstance(exc, dns.exception.Timeout):
        return Unavailable(f"{place}: no answer within the timeout")
    if isinstance(exc, ConnectionRefusedError):
        return Unavailable(f"{place}: connection refused (nothing listening)")
    if isinstance(exc, ConnectionResetError | EOFError | BrokenPipeError):
        return Unavailable(f"{place}: the server closed the connection")
    if isinstance(exc, TimeoutError):
        return Unavailable(f"{place}: no answer within the timeout")
    if isinstance(exc, OSError):
        return Unavailable(f"{place}: network error ({exc.strerror or exc})")
    if isinstance(exc, dns.message.BadTSIG | dns.exception.FormError):
        return Failed(f"{place}: the answer is malformed ({exc})")
    if isinstance(exc, dns.exception.DNSException):
        return Failed(f"{place} failed: {exc}")
    return Failed(f"{place} failed: {type(exc).__name__}: {exc}")


def from_rcode(
    rcode: int,
    action: str,
    server: object,
    zone: str,
    *,
    fenced: bool = False,
    fence_detail: str = "",
) -> SitectlError | None:
    """None for NOERROR; otherwise the error this response code stands for."""
    if rcode == dns.rcode.NOERROR:
        return None
    place = where(action, server, zone)
    text = dns.rcode.to_text(rcode)
    if rcode in (dns.rcode.NXRRSET, dns.rcode.YXRRSET) and fenced:
        return LeaseLost(
            f"{place} refused by the server's fence check ({text}): "
            f"{fence_detail or 'another leader holds a newer epoch'} — "
            "stopping"
        )
    if rcode == dns.rcode.SERVFAIL:
        return Unavailable(f"{place}: SERVFAIL (the server could not process it now)")
    hint = _RCODE_HINTS.get(rcode, "")
    kind = UpdateRefused if rcode == dns.rcode.REFUSED else Failed
    return kind(f"{place} failed: {text}" + (f" — {hint}" if hint else ""))
