"""The object store: one S3 endpoint per datacenter (orchestrator.lab.s3store).

dc1 at http://198.18.1.21:9000, dc2 at http://198.18.2.21:9000; each is the other's
replication peer. `lab up` creates the versioned bucket `mail-blobs` on both and puts a
replication rule from the active site (dc1 → dc2; reversed by a reprotect). The
replication itself is the lab's stand-in for the store's own; see s3store's docstring.

Objects live in memory: a killed (or downed) endpoint comes back empty. heal-site and up
put the replication rule back on the active site's endpoint; the objects are gone, as
after losing a real site's store, and a drill should expect that.
"""

from __future__ import annotations

import json
import sys
import urllib.request
from pathlib import Path
from typing import Any

from orchestrator.lab import layout
from orchestrator.lab.credentials import ensure_password
from orchestrator.lab.state import Component, LabState

BUCKET = "mail-blobs"
REGION = "us-east-1"


def access_key_file(state: LabState) -> Path:
    return state.secrets / "s3-access-key"


def secret_key_file(state: LabState) -> Path:
    return state.secrets / "s3-secret-key"


def ports(site: str) -> list[tuple[str, int]]:
    return [(layout.site_ip(site, layout.S3_HOST), layout.S3_PORT)]


def prepare(state: LabState, programs: dict[str, str]) -> list[Component]:
    ensure_password(access_key_file(state))
    ensure_password(secret_key_file(state))
    comps = []
    for site in layout.DATACENTERS:
        (peer,) = (s for s in layout.DATACENTERS if s != site)
        home = state.site_dir(site, "s3")
        home.mkdir(parents=True, exist_ok=True)
        listen = f"{layout.site_ip(site, layout.S3_HOST)}:{layout.S3_PORT}"
        comps.append(
            Component(
                name=f"{site}-s3",
                site=site,
                kind="s3store",
                address=listen,
                argv=[
                    sys.executable,
                    "-m",
                    "orchestrator.lab.s3store",
                    "--site",
                    site,
                    "--listen",
                    listen,
                    "--peer",
                    f"{peer}={layout.s3_endpoint(peer)}",
                    "--access-key-file",
                    str(access_key_file(state)),
                    "--secret-key-file",
                    str(secret_key_file(state)),
                    "--buckets",
                    BUCKET,
                ],
                cwd=str(home),
                log=str(home / "s3store.log"),
            )
        )
    return comps


def client(state: LabState, site: str) -> Any:  # boto3 clients have no static type
    # Here, not at the top: every `sitectl` command imports this module (the lab's CLI),
    # and boto3 costs about 0.15 s to import.
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=layout.s3_endpoint(site),
        region_name=REGION,
        aws_access_key_id=access_key_file(state).read_text().strip(),
        aws_secret_access_key=secret_key_file(state).read_text().strip(),
        config=Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 1}),
    )


def ready(comp: Component) -> bool:
    """The endpoint answers its replication-status call (served next to the S3 API)."""
    url = f"http://{comp.address}/_sitectl/replication"
    with urllib.request.urlopen(url, timeout=2) as answer:
        return "buckets" in json.loads(answer.read())


def replicate(state: LabState, source: str, destination: str) -> None:
    """Put the bucket's replication rule source → destination (whole bucket)."""
    client(state, source).put_bucket_replication(
        Bucket=BUCKET,
        ReplicationConfiguration={
            "Role": "arn:aws:iam::123456789012:role/sitectl-lab-replication",
            "Rules": [
                {
                    "ID": f"{source}-to-{destination}",
                    "Status": "Enabled",
                    "Priority": 1,
                    "Filter": {"Prefix": ""},
                    "DeleteMarkerReplication": {"Status": "Disabled"},
                    "Destination": {"Bucket": f"arn:aws:s3:::{BUCKET}"},
                }
            ],
        },
    )
