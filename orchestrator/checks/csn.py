"""OpenLDAP change sequence numbers and replication lag between masters (pure).

A CSN is `YYYYmmddHHMMSS.uuuuuuZ#count#sid#mod`: the writer's UTC time to the
microsecond, a counter within that microsecond, the writer's serverID (hex) and a
modification counter, all hex. `contextCSN` of the suffix holds one CSN per serverID
that has written: the newest change from that server this master holds. Comparing
each sid's CSN across masters gives, per master, how far behind it is for each writer.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

_CSN = re.compile(
    r"^(?P<stamp>\d{14})\.(?P<micro>\d{6})Z#(?P<count>[0-9a-fA-F]{6})"
    r"#(?P<sid>[0-9a-fA-F]{3})#(?P<mod>[0-9a-fA-F]{6})$"
)
# Clocks of two hosts differ a little even with NTP; beyond this a CSN from the future
# means a wrong clock, and a lag computed from it would be fiction.
FUTURE_TOLERANCE_S = 5.0


class CsnError(ValueError):
    """A value that is not a CSN; the message is one sentence naming the value."""


@dataclass(frozen=True, order=True)
class Csn:
    time: float  # UNIX seconds (UTC), microsecond precision
    count: int
    sid: int
    mod: int

    @property
    def when(self) -> str:
        return datetime.fromtimestamp(self.time, UTC).strftime("%Y-%m-%d %H:%M:%S")


def parse_csn(text: str) -> Csn:
    match = _CSN.match(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise CsnError(f"{str(text)[:60]!r} is not a CSN (YYYYmmddHHMMSS.uuuuuuZ#count#sid#mod)")
    try:
        stamp = datetime.strptime(match["stamp"], "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        raise CsnError(f"{text[:60]!r} carries an impossible date") from None
    return Csn(
        stamp.timestamp() + int(match["micro"]) / 1e6,
        int(match["count"], 16),
        int(match["sid"], 16),
        int(match["mod"], 16),
    )


@dataclass(frozen=True)
class ContextCsn:
    """One master's contextCSN: the newest change time per sid, and what was wrong."""

    newest: Mapping[int, float]
    problems: tuple[str, ...]


def read_context_csn(
    values: Iterable[str], now: float, tolerance: float = FUTURE_TOLERANCE_S
) -> ContextCsn:
    """Parse every value; garbage and future-dated CSNs become problems, not exceptions."""
    newest: dict[int, float] = {}
    problems: list[str] = []
    for value in values:
        try:
            csn = parse_csn(value)
        except CsnError as exc:
            problems.append(str(exc))
            continue
        if csn.time > now + tolerance:
            problems.append(
                f"the CSN of sid {csn.sid} is dated {csn.when} UTC, "
                f"{csn.time - now:.0f} s in the future (a wrong clock?)"
            )
            continue
        newest[csn.sid] = max(csn.time, newest.get(csn.sid, csn.time))
    return ContextCsn(newest, tuple(problems))


def lag_per_sid(views: Mapping[str, Mapping[int, float]]) -> dict[str, dict[int, float | None]]:
    """For each master and each sid any master holds: seconds behind the newest CSN of
    that sid seen anywhere (0.0 = up to date), or None when it holds nothing of that sid.
    """
    sids = {sid for view in views.values() for sid in view}
    newest = {sid: max(v[sid] for v in views.values() if sid in v) for sid in sids}
    return {
        master: {
            sid: (None if sid not in view else max(0.0, newest[sid] - view[sid]))
            for sid in sorted(sids)
        }
        for master, view in views.items()
    }
