"""`sitectl evaluate --to SITE`: could a move run right now? Changes nothing.

Wired into the main app by `register(app)`. Exit 0 when a move could run, 4 when it
could not (as `readiness` refuses), 2 for bad input.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from orchestrator.cli.exitcodes import ExitCode
from orchestrator.cli.options import ConfigOption, JsonOption, load
from orchestrator.cli.output import console, emit_json, err_console, fail
from orchestrator.engine.observe import as_recorded
from orchestrator.evaluate.findings import Evaluation, Finding, Outcome

_STYLE = {Outcome.OK: "green", Outcome.NOTE: "yellow", Outcome.PROBLEM: "bold red"}


def evaluate_command(
    to: Annotated[str, typer.Option("--to", help="The site a move would go to.")],
    config: ConfigOption = None,
    json_output: JsonOption = False,
) -> None:
    """Check, changing nothing, that a move to SITE could run right now.

    Every host of SITE the move acts on answers Ansible with its known host key; every
    playbook the move runs exists and passes --syntax-check; every TSIG key is readable
    and accepted by its zone's primary (a signed no-op update); every volume's device,
    mount point directory and every service exist on SITE; sitectl's ZooKeeper identity
    may write the nodes an operation writes (read from their ACLs); the readiness
    gate's figures are within the RPO limits. Exit 0 ready, 4 not ready, 2 bad input.

    [b]Example:[/b] sitectl evaluate --to dc2 -c lab/topology.yaml
    """
    from orchestrator.evaluate.run import evaluate

    topo = as_recorded(load(config)[0])
    if to not in topo.datacenters():
        fail(
            f"--to {to}: not a datacenter — use one of: {', '.join(topo.datacenters())}",
            ExitCode.BAD_INPUT,
        )

    def progress(check: str, found: Sequence[Finding]) -> None:
        bad = sum(1 for f in found if f.outcome is Outcome.PROBLEM)
        said = f"{bad} problem(s)" if bad else "ok"
        # On stderr: --json keeps stdout for the document alone.
        err_console.print(f"{check}: {len(found)} finding(s), {said}", markup=False)

    # Every problem is a finding with its reason; the adapters' warnings would repeat them.
    adapters = logging.getLogger("orchestrator.adapters")
    level = adapters.level
    adapters.setLevel(logging.ERROR)
    try:
        result = evaluate(topo, to, on_progress=progress)
    finally:
        adapters.setLevel(level)
    if json_output:
        emit_json(result.to_dict())
    else:
        console.print(table(result))
        console.print(result.describe(), markup=False)
    raise typer.Exit(int(ExitCode.OK if result.ready else ExitCode.GATE_REFUSED))


def table(result: Evaluation) -> Table:
    out = Table(header_style="bold")
    for column in ("check", "subject", "outcome", "reason"):
        out.add_column(column, overflow="fold")
    for f in result.findings:
        # Text, not markup: a reason quotes what a server or Ansible said ("[WARNING]").
        out.add_row(
            Text(f.check),
            Text(f.subject),
            Text(f.outcome.value, style=_STYLE[f.outcome]),
            Text(f.reason),
        )
    return out


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate_command)
