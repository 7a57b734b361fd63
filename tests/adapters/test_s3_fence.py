"""The object store's fences (R4 for S3), against moto's server (the closest thing to S3
that speaks its wire protocol here; it honours If-Match and If-None-Match as S3 does):
reprotect's claim of `.sitectl/fence` by a conditional put and the conditional check
before each of its later writes; the controller's canary objects, each put conditional
on the leader's epoch."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import boto3
import pytest

from orchestrator.adapters.s3 import (
    FENCE_KEY,
    claim_fence,
    copy_missing,
    hold_fence,
    keys_with_etags,
    replicate,
    replication_destination,
    stop_replicating,
)
from orchestrator.adapters.s3_stamp import Stale, put_stamped, raise_stamp
from orchestrator.errors import LeaseLost

BUCKET = "mail-blobs"


@pytest.fixture
def s3(moto_url: str) -> Iterator[Any]:
    client = boto3.client(
        "s3",
        endpoint_url=moto_url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test-secret",
    )
    client.create_bucket(Bucket=BUCKET)
    yield client
    empty(client, BUCKET)


def empty(client: Any, bucket: str) -> None:
    """Delete the bucket with every version and delete marker (some tests version it)."""
    listing = client.list_object_versions(Bucket=bucket)
    for version in [*listing.get("Versions", []), *listing.get("DeleteMarkers", [])]:
        client.delete_object(Bucket=bucket, Key=version["Key"], VersionId=version["VersionId"])
    client.delete_bucket(Bucket=bucket)


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


def test_the_fences_are_never_application_data(s3: Any) -> None:
    # What reprotect compares and copies between sites is the application's objects:
    # copying a controller's canary (stamped with its leader's epoch) from one site over
    # another's would hand that place back to an older leader.
    claim_fence(s3, BUCKET, 1)
    s3.put_object(Bucket=BUCKET, Key="msg/1", Body=b"hello")
    s3.put_object(Bucket=BUCKET, Key="_sitectl/canary/dc1", Body=b"sitectl canary epoch=1\n")
    assert set(keys_with_etags(s3, BUCKET)) == {"msg/1"}


# --- the writes after the claim ----------------------------------------------------


class Renamed:
    """The same moto server as another site's store: every call on BUCKET goes to
    `bucket` instead (moto's servers in one process share their buckets, so two sites
    need two names); `after_put` runs after each put of an application object."""

    def __init__(self, s3: Any, bucket: str, after_put: Callable[[], None] = lambda: None) -> None:
        self._s3, self._bucket, self._after_put = s3, bucket, after_put

    def _args(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        return {**kwargs, "Bucket": self._bucket} if kwargs.get("Bucket") == BUCKET else kwargs

    def put_object(self, **kwargs: Any) -> Any:
        answer = self._s3.put_object(**self._args(kwargs))
        if kwargs["Key"] != FENCE_KEY:
            self._after_put()
        return answer

    def get_paginator(self, name: str) -> Any:
        paginator = self._s3.get_paginator(name)
        return SimpleNamespace(paginate=lambda **kwargs: paginator.paginate(**self._args(kwargs)))

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._s3, name)
        return lambda **kwargs: method(**self._args(kwargs))


@pytest.fixture
def standby(s3: Any) -> Iterator[Renamed]:
    s3.create_bucket(Bucket=STANDBY_BUCKET)
    yield Renamed(s3, STANDBY_BUCKET)
    empty(s3, STANDBY_BUCKET)


STANDBY_BUCKET = "mail-blobs-standby"
RULE = {
    "role": "arn:aws:iam::123456789012:role/replication",
    "destination_bucket": BUCKET,
    "rule_id": "sitectl-dc1-to-dc2",
}


def test_after_a_newer_claim_the_stale_holders_writes_are_refused(s3: Any) -> None:
    """The deposed leader claimed the fence, froze, and its successor claimed it since:
    each of its writes first asks whether the fence is still its own, and stops."""
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    stale = hold_fence(s3, BUCKET, 3)
    assert (stale.before, stale.epoch) == (None, 3)
    successor = hold_fence(s3, BUCKET, 4)
    for write in (
        lambda: replicate(s3, BUCKET, **RULE, fence=stale),
        lambda: stop_replicating(s3, BUCKET, fence=stale),
    ):
        with pytest.raises(LeaseLost, match=r"fence holds epoch=4, no longer ours \(3\)"):
            write()
    assert replication_destination(s3, BUCKET) is None  # the stale write never landed
    replicate(s3, BUCKET, **RULE, fence=successor)  # the holder's own writes go through
    assert replication_destination(s3, BUCKET) == f"arn:aws:s3:::{BUCKET}"
    with pytest.raises(LeaseLost, match="epoch=4"):
        stop_replicating(s3, BUCKET, fence=stale)
    assert replication_destination(s3, BUCKET) == f"arn:aws:s3:::{BUCKET}"


def test_a_copy_stops_at_the_first_object_after_a_newer_claim(s3: Any, standby: Renamed) -> None:
    """Each copy to the standby checks the standby's fence first: the successor claiming
    it after the first copy leaves exactly one object copied by the stale leader."""
    for key in ("msg/1", "msg/2", "msg/3"):
        s3.put_object(Bucket=BUCKET, Key=key, Body=key.encode())
    stale = hold_fence(standby, BUCKET, 3)
    standby._after_put = lambda: claim_fence(standby, BUCKET, 4)
    with pytest.raises(LeaseLost, match=r"epoch=4.*not copying mail-blobs/msg/2"):
        copy_missing(s3, standby, BUCKET, fence=stale)
    assert set(keys_with_etags(standby, BUCKET)) == {"msg/1"}


def test_a_copy_never_overwrites_what_was_written_there_after_the_listing(
    s3: Any, standby: Renamed
) -> None:
    """Each copy is one put conditional on the target object as listed (absent, or the
    ETag read): what the application, or a newer leader, wrote there in between stays,
    even though the fence check before the put passed (a leader frozen between the two
    requests lands nothing over a newer write)."""
    for key in ("msg/1", "msg/2", "msg/3"):
        s3.put_object(Bucket=BUCKET, Key=key, Body=f"old {key}".encode())
    standby.put_object(Bucket=BUCKET, Key="msg/3", Body=b"an older copy of msg/3")
    held = hold_fence(standby, BUCKET, 3)

    def application_writes_at_the_standby() -> None:
        if not written:
            written.append(True)
            for key in ("msg/2", "msg/3"):
                s3.put_object(Bucket=STANDBY_BUCKET, Key=key, Body=f"new {key}".encode())

    written: list[bool] = []
    standby._after_put = application_writes_at_the_standby
    outcome = copy_missing(s3, standby, BUCKET, fence=held)
    assert (outcome.copied, outcome.kept) == (["msg/1"], ["msg/2", "msg/3"])
    bodies = {
        key: standby.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        for key in ("msg/1", "msg/2", "msg/3")
    }
    assert bodies == {"msg/1": b"old msg/1", "msg/2": b"new msg/2", "msg/3": b"new msg/3"}


def test_the_fence_rewritten_under_our_own_epoch_is_still_ours(s3: Any) -> None:
    """A fence object rewritten with our epoch (a replica of our own claim; a store whose
    ETags are not the body's digest) has a new ETag but no newer leader behind it."""
    held = hold_fence(s3, BUCKET, 3)
    s3.put_object(Bucket=BUCKET, Key=FENCE_KEY, Body=b"epoch=3\n")
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    replicate(s3, BUCKET, **RULE, fence=held)
    assert replication_destination(s3, BUCKET) == f"arn:aws:s3:::{BUCKET}"


# --- the controller's canary objects: each put conditional on the leader's epoch ------


CANARY = "_sitectl/canary/dc1"
WRITTEN_AT = {"sitectl-written-at": "1700000000.000000"}


def stamp_of(s3: Any) -> tuple[str, dict[str, str]]:
    got = s3.get_object(Bucket=BUCKET, Key=CANARY)
    return got["Body"].read().decode(), got["Metadata"]


def test_a_canary_under_an_older_epoch_is_refused_after_a_newer_stamp(s3: Any) -> None:
    put_stamped(s3, BUCKET, CANARY, b"sitectl canary epoch=5\n", WRITTEN_AT, 5)
    # The new leader stamps the place without changing what the canary says.
    assert raise_stamp(s3, BUCKET, CANARY, 7, keep=("sitectl-written-at",)) == 5
    assert stamp_of(s3)[1] == {**WRITTEN_AT, "sitectl-epoch": "7"}
    with pytest.raises(
        Stale,
        match=r"^mail-blobs/_sitectl/canary/dc1: epoch 7 holds the "
        r"fence, we are 5$",
    ):
        put_stamped(s3, BUCKET, CANARY, b"sitectl canary epoch=5\n", {}, 5)
    with pytest.raises(Stale):
        raise_stamp(s3, BUCKET, CANARY, 6)
    assert stamp_of(s3) == ("sitectl fence epoch=7\n", {**WRITTEN_AT, "sitectl-epoch": "7"})
    put_stamped(s3, BUCKET, CANARY, b"sitectl canary epoch=7\n", {}, 7)
    assert stamp_of(s3) == ("sitectl canary epoch=7\n", {"sitectl-epoch": "7"})


def test_a_canary_losing_the_race_to_a_newer_leader_reads_again_and_stops(s3: Any) -> None:
    """The put is conditional on the ETag read: a newer leader's write between our
    read and our put makes ours fail (412), and the second read finds us stale."""
    put_stamped(s3, BUCKET, CANARY, b"sitectl canary epoch=5\n", {}, 5)
    original = s3.head_object
    raced: list[bool] = []

    def read_then_lose_the_race(**kwargs: Any) -> Any:
        answer = original(**kwargs)
        if not raced:
            raced.append(True)
            s3.put_object(
                Bucket=BUCKET,
                Key=CANARY,
                Body=b"sitectl canary epoch=8\n",
                Metadata={"sitectl-epoch": "8"},
            )
        return answer

    s3.head_object = read_then_lose_the_race
    with pytest.raises(Stale, match="epoch 8 holds the fence, we are 5"):
        put_stamped(s3, BUCKET, CANARY, b"sitectl canary epoch=5\n", {}, 5)
    assert raced and stamp_of(s3)[0] == "sitectl canary epoch=8\n"


def test_a_canary_from_before_fencing_or_absent_is_taken_over(s3: Any) -> None:
    assert raise_stamp(s3, BUCKET, CANARY, 2) is None  # none yet: the place is taken
    with pytest.raises(Stale):
        put_stamped(s3, BUCKET, CANARY, b"sitectl canary epoch=1\n", {}, 1)
    s3.put_object(Bucket=BUCKET, Key=CANARY, Body=b"sitectl canary\n")  # an old sitectl's
    put_stamped(s3, BUCKET, CANARY, b"sitectl canary epoch=1\n", {}, 1)
    assert stamp_of(s3)[1] == {"sitectl-epoch": "1"}
