"""Hooks on decision events: a command or a webhook per event, each bounded by a timeout.

Events: `pre-failover` (runs before an automatic failover; a non-zero exit, a non-2xx
answer, a timeout or a hook that cannot run at all vetoes it: when the hook cannot say
yes, the safe answer is no), `post-failover` and `failover-failed` (told, never asked),
`split-brain` (told, never asked: each controller whose probes find two sites
serving, once when it starts seeing it, with `vantage`, `active_site` and `findings`),
and `plan-not-ready` / `plan-ready` (told, never asked: the leader's plan evaluation
found that a move to the standby could no longer / could again run, with `to_site`,
`verdict`, `at` and `problems`, each {check, subject, reason}).

A command gets the event as JSON on stdin and as SITECTL_* environment variables; a
webhook (a value starting with http:// or https://) gets the same JSON in a POST
(orchestrator/notify/send.py sends both, as it does the topology's notifications).

A command's environment is PATH, HOME, LANG, LANGUAGE, LC_*, TZ from the controller's
and the event's SITECTL_EVENT and SITECTL_<FIELD> variables: nothing else of the
controller's, where the secrets the topology reads from the environment are
(orchestrator/childenv.py). A hook that needs a credential reads it from its own file.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from orchestrator.childenv import hook_env
from orchestrator.notify.send import post_json, run_command

log = logging.getLogger(__name__)

EVENTS = (
    "pre-failover",
    "post-failover",
    "failover-failed",
    "split-brain",
    "plan-not-ready",
    "plan-ready",
)


@dataclass(frozen=True)
class HookResult:
    event: str
    ran: bool  # False: no hook configured for the event
    ok: bool
    detail: str  # one line: what the hook said or why it failed

    def sentence(self) -> str:
        verdict = "allowed" if self.ok else "refused"
        return f"{self.event} hook {verdict}: {self.detail}"


@dataclass(frozen=True)
class Hooks:
    commands: Mapping[str, str] = field(default_factory=dict)  # event → command or URL
    timeout: float = 10.0

    @classmethod
    def parse(cls, specs: list[str], timeout: float) -> Hooks:
        """From `EVENT=COMMAND` strings (the CLI's repeatable --hook)."""
        found: dict[str, str] = {}
        for spec in specs:
            event, sep, command = spec.partition("=")
            if not sep or event not in EVENTS or not command.strip():
                raise ValueError(
                    f"--hook {spec!r}: write EVENT=COMMAND with EVENT one of {', '.join(EVENTS)}"
                )
            found[event] = command.strip()
        return cls(found, timeout)

    def run(self, event: str, payload: dict[str, Any]) -> HookResult:
        command = self.commands.get(event)
        if command is None:
            return HookResult(event, False, True, "no hook configured")
        body = {"event": event, **payload}
        if command.startswith(("http://", "https://")):
            result = self._post(event, command, body)
        else:
            result = self._exec(event, command, body)
        log.info("%s", result.sentence())
        return result

    def _exec(self, event: str, command: str, body: dict[str, Any]) -> HookResult:
        env = hook_env(
            {
                "SITECTL_EVENT": event,
                **{f"SITECTL_{k.upper()}": str(v) for k, v in body.items() if v is not None},
            }
        )
        sent = run_command(command, json.dumps(body), env, self.timeout)
        return HookResult(event, True, sent.ok, sent.detail)

    def _post(self, event: str, url: str, body: dict[str, Any]) -> HookResult:
        sent = post_json(url, json.dumps(body).encode(), self.timeout)
        return HookResult(event, True, sent.ok, sent.detail)
