"""What the leading controller does with an operator's request (pure).

Rules, in order:
1. a request sitectl cannot read is refused (bad input);
2. a request older than the desk's limit is refused: the operator's sitectl stopped
   waiting for an answer long ago, and an operation nobody follows must not start late;
3. while an operation runs under a live holder of the lease, the request is refused as
   busy (exit 3), naming the holder, the operation and who asked for it and why;
4. otherwise the controller takes it and runs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from orchestrator.asking.model import OperationRequest
from orchestrator.exitcodes import ExitCode


class Take(StrEnum):
    RUN = "run"
    REFUSE = "refuse"


@dataclass(frozen=True)
class Holding:
    """Who holds the operation lease now, and what they run (when it is recorded)."""

    holder: str
    operation: str | None = None  # "20261207T050000Z-ab12 (switchover dc1→dc2)"
    by: str | None = None  # who asked for it
    reason: str | None = None


@dataclass(frozen=True)
class Triage:
    take: Take
    sentence: str  # logged by the controller
    exit_code: ExitCode | None = None  # REFUSE: what the operator's sitectl exits with
    line: str = ""  # REFUSE: what it prints


def triage(
    request: OperationRequest | None,
    name: str,
    age: float,
    holding: Holding | None,
    max_age: float,
) -> Triage:
    if request is None:
        return Triage(
            Take.REFUSE,
            f"refused request {name}: it is not a request sitectl can read",
            ExitCode.BAD_INPUT,
            f"refused: request {name} is not one this controller can read — is the "
            "sitectl that wrote it another version?",
        )
    what = request.describe()
    if age > max_age:
        return Triage(
            Take.REFUSE,
            f"refused request {name} ({what}): it waited {age:.0f} s for an answer, more "
            f"than {max_age:g} s",
            ExitCode.OPERATION_FAILED,
            f"refused: request {name} waited {age:.0f} s for a controller, more than "
            f"{max_age:g} s; nothing was started — ask again",
        )
    if holding is not None:
        running = holding.operation or "an operation"
        asked = f", asked by {holding.by}" if holding.by else ""
        why = f" ({holding.reason})" if holding.reason else ""
        return Triage(
            Take.REFUSE,
            f"refused request {name} ({what}): {running} runs under {holding.holder}",
            ExitCode.LOCKED,
            f"busy: {running} runs under {holding.holder}{asked}{why}; nothing was "
            "started — `sitectl attach` follows it",
        )
    return Triage(Take.RUN, f"took request {name}: {what}")
