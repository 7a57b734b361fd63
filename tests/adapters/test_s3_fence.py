"""The object store's fence (R4 for S3): a conditional put of `.sitectl/fence`, against
moto's server (the closest thing to S3 that speaks its wire protocol here; it honours
If-Match and If-None-Match as S3 does)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from orchestrator.adapters.s3 import FENCE_KEY, claim_fence, keys_with_etags
from orchestrator.errors import LeaseLost

BUCKET = "mail-blobs"


@pytest.fixture
def s3(moto_url: str) -> Iterator[Any]:
    client = boto3.client("s3", endpoint_url=moto_url, region_name="us-east-1",
                          aws_access_key_id="test", aws_secret_access_key="test-secret")
    client.create_bucket(Bucket=BUCKET)
    yield client
    for key in [*keys_with_etags(client, BUCKET), FENCE_KEY]:
        client.delete_object(Bucket=BUCKET, Key=key)
    client.delete_bucket(Bucket=BUCKET)


def fence(s3: Any) -> str:
    return str(s3.get_object(Bucket=BUCKET, Key=FENCE_KEY)["Body"].read().decode())


def test_the_fence_only_moves_forward(s3: Any) -> None:
    assert claim_fence(s3, BUCKET, 3) is None  # none yet: created
    assert fence(s3) == "epoch=3"
    assert claim_fence(s3, BUCKET, 3) == 3  # ours already: nothing written
    assert claim_fence(s3, BUCKET, 5) == 3
    with pytest.raises(LeaseLost, match="fence holds epoch=5, newer than ours \\(4\\)"):
        claim_fence(s3, BUCKET, 4)  # the deposed leader, let go after its successor
    assert fence(s3) == "epoch=5"


def test_a_fence_changed_between_read_and_put_is_read_again(s3: Any) -> None:
    """The put is conditional on what was read: a successor's claim slipping in between
    makes ours fail and re-read, and then refuse, rather than overwrite it."""
    claim_fence(s3, BUCKET, 1)
    original = s3.get_object

    def read_then_lose_the_race(**kwargs: Any) -> Any:
        answer = original(**kwargs)
        if kwargs.get("Key") == FENCE_KEY and not raced:
            raced.append(True)
            s3.put_object(Bucket=BUCKET, Key=FENCE_KEY, Body=b"epoch=7")  # the successor
        return answer

    raced: list[bool] = []
    s3.get_object = read_then_lose_the_race
    with pytest.raises(LeaseLost, match="epoch=7"):
        claim_fence(s3, BUCKET, 2)
    assert raced and fence(s3) == "epoch=7"


def test_the_fence_is_never_application_data(s3: Any) -> None:
    # What reprotect compares and copies between sites is the application's objects.
    claim_fence(s3, BUCKET, 1)
    s3.put_object(Bucket=BUCKET, Key="msg/1", Body=b"hello")
    assert set(keys_with_etags(s3, BUCKET)) == {"msg/1"}
