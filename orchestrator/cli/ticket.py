"""`sitectl ticket show|grant`: thin wrappers over engine.tickets."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from orchestrator import startgate
from orchestrator.cli.exitcodes import ExitCode
from orchestrator.cli.options import ConfigOption, JsonOption, free_text, load
from orchestrator.cli.output import console, emit_json, err_console, fail
from orchestrator.config.model import Topology
from orchestrator.engine import tickets
from orchestrator.engine.session import connected
from orchestrator.engine.views import ticket_json
from orchestrator.errors import Locked, SitectlError, Unavailable

ticket_app = typer.Typer(
    help="The site ticket: which site may serve, until when (and the lone survivor's override).",
    no_args_is_help=True,
)


@ticket_app.command("show")
def show(config: ConfigOption = None, json_output: JsonOption = False) -> None:
    """Show who holds the site ticket, its last renewal and when it expires.

    [b]Example:[/b] sitectl ticket show --json
    """
    topo = load(config)[0]
    try:
        with connected(topo) as s:
            ticket = tickets.show_ticket(s)
    except SitectlError as exc:
        fail(f"unavailable: {exc}", ExitCode.OPERATION_FAILED)
    if json_output:
        emit_json({"ticket": ticket_json(ticket)})
        return
    said = ticket.describe(time.time()) if ticket else "none recorded yet"
    console.print(f"site ticket: {said}", markup=False)


@ticket_app.command("check")
def check(
    site: Annotated[str, typer.Argument(help="The site that wants to start its application.")],
    agent_state: Annotated[
        Path | None,
        typer.Option(
            "--agent-state",
            help="The site's dead-man agent's state file: with ZooKeeper unreachable, an "
            "operator's override recorded there (ticket grant --force --no-quorum) lets "
            "the application start.",
        ),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Exit 0 if SITE may start its application now (it holds the site ticket and no
    failover revoked it), else say why and exit 4: the gate before an application
    starts (a systemd unit's `ExecStartPre=`; the lab's role start command). ZooKeeper
    unreachable: refused, unless the site's dead-man agent took the operator's override.

    [b]Example:[/b] sitectl ticket check dc1 --agent-state /var/lib/sitectl/deadman.json
    """
    topo = load(config)[0]
    may, sentence = startgate.decide(topo, site, agent_state)
    if not may:
        fail(sentence, ExitCode.GATE_REFUSED)
    console.print(sentence, markup=False)


@ticket_app.command("grant")
def grant(
    site: Annotated[str, typer.Argument(help="The datacenter to give the ticket to.")],
    force: Annotated[
        str | None,
        typer.Option(
            "--force",
            metavar="REASON",
            help="Grant it even though another site holds it or it has not expired: the "
            "operator's override (two sites may serve at once); the reason is audited.",
            callback=free_text,
        ),
    ] = None,
    no_quorum: Annotated[
        bool,
        typer.Option(
            "--no-quorum",
            help="With --force, when no ZooKeeper quorum exists anywhere: tell SITE's "
            "dead-man agents directly, which restore the site and stop fencing it until "
            "the cluster decides again.",
        ),
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Give the site ticket to SITE by hand (the lone survivor's way back).

    Without --force only an expired ticket (last renewal + ttl + clock drift passed) goes
    back to the site that held it; anything else is refused with one line. With --force
    it is granted whoever holds it, audited with who, when and why. With no quorum at
    all, --force --no-quorum restores SITE through its dead-man agents instead.

    [b]Example:[/b] sitectl ticket grant dc1 --force "dc2 and the witness lost; CHG-4711"
    """
    topo = load(config)[0]
    if no_quorum:
        _grant_without_quorum(topo, site, force)
        return
    try:
        with connected(topo) as s:
            ticket = tickets.grant_by_hand(s, site, force)
    except tickets.GrantRefused as exc:
        fail(f"refused: {exc}", ExitCode.BAD_INPUT)
    except Locked as exc:
        fail(f"busy: {exc}", ExitCode.LOCKED)
    except Unavailable as exc:
        fail(
            f"failed: {exc} — with no ZooKeeper quorum anywhere, `--force REASON --no-quorum` "
            f"restores {site} through its dead-man agents",
            ExitCode.OPERATION_FAILED,
        )
    except SitectlError as exc:
        fail(f"failed: {exc}", ExitCode.OPERATION_FAILED)
    if force:
        _warn_forced(site, force)
    console.print(f"site ticket: {ticket.describe(time.time())}", markup=False)


def _warn_forced(site: str, reason: str, how: str = "the site ticket was granted") -> None:
    err_console.print(
        f"WARNING: {how} to {site} by force ({reason}): if another site still serves, both "
        "do; recorded in the audit log",
        markup=False,
    )


def _grant_without_quorum(topo: Topology, site: str, force: str | None) -> None:
    try:
        result = tickets.grant_without_quorum(topo, site, force)
    except tickets.GrantRefused as exc:
        fail(f"refused: {exc}", ExitCode.BAD_INPUT)
    except SitectlError as exc:
        fail(f"failed: {exc}", ExitCode.OPERATION_FAILED)
    _warn_forced(site, force or "", how="the right to serve was given without a quorum")
    if not result.acknowledged:
        fail(f"failed: {result.sentence()}", ExitCode.OPERATION_FAILED)
    console.print(result.sentence(), markup=False)
    if result.silent:
        raise typer.Exit(ExitCode.OPERATION_FAILED)


def register(app: typer.Typer) -> None:
    app.add_typer(ticket_app, name="ticket")
