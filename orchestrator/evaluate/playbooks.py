"""Every playbook a move would run exists and passes `ansible-playbook --syntax-check`.

Which playbooks: derived from the plan's actions (`PLAYBOOK_OF`, the names the step
handlers in engine/steps call), never a second list. `playbooks_used` is the one place
that answers it; operator playbooks from the topology join it there.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from orchestrator.childenv import allowed_for_ansible
from orchestrator.config.model import Topology
from orchestrator.evaluate.findings import Finding, ok, problem
from orchestrator.plan.model import Action, Plan

CHECK = "playbook"
SYNTAX_TIMEOUT_S = 120.0
TAIL_CHARS = 300

# The playbook each action's handler runs (engine/steps/app.py, volumes.py, dns.py).
PLAYBOOK_OF: dict[Action, str] = {
    Action.APP_STOP: "app.yml",
    Action.APP_START: "app.yml",
    Action.MIRROR_UPDATE: "volume.yml",
    Action.MIRROR_BREAK: "volume.yml",
    Action.MIRROR_REVERSE: "volume.yml",
    Action.VOLUME_UNMOUNT: "volume.yml",
    Action.VOLUME_MOUNT: "volume.yml",
    Action.DNS_PROMOTE: "dns-role.yml",
    Action.DNS_DEMOTE: "dns-role.yml",
}


def playbooks_used(topo: Topology, plan: Plan) -> list[Path]:
    """The playbooks `plan` runs, each once, in the order first used (pure)."""
    directory = topo.playbook_dir
    paths: list[Path] = []
    for step in plan.steps():
        if step.action in PLAYBOOK_OF:
            paths.append(directory / PLAYBOOK_OF[step.action])
        elif step.action is Action.CUSTOM_PLAYBOOK:  # the operator's own, beside the topology
            paths.append(topo.resolve(str(step.params["playbook"])))
        elif step.action is Action.CUSTOM_COMMAND and step.hosts:
            paths.append(directory / "custom.yml")  # a command on a role's hosts
    return list(dict.fromkeys(paths))


def judge_syntax(path: Path, exists: bool, returncode: int | None, output: str) -> Finding:
    """One playbook's finding from whether it exists and what the syntax check said (pure).

    `returncode` None: not checked (the file is missing)."""
    if not exists:
        return problem(
            CHECK,
            str(path),
            f"{path} does not exist — a move runs it: restore it or fix ansible.playbook_dir",
        )
    if returncode == 0:
        return ok(CHECK, str(path), "exists and passes ansible-playbook --syntax-check")
    said = " ".join(output.split())
    if len(said) > TAIL_CHARS:
        said = "…" + said[-TAIL_CHARS:]
    return problem(
        CHECK,
        str(path),
        f"ansible-playbook --syntax-check refuses {path.name} (exit {returncode}): {said}",
    )


def _syntax_check(paths: Sequence[Path]) -> tuple[int, str]:
    bin_dir = Path(sys.executable).parent
    env = {k: v for k, v in os.environ.items() if allowed_for_ansible(k)}
    env["PATH"] = f"{bin_dir}:{env.get('PATH', '')}"
    env["ANSIBLE_NOCOLOR"] = "1"
    try:
        done = subprocess.run(
            # localhost only: the syntax check reads no host, and no inventory is parsed.
            [str(bin_dir / "ansible-playbook"), "--syntax-check", "-i", "localhost,"]
            + [str(p) for p in paths],
            capture_output=True,
            text=True,
            env=env,
            timeout=SYNTAX_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 1, f"ansible-playbook could not run: {exc}"
    # Python's own warnings (a deprecated cipher in a library) are not the playbook's.
    lines = [line for line in done.stderr.splitlines() if "Warning" not in line]
    return done.returncode, "\n".join(lines)


def check_playbooks(paths: Sequence[Path]) -> list[Finding]:
    """One finding per playbook. The existing ones are checked in one ansible-playbook
    run (each start costs about a second); only when it fails is each checked alone,
    so the finding names the playbook at fault."""
    present = [p for p in paths if p.is_file()]
    findings = [judge_syntax(p, False, None, "") for p in paths if not p.is_file()]
    if not present:
        return findings
    if _syntax_check(present)[0] == 0:
        return findings + [judge_syntax(p, True, 0, "") for p in present]
    for path in present:
        findings.append(judge_syntax(path, True, *_syntax_check([path])))
    return findings
