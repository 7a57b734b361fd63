"""Config parity: the settings the topology lists hold the same value in both datacenters.

A mirrored archive is only as good as the rules the standby would apply to it: a
retention or litigation-hold setting that differs means a failover silently changes
what is kept. Each setting is one check; its datacenters are read at once (each read
bounded by the timeout), so a setting costs about one timeout even when a command hangs.
Values are compared as text, exactly: "30d" and "720h" differ, as they would on screen.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

from orchestrator.checks.result import Check, CheckResult, Status, one_line
from orchestrator.childenv import command_env
from orchestrator.config.model import ParitySetting, ParitySource, Topology

SYSTEM = "parity"
EQUAL = "equal"  # figure: 1 when every datacenter holds the same value, else 0
_SHOWN = 60  # characters of a value a reason shows; whole files can be long


class Unreadable(Exception):
    """One datacenter's value could not be read; the message says why, in one line."""


def checks(topo: Topology, timeout: float) -> list[Check]:
    del timeout
    return [Check(SYSTEM, None, target(s), _comparer(topo, s)) for s in topo.parity]


def target(setting: ParitySetting) -> str:
    return f"setting {setting.name}"


def _comparer(topo: Topology, setting: ParitySetting) -> Callable[[float], CheckResult]:
    def run(timeout: float) -> CheckResult:
        values = read_all(topo, setting, timeout)
        status, reason, figures = judge(values)
        return CheckResult(SYSTEM, None, target(setting), status, reason, figures)

    return run


def read_all(topo: Topology, setting: ParitySetting, timeout: float) -> dict[str, str | Unreadable]:
    """Each datacenter's value (or why it is unreadable), read concurrently."""
    found: dict[str, str | Unreadable] = {}
    readers = []
    for site in topo.datacenters():
        source = setting.sites.get(site)
        if source is None:
            found[site] = Unreadable(
                f"no source for {site} — add parity[{setting.name}].sites.{site}"
            )
            continue

        def read_one(site: str = site, source: ParitySource = source) -> None:
            try:
                value: str | Unreadable = read_value(source, topo.base_dir, timeout)
            except Unreadable as exc:
                value = exc
            found[site] = value

        readers.append(threading.Thread(target=read_one, daemon=True, name=f"parity {site}"))
    for thread in readers:
        thread.start()
    for thread in readers:
        # Each read bounds itself; the join bound only guards against a read that does not.
        thread.join(timeout + 1.0)
    for site in topo.datacenters():
        found.setdefault(site, Unreadable(f"no answer within {timeout:g} s"))
    extra = [s for s in setting.sites if s not in topo.datacenters()]
    for site in extra:
        found[site] = Unreadable(
            f"{site} is not a datacenter — name only {', '.join(topo.datacenters())}"
        )
    return {site: found[site] for site in [*topo.datacenters(), *extra]}


def read_value(source: ParitySource, base_dir: Path, timeout: float) -> str:
    """The value `source` names, or Unreadable saying why."""
    if source.file is not None:
        path = (base_dir / source.file).resolve()
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise Unreadable(f"cannot read {source.file}: {exc.strerror or exc}") from None
    else:
        assert source.command is not None  # ParitySource guarantees one of the two
        text = run_command(source.command, base_dir, timeout)
    where = f"file {source.file}" if source.file else f"the output of `{source.command}`"
    return pick(text, source.key, where)


def run_command(command: str, cwd: Path, timeout: float) -> str:
    """Standard output of `command` (split like a shell would, run without one), killed
    with its whole process group when it outlives `timeout` (an ssh to a dead host)."""
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise Unreadable(f"cannot split `{command}`: {exc}") from None
    try:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            env=command_env(),  # never sitectl's own: its secrets stay in it
        )
    except OSError as exc:
        raise Unreadable(f"cannot run `{command}`: {exc.strerror or exc}") from None
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        _reap(proc)
        raise Unreadable(f"`{command}` did not finish within {timeout:g} s") from None
    if proc.returncode != 0:
        said = one_line(err.decode("utf-8", "replace") or out.decode("utf-8", "replace"), 120)
        raise Unreadable(f"`{command}` exited {proc.returncode}" + (f": {said}" if said else ""))
    return out.decode("utf-8", "replace")


_REAP_WAIT = 0.5  # seconds for a killed group's pipes to close, and for its reaping


def _reap(proc: subprocess.Popen[bytes]) -> None:
    """Collect a killed command and close its pipes, in bounded time: a process it left
    in another session or group (a daemonizing ssh, `setsid`) escapes the kill and may
    hold the pipes open for ever, and an unbounded communicate() would then hold this
    thread and both pipes for as long, once per check run in a long-lived controller."""
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.communicate(timeout=_REAP_WAIT)
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            with contextlib.suppress(OSError):
                pipe.close()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=_REAP_WAIT)  # SIGKILLed: it is gone, or the kernel is


def pick(text: str, key: str | None, where: str) -> str:
    """The value of `key` in `text` (its last `key = value` / `key: value` line, as
    Postfix and Dovecot let a later line win), or the whole text without `key` (pure)."""
    if key is None:
        return text.strip()
    value = None
    for line in text.splitlines():
        name, sep, rest = _split(line.strip())
        if sep and name == key:
            value = rest
    if value is None:
        raise Unreadable(f"no {key} line in {where}")
    return value


def _split(line: str) -> tuple[str, str, str]:
    if not line or line.startswith("#"):
        return "", "", ""
    cut = min((i for i in (line.find("="), line.find(":")) if i > 0), default=-1)
    if cut < 0:
        return line, "", ""
    return line[:cut].strip(), line[cut], line[cut + 1 :].strip()


def judge(values: dict[str, str | Unreadable]) -> tuple[Status, str, dict[str, float]]:
    """Down when a datacenter's value cannot be read; degraded when the values differ,
    naming each; ok when they agree (pure)."""
    unreadable = [f"{site}: {err}" for site, err in values.items() if isinstance(err, Unreadable)]
    if unreadable:
        return Status.DOWN, "cannot compare — " + "; ".join(unreadable), {}
    if len(set(values.values())) > 1:
        shown = ", ".join(f"{site} has {_show(str(v))}" for site, v in values.items())
        return Status.DEGRADED, f"differs between the datacenters: {shown}", {EQUAL: 0.0}
    return Status.OK, "", {EQUAL: 1.0}


def _show(value: str) -> str:
    if not value:
        return "(empty)"
    text = one_line(value, _SHOWN + 1)
    return repr(text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…")
