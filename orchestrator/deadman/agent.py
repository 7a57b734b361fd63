"""The dead-man agent process: listen for feeds, judge every tick, fence when starved.

    sitectl deadman run --site dc1 --address 198.18.1.1 [-c topology.yaml]

It keeps its memory (armed, last sequence number, fenced, an operator's override) in a
small state file, so an agent restarted while its site held the right to serve is still
armed: it fences unless a feed arrives within `fence_after` of its start. Each fence
action runs with its own bound and a failed one does not stop the next: a fence does all
it can. An override (the lone survivor's) is acknowledged to its sender, restores the
site once (`restore` actions) and stops the agent fencing on silence; the state file is
also what `sitectl ticket check SITE --agent-state FILE` reads to let the application
start under it.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from orchestrator.childenv import command_env
from orchestrator.deadman.actions import FenceAction
from orchestrator.deadman.decision import Memory, Verdict, judge
from orchestrator.deadman.feed import Ack, BadFeed, decode, encode_ack

log = logging.getLogger("sitectl.deadman")

TICK = 0.2  # how often the agent judges: its share of the fence's reaction time
ACTION_TIMEOUT = 15.0


def run_action(action: FenceAction, timeout: float = ACTION_TIMEOUT) -> str | None:
    """Run one fence action; None when it worked, else its own error."""
    try:
        done = subprocess.run(
            list(action.argv) if action.argv else ["/bin/sh", "-c", action.shell],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
            env=command_env(),  # never the agent's own: its feed key may be in it
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if done.returncode == 0:
        return None
    tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
    return f"exit {done.returncode}: {' / '.join(tail)}"


def override_in(state_file: Path, site: str) -> str | None:
    """The operator's override recorded in an agent's state file for `site`, or None
    (no file, unreadable, another site's, no override)."""
    try:
        saved = json.loads(state_file.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(saved, dict) or saved.get("site") != site:
        return None
    reason = saved.get("override")
    return str(reason) if reason else None


@dataclass
class Agent:
    site: str
    actions: list[FenceAction]
    key: bytes
    sock: socket.socket
    state_file: Path
    restore_actions: list[FenceAction] = field(default_factory=list)
    clock: Callable[[], float] = time.monotonic
    run: Callable[[FenceAction], str | None] = run_action
    # Called on every turn of the loop and after each fence action: systemd's watchdog
    # (WatchdogSec=) restarts an agent whose loop stops turning (sdnotify.Watchdog.pet).
    alive: Callable[[], object] = lambda: None
    memory: Memory = field(init=False)
    _last: Verdict | None = None  # the verdict last logged: each change is said once

    def __post_init__(self) -> None:
        self.memory = self._load()

    def serve(self, stop: threading.Event) -> None:
        self.sock.settimeout(TICK)
        log.info(
            "dead-man agent for %s: %d fence actions, %s",
            self.site,
            len(self.actions),
            "armed" if self.memory.armed else "idle until fed as the holder",
        )
        while not stop.is_set():
            try:
                self.heard(*self.sock.recvfrom(4096))
            except TimeoutError:
                pass
            except OSError as exc:
                log.warning("the agent's socket failed: %s", exc)
                stop.wait(TICK)
            self.tick()
            self.alive()

    def heard(self, datagram: bytes, sender: object = None) -> None:
        try:
            feed = decode(datagram, self.key)
        except BadFeed as exc:
            log.warning("ignored a datagram with %s", exc)
            return
        if feed.site != self.site:
            log.warning("ignored a feed for %s: this agent guards %s", feed.site, self.site)
            return
        before = self.memory
        self.memory = before.fed(
            holder=feed.holder,
            seq=feed.seq,
            fence_after=feed.fence_after,
            now=self.clock(),
            lost=feed.fence,
            override=feed.override,
        )
        if self._kept(before) != self._kept(self.memory):
            self._save()
        if feed.override is not None and sender is not None:
            log.warning("the operator's override for %s: %s", self.site, feed.override)
            try:
                self.sock.sendto(encode_ack(Ack(self.site, feed.seq), self.key), sender)
            except OSError as exc:
                log.warning("could not acknowledge the override to %s: %s", sender, exc)

    @staticmethod
    def _kept(memory: Memory) -> tuple[object, ...]:
        return (memory.armed, memory.fenced, memory.override, memory.restored)

    def tick(self) -> Verdict:
        verdict, sentence = judge(self.memory, self.clock())
        if verdict is not self._last:
            log.info(sentence)
            self._last = verdict
        if verdict is Verdict.FENCE:
            self.fence()
        elif verdict is Verdict.RESTORE:
            self.restore()
        return verdict

    def fence(self) -> None:
        self.memory = replace(self.memory, fenced=True)
        self._run_all("fence", self.actions, "fenced")

    def restore(self) -> None:
        self.memory = replace(self.memory, restored=True)
        self._run_all("restore", self.restore_actions, "restored")

    def _run_all(self, kind: str, actions: list[FenceAction], done: str) -> None:
        started = self.clock()
        failed = 0
        for action in actions:
            error = self.run(action)
            # A fence of many actions outlasts a watchdog interval; each action is bounded.
            self.alive()
            if error is None:
                log.info("%s: %s: done", kind, action.what)
            else:
                failed += 1
                log.error("%s: %s failed (%s): %s", kind, action.what, action.command, error)
        self._save()
        log.info(
            "%s %s in %.1f s: %d of %d actions done",
            self.site,
            done,
            self.clock() - started,
            len(actions) - failed,
            len(actions),
        )

    def _load(self) -> Memory:
        memory = Memory(site=self.site)
        try:
            saved = json.loads(self.state_file.read_text())
            memory = replace(
                memory,
                armed=bool(saved["armed"]),
                seq=int(saved["seq"]),
                fence_after=float(saved["fence_after"]),
                fenced=bool(saved["fenced"]),
                override=None if saved.get("override") is None else str(saved["override"]),
                restored=bool(saved.get("restored", False)),
            )
        except FileNotFoundError:
            return memory
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("ignored the unreadable state file %s: %s", self.state_file, exc)
            return memory
        # Armed before a restart: the grace for a feed runs from now.
        return replace(memory, fed_at=self.clock() if memory.armed else None)

    def _save(self) -> None:
        data = asdict(self.memory)
        data.pop("fed_at")
        data.pop("lost")  # said again by every feed
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, sort_keys=True))
        os.replace(tmp, self.state_file)
