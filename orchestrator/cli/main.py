"""The `sitectl` command line: the root (`--version`, `--help`) and the table of its verbs.

A verb's module is imported only when that verb runs or shows its help (orchestrator/cli/
lazy.py): each module's `register(app)` adds its verbs, and `sitectl --help` lists them
from the table below without importing any.
"""

from __future__ import annotations

import gc
import logging
from typing import Annotated

import typer

from orchestrator.cli.lazy import LazyGroup, Verb
from orchestrator.cli.output import console
from orchestrator.version import version_text

_CLI = "orchestrator.cli"
# In the order `sitectl --help` lists them. A summary is the first paragraph of the
# verb's help, as written in its docstring (or `add_typer(help=…)`);
# tests/unit/test_lazy_cli.py fails when one differs or a module adds a verb not here.
VERBS: dict[str, Verb] = {
    "validate": Verb(
        f"{_CLI}.planning",
        "Check a topology file, the playbooks a move would run and the extras its drivers\n"
        "need; print one line per problem.",
    ),
    "plan": Verb(
        f"{_CLI}.planning",
        "Print the ordered steps an operation would run; changes nothing.",
    ),
    "runbook": Verb(
        f"{_CLI}.planning",
        "Render the plan as a Markdown runbook a person can follow by hand.",
    ),
    "inventory": Verb(
        f"{_CLI}.planning",
        "Print the Ansible inventory the topology implies (groups <site>_<role>).",
    ),
    "switchover": Verb(
        f"{_CLI}.operations",
        "Planned, lossless move of the service to another site.",
    ),
    "failover": Verb(
        f"{_CLI}.operations",
        "Disaster move of the service: the old site may be down or hung.",
    ),
    "reprotect": Verb(
        f"{_CLI}.operations",
        "Reverse the mirrors so the active site protects towards the standby.",
    ),
    "resume": Verb(
        f"{_CLI}.operations",
        "Continue an interrupted operation from its last checkpoint.",
    ),
    "abort": Verb(
        f"{_CLI}.operations",
        "Stop an operation at its next safe point and say which site is active.",
    ),
    "attach": Verb(f"{_CLI}.asked", "Follow an operation to its end, wherever it runs."),
    "status": Verb(
        f"{_CLI}.status",
        "Show each site (active, standby, witness; its ticket; its controller and what that\n"
        "sees), the lease, a pause, and the operation in progress or the last one.",
    ),
    "approve": Verb(f"{_CLI}.control", "Let an operation waiting at an approval step go on."),
    "reject": Verb(f"{_CLI}.control", "Stop an operation waiting at an approval step."),
    "skip": Verb(
        f"{_CLI}.control",
        "Mark a failed or waiting step skipped and let the operation go on.",
    ),
    "escalate": Verb(
        f"{_CLI}.control",
        "Turn a switchover stuck on its old site into a failover to the same site.",
    ),
    "history": Verb(f"{_CLI}.history", "List past operations and drills, newest first."),
    "health": Verb(
        f"{_CLI}.health",
        "Check every outside system: ZooKeeper, LDAP, object store, mirrors, DNS, the app,\n"
        "and the parity of the settings the topology lists.",
    ),
    "readiness": Verb(
        f"{_CLI}.health",
        "Would a move to SITE lose more data than the RPO limits allow?",
    ),
    "evaluate": Verb(
        f"{_CLI}.evaluate",
        "Check, changing nothing, that a move to SITE could run right now.",
    ),
    "pause": Verb(
        f"{_CLI}.controller",
        "Pause automatic promotion (maintenance); manual operations stay allowed.",
    ),
    "unpause": Verb(f"{_CLI}.controller", "Resume automatic promotion."),
    "ack": Verb(
        f"{_CLI}.controller",
        "Acknowledge the last automatic failover, so another may run within the block period.",
    ),
    "schema": Verb(
        f"{_CLI}.schema",
        "Print the topology file's JSON Schema, generated from the models validate uses.",
    ),
    "drill": Verb(
        f"{_CLI}.drill",
        "Run a DR drill: canaries, the move, verification at the new site, a report.",
    ),
    "controller": Verb(
        f"{_CLI}.controller",
        "The controller daemon (one per site and on the witness).",
    ),
    "ticket": Verb(
        f"{_CLI}.ticket",
        "The site ticket: which site may serve, until when (and the lone survivor's override).",
    ),
    "deadman": Verb(
        f"{_CLI}.deadman",
        "The dead-man agent: fences its site when the controller stops vouching for it.",
    ),
    "lab": Verb(
        "orchestrator.lab.cli",
        "Run a lab of real servers on this machine.",
        optional=True,
    ),
}


class _Sitectl(LazyGroup):
    verbs = VERBS


app = typer.Typer(
    name="sitectl",
    cls=_Sitectl,
    help="Move a two-datacenter service from one site to the other, safely.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
    # An unexpected traceback must not print local variables: they hold secrets read
    # from the topology's files. Said here, not left to the default of a typer version.
    pretty_exceptions_show_locals=False,
)


def _print_version(value: bool) -> None:
    if value:
        console.print(version_text(), markup=False)
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print sitectl's version and exit.",
            is_eager=True,  # before any verb, and without a topology file
            callback=_print_version,
        ),
    ] = False,
) -> None:
    """Move a two-datacenter service from one site to the other, safely."""


def run() -> None:
    # kazoo logs every refused connection attempt; sitectl reports the outcome itself in
    # one line ("unavailable: ZooKeeper … did not answer"), so keep the terminal clean.
    logging.getLogger("kazoo").setLevel(logging.CRITICAL)
    # The cyclic garbage collector need never walk what the imports made (it lives as
    # long as the process), nor, at exit, what the command made: Python's collections
    # while it shuts down took 0.2 to 0.35 s after a switchover, with the operation over.
    # (The verb's own modules are imported inside app() now; the last freeze covers them.)
    gc.freeze()
    try:
        app()
    finally:
        gc.freeze()


if __name__ == "__main__":
    run()
