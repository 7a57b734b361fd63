"""Running a playbook through ansible-runner and gating on per-host stats.

A playbook "succeeds" only if every targeted host is ok: a failed host fails the step
(Failed, naming the host and the task's message), an unreachable one makes it
Unavailable (so an old site that is gone can be skipped in a failover). The return
code alone would hide which host failed.

Secrets are never passed as extra vars: ansible-runner writes them to its artifacts.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ansible_runner

from orchestrator.errors import Failed, Unavailable

# The storage CLI's "try again" exit status (EX_TEMPFAIL), seen through a failed task.
EX_TEMPFAIL = 75


@dataclass(frozen=True)
class PlaybookResult:
    playbook: str
    ok: frozenset[str]
    changed: frozenset[str]
    failed: Mapping[str, str] = field(default_factory=dict)
    unreachable: Mapping[str, str] = field(default_factory=dict)
    tempfail: frozenset[str] = frozenset()
    duration: float = 0.0


Event = Mapping[str, Any]


def run_playbook(
    playbook: Path,
    inventory: Path,
    hosts: tuple[str, ...],
    extravars: Mapping[str, Any],
    artifacts: Path,
    *,
    timeout: float,
    on_event: Callable[[Event], None] | None = None,
) -> PlaybookResult:
    """Run `playbook` limited to `hosts`; raise Failed/Unavailable unless all are ok."""
    if not hosts:
        raise Failed(f"{playbook.name}: no host to run on — check the inventory groups")
    artifacts.mkdir(parents=True, exist_ok=True)
    messages: dict[str, str] = {}
    rcs: dict[str, int] = {}

    def handle(event: dict[str, Any]) -> bool:
        data = event.get("event_data") or {}
        host = data.get("host")
        if event.get("event") in {"runner_on_failed", "runner_on_unreachable"} and host:
            res = data.get("res") or {}
            messages[host] = _message(data.get("task", ""), res)
            if isinstance(res.get("rc"), int):
                rcs[host] = res["rc"]
        if on_event is not None:
            on_event(event)
        return True

    started = time.monotonic()
    runner = ansible_runner.run(
        private_data_dir=str(artifacts),
        playbook=str(playbook.resolve()),
        inventory=str(inventory.resolve()),
        limit=",".join(hosts),
        extravars=dict(extravars),
        envvars=_environment(),
        quiet=True,
        timeout=max(1, int(timeout)),
        event_handler=handle,
        rotate_artifacts=20,
    )
    duration = time.monotonic() - started
    stats = runner.stats or {}
    if runner.status == "timeout":
        raise Unavailable(
            f"{playbook.name} did not finish within {timeout:.0f} s on {', '.join(hosts)}"
        )
    if not stats:
        raise Failed(
            f"{playbook.name} did not run ({runner.status}): see {artifacts}/artifacts "
            "— is ansible-playbook on PATH?"
        )
    failed_hosts = set(stats.get("failures", {}))
    failed = {h: messages.get(h, "failed") for h in stats.get("failures", {})}
    unreachable = {h: messages.get(h, "unreachable") for h in stats.get("dark", {})}
    result = PlaybookResult(
        playbook=playbook.name,
        ok=frozenset(stats.get("ok", {})) - failed_hosts,
        changed=frozenset(stats.get("changed", {})),
        failed=failed,
        unreachable=unreachable,
        tempfail=frozenset(h for h, rc in rcs.items() if rc == EX_TEMPFAIL),
        duration=duration,
    )
    missing = set(hosts) - set(stats.get("processed", {}))
    if missing:
        raise Failed(f"{playbook.name}: host(s) {', '.join(sorted(missing))} not in the inventory")
    if result.unreachable or (result.failed and set(result.failed) <= result.tempfail):
        trouble = {**result.unreachable, **{h: result.failed[h] for h in result.tempfail}}
        raise Unavailable(f"{playbook.name}: {_describe(trouble)}")
    if result.failed:
        raise Failed(f"{playbook.name} failed: {_describe(result.failed)}")
    return result


def _environment() -> dict[str, str]:
    # ansible-runner must find ansible-playbook: the interpreter's bin comes first.
    bin_dir = str(Path(sys.executable).parent)
    env = {"PATH": f"{bin_dir}:{os.environ.get('PATH', '')}", "ANSIBLE_NOCOLOR": "1"}
    # Keep ansible from writing retry files and from reading a user's ~/.ansible.cfg
    # settings that would change behaviour between operators.
    env["ANSIBLE_RETRY_FILES_ENABLED"] = "0"
    env["ANSIBLE_HOST_KEY_CHECKING"] = "False"
    return env


def _message(task: str, res: Mapping[str, Any]) -> str:
    text = res.get("msg") or res.get("stderr") or res.get("stdout") or "failed"
    text = " ".join(str(text).split())
    return f"{task}: {text[:300]}" if task else text[:300]


def _describe(problems: Mapping[str, str]) -> str:
    return "; ".join(f"{host}: {msg}" for host, msg in sorted(problems.items()))
