"""The old and the active site's buckets through boto3 (adapters/s3 maps its errors):
every object's ETag, and a copy that never overwrites what the active site holds."""

from __future__ import annotations

from typing import Any

import botocore.exceptions

from orchestrator.adapters.s3 import OWN_PREFIXES, FenceHold, error_code, translated
from orchestrator.salvage.divergence import ObjectCopy, ObjectInfo


def listing(s3: Any, bucket: str) -> dict[str, ObjectInfo]:
    """key → ObjectInfo of the bucket's current objects (paginated), sitectl's own left out."""
    found: dict[str, ObjectInfo] = {}
    with translated(f"listing {bucket}"):
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                if not item["Key"].startswith(OWN_PREFIXES):
                    found[item["Key"]] = ObjectInfo(str(item["ETag"]), int(item.get("Size", 0)))
    return found


def copy(source: Any, target: Any, bucket: str, item: ObjectCopy, fence: FenceHold | None) -> bool:
    """Copy one object from the old site's bucket to the active's, only if the target
    key does not exist (If-None-Match: a write the active site took meanwhile wins).
    False when the key appeared at the active site before our write."""
    if fence is not None:
        fence.check(f"salvaging {bucket}/{item.key}")
    with translated(f"salvaging {bucket}/{item.key}"):
        body = source.get_object(Bucket=bucket, Key=item.key)
        if str(body["ETag"]) != item.etag:
            return False  # it changed at the old site since the listing: listed again next run
        try:
            target.put_object(
                Bucket=bucket,
                Key=item.target_key,
                Body=body["Body"].read(),
                Metadata=body.get("Metadata", {}),
                IfNoneMatch="*",
            )
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                return False
            raise
    return True
