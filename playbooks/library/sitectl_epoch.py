#!/usr/bin/python
"""sitectl_epoch: compare-and-set the operation's epoch on the host, then act (issue 18).

An engine frozen after its playbook released a task can wake up after a newer leader has
acted. This module, run on the host, takes an exclusive lock on a ledger of the epochs
that acted on one thing (`<ledger>.lock`), refuses an epoch older than the newest one
there, appends its own, and runs `shell` (if given) while it still holds the lock, so a
released task of an older epoch cannot act once a newer one has. Only the standard
library: it runs with the host's Python, as every Ansible module does.
"""

from __future__ import annotations

import fcntl
import json
import os
import time

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: sitectl_epoch
short_description: Refuse a stale sitectl epoch on the host, then run a command under the lock
options:
  ledger: {type: path, required: true, description: JSON-lines ledger of the epochs that acted}
  epoch: {type: int, required: true, description: the operation lease's epoch}
  action: {type: str, required: true, description: what acts, for the ledger and the refusal}
  shell: {type: str, required: false, description: command run under the lock if admitted}
  environment: {type: dict, required: false, description: added to the command's environment}
"""


def refused(newest: int | None, epoch: int, action: str) -> str | None:
    if newest is not None and epoch < newest:
        return (
            f"epoch {epoch} is stale: epoch {newest} has already acted on {action} on this "
            "host (a newer operation holds the lease)"
        )
    return None


def newest_in(ledger: str) -> int | None:
    try:
        with open(ledger, encoding="utf-8") as lines:
            epochs = [json.loads(line)["epoch"] for line in lines if line.strip()]
    except FileNotFoundError:
        return None
    return max(epochs, default=None)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "ledger": {"type": "path", "required": True},
            "epoch": {"type": "int", "required": True},
            "action": {"type": "str", "required": True},
            "shell": {"type": "str", "required": False},
            "environment": {"type": "dict", "required": False, "default": {}},
        },
        supports_check_mode=False,
    )
    ledger, epoch, action = module.params["ledger"], module.params["epoch"], module.params["action"]
    os.makedirs(os.path.dirname(ledger) or ".", mode=0o700, exist_ok=True)
    fd = os.open(ledger + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # bounded by the step's deadline: the engine kills us
        why = refused(newest_in(ledger), epoch, action)
        if why is not None:
            module.fail_json(msg=why, refused=True)
        entry = {"epoch": epoch, "action": action, "at": time.time()}
        with open(ledger, "a", encoding="utf-8") as out:
            out.write(json.dumps(entry, sort_keys=True) + "\n")
        result = {"changed": True, "epoch": epoch, "action": action}
        if module.params["shell"]:
            env = {k: str(v) for k, v in (module.params["environment"] or {}).items()}
            rc, stdout, stderr = module.run_command(
                module.params["shell"], use_unsafe_shell=True, environ_update=env
            )
            result.update(rc=rc, stdout=stdout, stderr=stderr)
            if rc != 0:
                module.fail_json(msg=f"{action}: exit {rc}", **result)
        module.exit_json(**result)
    finally:
        os.close(fd)


if __name__ == "__main__":
    main()
