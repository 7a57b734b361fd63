"""Exit codes scripts can rely on. Documented in README's CLI reference."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    OPERATION_FAILED = 1  # an operation failed; its state is kept for resume/abort
    BAD_INPUT = 2  # bad arguments or an invalid topology file; nothing was changed
    LOCKED = 3  # another operation or leader holds the lock
    GATE_REFUSED = 4  # a readiness gate refused the operation
    # `--plan FILE`: the plan that would run now is not the one in the file (re-plan and
    # review it); nothing was changed.
    PLAN_CHANGED = 5
    # The operator stopped following (Ctrl-C): the operation goes on in the leading
    # controller; `sitectl attach` follows it again.
    DETACHED = 6
