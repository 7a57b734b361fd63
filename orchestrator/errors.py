"""The few errors sitectl raises across module boundaries.

Adapters translate every library exception into one of these, so the engine and the
controller decide on three cases only: try again later, give up, or stop at once.
"""

from __future__ import annotations


class SitectlError(Exception):
    """Base of every error sitectl raises on purpose."""


class Unavailable(SitectlError):
    """A transient failure: the system did not answer or is busy; retrying may help."""


class Failed(SitectlError):
    """A permanent failure: the system answered and refused, or the result is wrong."""


class LeaseLost(SitectlError):
    """Leadership or the fencing epoch is gone: stop every side effect now."""


class ConfigError(SitectlError):
    """Bad input: the topology file (or an argument) cannot be used as given."""


class Locked(SitectlError):
    """Another operation or leader holds the lease; `holder` says who."""

    def __init__(self, holder: str) -> None:
        super().__init__(f"another operation holds the lock: {holder}")
        self.holder = holder


class Conflict(SitectlError):
    """A compare-and-set lost: someone else changed the record since we read it."""
