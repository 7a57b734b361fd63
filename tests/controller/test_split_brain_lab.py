"""Two sites serving, on the namespace lab with its controllers: the application started
by hand on the standby (past its start gate, as a careless operator would) while the
active site serves. What a user checks: `sitectl health` says down, naming the split;
the controllers' `split-brain` hook and the topology's notification targets are told
once, with the findings; `/metrics` counts it; and it ends when the stray application
stops."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from orchestrator.lab import controllers as lab_daemons
from orchestrator.lab import layout
from tests.conftest import LabHandle
from tests.controller.conftest import wait_for
from tests.engine.conftest import Cluster

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def cluster(lab: LabHandle) -> Cluster:
    return Cluster(lab)


def lab_app(cluster: Cluster, action: str, site: str) -> None:
    """The site's MTA only: the standby's mailbox server has no volume to serve from."""
    done = subprocess.run(
        [
            *(sys.executable, "-m", "orchestrator.lab.app", action, "--site", site),
            *("--role", "mta"),
            *("--state-dir", str(cluster.lab.state_dir)),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr


def controller_log(cluster: Cluster, site: str) -> str:
    return Path(cluster.lab.state().components[f"{site}-controller"].log).read_text()


def split_gauge(cluster: Cluster, site: str) -> float | None:
    token = lab_daemons.token_file(cluster.lab.state_dir)  # the lab's /metrics needs it
    text = lab_daemons.get(lab_daemons.listen(site), "/metrics", token, timeout=5).decode()
    for line in text.splitlines():
        if line.startswith("sitectl_split_brain "):
            return float(line.split()[1])
    return None


def test_two_sites_serving_is_down_told_to_the_hook_and_counted(
    cluster: Cluster, tmp_path: Path
) -> None:
    lab = cluster.lab
    if not cluster.at_home():
        lab.renew()
    told = tmp_path / "told.jsonl"
    # Three controllers tell at once: each appends its event and newline under a lock, or
    # two events written at the same instant interleave into one line.
    lock = tmp_path / "append.lock"
    # The topology's notification targets are told too (issue 20 item 3), beside the hook.
    notified = tmp_path / "notified.jsonl"
    doc = yaml.safe_load(cluster.topology_file.read_text())
    doc["notifications"] = {
        "targets": [
            {
                "command": f"flock {lock} -c '{{ cat; echo; }} >> {notified}'",
                "events": ["split-brain"],
            }
        ]
    }
    topology = cluster.topology_file.with_name("topology-split-notify.yaml")
    topology.write_text(yaml.safe_dump(doc, sort_keys=False))
    lab.ok(
        "controllers",
        "up",
        "--topology",
        str(topology),
        "--hook",
        f"split-brain=flock {lock} -c '{{ cat; echo; }} >> {told}'",
    )
    stray = layout.DATACENTERS[1]
    try:
        wait_for(lambda: split_gauge(cluster, "dc1") == 0.0, "the controllers probe", within=60)
        lab_app(cluster, "start", stray)

        health = cluster.sitectl("health", "--system", "application", "--json")
        assert health.returncode == 2, health.stdout + health.stderr
        findings = [r for r in json.loads(health.stdout)["results"] if r["target"] == "split-brain"]
        assert [(f["status"], f["figures"]) for f in findings] == [("down", {"split_brain": 1.0})]
        assert findings[0]["reason"].startswith("split brain: 2 sites serve the application (")

        wait_for(lambda: told.exists() and told.read_text().strip(), "the hook is told", within=30)
        wait_for(
            lambda: all(split_gauge(cluster, s) == 1.0 for s in layout.SITES),
            "every view counts it",
        )
        events = [json.loads(line) for line in told.read_text().splitlines() if line]
        assert {e["event"] for e in events} == {"split-brain"}
        assert {e["vantage"] for e in events} <= set(layout.SITES)
        assert all(e["active_site"] == "dc1" and e["findings"] for e in events), events
        assert f"{stray} sees two sites serving" in controller_log(cluster, stray)
        wait_for(lambda: notified.exists() and notified.read_text().strip(), "targets told")
        notices = [json.loads(line) for line in notified.read_text().splitlines() if line]
        for notice in notices:
            assert (notice["schema"], notice["event"], notice["operation"]) == (
                "sitectl.event/v1",
                "split-brain",
                None,
            )
            assert notice["cluster"] == "sitectl-lab" and notice["findings"], notice
            assert notice["detail"].startswith(
                f"{notice['by'].split()[0]}'s controller sees two sites serving (dc1 recorded "
                "active): "
            ), notice

        lab_app(cluster, "stop", stray)
        wait_for(lambda: split_gauge(cluster, "witness") == 0.0, "the split ends", within=30)
        assert "witness no longer sees two sites serving" in controller_log(cluster, "witness")
        # Once per episode: the hook was not told again while it lasted.
        told_once = [json.loads(line) for line in told.read_text().splitlines() if line]
        assert len(told_once) == len({e["vantage"] for e in told_once})
        once = [json.loads(line) for line in notified.read_text().splitlines() if line]
        assert len(once) == len({n["by"] for n in once}), once
        assert {n["seq"] for n in once} == {1}, once
    finally:
        lab_app(cluster, "stop", stray)
        lab.ok("controllers", "down")
