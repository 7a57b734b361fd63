"""Topology files for the checks' lab tests: copies of the lab's own, with edits.

Copies are written next to the lab's topology (in its state dir), so the relative paths
of its secrets still resolve; `lab down --purge` removes them with the rest.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.config import Topology, load_topology
from orchestrator.lab.credentials import ensure_ca
from tests.conftest import LabHandle

Edit = Callable[[dict[str, Any], Path], None]


@pytest.fixture(scope="session")
def lab_topology_file(lab: LabHandle) -> Callable[..., Path]:
    """`lab_topology_file(edit, ...)`: a copy of the lab's topology with the edits."""
    source = Path(lab.env["topology"])
    counter = [0]

    def make(*edits: Edit) -> Path:
        data = yaml.safe_load(source.read_text())
        for edit in edits:
            edit(data, source.parent)
        counter[0] += 1
        path = source.parent / f"topology-checks-{counter[0]}.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    return make


@pytest.fixture(scope="session")
def lab_topology(lab_topology_file: Callable[..., Path]) -> Callable[..., Topology]:
    """`lab_topology(edit, ...)`: the same, loaded."""
    return lambda *edits: load_topology(lab_topology_file(*edits))


def rpo_limit(kind: str, value: str) -> Edit:
    def edit(data: dict[str, Any], _root: Path) -> None:
        data.setdefault("policy", {}).setdefault("rpo_limits", {})[kind] = value

    return edit


def wrong_tsig_secret(data: dict[str, Any], root: Path) -> None:
    """Every zone's key file replaced by one with the same name and a different secret."""
    for index, zone in enumerate(data["dns"]["zones"]):
        original = (root / zone["tsig"]["key_file"]).read_text()
        forged = re.sub(
            r'secret\s+"[^"]*"', f'secret "{base64.b64encode(os.urandom(32)).decode()}"', original
        )
        path = root / f"checks-forged-{index}.key"
        path.write_text(forged)
        path.chmod(0o600)
        zone["tsig"]["key_file"] = path.name


def wrong_s3_secret(data: dict[str, Any], root: Path) -> None:
    path = root / "checks-forged-s3-secret"
    path.write_text("not-the-lab-secret\n")
    path.chmod(0o600)
    for endpoint in data["object_store"]["endpoints"]:
        endpoint["secret_key"] = {"file": path.name}


def wrong_probe_password(data: dict[str, Any], root: Path) -> None:
    path = root / "checks-forged-probe-password"
    path.write_text("not-the-probe-password\n")
    path.chmod(0o600)
    data["application"]["probe_user"]["password"] = {"file": path.name}


def other_mail_ca(data: dict[str, Any], root: Path) -> None:
    """The mail probes verify against a CA that did not sign the lab's certificates (made
    as the lab makes its own: the same subject, another key)."""
    ca = ensure_ca(root / "checks-other-pki", "openssl")
    for role in data["roles"].values():
        for probe in role.get("probes", []):
            if probe.get("tls"):
                probe["ca_file"] = os.path.relpath(ca, root)
