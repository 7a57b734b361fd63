"""The operator's workflow on the real lab (issue 20): custom steps, approvals, skip and
escalate, each run as an operator would, from separate shells (processes), and checked
with real clients (DNS answers, SMTP/IMAP, mounts, a file a custom step wrote on a dc2
host) and the audit log, never with sitectl's own word alone.

1. An approval before `disable-application` rejected: the switchover is refused and the
   service stays on dc1, protected, untouched.
2. The same approval, the switchover killed while it waits: `resume` comes back to the
   same approval (same start), `approve` from another shell lets it go on; a custom step
   after `start-services` writes a file on dc2's mailbox host (it holds dc2's address);
   a custom step that fails stops the operation, and `skip` passes over it and resumes.
3. A switchover whose old site hangs (paused) after the approval is escalated into a
   failover, which waits out dc1's ticket and leaves dc2 serving.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import yaml

from orchestrator.adapters.probes import Answer
from orchestrator.lab import layout
from tests.controller.conftest import wait_for
from tests.engine.conftest import SITECTL, Cluster
from tests.webhook import Receiver, receiving

APPROVAL = "approval/change-board"
SWITCHOVER = ("switchover", "--to", "dc2", "--yes", "-r", "workflow test")


def _topology(
    cluster: Cluster, name: str, custom: list[dict[str, Any]], webhook: str | None = None
) -> Path:
    doc = yaml.safe_load(cluster.topology_file.read_text())
    doc["custom_steps"] = custom
    if webhook is not None:
        doc["notifications"] = {"timeout": "5s", "targets": [{"url": webhook}]}
    path = cluster.topology_file.with_name(f"topology-{name}.yaml")
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _board(**more: Any) -> dict[str, Any]:
    return {
        "name": "change-board",
        "approval": True,
        "before": "disable-application",
        "description": "the change board agrees to leave dc1",
        **more,
    }


def _start(cluster: Cluster, topology: Path, audit: Path, *args: str) -> subprocess.Popen[str]:
    """`sitectl ARGS` in a shell of its own, as an operator starts it and walks away."""
    return subprocess.Popen(
        [SITECTL, *args],
        env=cluster.env(SITECTL_CONFIG=str(topology), SITECTL_AUDIT_LOG=str(audit)),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _run(
    cluster: Cluster, topology: Path, audit: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    return cluster.sitectl(*args, SITECTL_CONFIG=str(topology), SITECTL_AUDIT_LOG=str(audit))


def _status(cluster: Cluster, topology: Path) -> dict[str, Any]:
    done = cluster.sitectl("status", "--json", SITECTL_CONFIG=str(topology))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _waiting(cluster: Cluster, topology: Path) -> dict[str, Any] | None:
    op = _status(cluster, topology)["operation"]
    if op and op["in_progress"] and op["waiting_for"]:
        return {"op": op["id"], **op["waiting_for"][0]}
    return None


def _audit(audit: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in audit.read_text().splitlines() if line.strip()]


def test_a_rejected_approval_leaves_the_service_where_it_was(
    cluster: Cluster, tmp_path: Path
) -> None:
    with receiving() as receiver:
        _rejected(cluster, tmp_path, receiver)
    # Told as it happened: started, approval-needed (naming how to answer), then failed.
    assert receiver.events() == ["started", "approval-needed", "step-failed", "failed"]
    asked = receiver.posts[1]
    assert asked["step"] == APPROVAL and "sitectl approve" in asked["detail"]
    assert receiver.posts[-1]["status"] == "refused"


def _rejected(cluster: Cluster, tmp_path: Path, receiver: Receiver) -> None:
    topology = _topology(cluster, "reject", [_board()], webhook=receiver.url)
    audit = tmp_path / "audit.jsonl"
    switchover = _start(cluster, topology, audit, *SWITCHOVER)
    try:
        waiting = wait_for(lambda: _waiting(cluster, topology), "the switchover waits", 120)
        assert waiting["step"] == APPROVAL
        # While it waits nothing has moved: dc1 serves, dc2 does not.
        assert set(cluster.app_answers("dc1").values()) == {Answer.UP}
        plain = _run(cluster, topology, audit, "status")
        assert f"at {APPROVAL} for anyone allowed to operate" in plain.stdout, plain.stdout
        rejected = _run(
            cluster, topology, audit, "reject", waiting["op"], "-r", "change freeze", "--json"
        )
        assert rejected.returncode == 0, rejected.stderr
        assert json.loads(rejected.stdout)["verdict"] == "reject"
        out, err = switchover.communicate(timeout=60)
    finally:
        switchover.kill()
    assert switchover.returncode == 4, out + err  # refused before any change
    assert "rejected by" in out and "change freeze" in out
    op = _status(cluster, topology)["operation"]
    assert (op["status"], op["failed_step"]) == ("refused", APPROVAL)
    cluster.assert_protected("dc1")  # DNS, mounts, the application, the mirror: as before
    events = [(e["event"], e.get("step")) for e in _audit(audit)]
    assert ("approval.reject", APPROVAL) in events
    said = next(e for e in _audit(audit) if e["event"] == "approval.reject")
    assert said["reason"] == "change freeze" and "@" in said["by"]


def test_an_approval_survives_a_crash_and_custom_steps_run_on_the_new_site(
    cluster: Cluster, tmp_path: Path
) -> None:
    marker = tmp_path / "written-on"
    topology = _topology(
        cluster,
        "approve",
        [
            _board(),
            {
                "name": "mark-new-site",
                "after": "start-services",
                "on": "mailbox",
                # Runs over SSH on dc2's mailbox host: its addresses say where it ran.
                "command": f"ip -4 -o addr show > {marker}.{{to}} && echo {{operation}} >> "
                f"{marker}.{{to}}",
            },
            {"name": "page-oncall", "after": "start-services", "command": "echo down; exit 3"},
        ],
    )
    audit = tmp_path / "audit.jsonl"
    first = _start(cluster, topology, audit, *SWITCHOVER)
    try:
        asked = wait_for(lambda: _waiting(cluster, topology), "the switchover waits", 120)
    finally:
        first.kill()  # a lost terminal, a crash: the operation stays recorded
        first.wait()
    op_id = asked["op"]
    resumed = _start(cluster, topology, audit, "resume", op_id, "--yes")
    try:
        # The killed run's request stays on record: wait until the resumed run (once the
        # dead one's session expired and it took the lease) has asked again itself.
        wait_for(
            lambda: (
                [(e["event"], e.get("step")) for e in _audit(audit)].count(
                    ("step.running", APPROVAL)
                )
                == 2
            ),
            "the resumed run reached the approval again",
            120,
        )
        again = wait_for(
            lambda: (w := _waiting(cluster, topology)) and w["op"] == op_id and w,
            "the resumed operation waits at the same approval",
            120,
        )
        assert (again["step"], again["since"]) == (APPROVAL, asked["since"])
        approved = _run(cluster, topology, audit, "approve", op_id, "-r", "board agreed")
        assert approved.returncode == 0, approved.stderr
        assert f"{APPROVAL} of operation {op_id} approved: board agreed" in approved.stdout
        out, err = resumed.communicate(timeout=300)
    finally:
        resumed.kill()
    # The failing custom step stopped it after the service started on dc2.
    assert resumed.returncode == 1, out + err
    assert "custom/page-oncall" in out and "command exited 3: down" in out
    written = Path(f"{marker}.dc2").read_text()
    assert layout.service_ip("dc2") in written and op_id in written, written

    skipped = _run(
        cluster,
        topology,
        audit,
        "skip",
        op_id,
        "custom/page-oncall",
        "-r",
        "paged by phone",
        "--yes",
        "--json",
    )
    assert skipped.returncode == 0, skipped.stderr + skipped.stdout
    steps = {s["id"]: s for s in json.loads(skipped.stdout)["steps"]}
    assert steps["custom/page-oncall"]["status"] == "skipped"
    assert "paged by phone" in steps["custom/page-oncall"]["detail"]
    cluster.assert_active("dc2")
    events = [(e["event"], e.get("step")) for e in _audit(audit)]
    assert ("approval.approve", APPROVAL) in events
    assert ("step.skipped_by_operator", "custom/page-oncall") in events
    assert events.index(("operation.resumed", None)) < events.index(("approval.approve", APPROVAL))


def test_a_switchover_stuck_on_a_hung_old_site_is_escalated_to_a_failover(
    cluster: Cluster, tmp_path: Path
) -> None:
    # The board approves planned moves only: the escalated failover does not wait for it.
    topology = _topology(cluster, "escalate", [_board(modes=["switchover"])])
    audit = tmp_path / "audit.jsonl"
    switchover = _start(cluster, topology, audit, *SWITCHOVER)
    try:
        waiting = wait_for(lambda: _waiting(cluster, topology), "the switchover waits", 120)
        cluster.lab.ok("pause-site", "dc1")  # hung: it accepts TCP and never answers
        approved = _run(cluster, topology, audit, "approve", "-r", "go")
        assert approved.returncode == 0, approved.stderr
        escalated = _run(
            cluster,
            topology,
            audit,
            "escalate",
            waiting["op"],
            "-r",
            "dc1 hangs",
            "--accept-data-loss",
            "dc1 hangs; its last seconds are accepted lost",
            "--yes",
            "--json",
        )
        switchover.communicate(timeout=120)
    finally:
        switchover.kill()
    assert escalated.returncode == 0, escalated.stderr + escalated.stdout
    failover = json.loads(escalated.stdout)
    assert (failover["mode"], failover["status"]) == ("failover", "succeeded")
    assert failover["accept_data_loss"]
    steps = {s["id"]: s for s in failover["steps"]}
    assert steps["readiness/gate"]["status"] == "done"  # the gate ran (its loss accepted)
    assert steps["fence/wait/dc1"]["status"] == "done"
    assert steps["disable-application/dc1/mta"]["status"] == "skipped"
    # dc2 serves and every DNS server that answers points at it; dc1 stays hung.
    assert set(cluster.app_answers("dc2").values()) == {Answer.UP}
    wrong = {
        k: v for k, v in cluster.dns_answers_alive().items() if v != {layout.service_ip("dc2")}
    }
    assert not wrong, wrong
    assert _status(cluster, topology)["active_site"] == "dc2"
    records = _audit(audit)
    escalation = next(e for e in records if e["event"] == "operation.escalated")
    assert escalation["op"] == waiting["op"] and escalation["reason"] == "dc1 hangs"
    aborted = [e for e in records if e["event"] == "operation.aborted"]
    assert aborted and aborted[0]["op"] == waiting["op"]
    started = [e for e in records if e["event"] == "operation.started" and e["mode"] == "failover"]
    assert started and f"escalated from switchover {waiting['op']}" in started[0]["reason"]
