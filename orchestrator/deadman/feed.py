"""The feed: one small datagram from the controller to a dead-man agent (pure).

`{"site", "holder", "seq", "fence_after", "fence", "override"}` as JSON, then a tab and
its HMAC-SHA256 under a key both sides read from a 0600 file: the agent obeys no one
else, since whoever can feed it can keep a fenced site serving. `seq` (nanoseconds since
the epoch at the sender) only grows, so a datagram replayed later feeds nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import asdict, dataclass
from typing import Any


class BadFeed(ValueError):
    """A datagram that is not a feed from someone who holds the key."""


@dataclass(frozen=True)
class Feed:
    site: str
    holder: bool  # the site holds the right to serve: the agent is armed
    seq: int  # grows with every feed
    fence_after: float  # seconds without a feed before the agent fences
    # The site lost the ticket to a failover (it was not released): fence it now, even
    # if this agent was never armed (it restarted, or the site comes back).
    fence: bool = False
    # The operator's reason for letting the site serve without the cluster's ticket (the
    # lone survivor's `sitectl ticket grant SITE --force REASON --no-quorum`).
    override: str | None = None


@dataclass(frozen=True)
class Ack:
    """The agent's signed answer to an override: it took feed `seq`."""

    site: str
    seq: int


def encode_ack(ack: Ack, key: bytes) -> bytes:
    return _sign(json.dumps({"ack": ack.seq, "site": ack.site}, sort_keys=True).encode(), key)


def decode_ack(datagram: bytes, key: bytes) -> Ack:
    data = _verified(datagram, key)
    try:
        return Ack(site=str(data["site"]), seq=int(data["ack"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise BadFeed(f"a malformed acknowledgement ({exc})") from None


def _sign(body: bytes, key: bytes) -> bytes:
    return body + b"\t" + hmac.new(key, body, hashlib.sha256).hexdigest().encode()


def _verified(datagram: bytes, key: bytes) -> dict[str, Any]:
    body, sep, mac = datagram.rpartition(b"\t")
    if not sep:
        raise BadFeed("no signature")
    expected = hmac.new(key, body, hashlib.sha256).hexdigest().encode()
    if not hmac.compare_digest(mac, expected):
        raise BadFeed("a bad signature")
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise BadFeed(f"a malformed body ({exc})") from None
    if not isinstance(data, dict):
        raise BadFeed("a malformed body (not an object)")
    return data


def encode(feed: Feed, key: bytes) -> bytes:
    return _sign(json.dumps(asdict(feed), sort_keys=True).encode(), key)


def decode(datagram: bytes, key: bytes) -> Feed:
    data = _verified(datagram, key)
    try:
        override = data.get("override")
        feed = Feed(
            site=str(data["site"]),
            holder=bool(data["holder"]),
            seq=int(data["seq"]),
            fence_after=float(data["fence_after"]),
            fence=bool(data.get("fence", False)),
            override=None if override is None else str(override),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise BadFeed(f"a malformed body ({exc})") from None
    if feed.fence_after <= 0:
        raise BadFeed("fence_after must be positive")
    return feed
