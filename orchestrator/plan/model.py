"""The plan as data: ordered groups of steps; the steps of one group may run in parallel.

The engine executes exactly this structure, `sitectl plan --json` prints it and the
runbook renders it, so all three always agree. The JSON shape is documented in
docs/plan-format.md and versioned by PLAN_SCHEMA.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

# The plan's kind, defined with the records that keep it (a leaf module).
from orchestrator.records import Mode as Mode

PLAN_SCHEMA = "sitectl.plan/v1"
IfUnreachable = Literal["fail", "skip"]
# Who asked for the operation: scopes custom steps ("drill") and the automatic approval.
Trigger = Literal["manual", "automatic", "drill"]


class Phase(StrEnum):
    PREFLIGHT = "preflight"
    READINESS = "readiness"
    # Mirror transfers while the application still serves (switchover), so the final
    # one after the stop is short.
    PRE_SYNC = "pre-sync"
    DISABLE_APPLICATION = "disable-application"
    FINAL_SYNC = "final-sync"
    BREAK_MIRRORS = "break-mirrors"
    UNMOUNT = "unmount"
    TICKET = "ticket"  # the site ticket moves: release, fence/wait, grant
    MOUNT = "mount"
    DNS = "dns"
    START_SERVICES = "start-services"
    VERIFY = "verify"
    # Before a reprotect reverses the mirrors: what the old site alone holds is listed,
    # copied into the active site where it can be, and reported (orchestrator/salvage).
    SALVAGE = "salvage"
    REPROTECT = "reprotect"
    # The operator's own steps (topology `custom_steps`), between any of the above.
    CUSTOM = "custom"
    APPROVAL = "approval"  # waits for a person: changes nothing


class Action(StrEnum):
    CHECK_ZOOKEEPER = "check.zookeeper"
    CHECK_LDAP = "check.ldap"
    CHECK_OBJECT_STORE = "check.object_store"
    CHECK_MIRRORS = "check.mirrors"
    CHECK_DNS = "check.dns"
    CHECK_APPLICATION = "check.application"
    GATE_READINESS = "gate.readiness"
    WRITE_CANARY = "canary.write"
    APP_STOP = "app.stop"
    MIRROR_UPDATE = "mirror.update"
    MIRROR_BREAK = "mirror.break"
    MIRROR_REVERSE = "mirror.reverse"
    OBJECT_STORE_REVERSE = "object_store.reverse"
    VOLUME_UNMOUNT = "volume.unmount"
    VOLUME_MOUNT = "volume.mount"
    DNS_PROMOTE = "dns.promote"
    DNS_DEMOTE = "dns.demote"
    DNS_UPDATE = "dns.update"
    APP_START = "app.start"
    TICKET_RELEASE = "ticket.release"
    FENCE_WAIT = "fence.wait"
    TICKET_GRANT = "ticket.grant"
    VERIFY_DNS = "verify.dns"
    VERIFY_APPLICATION = "verify.application"
    VERIFY_CANARY = "verify.canary"
    ACTIVATE = "cluster.activate"
    SALVAGE_SNAPSHOT = "salvage.snapshot"
    SALVAGE_MAIL = "salvage.mail"
    SALVAGE_OBJECTS = "salvage.objects"
    SALVAGE_LDAP = "salvage.ldap_report"
    SALVAGE_DECIDE = "salvage.decide"
    CUSTOM_COMMAND = "custom.command"
    CUSTOM_PLAYBOOK = "custom.playbook"
    APPROVAL = "approval.wait"


@dataclass(frozen=True)
class Step:
    id: str  # stable across runs of the same plan: the checkpoint key
    phase: Phase
    action: Action
    site: str | None
    target: str  # what it acts on: a system, role, volume or zone
    description: str  # one plain sentence, also the log line
    hosts: tuple[str, ...] = ()
    # In a failover the old site may be gone: its steps are skipped, not waited on.
    if_unreachable: IfUnreachable = "fail"
    params: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "phase": self.phase.value,
            "action": self.action.value,
            "site": self.site,
            "target": self.target,
            "hosts": list(self.hosts),
            "if_unreachable": self.if_unreachable,
            "description": self.description,
            "params": dict(self.params),
        }


@dataclass(frozen=True)
class Group:
    phase: Phase
    steps: tuple[Step, ...]

    @property
    def parallel(self) -> bool:
        return len(self.steps) > 1


@dataclass(frozen=True)
class Plan:
    cluster: str
    mode: Mode
    from_site: str
    to_site: str
    old_site_reachable: bool
    groups: tuple[Group, ...]
    notes: tuple[str, ...] = ()
    trigger: Trigger = "manual"

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", Mode(self.mode))  # a caller's "switchover" too

    def steps(self) -> Iterator[Step]:
        for group in self.groups:
            yield from group.steps

    def step(self, step_id: str) -> Step:
        for step in self.steps():
            if step.id == step_id:
                return step
        raise KeyError(step_id)

    def phases(self) -> list[Phase]:
        return list(dict.fromkeys(g.phase for g in self.groups))

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": PLAN_SCHEMA,
            "cluster": self.cluster,
            "mode": self.mode.value,
            "trigger": self.trigger,
            "from_site": self.from_site,
            "to_site": self.to_site,
            "old_site_reachable": self.old_site_reachable,
            "notes": list(self.notes),
            "groups": [
                {
                    "index": index,
                    "phase": group.phase.value,
                    "parallel": group.parallel,
                    "steps": [s.to_dict() for s in group.steps],
                }
                for index, group in enumerate(self.groups)
            ],
        }
