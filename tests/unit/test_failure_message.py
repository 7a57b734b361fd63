"""A failed host step says why: its message, its checkpoint and the audit log carry the
last lines of the failing command's own error (secrets hidden), not only Ansible's
"non-zero return code" — real ansible-playbook runs on localhost."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from orchestrator.adapters.ansible import PlaybookCall, _message, run_playbook
from orchestrator.audit import AuditLog
from orchestrator.config import Topology, load_topology
from orchestrator.engine.executor import Executor
from orchestrator.engine.records import OpStatus, StepStatus
from orchestrator.engine.steps import default_handlers
from orchestrator.engine.steps.common import PlaybookStep
from orchestrator.errors import Failed
from orchestrator.plan import Action, assumed_state, build_plan
from orchestrator.plan.model import Step
from tests.unit.engine_fakes import FakeFence, MemoryStore, ScriptedHandler, operation_record
from tests.unit.local_hosts import local_inventory

EXAMPLE = Path(__file__).resolve().parents[2] / "inventories/example-zimbra/topology.yaml"
ERROR = "lab app: no mail application for dc1 in /srv/app"
PLANTED = "hunter2-canary"
FAILING = f"""- name: fail like a host command does
  hosts: "{{{{ sitectl_hosts | default('all') }}}}"
  gather_facts: false
  tasks:
    - name: start the application
      ansible.builtin.shell: |
        echo "starting" >&2
        echo "password={PLANTED}" >&2
        echo "{ERROR}" >&2
        exit 3
"""


@pytest.fixture
def local(tmp_path: Path) -> Path:
    (tmp_path / "failing.yml").write_text(FAILING)
    local_inventory(tmp_path)
    return tmp_path


def test_a_failed_command_names_its_own_error_and_hides_the_secret(local: Path) -> None:
    with pytest.raises(Failed) as failed:
        run_playbook(
            local / "failing.yml", local / "hosts.yml", ("h1",), {}, local / "art", timeout=60
        )

    message = str(failed.value)
    assert message.startswith("failing.yml failed: h1: start the application: ")
    assert "non-zero return code" in message
    assert ERROR in message
    assert PLANTED not in message and "password=<hidden>" in message


def test_a_message_keeps_the_last_lines_of_a_long_output() -> None:
    res = {"msg": "non-zero return code", "stderr": "\n".join(f"line {n}" for n in range(50))}

    said = _message("t", res)

    assert said.startswith("t: ") and said.endswith(
        "line 45 | line 46 | line 47 | line 48 | line 49"
    )
    assert "line 44" not in said
    assert _message("t", {"msg": "no such file"}) == "t: no such file"  # a message alone


@dataclass
class FailingStep(PlaybookStep):
    root: Path

    def call(self, step: Step, ctx: Any) -> PlaybookCall:
        return PlaybookCall(playbook=self.root / "failing.yml", hosts=("h1",))

    def check(self, step: Step, ctx: Any) -> bool:
        return False

    def verify(self, step: Step, ctx: Any) -> None:
        return None


def test_the_checkpoint_and_the_audit_log_carry_the_commands_error(local: Path) -> None:
    example = load_topology(EXAMPLE)
    topo: Topology = example.model_copy(
        update={
            "ansible": example.ansible.model_copy(update={"inventory": str(local / "hosts.yml")})
        }
    )
    plan = build_plan(topo, assumed_state(topo), "switchover", "dc2")
    op = operation_record(plan, reason="failure message test")
    store = MemoryStore(ops={op.id: (op, 0)}, current=op.id)
    handlers: dict[Action, Any] = dict.fromkeys(Action, ScriptedHandler())
    step = FailingStep(local)
    playbook_actions = [
        a for a, h in default_handlers(lambda s: None).items() if isinstance(h, PlaybookStep)
    ]
    handlers |= dict.fromkeys(playbook_actions, step)
    executor = Executor(
        plan=plan,
        topology=topo,
        store=store,
        lease=FakeFence(),
        handlers=handlers,
        audit=AuditLog(local / "audit.jsonl"),
        artifacts=local / "artifacts",
        sleep=lambda _: None,
        batch=False,
    )

    done = executor.run(op.id)

    # The first playbook step is a pre-sync, before the application stops: its failure
    # changes nothing, so the move is refused and the old site goes on serving.
    assert done.failed_step and done.failed_step.startswith("pre-sync/")
    assert done.status is OpStatus.REFUSED
    record = store.records(op.id)[done.failed_step or ""]
    assert record.status is StepStatus.FAILED
    assert ERROR in record.detail and ERROR in done.message
    audit = [json.loads(line) for line in (local / "audit.jsonl").read_text().splitlines()]
    failed = [e for e in audit if e["event"] == "step.failed"]
    assert failed and ERROR in failed[0]["detail"]
    assert PLANTED not in (local / "audit.jsonl").read_text()
    assert PLANTED not in done.message
