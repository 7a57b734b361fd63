"""Route 53 through boto3: one UPSERT batch per zone, then wait for INSYNC (bounded).

There is no real Route 53 here: the tests run this against moto's server
(`moto.server.ThreadedMotoServer`) started as an HTTP process on 127.0.0.1, standing
in for the AWS API. moto reports changes INSYNC at once and serves no DNS, so the
waiting loop and the API read-back are exercised, propagation to AWS's name servers is
not.

Fencing (`apply_claiming`): Route 53 has no prerequisites, but a change batch is atomic
and a DELETE must match the record's current value exactly. Each batch DELETEs the fence
record `_sitectl-fence.<zone>` as it was read and CREATEs it with this leader's epoch,
beside the records: a batch whose fence was rewritten in between is refused whole by
the service (a server-side compare-and-set), and a fence holding a newer epoch stops us
before anything is sent. Each fence value carries a write id, so even the same leader's
next batch DELETEs exactly what it read. moto checks a DELETE against any value the
record ever had, not the current one, so the race itself is tested on a client that
matches exactly, as Route 53 documents (tests/adapters/test_dns_pure.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import botocore.exceptions

from orchestrator.adapters.dns.authoritative import Mismatch, VerifyResult
from orchestrator.adapters.dns.fence import FENCE_LABEL, route53_fence_epoch, route53_fence_value
from orchestrator.adapters.dns.records import RecordChange, in_zone
from orchestrator.adapters.dns.retry import RetryPolicy
from orchestrator.adapters.dns.rfc2136 import TAG_LABEL, ApplyResult
from orchestrator.adapters.secrets import read_secret
from orchestrator.config.model import DnsZone
from orchestrator.errors import Failed, LeaseLost, SitectlError, Unavailable

log = logging.getLogger(__name__)

# A ChangeBatch may hold 1,000 ResourceRecord elements (an UPSERT counts twice) and
# 32,000 characters of values; stay under both.
MAX_CHANGES = 400
MAX_VALUE_CHARS = 30_000
_TRANSIENT_CODES = {
    "Throttling",
    "ThrottlingException",
    "PriorRequestNotComplete",
    "ServiceUnavailable",
    "InternalError",
    "RequestTimeout",
}
# A batch refused because a record was not as read (DELETE) or already there (CREATE):
# for the fence, another leader wrote it in between.
_CONFLICT_CODES = {"InvalidChangeBatch", "InvalidInput"}
_CLAIM_ROUNDS = 3


@dataclass
class Route53Provider:
    zone: str
    hosted_zone_id: str
    client: Any = field(repr=False)  # a boto3 route53 client
    sync_timeout: float = 120.0  # how long to wait for INSYNC
    poll_interval: float = 2.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep

    @classmethod
    def from_zone(
        cls,
        zone: DnsZone,
        base_dir: Path,
        *,
        environ: Mapping[str, str] | None = None,
        timeout: float = 10.0,
        **options: Any,
    ) -> Route53Provider:
        if zone.provider != "route53" or zone.route53 is None:
            raise Failed(f"zone {zone.name} is not a route53 zone")
        return cls(
            zone.name,
            zone.route53.hosted_zone_id,
            make_client(zone, base_dir, environ=environ, timeout=timeout),
            **options,
        )

    def apply(
        self, changes: Sequence[RecordChange], *, epoch: int | None = None, tag: str | None = None
    ) -> ApplyResult:
        """UPSERT every record without the fence (a person's write, or a test's), then
        wait until Route 53 reports the change INSYNC. The engine writes through
        `apply_claiming`; `epoch` here is only reported."""

        def submit(group: Sequence[RecordChange]) -> str:
            return self.retry.call(
                f"Route 53 change of zone {self.zone}", lambda: self._submit(group)
            )

        return self._apply(changes, tag, epoch, submit, fenced=False)

    def apply_claiming(
        self,
        changes: Sequence[RecordChange],
        *,
        epoch: int,
        tag: str | None = None,
        before_write: Callable[[], None] | None = None,
    ) -> ApplyResult:
        """UPSERT every record with the fence's compare-and-set in the same batch (see
        the module doc); LeaseLost when the fence holds a newer epoch or another leader
        kept rewriting it. `before_write` (the caller's lease check) runs once the fence
        is read and found not newer, before each batch is sent."""
        return self._apply(
            changes,
            tag,
            epoch,
            lambda group: self._claim_and_submit(group, epoch, before_write),
            fenced=True,
        )

    def _apply(
        self,
        changes: Sequence[RecordChange],
        tag: str | None,
        epoch: int | None,
        submit: Callable[[Sequence[RecordChange]], str],
        *,
        fenced: bool,
    ) -> ApplyResult:
        """The records (and the operation's tag) in batches, each submitted, then INSYNC.
        A fenced write claims the fence even with no record to change."""
        items = in_zone(changes, self.zone)
        fence = f"{FENCE_LABEL}.{self.zone}"
        if fenced and any(_absolute(c.name) == fence for c in items):
            raise Failed(f"zone {self.zone}: records may not touch the fence record")
        if tag is not None:
            items.append(RecordChange(f"{TAG_LABEL}.{self.zone}", "TXT", 0, tag))
        groups = change_batches(items) or ([[]] if fenced else [])
        for group in groups:
            self.wait_insync(submit(group))
        result = ApplyResult(self.zone, "route53", len(items), len(groups), epoch)
        log.info("%s", result.describe())
        return result

    def _claim_and_submit(
        self,
        group: Sequence[RecordChange],
        epoch: int,
        before_write: Callable[[], None] | None,
    ) -> str:
        for _ in range(_CLAIM_ROUNDS):
            held = self.retry.call(f"Route 53 fence read of zone {self.zone}", self._read_fence)
            held_epoch = route53_fence_epoch(self.zone, held)
            if held_epoch is not None and held_epoch > epoch:
                raise LeaseLost(
                    f"Route 53 zone {self.zone}: the fence holds epoch={held_epoch}, newer "
                    f"than ours ({epoch}): another leader took over — stopping"
                )
            if before_write is not None:
                before_write()
            fence = self._fence_changes(held, epoch)
            try:
                return self.retry.call(
                    f"Route 53 change of zone {self.zone}",
                    lambda f=fence: self._submit(group, f),
                )
            except _Conflict:
                log.info(
                    "zone %s: the fence changed while claiming epoch %d; reading it again",
                    self.zone,
                    epoch,
                )
        raise LeaseLost(
            f"Route 53 zone {self.zone}: the fence kept changing under epoch {epoch} "
            f"({_CLAIM_ROUNDS} tries): another leader is writing — stopping"
        )

    def _fence_changes(self, held: list[str], epoch: int) -> list[dict[str, Any]]:
        name = f"{FENCE_LABEL}.{self.zone}"
        new = route53_fence_value(epoch, f"{time.time_ns():x}")
        out = []
        if held:
            out.append(_rrset("DELETE", name, "TXT", 0, held))
        out.append(_rrset("CREATE", name, "TXT", 0, [new]))
        return out

    def _read_fence(self) -> list[str]:
        name = f"{FENCE_LABEL}.{self.zone}"

        def read() -> list[str]:
            page = self.client.list_resource_record_sets(
                HostedZoneId=self.hosted_zone_id,
                StartRecordName=name,
                StartRecordType="TXT",
                MaxItems="1",
            )
            for rrset in page["ResourceRecordSets"]:
                if _absolute(rrset["Name"]) == name and rrset["Type"] == "TXT":
                    return sorted(r["Value"] for r in rrset.get("ResourceRecords", []))
            return []

        return list(self._call("list_resource_record_sets", read))

    def wait_insync(self, change_id: str) -> None:
        deadline = self.clock() + self.sync_timeout
        while True:
            status = self.retry.call(
                f"Route 53 get_change {change_id}", lambda: self._status(change_id)
            )
            if status == "INSYNC":
                return
            if self.clock() >= deadline:
                raise Unavailable(
                    f"zone {self.zone}: Route 53 change {change_id} still "
                    f"{status} after {self.sync_timeout:.0f}s"
                )
            self.sleep(self.poll_interval)

    def read_back(self, changes: Sequence[RecordChange]) -> VerifyResult:
        """What the Route 53 API holds for each record (moto serves no DNS to query)."""
        held = self._call("list_resource_record_sets", self._all_records)
        mismatches = []
        for change in changes:
            values = held.get((change.name, change.type))
            expected = _api_value(change)
            if values != [expected]:
                answered = ", ".join(values) if values else "no such record"
                mismatches.append(
                    Mismatch("route53 API", change.name, change.type, change.value, answered)
                )
        return VerifyResult(self.zone, ("route53 API",), len(changes), 1, tuple(mismatches))

    def _submit(self, group: Sequence[RecordChange], fence: Sequence[dict[str, Any]] = ()) -> str:
        batch = {
            "Comment": f"sitectl: {len(group)} record(s)",
            "Changes": [*fence, *(_upsert(c) for c in group)],
        }
        try:
            response = self.client.change_resource_record_sets(
                HostedZoneId=self.hosted_zone_id, ChangeBatch=batch
            )
        except botocore.exceptions.ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if fence and code in _CONFLICT_CODES:
                raise _Conflict(str(exc)) from None
            raise from_boto_error(exc, "change_resource_record_sets", self.zone) from None
        except Exception as exc:  # mapped: nothing raw leaves the adapter
            raise from_boto_error(exc, "change_resource_record_sets", self.zone) from None
        return str(response["ChangeInfo"]["Id"])

    def _status(self, change_id: str) -> str:
        response = self._call("get_change", lambda: self.client.get_change(Id=change_id))
        return str(response["ChangeInfo"]["Status"])

    def _all_records(self) -> dict[tuple[str, str], list[str]]:
        held: dict[tuple[str, str], list[str]] = {}
        paginator = self.client.get_paginator("list_resource_record_sets")
        for page in paginator.paginate(HostedZoneId=self.hosted_zone_id):
            for rrset in page["ResourceRecordSets"]:
                values = [r["Value"] for r in rrset.get("ResourceRecords", [])]
                held[(_absolute(rrset["Name"]), rrset["Type"])] = sorted(values)
        return held

    def _call(self, action: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except Exception as exc:  # mapped below; nothing raw leaves the adapter
            raise from_boto_error(exc, action, self.zone) from None


def make_client(
    zone: DnsZone,
    base_dir: Path,
    *,
    environ: Mapping[str, str] | None = None,
    timeout: float = 10.0,
) -> Any:
    """A route53 client from the zone's settings; botocore's own retries are off because
    ours are bounded, jittered and logged."""
    # Here, not at the top: boto3's session machinery costs every sitectl process about
    # 0.15 s to import, and only a zone on Route 53 needs it.
    import boto3.session
    import botocore.config

    settings = zone.route53
    assert settings is not None
    config = botocore.config.Config(
        connect_timeout=timeout, read_timeout=timeout, retries={"total_max_attempts": 1}
    )
    try:
        if settings.access_key is not None and settings.secret_key is not None:
            session = boto3.session.Session(
                aws_access_key_id=read_secret(
                    settings.access_key, base_dir, environ=environ
                ).reveal(),
                aws_secret_access_key=read_secret(
                    settings.secret_key, base_dir, environ=environ
                ).reveal(),
            )
        else:
            session = boto3.session.Session(profile_name=settings.credentials_profile)
        return session.client(
            "route53", endpoint_url=settings.endpoint_url, region_name="us-east-1", config=config
        )
    except SitectlError:
        raise
    except botocore.exceptions.ProfileNotFound:
        raise Failed(
            f"zone {zone.name}: AWS profile {settings.credentials_profile} is not "
            "configured — add it to ~/.aws/config or use access_key/secret_key"
        ) from None
    except Exception as exc:
        raise Failed(
            f"zone {zone.name}: cannot create the Route 53 client ({type(exc).__name__})"
        ) from None


def from_boto_error(exc: BaseException, action: str, zone: str) -> SitectlError:
    place = f"Route 53 {action} of zone {zone}"
    if isinstance(exc, botocore.exceptions.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "Unknown"))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
        text = f"{place}: {code}: {error.get('Message', '')}".rstrip(": ")
        if code in _TRANSIENT_CODES or status >= 500:
            return Unavailable(text)
        return Failed(text)
    if isinstance(
        exc, botocore.exceptions.NoCredentialsError | botocore.exceptions.PartialCredentialsError
    ):
        return Failed(
            f"{place}: no usable AWS credentials — set access_key/secret_key or credentials_profile"
        )
    if isinstance(
        exc,
        botocore.exceptions.EndpointConnectionError
        | botocore.exceptions.ConnectTimeoutError
        | botocore.exceptions.ReadTimeoutError
        | botocore.exceptions.ConnectionClosedError,
    ):
        return Unavailable(f"{place}: the API did not answer ({type(exc).__name__})")
    if isinstance(exc, botocore.exceptions.BotoCoreError):
        return Failed(f"{place}: {type(exc).__name__}")
    return Failed(f"{place}: {type(exc).__name__}: {exc}")


def change_batches(changes: Sequence[RecordChange]) -> list[list[RecordChange]]:
    """Cut UPSERTs into ChangeBatches within Route 53's per-request limits (pure)."""
    result: list[list[RecordChange]] = [[]]
    chars = 0
    for change in changes:
        size = len(_api_value(change))
        if result[-1] and (len(result[-1]) >= MAX_CHANGES or chars + size > MAX_VALUE_CHARS):
            result.append([])
            chars = 0
        result[-1].append(change)
        chars += size
    return [b for b in result if b]


class _Conflict(Exception):
    """The fence's compare-and-set lost: the batch was refused whole."""


def _upsert(change: RecordChange) -> dict[str, Any]:
    return _rrset("UPSERT", change.name, change.type, change.ttl, [_api_value(change)])


def _rrset(action: str, name: str, rtype: str, ttl: int, values: Sequence[str]) -> dict[str, Any]:
    return {
        "Action": action,
        "ResourceRecordSet": {
            "Name": name,
            "Type": rtype,
            "TTL": ttl,
            "ResourceRecords": [{"Value": v} for v in values],
        },
    }


def _api_value(change: RecordChange) -> str:
    # Route 53 wants TXT values quoted and names absolute, as in a zone file.
    return change.rdata().to_text()


def _absolute(name: str) -> str:
    return name if name.endswith(".") else name + "."
