"""The LDAP report of a reprotect's salvage (salvage/ldap-report): the entries the old
site's masters wrote since the takeover, each compared with the active site's. LDAP is
reported, never written: multi-provider replication already resolved it, last writer
wins, and a person decides whether the loser mattered."""

from __future__ import annotations

from orchestrator.engine.handlers import StepContext
from orchestrator.engine.steps.salvage import Summaries, Takeover, audit_event, shown
from orchestrator.errors import Unavailable
from orchestrator.plan.model import Step
from orchestrator.salvage import directory, report
from orchestrator.salvage.divergence import LdapState, ldap_changes, newest_csns


class LdapReportHandler(Summaries):
    """salvage/ldap-report: the entries the old site's masters changed since the takeover,
    each compared with the active site's masters. Reported, never written, and never a
    reason to stop: what cannot be read is said in the report."""

    def __init__(self, takeover: Takeover | None = None) -> None:
        super().__init__()
        self.takeover = takeover

    def check(self, step: Step, ctx: StepContext) -> bool:
        return False

    def apply(self, step: Step, ctx: StepContext) -> None:
        ldap = ctx.topology.ldap
        assert ldap is not None  # the plan has this step only with LDAP
        old_site, active_site = step.site or "", step.params["active"]
        since = self.takeover() if self.takeover else None
        if since is None:
            self.said(
                step,
                f"LDAP: no move to {active_site} is recorded, so no takeover to compare "
                f"{old_site}'s changes with: nothing listed",
                ctx,
            )
            return
        old_masters = [m for m in ldap.masters if m.site == old_site]
        listings, unread = [], []
        for master in old_masters:
            try:
                listings.append(directory.changed_since(ctx.topology, master, since, ldap.timeout))
            except Unavailable as exc:
                unread.append(str(exc))
        if old_masters and not listings:
            # A report, not a guard: the reprotect leaves LDAP alone, so nothing is lost by
            # going on; the person reviewing is told what could not be read.
            self.said(
                step,
                f"LDAP: no master of {old_site} answered, so its changes since the takeover "
                f"could not be listed; review them by hand ({'; '.join(unread)})",
                ctx,
            )
            return
        old = newest_csns(listings)
        active_listings = []
        for master in (m for m in ldap.masters if m.site == active_site):
            try:
                active_listings.append(directory.csns_of(ctx.topology, master, old, ldap.timeout))
            except Unavailable as exc:
                unread.append(str(exc))
        changes = ldap_changes(
            old, newest_csns(active_listings), since, [m.server_id for m in old_masters]
        )
        review = [c for c in changes if c.state is not LdapState.REPLICATED]
        ctx.figures["salvage/ldap/changed"] = len(changes)
        ctx.figures[report.LDAP_TO_REVIEW] = len(review)
        ctx.figures["salvage/ldap/dns"] = " ".join(f"{c.dn} ({c.state})" for c in changes)
        audit_event(
            ctx, "salvage.ldap", step, old_site=old_site, since=since,
            changes=[{"dn": c.dn, "csn": c.csn, "active_csn": c.active_csn, "state": c.state.value}
                     for c in changes],
            unread=unread,
        )  # fmt: skip
        sentence = (
            f"LDAP: {old_site}'s masters changed {len(changes)} entr(y/ies) after the takeover; "
            f"{len(review)} differ at {active_site} and need a person's review"
        )
        if review:
            sentence += ": " + shown([f"{c.dn} ({c.state})" for c in review])
        if unread:
            sentence += f"; not read: {'; '.join(unread)}"
        self.said(step, sentence, ctx)

    def verify(self, step: Step, ctx: StepContext) -> None:
        return None
