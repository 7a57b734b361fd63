"""`sitectl drill --to SITE [--failback]` and `sitectl drill history`: thin wrappers over
orchestrator.drill. Registered by the main app (`drill.register(app)`)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from orchestrator.cli.exitcodes import ExitCode
from orchestrator.cli.options import (
    ConfigOption,
    JsonOption,
    LocalOption,
    ReasonOption,
    YesOption,
    load,
)
from orchestrator.cli.output import console, emit_json, err_console, fail
from orchestrator.cli.progress import live  # the engine's progress, as switchover draws it
from orchestrator.config import Topology
from orchestrator.drill.history import history
from orchestrator.drill.measure import BadTargets, parse_targets, targets, verdict
from orchestrator.drill.model import DrillRecord
from orchestrator.drill.report import ReportPaths, report_json, when_text, write_reports
from orchestrator.drill.run import DrillOptions, Watcher, run_drill
from orchestrator.engine.executor import Events, NoEvents
from orchestrator.errors import SitectlError
from orchestrator.plan import Plan
from orchestrator.safefiles import private_dir

drill_app = typer.Typer(
    # No help= here: it would replace the callback's docstring, and with it the example.
    invoke_without_command=True,
    no_args_is_help=False,
)

ReportDirOption = Annotated[
    Path | None,
    typer.Option(
        "--report-dir",
        help="Where drills keep their reports, one folder per drill "
        "(default: <local_state>/drills next to the audit log).",
        show_default=False,
    ),
]


def _reports_root(topo: Topology, given: Path | None) -> Path:
    return given if given is not None else topo.resolve(topo.local_state) / "drills"


class _CliWatcher(Watcher):
    """Phase lines on stderr; the engine's own spinners and sentences while it runs."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet

    def say(self, text: str) -> None:
        if not self.quiet:
            err_console.print(f"[dim]drill[/dim] {text}", highlight=False, markup=True)

    @contextmanager
    def engine(self, plan: Plan) -> Iterator[Events]:  # type: ignore[override]
        with live(plan, quiet=self.quiet) as spinners:
            yield spinners or NoEvents()


def _summary(record: DrillRecord, paths: ReportPaths) -> None:
    """One screen: the verdict, the figures, where the service is, what to do next."""
    result = verdict(record)
    mark = "[bold green]PASSED[/]" if result.passed else "[bold red]FAILED[/]"
    route = f"{record.from_site}→{record.to_site}" + (
        f"→{record.from_site}" if record.failback else ""
    )
    console.print(f"drill {record.id} {route}: {mark}")
    table = Table(title_justify="left", show_edge=False)
    for column in (
        "move",
        "RTO",
        f"target {record.targets.rto_s:g} s",
        "writes lost",
        "RPO",
        f"target {record.targets.rpo_s:g} s",
        "verified",
    ):
        table.add_column(column)
    for leg in result.legs:
        rto = "—" if leg.rto.seconds is None else f"{leg.rto.seconds:.1f} s"
        rpo = (
            "unknown"
            if leg.rpo.seconds is None
            else (f"{'≥ ' if leg.rpo.lower_bound else ''}{leg.rpo.seconds:.1f} s")
        )
        table.add_row(
            f"{leg.from_site}→{leg.to_site}",
            rto,
            _ok(leg.rto_ok),
            f"{leg.rpo.lost}/{leg.rpo.checked}",
            rpo,
            _ok(leg.rpo_ok),
            "[green]passed[/]" if leg.verifications_ok else "[red]failed[/]",
        )
    if result.legs:
        console.print(table)
    for leg in (lg for lg in record.legs if not lg.moves):
        # The failback's last reprotect: no figures, but the service is only back as it
        # was once the other site is a standby again.
        protected = (
            bool(leg.verifications)
            and all(v.ok for v in leg.verifications)
            and all(op.status == "succeeded" for op in leg.operations)
        )
        console.print(
            f"{leg.from_site} protected towards {leg.to_site} again: "
            + ("[green]yes[/]" if protected else "[red]no[/]")
        )
    goal = record.targets
    console.print(
        f"targets: RTO {goal.rto_s:g} s ({goal.source.get('rto', 'unknown')}), "
        f"RPO {goal.rpo_s:g} s ({goal.source.get('rpo', 'unknown')})",
        markup=False,
        highlight=False,
    )
    for failure in result.failures:
        console.print(f"  ✗ {failure}", markup=False)
    console.print(f"active site: [b]{record.active_site or 'unknown'}[/b] as sitectl recorded it")
    if record.where:
        console.print(f"  the engine says: {record.where}", markup=False)
    for line in record.advice:
        console.print(f"  → {line}", markup=False)
    console.print(f"report: {paths.html}", markup=False, soft_wrap=True)


def _ok(value: bool) -> str:
    return "[green]met[/]" if value else "[red]missed[/]"


def register(app: typer.Typer) -> None:
    app.add_typer(drill_app, name="drill")


@drill_app.callback()
def drill(
    ctx: typer.Context,
    to: Annotated[str | None, typer.Option("--to", help="The site to move the service to.")] = None,
    failback: Annotated[
        bool,
        typer.Option("--failback", help="Then reprotect, wait in sync and move back, verified."),
    ] = False,
    report_dir: ReportDirOption = None,
    targets_text: Annotated[
        str | None,
        typer.Option(
            "--targets",
            help="Pass/fail targets, e.g. rto=90s,rpo=0s; each "
            "overrides the topology's policy.drill_targets (default: RTO 5 min, "
            "RPO 0: a drill expects no loss).",
        ),
    ] = None,
    mode: Annotated[
        str,
        typer.Option(
            "--mode",
            help="switchover (planned) or failover (no final sync: "
            "rehearses a disaster, losses possible).",
        ),
    ] = "switchover",
    config: ConfigOption = None,
    reason: ReasonOption = "",
    yes: YesOption = False,
    json_output: JsonOption = False,
    local: LocalOption = False,
) -> None:
    """Run a DR drill: canaries, the move, verification at the new site, a report.

    Writes report.html, report.json and junit.xml into a folder per drill and prints a
    one-screen summary. Exit 0 when the drill passed, 1 when it failed (the summary says
    which site is active and what to run next), 2 on bad input.

    Each move is asked of the leading controller and followed, as `sitectl switchover`
    does; the canaries, the write probe, the verification and the report stay here.
    With --local the moves run in this process.

    [b]Example:[/b] sitectl drill --to dc2 --failback --reason "Q4 DR drill" --yes
    """
    if ctx.invoked_subcommand is not None:
        return
    if to is None:
        fail("refused: --to SITE is required (or use `sitectl drill history`)", ExitCode.BAD_INPUT)
    if mode not in ("switchover", "failover"):
        fail(f"--mode {mode}: use switchover or failover", ExitCode.BAD_INPUT)
    try:
        given = parse_targets(targets_text or "")
    except BadTargets as exc:
        fail(str(exc), ExitCode.BAD_INPUT)
    topo, _ = load(config)
    goal = targets(given, topo.policy.drill_targets)
    if to not in topo.datacenters():
        fail(
            f"--to {to}: not a datacenter — use one of: {', '.join(topo.datacenters())}",
            ExitCode.BAD_INPUT,
        )
    if not (yes or json_output):
        if not _interactive():
            fail(
                "refused: no terminal to confirm on — pass --yes to run without a prompt",
                ExitCode.BAD_INPUT,
            )
        typer.confirm(
            f"run a DR drill: {mode} to {to}{' and back' if failback else ''}?", abort=True
        )
    reports = _reports_root(topo, report_dir)
    try:  # before the drill: where its report goes must be usable (created 0700 if new)
        private_dir(reports, root=reports)
    except (SitectlError, OSError) as exc:
        fail(f"refused: the drill's reports cannot go to {reports}: {exc}", ExitCode.BAD_INPUT)
    options = DrillOptions(to, goal, failback, mode, reason, local=local)
    record = run_drill(topo, options, _CliWatcher(quiet=json_output))
    try:
        paths = write_reports(record, reports / record.id)
    except (SitectlError, OSError) as exc:
        fail(
            f"the drill ran ({'passed' if verdict(record).passed else 'failed'}) but its "
            f"report was not written: {exc}",
            ExitCode.OPERATION_FAILED,
        )
    if json_output:
        emit_json(
            {
                **report_json(record),
                "reports": {
                    "html": str(paths.html),
                    "json": str(paths.json),
                    "junit": str(paths.junit),
                },
            }
        )
    else:
        _summary(record, paths)
    if not verdict(record).passed:
        raise typer.Exit(int(ExitCode.OPERATION_FAILED))


def _interactive() -> bool:
    return sys.stdin.isatty()


@drill_app.command("history")
def drill_history(
    report_dir: ReportDirOption = None,
    config: ConfigOption = None,
    json_output: JsonOption = False,
) -> None:
    """List past drills, newest first, with their verdicts and report paths.

    [b]Example:[/b] sitectl drill history --json
    """
    root = report_dir if report_dir is not None else _reports_root(load(config)[0], None)
    entries = history(root)
    if json_output:
        emit_json([e.to_json() for e in entries])
        return
    if not entries:
        console.print(f"no drills recorded in {root}", markup=False)
        return
    # Plain lines, not a table: ids and paths stay whole in an 80-column terminal and
    # paste into an audit ticket as they are.
    mark = {True: "[green]passed[/]", False: "[red]failed[/]", None: "[yellow]unreadable[/]"}
    for e in entries:
        console.print(
            f"{when_text(e.started)}  {mark[e.passed]}  {e.route}  {e.id}  by {e.by}",
            highlight=False,
        )
        console.print(f"    {e.summary}", markup=False)
        console.print(f"    {e.report}", markup=False)
    console.print(f"reports in {root}", markup=False)
