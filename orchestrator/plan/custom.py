"""The operator's own steps and approvals, placed into a built plan. Pure: no I/O.

Each `custom_steps` entry of the topology the plan is scoped to (its mode, "drill" for a
drill's operations, and its direction) becomes a group of its own, before the first
group of its anchor or after the last: a phase names all of that phase's groups, a step
id the group holding it. Several entries at one place keep the topology's order. An
entry whose anchor this plan does not have (a final sync in a failover) is left out and
said in the plan's notes; an anchor no plan of the topology has is refused
(`anchor_problems`), since that is a typo, not a scope.

An automatic failover gets an approval before its first change when the policy asks for
one (`policy.approve_automatic_failover`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from orchestrator.config.model import CustomStep, Topology
from orchestrator.plan.model import Action, Group, Phase, Plan, Step

AUTOMATIC_APPROVAL = "automatic-failover"
_PHASES = {p.value for p in Phase}


def custom_step_id(custom: CustomStep) -> str:
    return f"{'approval' if custom.approval else 'custom'}/{custom.name}"


def scoped(custom: CustomStep, plan: Plan) -> bool:
    """Whether `custom` belongs in `plan`: its mode (a drill's operations are "drill")
    and its direction."""
    mode = "drill" if plan.trigger == "drill" else plan.mode.value
    direction = f"{plan.from_site}->{plan.to_site}"
    return mode in custom.modes and (not custom.directions or direction in custom.directions)


def place_custom_steps(plan: Plan, topo: Topology) -> Plan:
    """`plan` with the topology's custom steps (and the automatic approval) in place."""
    wanted = [c for c in topo.custom_steps if scoped(c, plan)]
    before: dict[int, list[Group]] = {}
    after: dict[int, list[Group]] = {}
    notes = list(plan.notes)
    for custom in wanted:
        found = _anchor(plan.groups, custom.anchor)
        if found is None:
            notes.append(
                f"custom step {custom.name} is not planned: this {plan.mode} has no {custom.anchor}"
            )
            continue
        first, last = found
        group = Group(Phase(_phase(custom)), (_step(custom, plan, topo),))
        if custom.before is not None:
            before.setdefault(first, []).append(group)
        else:
            after.setdefault(last, []).append(group)
    approval = _automatic_approval(plan, topo)
    if approval is not None:
        # Before its first change: right after the readiness gate.
        gate = _anchor(plan.groups, Phase.READINESS.value)
        at = gate[1] if gate else 0
        after.setdefault(at, []).insert(0, approval)
    if not before and not after:
        return replace(plan, notes=tuple(notes))
    groups: list[Group] = []
    for index, group in enumerate(plan.groups):
        groups += before.get(index, [])
        groups.append(group)
        groups += after.get(index, [])
    return replace(plan, groups=tuple(groups), notes=tuple(notes))


def _phase(custom: CustomStep) -> str:
    return Phase.APPROVAL.value if custom.approval else Phase.CUSTOM.value


def _anchor(groups: Iterable[Group], anchor: str) -> tuple[int, int] | None:
    """The first and last index of the groups `anchor` names, or None."""
    found = [
        index
        for index, group in enumerate(groups)
        if (anchor in _PHASES and group.phase.value == anchor)
        or any(step.id == anchor for step in group.steps)
    ]
    return (found[0], found[-1]) if found else None


def _step(custom: CustomStep, plan: Plan, topo: Topology) -> Step:
    if custom.approval:
        return approval_step(
            custom.name,
            custom.description or f"wait until a person approves ({custom.name})",
            approvers=custom.approvers,
            timeout=custom.timeout,
            on_timeout=custom.on_timeout,
        )
    site = plan.to_site if custom.site == "to" else plan.from_site
    hosts = () if custom.on == "sitectl" else tuple(h.name for h in topo.hosts_of(site, custom.on))
    where = "on the sitectl host" if custom.on == "sitectl" else f"on {custom.on} at {site}"
    what = custom.command if custom.command is not None else f"playbook {custom.playbook}"
    old_site_in_failover = plan.mode == "failover" and site == plan.from_site and hosts
    return Step(
        id=custom_step_id(custom),
        phase=Phase.CUSTOM,
        action=Action.CUSTOM_COMMAND if custom.command is not None else Action.CUSTOM_PLAYBOOK,
        site=site if hosts else None,
        target=custom.name,
        hosts=hosts,
        # Like our own steps on the old site: in a failover it may be gone.
        if_unreachable="skip" if old_site_in_failover else "fail",
        description=custom.description or f"run {what} {where}",
        params={
            "command": custom.command,
            "playbook": custom.playbook,
            "on": custom.on,
            "timeout": custom.timeout if custom.timeout is not None else topo.policy.step_timeout,
            "on_failure": custom.on_failure,
        },
    )


def approval_step(
    name: str,
    description: str,
    *,
    approvers: tuple[str, ...] = (),
    timeout: float | None = None,
    on_timeout: str = "reject",
) -> Step:
    return Step(
        id=f"approval/{name}",
        phase=Phase.APPROVAL,
        action=Action.APPROVAL,
        site=None,
        target=name,
        description=description,
        params={"approvers": list(approvers), "timeout": timeout, "on_timeout": on_timeout},
    )


def _automatic_approval(plan: Plan, topo: Topology) -> Group | None:
    if plan.trigger != "automatic" or not topo.policy.approve_automatic_failover:
        return None
    step = approval_step(
        AUTOMATIC_APPROVAL,
        f"wait until a person approves the automatic failover to {plan.to_site} before "
        "its first change",
        timeout=topo.policy.automatic_approval_timeout,
        on_timeout=topo.policy.automatic_approval_on_timeout,
    )
    return Group(Phase.APPROVAL, (step,))


def anchor_problems(topo: Topology, plans: Iterable[Plan]) -> list[tuple[int, str]]:
    """(index in custom_steps, problem) for each custom step whose anchor no plan of
    `plans` (every mode and direction the topology allows) has: a misspelt phase or id."""
    plans = list(plans)
    problems = []
    for index, custom in enumerate(topo.custom_steps):
        if any(_anchor(p.groups, custom.anchor) is not None for p in plans):
            continue
        problems.append(
            (
                index,
                f"{custom.anchor!r} is neither a phase nor a step of any plan — use a "
                f"phase ({', '.join(p.value for p in Phase if p not in _CUSTOM_PHASES)}) or a "
                "step id `sitectl plan` prints",
            )
        )
    return problems


_CUSTOM_PHASES = {Phase.CUSTOM, Phase.APPROVAL}
