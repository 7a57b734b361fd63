"""Issue 20 item 6 on the real lab: the CLI habits operators bring from patronictl,
terraform and kubectl — `status --watch`, saved plans (`plan -o`, `switchover --plan`),
`resume` that asks, and `history`. One lab session; the last test leaves dc2 active
(the next module's fixture starts from a new lab, as after any scenario that moves)."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from orchestrator.coordination.client import connect
from orchestrator.coordination.paths import ZkPaths
from orchestrator.coordination.store import ZkStore
from tests.conftest import eventually
from tests.engine.conftest import SITECTL, Cluster

pytestmark = pytest.mark.lab


def _recorded(cluster: Cluster) -> dict[str, Any]:
    """What ZooKeeper holds of the cluster's moves, read with sitectl's identity: the
    active site's znode (its stat: any write changes it) and the operation ids."""
    topo = cluster.topology
    client = connect(topo, timeout=15)
    try:
        store = ZkStore(client, ZkPaths.for_cluster(topo.zookeeper.chroot, topo.cluster))
        return {
            "active_site": store.active_site(),
            "active_site_stat": client.exists(store.paths.active_site),
            "operations": store.operation_ids(),
            "lease": store.lock_holders(),
        }
    finally:
        client.stop()
        client.close()


def _sigint_default() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_status_watch_refreshes_the_table_until_ctrl_c(cluster: Cluster) -> None:
    watches = {
        "table": [SITECTL, "status", "--watch", "--interval", "0.5"],
        "json": [SITECTL, "status", "--watch", "--interval", "0.5", "--json"],
    }
    procs = {
        name: subprocess.Popen(
            argv,
            env=cluster.env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            # Ctrl-C as a terminal delivers it: a test lane started in the background
            # (scripts/test) runs with SIGINT ignored, which every child inherits.
            preexec_fn=_sigint_default,
        )
        for name, argv in watches.items()
    }
    lines: dict[str, list[str]] = {name: [] for name in procs}

    def read(name: str) -> None:
        for line in procs[name].stdout:  # type: ignore[union-attr]
            lines[name].append(line)

    readers = [threading.Thread(target=read, args=(name,), daemon=True) for name in procs]
    for reader in readers:
        reader.start()
    try:
        eventually(
            lambda: (
                sum("Ctrl-C ends" in line for line in lines["table"]) >= 2
                and len(lines["json"]) >= 2
            ),
            "two refreshes of each watch",
            within=30,
        )
    finally:
        for proc in procs.values():
            proc.send_signal(signal.SIGINT)
    codes = {name: proc.wait(timeout=15) for name, proc in procs.items()}
    for reader in readers:
        reader.join(timeout=5)

    assert codes == {"table": 0, "json": 0}, {n: p.stderr.read() for n, p in procs.items()}  # type: ignore[union-attr]
    table = "".join(lines["table"])
    assert table.count("SITE") >= 2, table  # one table per refresh, not redrawn in a pipe
    rows = [line.split() for line in lines["table"]]
    assert ["SITE", "ROLE", "TICKET", "CONTROLLER", "SEES", "REPORTED"] in rows, table
    # Whatever ran before (a ticket or not, controllers or not): the sites' roles.
    assert rows[[r[:1] for r in rows].index(["dc1"])][:2] == ["dc1", "active"], table
    assert rows[[r[:1] for r in rows].index(["dc2"])][:2] == ["dc2", "standby"], table
    assert rows[[r[:1] for r in rows].index(["witness"])][:2] == ["witness", "witness"], table
    objects = [json.loads(line) for line in lines["json"]]
    assert {o["active_site"] for o in objects} == {"dc1"}
    assert all(o["at"] > 0 for o in objects)


def test_a_plan_file_that_is_not_the_plan_now_is_refused_and_nothing_changes(
    cluster: Cluster, tmp_path: Path
) -> None:
    saved = {
        "switchover": tmp_path / "switchover.json",
        "failover": tmp_path / "failover.json",
    }
    for args, path in (
        (["--to", "dc2"], saved["switchover"]),
        (["--to", "dc2", "--mode", "failover", "--unreachable", "dc1"], saved["failover"]),
    ):
        planned = cluster.sitectl("plan", *args, "-o", str(path))
        assert planned.returncode == 0, planned.stderr
    digests = {mode: json.loads(path.read_text())["digest"] for mode, path in saved.items()}
    # The same switchover, said to start from dc2: its steps still digest as written
    # (the digest is what runs), so only the sites tell it apart.
    elsewhere = json.loads(saved["switchover"].read_text())
    elsewhere["from_site"] = "dc2"
    (tmp_path / "from-dc2.json").write_text(json.dumps(elsewhere))
    before = _recorded(cluster)
    mounts_before, dns_before = cluster.mounted_sites(), cluster.dns_answers()

    refusals = {
        "failover plan, switchover": cluster.sitectl(
            "switchover", "--plan", str(saved["failover"]), "--yes"
        ),
        "switchover plan, failover": cluster.sitectl(
            "failover", "--plan", str(saved["switchover"]), "--yes"
        ),
        "another site": cluster.sitectl(
            "switchover", "--plan", str(tmp_path / "from-dc2.json"), "--yes"
        ),
    }

    said = {name: done.stderr.strip() for name, done in refusals.items()}
    assert {name: done.returncode for name, done in refusals.items()} == dict.fromkeys(
        refusals, 5
    ), said
    assert said["failover plan, switchover"] == (
        f"refused: {saved['failover']} is not the plan that would run now: mode is failover "
        f"in the file, switchover now (plan {digests['failover']} in the file, "
        f"{digests['switchover']} now); nothing changed — review the plan again: sitectl "
        f"plan --to dc2 --mode switchover -o {saved['failover']}"
    )
    assert "mode is switchover in the file, failover now" in said["switchover plan, failover"]
    assert (
        f"(plan {digests['switchover']} in the file, {digests['failover']} now)"
        in said["switchover plan, failover"]
    )
    assert "from_site is dc2 in the file, dc1 now" in said["another site"]
    # Nothing changed: ZooKeeper's record of the active site (not even rewritten), no
    # operation recorded, the lease free; the volumes and DNS where they were.
    assert _recorded(cluster) == before
    assert before["lease"] == []
    assert cluster.mounted_sites() == mounts_before == {"dc1"}
    assert cluster.dns_answers() == dns_before


def test_a_saved_plan_runs_resume_asks_and_history_lists_it_first(
    cluster: Cluster, tmp_path: Path
) -> None:
    plan_file = tmp_path / "dc2.json"
    assert cluster.sitectl("plan", "--to", "dc2", "-o", str(plan_file)).returncode == 0
    earlier = cluster.ok("history", "--limit", "0")

    # The saved plan is the plan now: it runs (killed after three checkpoints, so there
    # is something to resume).
    killed = cluster.sitectl(
        "switchover",
        "--plan",
        str(plan_file),
        "--yes",
        "--reason",
        "cli habits",
        SITECTL_FAULT_KILL_AFTER_STEPS="3",
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    op = cluster.status()["operation"]
    assert op["in_progress"] and op["to_site"] == "dc2"

    # A script (no terminal) that forgot --yes: refused, the operation as it was.
    asked = cluster.sitectl("resume")
    assert asked.returncode == 2, asked.stderr
    assert asked.stderr.strip() == (
        "refused: no terminal to confirm on — pass --yes to run without a prompt"
    )
    assert cluster.status()["operation"] == op

    resumed = cluster.ok("resume", "--yes")
    assert resumed["status"] == "succeeded", resumed["message"]
    cluster.assert_active("dc2")

    rows = cluster.ok("history", "--limit", "0")
    assert len(rows) == len(earlier) + 1
    first = rows[0]
    assert (first["id"], first["kind"], first["mode"], first["route"]) == (
        op["id"],
        "operation",
        "switchover",
        "dc1→dc2",
    )
    assert (first["status"], first["reason"], first["by"]) == ("succeeded", "cli habits", op["by"])
    assert first["seconds"] > 0
    started = [r["started"] for r in rows]
    assert started == sorted(started, reverse=True), "newest first"
    table = cluster.sitectl("history", "--limit", "1")
    assert table.returncode == 0, table.stderr
    assert op["id"] in table.stdout and "succeeded" in table.stdout
