"""An object's own epoch (issue 8, R4): the leader's writes of one object, fenced by the
object itself.

The controller's canary object is rewritten every few seconds by whoever leads. Each
put is a compare-and-set: read the object's `sitectl-epoch` metadata and ETag, refuse
if a newer epoch wrote it, else put with If-Match that ETag (If-None-Match when there
is none), so a newer leader's write slipping in between makes ours fail instead of
overwrite it. The body names the epoch, so writes of different epochs never share an
ETag (S3's ETag of a plain put is the digest of its body).

A new leader also stamps (`raise_stamp`) the objects an old leader may still write but
it does not, so even those refuse the old one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import botocore.exceptions

from orchestrator.adapters.s3 import LOST_RACE, error_code, translated
from orchestrator.errors import LeaseLost

EPOCH_META = "sitectl-epoch"
_ROUNDS = 3


class Stale(LeaseLost):
    """A newer leader's epoch holds the object: refused, never to be retried."""

    def __init__(self, where: str, held: int, ours: int) -> None:
        super().__init__(f"{where}: epoch {held} holds the fence, we are {ours}")
        self.held, self.ours = held, ours


def read_stamp(s3: Any, bucket: str, key: str) -> tuple[int | None, str | None, dict[str, str]]:
    """(epoch, ETag, user metadata) of the object; (None, None, {}) when there is none.
    An object without a readable epoch (written before fencing) holds epoch None."""
    with translated(f"reading {bucket}/{key}"):
        try:
            head = s3.head_object(Bucket=bucket, Key=key)
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) in ("404", "NoSuchKey"):
                return None, None, {}
            raise
    metadata = {str(k): str(v) for k, v in (head.get("Metadata") or {}).items()}
    text = metadata.get(EPOCH_META, "")
    return (int(text) if text.isdigit() else None), str(head["ETag"]), metadata


def put_stamped(
    s3: Any, bucket: str, key: str, body: bytes, metadata: dict[str, str], epoch: int
) -> dict[str, Any]:
    """Put the object under `epoch` by compare-and-set; boto's answer. `Stale` if a
    newer epoch wrote it."""
    for _ in range(_ROUNDS):
        held, etag, _ = read_stamp(s3, bucket, key)
        if held is not None and held > epoch:
            raise Stale(f"{bucket}/{key}", held, epoch)
        condition = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
        with translated(f"writing {bucket}/{key}"):
            try:
                answer: dict[str, Any] = s3.put_object(
                    Bucket=bucket,
                    Key=key,
                    Body=body,
                    Metadata={**metadata, EPOCH_META: str(epoch)},
                    **condition,
                )
                return answer
            except botocore.exceptions.ClientError as exc:
                if error_code(exc) not in LOST_RACE:
                    raise
                # Written by someone else between our read and our put: read it again.
    raise LeaseLost(f"{bucket}/{key}: kept changing while writing it under epoch {epoch}")


def raise_stamp(s3: Any, bucket: str, key: str, epoch: int, keep: Iterable[str] = ()) -> int | None:
    """Move the object's epoch up to `epoch` without changing what it says: the metadata
    named in `keep` is carried over; return the epoch it held. `Stale` if newer."""
    held, _, metadata = read_stamp(s3, bucket, key)
    if held is not None and held > epoch:
        raise Stale(f"{bucket}/{key}", held, epoch)
    if held == epoch:
        return held
    kept = {k: metadata[k] for k in keep if k in metadata}
    put_stamped(s3, bucket, key, f"sitectl fence epoch={epoch}\n".encode(), kept, epoch)
    return held
