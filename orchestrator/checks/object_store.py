"""Object store: each endpoint reachable and authorised, each bucket present and
versioned, replication configured where the topology says, and the replication backlog.

boto3 with short connect/read timeouts and one attempt: a health check reports the
first failure instead of retrying it into a hang. Every S3 error becomes a sentence.

Lag, three ways, best first:
- the store's own backlog, where it reports one (the lab's store answers
  `GET /_sitectl/replication`; S3 has no such call, so elsewhere it is skipped);
- the canary (opt-in, it writes): put `_sitectl/canary/<site>` at the active site and
  time until the other site holds it and the source says COMPLETED;
- at a standby, the age of the newest canary it holds: an upper bound of what a
  failover to it would lose, readable when the active site is gone.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import botocore.exceptions

from orchestrator.adapters import s3_stamp
from orchestrator.adapters.s3 import CANARY_PREFIX, error_code, s3_client
from orchestrator.checks.result import Check, CheckResult, Status, one_line
from orchestrator.config.model import Bucket, S3Endpoint, Topology
from orchestrator.errors import SitectlError

SYSTEM = "object-store"
WRITTEN_AT = "sitectl-written-at"  # user metadata of the canary: the writer's UNIX time
BACKLOG_PATH = "/_sitectl/replication"
LAG = "replication_lag_seconds"
CANARY_AGE = "canary_age_seconds"
FENCED_BY = "fenced_by_epoch"  # a canary refused by a newer leader's epoch: that epoch


def checks(
    topo: Topology,
    timeout: float,
    *,
    canary: bool = False,
    clock: Callable[[], float] = time.time,
    epoch: int | None = None,
) -> list[Check]:
    """`epoch`: the leader's, which makes each canary put conditional on it (R4)."""
    del timeout
    store = topo.object_store
    if store is None:
        return []
    out = [
        Check(SYSTEM, e.site, bucket_target(b.name, e.site), _reader(topo, e, b, clock))
        for e in store.endpoints
        for b in store.buckets
    ]
    if canary:
        out += [
            Check(
                SYSTEM,
                e.site,
                canary_target(b.name, topo.active_site, e.site),
                _canary(topo, b, e, clock, epoch),
            )
            for b in store.buckets
            if b.replicated
            for e in store.endpoints
            if e.site != topo.active_site
        ]
    return out


def bucket_target(bucket: str, site: str) -> str:
    return f"bucket {bucket}@{site}"


def canary_target(bucket: str, source: str, destination: str) -> str:
    return f"canary {bucket} {source}->{destination}"


def client(topo: Topology, endpoint: S3Endpoint, timeout: float) -> Any:
    return s3_client(topo, endpoint, timeout)


def describe_error(exc: BaseException, timeout: float) -> tuple[Status, str]:
    """Status and sentence for anything boto3 raises (pure, table-tested)."""
    if isinstance(exc, botocore.exceptions.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "?"))
        http = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code in ("SlowDown", "503") or http == 503:
            return Status.DEGRADED, f"the store is throttling or busy ({code})"
        if http == 403 or code in (
            "AccessDenied",
            "InvalidAccessKeyId",
            "SignatureDoesNotMatch",
            "403",
        ):
            return Status.DOWN, f"not authorised ({code}): check the key pair and the policy"
        if code in ("NoSuchBucket", "404") or http == 404:
            return Status.DOWN, "the bucket does not exist"
        if http >= 500:
            return Status.DOWN, f"the store failed the request ({http} {code})"
        return Status.DOWN, f"refused: {code} {one_line(error.get('Message', ''), 120)}".strip()
    if isinstance(exc, botocore.exceptions.ReadTimeoutError | TimeoutError):
        return Status.DOWN, f"accepted the connection but did not answer within {timeout:g} s"
    if isinstance(exc, botocore.exceptions.ConnectTimeoutError):
        return Status.DOWN, f"no connection within {timeout:g} s"
    if isinstance(exc, botocore.exceptions.EndpointConnectionError):
        return Status.DOWN, "cannot connect (nothing listening?)"
    if isinstance(exc, SitectlError):
        return Status.DOWN, one_line(exc)
    return Status.DOWN, f"{type(exc).__name__}: {one_line(exc)}"


def _reader(
    topo: Topology, endpoint: S3Endpoint, bucket: Bucket, clock: Callable[[], float]
) -> Callable[[float], CheckResult]:
    def run(timeout: float) -> CheckResult:
        where = (SYSTEM, endpoint.site, bucket_target(bucket.name, endpoint.site))
        source = endpoint.site == topo.active_site
        try:
            s3 = client(topo, endpoint, timeout)
            s3.head_bucket(Bucket=bucket.name)
            problems = _bucket_problems(s3, bucket, source)
            figures = (
                _backlog(endpoint, bucket, timeout)
                if source
                else _canary_age(s3, bucket, topo.active_site, clock)
            )
        except Exception as exc:  # boto3's error tree is wide; describe_error maps it all
            status, reason = describe_error(exc, timeout)
            return CheckResult(*where, status, reason, {})
        if figures.get("failed"):
            problems.append(f"{figures['failed']:.0f} version(s) failed to replicate")
        return CheckResult(
            *where, Status.DEGRADED if problems else Status.OK, "; ".join(problems), figures
        )

    return run


def _bucket_problems(s3: Any, bucket: Bucket, source: bool) -> list[str]:
    problems = []
    versioning = s3.get_bucket_versioning(Bucket=bucket.name).get("Status", "off")
    if bucket.versioned and versioning != "Enabled":
        problems.append(f"versioning is {versioning}, the topology says it must be on")
    if source and bucket.replicated:
        try:
            rules = s3.get_bucket_replication(Bucket=bucket.name)["ReplicationConfiguration"]
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) != "ReplicationConfigurationNotFoundError":
                raise
            rules = {"Rules": []}
        if not any(r.get("Status") == "Enabled" for r in rules.get("Rules", [])):
            problems.append("no enabled replication rule on the active site's bucket")
    return problems


def _backlog(endpoint: S3Endpoint, bucket: Bucket, timeout: float) -> dict[str, float]:
    """The store's own pending/failed counts, where it reports them; {} elsewhere."""
    try:
        with urllib.request.urlopen(
            endpoint.url.rstrip("/") + BACKLOG_PATH, timeout=timeout
        ) as answer:
            data = json.loads(answer.read()).get("buckets", {}).get(bucket.name)
    except (OSError, ValueError, urllib.error.URLError):
        return {}  # not this kind of store: S3 itself has no backlog call
    if not isinstance(data, dict):
        return {}
    return backlog_figures(data)


def backlog_figures(data: dict[str, Any]) -> dict[str, float]:
    """Figures from the lab store's per-bucket counters (pure)."""
    figures = {
        k: float(data[k]) for k in ("pending", "failed") if isinstance(data.get(k), int | float)
    }
    oldest = data.get("oldest_pending_seconds")
    if "pending" in figures:
        figures[LAG] = float(oldest) if isinstance(oldest, int | float) else 0.0
    return figures


def _canary_age(
    s3: Any, bucket: Bucket, source: str, clock: Callable[[], float]
) -> dict[str, float]:
    try:
        head = s3.head_object(Bucket=bucket.name, Key=CANARY_PREFIX + source)
    except botocore.exceptions.ClientError as exc:
        if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
            return {}  # no canary ever written: no bound from here
        raise
    written = _written_at(head)
    return {} if written is None else {CANARY_AGE: max(0.0, clock() - written)}


def _written_at(head: dict[str, Any]) -> float | None:
    try:
        return float(head.get("Metadata", {}).get(WRITTEN_AT, ""))
    except ValueError:
        return None


def _canary(
    topo: Topology,
    bucket: Bucket,
    destination: S3Endpoint,
    clock: Callable[[], float],
    epoch: int | None = None,
) -> Callable[[float], CheckResult]:
    def run(timeout: float) -> CheckResult:
        where = (
            SYSTEM,
            destination.site,
            canary_target(bucket.name, topo.active_site, destination.site),
        )
        source = next(
            (
                e
                for e in topo.object_store.endpoints  # type: ignore[union-attr]
                if e.site == topo.active_site
            ),
            None,
        )
        if source is None:
            return CheckResult(
                *where, Status.DEGRADED, f"no endpoint in the active site {topo.active_site}", {}
            )
        try:
            lag, said = replicate_canary(
                client(topo, source, timeout),
                client(topo, destination, timeout),
                bucket.name,
                topo.active_site,
                timeout,
                clock,
                epoch,
            )
        except s3_stamp.Stale as exc:  # a newer leader's epoch: an answer, never retried
            return CheckResult(
                *where,
                Status.DOWN,
                f"canary at {source.url} refused: {exc}",
                {FENCED_BY: float(exc.held)},
            )
        except Exception as exc:  # mapped like every other S3 call
            status, reason = describe_error(exc, timeout)
            return CheckResult(*where, status, f"canary: {reason}", {})
        if lag is None:
            return CheckResult(
                *where,
                Status.DEGRADED,
                f"the canary did not replicate within {timeout:g} s ({said})",
                {},
            )
        return CheckResult(*where, Status.OK, "", {LAG: round(lag, 3)})

    return run


def replicate_canary(
    source: Any,
    destination: Any,
    bucket: str,
    site: str,
    timeout: float,
    clock: Callable[[], float],
    epoch: int | None = None,
) -> tuple[float | None, str]:
    """Put the canary at the source; seconds until the destination holds it and the
    source says COMPLETED, or None with the last status seen when `timeout` runs out.
    With the leader's `epoch`, the put is conditional (s3_stamp.Stale if newer wrote)."""
    key = CANARY_PREFIX + site
    written = clock()
    put = put_canary(source, bucket, site, written, epoch)
    deadline = time.monotonic() + timeout
    said = "not checked"
    while time.monotonic() < deadline:
        said = source.head_object(Bucket=bucket, Key=key, VersionId=put["VersionId"]).get(
            "ReplicationStatus", "none"
        )
        if said == "COMPLETED" and _holds(destination, bucket, key, written):
            return clock() - written, said
        if said == "FAILED":
            break
        time.sleep(0.05)
    return None, f"source says {said}"


def put_canary(
    s3: Any, bucket: str, site: str, written: float, epoch: int | None = None
) -> dict[str, Any]:
    """Write `site`'s canary object, stamped `written` (UNIX time); boto's answer. With
    the leader's `epoch`, the put is conditional (s3_stamp.Stale if a newer one wrote)."""
    key = CANARY_PREFIX + site
    metadata = {WRITTEN_AT: f"{written:.6f}"}
    if epoch is None:
        answer: dict[str, Any] = s3.put_object(
            Bucket=bucket, Key=key, Body=b"sitectl canary\n", Metadata=metadata
        )
        return answer
    body = f"sitectl canary epoch={epoch}\n".encode()
    return s3_stamp.put_stamped(s3, bucket, key, body, metadata, epoch)


def _holds(s3: Any, bucket: str, key: str, written: float) -> bool:
    try:
        head = s3.head_object(Bucket=bucket, Key=key)
    except botocore.exceptions.ClientError:
        return False
    seen = _written_at(head)
    return seen is not None and seen >= written - 1e-6
