"""Operations the leading controller runs: `sitectl switchover|failover|reprotect|resume`
write a request and follow the operation from its records; `sitectl attach` follows one
again. The same progress (a spinner per running step, the engine's sentences as they
are logged), the same summary and last line, the same exit codes as when sitectl runs
the operation itself (`--local`, cli/operations.py).

Ctrl-C, or a terminal that goes away, only stops the following: the operation goes on
in the controller (exit 6 after Ctrl-C, saying how to follow it again).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer

from orchestrator.asking.client import NoController, NoRecord, RequestRefused, taken
from orchestrator.asking.follow import Follower, PlanEvents
from orchestrator.asking.model import AnswerState, OperationRequest
from orchestrator.asking.store import RequestStore
from orchestrator.audit import beside
from orchestrator.cli.exitcodes import ExitCode
from orchestrator.cli.failures import engine_errors
from orchestrator.cli.options import ConfigOption, JsonOption, load
from orchestrator.cli.output import console, err_console, fail
from orchestrator.cli.progress import finish, live
from orchestrator.config import Topology
from orchestrator.coordination.client import connect
from orchestrator.coordination.paths import ZkPaths
from orchestrator.coordination.store import ZkStore
from orchestrator.engine import exits
from orchestrator.errors import SitectlError
from orchestrator.plan import Plan
from orchestrator.records import OperationRecord


@contextmanager
def _zookeeper(topo: Topology) -> Iterator[tuple[ZkStore, RequestStore]]:
    with engine_errors():
        client = connect(topo)
    try:
        paths = ZkPaths.for_cluster(topo.zookeeper.chroot, topo.cluster)
        yield ZkStore(client, paths), RequestStore(client, paths)
    finally:
        client.stop()
        client.close()


def submit(topo: Topology, request: OperationRequest, json_output: bool) -> None:
    """Ask the leading controller for the operation and follow it to its end."""
    with _zookeeper(topo) as (store, requests):
        follower = Follower(store, requests)
        try:
            name = requests.submit(request)
        except SitectlError as exc:
            fail(f"unavailable: could not submit the request: {exc}", ExitCode.OPERATION_FAILED)
        beside(topo.resolve(topo.local_state)).write(
            "operation.requested",
            request=name,
            verb=request.verb.value,
            to_site=request.to_site,
            operation=request.operation,
            reason=request.reason,
        )
        claimed = False
        try:
            try:
                found = taken(follower, name)
            except RequestRefused as exc:
                fail(str(exc), exc.exit_code)
            except (NoController, NoRecord) as exc:
                fail(f"unavailable: {exc}", ExitCode.OPERATION_FAILED)
            claimed = True
            if not json_output:
                err_console.print(
                    f"{request.verb.value} {found.operation} runs in the leading controller "
                    f"({found.answer.controller}); Ctrl-C stops following it, not the operation",
                    markup=False,
                    highlight=False,
                )
            follow(topo, follower, found.operation, json_output, request=name)
        except KeyboardInterrupt:
            _detached(requests, name, claimed)


def _detached(requests: RequestStore, name: str, claimed: bool) -> None:
    if not claimed and requests.withdraw(name):
        fail(
            f"request {name} withdrawn before any controller took it: nothing started",
            ExitCode.OPERATION_FAILED,
        )
    found = requests.answer(name)
    op = found[0].operation if found else None
    which = op or f"the operation of request {name}"
    err_console.print(
        f"detached: {which} goes on in the leading controller; `sitectl attach {op or ''}` "
        f"follows it again, `sitectl abort {op or ''}` stops it at its next safe point",
        markup=False,
        highlight=False,
    )
    raise typer.Exit(int(ExitCode.DETACHED))


def follow(
    topo: Topology,
    follower: Follower,
    op_id: str,
    json_output: bool,
    request: str | None = None,
) -> None:
    """Follow `op_id` to its end, print its summary and exit as --local would."""
    from orchestrator.engine.lifecycle import NoEvents

    plan = _plan_of(topo, follower.store.operation(op_id)[0])
    steps = {step.id: step for step in plan.steps()} if plan is not None else {}
    with live(plan, quiet=json_output) as spinners:
        op = follower.follow(op_id, PlanEvents(steps, spinners or NoEvents()))
    records = follower.store.records(op_id)
    figures: dict[str, object] = {}
    if request is not None:
        found = follower.requests.answer(request)
        if found is not None and found[0].state is AnswerState.CLOSED:
            figures = dict(found[0].figures)
    step_ids = list(steps) or sorted(records, key=lambda s: records[s].started or float("inf"))
    finish(op, step_ids, records, figures, json_output)


def _plan_of(topo: Topology, op: OperationRecord) -> Plan | None:
    """The operation's plan, as this topology plans it; None when it no longer can (the
    steps are then shown in the order they started)."""
    from orchestrator.engine.operation import ResumeRefused, replan

    try:
        return replan(topo, op)
    except (ResumeRefused, SitectlError):
        return None


def register(app: typer.Typer) -> None:
    @app.command()
    def attach(
        operation: Annotated[
            str | None,
            typer.Argument(help="Operation id (default: the current one, else the last)."),
        ] = None,
        config: ConfigOption = None,
        json_output: JsonOption = False,
    ) -> None:
        """Follow an operation to its end, wherever it runs.

        Shows its steps and the executor's sentences as they come, then the summary, and
        exits as the command that started it would have: 0 succeeded, 4 refused, 1
        anything else. An operation already over is summed up at once. Ctrl-C stops
        following, never the operation.

        [b]Example:[/b] sitectl attach 20261207T050000Z-ab12
        """
        topo = load(config)[0]
        with _zookeeper(topo) as (store, requests):
            try:
                op_id = operation or store.current_operation() or _last(store)
                if not op_id:
                    fail("refused: no operation recorded yet", ExitCode.BAD_INPUT)
                try:
                    store.operation(op_id)
                except KeyError:
                    fail(f"refused: no operation {op_id}", ExitCode.BAD_INPUT)
                try:
                    follow(topo, Follower(store, requests), op_id, json_output)
                except KeyboardInterrupt:
                    console.print(
                        f"detached: {op_id} goes on; `sitectl attach {op_id}` follows it again",
                        markup=False,
                    )
                    raise typer.Exit(int(ExitCode.DETACHED)) from None
            except SitectlError as exc:
                code, line = exits.failure(exc)
                fail(line, code)


def _last(store: ZkStore) -> str:
    ids = store.operation_ids()
    return ids[-1] if ids else ""
