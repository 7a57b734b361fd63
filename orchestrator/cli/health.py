"""`sitectl health` and `sitectl readiness`: the checks, for people and for scripts.

Wired into the main app by `register(app)`. Exit codes: health 0 all ok, 1 something
degraded, 2 something down or the config invalid; health --metrics 0 once it printed the
exposition (the health is in it: a textfile collector keeps output only of a command that
succeeded), 2 for bad input; readiness 0 ready, 4 refused, 2 bad input.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from orchestrator.checks import SYSTEMS, Status, Sweep, readiness, run_checks
from orchestrator.checks.metrics import exposition
from orchestrator.checks.summary import summarise
from orchestrator.checks.zookeeper import own_session
from orchestrator.cli.exitcodes import ExitCode
from orchestrator.cli.options import ConfigOption, JsonOption, load
from orchestrator.cli.output import console, emit_json, fail
from orchestrator.config import Topology
from orchestrator.engine.observe import as_recorded

TimeoutOption = Annotated[
    float | None,
    typer.Option(
        "--timeout",
        min=0.1,
        help="Seconds each check may wait (default: the topology's ldap.timeout, else 3).",
        show_default=False,
    ),
]
# Health has its own scale (documented in the README): 2 is "down", as it is "bad input".
EXIT_FOR = {Status.OK: 0, Status.DEGRADED: 1, Status.DOWN: 2}
_STYLE = {Status.OK: "green", Status.DEGRADED: "yellow", Status.DOWN: "bold red"}


def _topology(config: Path | None) -> Topology:
    # Judge against the site that serves now, as ZooKeeper records it.
    return as_recorded(load(config)[0])


def _quiet_adapters(command: Callable[..., None]) -> Callable[..., None]:
    """Adapters log each refused attempt as a warning for the engine's log; here every
    failure is already a result with its reason, so the warnings would only repeat it.
    Quiet for the command only: sitectl may run in a process that logs on (tests)."""

    @functools.wraps(command)
    def quietly(*args: object, **kwargs: object) -> None:
        adapters = logging.getLogger("orchestrator.adapters")
        level = adapters.level
        adapters.setLevel(logging.ERROR)
        try:
            command(*args, **kwargs)
        finally:
            adapters.setLevel(level)

    return quietly


def _check_sites(topo: Topology, sites: list[str]) -> None:
    unknown = [s for s in sites if s not in topo.sites]
    if unknown:
        fail(
            f"--site {', '.join(unknown)}: no such site — use one of: {', '.join(topo.sites)}",
            ExitCode.BAD_INPUT,
        )


@_quiet_adapters
def health(
    config: ConfigOption = None,
    site: Annotated[
        list[str] | None,
        typer.Option(
            "--site",
            help="Only this site's results (repeatable); cluster-wide ones are always shown.",
        ),
    ] = None,
    system: Annotated[
        list[str] | None,
        typer.Option("--system", help=f"Only these systems (repeatable): {', '.join(SYSTEMS)}."),
    ] = None,
    json_output: JsonOption = False,
    watch: Annotated[
        float | None,
        typer.Option(
            "--watch", min=0.5, help="Repeat every SECONDS until interrupted.", show_default=False
        ),
    ] = None,
    metrics: Annotated[
        bool,
        typer.Option(
            "--metrics",
            help="Print the Prometheus text exposition instead of a table, and exit 0 "
            "once printed (for a textfile collector: the health is in the metrics).",
        ),
    ] = False,
    canary: Annotated[
        bool,
        typer.Option(
            "--canary",
            help="Also time a canary object through replication (writes one "
            "small object per bucket).",
        ),
    ] = False,
    timeout: TimeoutOption = None,
    verbose: Annotated[
        bool,
        typer.Option("--verbose", "-v", help="Every check on a line of its own, with its figures."),
    ] = False,
) -> None:
    """Check every outside system: ZooKeeper, LDAP, object store, mirrors, DNS, the app,
    and the parity of the settings the topology lists.

    Read-only (unless --canary) and concurrent; every check is bounded by the timeout.
    One line per system per site, the worst first; --verbose shows every check.
    Exit 0 all ok, 1 something degraded, 2 something down or the config invalid; with
    --metrics, 0 once the metrics are printed (sitectl_check_status holds the health).

    [b]Example:[/b] sitectl health -c lab/topology.yaml --site dc2
    """
    topo = _topology(config)
    _check_sites(topo, site or [])
    bad = [s for s in system or [] if s not in SYSTEMS]
    if bad:
        fail(f"--system {', '.join(bad)}: use one of {', '.join(SYSTEMS)}", ExitCode.BAD_INPUT)
    # Our own ZooKeeper session for the whole command, so the zookeeper check reports its
    # state (and, with --watch, how it fares while the ensemble changes).
    session = own_session(topo) if not system or "zookeeper" in system else None
    shown: Sweep | None = None
    with session or contextlib.nullcontext():
        try:
            while True:
                sweep = run_checks(
                    topo, system or None, sites=site or None, timeout=timeout, canary=canary
                )
                _show(
                    sweep,
                    metrics=metrics,
                    json_output=json_output,
                    verbose=verbose,
                    clear=watch is not None,
                )
                shown = sweep
                if watch is None:
                    break
                time.sleep(watch)
        except KeyboardInterrupt:
            # Ctrl-C ends --watch, during a sweep as well as between two: the exit code is
            # the last complete sweep's, as if it had been the only one.
            if shown is None:
                raise typer.Exit(130) from None
    assert shown is not None  # the loop leaves only after showing a sweep
    if metrics:
        # A textfile collector (`sitectl health --metrics > f.prom.tmp && mv ...`) keeps
        # only a run that succeeded: an unhealthy cluster is what it must see most.
        raise typer.Exit(int(ExitCode.OK))
    raise typer.Exit(int(EXIT_FOR[shown.worst()]))


def _show(sweep: Sweep, *, metrics: bool, json_output: bool, verbose: bool, clear: bool) -> None:
    if metrics:
        typer.echo(exposition(sweep), nl=False)
    elif json_output:
        emit_json({**sweep.to_json(), "systems": [ln.to_json() for ln in summarise(sweep)]})
    else:
        if clear:
            console.clear()
        console.print(table(sweep) if verbose else summary_table(sweep))
        console.print(
            f"{sweep.worst().value} — {len(sweep.results)} checks in {sweep.seconds:.2f} s"
        )


def summary_table(sweep: Sweep) -> Table:
    """One row per system per site, the worst first: its status, how many of its checks
    are not ok, and the worst one's target and reason (or, when all are, its lag)."""
    rows = [
        (
            line.site or "cluster",
            line.system,
            line.status,
            f"{len(line.problems)}/{line.checks} not ok" if line.problems else f"{line.checks} ok",
            line.detail(),
        )
        for line in summarise(sweep)
    ]
    out = Table(show_lines=False, header_style="bold")
    for index, column in enumerate(("site", "system", "status", "checks")):
        # Never narrowed: on a small screen the detail gives way, cut short (no wrapping:
        # a row is a line; the whole reason is one --verbose away).
        widest = max((len(str(row[index])) for row in rows), default=0)
        out.add_column(column, no_wrap=True, min_width=max(widest, len(column)))
    out.add_column("detail")
    for site, system, status, checks, detail in rows:
        # A reason is the server's text, never markup.
        out.add_row(
            site,
            system,
            f"[{_STYLE[status]}]{status.value}[/]",
            checks,
            Text(detail, no_wrap=True, overflow="ellipsis"),
        )
    return out


def table(sweep: Sweep) -> Table:
    """Results grouped by site (cluster-wide first) and system, with figures and reasons."""
    out = Table(show_lines=False, header_style="bold")
    for column in ("site", "system", "target", "status", "figures", "reason"):
        out.add_column(column, overflow="fold")
    ordered = sorted(sweep.results, key=lambda r: (r.site or "", r.system, r.target))
    previous: tuple[str | None, str] | None = None
    for r in ordered:
        group = (r.site, r.system)
        out.add_row(
            (r.site or "cluster") if previous is None or previous[0] != r.site else "",
            r.system if group != previous else "",
            r.target,
            f"[{_STYLE[r.status]}]{r.status.value}[/]",
            figures_text(r.figures),
            r.reason,
            end_section=False,
        )
        previous = group
    return out


def figures_text(figures: Mapping[str, float]) -> str:
    """Figures a person reads; raw CSN timestamps are for machines (and --json)."""
    items = dict(figures)
    return " ".join(
        f"{k}={v:g}" if abs(v) < 1e6 else f"{k}={v:.0f}"
        for k, v in sorted(items.items())
        if not k.startswith("csn_")
    )


@_quiet_adapters
def readiness_command(
    to: Annotated[str, typer.Option("--to", help="The site a failover would move to.")],
    config: ConfigOption = None,
    json_output: JsonOption = False,
    timeout: TimeoutOption = None,
) -> None:
    """Would a move to SITE lose more data than the RPO limits allow?

    Per replicator (volume mirrors, LDAP, object store) the estimated loss if we failed
    over now, computed from what SITE holds, so it answers with the old site gone.
    Exit 0 ready, 4 refused, 2 bad input.

    [b]Example:[/b] sitectl readiness --to dc2
    """
    topo = _topology(config)
    if to not in topo.datacenters():
        fail(
            f"--to {to}: not a datacenter — use one of: {', '.join(topo.datacenters())}",
            ExitCode.BAD_INPUT,
        )
    sweep = run_checks(topo, ["mirrors", "ldap", "object-store"], timeout=timeout)
    verdict = readiness(topo, to, sweep)
    if json_output:
        emit_json(verdict.to_json())
    else:
        for kind, loss in verdict.loss.items():
            shown = "unknown" if loss is None else f"{loss:.1f} s"
            console.print(f"{kind:<13} loss {shown:>10}   limit {verdict.limits[kind]:g} s")
        for name, loss in verdict.replicators.items():  # the figures behind the worst
            shown = "unknown" if loss is None else f"{loss:.1f} s"
            console.print(f"  {name:<48} {shown:>10}", markup=False)
        for note in verdict.notes:
            console.print(f"note: {note}", markup=False)
        console.print(verdict.describe(), markup=False)
    raise typer.Exit(int(ExitCode.OK if verdict.ready else ExitCode.GATE_REFUSED))


def register(app: typer.Typer) -> None:
    app.command("health")(health)
    app.command("readiness")(readiness_command)
