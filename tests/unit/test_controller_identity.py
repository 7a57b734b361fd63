"""`sitectl controller identity` and `controller run --identity` (issue 19, finding 2):
the id printed is ZooKeeper's own name for the identity, and a controller refuses to
start without the identity the topology names for its site, or with another one."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from kazoo.security import make_digest_acl_credential
from typer.testing import CliRunner

from orchestrator.cli.main import app

EXAMPLE = Path(__file__).resolve().parents[2] / "inventories" / "example-zimbra"


@pytest.fixture
def topology(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The example, with dc1's controller id made from a password this test holds."""
    for name in ("hosts.yml", "pki", "playbooks"):
        source = EXAMPLE / name
        copy = shutil.copytree if source.is_dir() else shutil.copy
        copy(source, tmp_path / name)
    text = (EXAMPLE / "topology.yaml").read_text(encoding="utf-8")
    start = text.index('    dc1: "sitectl-controller-dc1:')
    end = text.index("\n", start)
    mine = make_digest_acl_credential("ctl-dc1", "the-password")
    (tmp_path / "topology.yaml").write_text(text[:start] + f'    dc1: "{mine}"' + text[end:])
    monkeypatch.setenv("SITECTL_ZK_CREDENTIALS", "sitectl:x")
    return tmp_path / "topology.yaml"


def identity(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "controller.digest"
    path.write_text(text)
    path.chmod(0o600)
    return path


def test_the_printed_id_is_zookeepers_name_for_the_identity(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["controller", "identity", str(identity(tmp_path, "ctl-dc1:the-password\n"))]
    )
    assert result.exit_code == 0, result.output
    assert result.output.strip() == make_digest_acl_credential("ctl-dc1", "the-password")


def test_a_controller_needs_the_identity_its_site_is_given(topology: Path) -> None:
    run = ["controller", "run", "--site", "dc1", "-c", str(topology)]
    missing = CliRunner().invoke(app, run)
    assert missing.exit_code == 2
    assert "--identity FILE is required: zookeeper.controller_ids names dc1's" in missing.output
    wrong = identity(topology.parent, "ctl-dc1:another-password")
    refused = CliRunner().invoke(app, [*run, "--identity", str(wrong)])
    assert refused.exit_code == 2
    assert "is not the one zookeeper.controller_ids names for dc1" in refused.output
