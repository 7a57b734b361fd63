"""`sitectl approve|reject|skip|escalate`: a person's control of a running operation
(thin wrappers over engine.control)."""

from __future__ import annotations

import contextlib
from typing import Annotated

import typer

from orchestrator.cli.exitcodes import ExitCode
from orchestrator.cli.operations import ask, engine_errors, finish, live, topology
from orchestrator.cli.options import (
    AcceptDataLossOption,
    ConfigOption,
    JsonOption,
    YesOption,
    free_text,
)
from orchestrator.cli.output import console, emit_json
from orchestrator.engine import control
from orchestrator.engine import operation as engine
from orchestrator.engine.faults import Faults
from orchestrator.engine.records import StepStatus, Verdict

OperationArg = Annotated[
    str | None, typer.Argument(help="Operation id (default: the current one).")
]
StepOption = Annotated[
    str | None,
    typer.Option("--step", help="The approval step, when the operation waits at several."),
]
RequiredReason = Annotated[
    str,
    typer.Option(
        "--reason", "-r", help="Why: recorded in the audit log (required).", callback=free_text
    ),
]


def _answer(
    verdict: Verdict,
    operation: str | None,
    step: str | None,
    reason: str,
    config: ConfigOption,
    json_output: bool,
) -> None:
    topo = topology(config)
    with engine_errors(), engine.session(topo) as s:
        # A refusal (nothing waits, not an approver) is a ConfigError: exit 2, one line.
        answered = control.answer(s, operation, step, verdict, reason)
    if json_output:
        d = answered.decision
        emit_json(
            {
                "operation": answered.op_id,
                "step": answered.step_id,
                "verdict": d.verdict.value,
                "by": d.by,
                "reason": d.reason,
                "at": d.at,
                "ours": answered.ours,
            }
        )
    else:
        console.print(answered.sentence(), markup=False)
    if not answered.ours:
        raise typer.Exit(int(ExitCode.LOCKED))


def register(app: typer.Typer) -> None:
    @app.command()
    def approve(
        operation: OperationArg = None,
        step: StepOption = None,
        reason: RequiredReason = ...,  # type: ignore[assignment]
        config: ConfigOption = None,
        json_output: JsonOption = False,
    ) -> None:
        """Let an operation waiting at an approval step go on.

        Recorded with who (user@host), when and why; the first answer stands (exit 3 if
        someone answered first). Refused (exit 2) when nothing waits, or when the step
        names its approvers and you are not one.

        [b]Example:[/b] sitectl approve 20261206T220000Z-ab12 -r "DBA checked the replicas"
        """
        _answer(Verdict.APPROVE, operation, step, reason, config, json_output)

    @app.command()
    def reject(
        operation: OperationArg = None,
        step: StepOption = None,
        reason: RequiredReason = ...,  # type: ignore[assignment]
        config: ConfigOption = None,
        json_output: JsonOption = False,
    ) -> None:
        """Stop an operation waiting at an approval step.

        The step fails; an approval before any change leaves the service where it was,
        the operation refused (nothing changed). Recorded like approve; `sitectl resume`
        asks again.

        [b]Example:[/b] sitectl reject 20261206T220000Z-ab12 -r "change freeze until 18:00"
        """
        _answer(Verdict.REJECT, operation, step, reason, config, json_output)

    @app.command()
    def skip(
        operation: Annotated[str, typer.Argument(help="Operation id.")],
        step: Annotated[str, typer.Argument(help="The step to skip, as `status` names it.")],
        reason: RequiredReason = ...,  # type: ignore[assignment]
        config: ConfigOption = None,
        yes: YesOption = False,
        json_output: JsonOption = False,
    ) -> None:
        """Mark a failed or waiting step skipped and let the operation go on.

        A failed step is checkpointed skipped (with its error and your reason) and the
        operation resumes here, as `resume` does. A step waiting for approval is passed
        over and the running operation goes on. The ticket steps and the readiness gate
        are never skipped (their overrides are the failover's --no-fence-wait and
        --accept-data-loss). Asks before a resume unless --yes.

        [b]Example:[/b] sitectl skip 20261206T220000Z-ab12 custom/flush-proxy -r "proxy is down"
        """
        topo = topology(config)
        with engine_errors(), engine.session(topo) as s:
            op = control.operation(s, operation)
            record = s.store.records(op.id).get(step)
            resuming = record is not None and record.status is StepStatus.FAILED
            if resuming:
                ask(f"skip {step} of {op.id} and resume it? [y/N]: ", yes)
            progress = (
                live(engine.replan(topo, op), quiet=json_output)
                if resuming
                else contextlib.nullcontext(None)
            )
            with progress as spinners:
                done = control.skip(
                    s, op.id, step, reason, events=spinners, faults=Faults.from_env()
                )
        if isinstance(done, control.Answered):
            if json_output:
                emit_json({"operation": done.op_id, "step": done.step_id, "ours": done.ours})
            else:
                console.print(done.sentence(), markup=False)
            if not done.ours:
                raise typer.Exit(int(ExitCode.LOCKED))
            return
        if not json_output:
            console.print(f"{step} of {op.id} skipped: {reason}; resumed", markup=False)
        assert done.resumed is not None
        finish(done.resumed, json_output)

    @app.command()
    def escalate(
        operation: OperationArg = None,
        reason: RequiredReason = ...,  # type: ignore[assignment]
        accept_data_loss: AcceptDataLossOption = None,
        config: ConfigOption = None,
        yes: YesOption = False,
        json_output: JsonOption = False,
    ) -> None:
        """Turn a switchover stuck on its old site into a failover to the same site.

        The switchover is stopped at once (as `abort --now`), then a failover to its
        target starts: old-site steps are tried briefly and skipped if it does not
        answer, the readiness gate applies (--accept-data-loss to go past it) and nothing
        at the new site becomes writable until the old site's ticket has expired or its
        stop steps succeeded. Asks first unless --yes.

        [b]Example:[/b] sitectl escalate -r "dc1 storage hangs, no final sync possible" --yes
        """
        topo = topology(config)
        with engine_errors(), engine.session(topo) as s:
            target = control.operation(s, operation).id
            ask(f"stop switchover {target} and fail over to its target? [y/N]: ", yes)
            done = control.escalate(
                s,
                target,
                reason,
                accept_data_loss=accept_data_loss,
                events_for=lambda plan: live(plan, quiet=json_output),
                faults=Faults.from_env(),
            )
        if not json_output:
            console.print(f"switchover {done.switchover} stopped: {done.stopped}", markup=False)
        finish(done.failover, json_output)
