"""What an operation's end means to the operator's shell: the exit code and the one line
printed, for an outcome and for each error that stops an operation before or while it
runs. One table, used by `sitectl` running an operation itself (`--local`) and by the
controller answering an operator's request, so both say the same thing (pure)."""

from __future__ import annotations

from orchestrator.engine.session import OperationPending
from orchestrator.errors import ConfigError, LeaseLost, Locked, SitectlError, Unavailable
from orchestrator.exitcodes import ExitCode
from orchestrator.plan import PlanRefused
from orchestrator.records import OperationRecord, OpStatus


class PlanChanged(SitectlError):
    """The plan that would run now is not the one the operator confirmed or saved."""


def failure(exc: SitectlError) -> tuple[ExitCode, str]:
    """The exit code and line for an error that ended an operation (or its start)."""
    if isinstance(exc, PlanChanged):
        return ExitCode.PLAN_CHANGED, f"refused: {exc}"
    if isinstance(exc, PlanRefused):
        return (ExitCode.GATE_REFUSED if exc.gate else ExitCode.BAD_INPUT), f"refused: {exc}"
    if isinstance(exc, Locked | OperationPending):
        return ExitCode.LOCKED, f"busy: {exc}"
    if isinstance(exc, ConfigError):
        return ExitCode.BAD_INPUT, f"refused: {exc}"
    if isinstance(exc, LeaseLost):
        return (
            ExitCode.OPERATION_FAILED,
            f"stopped: {exc}. The operation stays recorded in ZooKeeper; the next leader or "
            "`sitectl resume` continues it.",
        )
    if isinstance(exc, Unavailable):
        return ExitCode.OPERATION_FAILED, f"unavailable: {exc}"
    return ExitCode.OPERATION_FAILED, f"failed: {exc}"


def outcome_exit(op: OperationRecord) -> ExitCode:
    """Succeeded: 0; refused by the readiness gate or a pre-flight check, nothing
    changed: 4; anything else (failed, aborted, interrupted): 1."""
    if op.status is OpStatus.SUCCEEDED:
        return ExitCode.OK
    if op.status is OpStatus.REFUSED:
        return ExitCode.GATE_REFUSED
    return ExitCode.OPERATION_FAILED


def closing_line(op: OperationRecord) -> str:
    """The operation's last line: its status, how long it took and its message."""
    total = f" in {op.finished - op.started:.1f} s" if op.finished else ""
    return f"{op.status.value}{total}: {op.message}"
