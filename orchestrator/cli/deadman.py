"""`sitectl deadman run`: the dead-man agent of one site (or one host), a thin wrapper
over orchestrator.deadman."""

from __future__ import annotations

import logging
import signal
import socket
import sys
import threading
from pathlib import Path
from typing import Annotated

import typer

from orchestrator.adapters.inventory import read_inventory
from orchestrator.adapters.secrets import read_secret
from orchestrator.cli.exitcodes import ExitCode
from orchestrator.cli.options import ConfigOption, load
from orchestrator.cli.output import fail
from orchestrator.config.model import SecretRef
from orchestrator.deadman.actions import fence_actions, guarded_hosts, restore_actions
from orchestrator.deadman.agent import Agent
from orchestrator.errors import SitectlError
from orchestrator.sdnotify import Watchdog, notify

deadman_app = typer.Typer(
    help="The dead-man agent: fences its site when the controller stops vouching for it.",
    no_args_is_help=True,
)
log = logging.getLogger("sitectl.deadman")


@deadman_app.command("run")
def run(
    site: Annotated[str, typer.Option("--site", help="The site whose hosts it guards.")],
    address: Annotated[
        str,
        typer.Option("--address", help="The address it guards and listens on (a host's)."),
    ],
    state_file: Annotated[
        Path, typer.Option("--state-file", help="Where it keeps its memory across restarts.")
    ],
    key_file: Annotated[
        Path | None,
        typer.Option(
            "--key-file",
            help="The feed key (0600 or 0400) instead of the topology's deadman.key: "
            "under systemd, the credential LoadCredential= made, %d/deadman.key.",
        ),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Run the dead-man agent for the hosts of SITE at ADDRESS.

    Fed as the holder by its site's controller, it fences those hosts (application
    stopped, DNS data dropped, volumes unmounted) once no feed has come for
    policy.fence_after seconds. Under systemd (Type=notify) it says READY=1 once it
    listens and pets WATCHDOG=1 from its loop (contrib/sitectl-deadman@.service).

    [b]Example:[/b] sitectl deadman run --site dc1 --address 10.1.0.5 --state-file deadman.json
    """
    # An agent host holds only the topology, its inventory and the feed key: the other
    # files the topology names (TSIG keys, LDAP and S3 secrets, CAs) may be absent here;
    # any that is present is checked as `validate` checks it.
    topo = load(config, absent_files_ok=True)[0]
    if topo.deadman is None:
        fail(f"{topo.base_dir}: the topology has no 'deadman' section: add one", ExitCode.BAD_INPUT)
    hosts = guarded_hosts(topo, site, address)
    if not hosts:
        fail(f"--site {site} --address {address}: no topology host there", ExitCode.BAD_INPUT)
    try:
        # Each host's variables as Ansible gives them to a play (group_vars/ included).
        host_vars = read_inventory(topo.resolve(topo.ansible.inventory)).host_vars
        actions = fence_actions(topo, site, hosts, host_vars)
        restores = restore_actions(topo, site, hosts, host_vars)
        # --key-file, like every path on the command line, is relative to the directory
        # it was run in; the topology's key to the topology file.
        ref, base = (
            (topo.deadman.key, topo.base_dir)
            if key_file is None
            else (SecretRef(file=str(key_file)), Path.cwd())
        )
        key = read_secret(ref, base).reveal().strip().encode()
    except (OSError, ValueError, SitectlError) as exc:
        fail(f"the dead-man agent of {site} cannot start: {exc}", ExitCode.BAD_INPUT)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind((address, topo.deadman.port))
    except OSError as exc:
        fail(
            f"--address {address}: cannot listen on UDP port {topo.deadman.port}: "
            f"{exc.strerror or exc}",
            ExitCode.BAD_INPUT,
        )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    for action in actions:
        log.info("fence action: %s: %s", action.what, action.command)
    for action in restores:
        log.info(
            "restore action (an operator's override only): %s: %s", action.what, action.command
        )
    agent = Agent(
        site, actions, key, sock, state_file, restore_actions=restores, alive=Watchdog().pet
    )
    notify("READY=1", f"STATUS=guarding {site} at {address}, {len(actions)} fence actions")
    try:
        agent.serve(stop)
    finally:
        notify("STOPPING=1")


def register(app: typer.Typer) -> None:
    app.add_typer(deadman_app, name="deadman")


if __name__ == "__main__":
    standalone = typer.Typer(no_args_is_help=True)
    register(standalone)
    standalone()
