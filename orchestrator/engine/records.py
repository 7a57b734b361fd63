"""The engine's records, re-exported: the schema lives in the leaf module
orchestrator.records, which coordination/ writes without importing the engine."""

from orchestrator.records import (
    FINISHED_OP,
    FINISHED_STEP,
    ApprovalRequest,
    Decision,
    IllegalTransition,
    Mode,
    OperationRecord,
    OpStatus,
    StepRecord,
    StepStatus,
    Verdict,
    check_transition,
)

__all__ = [
    "FINISHED_OP",
    "FINISHED_STEP",
    "ApprovalRequest",
    "Decision",
    "IllegalTransition",
    "Mode",
    "OpStatus",
    "OperationRecord",
    "StepRecord",
    "StepStatus",
    "Verdict",
    "check_transition",
]
