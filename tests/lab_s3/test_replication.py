"""Two real lab S3 processes (moto + our replication loop) on ephemeral 127.0.0.1 ports.

The full lab uses the fixed 127.0.N.21:9000 addresses and may run at the same time, so
these tests never touch them. Waits poll for a state with a generous deadline; nothing
asserts on how long anything took.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
import pytest

pytestmark = [pytest.mark.lab, pytest.mark.timeout(120)]

BUCKET = "mail-blobs"
DEADLINE_S = 30.0
REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    # Tiny race between close() and the server's bind; acceptable for a test.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(what: str, probe: Callable[[], Any]) -> Any:
    """Poll `probe` until it returns something truthy; fail naming `what` after the deadline."""
    end = time.monotonic() + DEADLINE_S
    last: Any = None
    while time.monotonic() < end:
        try:
            result = probe()
        except Exception as exc:  # the server may not be up yet: keep polling
            last = exc
        else:
            if result:
                return result
            last = result
        time.sleep(0.1)
    pytest.fail(f"gave up waiting for {what}; last probe: {last!r}")


@dataclass
class Site:
    name: str
    port: int
    peer_name: str
    peer_port: int
    keys: tuple[Path, Path]
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        cmd = [
            sys.executable,
            "-m",
            "orchestrator.lab.s3store",
            "--site",
            self.name,
            "--listen",
            f"127.0.0.1:{self.port}",
            "--peer",
            f"{self.peer_name}=http://127.0.0.1:{self.peer_port}",
            "--access-key-file",
            str(self.keys[0]),
            "--secret-key-file",
            str(self.keys[1]),
            "--buckets",
            BUCKET,
            "--scan-interval",
            "0.1",
            "--max-attempts",
            "3",
            "--failed-retry-interval",
            "1",
        ]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=log)
        wait_for(f"{self.name} to serve S3", lambda: self.client().list_buckets())

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=20)
        self.proc = None
        return rc

    def client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id=self.keys[0].read_text().strip(),
            aws_secret_access_key=self.keys[1].read_text().strip(),
        )

    def backlog(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.url}/_sitectl/replication", timeout=5) as resp:
            return dict(json.load(resp)["buckets"][BUCKET])

    def replicate_to(self, dest: str | None) -> None:
        """Put (or remove, with None) a rule copying every new version to the peer's bucket."""
        if dest is None:
            self.client().delete_bucket_replication(Bucket=BUCKET)
            return
        self.client().put_bucket_replication(
            Bucket=BUCKET,
            ReplicationConfiguration={
                "Role": "arn:aws:iam::123456789012:role/lab-replication",
                "Rules": [
                    {
                        "ID": f"to-{dest}",
                        "Priority": 1,
                        "Status": "Enabled",
                        "Filter": {"Prefix": ""},
                        "DeleteMarkerReplication": {"Status": "Disabled"},
                        "Destination": {"Bucket": f"arn:aws:s3:::{BUCKET}"},
                    }
                ],
            },
        )


@pytest.fixture
def sites(tmp_path: Path) -> Iterator[tuple[Site, Site]]:
    ak, sk = tmp_path / "access-key", tmp_path / "secret-key"
    ak.write_text("LABACCESSKEY\n")
    sk.write_text("labsecret\n")
    for f in (ak, sk):
        os.chmod(f, 0o600)
    p1, p2 = _free_port(), _free_port()
    dc1 = Site("dc1", p1, "dc2", p2, (ak, sk), tmp_path / "dc1.log")
    dc2 = Site("dc2", p2, "dc1", p1, (ak, sk), tmp_path / "dc2.log")
    dc1.start()
    dc2.start()
    try:
        yield dc1, dc2
    finally:
        for site in (dc1, dc2):
            if site.proc is not None:
                site.proc.kill()
                site.proc.wait()


def status(site: Site, key: str, version: str | None = None) -> str | None:
    args = {"Bucket": BUCKET, "Key": key} | ({"VersionId": version} if version else {})
    return site.client().head_object(**args).get("ReplicationStatus")


def test_buckets_are_created_versioned(sites: tuple[Site, Site]) -> None:
    dc1, _ = sites
    assert dc1.client().get_bucket_versioning(Bucket=BUCKET)["Status"] == "Enabled"


def test_put_at_dc1_is_readable_at_dc2_with_replication_status(
    sites: tuple[Site, Site],
) -> None:
    dc1, dc2 = sites
    dc1.replicate_to("dc2")
    put = dc1.client().put_object(
        Bucket=BUCKET,
        Key="mail/1",
        Body=b"hello",
        ContentType="message/rfc822",
        Metadata={"sitectl-op": "op-1"},
    )
    assert status(dc1, "mail/1") in ("PENDING", "COMPLETED")

    wait_for("COMPLETED at dc1", lambda: status(dc1, "mail/1") == "COMPLETED")
    replica = dc2.client().get_object(Bucket=BUCKET, Key="mail/1")
    assert replica["Body"].read() == b"hello"
    assert replica["ReplicationStatus"] == "REPLICA"
    assert replica["ContentType"] == "message/rfc822"
    assert replica["Metadata"]["sitectl-op"] == "op-1"
    assert replica["Metadata"]["sitectl-replica-source"] == "dc1"
    assert replica["Metadata"]["sitectl-source-version-id"] == put["VersionId"]
    assert dc1.backlog()["pending"] == 0


def test_only_versions_put_while_a_rule_exists_are_replicated(sites: tuple[Site, Site]) -> None:
    dc1, dc2 = sites
    dc1.client().put_object(Bucket=BUCKET, Key="old", Body=b"old")
    dc1.replicate_to("dc2")
    dc1.client().put_object(Bucket=BUCKET, Key="new", Body=b"new")
    wait_for("new version COMPLETED", lambda: status(dc1, "new") == "COMPLETED")
    assert status(dc1, "old") is None

    # A gap without any rule: what was put then stays unreplicated when a rule comes back.
    dc1.replicate_to(None)
    dc1.client().put_object(Bucket=BUCKET, Key="gap", Body=b"gap")
    dc1.replicate_to("dc2")
    dc1.client().put_object(Bucket=BUCKET, Key="newer", Body=b"newer")
    wait_for("newer COMPLETED", lambda: status(dc1, "newer") == "COMPLETED")
    assert status(dc1, "gap") is None
    listed = dc2.client().list_objects_v2(Bucket=BUCKET).get("Contents", [])
    assert sorted(o["Key"] for o in listed) == ["new", "newer"]


def test_replica_is_not_replicated_back(sites: tuple[Site, Site]) -> None:
    dc1, dc2 = sites
    # Rules in both directions at once: the worst case for a loop.
    dc1.replicate_to("dc2")
    dc2.replicate_to("dc1")
    dc1.client().put_object(Bucket=BUCKET, Key="k", Body=b"once")
    wait_for("COMPLETED at dc1", lambda: status(dc1, "k") == "COMPLETED")
    wait_for("dc2 counts the replica", lambda: dc2.backlog()["replica"] == 1)
    # dc2's loop has the rule but never queues a REPLICA: nothing pending, nothing sent.
    backlog = dc2.backlog()
    assert (backlog["pending"], backlog["failed"], backlog["completed"]) == (0, 0, 0)
    versions = dc1.client().list_object_versions(Bucket=BUCKET, Prefix="k")["Versions"]
    assert len(versions) == 1


def test_reverse_rule_after_reprotect(sites: tuple[Site, Site]) -> None:
    dc1, dc2 = sites
    dc1.replicate_to("dc2")
    dc1.client().put_object(Bucket=BUCKET, Key="before-failover", Body=b"1")
    wait_for("dc1→dc2", lambda: status(dc1, "before-failover") == "COMPLETED")

    # Reprotect: the operator removes the old direction and configures dc2 → dc1.
    dc1.replicate_to(None)
    dc2.replicate_to("dc1")
    dc2.client().put_object(Bucket=BUCKET, Key="after-failover", Body=b"2")
    wait_for("dc2→dc1", lambda: status(dc2, "after-failover") == "COMPLETED")
    assert dc1.client().get_object(Bucket=BUCKET, Key="after-failover")["Body"].read() == b"2"
    assert status(dc1, "after-failover") == "REPLICA"


def test_peer_down_fails_then_recovers(sites: tuple[Site, Site]) -> None:
    dc1, dc2 = sites
    dc1.replicate_to("dc2")
    assert dc2.stop() == 0

    dc1.client().put_object(Bucket=BUCKET, Key="while-down", Body=b"queued")
    wait_for("FAILED while dc2 is down", lambda: status(dc1, "while-down") == "FAILED")
    backlog = dc1.backlog()
    assert backlog["failed"] == 1
    assert backlog["last_error"]

    dc2.start()  # empty store again: the bucket comes from --buckets
    wait_for("COMPLETED after dc2 is back", lambda: status(dc1, "while-down") == "COMPLETED")
    assert dc2.client().get_object(Bucket=BUCKET, Key="while-down")["Body"].read() == b"queued"
    assert dc1.backlog()["failed"] == 0


def test_sigterm_stops_the_process(sites: tuple[Site, Site]) -> None:
    dc1, _ = sites
    assert dc1.stop() == 0
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", dc1.port), timeout=1).close()


def test_credentials_are_enforced(sites: tuple[Site, Site]) -> None:
    dc1, _ = sites
    stranger = boto3.client(
        "s3",
        endpoint_url=dc1.url,
        region_name="us-east-1",
        aws_access_key_id="SOMEONEELSE",
        aws_secret_access_key="guess",
    )
    with pytest.raises(botocore.exceptions.ClientError, match="InvalidAccessKeyId"):
        stranger.list_buckets()
    wrong_secret = boto3.client(
        "s3",
        endpoint_url=dc1.url,
        region_name="us-east-1",
        aws_access_key_id=dc1.keys[0].read_text().strip(),
        aws_secret_access_key="guess",
    )
    with pytest.raises(botocore.exceptions.ClientError, match="SignatureDoesNotMatch"):
        wrong_secret.list_buckets()
    assert [b["Name"] for b in dc1.client().list_buckets()["Buckets"]] == [BUCKET]


def test_prefix_filter_multipart_and_a_burst(sites: tuple[Site, Site]) -> None:
    dc1, dc2 = sites
    dc1.client().put_bucket_replication(
        Bucket=BUCKET,
        ReplicationConfiguration={
            "Role": "arn:aws:iam::123456789012:role/lab-replication",
            "Rules": [
                {
                    "ID": "mail-only",
                    "Priority": 1,
                    "Status": "Enabled",
                    "Filter": {"Prefix": "mail/"},
                    "DeleteMarkerReplication": {"Status": "Disabled"},
                    "Destination": {"Bucket": f"arn:aws:s3:::{BUCKET}"},
                }
            ],
        },
    )
    c1 = dc1.client()
    c1.put_object(Bucket=BUCKET, Key="scratch/tmp", Body=b"local only")
    upload = c1.create_multipart_upload(Bucket=BUCKET, Key="mail/big")
    part = c1.upload_part(
        Bucket=BUCKET, Key="mail/big", UploadId=upload["UploadId"], PartNumber=1, Body=b"m" * 4096
    )
    c1.complete_multipart_upload(
        Bucket=BUCKET,
        Key="mail/big",
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    for i in range(40):
        c1.put_object(Bucket=BUCKET, Key=f"mail/{i:03d}", Body=f"message {i}".encode())

    wait_for("the backlog to drain", lambda: dc1.backlog()["completed"] == 41)
    assert dc1.backlog()["pending"] == 0 and dc1.backlog()["failed"] == 0
    assert status(dc1, "scratch/tmp") is None
    assert dc2.client().get_object(Bucket=BUCKET, Key="mail/big")["Body"].read() == b"m" * 4096
    assert dc2.client().get_object(Bucket=BUCKET, Key="mail/039")["Body"].read() == b"message 39"
    keys = [o["Key"] for o in dc2.client().list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert "scratch/tmp" not in keys and len(keys) == 41


def test_port_in_use_is_one_clear_line(tmp_path: Path) -> None:
    keys = tmp_path / "k"
    keys.write_text("LABACCESSKEY\n")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "orchestrator.lab.s3store",
                "--site",
                "dc1",
                "--listen",
                f"127.0.0.1:{port}",
                "--access-key-file",
                str(keys),
                "--secret-key-file",
                str(keys),
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"s3store dc1: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]
