"""Step implementations, one module per kind of work, and the table the engine uses."""

from __future__ import annotations

from collections.abc import Callable

from orchestrator.engine.handlers import StepHandler
from orchestrator.engine.steps.app import AppHandler, CanaryHandler
from orchestrator.engine.steps.approval import ApprovalHandler
from orchestrator.engine.steps.cluster import ActivateHandler
from orchestrator.engine.steps.custom import CustomCommandHandler, CustomPlaybookHandler
from orchestrator.engine.steps.dns import (
    DnsDemoteHandler,
    DnsPromoteHandler,
    DnsUpdateHandler,
    DnsVerifyHandler,
)
from orchestrator.engine.steps.objects import ObjectStoreReverseHandler
from orchestrator.engine.steps.preflight import PreflightHandler, ReadinessGate
from orchestrator.engine.steps.salvage import (
    DecideHandler,
    MailHandler,
    ObjectsHandler,
    SnapshotHandler,
    Takeover,
)
from orchestrator.engine.steps.salvage_ldap import LdapReportHandler
from orchestrator.engine.steps.ticket import (
    FenceWaitHandler,
    TicketGrantHandler,
    TicketMoves,
    TicketReleaseHandler,
)
from orchestrator.engine.steps.verify import AppVerifyHandler, CanaryVerifyHandler
from orchestrator.engine.steps.volumes import MirrorHandler, MountHandler
from orchestrator.plan.model import Action


def default_handlers(
    set_active_site: Callable[[str], None],
    tickets: TicketMoves | None = None,
    takeover: Takeover | None = None,
) -> dict[Action, StepHandler]:
    """`tickets`: the site ticket bound to the operation's lease (without it the ticket
    steps fail, saying so). `takeover`: when the active site took over (the LDAP salvage
    report lists the old site's changes since; without it, it lists none)."""
    preflight = PreflightHandler()
    return {
        Action.CHECK_ZOOKEEPER: preflight,
        Action.CHECK_LDAP: preflight,
        Action.CHECK_OBJECT_STORE: preflight,
        Action.CHECK_MIRRORS: preflight,
        Action.CHECK_DNS: preflight,
        Action.CHECK_APPLICATION: preflight,
        Action.GATE_READINESS: ReadinessGate(),
        Action.WRITE_CANARY: CanaryHandler(),
        Action.APP_STOP: AppHandler("stop"),
        Action.MIRROR_UPDATE: MirrorHandler("update"),
        Action.MIRROR_BREAK: MirrorHandler("break"),
        Action.MIRROR_REVERSE: MirrorHandler("reverse"),
        Action.OBJECT_STORE_REVERSE: ObjectStoreReverseHandler(),
        Action.VOLUME_UNMOUNT: MountHandler("unmount"),
        Action.VOLUME_MOUNT: MountHandler("mount"),
        Action.DNS_PROMOTE: DnsPromoteHandler(),
        Action.DNS_DEMOTE: DnsDemoteHandler(),
        Action.DNS_UPDATE: DnsUpdateHandler(),
        Action.APP_START: AppHandler("start"),
        Action.TICKET_RELEASE: TicketReleaseHandler(tickets),
        Action.FENCE_WAIT: FenceWaitHandler(tickets),
        Action.TICKET_GRANT: TicketGrantHandler(tickets),
        Action.VERIFY_DNS: DnsVerifyHandler(),
        Action.VERIFY_APPLICATION: AppVerifyHandler(),
        Action.VERIFY_CANARY: CanaryVerifyHandler(),
        Action.ACTIVATE: ActivateHandler(set_active_site),
        Action.SALVAGE_SNAPSHOT: SnapshotHandler(),
        Action.SALVAGE_MAIL: MailHandler(),
        Action.SALVAGE_OBJECTS: ObjectsHandler(),
        Action.SALVAGE_LDAP: LdapReportHandler(takeover),
        Action.SALVAGE_DECIDE: DecideHandler(),
        Action.CUSTOM_COMMAND: CustomCommandHandler(),
        Action.CUSTOM_PLAYBOOK: CustomPlaybookHandler(),
        Action.APPROVAL: ApprovalHandler(),
    }
