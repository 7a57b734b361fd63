"""The runbook's ZooKeeper commands, run by hand as an operator would (bash, from the
topology's directory) against the lab's ensemble: TLS verified against the lab CA, the
digest identity read into a here-document, and a ticket-shaped JSON value set with its
quotes and `$(date +%s)` intact."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from orchestrator.config import load_topology
from orchestrator.coordination.client import connect
from orchestrator.coordination.paths import ZkPaths
from orchestrator.plan import assumed_state, build_plan
from orchestrator.runbook.manual import _check_zookeeper, _zk_cli, _zk_put
from tests.conftest import LabHandle

pytestmark = pytest.mark.lab


# What the runbook's "Secret files" block makes for these commands (manual.secret_files).
SECRETS = (
    'export RUNBOOK_SECRETS="$(mktemp -d)"; trap \'rm -r "$RUNBOOK_SECRETS"\' EXIT; '
    '(umask 077 && printf \'%s\' "$(cat {file})" > "$RUNBOOK_SECRETS/zookeeper.digest")\n'
)


def bash(command: str, cwd: Path, identity: str = "") -> subprocess.CompletedProcess[str]:
    prefix = SECRETS.format(file=identity) if identity else ""
    return subprocess.run(
        ["bash", "-c", prefix + command],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_runbooks_zookeeper_commands_work_over_tls_with_auth(lab: LabHandle) -> None:
    topo = load_topology(lab.env["topology"])
    assert topo.zookeeper.tls is not None and topo.zookeeper.auth is not None
    home = topo.base_dir
    identity = str(topo.zookeeper.auth.credentials.file)

    # The switchover's pre-flight check, as the runbook renders it.
    plan = build_plan(topo, assumed_state(topo), "switchover", "dc2")
    check = _check_zookeeper(topo, plan, plan.step("preflight/zookeeper"))
    for command in check.commands:
        done = bash(command, home)
        assert done.returncode == 0 and done.stdout.startswith("Mode: "), (command, done)

    znode = f"{ZkPaths.for_cluster(topo.zookeeper.chroot, topo.cluster).root}/runbook-{uuid.uuid4().hex[:8]}"
    value = '{"holder": "dc2", "epoch": 0, "renewed_at": $(date +%s), "ttl": 9}'
    client = connect(topo, timeout=10)
    try:
        # Made by sitectl, so it carries sitectl's digest ACL: only the identity the
        # runbook authenticates as may change it.
        client.create(znode, b"{}", makepath=True)
        before = time.time()
        done = bash(_zk_cli(topo, f"set {znode} '{value}'", f"get {znode}"), home, identity)
        assert done.returncode == 0, done.stderr
        assert "Insufficient permission" not in done.stdout + done.stderr, done.stdout
        raw, _ = client.get(znode)
        written = json.loads(raw)
        assert written["holder"] == "dc2" and written["ttl"] == 9
        assert before - 2 <= written["renewed_at"] <= time.time() + 2
        assert done.stdout.strip().splitlines()[-1] == raw.decode()
        client.delete(znode)
    finally:
        client.stop()
        client.close()
    # A node that does not exist yet, nor its parent (a cluster that never ran an
    # operation has no ticket): made with sitectl's ACL, then read back by sitectl.
    fresh = f"{znode}-parent/ticket"
    done = bash(_zk_cli(topo, *_zk_put(topo, fresh, value)), home, identity)
    assert done.returncode == 0, done.stderr
    client = connect(topo, timeout=10)
    try:
        assert json.loads(client.get(fresh)[0])["holder"] == "dc2"
        acl, _ = client.get_acls(fresh)
        assert [(a.id.scheme, a.perms) for a in acl] == [("digest", 31)], acl
        client.delete(f"{znode}-parent", recursive=True)
    finally:
        client.stop()
        client.close()
    secret = Path(home / topo.zookeeper.auth.credentials.file).read_text().strip()
    rendered = _zk_cli(topo, f"get {znode}")
    assert secret not in rendered and secret.partition(":")[2] not in rendered
