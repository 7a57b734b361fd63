"""The epoch check a playbook asks before a call that cannot check our epoch itself
(orchestrator/playbooks/action_plugins/sitectl_lease.py, used before each ONTAP change), run by a real
ansible-playbook against a real ZooKeeper ensemble: it passes while the operation's
epoch is the newest, stops the run once a successor has taken the lease, and stops it
too when ZooKeeper cannot be read."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from orchestrator.config.model import INSTALLED_PLAYBOOKS
from orchestrator.coordination.lease import Lease
from orchestrator.coordination.paths import ZkPaths
from tests.controller.conftest import topology_doc
from tests.zkensemble import Ensemble

pytestmark = pytest.mark.lab

PLAYBOOKS = INSTALLED_PLAYBOOKS
DOING = "quiescing svm1:mail_store"


def check(tmp_path: Path, topology: Path, epoch: int) -> subprocess.CompletedProcess[str]:
    play = tmp_path / "check.yml"
    play.write_text(
        yaml.safe_dump(
            [
                {
                    "name": "check the epoch",
                    "hosts": "localhost",
                    "gather_facts": False,
                    "tasks": [
                        {
                            "name": "still ours?",
                            "sitectl_lease": {
                                "topology": str(topology),
                                "epoch": epoch,
                                "before": DOING,
                            },
                        }
                    ],
                }
            ]
        )
    )
    env = {
        **os.environ,
        "ANSIBLE_ACTION_PLUGINS": str(PLAYBOOKS / "action_plugins"),
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp"),
        "ANSIBLE_HOME": str(tmp_path / "ansible-home"),
        "ANSIBLE_NOCOLOR": "1",
    }
    bin_dir = Path(sys.executable).parent
    return subprocess.run(
        [str(bin_dir / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(play)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def topology_at(tmp_path: Path, zk_hosts: str, chroot: str) -> Path:
    doc = topology_doc("epochcheck", zk_hosts)
    doc["zookeeper"]["chroot"] = chroot
    path = tmp_path / "topology.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_the_check_passes_for_the_newest_epoch_and_stops_a_stale_one(
    ensemble: Ensemble, chroot: str, tmp_path: Path
) -> None:
    topology = topology_at(tmp_path, ensemble.hosts, chroot)
    paths = ZkPaths.for_cluster(chroot, "epochcheck")
    client = ensemble.client()
    try:
        operation = Lease(client, paths, "the operation")
        ours = operation.acquire()
        passed = check(tmp_path, topology, ours)
        assert passed.returncode == 0, passed.stdout + passed.stderr
        operation.release()

        successor = Lease(client, paths, "its successor")
        newer = successor.acquire()
        assert newer > ours
        stopped = check(tmp_path, topology, ours)
        assert stopped.returncode != 0
        assert (
            f"epoch {ours} is stale: ZooKeeper holds epoch {newer} (a newer operation has "
            f"taken the lease); not {DOING}"
        ) in stopped.stdout
        successor.release()
    finally:
        client.stop()
        client.close()


def test_the_check_fails_closed_when_zookeeper_cannot_be_read(tmp_path: Path) -> None:
    # Nothing listens on 127.0.9.9: the check must stop the run, not wave it through.
    topology = topology_at(tmp_path, "127.0.9.9:2181,127.0.9.9:2182,127.0.9.9:2183", "/x")
    stopped = check(tmp_path, topology, 3)
    assert stopped.returncode != 0
    assert "could not read the fencing epoch" in stopped.stdout
    assert f"not {DOING}" in stopped.stdout
