"""Ansible action plugin: ask the sitectl engine whether a step may start.

Loaded by ansible-playbook (not by sitectl) when the engine runs several steps in one
run; see orchestrator/adapters/ansible.py. It runs on the controller side only, needs no
connection to the hosts, and blocks until the engine answers over its private Unix
socket: "go" (run the step's plays), "skip" (already true: the step's plays are
skipped) or "stop" (fail here, which ends the run). While the engine verifies and
checkpoints the previous step, re-checks its lease or is frozen, nothing runs.
"""

from __future__ import annotations

import json
import socket
from typing import Any

from ansible.plugins.action import ActionBase


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        args = self._task.args
        hosts = list((task_vars or {}).get("ansible_play_hosts_all") or [])
        request = {"step": args["step"], "after": args.get("after"), "hosts": hosts}
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as gate:
                gate.settimeout(float(args.get("timeout", 600)))
                gate.connect(str(args["socket"]))
                gate.sendall(json.dumps(request).encode() + b"\n")
                answer = json.loads(gate.makefile("rb").readline() or b"{}")
        except (OSError, ValueError) as exc:
            # The engine died or hung: never run a step it has not allowed.
            return {**result, "failed": True, "msg": f"sitectl did not answer the gate: {exc}"}
        verdict = answer.get("verdict")
        result.update(changed=False, verdict=verdict, msg=answer.get("message") or "")
        if verdict not in ("go", "skip"):
            result["failed"] = True
            result["msg"] = result["msg"] or f"sitectl stopped the run before {args['step']}"
        return result
