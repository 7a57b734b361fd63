"""The lab's topology file, written by `lab up` into the state dir (`topology.yaml`).

Built as plain data from the lab layout and validated through the project's own loader
(`orchestrator.config.loader`) before it is written, so it cannot drift from the schema:
a lab that writes a topology `sitectl validate` rejects fails `lab up` instead.
Secrets are file references relative to the state dir; nothing secret is inlined.
"""

from __future__ import annotations

import os
import shlex
import shutil
from pathlib import Path
from typing import Any

import yaml

from orchestrator.lab import (
    bind,
    deadman,
    hosts,
    layout,
    ldap,
    mail,
    s3,
    shape,
    volumes,
    widemail,
    zookeeper,
)
from orchestrator.lab.environment import topology_path
from orchestrator.lab.state import LabState

# Roles of the application; each maps onto `orchestrator.lab.app --role`. Their probes
# speak TLS as a Zimbra site's would: IMAPS to the mailbox (the probe logs in), STARTTLS
# to the MTA, both verified against the lab CA.
APP_ROLES = {
    "mailbox": ("dovecot", {"kind": "imap", "port": layout.IMAPS_PORT, "tls": "imaps"}),
    "mta": ("postfix", {"kind": "smtp", "port": layout.SMTP_PORT, "tls": "starttls"}),
}


def _rel(state: LabState, path: Path) -> str:
    return os.path.relpath(path, state.root)


def _app_commands(role: str) -> dict[str, str]:
    # Jinja in the command: Ansible fills in the host's python, site and state dir from
    # the lab inventory's host vars.
    base = "{{ lab_app }} --role " + role
    # The start goes through the start gate, as a unit's ExecStartPre= would.
    start = "{{ lab_start_gate }} && " + f"{base} start"
    return {"start": start, "stop": f"{base} stop", "status": f"{base} status"}


def _dns_server(site: str) -> dict[str, Any]:
    return {"address": layout.service_ip(site), "port": layout.DNS_PORT, "site": site}


def _dovecot_home(state: LabState, site: str) -> Path:
    """The site's (first) Dovecot's directory: a wide lab's servers share one config."""
    servers = shape.servers(shape.recorded(state.resources))
    return state.site_dir(site, f"{servers[0].name}-dovecot" if servers else "dovecot")


def _parity(state: LabState) -> list[dict[str, Any]]:
    """Settings both datacenters' mail servers must hold alike, read the two ways an
    operator would: a command whose output is the value (postconf, as zmprov for Zimbra)
    and a key in a config file (Dovecot's)."""
    postconf = shutil.which("postconf") or "postconf"
    return [
        {
            "name": "postfix message_size_limit",
            "sites": {
                site: {
                    "command": shlex.join(
                        [
                            postconf,
                            "-c",
                            str(state.site_dir(site, "postfix")),
                            "-h",
                            "message_size_limit",
                        ]
                    )
                }
                for site in layout.DATACENTERS
            },
        },
        {
            "name": "dovecot auth_mechanisms",
            "sites": {
                site: {
                    "file": _rel(state, _dovecot_home(state, site) / "dovecot.conf"),
                    "key": "auth_mechanisms",
                }
                for site in layout.DATACENTERS
            },
        },
    ]


def _mailbox_hosts(state: LabState, site: str) -> list[dict[str, Any]]:
    """The site's mailbox hosts: one on the service address, or a wide lab's servers."""
    servers = shape.servers(shape.recorded(state.resources))
    if not servers:
        ip = layout.service_ip(site)
        return [{"name": f"{site}-mailbox", "site": site, "roles": ["mailbox"], "address": ip}]
    return [
        {
            "name": widemail.host_name(site, server),
            "site": site,
            "roles": ["mailbox"],
            "address": widemail.server_ip(site, server),
        }
        for server in servers
    ]


def _volumes(state: LabState) -> list[dict[str, Any]]:
    """Each mirrored volume; a wide lab's each mounted by its own mailbox server only."""
    pools = {site: volumes.pool(state, site) for site in layout.DATACENTERS}
    out = []
    for rel in volumes.relationships(state):
        volume: dict[str, Any] = {
            "name": "mailstore" if rel.server is None else rel.name,
            "driver": "btrfs",
            "role": "mailbox",
        }
        if rel.server is not None:
            volume["hosts"] = {site: f"{site}-{rel.server}" for site in layout.DATACENTERS}
        volume |= {
            # SCHEMA GAP: one mount point for all sites; in the lab each site's is under
            # <state>/<site>/ (both sites share one machine). dc1's is given here.
            "mount_point": str(rel.mount_point(state, layout.ACTIVE_SITE)),
            "subvolume": rel.subvolume,
            "mirror_config": _rel(state, volumes.config_path(state, rel.name)),
            "mirror": {"source": "dc1", "destination": "dc2"},
            "sites": {
                site: {"pool": str(path), "mount_point": str(rel.mount_point(state, site))}
                for site, path in pools.items()
            },
        }
        out.append(volume)
    return out


def _probe_user(state: LabState) -> dict[str, Any]:
    # A wide lab's probes log in on every mailbox server: an account each server has.
    user = shape.PROBE_USER if shape.servers(shape.recorded(state.resources)) else None
    user = user or layout.MAIL_USER
    return {
        "user": user,
        "password": {"file": _rel(state, mail.password_file(state, user))},
        "address": f"{user}@{layout.MAIL_DOMAIN}",
    }


def build(state: LabState) -> dict[str, Any]:
    members: list[dict[str, Any]] = []
    for site in layout.DATACENTERS:
        ip = layout.service_ip(site)
        members.append({"name": f"{site}-mta", "site": site, "roles": ["mta"], "address": ip})
        members += _mailbox_hosts(state, site)
        for node in (n for n in layout.ldap_nodes() if n.site == site):
            members.append({"name": node.name, "site": site, "roles": ["ldap"], "address": node.ip})
        members.append({"name": f"{site}-dns", "site": site, "roles": ["dns"], "address": ip})
    for host in members:
        # As the lab's inventory reaches them (`sitectl inventory` renders these).
        host["vars"] = {**hosts.ssh_vars(state), "lab_dir": str(state.root)}

    roles: dict[str, Any] = {
        # Each datacenter's named runs all the time; a failover may promote it.
        "dns": {
            "start_order": 0,
            "services": ["named"],
            "moves": False,
            "probes": [{"kind": "tcp", "port": layout.DNS_PORT}],
        },
        "ldap": {
            "start_order": 0,
            "services": ["slapd"],
            "moves": False,
            "probes": [{"kind": "tcp", "port": layout.LDAP_PORT}],
        },
    }
    ca_file = _rel(state, state.pki / "ca.crt")
    for order, (role, (service, probe)) in enumerate(APP_ROLES.items(), start=1):
        roles[role] = {
            "start_order": order,
            "services": [service],
            "commands": _app_commands(role),
            "probes": [{**probe, "ca_file": ca_file}],
        }

    zones = []
    for zone in bind.ZONES:
        zones.append(
            {
                "name": zone.name,
                "scope": "internal" if zone.name == layout.INTERNAL_ZONE else "external",
                "provider": "rfc2136",
                "update_servers": [_dns_server(zone.primary)],
                "verify_servers": [_dns_server(site) for site in zone.sites()],
                "tsig": {"key_file": _rel(state, bind.key_path(state, zone.ddns_key))},
                "records": [
                    {
                        "name": layout.MAIL_RECORD,
                        "type": "A",
                        "ttl": layout.RECORD_TTL,
                        "values": {site: layout.service_ip(site) for site in layout.DATACENTERS},
                    }
                ],
                # A zone whose primary lives in a datacenter is promoted on the other one
                # when that datacenter is lost (orchestrator.lab.dnsrole does the BIND part).
                "promote": {
                    site: {
                        "server": _dns_server(site),
                        "host": f"{site}-dns",
                        "promote_command": "{{ lab_dnsrole }} promote --zone " + zone.name,
                        "demote_command": (
                            "{{ lab_dnsrole }} demote --zone " + zone.name + " --primary {primary}"
                        ),
                    }
                    for site in layout.DATACENTERS
                    if zone.primary in layout.DATACENTERS and site in zone.sites()
                },
            }
        )

    s3_keys = {
        "access_key": {"file": _rel(state, s3.access_key_file(state))},
        "secret_key": {"file": _rel(state, s3.secret_key_file(state))},
    }
    return {
        "cluster": "sitectl-lab",
        # The audit log and Ansible artifacts of operations run on the lab stay in it.
        "local_state": "sitectl",
        "active_site": layout.ACTIVE_SITE,
        "sites": {
            "dc1": {"kind": "datacenter", "description": "lab datacenter 1 (198.18.1.0/24)"},
            "dc2": {"kind": "datacenter", "description": "lab datacenter 2 (198.18.2.0/24)"},
            "witness": {"kind": "witness", "description": "lab witness (198.18.3.0/24)"},
        },
        # No playbook_dir: the lab runs the playbooks installed with the sitectl that
        # started it, as an operator's topology does.
        "ansible": {"inventory": str(hosts.path(state.root))},
        "roles": roles,
        "application": {
            "name": "mail",
            "probe_user": _probe_user(state),
        },
        "hosts": members,
        "volumes": _volumes(state),
        "dns": {"zones": zones},
        "ldap": {
            "suffix": layout.SUFFIX,
            "bind_dn": layout.ADMIN_DN,
            "password": {"file": _rel(state, ldap.password_file(state))},
            "starttls": True,
            "ca_file": ca_file,
            "timeout": ldap.PROBE_TIMEOUT_S,
            "masters": [
                {"uri": node.uri, "server_id": node.server_id, "site": node.site}
                for node in layout.ldap_nodes()
            ],
        },
        "object_store": {
            # The role the lab's replication stand-in is configured with (see lab/s3.py).
            "replication_role": "arn:aws:iam::123456789012:role/sitectl-lab-replication",
            "endpoints": [
                # moto's server, the stand-in for an S3 store (none is packaged here), speaks
                # plain http; said explicitly.
                {
                    "site": site,
                    "url": layout.s3_endpoint(site),
                    "region": s3.REGION,
                    "insecure": True,
                    **s3_keys,
                }
                for site in layout.DATACENTERS
            ],
            "buckets": [{"name": s3.BUCKET, "versioned": True, "replicated": True}],
        },
        "parity": _parity(state),
        "deadman": {
            "port": deadman.PORT,
            "key": {"file": _rel(state, deadman.key_file(state))},
            "dns_fence_command": "{{ lab_dnsrole }} fence --zone {zone} --primary {primary}",
            "dns_restore_command": "{{ lab_dnsrole }} restore --zone {zone}",
        },
        "zookeeper": {
            "hosts": [
                {"address": f"{layout.service_ip(site)}:{layout.ZK_SECURE_PORT}", "site": site}
                for site in layout.SITES
            ],
            "chroot": "/sitectl/lab",
            # tickTime 500 ms bounds sessions to 1-10 s; 4 s notices a lost site quickly.
            "session_timeout": "4s",
            "auth": {"credentials": {"file": _rel(state, zookeeper.digest_file(state))}},
            "tls": {"ca_file": _rel(state, zookeeper.ca_cert(state))},
            "controller_ids": zookeeper.controller_ids(state),
        },
        "policy": {
            "rpo_limits": {"volume": "30s", "ldap": "10s", "object_store": "60s"},
            "probe_interval": "1s",
            "consecutive_failures": 3,
            "automatic_promotion": False,
            "block_period": "5m",
            "step_timeout": "60s",
            # The product's default. An old site's stop over SSH (Ansible's module, the
            # application's own stop) took over 5 s on a busy 2-core machine, and a stop
            # that times out turns a reachable site into one whose ticket must be waited
            # out. A site already down when the operation is planned is skipped at once.
            "unreachable_timeout": "10s",
            # Past what a ZooKeeper leader election costs the active site's controller
            # here (up to 5 s between renewals when the leader's site is cut off): a
            # leader lost elsewhere must not fence a healthy active site. The ticket
            # outlives it by the fence's own duration (about 1.5 s) and a margin, so the
            # old site is fenced before a failover's wait lets the new one write.
            "fence_after": "8s",
            "ticket_ttl": "10s",
            "clock_drift": "1s",
            # Lab drills measured an RTO of 22-31 s on a shared 2-core machine: 2 min leaves
            # room for a busy CI host and still fails a move that hangs. A switchover loses
            # nothing, so any lost write fails the drill.
            "drill_targets": {"rto": "2m", "rpo": "0s"},
        },
    }


HEADER = (
    "# Topology of the sitectl lab, written by `sitectl lab up` (do not edit: the next\n"
    "# fresh `up` rewrites it). Paths of secrets are relative to this file.\n"
)


def write(state: LabState) -> Path:
    """Validate the lab's topology with the project's loader, then write it."""
    # Here, not at the top: the loader's pydantic models are only needed by `lab up`.
    from orchestrator.config.loader import validate_text

    path = topology_path(state.root)
    text = HEADER + yaml.safe_dump(build(state), sort_keys=False)
    # Raises InvalidTopology (every problem, one per line) if the lab and schema disagree.
    validate_text(text, str(path), base_dir=state.root)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    # Whatever the umask: sitectl refuses a topology anyone may write (config/loader.py).
    path.chmod(0o644)
    return path
