"""Route 53 through boto3: one UPSERT batch per zone, then wait for INSYNC (bounded).

There is no real Route 53 here: the tests run this against moto's server
(`moto.server.ThreadedMotoServer`) started as an HTTP process on 127.0.0.1, standing
in for the AWS API. moto reports changes INSYNC at once and serves no DNS, so the
waiting loop and the API read-back are exercised, propagation to AWS's name servers is
not.

Fencing: Route 53 has no conditional writes (no prerequisite, no compare-and-set on a
record), so `apply(epoch=N)` cannot be refused by the service the way an RFC 2136
prerequisite is. For Route 53 zones fencing relies on ZooKeeper alone: the engine must
re-check its lease right before calling `apply`.
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
from orchestrator.adapters.dns.records import RecordChange, in_zone
from orchestrator.adapters.dns.retry import RetryPolicy
from orchestrator.adapters.dns.rfc2136 import TAG_LABEL, ApplyResult
from orchestrator.adapters.secrets import read_secret
from orchestrator.config.model import DnsZone
from orchestrator.errors import Failed, SitectlError, Unavailable

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
        """UPSERT every record, then wait until Route 53 reports the change INSYNC.

        `epoch` is accepted for the engine's sake but not enforced: see the module doc.
        """
        items = in_zone(changes, self.zone)
        if tag is not None:
            items.append(RecordChange(f"{TAG_LABEL}.{self.zone}", "TXT", 0, tag))
        groups = change_batches(items)
        for group in groups:
            change_id = self.retry.call(
                f"Route 53 change of zone {self.zone}", lambda g=group: self._submit(g)
            )
            self.wait_insync(change_id)
        result = ApplyResult(self.zone, "route53", len(items), len(groups), epoch)
        log.info("%s", result.describe())
        return result

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

    def _submit(self, group: Sequence[RecordChange]) -> str:
        batch = {
            "Comment": f"sitectl: {len(group)} record(s)",
            "Changes": [_upsert(c) for c in group],
        }
        response = self._call(
            "change_resource_record_sets",
            lambda: self.client.change_resource_record_sets(
                HostedZoneId=self.hosted_zone_id, ChangeBatch=batch
            ),
        )
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


def _upsert(change: RecordChange) -> dict[str, Any]:
    return {
        "Action": "UPSERT",
        "ResourceRecordSet": {
            "Name": change.name,
            "Type": change.type,
            "TTL": change.ttl,
            "ResourceRecords": [{"Value": _api_value(change)}],
        },
    }


def _api_value(change: RecordChange) -> str:
    # Route 53 wants TXT values quoted and names absolute, as in a zone file.
    return change.rdata().to_text()


def _absolute(name: str) -> str:
    return name if name.endswith(".") else name + "."
