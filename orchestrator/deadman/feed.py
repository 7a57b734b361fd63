"""The feed: one small datagram from the controller to a dead-man agent (pure).

`{"site", "holder", "seq", "fence_after", "fence"}` as JSON, then a tab and its HMAC-SHA256 under
a key both sides read from a 0600 file: the agent obeys no one else, since whoever can
feed it can keep a fenced site serving. `seq` (nanoseconds since the epoch at the
sender) only grows, so a datagram replayed later feeds nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import asdict, dataclass


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


def encode(feed: Feed, key: bytes) -> bytes:
    body = json.dumps(asdict(feed), sort_keys=True).encode()
    return body + b"\t" + hmac.new(key, body, hashlib.sha256).hexdigest().encode()


def decode(datagram: bytes, key: bytes) -> Feed:
    body, sep, mac = datagram.rpartition(b"\t")
    if not sep:
        raise BadFeed("no signature")
    expected = hmac.new(key, body, hashlib.sha256).hexdigest().encode()
    if not hmac.compare_digest(mac, expected):
        raise BadFeed("a bad signature")
    try:
        data = json.loads(body)
        feed = Feed(
            site=str(data["site"]),
            holder=bool(data["holder"]),
            seq=int(data["seq"]),
            fence_after=float(data["fence_after"]),
            fence=bool(data.get("fence", False)),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise BadFeed(f"a malformed body ({exc})") from None
    if feed.fence_after <= 0:
        raise BadFeed("fence_after must be positive")
    return feed
