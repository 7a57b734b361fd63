"""Checks of the files the topology names: they exist and secrets are not world-readable."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

from orchestrator.config.model import SecretRef, Topology
from orchestrator.config.problems import FieldPath

Finding = tuple[FieldPath, str]


def check_files(topo: Topology) -> list[Finding]:
    findings: list[Finding] = []
    for path, ref in _secret_refs(topo):
        if ref.file is not None:
            findings.extend(_secret_file(topo.resolve(ref.file), ref.file, (*path, "file")))
    for z_index, zone in enumerate(topo.dns.zones):
        if zone.tsig is not None and zone.tsig.key_file is not None:
            findings.extend(
                _secret_file(
                    topo.resolve(zone.tsig.key_file),
                    zone.tsig.key_file,
                    ("dns", "zones", z_index, "tsig", "key_file"),
                )
            )
    findings.extend(_plain_file(topo, topo.ansible.inventory, ("ansible", "inventory")))
    if topo.ldap is not None and topo.ldap.ca_file:
        findings.extend(_plain_file(topo, topo.ldap.ca_file, ("ldap", "ca_file")))
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
    if not topo.resolve(relative).is_file():
        yield path, f"file {relative} does not exist (relative to the topology file) — fix the path"


def _secret_file(resolved: Path, written: str, path: FieldPath) -> Iterator[Finding]:
    try:
        mode = resolved.stat().st_mode
    except FileNotFoundError:
        yield path, f"file {written} does not exist (relative to the topology file) — fix the path"
        return
    except PermissionError:
        yield path, f"file {written} cannot be read — give the sitectl user read access"
        return
    if mode & (stat.S_IROTH | stat.S_IWOTH):
        yield (
            path,
            (
                f"secret file {written} is readable or writable by everyone "
                f"(mode {stat.S_IMODE(mode):04o}) — chmod 600 {written}"
            ),
        )
