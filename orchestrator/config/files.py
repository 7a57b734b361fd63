"""Checks of the files the topology names: they exist and secrets are private (0600)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator

from pydantic import BaseModel

from orchestrator.config.model import SecretRef, Topology
from orchestrator.config.problems import FieldPath
from orchestrator.config.references import weak_tsig
from orchestrator.config.weak import KEY_FILE_ALGORITHM, WEAK_TSIG

Finding = tuple[FieldPath, str]


def check_files(topo: Topology, absent_ok: bool = False) -> list[Finding]:
    """What is wrong with the files the topology names; with `absent_ok`, a file that
    is not there is not a finding (one that is there is still checked)."""
    return [f for f in _check_files(topo) if not (absent_ok and f[1].endswith(_ABSENT))]


# How a missing file's finding ends (the fix), whichever check found it.
_ABSENT = "does not exist (relative to the topology file) — fix the path"


def _check_files(topo: Topology) -> list[Finding]:
    findings: list[Finding] = []
    for path, ref in secret_refs(topo):
        if ref.file is not None:
            findings.extend(_secret_file(topo, ref.file, (*path, "file")))
    for z_index, zone in enumerate(topo.dns.zones):
        if zone.tsig is not None and zone.tsig.key_file is not None:
            where = ("dns", "zones", z_index, "tsig", "key_file")
            findings.extend(_secret_file(topo, zone.tsig.key_file, where))
            if not zone.tsig.insecure:
                findings.extend(_weak_key_file(topo, zone.tsig.key_file, where))
    token = topo.controller.http.token_file
    if token is not None:
        findings.extend(_secret_file(topo, token, ("controller", "http", "token_file")))
    for index, target in enumerate(topo.notifications.targets):
        if target.token_file is not None:
            where = ("notifications", "targets", index, "token_file")
            findings.extend(_secret_file(topo, target.token_file, where))
    # A file, a directory of them (with group_vars/) or a dynamic inventory's script.
    findings.extend(
        _plain_file(topo, topo.ansible.inventory, ("ansible", "inventory"), any_kind=True)
    )
    if topo.ldap is not None and topo.ldap.ca_file:
        findings.extend(_plain_file(topo, topo.ldap.ca_file, ("ldap", "ca_file")))
    tls = topo.zookeeper.tls
    if tls is not None:
        findings.extend(_plain_file(topo, tls.ca_file, ("zookeeper", "tls", "ca_file")))
        if tls.cert_file:
            findings.extend(_plain_file(topo, tls.cert_file, ("zookeeper", "tls", "cert_file")))
        if tls.key_file:
            findings.extend(_secret_file(topo, tls.key_file, ("zookeeper", "tls", "key_file")))
    for name, role in topo.roles.items():
        for index, probe in enumerate(role.probes):
            if probe.ca_file:
                path = ("roles", name, "probes", index, "ca_file")
                findings.extend(_plain_file(topo, probe.ca_file, path))
    for index, custom in enumerate(topo.custom_steps):
        if custom.playbook is not None:
            path = ("custom_steps", index, "playbook")
            findings.extend(_plain_file(topo, custom.playbook, path))
    return findings


def _weak_key_file(topo: Topology, written: str, path: FieldPath) -> Iterator[Finding]:
    try:
        text = topo.resolve(written).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return  # _secret_file says why it cannot be read
    for found in KEY_FILE_ALGORITHM.findall(text):
        if found.lower() in WEAK_TSIG:
            yield path, f"{written}: {weak_tsig(found.lower())}"
            return


def secret_refs(topo: Topology) -> Iterator[tuple[FieldPath, SecretRef]]:
    """Every secret reference of the topology, with where it is written: found by walking
    the model, so a section that gains a secret is covered without a line here."""
    yield from _walk(topo, ())


def _walk(node: object, path: FieldPath) -> Iterator[tuple[FieldPath, SecretRef]]:
    if isinstance(node, SecretRef):
        yield path, node
    elif isinstance(node, BaseModel):
        for name in type(node).model_fields:
            yield from _walk(getattr(node, name), (*path, name))
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, (*path, key))
    elif isinstance(node, list | tuple):
        for index, value in enumerate(node):
            yield from _walk(value, (*path, index))


def _plain_file(
    topo: Topology, relative: str, path: FieldPath, *, any_kind: bool = False
) -> Iterator[Finding]:
    try:
        resolved = topo.resolve(relative)
        found = resolved.exists() if any_kind else resolved.is_file()
    except (OSError, ValueError) as exc:  # a NUL byte, a name too long, no permission
        yield path, _unusable(relative, exc)
        return
    if not found:
        yield path, f"file {relative} {_ABSENT}"


def _unusable(written: str, exc: Exception) -> str:
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return f"file {written!r} cannot be checked ({reason}) — fix the path"


def _secret_file(topo: Topology, written: str, path: FieldPath) -> Iterator[Finding]:
    try:
        found = topo.resolve(written).stat()
    except FileNotFoundError:
        yield path, f"file {written} {_ABSENT}"
        return
    except PermissionError:
        yield path, f"file {written} cannot be read — give the sitectl user read access"
        return
    except (OSError, ValueError) as exc:
        yield path, _unusable(written, exc)
        return
    # Secret files must be 0600 and this user's (or root's), the rule every read applies
    # again at run time (adapters/secrets.read_private_text): a group bit shares the
    # secret with a whole group, another owner may change it under sitectl.
    mode = found.st_mode
    if found.st_uid not in (os.geteuid(), 0):
        yield (
            path,
            (
                f"secret file {written} belongs to uid {found.st_uid}, not to this user "
                f"(uid {os.geteuid()}) or root — chown it to the user sitectl runs as"
            ),
        )
    if mode & 0o077:
        who = "everyone" if mode & 0o007 else "its group"
        what = "readable or writable" if mode & 0o066 else "executable"
        yield (
            path,
            (
                f"secret file {written} is {what} by {who} "
                f"(mode {stat.S_IMODE(mode):04o}) — chmod 600 {written}"
            ),
        )
