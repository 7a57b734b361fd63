"""The dead-man agent process: listen for feeds, judge every tick, fence when starved.

    sitectl deadman run --site dc1 --address 198.18.1.1 [-c topology.yaml]

It keeps its memory (armed, last sequence number, fenced) in a small state file, so an
agent restarted while its site held the right to serve is still armed: it fences unless
a feed arrives within `fence_after` of its start. Each fence action runs with its own
bound and a failed one does not stop the next: a fence does all it can.
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

from orchestrator.deadman.actions import FenceAction
from orchestrator.deadman.decision import Memory, Verdict, judge
from orchestrator.deadman.feed import BadFeed, decode

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
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if done.returncode == 0:
        return None
    tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
    return f"exit {done.returncode}: {' / '.join(tail)}"


@dataclass
class Agent:
    site: str
    actions: list[FenceAction]
    key: bytes
    sock: socket.socket
    state_file: Path
    clock: Callable[[], float] = time.monotonic
    run: Callable[[FenceAction], str | None] = run_action
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
                self.heard(self.sock.recv(4096))
            except TimeoutError:
                pass
            except OSError as exc:
                log.warning("the agent's socket failed: %s", exc)
                stop.wait(TICK)
            self.tick()

    def heard(self, datagram: bytes) -> None:
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
        )
        if (before.armed, before.fenced) != (self.memory.armed, self.memory.fenced):
            self._save()

    def tick(self) -> Verdict:
        verdict, sentence = judge(self.memory, self.clock())
        if verdict is not self._last:
            log.info(sentence)
            self._last = verdict
        if verdict is Verdict.FENCE:
            self.fence()
        return verdict

    def fence(self) -> None:
        started = self.clock()
        failed = 0
        for action in self.actions:
            error = self.run(action)
            if error is None:
                log.info("fence: %s: done", action.what)
            else:
                failed += 1
                log.error("fence: %s failed (%s): %s", action.what, action.command, error)
        self.memory = replace(self.memory, fenced=True)
        self._save()
        log.info(
            "%s fenced in %.1f s: %d of %d actions done",
            self.site,
            self.clock() - started,
            len(self.actions) - failed,
            len(self.actions),
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
