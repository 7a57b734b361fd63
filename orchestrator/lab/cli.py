"""`sitectl lab …`: the lab's commands (mounted by the main CLI; `python -m orchestrator.lab`).

Every failure is one line on stderr and a documented exit code (orchestrator.exitcodes).
Each command imports the lab's lifecycle (every server's client library) only when it
needs it: `exec`, `partition` and `heal-network` run in tests' polling loops.
"""

from __future__ import annotations

import subprocess
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from orchestrator.lab import links
from orchestrator.lab.readiness import LabError
from orchestrator.lab.state import default_state_dir
from orchestrator.output import emit_json

if TYPE_CHECKING:
    from orchestrator.lab.lifecycle import ComponentStatus

lab_app = typer.Typer(
    name="lab",
    help="A two-datacenter + witness lab of real servers, each site a network namespace.",
    no_args_is_help=True,
    add_completion=False,
)
# emoji=False: a state dir such as /tmp/x:smile:y must print as written, not as 😄.
err = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)
out = Console(highlight=False, soft_wrap=True, emoji=False)

StateDir = Annotated[
    Path | None,
    typer.Option(
        "--state-dir",
        help="Where the lab keeps configs, data, logs and secrets "
        "(default: $SITECTL_LAB_DIR or ./.lab).",
    ),
]
Site = Annotated[str, typer.Argument(help="dc1, dc2 or witness.")]


def _root(state_dir: Path | None) -> Path:
    return (state_dir or default_state_dir()).absolute()


def _fail(exc: LabError) -> typer.Exit:
    # One line, always: tool errors (losetup, btrfs) may carry their own newlines.
    err.print(f"sitectl lab: {' '.join(str(exc).split())}", markup=False)
    return typer.Exit(int(exc.code))


@lab_app.command()
def up(
    state_dir: StateDir = None,
    shape: Annotated[
        str | None,
        typer.Option(
            "--shape",
            help="single (default): one mailbox host and volume per datacenter; wide: two "
            "mailbox servers per datacenter, each with its own store and index volumes. "
            "A lab keeps the shape it was made with until `down --purge`.",
        ),
    ] = None,
) -> None:
    """Start (or complete) the lab; a second `up` on a running lab changes nothing.

    Prints where the state is and the line that points a shell at the lab.

    [b]Example:[/b] sitectl lab up --state-dir /var/tmp/sitectl-lab --shape wide
    """
    from orchestrator.lab import lifecycle

    root = _root(state_dir)
    try:
        result = lifecycle.up(root, shape)
    except LabError as exc:
        raise _fail(exc) from None
    if not result.changed:
        out.print(f"lab already up in {root}: nothing changed", markup=False)
        return
    out.print(
        f"lab up in {result.seconds:.1f} s ({len(result.started)} processes started); "
        f"state in {root}",
        markup=False,
    )
    out.print(
        f'use it:  eval "$(sitectl lab env --state-dir {root})"   '
        f"# then `sitectl validate`, `sitectl lab status`",
        markup=False,
    )


@lab_app.command()
def down(
    state_dir: StateDir = None,
    purge: Annotated[bool, typer.Option("--purge", help="Also delete the state dir.")] = False,
) -> None:
    """Stop every lab process by PID, unmount, detach loops, remove lo addresses.

    Works after a crash or a half-started `up`; without --purge the data stays.

    [b]Example:[/b] sitectl lab down --purge
    """
    from orchestrator.lab import lifecycle

    root = _root(state_dir)
    try:
        lifecycle.down(root, purge=purge)
    except LabError as exc:
        raise _fail(exc) from None
    out.print(f"lab down ({root}{', purged' if purge else ''})", markup=False)


@lab_app.command()
def status(
    state_dir: StateDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Each component: site, name, address, pid and state (up/down/paused).

    [b]Example:[/b] sitectl lab status --json
    """
    from orchestrator.lab import lifecycle

    try:
        rows = lifecycle.status(_root(state_dir))
    except LabError as exc:  # no lab there: a script must not read "all down"
        raise _fail(exc) from None
    _print_components(rows, "component", as_json)
    if as_json:
        return
    cuts = links.network_cuts(_root(state_dir))
    out.print(f"WAN cuts: {', '.join(cuts) if cuts else 'none'}", markup=False)


def _print_components(rows: list[ComponentStatus], noun: str, as_json: bool) -> None:
    """The rows as JSON, or as a table naming each `noun`."""
    if as_json:
        emit_json([asdict(r) for r in rows])
        return
    table = Table("site", noun, "address", "pid", "state")
    for row in rows:
        table.add_row(row.site, row.component, row.address, str(row.pid or "-"), _shown(row))
    out.print(table)


def _shown(row: ComponentStatus) -> str:
    """The state, and why a component that is down is meant to be."""
    if row.wanted or row.state != "down":
        return row.state
    return "down (not started)" if row.kind == "controller" else "down (standby)"


@lab_app.command()
def env(
    state_dir: StateDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Every endpoint and credential.")] = False,
) -> None:
    """Shell exports for using the lab; --json: endpoints and credential file paths.

    [b]Example:[/b] eval "$(sitectl lab env)"; sitectl lab env --json
    """
    from orchestrator.lab import environment, lifecycle

    root = _root(state_dir)
    try:
        active = lifecycle.active_site(root)
    except LabError as exc:
        raise _fail(exc) from None
    if as_json:
        # The site the lab serves from now (after a failover: the new one), not the
        # site `lab up` starts with.
        emit_json({**environment.describe(root), "active_site": active})
    else:
        out.print(environment.shell_exports(root), markup=False)


def _fault(action: str, site: str, state_dir: Path | None) -> None:
    from orchestrator.lab import lifecycle

    handlers = {
        "killed": lifecycle.kill_site,
        "paused": lifecycle.pause_site,
        "healed": lifecycle.heal_site,
    }
    try:
        names = handlers[action](_root(state_dir), site)
    except LabError as exc:
        raise _fail(exc) from None
    out.print(f"{site}: {action} {', '.join(names) if names else 'nothing'}", markup=False)


@lab_app.command("kill-site")
def kill_site(site: Site, state_dir: StateDir = None) -> None:
    """SIGKILL every process of SITE (heal-site restarts them).

    [b]Example:[/b] sitectl lab kill-site dc1
    """
    _fault("killed", site, state_dir)


@lab_app.command("pause-site")
def pause_site(site: Site, state_dir: StateDir = None) -> None:
    """SIGSTOP every process of SITE: hung, but still accepting TCP connections.

    [b]Example:[/b] sitectl lab pause-site dc1
    """
    _fault("paused", site, state_dir)


@lab_app.command("heal-site")
def heal_site(site: Site, state_dir: StateDir = None) -> None:
    """SIGCONT paused processes of SITE and restart killed ones exactly as they were.

    [b]Example:[/b] sitectl lab heal-site dc1
    """
    _fault("healed", site, state_dir)


@lab_app.command()
def partition(
    site: Annotated[str, typer.Argument(help="dc1, dc2, witness or ops.")],
    from_: Annotated[
        str | None,
        typer.Option("--from", help="Cut only the links to these (comma-separated)."),
    ] = None,
    oneway: Annotated[
        bool, typer.Option("--oneway", help="Drop only what SITE sends (asymmetric).")
    ] = False,
    state_dir: StateDir = None,
) -> None:
    """Cut SITE off at the WAN router, both ways: from every other site and from ops.

    Its servers keep running and keep serving clients inside SITE (`lab exec`).

    [b]Example:[/b] sitectl lab partition dc1 --from dc2   (dc1 and dc2 still see the witness)
    """
    others = [o.strip() for o in from_.split(",") if o.strip()] if from_ else []
    try:
        cuts = links.partition(_root(state_dir), site, others, oneway)
    except LabError as exc:
        raise _fail(exc) from None
    out.print(f"WAN cuts: {', '.join(cuts)}", markup=False)


@lab_app.command("heal-network")
def heal_network(
    site: Annotated[str | None, typer.Argument(help="Heal only SITE's links.")] = None,
    state_dir: StateDir = None,
) -> None:
    """Undo every WAN cut, or only those touching SITE.

    [b]Example:[/b] sitectl lab heal-network
    """
    try:
        cuts = links.heal_network(_root(state_dir), site)
    except LabError as exc:
        raise _fail(exc) from None
    out.print(f"WAN cuts: {', '.join(cuts) if cuts else 'none'}", markup=False)


@lab_app.command(
    "exec", context_settings={"allow_extra_args": True, "ignore_unknown_options": True}
)
def exec_(ctx: typer.Context, site: Site, state_dir: StateDir = None) -> None:
    """Run a command as a client inside SITE: its network, its DNS server as resolver.

    What a user at that site sees, during a partition too. The exit code is the command's.

    [b]Example:[/b] sitectl lab exec dc1 -- dig +short mail.lab.internal
    """
    argv = list(ctx.args)
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        err.print("sitectl lab exec: name a command after --, e.g. `lab exec dc1 -- dig mail`")
        raise typer.Exit(2)
    try:
        full = links.client_argv(_root(state_dir), site, argv)
    except LabError as exc:
        raise _fail(exc) from None
    raise typer.Exit(subprocess.run(full).returncode)


controllers_app = typer.Typer(
    name="controllers",
    help="sitectl's controllers, one per site, each in its site's network.",
    no_args_is_help=True,
    add_completion=False,
)
lab_app.add_typer(controllers_app)


@controllers_app.command("up")
def controllers_up(
    state_dir: StateDir = None,
    topology: Annotated[
        Path | None,
        typer.Option(
            "--topology",
            help="Run them on this topology (a copy of the lab's with other policies); "
            "default: the lab's own.",
        ),
    ] = None,
    hook: Annotated[
        list[str] | None,
        typer.Option(
            "--hook",
            metavar="EVENT=COMMAND",
            help="Passed to every controller (repeatable), e.g. "
            "split-brain='logger -t sitectl'; run inside the controller's site.",
        ),
    ] = None,
) -> None:
    """Start `sitectl controller run` in every site (dc1, dc2, witness); wait until served.

    [b]Example:[/b] sitectl lab controllers up --topology .lab/topology-automatic.yaml
    """
    from orchestrator.lab import lifecycle

    try:
        names = lifecycle.controllers_up(_root(state_dir), topology, tuple(hook or ()))
    except LabError as exc:
        raise _fail(exc) from None
    out.print(f"controllers up (started: {', '.join(names) or 'nothing'})", markup=False)


@controllers_app.command("down")
def controllers_down(state_dir: StateDir = None) -> None:
    """Stop every site's controller (by PID) and keep them stopped.

    [b]Example:[/b] sitectl lab controllers down
    """
    from orchestrator.lab import lifecycle

    try:
        names = lifecycle.controllers_down(_root(state_dir))
    except LabError as exc:
        raise _fail(exc) from None
    out.print(f"controllers down (stopped: {', '.join(names) or 'nothing'})", markup=False)


@controllers_app.command("status")
def controllers_status(
    state_dir: StateDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Each site's controller: address (/metrics, /status, /healthz), pid and state.

    [b]Example:[/b] sitectl lab controllers status --json
    """
    from orchestrator.lab import lifecycle

    try:
        rows = lifecycle.controllers_status(_root(state_dir))
    except LabError as exc:
        raise _fail(exc) from None
    _print_components(rows, "controller", as_json)


def register(app: typer.Typer) -> None:
    """Mount `sitectl lab` (orchestrator/cli/main.py imports this module only for it)."""
    app.add_typer(lab_app, name="lab", help="Run a lab of real servers on this machine.")
