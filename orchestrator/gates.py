"""The vocabulary the engine and a gated run share: a run of host steps' playbooks that
waits, before each step, at a gate the engine answers ("go", "skip", "stop").

A leaf module: the engine (engine/batch.py) speaks through `GatedRun`; the Ansible
implementation (adapters/ansible.run_batch) fills it, reached through the playbook step
handlers like every other outside system.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

# The gate after a run's last step: the engine verifies and checkpoints that step while
# ansible-playbook is still alive, and carries on as soon as it answers, instead of
# waiting for ansible-playbook to wind down (a few tenths of a second).
END_GATE = "sitectl:end"
# cancel(): None while the run may go on, else the error raised once it is killed.
Cancel = Callable[[], "Exception | None"]


class HandedOver(Protocol):
    """A secret a run needs, read only when the run starts (adapters/secrets.SecretSource)."""

    def reveal(self) -> str: ...


@dataclass(frozen=True)
class PlaybookCall:
    """One step's playbook, the hosts it runs on and its extra vars (never secrets)."""

    playbook: Path
    hosts: tuple[str, ...]
    extravars: Mapping[str, Any] = field(default_factory=dict)
    # Tags of the playbook's tasks this call never runs (their `when` is false for it),
    # left out with --skip-tags (in a shared run, under the step's own prefix:
    # adapters/ansible.step_skips): a task skipped by `when` still costs a worker fork.
    skip_tags: frozenset[str] = frozenset()
    # Secrets the topology reads from the environment that the playbook needs, by that
    # variable's name: handed over to the run in files, never in its environment or
    # extra vars (adapters/ansible.py).
    secrets: Mapping[str, HandedOver] = field(default_factory=dict)


@dataclass(frozen=True)
class BatchItem:
    """One gate of a shared run and, unless the engine does the work itself while
    ansible-playbook waits (`call` None), the step's playbook behind it."""

    name: str
    call: PlaybookCall | None


Verdict = Literal["go", "skip", "stop"]


@dataclass(frozen=True)
class GateAnswer:
    verdict: Verdict
    message: str = ""


# gate(step, after, hosts): `after` is the step the run did just before (None first);
# `hosts` are the hosts the step's play matched in the inventory.
Gate = Callable[[str, "str | None", tuple[str, ...]], GateAnswer]
# on_task(step, host, task) in a shared run: `step` is the gate that last said "go".
StepTaskHook = Callable[[str, str, str], None]


class GatedRun(Protocol):
    """Run `items` in one run, each step's plays behind `gate`; raise as a single step's
    run would (Failed, Unavailable), or what `cancel` returned once it said stop."""

    def __call__(
        self,
        items: Sequence[BatchItem],
        inventory: Path,
        artifacts: Path,
        gate: Gate,
        *,
        timeout: float,
        gate_timeout: float,
        on_task: StepTaskHook | None = None,
        cancel: Cancel | None = None,
    ) -> object: ...
