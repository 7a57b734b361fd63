"""The operator's own steps (topology `custom_steps`): a command or a playbook.

A command with `on: sitectl` runs here, in a shell, with an allow-listed environment
(never sitectl's secrets, orchestrator/childenv.py) plus the operation's SITECTL_*
variables; on a role's hosts it runs through orchestrator/playbooks/custom.yml under
the hosts' epoch ledger. A playbook runs as the operator wrote it, limited to the role's
hosts (or to `localhost` for `on: sitectl`), with the operation's `sitectl_*` extra vars.

Nothing here is "already true": the step runs whenever the engine reaches it and it is
not yet checkpointed done, so a command a crash interrupted runs again on resume: write
it so that is harmless. Its output is kept in the operation's artifacts.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from orchestrator.adapters.ansible import AnsibleTemplate, run_playbook
from orchestrator.childenv import hook_env
from orchestrator.config.model import fill, fill_for_ansible
from orchestrator.coordination.paths import step_file_name
from orchestrator.engine.handlers import StepContext
from orchestrator.engine.steps.common import playbook_call, step_tags
from orchestrator.errors import Failed
from orchestrator.safefiles import private_dir

POLL_S = 0.2
OUTPUT_KEPT = 400  # characters of a failed command's output in its error


def values(step_id: str, ctx: StepContext) -> dict[str, str]:
    """What a custom step is told about the operation (documented in docs/plan-format.md)."""
    plan, op = ctx.plan, ctx.operation
    return {
        "operation": op.id,
        "mode": plan.mode.value,
        "trigger": plan.trigger,
        "from": plan.from_site,
        "to": plan.to_site,
        "epoch": str(ctx.fence.epoch),
        "step": step_id,
    }


def extra_vars(step_id: str, ctx: StepContext) -> dict[str, Any]:
    told = values(step_id, ctx)
    return {
        "sitectl_mode": told["mode"],
        "sitectl_trigger": told["trigger"],
        "sitectl_from": told["from"],
        "sitectl_to": told["to"],
    }


class CustomCommandHandler:
    def check(self, step: Any, ctx: StepContext) -> bool:
        return False

    def apply(self, step: Any, ctx: StepContext) -> None:
        command = str(step.params["command"])
        timeout = float(step.params["timeout"])
        if not step.hosts:
            run_here(step.id, fill(command, **values(step.id, ctx)), timeout, ctx)
            return
        told = values(step.id, ctx)
        call = playbook_call(
            ctx,
            step,
            "custom.yml",
            step.hosts,
            {
                "custom_name": step.target,
                "custom_command": AnsibleTemplate(fill_for_ansible(command, "custom_values", told)),
                "custom_values": told,
                **extra_vars(step.id, ctx),
            },
        )
        _run(ctx, step, call.playbook, call.extravars, timeout)

    def verify(self, step: Any, ctx: StepContext) -> None:
        return None


class CustomPlaybookHandler:
    def check(self, step: Any, ctx: StepContext) -> bool:
        return False

    def apply(self, step: Any, ctx: StepContext) -> None:
        _run(
            ctx,
            step,
            ctx.topology.resolve(str(step.params["playbook"])),
            {**extra_vars(step.id, ctx), **step_tags(ctx, step)},
            float(step.params["timeout"]),
        )

    def verify(self, step: Any, ctx: StepContext) -> None:
        return None


def _run(
    ctx: StepContext, step: Any, playbook: Path, extravars: dict[str, Any], timeout: float
) -> None:
    topo = ctx.topology
    run_playbook(
        playbook=playbook,
        inventory=topo.resolve(topo.ansible.inventory),
        hosts=step.hosts or ("localhost",),
        extravars=extravars,
        artifacts=ctx.artifacts / step_file_name(step.id),
        timeout=timeout,
        on_task=ctx.on_task,
        cancel=ctx.cancel,
    )


def run_here(step_id: str, command: str, timeout: float, ctx: StepContext) -> None:
    """Run `command` in a shell on this machine, from the topology's directory, in a
    process group of its own (killed whole on timeout, abort --now or a lost lease);
    its output goes to the step's artifacts. Failed carries its exit and last output."""
    here = private_dir(ctx.artifacts / step_file_name(step_id), root=ctx.artifacts)
    output = here / "output.txt"
    env = hook_env({f"SITECTL_{k.upper()}": v for k, v in values(step_id, ctx).items()})
    with output.open("wb") as sink:
        process = subprocess.Popen(
            ["/bin/sh", "-c", command],
            cwd=ctx.topology.base_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while process.poll() is None:
            stop = ctx.cancel() if ctx.cancel is not None else None
            if stop is None and time.monotonic() > deadline:
                stop = Failed(f"did not finish within {timeout:g} s, its timeout: killed")
            if stop is not None:
                _kill(process)
                raise stop
            time.sleep(POLL_S)
    if process.returncode != 0:
        said = output.read_text(errors="replace").strip()[-OUTPUT_KEPT:]
        raise Failed(
            f"command exited {process.returncode}"
            + (f": {' '.join(said.split())}" if said else " and said nothing")
        )


def _kill(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
