"""Every playbook a move would run exists, is a playbook (`playbook_problem`, which
loading a topology checks too) and passes `ansible-playbook --syntax-check`.

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

import yaml

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


# How a playbook imports another in place of a play.
_IMPORTS = frozenset(
    {"import_playbook", "ansible.builtin.import_playbook", "ansible.legacy.import_playbook"}
)


class _AnsibleYaml(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """YAML as Ansible reads it, for a parse check only: Ansible's own tags (`!unsafe`,
    `!vault`) are taken as the plain values they tag rather than refused."""


def _tagged(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> object:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    return loader.construct_mapping(node)  # type: ignore[arg-type]


_AnsibleYaml.add_multi_constructor("!", _tagged)


def playbook_problem(path: Path) -> str | None:
    """Why `path` is not a playbook ansible-playbook could run (missing, unreadable, not
    YAML, not a list of plays), or None."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return f"{path} does not exist"
    except IsADirectoryError:
        return f"{path} is a directory, not a playbook"
    except (OSError, UnicodeDecodeError) as exc:
        return f"{path} cannot be read ({exc})"
    try:
        plays = yaml.load(text, Loader=_AnsibleYaml)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        said = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        return f"{path} is not valid YAML{where}: {said}"
    except RecursionError:
        return f"{path} is not valid YAML: nested too deep"
    if not isinstance(plays, list) or not plays:
        held = "nothing" if plays is None else f"a {type(plays).__name__}"
        return f"{path} is not a playbook: it holds {held}, not a list of plays"
    for number, play in enumerate(plays, start=1):
        if not isinstance(play, dict) or not ("hosts" in play or _IMPORTS & play.keys()):
            return (
                f"{path} is not a playbook: its item {number} is not a play (a mapping with "
                "hosts: or import_playbook:); a task file is included by a play, not run"
            )
    return None


def judge_syntax(path: Path, exists: bool, returncode: int | None, output: str) -> Finding:
    """One playbook's finding from whether it exists and what the syntax check said (pure).

    `returncode` None: not checked (the file is missing)."""
    if not exists:
        return _unusable(path, f"{path} does not exist")
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


def _unusable(path: Path, why: str) -> Finding:
    return problem(
        CHECK, str(path), f"{why} — a move runs it: restore it or fix ansible.playbook_dir"
    )


def check_playbooks(paths: Sequence[Path]) -> list[Finding]:
    """One finding per playbook. Each is first read and parsed as loading a topology
    does (`playbook_problem`: it may have changed since); those that are playbooks are
    checked in one ansible-playbook run (each start costs about a second); only when it
    fails is each checked alone, so the finding names the playbook at fault."""
    unusable = {p: playbook_problem(p) for p in paths}
    findings = [_unusable(p, why) for p, why in unusable.items() if why is not None]
    present = [p for p, why in unusable.items() if why is None]
    if not present:
        return findings
    if _syntax_check(present)[0] == 0:
        return findings + [judge_syntax(p, True, 0, "") for p in present]
    for path in present:
        findings.append(judge_syntax(path, True, *_syntax_check([path])))
    return findings
