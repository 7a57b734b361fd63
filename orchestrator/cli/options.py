"""Options every sitectl verb shares, and loading the topology the same way everywhere:
invalid → one line per problem on stderr, exit 2, nothing changed."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from orchestrator.adapters.inventory import inventory_findings
from orchestrator.cli.exitcodes import ExitCode
from orchestrator.cli.output import fail
from orchestrator.config import InvalidTopology, Topology, config_path, load_topology
from orchestrator.evaluate.playbook_files import playbook_findings
from orchestrator.plan.build import custom_step_findings

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        envvar="SITECTL_CONFIG",
        help="Topology file (default: $SITECTL_CONFIG).",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
DryRunOption = Annotated[
    bool, typer.Option("--dry-run", help="Print what would run; change nothing.")
]


def free_text(value: str | None) -> str | None:
    """Refuse an option's text that is really the next option: `--accept-data-loss --json`
    would otherwise record "--json" as the reason for accepting a loss, and lose --json."""
    if value is not None and value.startswith("-"):
        raise typer.BadParameter(
            f'{value!r} is an option, not a reason: give the reason as text, e.g. "dc1 lost power"'
        )
    return value


ReasonOption = Annotated[
    str,
    typer.Option("--reason", "-r", help="Why: recorded in the audit log.", callback=free_text),
]


# What validation checks beyond the file itself: the custom steps' anchors in the plans,
# and (only where files are checked) the inventory as Ansible reads it and the playbooks
# a move would run (not where the topology's files may be absent: a dead-man agent's
# host runs no playbook).
TOPOLOGY_CHECKS = (custom_step_findings, inventory_findings, playbook_findings)


def load(
    config: Path | None, *, check_filesystem: bool = True, absent_files_ok: bool = False
) -> tuple[Topology, Path]:
    try:
        path = config_path(config)
        checks = TOPOLOGY_CHECKS if check_filesystem else (custom_step_findings,)
        if absent_files_ok:
            checks = tuple(c for c in checks if c is not playbook_findings)
        topo = load_topology(
            path,
            check_filesystem=check_filesystem,
            absent_files_ok=absent_files_ok,
            checks=checks,
        )
        return topo, path
    except InvalidTopology as exc:
        fail([str(p) for p in exc.problems], ExitCode.BAD_INPUT)


AcceptDataLossOption = Annotated[
    str | None,
    typer.Option(
        "--accept-data-loss",
        help="Go on even if the readiness gate estimates a loss over the RPO limits; "
        "the reason is recorded.",
        metavar="REASON",
        callback=free_text,
    ),
]


LocalOption = Annotated[
    bool,
    typer.Option(
        "--local",
        envvar="SITECTL_LOCAL",
        help="Run the operation in this process instead of asking the leading controller "
        "(no controllers, a laptop, a broken controller); Ctrl-C or a lost terminal then "
        "stops it until `sitectl resume`. Also SITECTL_LOCAL=1.",
    ),
]
