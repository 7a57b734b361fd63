"""What several step kinds share: running one of our playbooks for a step, and finding
hosts and probes in the topology."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from orchestrator.adapters.ansible import PlaybookCall, PlaybookResult, run_batch, run_playbook
from orchestrator.adapters.probes import ProbeResult, Tls, canary_subject, find_message, probe
from orchestrator.adapters.secrets import read_secret
from orchestrator.checks.application import probe_login, probe_tls
from orchestrator.config.model import VOLUME_DRIVERS, Host, Topology
from orchestrator.coordination.paths import step_file_name
from orchestrator.engine.handlers import StepContext
from orchestrator.errors import Failed
from orchestrator.gates import GatedRun, HandedOver
from orchestrator.plan.model import Step

PROBE_TIMEOUT_S = 3.0


def step_timeout(topo: Topology, step: Step) -> float:
    return (
        topo.policy.unreachable_timeout
        if step.if_unreachable == "skip"
        else topo.policy.step_timeout
    )


# Tags of our playbooks' tasks that not every call runs (see orchestrator/playbooks/volume.yml):
# what only a person running a playbook by hand needs (the guard: sitectl composes each
# action itself; the unfenced variants: sitectl always passes an epoch, step_tags), each
# volume driver's tasks, and app.yml's two ways to start and stop a role. A call leaves
# out those it does not run; a task skipped by `when` still costs a fork.
BY_HAND_TAG = "sitectl_by_hand"
APP_COMMANDS_TAG = "sitectl_app_commands"
APP_SERVICES_TAG = "sitectl_app_services"


def driver_tag(driver: str) -> str:
    return f"sitectl_driver_{driver}"


TASK_TAGS = frozenset(
    [BY_HAND_TAG, APP_COMMANDS_TAG, APP_SERVICES_TAG, *map(driver_tag, VOLUME_DRIVERS)]
)


def step_tags(ctx: StepContext, step: Step) -> dict[str, Any]:
    """The extra vars every run of a step carries, so a later reader (and the hosts'
    epoch ledgers) can tell which operation, step and epoch made a change."""
    return {
        "sitectl_op": ctx.operation.id,
        "sitectl_step": step.id,
        "sitectl_epoch": ctx.fence.epoch,
    }


def playbook_call(
    ctx: StepContext,
    step: Step,
    name: str,
    hosts: tuple[str, ...],
    extravars: dict[str, Any],
    runs_tags: Iterable[str] = (),
    secrets: Mapping[str, HandedOver] | None = None,
) -> PlaybookCall:
    """The call of playbook `name` for `step`; `runs_tags`: the TASK_TAGS of its tasks
    that may run for it; `secrets`: those it reads by an environment variable's name."""
    topo = ctx.topology
    tags = step_tags(ctx, step)
    return PlaybookCall(
        playbook=topo.playbook_dir / name,
        hosts=hosts,
        extravars={**extravars, **tags},
        skip_tags=TASK_TAGS - set(runs_tags),
        secrets=dict(secrets or {}),
    )


def run_call(ctx: StepContext, step: Step, call: PlaybookCall) -> PlaybookResult:
    """Run one step's playbook on its own."""
    topo = ctx.topology
    return run_playbook(
        playbook=call.playbook,
        inventory=topo.resolve(topo.ansible.inventory),
        hosts=call.hosts,
        extravars=call.extravars,
        artifacts=ctx.artifacts / step_file_name(step.id),
        timeout=step_timeout(topo, step),
        on_task=ctx.on_task,
        skip_tags=call.skip_tags,
        cancel=ctx.cancel,
        handover=call.secrets,
    )


class PlaybookStep(ABC):
    """A step whose `apply` is one run of one playbook. The executor may run several
    such steps one after another in a single ansible-playbook run (engine/batch.py), so
    `apply` is split: `call` says what to run, `starting` notes what `verify` will need
    (it is called in both cases, just before the playbook starts)."""

    @abstractmethod
    def call(self, step: Step, ctx: StepContext) -> PlaybookCall:
        """The playbook, hosts and extra vars of `step`."""

    def starting(self, step: Step, ctx: StepContext) -> None:
        return None

    def apply(self, step: Step, ctx: StepContext) -> None:
        self.starting(step, ctx)
        run_call(ctx, step, self.call(step, ctx))

    def gated_run(self) -> GatedRun:
        """What runs a stretch of such steps in one run that waits at the engine's gates
        (engine/batch.py): ansible-playbook, with a gate play before each step's plays."""
        return run_batch


def hosts_named(topo: Topology, names: tuple[str, ...]) -> list[Host]:
    return [h for h in topo.hosts if h.name in names]


def role_probes(topo: Topology, role: str, names: tuple[str, ...]) -> list[ProbeResult]:
    """Every probe of `role` on each of the named hosts; IMAP logs in as the probe user
    (as the health check does), so "up" means a user can read mail there."""
    probes = topo.roles[role].probes
    login = probe_login(topo) if any(p.kind == "imap" for p in probes) else None
    return [
        probe(
            p.kind,
            host.address,
            p.port,
            PROBE_TIMEOUT_S,
            login=login if p.kind == "imap" else None,
            tls=probe_tls(topo, p, host.name),
        )
        for host in hosts_named(topo, names)
        for p in probes
    ]


def site_probes(topo: Topology, site: str) -> list[ProbeResult]:
    return [
        result
        for name, role in topo.roles.items()
        if role.moves and role.probes
        for result in role_probes(topo, name, tuple(h.name for h in topo.hosts_of(site, name)))
    ]


def first_probe_address(topo: Topology, site: str, kind: str) -> tuple[str, int, Tls | None] | None:
    """Where the first `kind` probe of `site` connects, and how it speaks TLS."""
    for name, role in topo.roles.items():
        for host in topo.hosts_of(site, name):
            for p in role.probes:
                if p.kind == kind:
                    return host.address, p.port, probe_tls(topo, p, host.name)
    return None


def describe(results: list[ProbeResult]) -> str:
    return "; ".join(r.describe() for r in results)


def artifacts_dir(root: Path, op_id: str) -> Path:
    return root / op_id


def canary_count(ctx: StepContext, site: str) -> int:
    """How many copies of this operation's canary the site's IMAP shows."""
    topo = ctx.topology
    user = topo.application.probe_user
    imap = first_probe_address(topo, site, "imap")
    if user is None or imap is None:
        raise Failed("no probe_user or IMAP probe in the topology: cannot look for the canary")
    password = read_secret(user.password, topo.base_dir).reveal()
    address, port, tls = imap
    return find_message(
        address, port, user.user, password, canary_subject(ctx.operation.id), tls=tls
    )
