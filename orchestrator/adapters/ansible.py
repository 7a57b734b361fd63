"""Running playbooks through ansible-runner and gating on per-host stats.

A playbook "succeeds" only if every targeted host is ok: a failed host fails the step
(Failed, naming the host and the task's message), an unreachable one makes it
Unavailable (so an old site that is gone can be skipped in a failover). The return
code alone would hide which host failed.

Consecutive steps may share one run (`run_batch`): starting ansible-playbook costs
about a second, and a switchover has eight host steps. Each step's plays are preceded
by a gate play (orchestrator/adapters/ansible_action/sitectl_gate.py) that asks this process, over
a private Unix socket, whether the step may start: the engine verifies and checkpoints
the step before, re-checks the lease and the step's "already true?" while ansible-playbook
waits. A run is therefore fenced, checked and checkpointed step by step exactly as
separate runs would be.

Each task starting on a host is handed to an optional `on_task` hook (host, task name),
which the engine forwards to the progress display; a shared run also names the step
whose gate last let it go.

A run stops at once when its `cancel` check says so (the engine's lease, an abort, a
step's deadline) or when its own timeout passes: every process of the run is killed —
ansible-playbook, its workers (each makes a session of its own, so killing ansible-
playbook's process group alone would leave them and their commands running) and the
commands they started — found by a marker in their environment.

Secrets are never passed as extra vars: ansible-runner writes them to its artifacts.

Extra vars are never templated by Ansible, whatever they hold: every string sitectl
passes (a name, a path, a site from the topology) is marked unsafe, in the JSON form of
YAML's `!unsafe` (`{"__ansible_unsafe": "..."}`, which keeps "", "123" or "null" the
strings they are), so `{{ lookup('pipe', ...) }}` in a mount point stays text. The one
exception is `AnsibleTemplate`: an operator's command line from the topology, whose
`{{ host_var }}` are meant for Ansible; the values sitectl puts into such a command go
in unsafe variables of their own, quoted by the playbook (config.model.fill_for_ansible).

Secrets are never passed as extra vars, nor in the environment: ansible-runner writes
both into its artifacts (env/extravars; `artifacts/<id>/command` holds the environment of
the ansible-playbook it starts). ansible-playbook gets an allow-listed environment
(orchestrator/childenv.py), never sitectl's, where the operator's `{env: …}` secrets are.
What a playbook needs of them (a NetApp step's credentials, its epoch check's ZooKeeper
digest) is handed over in files: one per variable name, mode 0600, in a private directory
(0700, in /dev/shm when there is one: memory, not disk) that SITECTL_SECRETS_DIR names and
that is removed when the run ends (a sitectl killed meanwhile leaves it to the next run,
which removes it: its name holds the dead process's pid). The artifact directories are
0700 and sitectl's own files in them are written without following links
(orchestrator/safefiles.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socketserver
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ansible_runner.interface

from orchestrator.adapters import ansible_worker
from orchestrator.adapters.ansible_zygote import PER_RUN
from orchestrator.adapters.secrets import scrub
from orchestrator.childenv import SECRETS_DIR, allowed_for_ansible, secret_names
from orchestrator.errors import Failed, Unavailable
from orchestrator.gates import (
    END_GATE,
    BatchItem,
    Cancel,
    Gate,
    GateAnswer,
    HandedOver,
    PlaybookCall,
    StepTaskHook,
    Verdict,
)
from orchestrator.safefiles import private_dir, write_atomic

__all__ = [  # the shared run's vocabulary (orchestrator.gates), as this module always had it
    "END_GATE",
    "AnsibleTemplate",
    "BatchItem",
    "Cancel",
    "Gate",
    "GateAnswer",
    "PlaybookCall",
    "PlaybookResult",
    "StepTaskHook",
    "Verdict",
    "compose_batch",
    "marked",
    "run_batch",
    "run_playbook",
    "run_probe",
    "shared_skips",
    "step_skips",
]

# The storage CLI's "try again" exit status (EX_TEMPFAIL), seen through a failed task.
EX_TEMPFAIL = 75
ACTION_PLUGINS = Path(__file__).with_name("ansible_action")
GATE_PLAY = "sitectl gate: "
GATE_DIR_PREFIX = "sitectl-gate-"
SECRETS_DIR_PREFIX = "sitectl-secrets-"
# Where a run's secrets are handed over: memory-backed when the machine has it.
SECRETS_PARENTS = (Path("/dev/shm"),)
GATE_SERVER_POLL_S = 0.02
# How often ansible-runner asks whether to cancel a run (its default, 5 s, would let a
# deposed engine's playbook go on that long).
CANCEL_POLL_S = 0.1
# In the environment of every process of a run: what a cancelled run's kill looks for.
RUN_MARKER = "SITECTL_PLAYBOOK_RUN"
# Our playbooks write each task tag of theirs after "{{ sitectl_tag_prefix | default('') }}"
# (orchestrator/playbooks/volume.yml): a shared run sets it per step (step_prefix), so its
# --skip-tags, one list for the whole run, can name the tasks one step leaves out.
TAG_PREFIX_VAR = "sitectl_tag_prefix"
# A failed task's message carries the last lines of its output, within this many characters.
TAIL_LINES = 5
MESSAGE_CHARS = 500


@dataclass(frozen=True)
class PlaybookResult:
    playbook: str
    ok: frozenset[str]
    changed: frozenset[str]
    failed: Mapping[str, str] = field(default_factory=dict)
    unreachable: Mapping[str, str] = field(default_factory=dict)
    tempfail: frozenset[str] = frozenset()
    duration: float = 0.0


class AnsibleTemplate(str):
    """An extra var's string that Ansible may template: an operator's command line from
    the topology (its `{{ host_var }}` are written for Ansible). Every other string an
    extra var holds is passed unsafe (see `marked`)."""

    __slots__ = ()


def marked(value: Any) -> Any:
    """`value` as sitectl hands it to Ansible, as JSON data (pure): each string marked
    unsafe, `{"__ansible_unsafe": text}` (Ansible's own JSON form of `!unsafe`; YAML's
    tag would turn "", "123" or "yes" into null, a number or a boolean), except an
    AnsibleTemplate's. Mapping keys stay as they are (Ansible never templates a key)."""
    if isinstance(value, AnsibleTemplate):
        return str(value)
    if isinstance(value, str):
        return {"__ansible_unsafe": value}
    if isinstance(value, Mapping):
        return {str(k): marked(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [marked(v) for v in value]
    return value


# on_task(host, task): a task started on a host (for the progress display).
TaskHook = Callable[[str, str], None]
# on_result(host, task, res): what a task returned on a host (ok, failed or unreachable).
ResultHook = Callable[[str, str, Mapping[str, Any]], None]
RESULT_EVENTS = frozenset({"runner_on_ok", "runner_on_failed", "runner_on_unreachable"})
# Only task starts reach the hooks: one event per task and host, and nothing to parse.
TASK_STARTED = "runner_on_start"


def run_playbook(
    playbook: Path,
    inventory: Path,
    hosts: tuple[str, ...],
    extravars: Mapping[str, Any],
    artifacts: Path,
    *,
    timeout: float,
    on_task: TaskHook | None = None,
    skip_tags: Collection[str] = (),
    cancel: Cancel | None = None,
    handover: Mapping[str, HandedOver] | None = None,
) -> PlaybookResult:
    """Run `playbook` limited to `hosts`; raise Failed/Unavailable unless all are ok, or
    what `cancel` returned once it asked to stop. `handover`: secrets given to the run in
    files (see the module's docstring), by the environment variable each is read from."""
    if not hosts:
        raise Failed(f"{playbook.name}: no host to run on — check the inventory groups")
    result, processed = _run(
        playbook.resolve(),
        playbook.name,
        inventory,
        ",".join(hosts),
        extravars,
        artifacts,
        timeout=timeout,
        on_task=on_task,
        skip_tags=skip_tags,
        cancel=cancel,
        handover=handover or {},
    )
    missing = set(hosts) - processed
    if missing:
        raise Failed(f"{playbook.name}: host(s) {', '.join(sorted(missing))} not in the inventory")
    _raise_for(result)
    return result


@dataclass(frozen=True)
class ProbeReport:
    """What a read-only probe playbook found: each host's tasks' results by task name,
    and the hosts it could not reach (why, as Ansible said it)."""

    results: Mapping[str, Mapping[str, Mapping[str, Any]]]
    unreachable: Mapping[str, str]
    failed: Mapping[str, str]


def run_probe(
    playbook: Path,
    inventory: Path,
    hosts: tuple[str, ...],
    extravars: Mapping[str, Any],
    artifacts: Path,
    *,
    timeout: float,
) -> ProbeReport:
    """Run a playbook that only looks (facts, stat, status commands) on `hosts` and hand
    back what each task returned, failed and unreachable hosts included: the caller
    judges them one by one, where `run_playbook` stops at the first. Raises Failed only
    when the playbook did not run at all (or Unavailable when it did not finish)."""
    if not hosts:
        raise Failed(f"{playbook.name}: no host to run on — check the inventory groups")
    seen: dict[str, dict[str, Mapping[str, Any]]] = {}

    def note(host: str, task: str, res: Mapping[str, Any]) -> None:
        seen.setdefault(host, {})[task] = res

    result, processed = _run(
        playbook.resolve(),
        playbook.name,
        inventory,
        ",".join(hosts),
        extravars,
        artifacts,
        timeout=timeout,
        on_result=note,
    )
    missing = {h: "not in the inventory" for h in set(hosts) - processed}
    return ProbeReport(
        results=seen,
        unreachable={**result.unreachable, **missing},
        failed=dict(result.failed),
    )


def compose_batch(
    items: Sequence[BatchItem], socket_path: str, gate_timeout: float
) -> list[dict[str, Any]]:
    """The plays of one run doing `items` in order, each behind its gate, then the end
    gate (pure). Step names (which hold names from the topology) and the steps' vars
    are marked unsafe; only sitectl's own expressions are templated. Each step's plays
    get the prefix of its task tags (step_prefix; step_skips names the tasks to leave out)."""
    plays: list[dict[str, Any]] = []
    before: str | None = None
    for index, item in enumerate(items):
        # A gate alone needs no host: the action runs in ansible-playbook itself.
        pattern = ":".join(item.call.hosts) if item.call else "localhost"
        verdict = f"sitectl_gate_{index}"
        plays.append(
            {
                "name": marked(GATE_PLAY + item.name),
                "hosts": marked(pattern),
                "gather_facts": False,
                "tasks": [
                    {
                        "name": marked(f"may {item.name} start?"),
                        "sitectl_gate": {
                            "socket": marked(socket_path),
                            "step": marked(item.name),
                            "after": marked(before),
                            "timeout": gate_timeout,
                        },
                        "run_once": True,
                        "register": verdict,
                    }
                ],
            }
        )
        if item.call is not None:
            plays.append(
                {
                    "import_playbook": str(item.call.playbook.resolve()),
                    "vars": {
                        **marked(item.call.extravars),
                        "sitectl_hosts": _pattern_if_go(pattern, item.call.hosts[0], verdict),
                        TAG_PREFIX_VAR: marked(step_prefix(index)),
                    },
                    # Also per task: a playbook whose plays ignore sitectl_hosts stays gated.
                    "when": f"{verdict}.verdict == 'go'",
                }
            )
        before = item.name
    plays.append(
        {
            "name": GATE_PLAY + END_GATE,
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                {
                    "name": "are the steps over?",
                    "sitectl_gate": {
                        "socket": marked(socket_path),
                        "step": END_GATE,
                        "after": marked(before),
                        "timeout": gate_timeout,
                    },
                }
            ],
        }
    )
    return plays


def _pattern_if_go(pattern: str, host: str, verdict: str) -> str:
    """The step's host pattern if its gate said "go", else one matching no host (pure).

    Templated as each play starts, after the gate play registered the verdict on the
    step's hosts: a skipped step's plays then match nothing and start no task, where a
    `when` alone still forks a worker per task and host (≈ 30 ms each) to skip it."""
    go = f"(hostvars[{json.dumps(host)}].{verdict}.verdict | default('')) == 'go'"
    return f"{{{{ {json.dumps(pattern)} if {go} else 'all:!all' }}}}"


def run_batch(
    items: Sequence[BatchItem],
    inventory: Path,
    artifacts: Path,
    gate: Gate,
    *,
    timeout: float,
    gate_timeout: float,
    on_task: StepTaskHook | None = None,
    cancel: Cancel | None = None,
) -> PlaybookResult:
    """Run several steps' playbooks in one ansible-playbook run, each behind `gate`.

    Raises Failed/Unavailable for a failed or unreachable host, as `run_playbook` does;
    the caller knows which step was running (the last one its gate let go)."""
    calls = [item.call for item in items if item.call is not None]
    if not calls or any(not call.hosts for call in calls):
        raise Failed("a shared run needs playbook steps, each with a host to run on")
    private_dir(artifacts)
    _sweep_dirs(GATE_DIR_PREFIX)
    # A private directory: only this user may connect and answer for the engine.
    sockets = Path(tempfile.mkdtemp(prefix=f"{GATE_DIR_PREFIX}{os.getpid()}-"))
    socket_path = str(sockets / "gate.sock")
    going: list[str | None] = [None]  # the step whose gate last said "go"

    def gate_noting(step: str, after: str | None, hosts: tuple[str, ...]) -> GateAnswer:
        answer = gate(step, after, hosts)
        # Set before ansible-playbook hears the answer, so its next events are this step's;
        # a skipped step's plays still announce their tasks, which belong to no step.
        going[0] = step if answer.verdict == "go" else None
        return answer

    def step_task(host: str, task: str) -> None:
        if on_task is not None and going[0] is not None:
            on_task(going[0], host, task)

    server = _GateServer(socket_path, gate_noting)
    # shutdown() below waits for serve_forever to notice, which it does once per poll:
    # the default 0.5 s poll kept every operation waiting ≈ 0.25 s after its last step.
    threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": GATE_SERVER_POLL_S},
        name="ansible-gate",
        daemon=True,
    ).start()
    try:
        # JSON (which Ansible reads as the YAML it is): the steps' vars are marked unsafe
        # in JSON's form (see `marked`).
        composite = artifacts / "batch.yml"
        write_atomic(
            composite, json.dumps(compose_batch(items, socket_path, gate_timeout), indent=1)
        )
        # localhost: the end gate's play, and any gate that runs a group in sitectl.
        everyone = [h for call in calls for h in call.hosts] + ["localhost"]
        result, _ = _run(
            composite,
            # The engine names the step that was running; its own playbook's name is
            # not known here, and the chain of every step's playbook told operators little.
            "the shared playbook run",
            inventory,
            ",".join(dict.fromkeys(everyone)),
            {},
            artifacts,
            timeout=timeout,
            on_task=step_task if on_task is not None else None,
            batch=True,
            skip_tags=step_skips(items),
            cancel=cancel,
            handover={name: value for call in calls for name, value in call.secrets.items()},
        )
    finally:
        server.shutdown()
        server.server_close()
        shutil.rmtree(sockets, ignore_errors=True)
    _raise_for(result)
    return result


def shared_skips(calls: Sequence[PlaybookCall]) -> frozenset[str]:
    """The tags a run of all `calls` may leave out: those none of them runs (pure)."""
    return frozenset.intersection(*(call.skip_tags for call in calls)) if calls else frozenset()


def step_prefix(index: int) -> str:
    """The prefix of the task tags of the step at `index` of a shared run (pure)."""
    return f"sitectl_step{index}:"


def step_skips(items: Sequence[BatchItem]) -> frozenset[str]:
    """The --skip-tags of a shared run of `items` (pure): each step's own skip tags under
    its prefix (compose_batch), so each step leaves out exactly what it would leave out in
    a run of its own; and, as they are, those no step runs, for a playbook whose tags
    carry no prefix (an operator's copy of an older app.yml in playbook_dir)."""
    calls = [item.call for item in items if item.call is not None]
    return shared_skips(calls) | {
        step_prefix(index) + tag
        for index, item in enumerate(items)
        if item.call is not None
        for tag in item.call.skip_tags
    }


def _sweep_dirs(prefix: str) -> None:
    """Remove gate and secret directories left by sitectl processes that were killed
    (SIGKILL skips every finally): their name holds the pid, and that process is gone."""
    for parent in {Path(tempfile.gettempdir()), *SECRETS_PARENTS}:
        for path in parent.glob(prefix + "*"):
            pid = path.name.removeprefix(prefix).split("-", 1)[0]
            if pid.isdigit() and not Path(f"/proc/{pid}").exists():
                shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def _handed_over(handover: Mapping[str, HandedOver]) -> Iterator[dict[str, str]]:
    """The environment naming a private directory that holds the secrets of `handover`,
    one 0600 file per variable name, for as long as the block runs; {} when none."""
    if not handover:
        yield {}
        return
    _sweep_dirs(SECRETS_DIR_PREFIX)
    usable = [p for p in SECRETS_PARENTS if p.is_dir() and os.access(p, os.W_OK | os.X_OK)]
    # mkdtemp: mode 0700, a name nobody could have prepared.
    directory = Path(
        tempfile.mkdtemp(
            prefix=f"{SECRETS_DIR_PREFIX}{os.getpid()}-",
            dir=usable[0] if usable else None,
        )
    )
    try:
        for name, source in handover.items():
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            # `name` is an environment variable's name (SecretRef checks it): no "/".
            with os.fdopen(os.open(directory / name, flags, 0o600), "w") as out:
                out.write(source.reveal())
        yield {SECRETS_DIR: str(directory)}
    finally:
        shutil.rmtree(directory, ignore_errors=True)


class _GateServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, path: str, gate: Gate) -> None:
        self.gate = gate
        super().__init__(path, _GateRequest)


class _GateRequest(socketserver.StreamRequestHandler):
    server: _GateServer

    def handle(self) -> None:
        try:
            request = json.loads(self.rfile.readline())
            answer = self.server.gate(
                str(request["step"]),
                request.get("after") or None,
                tuple(str(h) for h in request.get("hosts") or ()),
            )
        except (ValueError, KeyError, TypeError) as exc:
            answer = GateAnswer("stop", f"a gate request sitectl cannot read: {exc}")
        reply = json.dumps({"verdict": answer.verdict, "message": answer.message}).encode()
        # A cancelled run's ansible-playbook is gone: nobody reads the answer any more.
        with contextlib.suppress(OSError):
            self.wfile.write(reply + b"\n")


def _run(
    playbook: Path,
    name: str,
    inventory: Path,
    limit: str,
    extravars: Mapping[str, Any],
    artifacts: Path,
    *,
    timeout: float,
    on_task: TaskHook | None = None,
    batch: bool = False,
    skip_tags: Collection[str] = (),
    cancel: Cancel | None = None,
    handover: Mapping[str, HandedOver] | None = None,
    on_result: ResultHook | None = None,
) -> tuple[PlaybookResult, set[str]]:
    private_dir(artifacts)
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
        if on_result is not None and host and event.get("event") in RESULT_EVENTS:
            on_result(host, str(data.get("task", "")), data.get("res") or {})
        if (
            on_task is not None
            and host
            and event.get("event") == TASK_STARTED
            and not str(data.get("play", "")).startswith(GATE_PLAY)
        ):
            on_task(host, str(data.get("task", "")))
        return True

    started = time.monotonic()
    marker = f"{os.getpid()}-{secrets.token_hex(6)}"
    late = Unavailable(f"{name} did not finish within {timeout:.0f} s on {limit}")
    stop = _Stop(marker, cancel, started + timeout, late)
    # ansible-runner prefers the envvars file an earlier run in this directory left (a
    # resumed step's) to the ones it is given: this run's marker must be the one it uses.
    (artifacts / "env" / "envvars").unlink(missing_ok=True)
    # The extra vars are written here, not handed to ansible-runner, which would write
    # them as plain JSON (every string templated) and keep an earlier run's file.
    _write_extravars(artifacts, extravars)
    with _handed_over(handover or {}) as where:
        envvars = {**_environment(batch), RUN_MARKER: marker, **where}
        runner = ansible_runner.interface.init_runner(
            private_data_dir=str(artifacts),
            playbook=str(playbook),
            inventory=str(inventory.resolve()),
            limit=limit,
            envvars=envvars,
            quiet=True,
            # A backstop only: the cancel check ends the run at `timeout`, and kills all.
            timeout=max(1, int(timeout)) + 5,
            event_handler=handle,
            cancel_callback=stop,
            settings={"pexpect_timeout": CANCEL_POLL_S},
            rotate_artifacts=20,
            skip_tags=",".join(sorted(skip_tags)) or None,
        )
        # ansible-runner seeds the run's environment with all of ours (os.environ) and
        # writes it into artifacts/<id>/command: what it starts gets the allow-list only.
        runner.config.env = run_environment(runner.config.env, envvars)
        if batch:
            _through_worker(runner.config)
        runner.run()
    duration = time.monotonic() - started
    stats = runner.stats or {}
    if stop.error is not None:
        _kill_run(marker)  # anything started between the kill and ansible-playbook's end
        raise stop.error
    if runner.status == "timeout":
        _kill_run(marker)
        raise late
    if not stats:
        raise Failed(
            f"{name} did not run ({runner.status}): see {artifacts}/artifacts "
            "— is ansible-playbook on PATH?"
        )
    failed_hosts = set(stats.get("failures", {}))
    result = PlaybookResult(
        playbook=name,
        ok=frozenset(stats.get("ok", {})) - failed_hosts,
        changed=frozenset(stats.get("changed", {})),
        failed={h: messages.get(h, "failed") for h in stats.get("failures", {})},
        unreachable={h: messages.get(h, "unreachable") for h in stats.get("dark", {})},
        tempfail=frozenset(h for h, rc in rcs.items() if rc == EX_TEMPFAIL),
        duration=duration,
    )
    return result, set(stats.get("processed", {}))


def _write_extravars(artifacts: Path, extravars: Mapping[str, Any]) -> None:
    """env/extravars, the file ansible-runner passes as `-e @file`: this run's vars,
    marked (see `marked`); none at all when there are none."""
    path = artifacts / "env" / "extravars"
    if not extravars:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_atomic(path, json.dumps(marked(dict(extravars)), indent=1))


class _Stop:
    """ansible-runner's cancel_callback for one run: stop when `cancel` says so or once
    `deadline` (monotonic) has passed, killing every process of the run first."""

    def __init__(
        self, marker: str, cancel: Cancel | None, deadline: float, late: Exception
    ) -> None:
        self.marker = marker
        self.cancel = cancel
        self.deadline = deadline
        self.late = late
        self.error: Exception | None = None

    def __call__(self) -> bool:
        if self.error is None:
            try:
                self.error = self.cancel() if self.cancel is not None else None
            except Exception as exc:  # ansible-runner would only say "callback error"
                self.error = exc
            if self.error is None and time.monotonic() > self.deadline:
                self.error = self.late
            if self.error is None:
                return False
        _kill_run(self.marker)
        return True


def _kill_run(marker: str) -> None:
    """SIGKILL every process whose environment carries the run's marker: ansible-playbook,
    its workers (each a session of its own) and the commands they started."""
    needle = f"{RUN_MARKER}={marker}".encode()
    for _ in range(2):  # a process forked while the first pass ran
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                if needle in (proc / "environ").read_bytes().split(b"\0"):
                    os.kill(int(proc.name), signal.SIGKILL)
            except (OSError, ValueError):
                continue  # gone meanwhile, or not ours to read


def _raise_for(result: PlaybookResult) -> None:
    if result.unreachable or (result.failed and set(result.failed) <= result.tempfail):
        trouble = {**result.unreachable, **{h: result.failed[h] for h in result.tempfail}}
        raise Unavailable(f"{result.playbook}: {_describe(trouble)}")
    if result.failed:
        raise Failed(f"{result.playbook} failed: {_describe(result.failed)}")


def run_environment(
    prepared: Mapping[str, str],
    ours: Mapping[str, str],
    environ: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment of ansible-playbook, from the one ansible-runner `prepared` (all of
    `environ`, os.environ by default, plus its own settings and `ours`): what sitectl set,
    what ansible-runner set or changed (its callback plugin, …), and of the inherited
    rest only what childenv allows; never a variable a secret is read from (pure)."""
    inherited = os.environ if environ is None else environ
    hidden = secret_names()
    return {
        name: value
        for name, value in prepared.items()
        if name not in hidden
        and (name in ours or allowed_for_ansible(name) or inherited.get(name) != value)
    }


def _through_worker(config: Any) -> None:
    """Start the run through the leading controller's warm ansible-playbook, if it has
    one (adapters/ansible_worker.py): its first gate comes ≈ 0.6 s sooner."""
    through = ansible_worker.command_through(list(config.command))
    if through is not None:
        config.command, worker = through
        config.env = {**config.env, **worker}


def shared_run_environment() -> dict[str, str]:
    """The environment every shared run's ansible-playbook gets, less what is each run's
    own: the one the warm worker imports Ansible with (ansible_zygote.cold_reason)."""
    envvars = _environment(batch=True)
    with tempfile.TemporaryDirectory(prefix="sitectl-ansible-env-") as tmp:
        runner = ansible_runner.interface.init_runner(
            private_data_dir=tmp, playbook="warm.yml", inventory=tmp, envvars=envvars, quiet=True
        )
        env = run_environment(runner.config.env, envvars)
    return {name: value for name, value in env.items() if name not in PER_RUN}


def warm_worker() -> None:
    """Have a warm ansible-playbook ready for shared runs (the leading controller)."""
    if not ansible_worker.running():
        _sweep_dirs(ansible_worker.DIR_PREFIX)
    ansible_worker.start(shared_run_environment)


def _environment(batch: bool = False) -> dict[str, str]:
    # ansible-runner must find ansible-playbook: the interpreter's bin comes first.
    bin_dir = str(Path(sys.executable).parent)
    env = {"PATH": f"{bin_dir}:{os.environ.get('PATH', '')}", "ANSIBLE_NOCOLOR": "1"}
    # Keep ansible from writing retry files and from reading a user's ~/.ansible.cfg
    # settings that would change behaviour between operators.
    env["ANSIBLE_RETRY_FILES_ENABLED"] = "0"
    # Host keys are checked. Said explicitly: ansible-runner turns checking off for every
    # run that does not set it. An inventory may turn it off for its own hosts
    # (ansible_host_key_checking: false); sitectl never does it for them.
    env["ANSIBLE_HOST_KEY_CHECKING"] = "True"
    if batch:
        env["ANSIBLE_ACTION_PLUGINS"] = str(ACTION_PLUGINS)
        # A failed host ends the whole run: the next step's play must not start on the
        # hosts that are still fine while its predecessor failed elsewhere.
        env["ANSIBLE_ANY_ERRORS_FATAL"] = "True"
    return env


def _message(task: str, res: Mapping[str, Any]) -> str:
    """What a failed task says, on one line: its message and the last lines of its output.

    A command that fails says only "non-zero return code" in `msg`; what went wrong is in
    its stderr (or stdout, for tools that print errors there), so the tail of that comes
    too, secrets replaced by <hidden>."""
    said = " ".join(str(res.get("msg") or "").split())
    tail = _tail(res.get("stderr") or res.get("stdout") or "")
    text = f"{said}: {tail}" if said and tail and tail not in said else said or tail or "failed"
    text = scrub(text)
    if len(text) > MESSAGE_CHARS:
        # The end of a command's output is where its error is; a message alone, its start.
        text = "…" + text[-MESSAGE_CHARS:] if tail else text[:MESSAGE_CHARS]
    return f"{task}: {text}" if task else text


def _tail(output: object) -> str:
    """The last non-empty lines of a command's output, joined with " | "."""
    lines = [" ".join(line.split()) for line in str(output).splitlines()]
    return " | ".join([line for line in lines if line][-TAIL_LINES:])


def _describe(problems: Mapping[str, str]) -> str:
    return "; ".join(f"{host}: {msg}" for host, msg in sorted(problems.items()))
