"""Issue 19, finding 1: a secret of sitectl's environment reaches no child and no file.

The example topology reads its secrets from environment variables (`{env: …}`). Values
shaped like secrets are exported under those names (and under one no topology names),
then real children run: ansible-playbook through the adapter the engine uses (its task
dumps the environment it inherited; every file of the run's artifacts is searched), a
parity command and a dead-man fence action. A NetApp step's credential reaches its
playbook through the file sitectl hands over (the very expression of
orchestrator/playbooks/tasks/netapp.yml reads it), which is private and gone once the run
is over.
The lab-wide version, with a real operation and /proc/PID/environ sampled while it
runs, is tests/faults/test_secrets.py (R8).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator import childenv
from orchestrator.adapters.ansible import run_environment, run_playbook
from orchestrator.adapters.secrets import SecretError, SecretSource, read_secret
from orchestrator.checks.parity import run_command
from orchestrator.config import load_topology
from orchestrator.config.model import INSTALLED_PLAYBOOKS, SecretRef
from orchestrator.deadman.actions import FenceAction
from orchestrator.deadman.agent import run_action
from tests.unit.local_hosts import local_inventory

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "inventories" / "example-zimbra" / "topology.yaml"
NETAPP_TASKS = INSTALLED_PLAYBOOKS / "tasks" / "netapp.yml"
# Names the example topology reads secrets from, and one that no topology names.
NAMED = ("ZIMBRA_LDAP_PASSWORD", "ONTAP_DC1_CREDENTIALS", "SITECTL_DEADMAN_KEY")
UNNAMED = "SOME_VENDOR_API_TOKEN"


@pytest.fixture
def exported(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Secret-looking values in this process's environment under the names the example
    topology uses (loaded, as every command loads its topology) and one more."""
    load_topology(EXAMPLE)
    values = {name: f"r8-{name.lower()}-{secrets.token_urlsafe(18)}" for name in NAMED}
    values[UNNAMED] = "tok-" + secrets.token_urlsafe(24)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    return values


def leaks(values: dict[str, str], text: str) -> list[str]:
    return [name for name, value in values.items() if value in text]


def tree_leaks(values: dict[str, str], root: Path) -> tuple[int, list[str]]:
    """(files searched, "NAME in FILE" for each value found) under `root`."""
    files, found = 0, []
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            files += 1
            data = path.read_text(errors="replace")
            found += [f"{name} in {path}" for name in leaks(values, data)]
    return files, found


def dumped_env(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


# -- the allow-list -----------------------------------------------------------------


def test_a_commands_environment_is_the_allow_list(exported: dict[str, str]) -> None:
    env = childenv.command_env({"SITECTL_STEP": "x"})
    assert not leaks(exported, json.dumps(env))
    assert not set(env) & set(exported)
    assert env["PATH"] == os.environ["PATH"] and env["LC_ALL"] == "C.UTF-8"
    assert env["SITECTL_STEP"] == "x"
    hook = childenv.hook_env()
    assert set(hook) <= {"PATH", "HOME", "LANG", "LANGUAGE", "TZ", "LC_ALL"}


def test_a_name_a_secret_is_read_from_is_dropped_even_when_allowed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(childenv, "_secret_names", set())
    monkeypatch.setenv("SSH_AUTH_SOCK", "s3cr3t-shaped-as-a-socket")
    assert "SSH_AUTH_SOCK" in childenv.command_env()
    read_secret(SecretRef(env="SSH_AUTH_SOCK"), Path("."))  # a topology reads it as a secret
    assert "SSH_AUTH_SOCK" not in childenv.command_env()
    assert not childenv.allowed_for_ansible("SSH_AUTH_SOCK")


def test_ansible_settings_pass_but_not_one_that_holds_a_secret() -> None:
    assert childenv.allowed_for_ansible("ANSIBLE_CONFIG")
    assert childenv.allowed_for_ansible("ANSIBLE_PRIVATE_KEY_FILE")
    assert childenv.allowed_for_ansible("ANSIBLE_VAULT_PASSWORD_FILE")  # a path
    assert not childenv.allowed_for_ansible("ANSIBLE_NET_PASSWORD")
    assert not childenv.allowed_for_ansible("ANSIBLE_BECOME_PASS")
    assert not childenv.allowed_for_ansible("AWS_SECRET_ACCESS_KEY")


def test_the_run_environment_keeps_what_sitectl_and_ansible_runner_set() -> None:
    parent = {"PATH": "/bin", "HOME": "/root", "DB_PASSWORD": "x1", "ANSIBLE_STDOUT_CALLBACK": "a"}
    prepared = {
        **parent,
        "PATH": "/venv/bin:/bin",  # ours
        "SITECTL_PLAYBOOK_RUN": "1-ab",  # ours
        "ANSIBLE_CALLBACK_PLUGINS": "/runner/callbacks",  # ansible-runner's own
        "ANSIBLE_STDOUT_CALLBACK": "awx_display",  # changed by ansible-runner
    }
    ours = {"PATH": "/venv/bin:/bin", "SITECTL_PLAYBOOK_RUN": "1-ab"}
    assert run_environment(prepared, ours, parent) == {
        "PATH": "/venv/bin:/bin",
        "HOME": "/root",
        "SITECTL_PLAYBOOK_RUN": "1-ab",
        "ANSIBLE_CALLBACK_PLUGINS": "/runner/callbacks",
        "ANSIBLE_STDOUT_CALLBACK": "awx_display",
    }


# -- real children ------------------------------------------------------------------

DUMP_ENV = """- name: dump the environment a task inherits
  hosts: all
  gather_facts: false
  tasks:
    - name: env
      ansible.builtin.shell: "env > {{ dump }}"
"""


def test_ansible_playbook_and_its_artifacts_hold_no_secret_of_the_environment(
    exported: dict[str, str], tmp_path: Path
) -> None:
    playbook = tmp_path / "dump.yml"
    playbook.write_text(DUMP_ENV)
    dump, artifacts = tmp_path / "env.txt", tmp_path / "art"
    run_playbook(
        playbook, local_inventory(tmp_path), ("h1",), {"dump": str(dump)}, artifacts, timeout=60
    )

    seen = dumped_env(dump)
    assert "SITECTL_PLAYBOOK_RUN" in seen and seen["LC_ALL"] == "C.UTF-8"  # a run's own
    assert not leaks(exported, dump.read_text()), seen
    assert not set(seen) & set(exported)
    # ansible-runner's record of the environment it started ansible-playbook with.
    [command] = artifacts.glob("artifacts/*/command")
    recorded = json.loads(command.read_text())["env"]
    assert "SITECTL_PLAYBOOK_RUN" in recorded and not set(recorded) & set(exported)
    files, found = tree_leaks(exported, artifacts)
    assert files >= 5 and found == []
    assert stat.S_IMODE(artifacts.stat().st_mode) == 0o700


def _netapp_credentials_play() -> list[dict[str, Any]]:
    """A play reading a credential exactly as orchestrator/playbooks/tasks/netapp.yml
    does (its own expressions, lifted from the file), then recording what it can see."""
    [block] = yaml.safe_load(NETAPP_TASKS.read_text())[:1]
    [reads] = [t for t in block["block"] if t["name"] == "Read the ONTAP credentials"]
    return [
        {
            "name": "read an ONTAP credential as netapp.yml does",
            "hosts": "all",
            "gather_facts": False,
            "vars": {"sitectl_secrets_dir": block["vars"]["sitectl_secrets_dir"]},
            "tasks": [
                {
                    "name": "read",
                    "ansible.builtin.set_fact": reads["ansible.builtin.set_fact"],
                    "no_log": reads["no_log"],  # as netapp.yml: the fact is the secret
                },
                {
                    "name": "what the run sees",
                    "ansible.builtin.shell": (
                        "env > {{ dump }}; "
                        "stat -c '%a %n' {{ sitectl_secrets_dir }} {{ sitectl_secrets_dir }}/* "
                        "> {{ modes }}"
                    ),
                },
                {
                    "name": "what it read, as a digest",
                    "ansible.builtin.copy": {
                        "content": "{{ ontap_auth | hash('sha256') }}",
                        "dest": "{{ digest }}",
                    },
                },
            ],
        }
    ]


def test_a_netapp_credential_is_handed_over_in_a_private_file_gone_after_the_run(
    exported: dict[str, str], tmp_path: Path
) -> None:
    playbook = tmp_path / "netapp-read.yml"
    playbook.write_text(yaml.safe_dump(_netapp_credentials_play()))
    dump, modes, digest = tmp_path / "env.txt", tmp_path / "modes.txt", tmp_path / "digest"
    name = "ONTAP_DC1_CREDENTIALS"
    run_playbook(
        playbook,
        local_inventory(tmp_path),
        ("h1",),
        {
            "netapp_credentials_env": name,
            "netapp_credentials_file": "",
            "dump": str(dump),
            "modes": str(modes),
            "digest": str(digest),
        },
        tmp_path / "art",
        timeout=60,
        handover={name: SecretSource(SecretRef(env=name), tmp_path)},
    )

    assert digest.read_text() == hashlib.sha256(exported[name].encode()).hexdigest()
    seen = dumped_env(dump)
    assert not leaks(exported, dump.read_text()) and name not in seen
    handed = Path(seen[childenv.SECRETS_DIR])
    assert modes.read_text().split() == ["700", str(handed), "600", str(handed / name)]
    assert not handed.exists(), "the handed-over secrets outlived the run"
    assert tree_leaks(exported, tmp_path / "art")[1] == []


def test_a_parity_command_and_a_fence_action_get_no_secret(
    exported: dict[str, str], tmp_path: Path
) -> None:
    said = run_command("env", tmp_path, timeout=10)
    assert "PATH=" in said and not leaks(exported, said)
    dump = tmp_path / "fence-env.txt"
    assert run_action(FenceAction("dump", shell=f"env > {dump}")) is None
    assert "PATH=" in dump.read_text() and not leaks(exported, dump.read_text())


# -- reading a handed-over secret -----------------------------------------------------


def test_a_child_reads_a_secret_from_the_file_handed_over(tmp_path: Path) -> None:
    handed = tmp_path / "handed"
    handed.mkdir(mode=0o700)
    fd = os.open(handed / "ZK_DIGEST", os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"sitectl:pw\n")
    os.close(fd)
    environ = {childenv.SECRETS_DIR: str(handed)}
    secret = read_secret(SecretRef(env="ZK_DIGEST"), tmp_path, environ=environ)
    assert (secret.reveal(), secret.source) == ("sitectl:pw", "$ZK_DIGEST")
    os.chmod(handed / "ZK_DIGEST", 0o644)
    with pytest.raises(SecretError, match=re.escape(f"chmod 600 {handed / 'ZK_DIGEST'}")):
        read_secret(SecretRef(env="ZK_DIGEST"), tmp_path, environ=environ)
    with pytest.raises(SecretError, match="OTHER is not set and sitectl handed this run no"):
        read_secret(SecretRef(env="OTHER"), tmp_path, environ=environ)


def test_a_secret_source_does_not_print_its_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("R8_SOURCE", "hunter2-source")
    source = SecretSource(SecretRef(env="R8_SOURCE"), Path("."))
    assert "hunter2" not in repr(source) and "hunter2" not in str(source)
    assert source.reveal() == "hunter2-source"
