"""Checks of the files the topology names: they exist and secrets are private (0600)."""

from __future__ import annotations

import stat
from collections.abc import Iterator

from orchestrator.config.model import SecretRef, Topology
from orchestrator.config.problems import FieldPath

Finding = tuple[FieldPath, str]


def check_files(topo: Topology) -> list[Finding]:
    findings: list[Finding] = []
    for path, ref in _secret_refs(topo):
        if ref.file is not None:
            findings.extend(_secret_file(topo, ref.file, (*path, "file")))
    for z_index, zone in enumerate(topo.dns.zones):
        if zone.tsig is not None and zone.tsig.key_file is not None:
            findings.extend(
                _secret_file(
                    topo,
                    zone.tsig.key_file,
                    ("dns", "zones", z_index, "tsig", "key_file"),
                )
            )
    findings.extend(_plain_file(topo, topo.ansible.inventory, ("ansible", "inventory")))
    if topo.ldap is not None and topo.ldap.ca_file:
        findings.extend(_plain_file(topo, topo.ldap.ca_file, ("ldap", "ca_file")))
    for name, role in topo.roles.items():
        for index, probe in enumerate(role.probes):
            if probe.ca_file:
                path = ("roles", name, "probes", index, "ca_file")
                findings.extend(_plain_file(topo, probe.ca_file, path))
    return findings


def _secret_refs(topo: Topology) -> Iterator[tuple[FieldPath, SecretRef]]:
    if topo.ldap is not None:
        yield ("ldap", "password"), topo.ldap.password
        for index, master in enumerate(topo.ldap.masters):
            if master.password is not None:
                yield ("ldap", "masters", index, "password"), master.password
    if topo.object_store is not None:
        for index, ep in enumerate(topo.object_store.endpoints):
            yield ("object_store", "endpoints", index, "access_key"), ep.access_key
            yield ("object_store", "endpoints", index, "secret_key"), ep.secret_key
    for index, zone in enumerate(topo.dns.zones):
        if zone.tsig is not None and zone.tsig.secret is not None:
            yield ("dns", "zones", index, "tsig", "secret"), zone.tsig.secret
    if topo.zookeeper.auth is not None:
        yield ("zookeeper", "auth", "credentials"), topo.zookeeper.auth.credentials
    if topo.application.probe_user is not None:
        yield ("application", "probe_user", "password"), topo.application.probe_user.password
    for index, vol in enumerate(topo.volumes):
        for site, settings in getattr(vol, "sites", {}).items():
            creds = getattr(settings, "credentials", None)
            if creds is not None:
                yield ("volumes", index, "sites", site, "credentials"), creds


def _plain_file(topo: Topology, relative: str, path: FieldPath) -> Iterator[Finding]:
    try:
        found = topo.resolve(relative).is_file()
    except (OSError, ValueError) as exc:  # a NUL byte, a name too long, no permission
        yield path, _unusable(relative, exc)
        return
    if not found:
        yield path, f"file {relative} does not exist (relative to the topology file) — fix the path"


def _unusable(written: str, exc: Exception) -> str:
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return f"file {written!r} cannot be checked ({reason}) — fix the path"


def _secret_file(topo: Topology, written: str, path: FieldPath) -> Iterator[Finding]:
    try:
        mode = topo.resolve(written).stat().st_mode
    except FileNotFoundError:
        yield path, f"file {written} does not exist (relative to the topology file) — fix the path"
        return
    except PermissionError:
        yield path, f"file {written} cannot be read — give the sitectl user read access"
        return
    except (OSError, ValueError) as exc:
        yield path, _unusable(written, exc)
        return
    # Secret files must be 0600, the rule the TSIG loader applies at run time
    # (adapters/secrets.is_private): a group bit shares the secret with a whole group.
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
