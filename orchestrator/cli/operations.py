"""`sitectl switchover|failover|reprotect|resume|abort`: thin wrappers over engine.operation
(`status` is cli/status.py)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from orchestrator.asking.model import OperationRequest, Verb
from orchestrator.audit import identity, os_user
from orchestrator.cli import asked, failures, progress
from orchestrator.cli.exitcodes import ExitCode
from orchestrator.cli.options import (
    AcceptDataLossOption,
    ConfigOption,
    DryRunOption,
    JsonOption,
    LocalOption,
    ReasonOption,
    YesOption,
    free_text,
    load,
)
from orchestrator.cli.output import console, emit_json, err_console, fail
from orchestrator.config import Topology
from orchestrator.engine import operation as engine
from orchestrator.engine.faults import Faults
from orchestrator.engine.progress import plan_digest
from orchestrator.engine.records import FINISHED_STEP, Mode, OperationRecord, StepRecord
from orchestrator.plan import Plan
from orchestrator.plan.planfile import BadPlanFile, SavedPlan, parse_plan_file, refusal


def _topology(config: Path | None) -> Topology:
    return load(config)[0]


PlanFileOption = Annotated[
    Path | None,
    typer.Option(
        "--plan",
        metavar="FILE",
        help="Run only the plan `sitectl plan -o FILE` saved: refused (exit 5, nothing "
        "changed, both digests printed) when the plan that would run now differs. "
        "--to defaults to the file's.",
    ),
]
ToOrPlanOption = Annotated[
    str | None,
    typer.Option("--to", help="The site to move the service to (with --plan: the file's)."),
]


def _saved_plan(path: Path | None) -> SavedPlan | None:
    """The plan file, read and checked before anything connects."""
    if path is None:
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"--plan {path}: cannot read it: {exc}", ExitCode.BAD_INPUT)
    try:
        return parse_plan_file(text, str(path))
    except BadPlanFile as exc:
        fail(f"--plan {exc}", ExitCode.BAD_INPUT)


def _target(to: str | None, saved: SavedPlan | None) -> str:
    if to is not None:
        return to
    if saved is None:
        fail("refused: --to SITE is required (or --plan FILE)", ExitCode.BAD_INPUT)
    return saved.to_site


def _confirm(plan: Plan, yes: bool) -> None:
    _ask(
        f"{plan.mode} {plan.cluster} from {plan.from_site} to {plan.to_site} "
        f"({sum(1 for _ in plan.steps())} steps)? [y/N]: ",
        yes,
    )


def _ask(question: str, yes: bool) -> None:
    """Ask unless --yes. --json changes only what is printed, never whether sitectl asks:
    without a terminal (a script) nobody can answer, so it refuses (exit 2) before
    anything changes; on a terminal it asks on stderr, so stdout stays the JSON."""
    if yes:
        return
    if not sys.stdin.isatty():
        fail(
            "refused: no terminal to confirm on — pass --yes to run without a prompt",
            ExitCode.BAD_INPUT,
        )
    # Not typer.confirm: it writes a space to stdout even when asking on stderr.
    try:
        answer = err_console.input(question, markup=False)
    except EOFError:
        answer = ""
    if answer.strip().lower() not in ("y", "yes"):
        raise typer.Abort()


def _finish(outcome: engine.Outcome, json_output: bool) -> None:
    step_ids = [step.id for step in outcome.plan.steps()]
    progress.finish(outcome.op, step_ids, outcome.steps, outcome.figures, json_output)


def _operate(
    mode: str,
    to: str | None,
    config: Path | None,
    reason: str,
    accept_data_loss: str | None,
    dry_run: bool,
    yes: bool,
    json_output: bool,
    no_fence_wait: str | None = None,
    discard_divergent: str | None = None,
    saved: SavedPlan | None = None,
    local: bool = False,
) -> None:
    topo = _topology(config)
    digest = None
    # Planned here only when something needs the plan before the operation starts: a
    # dry run, the question, a saved plan to compare with, or running it here.
    if local or dry_run or saved is not None or not yes:
        with failures.engine_errors(), engine.session(topo) as s:
            plan = engine.plan_operation(s, Mode(mode), to)
            refused = refusal(saved, plan) if saved is not None else None
            if refused is not None:
                fail(refused, ExitCode.PLAN_CHANGED)
            if dry_run:
                _dry_run(mode, plan, json_output)
                return
            _confirm(plan, yes)
            _warn(plan.from_site, plan.to_site, no_fence_wait, discard_divergent)
            if local:
                with progress.live(plan, quiet=json_output) as spinners:
                    outcome = engine.start_operation(
                        s,
                        plan,
                        reason=reason or "(no reason given)",
                        accept_data_loss=accept_data_loss,
                        no_fence_wait=no_fence_wait,
                        discard_divergent=discard_divergent,
                        events=spinners,
                        faults=Faults.from_env(),
                    )
                _finish(outcome, json_output)
                return
            # The controller runs exactly the plan confirmed here, or refuses (exit 5).
            digest = plan_digest(plan)
    else:
        _warn("the active site", to or "the standby", no_fence_wait, discard_divergent)
    asked.submit(
        topo,
        OperationRequest(
            verb=Verb(mode),
            by=os_user(),
            host=identity(),
            reason=reason or "(no reason given)",
            submitted=time.time(),
            to_site=to,
            accept_data_loss=accept_data_loss,
            no_fence_wait=no_fence_wait,
            discard_divergent=discard_divergent,
            plan_digest=digest,
            plan_file=saved.source if saved is not None else None,
        ),
        json_output,
    )


def _dry_run(mode: str, plan: Plan, json_output: bool) -> None:
    if json_output:
        emit_json({"dry_run": True, "plan": plan.to_dict()})
        return
    console.print(f"dry run: would {mode} {plan.from_site} → {plan.to_site}; nothing changed")
    for g_index, group in enumerate(plan.groups, start=1):
        for step in group.steps:
            console.print(f"  {g_index:>2} {step.id}: {step.description}", markup=False)


def _warn(
    from_site: str, to_site: str, no_fence_wait: str | None, discard_divergent: str | None
) -> None:
    if no_fence_wait:
        err_console.print(
            f"WARNING: --no-fence-wait: {to_site} becomes writable without waiting "
            f"for {from_site}'s site ticket to expire, so both sites may serve at "
            f"once if {from_site} still runs; recorded with your reason",
            markup=False,
        )
    if discard_divergent:
        err_console.print(
            f"WARNING: --discard-divergent: whatever {to_site} alone holds that "
            f"salvage cannot copy to {from_site} is discarded when the mirrors "
            "reverse; recorded with your reason",
            markup=False,
        )


def _resume_question(op: OperationRecord, plan: Plan, records: dict[str, StepRecord]) -> str:
    finished = sum(1 for r in records.values() if r.status in FINISHED_STEP)
    return (
        f"resume {op.mode} {op.id} of {plan.cluster} from {op.from_site} to {op.to_site} "
        f"({op.status.value}, {finished} of {sum(1 for _ in plan.steps())} steps "
        "finished)? [y/N]: "
    )


def register(app: typer.Typer) -> None:
    @app.command()
    def switchover(
        to: ToOrPlanOption = None,
        config: ConfigOption = None,
        reason: ReasonOption = "",
        plan_file: PlanFileOption = None,
        dry_run: DryRunOption = False,
        yes: YesOption = False,
        json_output: JsonOption = False,
        local: LocalOption = False,
    ) -> None:
        """Planned, lossless move of the service to another site.

        Stops the application on the old site, takes a final mirror transfer, breaks the
        mirrors, remounts, repoints DNS, starts and verifies. Refuses (exit 4) if the old
        site does not answer: use failover.

        With --plan FILE (written by `sitectl plan -o FILE`) it runs only if the plan
        that would run now is that one; otherwise it refuses (exit 5) printing both
        digests and the first difference, and changes nothing.

        Asks before it starts unless --yes, with --json too (the question goes to stderr);
        with no terminal to answer on it refuses (exit 2) and changes nothing.

        [b]Example:[/b] sitectl switchover --to dc2 --reason "quarterly DR drill" --yes

        [b]Example:[/b] sitectl switchover --plan dc2.plan.json --reason "change 4711"
        """
        saved = _saved_plan(plan_file)
        _operate(
            "switchover",
            _target(to, saved),
            config,
            reason,
            None,
            dry_run,
            yes,
            json_output,
            saved=saved,
            local=local,
        )

    @app.command()
    def failover(
        to: ToOrPlanOption = None,
        config: ConfigOption = None,
        reason: ReasonOption = "",
        plan_file: PlanFileOption = None,
        accept_data_loss: AcceptDataLossOption = None,
        no_fence_wait: Annotated[
            str | None,
            typer.Option(
                "--no-fence-wait",
                help="Do not wait for the old site's ticket to expire before the new site "
                "becomes writable (both sites may serve at once if the old one still runs); "
                "the reason is recorded and warned about.",
                metavar="REASON",
                callback=free_text,
            ),
        ] = None,
        dry_run: DryRunOption = False,
        yes: YesOption = False,
        json_output: JsonOption = False,
        local: LocalOption = False,
    ) -> None:
        """Disaster move of the service: the old site may be down or hung.

        Steps on the old site are tried with short timeouts and recorded as skipped. A
        readiness gate refuses (exit 4) when the loss would exceed the RPO limits, unless
        --accept-data-loss says why. Before anything at the new site becomes writable,
        fence/wait waits until the old site's ticket has expired (last renewal + ttl +
        clock drift) unless the old site's stop steps succeeded; --no-fence-wait skips it.

        With --plan FILE it runs only the plan saved there (see switchover).

        Asks before it starts unless --yes, with --json too (the question goes to stderr);
        with no terminal to answer on it refuses (exit 2) and changes nothing.

        [b]Example:[/b] sitectl failover --to dc2 --reason "dc1 power loss" --yes
        """
        saved = _saved_plan(plan_file)
        _operate(
            "failover",
            _target(to, saved),
            config,
            reason,
            accept_data_loss,
            dry_run,
            yes,
            json_output,
            no_fence_wait,
            saved=saved,
            local=local,
        )

    @app.command()
    def reprotect(
        config: ConfigOption = None,
        reason: ReasonOption = "",
        discard_divergent: Annotated[
            str | None,
            typer.Option(
                "--discard-divergent",
                help="Reverse the mirrors even if the old site holds mail or objects that "
                "salvage could not copy to the active site (they are lost); the reason is "
                "recorded and warned about.",
                metavar="REASON",
                callback=free_text,
            ),
        ] = None,
        dry_run: DryRunOption = False,
        yes: YesOption = False,
        json_output: JsonOption = False,
        local: LocalOption = False,
    ) -> None:
        """Reverse the mirrors so the active site protects towards the standby.

        Needed after a switchover or failover before the service can move back: until
        then the old site's copy is stale and sitectl refuses to move there.

        First it salvages: the old site's copy is snapshotted, mail and objects only it
        holds are copied into the active site (by Message-ID, by key and ETag), and the
        LDAP entries it changed since the takeover are reported. It refuses (exit 4,
        mirrors untouched) while anything divergent is left, unless --discard-divergent
        says why.

        Asks before it starts unless --yes, with --json too (the question goes to stderr);
        with no terminal to answer on it refuses (exit 2) and changes nothing.

        [b]Example:[/b] sitectl reprotect --reason "failback after the drill" --yes
        """
        _operate(
            "reprotect",
            None,
            config,
            reason,
            None,
            dry_run,
            yes,
            json_output,
            discard_divergent=discard_divergent,
            local=local,
        )

    @app.command()
    def resume(
        operation: Annotated[
            str | None, typer.Argument(help="Operation id (default: the current one).")
        ] = None,
        config: ConfigOption = None,
        yes: YesOption = False,
        json_output: JsonOption = False,
        local: LocalOption = False,
    ) -> None:
        """Continue an interrupted operation from its last checkpoint.

        Finished steps are never run again; a step a crash left running runs again
        through its idempotent check. The leading controller runs it (as a switchover),
        or this process with --local.

        Asks before it goes on unless --yes, like switchover (the question goes to
        stderr); with no terminal to answer on it refuses (exit 2) and changes nothing.

        [b]Example:[/b] sitectl resume 20261122T140000Z-ab12 --yes
        """
        topo = _topology(config)
        if local or not yes:
            with failures.engine_errors(), engine.session(topo) as s:
                op_id = operation or s.store.current_operation() or None
                if op_id is None:
                    fail("refused: no operation in progress to resume", ExitCode.BAD_INPUT)
                op, _ = s.store.operation(op_id)
                plan = engine.replan(topo, op)
                _ask(_resume_question(op, plan, s.store.records(op.id)), yes)
                if local:
                    with progress.live(plan, quiet=json_output) as spinners:
                        outcome = engine.resume_operation(
                            s, op_id, events=spinners, faults=Faults.from_env()
                        )
                    _finish(outcome, json_output)
                    return
                operation = op_id
        asked.submit(
            topo,
            OperationRequest(
                verb=Verb.RESUME,
                by=os_user(),
                host=identity(),
                reason="resumed by its operator",
                submitted=time.time(),
                operation=operation,
            ),
            json_output,
        )

    @app.command()
    def abort(
        operation: Annotated[
            str | None, typer.Argument(help="Operation id (default: the current one).")
        ] = None,
        config: ConfigOption = None,
        wait: Annotated[
            float,
            typer.Option(
                "--wait",
                min=0,
                metavar="SECONDS",
                help="How long to wait for a running operation to stop (0: do not wait).",
            ),
        ] = engine.ABORT_WAIT_S,
        now: Annotated[
            bool,
            typer.Option(
                "--now",
                help="Also stop the step under way at once: its playbook is killed and the "
                "step is left half-done, to be redone by the next operation.",
            ),
        ] = False,
    ) -> None:
        """Stop an operation at its next safe point and say which site is active.

        A running operation finishes the step under way first (with --now, its playbook
        is killed within a second instead); abort waits for it (up to --wait seconds),
        then says which site is active, what is left half-done and how to go forward or
        roll back. Exit 0 once it has stopped, or at once with --wait 0; exit 3 if it
        still runs when the wait is over (the abort stays requested).

        [b]Example:[/b] sitectl abort --wait 120
        """
        topo = _topology(config)
        with failures.engine_errors(), engine.session(topo) as s:
            result = engine.abort_operation(s, operation, wait=wait, now=now)
        console.print(result.message, markup=False)
        if not result.stopped and wait > 0:
            raise typer.Exit(int(ExitCode.LOCKED))


# What the other operation verbs (cli/control.py) share with these.
topology = _topology
engine_errors = failures.engine_errors
live = progress.live
finish = _finish
ask = _ask
