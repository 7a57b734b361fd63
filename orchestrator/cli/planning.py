"""`sitectl validate`, `plan`, `runbook` and `inventory`: what the topology says and what a
move would do, changing nothing; thin wrappers over the config, plan and runbook modules.
Mounted by orchestrator/cli/main.py, like every verb, only when one of them runs."""

from __future__ import annotations

from dataclasses import replace
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from orchestrator.cli.exitcodes import ExitCode
from orchestrator.cli.options import TOPOLOGY_CHECKS, ConfigOption, JsonOption, load
from orchestrator.cli.output import console, emit_json, err_console, fail
from orchestrator.config import InvalidTopology, Topology, config_path, load_topology
from orchestrator.errors import SitectlError
from orchestrator.inventory import render_inventory_text
from orchestrator.plan import (
    ObservedState,
    Plan,
    PlanRefused,
    assumed_state,
    build_plan,
    build_reprotect_plan,
)
from orchestrator.plan.digest import plan_digest
from orchestrator.plan.planfile import plan_file_text
from orchestrator.runbook import render_runbook

RECORD_TIMEOUT_S = 2.0


def register(app: typer.Typer) -> None:
    app.command()(validate)
    app.command()(plan)
    app.command()(runbook)
    app.command()(inventory)


class ModeChoice(StrEnum):
    switchover = "switchover"
    failover = "failover"


ModeOption = Annotated[
    ModeChoice,
    typer.Option(
        "--mode",
        "-m",
        help="switchover (planned, lossless) or failover (the old site may be gone).",
    ),
]
ToOption = Annotated[str, typer.Option("--to", help="The site to move the service to.")]
FromOption = Annotated[
    str | None,
    typer.Option(
        "--from",
        help="Plan as if this site were active. Default: the site ZooKeeper records as "
        "active (after a failover no longer the topology file's), or the file's when "
        "ZooKeeper does not answer.",
    ),
]
UnreachableOption = Annotated[
    list[str] | None,
    typer.Option(
        "--unreachable",
        help="Plan as if this site did not answer (repeatable), e.g. the old site in a failover.",
    ),
]


def _plan(
    topo: Topology, mode: str, to: str, unreachable: list[str] | None, from_site: str | None
) -> tuple[Plan, ObservedState]:
    for site in unreachable or []:
        if site not in topo.sites:
            fail(
                f"--unreachable {site}: no such site — use one of: {', '.join(topo.sites)}",
                ExitCode.BAD_INPUT,
            )
    observed = _observed(topo, from_site, frozenset(unreachable or []))
    try:
        return build_plan(topo, observed, mode.value, to), observed
    except PlanRefused as exc:
        fail(f"refused: {exc}", ExitCode.GATE_REFUSED if exc.gate else ExitCode.BAD_INPUT)


def _reprotect_plan(
    topo: Topology, unreachable: list[str] | None, from_site: str | None
) -> tuple[Plan, ObservedState]:
    observed = _observed(topo, from_site, frozenset(unreachable or []))
    try:
        return build_reprotect_plan(topo, observed), observed
    except PlanRefused as exc:
        fail(f"refused: {exc}", ExitCode.GATE_REFUSED if exc.gate else ExitCode.BAD_INPUT)


def _observed(topo: Topology, from_site: str | None, unreachable: frozenset[str]) -> ObservedState:
    """What to plan from. After a failover the service no longer runs where the topology
    file says, nor do the mirrors point its way: unless told (--from), plan from what
    sitectl observes, as `switchover --dry-run` does; say on stderr when that cannot be."""
    datacenters = topo.datacenters()
    if from_site is not None:
        if from_site not in datacenters:
            fail(
                f"--from {from_site}: not a datacenter — use one of: {', '.join(datacenters)}",
                ExitCode.BAD_INPUT,
            )
        return assumed_state(topo.model_copy(update={"active_site": from_site}), unreachable)
    from orchestrator.coordination.client import connect
    from orchestrator.coordination.paths import ZkPaths
    from orchestrator.coordination.store import ZkStore
    from orchestrator.engine.observe import observe

    try:
        client = connect(topo, timeout=RECORD_TIMEOUT_S)
    except SitectlError:
        err_console.print(
            f"ZooKeeper did not answer within {RECORD_TIMEOUT_S:g} s: planning from the "
            f"topology file's active site {topo.active_site} (--from SITE to say otherwise)",
            markup=False,
        )
        return assumed_state(topo, unreachable)
    try:
        store = ZkStore(client, ZkPaths.for_cluster(topo.zookeeper.chroot, topo.cluster))
        seen = observe(topo, store)
    finally:
        client.stop()
        client.close()
    if seen.active_site != topo.active_site:
        err_console.print(
            f"{seen.active_site} is active, as ZooKeeper records it (the topology file says "
            f"{topo.active_site}): planning from {seen.active_site}",
            markup=False,
        )
    return replace(seen, unreachable_sites=seen.unreachable_sites | unreachable)


def validate(config: ConfigOption = None, json_output: JsonOption = False) -> None:
    """Check a topology file, the playbooks a move would run and the extras its drivers
    need; print one line per problem.

    Exit 0 when valid, 2 otherwise. Every other command validates the same way and
    changes nothing when the file is invalid.

    [b]Example:[/b] sitectl validate -c inventories/example-zimbra/topology.yaml
    """
    try:
        path = config_path(config)
        topo = load_topology(path, checks=TOPOLOGY_CHECKS)
    except InvalidTopology as exc:
        if json_output:
            emit_json({"valid": False, "problems": [p.as_dict() for p in exc.problems]})
            raise typer.Exit(int(ExitCode.BAD_INPUT)) from None
        fail([str(p) for p in exc.problems], ExitCode.BAD_INPUT)
    summary = {
        "valid": True,
        "file": str(path),
        "cluster": topo.cluster,
        "active_site": topo.active_site,
        "sites": list(topo.sites),
        "hosts": len(topo.hosts),
        "volumes": len(topo.volumes),
        "dns_zones": len(topo.dns.zones),
        "ldap_masters": len(topo.ldap.masters) if topo.ldap else 0,
        "custom_steps": len(topo.custom_steps),
    }
    if json_output:
        emit_json(summary)
    else:
        console.print(
            f"{path}: valid — cluster {topo.cluster}, {len(topo.sites)} sites, "
            f"{len(topo.hosts)} hosts, {len(topo.volumes)} volumes, "
            f"{len(topo.dns.zones)} DNS zones; {topo.active_site} active by default"
        )


def plan(
    to: ToOption,
    mode: ModeOption = ModeChoice.switchover,
    config: ConfigOption = None,
    unreachable: UnreachableOption = None,
    from_site: FromOption = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Also write the plan with its digest to this file, for "
            "`switchover|failover --plan FILE` to run exactly this plan.",
        ),
    ] = None,
    json_output: JsonOption = False,
) -> None:
    """Print the ordered steps an operation would run; changes nothing.

    Steps in one group may run in parallel. The JSON form is documented in
    docs/plan-format.md. With -o FILE the plan is also saved with its digest: a
    `switchover --plan FILE` later runs only if the plan that would run then is the same
    (else it refuses, exit 5, printing both digests).

    [b]Example:[/b] sitectl plan --to dc2 --mode failover --unreachable dc1 --json

    [b]Example:[/b] sitectl plan --to dc2 -o dc2.json   (then: sitectl switchover --plan dc2.json)
    """
    topo, _ = load(config)
    the_plan, _ = _plan(topo, mode, to, unreachable, from_site)
    if output is not None:
        try:
            output.write_text(plan_file_text(the_plan), encoding="utf-8")
        except OSError as exc:
            fail(f"--output {output}: cannot write the plan file: {exc}", ExitCode.BAD_INPUT)
        # On stderr: stdout stays the plan (its JSON with --json).
        err_console.print(
            f"wrote {output}: plan {plan_digest(the_plan)}; run it with "
            f"`sitectl {the_plan.mode} --plan {output}`",
            markup=False,
        )
    if json_output:
        emit_json(the_plan.to_dict())
        return
    console.print(
        f"[b]{the_plan.mode}[/b] of {the_plan.cluster}: {the_plan.from_site} → "
        f"{the_plan.to_site}, {sum(1 for _ in the_plan.steps())} steps in "
        f"{len(the_plan.groups)} groups, plan {plan_digest(the_plan)}"
    )
    for note in the_plan.notes:
        console.print(f"note: {note}", markup=False)
    # Plain lines rather than a table: they stay readable in an 80-column terminal and
    # in a pasted incident log.
    for g_index, group in enumerate(the_plan.groups, start=1):
        together = f" ({len(group.steps)} in parallel)" if group.parallel else ""
        console.print(f"[b]{g_index:>2}. {group.phase.value}[/b]{together}")
        for s_index, step in enumerate(group.steps, start=1):
            where = f" on {', '.join(step.hosts)}" if step.hosts else ""
            skip = " — skipped if unreachable" if step.if_unreachable == "skip" else ""
            console.print(
                f"    {g_index}.{s_index} {step.id}: {step.description}{where}{skip}",
                markup=False,
            )


class RunbookMode(StrEnum):
    switchover = "switchover"
    failover = "failover"
    reprotect = "reprotect"


def runbook(
    to: Annotated[
        str | None,
        typer.Option("--to", help="The site to move the service to (not with reprotect)."),
    ] = None,
    mode: Annotated[
        RunbookMode,
        typer.Option(
            "--mode",
            "-m",
            help="switchover (planned, lossless), failover (the old site may be gone) or "
            "reprotect (reverse the mirrors after a move, salvage first).",
        ),
    ] = RunbookMode.switchover,
    config: ConfigOption = None,
    unreachable: UnreachableOption = None,
    from_site: FromOption = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file, not stdout.")
    ] = None,
) -> None:
    """Render the plan as a Markdown runbook a person can follow by hand.

    `--mode reprotect` (no --to) renders what `sitectl reprotect` would do now.

    [b]Example:[/b] sitectl runbook --to dc2 --mode failover -o failover-dc2.md
    """
    topo, path = load(config)
    if mode is RunbookMode.reprotect:
        if to is not None:
            fail("--to: a reprotect moves nothing — leave it out", ExitCode.BAD_INPUT)
        the_plan, observed = _reprotect_plan(topo, unreachable, from_site)
    elif to is None:
        fail(f"--to SITE: where the {mode.value} moves the service", ExitCode.BAD_INPUT)
    else:
        the_plan, observed = _plan(topo, ModeChoice(mode.value), to, unreachable, from_site)
    text = render_runbook(topo, the_plan, str(path), observed.ticket)
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        console.print(f"wrote {output} ({sum(1 for _ in the_plan.steps())} steps)")


def inventory(
    config: ConfigOption = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file, not stdout.")
    ] = None,
) -> None:
    """Print the Ansible inventory the topology implies (groups <site>_<role>).

    [b]Example:[/b] sitectl inventory -c topology.yaml -o hosts.yml
    """
    # Checked like every command (a world-readable key is refused here too), except the
    # inventory itself: it may be missing or stale, and writing it is this command's job.
    topo, path = load(config, check_filesystem=False)
    try:
        load_topology(path)
    except InvalidTopology as exc:
        # Only the file checks can fail now: the inventory's own are on ansible.inventory
        # (missing, not YAML) and hosts.N.name (a host not in its group).
        others = [
            str(p)
            for p in exc.problems
            if p.field != "ansible.inventory" and not p.field.startswith("hosts.")
        ]
        if others:
            fail(others, ExitCode.BAD_INPUT)
    text = render_inventory_text(topo)
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        console.print(f"wrote {output}")
