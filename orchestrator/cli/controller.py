"""`sitectl controller run`, `sitectl pause|unpause|ack`: thin wrappers over
orchestrator.controller. `register(app)` mounts them on the main CLI; run as
`python -m orchestrator.cli.controller …` it is the same commands on their own."""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from kazoo.client import KazooClient

from orchestrator.adapters.secrets import SecretError, read_secret
from orchestrator.audit import identity
from orchestrator.checks.zookeeper import reporting_client
from orchestrator.cli.exitcodes import ExitCode
from orchestrator.cli.options import ConfigOption, load
from orchestrator.cli.output import console, fail
from orchestrator.config import Topology
from orchestrator.config.model import SecretRef, ZkHost
from orchestrator.controller.daemon import Controller
from orchestrator.controller.hooks import EVENTS, Hooks
from orchestrator.controller.http import Access, access_of, serve
from orchestrator.controller.page import status_page
from orchestrator.controller.pagesource import PageSource
from orchestrator.controller.zkstate import ControllerState
from orchestrator.coordination.client import connect, digest_id
from orchestrator.errors import SitectlError, Unavailable
from orchestrator.sdnotify import Watchdog, notify

if TYPE_CHECKING:
    from orchestrator.engine import operation as engine

controller_app = typer.Typer(
    help="The controller daemon: probe, publish, elect a leader, fail over automatically.",
    no_args_is_help=True,
)
log = logging.getLogger("sitectl.controller")


def _topology(config: Path | None) -> Topology:
    return load(config)[0]


def _listen(value: str | None) -> tuple[str, int] | None:
    """ADDR:PORT (or [V6ADDR]:PORT): the address is always written out, so every
    interface (0.0.0.0, [::]) is served only when asked for by name."""
    if value is None:
        return None
    host, _, port = value.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host or host.strip() != host or not port.isdigit() or not 0 < int(port) < 65536:
        fail(
            f"--listen {value!r}: write ADDR:PORT, e.g. 127.0.0.1:9400 or [::1]:9400; the "
            "address is required (0.0.0.0:9400 serves every interface, written out)",
            ExitCode.BAD_INPUT,
        )
    return host, int(port)


def _access(topo: Topology, token_file: Path | None) -> Access:
    """Who may read what the endpoint serves: the token file of `--token-file`, else of
    the topology's controller.http; read now, so an unusable one stops the start."""
    settings = topo.controller.http
    path = token_file or (topo.resolve(settings.token_file) if settings.token_file else None)
    if path is None:
        log.warning(
            "no token file (controller.http.token_file or --token-file): %s refused to everyone",
            ", ".join(f"/{e}" for e in sorted(settings.token_for)),
        )
    try:
        return access_of(path, settings.token_for)
    except SecretError as exc:
        fail(str(exc), ExitCode.BAD_INPUT)


def _with_zookeeper(topo: Topology, connect_string: str | None) -> Topology:
    """The topology with another ZooKeeper connect string (the local node, a proxy)."""
    if not connect_string:
        return topo
    # The site of an override node is not known and nothing reads it: only the address.
    hosts = tuple(ZkHost(address=a, site="override") for a in connect_string.split(","))
    return topo.model_copy(update={"zookeeper": topo.zookeeper.model_copy(update={"hosts": hosts})})


@controller_app.command("run")
def run(
    site: Annotated[str, typer.Option("--site", help="The site this controller runs in.")],
    listen: Annotated[
        str | None,
        typer.Option(
            "--listen",
            help="Serve the status page (/), /metrics, /status and /healthz on ADDR:PORT "
            "(the address is required: 0.0.0.0:PORT for every interface).",
        ),
    ] = None,
    token_file: Annotated[
        Path | None,
        typer.Option(
            "--token-file",
            help="The bearer token /status (and controller.http.token_for) requires: a "
            "file of mode 0600; default: the topology's controller.http.token_file.",
        ),
    ] = None,
    hook: Annotated[
        list[str] | None,
        typer.Option(
            "--hook",
            help=f"EVENT=COMMAND or EVENT=URL, repeatable; EVENT: {', '.join(EVENTS)}. "
            "A failing pre-failover hook vetoes the failover.",
        ),
    ] = None,
    hook_timeout: Annotated[
        float, typer.Option("--hook-timeout", help="Seconds a hook may take.")
    ] = 10.0,
    zookeeper: Annotated[
        str | None,
        typer.Option(
            "--zookeeper",
            help="Connect to these ZooKeeper nodes (HOST:PORT,...) instead of the topology's.",
        ),
    ] = None,
    identity_file: Annotated[
        Path | None,
        typer.Option(
            "--identity",
            help="This site's controller identity, a 0600 file holding USER:PASSWORD "
            "(its id is the one zookeeper.controller_ids names for --site).",
        ),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Run the controller of one site (each datacenter and the witness run one).

    Probes the active site every probe interval, publishes its view in ZooKeeper, and
    when elected leader decides once per cycle whether to fail over; every decision is
    logged as one sentence.

    /status needs `Authorization: Bearer TOKEN`, the token in the token file; without
    one, /status is refused.

    [b]Example:[/b] sitectl controller run --site witness --listen 198.18.3.1:9400
    """
    topo = _with_zookeeper(_topology(config), zookeeper)
    address = _listen(listen)
    try:
        hooks = Hooks.parse(hook or [], hook_timeout)
    except ValueError as exc:
        fail(str(exc), ExitCode.BAD_INPUT)
    if site not in topo.sites:
        fail(
            f"--site {site}: no such site — use one of {', '.join(topo.sites)}", ExitCode.BAD_INPUT
        )
    own, own_id = _own_identity(topo, site, identity_file)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    logging.getLogger("kazoo").setLevel(logging.ERROR)
    access = _access(topo, token_file) if address is not None else None
    stopping: list[Controller] = []
    stop_requested = [False]

    def on_signal(signum: int, _frame: object) -> None:
        stop_requested[0] = True
        for c in stopping:
            c.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    client = _connect_until_stopped(topo, stop_requested, own)
    if client is None:
        return
    try:
        controller = Controller(topo, site, client, hooks=hooks, own_id=own_id)
        stopping.append(controller)
        if stop_requested[0]:
            return
        server = page = None
        if address is not None:
            settings = topo.controller.http
            page, respond_page = status_page(
                topo,
                controller.board,
                access or Access(None),
                PageSource(topo, client, controller.store, controller.state),
                on_view=controller.monitor.viewed,
            )
            try:
                server = serve(
                    *address,
                    controller.metrics,
                    controller.board,
                    controller.health,
                    access=access,
                    read_timeout=settings.read_timeout,
                    max_connections=settings.max_connections,
                    page=respond_page,
                )
            except OSError as exc:
                fail(f"--listen {listen}: {exc.strerror or exc}", ExitCode.BAD_INPUT)
            log.info(
                "serving / (the status page), /metrics, /status and /healthz on %s:%d "
                "(bearer token for / and %s)",
                *address,
                ", ".join(f"/{e}" for e in sorted(settings.token_for)),
            )
        log.info("controller of %s started as %s", site, controller.identifier)
        # Under systemd (Type=notify, WatchdogSec=): ready once connected and serving;
        # the watchdog hears from it only while /healthz would say ok (probes and
        # decision cycles keep coming), so a stuck controller is restarted.
        done = threading.Event()
        Watchdog().keep_petting(lambda: controller.health()[0], done)
        notify("READY=1", f"STATUS=controller of {site}, connected to ZooKeeper")
        # Its health sweeps' ZooKeeper check reports this session.
        try:
            with reporting_client(client):
                controller.run()
        finally:
            done.set()
            notify("STOPPING=1")
            if server is not None:
                server.shutdown()
            if page is not None:
                page.close()
    finally:
        client.stop()
        client.close()
    log.info("controller of %s stopped", site)


def _own_identity(
    topo: Topology, site: str, identity_file: Path | None
) -> tuple[str | None, str | None]:
    """(USER:PASSWORD, its digest id) of this site's controller, checked against the
    topology's zookeeper.controller_ids; (None, None) when neither names one."""
    expected = topo.zookeeper.controller_ids.get(site)
    if identity_file is None:
        if expected is not None:
            fail(
                f"--identity FILE is required: zookeeper.controller_ids names {site}'s "
                f"controller identity ({expected.partition(':')[0]})",
                ExitCode.BAD_INPUT,
            )
        return None, None
    try:
        credentials = read_secret(SecretRef(file=str(identity_file)), Path.cwd()).reveal()
    except SitectlError as exc:
        fail(f"--identity {identity_file}: {exc}", ExitCode.BAD_INPUT)
    own_id = digest_id(credentials)
    if expected is not None and own_id != expected:
        fail(
            f"--identity {identity_file}: {own_id.partition(':')[0]}'s id is not the one "
            f"zookeeper.controller_ids names for {site} — print it with `sitectl controller "
            "identity FILE` and correct the topology, or use the right file",
            ExitCode.BAD_INPUT,
        )
    return credentials, own_id


@controller_app.command("identity")
def identity_id(
    identity_file: Annotated[Path, typer.Argument(help="A 0600 file holding USER:PASSWORD.")],
) -> None:
    """Print the ZooKeeper id of a controller identity, for zookeeper.controller_ids.

    The id is USER:base64(sha1(USER:PASSWORD)): the topology holds it, and only the
    controller host of its site holds the file.

    [b]Example:[/b] sitectl controller identity /etc/sitectl/controller-dc1.digest
    """
    try:
        credentials = read_secret(SecretRef(file=str(identity_file)), Path.cwd()).reveal()
    except SitectlError as exc:
        fail(f"{identity_file}: {exc}", ExitCode.BAD_INPUT)
    if ":" not in credentials:
        fail(f"{identity_file}: write USER:PASSWORD in it", ExitCode.BAD_INPUT)
    console.print(digest_id(credentials), highlight=False)


def _connect_until_stopped(
    topo: Topology, stop: list[bool], own: str | None = None
) -> KazooClient | None:
    """A daemon outlives a ZooKeeper outage at start-up: retry, each wait bounded."""
    said = False
    while not stop[0]:
        try:
            return connect(topo, timeout=5.0, identity=own)
        except Unavailable as exc:
            if not said:
                log.warning("%s; retrying until it answers", exc)
                said = True
            time.sleep(1.0)
    return None


def pause(
    reason: Annotated[str, typer.Option("--reason", "-r", help="Why: shown by status.")] = "",
    config: ConfigOption = None,
) -> None:
    """Pause automatic promotion (maintenance); manual operations stay allowed.

    [b]Example:[/b] sitectl pause --reason "storage firmware upgrade CHG-1234"
    """
    topo = _topology(config)
    with _errors(), _session(topo) as s:
        text = ControllerState(s.client, s.paths).pause(reason or "no reason given", identity())
    console.print(f"automatic promotion paused: {text}", markup=False)


def unpause(config: ConfigOption = None) -> None:
    """Resume automatic promotion.

    [b]Example:[/b] sitectl unpause
    """
    topo = _topology(config)
    with _errors(), _session(topo) as s:
        was = ControllerState(s.client, s.paths).unpause()
    console.print("automatic promotion unpaused" if was else "automation was not paused")


def ack(config: ConfigOption = None) -> None:
    """Acknowledge the last automatic failover, so another may run within the block period.

    [b]Example:[/b] sitectl ack
    """
    topo = _topology(config)
    with _errors(), _session(topo) as s:
        last = ControllerState(s.client, s.paths).acknowledge(identity())
    if last is None:
        console.print("no automatic failover to acknowledge")
        return
    console.print(
        f"acknowledged automatic failover {last.id} to {last.to_site}: another automatic "
        "failover may run within the block period",
        markup=False,
    )


def _session(topo: Topology) -> contextlib.AbstractContextManager[engine.Session]:
    # Imported here: `controller run` never needs the engine until an operation starts
    # (the daemon imports it then), and importing it is megabytes of an idle daemon.
    from orchestrator.engine import operation as engine

    return engine.session(topo)


class _errors:
    """One line and exit 1 for what ZooKeeper says, as the other commands do."""

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> bool:
        if isinstance(exc, SitectlError):
            fail(
                f"unavailable: {exc}" if isinstance(exc, Unavailable) else f"failed: {exc}",
                ExitCode.OPERATION_FAILED,
            )
        return False


def register(app: typer.Typer) -> None:
    app.add_typer(
        controller_app,
        name="controller",
        help="The controller daemon (one per site and on the witness).",
    )
    app.command()(pause)
    app.command()(unpause)
    app.command()(ack)


if __name__ == "__main__":
    standalone = typer.Typer(no_args_is_help=True)
    register(standalone)
    standalone()
