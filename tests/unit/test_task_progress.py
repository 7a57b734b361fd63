"""The progress display names the playbook task under way and its host: real
ansible-playbook runs on local hosts (as in tests/unit/test_batch.py), solo and shared,
seen through a recording Events; and the CLI's spinner line that shows it."""

from __future__ import annotations

import io
from dataclasses import dataclass, field

from rich.console import Console
from rich.progress import Progress, TextColumn

from orchestrator.cli.progress import Spinners
from orchestrator.engine.batch import BatchRun
from orchestrator.engine.records import StepRecord, StepStatus
from orchestrator.plan.model import Step
from tests.unit import test_batch

# The example topology and its local-hosts variant, shared with the batch tests.
topo = test_batch.topo
local = test_batch.local


@dataclass
class Recording:
    started: list[str] = field(default_factory=list)
    tasks: list[tuple[str, str, str]] = field(default_factory=list)

    def step_started(self, step: Step) -> None:
        self.started.append(step.id)

    def step_finished(self, step: Step, record: StepRecord) -> None:
        pass

    def task_started(self, step_id: str, host: str, task: str) -> None:
        self.tasks.append((step_id, host, task))


def test_a_step_run_on_its_own_reports_its_tasks_and_hosts(local, tmp_path) -> None:
    handler = test_batch.MarkStep(tmp_path, hosts={})
    run = test_batch._run(local, tmp_path, handler)
    step = test_batch._playbook_steps(run.units)[0]
    handler.hosts = {step.id: ("h1", "h2")}
    events = Recording()
    run.executor.events = events

    failed = run.executor.run_group(run.op, (step,), {}, {})

    assert failed is None
    assert sorted(events.tasks) == [
        (step.id, "h1", "write the mark"),
        (step.id, "h2", "write the mark"),
    ]


def test_a_shared_run_reports_each_steps_tasks_under_that_step(local, tmp_path) -> None:
    handler = test_batch.MarkStep(tmp_path, hosts={})
    run = test_batch._run(local, tmp_path, handler)
    chain = test_batch._playbook_steps(run.units)
    handler.hosts = {chain[1].id: ("h1", "h2")}
    handler.already = {chain[2].id}  # its gate says "skip": its plays belong to no step
    events = Recording()
    run.executor.events = events

    failed = BatchRun(run.executor, run.op, run.units, {}, {}, set()).run()

    assert failed is None
    applied = [s for s in chain if s is not chain[2]]
    expected = [(s.id, "h1", "write the mark") for s in applied]
    expected.insert(2, (chain[1].id, "h2", "write the mark"))
    assert sorted(events.tasks, key=expected.index) == expected
    assert len(events.tasks) == len(expected), "no gate task, nothing of the skipped step"


def test_the_spinner_line_names_the_step_host_and_task() -> None:
    progress = Progress(TextColumn("{task.description}"), console=Console(file=io.StringIO()))
    spinners = Spinners(progress, total=3)
    step = Step(
        id="mount/dc2/mailstore",
        phase=test_batch.Phase.MOUNT,
        action=test_batch.Action.VOLUME_MOUNT,
        site="dc2",
        target="mailstore",
        description="mount mailstore on dc2",
        hosts=("dc2-mailbox1",),
    )

    spinners.step_started(step)
    spinners.task_started(step.id, "dc2-mailbox1", "Mount the volume")
    spinners.task_started("dns/promote/other", "dc2-dns1", "not this step's")

    lines = [t.description for t in progress.tasks if t.description != "steps"]
    assert lines == ["mount/dc2/mailstore — dc2-mailbox1: Mount the volume"]
    spinners.step_finished(step, StepRecord(step_id=step.id, status=StepStatus.DONE))
    assert [t.description for t in progress.tasks] == ["steps"]
