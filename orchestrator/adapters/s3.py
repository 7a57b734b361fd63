"""boto3 for the object store: a client per endpoint, bucket replication, and boto's
wide error tree mapped onto ours (Unavailable: no answer or busy; Failed: refused)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import botocore.exceptions

from orchestrator.adapters.secrets import read_secret
from orchestrator.config.model import S3Endpoint, Topology
from orchestrator.errors import Failed, LeaseLost, Unavailable

# sitectl's own objects in a bucket: never application data, never copied or compared.
OWN_PREFIX = ".sitectl/"
FENCE_KEY = OWN_PREFIX + "fence"
# What S3 answers a conditional write whose condition no longer holds.
LOST_RACE = ("PreconditionFailed", "ConditionalRequestConflict", "412")
# The controller's canaries are sitectl's own too. Each site's carries the epoch of the
# leader that wrote it (adapters/s3_stamp.py): copying one site's over another's would
# hand that place back to an older leader.
CANARY_PREFIX = "_sitectl/canary/"
OWN_PREFIXES = (OWN_PREFIX, CANARY_PREFIX)
_FENCE_ROUNDS = 3

_CLIENTS: dict[tuple[object, ...], Any] = {}
_CLIENTS_LOCK = threading.Lock()
_SESSIONS: list[Any] = []  # the one botocore session, made with the first client


def s3_client(topo: Topology, endpoint: S3Endpoint, timeout: float = 5.0) -> Any:
    """A client for `endpoint`, made once per endpoint, credentials and timeout: building
    one loads boto's whole S3 model (most of an idle controller's CPU when made for every
    check and canary). Clients are thread-safe; making them is not, hence the lock. The
    secrets are part of the key, so a rotated key file gets a new client."""
    access = read_secret(endpoint.access_key, topo.base_dir).reveal()
    secret = read_secret(endpoint.secret_key, topo.base_dir).reveal()
    verify = str(topo.resolve(endpoint.ca_file)) if endpoint.ca_file else None
    key = (endpoint.url, endpoint.region, access, secret, verify, timeout)
    with _CLIENTS_LOCK:
        client = _CLIENTS.get(key)
        if client is None:
            # Imported here, not above: a controller that never touches the object store
            # (a follower) never imports botocore's client machinery (~10 MB resident).
            import botocore.config
            import botocore.session

            # One session for every client: a session parses the S3 model (~15 MB
            # resident) once and each client it makes shares it; a session per client
            # parsed it again for each endpoint.
            if not _SESSIONS:
                _SESSIONS.append(botocore.session.get_session())
            # One attempt and short timeouts: callers (checks, steps) own retries and bounds.
            config = botocore.config.Config(
                connect_timeout=timeout, read_timeout=timeout, retries={"total_max_attempts": 1}
            )
            client = _SESSIONS[0].create_client(
                "s3",
                endpoint_url=endpoint.url,
                region_name=endpoint.region,
                aws_access_key_id=access,
                aws_secret_access_key=secret,
                verify=verify,
                config=config,
            )
            if len(_CLIENTS) >= 64:  # bounded: keys only change with rotations
                _CLIENTS.clear()
            _CLIENTS[key] = client
    return client


def error_code(exc: botocore.exceptions.ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "?"))


@contextlib.contextmanager
def translated(what: str) -> Iterator[None]:
    try:
        yield
    except botocore.exceptions.ClientError as exc:
        code = error_code(exc)
        http = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if http >= 500 or code in ("SlowDown", "ServiceUnavailable"):
            raise Unavailable(f"{what}: the store is busy or failing ({http} {code})") from None
        raise Failed(f"{what}: refused ({code})") from None
    except (botocore.exceptions.BotoCoreError, OSError) as exc:
        raise Unavailable(f"{what}: no answer ({exc.__class__.__name__})") from None


def replication_destination(s3: Any, bucket: str) -> str | None:
    """The destination bucket ARN of the bucket's enabled replication rule, if any."""
    with translated(f"reading the replication of {bucket}"):
        try:
            config = s3.get_bucket_replication(Bucket=bucket)["ReplicationConfiguration"]
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) in (
                "ReplicationConfigurationNotFoundError",
                "NoSuchReplicationConfiguration",
            ):
                return None
            raise
    for rule in config.get("Rules", []):
        if rule.get("Status") == "Enabled":
            return str(rule["Destination"]["Bucket"])
    return None


def replicate(
    s3: Any,
    bucket: str,
    role: str,
    destination_bucket: str,
    rule_id: str,
    fence: FenceHold | None = None,
) -> None:
    """Replicate the whole bucket to `destination_bucket` (same name at the peer site)."""
    _check(fence, f"setting the replication of {bucket}")
    with translated(f"setting the replication of {bucket}"):
        s3.put_bucket_replication(
            Bucket=bucket,
            ReplicationConfiguration={
                "Role": role,
                "Rules": [
                    {
                        "ID": rule_id,
                        "Priority": 1,
                        "Status": "Enabled",
                        "Filter": {},
                        "Destination": {"Bucket": f"arn:aws:s3:::{destination_bucket}"},
                        "DeleteMarkerReplication": {"Status": "Disabled"},
                    }
                ],
            },
        )


def stop_replicating(s3: Any, bucket: str, fence: FenceHold | None = None) -> None:
    _check(fence, f"removing the replication of {bucket}")
    with translated(f"removing the replication of {bucket}"):
        s3.delete_bucket_replication(Bucket=bucket)


def keys_with_etags(s3: Any, bucket: str) -> dict[str, str]:
    """Current objects of the bucket: key → ETag (paginated)."""
    found: dict[str, str] = {}
    with translated(f"listing {bucket}"):
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                if not item["Key"].startswith(OWN_PREFIXES):
                    found[item["Key"]] = item["ETag"]
    return found


def _read_fence(s3: Any, bucket: str) -> tuple[int | None, str | None]:
    """(epoch, ETag) of the bucket's fence object; (None, None) when there is none."""
    with translated(f"reading the fence of {bucket}"):
        try:
            got = s3.get_object(Bucket=bucket, Key=FENCE_KEY)
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) in ("NoSuchKey", "404"):
                return None, None
            raise
        text = got["Body"].read().decode(errors="replace").strip()
    epoch = int(text.removeprefix("epoch=")) if text.removeprefix("epoch=").isdigit() else 0
    return epoch, str(got["ETag"])


def claim_fence(s3: Any, bucket: str, epoch: int) -> int | None:
    """Move the bucket's fence to epoch=N by a conditional put (If-Match the fence we
    read, If-None-Match when there was none), the object store's compare-and-set; return
    the epoch it held. LeaseLost if it holds a newer one: a leader deposed while frozen
    must not write here after its successor did."""
    return hold_fence(s3, bucket, epoch).before


@dataclass
class FenceHold:
    """Our claim on a bucket's fence: what it held before, and the ETag of the fence
    object as we left it, which every later write of ours checks first."""

    s3: Any
    bucket: str
    epoch: int
    etag: str
    before: int | None

    def check(self, write: str) -> None:
        """LeaseLost unless the fence is still exactly our claim, asked right before
        `write` by a conditional request (If-Match our ETag: 412 once a newer epoch has
        replaced it).

        This narrows the window, it does not close it. S3 has no condition that spans
        two objects, and PutBucketReplication / DeleteBucketReplication take no
        condition at all, so the check and the write are two requests: a leader frozen
        exactly between them, past its successor's claim, still lands that one write.
        Without the check it could land every write left in its step."""
        with translated(f"checking the fence of {self.bucket} before {write}"):
            try:
                self.s3.head_object(Bucket=self.bucket, Key=FENCE_KEY, IfMatch=self.etag)
            except botocore.exceptions.ClientError as exc:
                if error_code(exc) in ("412", "PreconditionFailed"):
                    held, etag = _read_fence(self.s3, self.bucket)
                    if held == self.epoch and etag:
                        # Rewritten, still ours (a replica of our own claim, or a store
                        # whose ETags are not the content's digest): no newer leader.
                        self.etag = etag
                        return
                    raise LeaseLost(
                        f"bucket {self.bucket}: the fence holds "
                        f"{'nothing' if held is None else f'epoch={held}'}, no longer ours "
                        f"({self.epoch}) — another leader has taken over; not {write}"
                    ) from None
                if error_code(exc) in ("404", "NoSuchKey"):
                    raise LeaseLost(
                        f"bucket {self.bucket}: the fence object is gone; not {write}"
                    ) from None
                raise


def hold_fence(s3: Any, bucket: str, epoch: int) -> FenceHold:
    """claim_fence, keeping what the later fenced writes check."""
    for _ in range(_FENCE_ROUNDS):
        held, etag = _read_fence(s3, bucket)
        if held is not None and held > epoch:
            raise LeaseLost(
                f"bucket {bucket}: the fence holds epoch={held}, newer than ours ({epoch}) — "
                "another leader has taken over; stopping"
            )
        if held == epoch and etag:
            return FenceHold(s3, bucket, epoch, etag, held)
        condition = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
        with translated(f"claiming the fence of {bucket}"):
            try:
                put = s3.put_object(
                    Bucket=bucket, Key=FENCE_KEY, Body=f"epoch={epoch}".encode(), **condition
                )
            except botocore.exceptions.ClientError as exc:
                if error_code(exc) in LOST_RACE:
                    continue  # changed between our read and our put: read it again
                raise
        return FenceHold(s3, bucket, epoch, str(put["ETag"]), held)
    raise LeaseLost(f"bucket {bucket}: the fence kept changing while claiming epoch {epoch}")


def _check(fence: FenceHold | None, write: str) -> None:
    if fence is not None:
        fence.check(write)


@dataclass(frozen=True)
class CopyOutcome:
    copied: list[str]
    # Written at the target by someone else between our listing and our put: theirs is
    # newer than what we read, so it stays.
    kept: list[str]


def copy_missing(
    source: Any, target: Any, bucket: str, fence: FenceHold | None = None
) -> CopyOutcome:
    """Copy objects the target lacks or holds differently.

    Bucket replication only covers objects written after its rule exists: what the new
    active site took in before a reprotect must be copied once (S3 Batch Replication's
    job on AWS; this is the small-scale equivalent).

    Each put is one conditional write on the object itself: If-None-Match when the
    target had no such key, If-Match the ETag we listed when it held another copy. A
    write that landed there after our listing (the application's, or a newer leader's)
    therefore makes ours fail instead of being overwritten by it, even from a leader
    that froze between the fence check and the put.
    """
    wanted = keys_with_etags(source, bucket)
    present = keys_with_etags(target, bucket)
    copied: list[str] = []
    kept: list[str] = []
    for key, etag in sorted(wanted.items()):
        if present.get(key) == etag:
            continue
        _check(fence, f"copying {bucket}/{key}")
        condition = {"IfMatch": present[key]} if key in present else {"IfNoneMatch": "*"}
        with translated(f"copying {bucket}/{key}"):
            body = source.get_object(Bucket=bucket, Key=key)
            try:
                target.put_object(
                    Bucket=bucket,
                    Key=key,
                    Body=body["Body"].read(),
                    Metadata=body.get("Metadata", {}),
                    **condition,
                )
            except botocore.exceptions.ClientError as exc:
                if error_code(exc) not in LOST_RACE:
                    raise
                kept.append(key)
                continue
        copied.append(key)
    return CopyOutcome(copied, kept)
