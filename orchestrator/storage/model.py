"""What every mirror driver reports and accepts: the state names, the status, the interface.

A *mirror relationship* copies one volume from the active site (source) to the standby
site (destination), as NetApp SnapMirror or SAN replication does. The orchestrator only
ever talks to this interface; the lab implements it with btrfs (`btrfs_mirror`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, runtime_checkable


class MirrorState(StrEnum):
    MIRRORED = "mirrored"  # scheduled transfers run source → destination
    QUIESCED = "quiesced"  # transfers paused; destination still read-only
    BROKEN = "broken"  # destination made writable; no transfers until reverse()


@dataclass(frozen=True)
class MirrorStatus:
    """One reading of a relationship. Times are UNIX seconds; None = never happened."""

    name: str
    source: str  # site whose volume is copied (the writable side unless broken)
    destination: str
    state: MirrorState
    last_snapshot: str | None  # newest snapshot present on both sides
    last_transfer_at: float | None  # when the last transfer finished
    last_transfer_duration: float | None  # seconds
    lag_seconds: float | None  # age of the newest snapshot the destination holds
    healthy: bool
    last_error: str | None

    @property
    def writable_site(self) -> str:
        """The one site whose volume may be mounted read-write."""
        return self.destination if self.state is MirrorState.BROKEN else self.source


@runtime_checkable
class MirrorDriver(Protocol):
    """A mirror relationship. Every method is idempotent; errors are `orchestrator.errors`.

    `Unavailable` means try again (busy, timed out, lock held); `Failed` means the request
    cannot succeed as things stand (wrong state, missing volume, tool refused).
    """

    def status(self) -> MirrorStatus: ...

    def update(self) -> MirrorStatus:
        """Transfer now (the final sync of a switchover); allowed mirrored or quiesced."""

    def quiesce(self) -> MirrorStatus: ...

    def resume(self) -> MirrorStatus: ...

    def break_(self) -> MirrorStatus:
        """Make the destination writable from the last transferred snapshot."""

    def reverse(self, new_source: str | None = None) -> MirrorStatus:
        """Reprotect: mirror the (broken-off) destination back to the old source."""

    def mount(self, site: str) -> None: ...

    def unmount(self, site: str) -> None: ...
