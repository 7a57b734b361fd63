"""The operator's own steps and approvals in a runbook: the exact command, run as sitectl
runs it, with the values a person following the runbook stands in for sitectl's
(`operation` is "runbook", `epoch` 0: no lease is taken by hand)."""

from __future__ import annotations

import shlex

from orchestrator.config.model import Topology, fill
from orchestrator.inventory import group_name
from orchestrator.plan.model import Plan, Step

Rendered = tuple[tuple[str, ...], str, str]  # commands, what they print, done when


def values(plan: Plan, step: Step) -> dict[str, str]:
    return {
        "operation": "runbook",
        "mode": plan.mode.value,
        "trigger": "manual",
        "from": plan.from_site,
        "to": plan.to_site,
        "epoch": "0",
        "step": step.id,
    }


def command(topo: Topology, plan: Plan, step: Step) -> Rendered:
    told = values(plan, step)
    line = fill(str(step.params["command"]), **told)
    if not step.hosts:
        env = " ".join(f"SITECTL_{k.upper()}={shlex.quote(v)}" for k, v in told.items())
        commands: tuple[str, ...] = (f"env {env} sh -c {shlex.quote(line)}",)
        where = "on this machine, from the topology's directory"
    else:
        group = group_name(step.site or "", str(step.params["on"]))
        commands = (
            f"ansible -i {shlex.quote(topo.ansible.inventory)} {group} "
            f"-m ansible.builtin.shell -a {shlex.quote(line)}",
        )
        where = f"on every host of {group}"
    return commands, f"the command exits 0 {where}", _done(step)


def playbook(topo: Topology, plan: Plan, step: Step) -> Rendered:
    told = values(plan, step)
    limit = group_name(step.site or "", str(step.params["on"])) if step.hosts else "localhost"
    extra = " ".join(
        f"-e {shlex.quote(f'sitectl_{k}={v}')}"
        for k, v in (
            ("op", told["operation"]),
            ("step", told["step"]),
            ("epoch", told["epoch"]),
            ("mode", told["mode"]),
            ("trigger", told["trigger"]),
            ("from", told["from"]),
            ("to", told["to"]),
        )
    )
    run = (
        f"ansible-playbook -i {shlex.quote(topo.ansible.inventory)} "
        f"{shlex.quote(str(step.params['playbook']))} --limit {limit} {extra}"
    )
    return (run,), "PLAY RECAP with failed=0 and unreachable=0 on every host", _done(step)


def approval(topo: Topology, plan: Plan, step: Step) -> Rendered:
    approvers = list(step.params.get("approvers") or ())
    who = " or ".join(approvers) if approvers else "the person your change process names"
    note = f"approval {step.target}: {step.description} — ask {who} before going on"
    return (
        (f"echo {shlex.quote(note)}",),
        "the note; then the approval, recorded where your change process keeps it",
        f"{who} approved; stop here if they did not",
    )


def _done(step: Step) -> str:
    if step.params.get("on_failure") == "continue":
        return f"{step.target} ran; if it failed, note it and go on (on_failure: continue)"
    return f"{step.target} ran without error; if it failed, stop and fix it first"
