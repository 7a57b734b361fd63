"""Bounded, jittered retries of transient DNS failures (tenacity), sleep injected."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from orchestrator.errors import Unavailable

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """Only `Unavailable` is retried: Failed and LeaseLost must surface at once."""

    attempts: int = 3
    initial: float = 0.2  # seconds before the second attempt
    max_wait: float = 2.0
    jitter: float = 0.2
    sleep: Callable[[float], None] = time.sleep

    def call(self, what: str, fn: Callable[[], T]) -> T:
        retrying = Retrying(
            stop=stop_after_attempt(self.attempts),
            # exponential + random rather than wait_exponential_jitter, whose arguments
            # changed between tenacity 8 and 9 (pyproject allows both).
            wait=wait_exponential(multiplier=self.initial, max=self.max_wait)
            + wait_random(0, self.jitter),
            retry=retry_if_exception_type(Unavailable),
            sleep=self.sleep,
            before_sleep=_log_reason(what),
            reraise=True,
        )
        return retrying(fn)


NO_RETRY = RetryPolicy(attempts=1)


def _log_reason(what: str) -> Callable[[RetryCallState], None]:
    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning(
            "%s: attempt %d failed (%s); retrying in %.2fs", what, state.attempt_number, exc, wait
        )

    return before_sleep
