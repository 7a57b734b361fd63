"""The environment of every process sitectl starts: an allow-list, never os.environ.

A secret the topology names as `{env: NAME}` sits in sitectl's own environment (the
operator exported it from the vault). A child handed os.environ holds it as well, in its
/proc/PID/environ for as long as it runs, and ansible-runner writes the environment of
the ansible-playbook it starts into the run's artifacts (`artifacts/<id>/command`), where
it stays on disk. So every child — ansible-playbook, a hook, a parity command, a dead-man
agent's fence action, btrfs — gets only the variables listed here, and never one whose
name a secret reference uses (`secret_names`), whatever the list says.

What a playbook needs of a secret is handed over in a file instead (adapters/ansible.py:
a private directory named by SECRETS_DIR, removed after the run).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping

# Where sitectl hands a run the secrets it needs (adapters/ansible.py), read back by
# adapters/secrets.read_secret in the child: a path, never a value.
SECRETS_DIR = "SITECTL_SECRETS_DIR"

# Every child: where programs are, whose they are, how they speak and tell time.
BASE = ("PATH", "HOME", "LANG", "LANGUAGE", "TZ", "USER", "LOGNAME", "TMPDIR")
LOCALE_PREFIX = "LC_"
# A hook: only what the brief of a hook promises (PATH, LANG, TZ, HOME, locale), plus
# the SITECTL_* variables describing its event (controller/hooks.py).
HOOK = ("PATH", "HOME", "LANG", "LANGUAGE", "TZ")
# Commands that reach other machines (parity's `ssh host zmprov …`, fence actions,
# ansible-playbook's ssh): the ssh agent's socket and a Kerberos cache. Both are paths:
# the agent holds keys but does not give them away.
REMOTE = ("SSH_AUTH_SOCK", "KRB5CCNAME")
# Where Python finds sitectl's own code, which some children run (`python -m
# orchestrator.storage` as a fence action; the gate and lease plugins in ansible-playbook).
PYTHON = ("PYTHONPATH", "VIRTUAL_ENV")
# ansible-playbook: the CA bundles a REST module verifies with, and Ansible's own
# settings, the operator's way to configure it (ANSIBLE_CONFIG, ANSIBLE_PRIVATE_KEY_FILE…).
ANSIBLE = ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE")
ANSIBLE_PREFIX = "ANSIBLE_"
# An ANSIBLE_* variable that may hold a secret itself (ANSIBLE_NET_PASSWORD,
# ANSIBLE_VAULT_PASSWORD, a token) stays behind; one naming a file or a path does not.
_SECRET_SHAPED = re.compile(r"PASS|SECRET|TOKEN|CRED|AUTH|KEY")
_A_PATH = re.compile(r"_(FILE|PATH|DIR)S?$")

# The names `{env: …}` references use, in every topology this process loaded and every
# secret it read: dropped from a child's environment even when an allow-list names them
# (a secret exported as SSH_AUTH_SOCK would otherwise pass).
_secret_names: set[str] = set()


def note_secret_names(names: Iterable[str]) -> None:
    """Remember names of environment variables that hold secrets (config/loader.py does
    it for every topology, adapters/secrets.py for every secret read)."""
    _secret_names.update(names)


def secret_names() -> frozenset[str]:
    return frozenset(_secret_names)


def _wanted(name: str, names: tuple[str, ...], ansible: bool) -> bool:
    if name in names or name.startswith(LOCALE_PREFIX):
        return True
    if ansible and name.startswith(ANSIBLE_PREFIX):
        rest = name.removeprefix(ANSIBLE_PREFIX)
        return not _SECRET_SHAPED.search(rest) or bool(_A_PATH.search(rest))
    return False


def _allowed(
    names: tuple[str, ...],
    extra: Mapping[str, str] | None,
    environ: Mapping[str, str] | None,
    ansible: bool = False,
) -> dict[str, str]:
    source = os.environ if environ is None else environ
    hidden = _secret_names
    env = {k: v for k, v in source.items() if _wanted(k, names, ansible) and k not in hidden}
    # What sitectl itself sets (an event's SITECTL_* variables, a run's marker) goes in
    # as given: the caller names it, and none of it comes from the environment.
    env.update(extra or {})
    return env


def command_env(
    extra: Mapping[str, str] | None = None, *, environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """For a command sitectl runs on its own behalf (parity, fence actions, btrfs)."""
    return _allowed(BASE + REMOTE + PYTHON, extra, environ)


def hook_env(
    extra: Mapping[str, str] | None = None, *, environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """For an operator's hook: PATH, LANG, LC_*, TZ, HOME, and the event's `extra`."""
    return _allowed(HOOK, extra, environ)


def allowed_for_ansible(name: str) -> bool:
    """Whether ansible-playbook may inherit `name` from sitectl's environment."""
    return _wanted(name, BASE + REMOTE + PYTHON + ANSIBLE, True) and name not in _secret_names
