"""RFC 2136 dynamic updates signed with TSIG (BIND and any server that speaks them).

One signed message per zone replaces every record for the target site, so the server
applies the switch atomically; several messages only when one would be too large.
Updates go over TCP (large messages, no truncation) to the zone's update servers in
order; the next one is tried only when a server is unavailable, never after a refusal.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.update

from orchestrator.adapters.dns import outcomes
from orchestrator.adapters.dns.fence import (
    FENCE_TTL,
    FenceState,
    fence_name,
    fence_rdataset,
    fence_text,
    parse_fence,
)
from orchestrator.adapters.dns.query import resolve
from orchestrator.adapters.dns.records import (
    SAFE_MESSAGE_BYTES,
    RecordChange,
    batches,
    in_zone,
)
from orchestrator.adapters.dns.retry import RetryPolicy
from orchestrator.adapters.dns.tsig import TsigKey, load_tsig
from orchestrator.config.model import DnsServer, DnsZone
from orchestrator.errors import Failed, LeaseLost, SitectlError, Unavailable

log = logging.getLogger(__name__)

TAG_LABEL = "_sitectl-op"
KEYCHECK_LABEL = "_sitectl-keycheck"
# Rounds of read + compare-and-set before giving up a contended fence claim.
_CLAIM_ROUNDS = 3


@dataclass(frozen=True)
class ApplyResult:
    zone: str
    server: str  # the server that accepted the (last) message
    records: int
    messages: int
    epoch: int | None

    def describe(self) -> str:
        fence = f", fenced at epoch {self.epoch}" if self.epoch is not None else ""
        return (
            f"zone {self.zone}: {self.records} record(s) replaced at {self.server} in "
            f"{self.messages} signed update(s){fence}"
        )


@dataclass(frozen=True)
class FenceClaim:
    zone: str
    epoch: int
    previous: int | None
    server: str
    already_held: bool = False  # a retry found our own claim already in place

    def describe(self) -> str:
        if self.already_held:
            return f"zone {self.zone}: fence already at epoch {self.epoch} (ours)"
        before = "no fence" if self.previous is None else f"epoch {self.previous}"
        return f"zone {self.zone}: fence moved from {before} to epoch {self.epoch} at {self.server}"


@dataclass
class Rfc2136Provider:
    """Signed dynamic updates of one zone. Thread-safe: it holds no connection."""

    zone: str
    servers: Sequence[DnsServer]
    key: TsigKey = field(repr=False)
    timeout: float = 3.0  # per message and server
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    batch_bytes: int = SAFE_MESSAGE_BYTES

    @classmethod
    def from_zone(cls, zone: DnsZone, base_dir: Path, **options: object) -> Rfc2136Provider:
        if zone.provider != "rfc2136" or zone.tsig is None:
            raise Failed(f"zone {zone.name} is not an rfc2136 zone with a tsig key")
        return cls(zone.name, zone.update_servers, load_tsig(zone.tsig, base_dir), **options)  # type: ignore[arg-type]

    # -- the step's work -------------------------------------------------------------

    def apply(
        self, changes: Sequence[RecordChange], *, epoch: int | None = None, tag: str | None = None
    ) -> ApplyResult:
        """Replace each record's RRset with its one new value.

        With `epoch`, every message also requires the fence to hold exactly epoch=N,
        so a server that has seen a newer claim refuses it (→ LeaseLost). `tag` (the
        operation and step id) is written to `_sitectl-op.<zone>` in the same message,
        so after a crash the next leader can see which update landed.
        """
        items = in_zone(changes, self.zone)
        guarded = [c for c in items if c.owner() == fence_name(self.zone)]
        if guarded:
            raise Failed(f"zone {self.zone}: records may not touch the fence record")
        server = "-"
        # No records but a fence or a tag still makes one message: the caller asked for
        # the fence check (and the tag) to happen.
        groups = batches(items, self.batch_bytes) or [[]]
        for group in groups:
            server = self._send_with_retry(
                "update", lambda g=group: self._update(g, epoch, tag), fenced=epoch is not None
            )
        result = ApplyResult(self.zone, server, len(items), len(groups), epoch)
        log.info("%s", result.describe())
        return result

    def apply_claiming(
        self,
        changes: Sequence[RecordChange],
        *,
        epoch: int,
        tag: str | None = None,
        before_write: Callable[[], None] | None = None,
    ) -> ApplyResult:
        """`claim_fence(epoch)` and `apply(changes, epoch=epoch)` in one message where
        the changes fit in one: the claim's compare-and-set is that message's
        prerequisite, so it is as atomic as the claim alone. One change for the
        secondaries to transfer, not two: BIND defers a NOTIFY that comes while it still
        transfers the previous change, by about half a second. `before_write` (the
        caller's own lease check) runs once the fence is read and found not newer,
        before anything is sent."""
        items = in_zone(changes, self.zone)
        if any(c.owner() == fence_name(self.zone) for c in items):
            raise Failed(f"zone {self.zone}: records may not touch the fence record")
        groups = batches(items, self.batch_bytes) or [[]]
        for _ in range(_CLAIM_ROUNDS):
            seen = self.read_fence()
            self._refuse_newer(seen, epoch)
            if before_write is not None:
                before_write()
            if seen.epoch == epoch:
                return self.apply(changes, epoch=epoch, tag=tag)
            try:
                server = self._send_with_retry(
                    "fenced update",
                    lambda s=seen: self._update(groups[0], epoch, tag, claiming=s),
                    fenced=True,
                )
            except LeaseLost:
                log.info(
                    "zone %s: fence changed while claiming epoch %d; reading it again",
                    self.zone,
                    epoch,
                )
                continue
            log.info("%s", FenceClaim(self.zone, epoch, seen.epoch, server).describe())
            for group in groups[1:]:
                server = self._send_with_retry(
                    "update", lambda g=group: self._update(g, epoch, tag), fenced=True
                )
            result = ApplyResult(self.zone, server, len(items), len(groups), epoch)
            log.info("%s", result.describe())
            return result
        raise self._kept_changing(epoch)

    def check_key(self) -> str:
        """A signed update that changes nothing, to prove the key is accepted and granted.

        Prerequisite: the apex SOA exists (always true). Update: delete an RRset that
        does not exist, which needs the key's grant but leaves the zone (and its serial)
        as it was. Returns the server that accepted it.
        """

        def build() -> dns.update.Update:
            message = self._message()
            message.present(self.zone, "SOA")
            message.delete(f"{KEYCHECK_LABEL}.{self.zone}", "TXT")
            return message

        return self._send_with_retry("key check", build, fenced=False)

    # -- fencing ----------------------------------------------------------------------

    def read_fence(self) -> FenceState:
        """The fence as the first available update server (the primary) holds it."""
        return self.retry.call(f"fence read of zone {self.zone}", self._read_fence_once)

    def compare_and_set_fence(self, seen: FenceState, epoch: int) -> bool:
        """Set the fence to epoch=N only if it still holds what `seen` read.

        True: ours. False: someone changed it in between (we lost the race). Raises
        Unavailable/Failed when the server cannot decide.
        """
        return self._cas(seen, epoch) is not None

    def _cas(self, seen: FenceState, epoch: int) -> str | None:
        """The server that took the compare-and-set, or None if the fence had changed."""

        def build() -> dns.update.Update:
            message = self._message()
            name = fence_name(self.zone)
            if seen.rdataset is None:
                message.absent(name, "TXT")
            else:
                message.present(name, seen.rdataset)
            message.replace(name, FENCE_TTL, "TXT", fence_text(epoch))
            return message

        try:
            return self._send_with_retry("fence claim", build, fenced=True)
        except LeaseLost:
            return None

    def claim_fence(self, epoch: int) -> FenceClaim:
        """Compare-and-set the zone's fence to epoch=N; LeaseLost if a newer one holds it.

        Equal epoch counts as ours: ZooKeeper hands each acquisition a new epoch, so
        finding our own number means an earlier attempt landed (e.g. its answer was lost).
        """
        for _ in range(_CLAIM_ROUNDS):
            seen = self.read_fence()
            self._refuse_newer(seen, epoch)
            if seen.epoch == epoch:
                return FenceClaim(self.zone, epoch, epoch, "-", already_held=True)
            server = self._cas(seen, epoch)
            if server is not None:
                claim = FenceClaim(self.zone, epoch, seen.epoch, server)
                log.info("%s", claim.describe())
                return claim
            log.info(
                "zone %s: fence changed while claiming epoch %d; reading it again", self.zone, epoch
            )
        raise self._kept_changing(epoch)

    def _refuse_newer(self, seen: FenceState, epoch: int) -> None:
        if seen.epoch is not None and seen.epoch > epoch:
            raise LeaseLost(
                f"zone {self.zone}: the fence holds epoch={seen.epoch}, newer "
                f"than ours ({epoch}) — another leader has taken over; stopping"
            )

    def _kept_changing(self, epoch: int) -> LeaseLost:
        return LeaseLost(
            f"zone {self.zone}: the fence kept changing while claiming epoch "
            f"{epoch} — another leader is active; stopping"
        )

    # -- messages and transport ---------------------------------------------------------

    def _message(self) -> dns.update.Update:
        return dns.update.Update(
            self.zone,
            keyring=self.key.keyring,
            keyname=self.key.name,
            keyalgorithm=self.key.keyalgorithm,
        )

    def _update(
        self,
        group: Sequence[RecordChange],
        epoch: int | None,
        tag: str | None,
        claiming: FenceState | None = None,
    ) -> dns.update.Update:
        """An update of `group`: fenced by `epoch`, or, `claiming` the fence as it was
        read, moving it to `epoch` in the same message."""
        message = self._message()
        name = fence_name(self.zone)
        if claiming is not None and epoch is not None:
            if claiming.rdataset is None:
                message.absent(name, "TXT")
            else:
                message.present(name, claiming.rdataset)
            message.replace(name, FENCE_TTL, "TXT", fence_text(epoch))
        elif epoch is not None:
            message.present(name, fence_rdataset(epoch))
        for change in group:
            message.replace(change.owner(), change.ttl, change.rdata())
        if tag is not None:
            tag_change = RecordChange(f"{TAG_LABEL}.{self.zone}", "TXT", 0, tag)
            message.replace(tag_change.owner(), 0, tag_change.rdata())
        return message

    def _send_with_retry(
        self, action: str, build: Callable[[], dns.message.Message], *, fenced: bool
    ) -> str:
        return self.retry.call(
            f"{action} of zone {self.zone}", lambda: self._send_any(action, build, fenced)
        )

    def _send_any(self, action: str, build: Callable[[], dns.message.Message], fenced: bool) -> str:
        """Send to each server in turn until one answers; only silence moves us on."""
        silent: list[str] = []
        for server in self.servers:
            try:
                self._send(action, build(), server, fenced)
                return str(server)
            except Unavailable as exc:
                log.warning("%s", exc)
                silent.append(str(exc))
        raise Unavailable("; ".join(silent) or f"zone {self.zone} has no update servers")

    def _send(
        self, action: str, message: dns.message.Message, server: DnsServer, fenced: bool
    ) -> dns.message.Message:
        response = self._exchange(action, message, server)
        error = outcomes.from_rcode(
            response.rcode(),
            action,
            server,
            self.zone,
            fenced=fenced,
            fence_detail=self._fence_detail() if fenced else "",
        )
        if error is not None:
            raise error
        return response

    def _exchange(
        self, action: str, message: dns.message.Message, server: DnsServer
    ) -> dns.message.Message:
        try:
            _, address = resolve(server)
            return dns.query.tcp(message, address, port=server.port, timeout=self.timeout)
        except Exception as exc:  # mapped below; nothing raw leaves the adapter
            raise outcomes.from_exception(exc, action, server, self.zone) from None

    def _read_fence_once(self) -> FenceState:
        silent: list[str] = []
        for server in self.servers:
            query = dns.message.make_query(fence_name(self.zone), dns.rdatatype.TXT)
            query.flags &= ~dns.flags.RD
            query.use_tsig(self.key.keyring, self.key.name, algorithm=self.key.keyalgorithm)
            try:
                response = self._exchange("fence read", query, server)
            except Unavailable as exc:
                silent.append(str(exc))
                continue
            return self._fence_from(response, server)
        raise Unavailable("; ".join(silent))

    def _fence_from(self, response: dns.message.Message, server: DnsServer) -> FenceState:
        rcode = response.rcode()
        if rcode == dns.rcode.NXDOMAIN:
            return parse_fence(self.zone, None)
        error = outcomes.from_rcode(rcode, "fence read", server, self.zone)
        if error is not None:
            raise error
        if not response.flags & dns.flags.AA:
            raise Failed(
                f"fence read of zone {self.zone} at {server}: the answer is not "
                "authoritative — list the zone's primary in update_servers"
            )
        rrset = response.get_rrset(
            response.answer, fence_name(self.zone), dns.rdataclass.IN, dns.rdatatype.TXT
        )
        return parse_fence(self.zone, rrset)

    def _fence_detail(self) -> str:
        """Best effort: what the fence holds now, for the LeaseLost message."""
        try:
            return f"the fence now holds {self._read_fence_once().describe()}"
        except SitectlError:
            return "another leader holds a newer epoch"
