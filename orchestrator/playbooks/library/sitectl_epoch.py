#!/usr/bin/python
"""sitectl_epoch: compare-and-set the operation's epoch on the host, then act (issue 18).

An engine frozen after its playbook released a task can wake up after a newer leader has
acted. This module, run on the host, takes an exclusive lock on a ledger of the epochs
that acted on one thing (`<ledger>.lock`), refuses an epoch older than the newest one
there, appends its own, and runs `shell` (if given) while it still holds the lock, so a
released task of an older epoch cannot act once a newer one has.

A task still holding the lock when a later one arrives was left behind by a run that
was killed (its engine lost the lease, an abort, a deadline: killing ansible-playbook
does not end a command already running on the host). The later task stops it, command
and all, unless it belongs to a newer epoch, in which case the later task is the stale
one and is refused.

The lock does not outlive the module's own process, but its command can: the command
runs in its own session, so when the module dies (SIGKILL, the OOM killer, an executor
that ends its interpreter when its connection drops) the lock is free while the command
still acts. So a task that has taken the lock also reads `<ledger>.holder`, where every
task names its command's process group and that command's start time: if the command
still runs, it is stopped (and waited for) before this task acts, or, if it belongs to a
newer epoch, this task is refused and leaves it running. The start time is compared so
that a pid reused by another process is never killed.

Only the standard library: it runs with the host's Python, as every Ansible module does.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
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


HOLDER_WAIT_S = 30.0  # how long a later task waits for a stopped holder to let go


def stat_of(pid: int) -> list[str] | None:
    """/proc/PID/stat's fields from the state (field 3) on, or None once PID is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def started_at(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (/proc/PID/stat, field 22):
    with the pid, it names one process, whatever reuses the pid later."""
    fields = stat_of(pid)
    return fields[19] if fields is not None and len(fields) > 19 else None


def recorded_holder(ledger: str) -> dict | None:
    """The last task to hold the lock, as it wrote itself down in `<ledger>.holder`."""
    try:
        with open(ledger + ".holder", encoding="utf-8") as text:
            holder = json.load(text)
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) else None


def pid_in(holder: dict, key: str) -> int | None:
    """holder[key] as a pid, or None if the record names none there."""
    try:
        pid = int(holder[key])
    except (KeyError, TypeError, ValueError):
        return None
    return pid if pid > 0 else None  # never 0 or below: kill() would take those as groups


def holder_of(ledger: str) -> dict | None:
    """The task holding the lock, as it wrote itself down, if that process still lives."""
    holder = recorded_holder(ledger)
    if holder is None or (pid := pid_in(holder, "pid")) is None:
        return None
    if started_at(pid) != holder.get("started"):
        return None  # gone, and the pid perhaps reused
    return holder


def running_command(holder: dict) -> int | None:
    """The holder's command group, if its leader still runs and is that command: the
    same pid with the same start time (a pid reused since names another process)."""
    pgid = pid_in(holder, "command_pgid")
    fields = stat_of(pgid) if pgid is not None else None
    if fields is None or len(fields) < 20 or fields[0] == "Z":
        return None  # gone (a zombie no longer acts)
    return pgid if fields[19] == holder.get("command_started") else None


def group_runs(pgid: int) -> bool:
    """Whether any process of the group still runs (zombies aside)."""
    for entry in os.listdir("/proc"):
        fields = stat_of(int(entry)) if entry.isdigit() else None
        if fields is not None and len(fields) > 2 and fields[0] != "Z" and fields[2] == str(pgid):
            return True
    return False


def take_lock(fd: int, ledger: str, epoch: int, action: str, module: AnsibleModule) -> list:
    """Hold the ledger's lock, stopping a left-behind holder of this or an older epoch."""
    stopped = []
    deadline = time.monotonic() + HOLDER_WAIT_S
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return stopped
        except BlockingIOError:
            pass
        holder = holder_of(ledger)
        if holder is not None and int(holder["epoch"]) > epoch:
            module.fail_json(msg=refused(int(holder["epoch"]), epoch, action), refused=True)
        if holder is not None and holder not in stopped:
            for group in (holder.get("command_pgid"), None):
                try:
                    if group:
                        os.killpg(int(group), signal.SIGKILL)
                    else:
                        os.kill(int(holder["pid"]), signal.SIGKILL)
                except (ProcessLookupError, PermissionError, ValueError):
                    pass
            stopped.append(holder)
        if time.monotonic() > deadline:
            module.fail_json(msg=f"{action}: the ledger {ledger} stays locked by another task")
        time.sleep(0.1)


def stop_left_command(ledger: str, epoch: int, action: str, module: AnsibleModule) -> dict | None:
    """With the lock held: the command the last holder named, if it still runs (its module
    died and freed the lock without it), is stopped before this task acts, or this task is
    refused if that command belongs to a newer epoch. The holder stopped, if any."""
    holder = recorded_holder(ledger)
    pgid = running_command(holder) if holder is not None else None
    if holder is None or pgid is None:
        return None
    if int(holder["epoch"]) > epoch:
        module.fail_json(msg=refused(int(holder["epoch"]), epoch, action), refused=True)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    except PermissionError:
        module.fail_json(msg=f"{action}: not allowed to stop the command {pgid} left running")
    deadline = time.monotonic() + HOLDER_WAIT_S
    while group_runs(pgid):
        if time.monotonic() > deadline:
            module.fail_json(msg=f"{action}: the command {pgid} left running does not end")
        time.sleep(0.05)
    return holder


def write_holder(ledger: str, epoch: int, command_pgid: int | None) -> None:
    pid = os.getpid()
    holder = {
        "pid": pid,
        "started": started_at(pid),
        "epoch": epoch,
        "command_pgid": command_pgid,
        "command_started": started_at(command_pgid) if command_pgid else None,
    }
    with open(ledger + ".holder.tmp", "w", encoding="utf-8") as out:
        json.dump(holder, out)
    os.replace(ledger + ".holder.tmp", ledger + ".holder")


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
        stopped = take_lock(fd, ledger, epoch, action, module)
        left = stop_left_command(ledger, epoch, action, module)  # before the record is ours
        if left is not None and left not in stopped:
            stopped.append(left)
        write_holder(ledger, epoch, None)
        why = refused(newest_in(ledger), epoch, action)
        if why is not None:
            module.fail_json(msg=why, refused=True)
        entry = {"epoch": epoch, "action": action, "at": time.time()}
        with open(ledger, "a", encoding="utf-8") as out:
            out.write(json.dumps(entry, sort_keys=True) + "\n")
        result = {"changed": True, "epoch": epoch, "action": action, "stopped": stopped}
        if module.params["shell"]:
            env = {**os.environ, **{k: str(v) for k, v in module.params["environment"].items()}}
            command = subprocess.Popen(
                module.params["shell"],
                shell=True,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,  # its own group: a later task can stop it whole
            )
            write_holder(ledger, epoch, command.pid)
            stdout, stderr = command.communicate()
            result.update(rc=command.returncode, stdout=stdout, stderr=stderr)
            if command.returncode != 0:
                module.fail_json(msg=f"{action}: exit {command.returncode}", **result)
        module.exit_json(**result)
    finally:
        os.close(fd)


if __name__ == "__main__":
    main()
