"""What a client needs to use the lab: endpoints and where the credentials are.

Credentials are given as file paths (all mode 0600), never inline, so `lab env --json`
can be logged or pasted without leaking a secret.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

from orchestrator.lab import (
    bind,
    hosts,
    layout,
    ldap,
    mail,
    netns,
    s3,
    shape,
    volumes,
    widemail,
    zookeeper,
)
from orchestrator.lab import state as lab_state
from orchestrator.lab.state import LabState, topology_path


def _mailbox_servers(state: LabState, site: str) -> dict[str, Any]:
    """A wide lab's mailbox servers at `site`: where each serves and keeps its data."""
    return {
        widemail.host_name(site, server): {
            "imap": f"{widemail.server_ip(site, server)}:{layout.IMAP_PORT}",
            "imaps": f"{widemail.server_ip(site, server)}:{layout.IMAPS_PORT}",
            "users": list(server.users),
            "store": str(widemail.store_root(state, site, server)),
            "index": str(widemail.index_root(state, site, server)),
        }
        for server in shape.servers(shape.recorded(state.resources))
    }


def describe(root: Path) -> dict[str, Any]:
    # Loaded for its recorded shape (an empty record, a single lab, when none is there).
    state = lab_state.load(root.absolute())
    key = lambda name: str(bind.key_path(state, name))  # noqa: E731 - a local shorthand
    return {
        "state_dir": str(state.root),
        "topology": str(topology_path(state.root)),
        "inventory": str(hosts.path(state.root)),
        "network": {
            "ops": layout.ops_ip(),
            "namespaces": {
                site: netns.namespace(state.root, site) for site in (*layout.SITES, netns.ROUTER)
            },
            "sites": {site: layout.network(site) for site in layout.SITES},
        },
        "python": sys.executable,
        "active_site": layout.ACTIVE_SITE,
        "shape": shape.recorded(state.resources),
        "sites": list(layout.SITES),
        "zookeeper": {"connect": zookeeper.connect_string()},
        "dns": {
            "servers": {
                site: {
                    "address": layout.service_ip(site),
                    "port": layout.DNS_PORT,
                    "rndc": {
                        "address": layout.service_ip(site),
                        "port": layout.RNDC_PORT,
                        "key_file": key(bind.rndc_key_name(site)),
                    },
                }
                for site in layout.SITES
            },
            "zones": {
                zone.name: {
                    "primary": zone.primary,
                    "secondaries": list(zone.secondaries),
                    "ddns_key_file": key(zone.ddns_key),
                    "record": f"{layout.MAIL_RECORD}.{zone.name}",
                }
                for zone in bind.ZONES
            },
            "xfer_key_file": key(bind.XFER_KEY),
        },
        "ldap": {
            "uris": {node.name: node.uri for node in layout.ldap_nodes()},
            "server_ids": {node.name: node.server_id for node in layout.ldap_nodes()},
            "suffix": layout.SUFFIX,
            "bind_dn": layout.ADMIN_DN,
            "password_file": str(ldap.password_file(state)),
            "ca_file": str(state.pki / "ca.crt"),
            "starttls": True,
        },
        "s3": {
            "endpoints": {site: layout.s3_endpoint(site) for site in layout.DATACENTERS},
            "bucket": s3.BUCKET,
            "region": s3.REGION,
            "access_key_file": str(s3.access_key_file(state)),
            "secret_key_file": str(s3.secret_key_file(state)),
        },
        "volumes": {
            # The first relationship (the only one in a single lab): the lab's direction.
            "mirror": volumes.relationships(state)[0].name,
            "mirror_config": str(volumes.first_config_path(state)),
            "pools": {site: str(volumes.pool(state, site)) for site in layout.DATACENTERS},
            "subvolume": volumes.relationships(state)[0].subvolume,
            "mirrors": {
                rel.name: {
                    "mirror_config": str(volumes.config_path(state, rel.name)),
                    "subvolume": rel.subvolume,
                    "mount_points": {
                        site: str(rel.mount_point(state, site)) for site in layout.DATACENTERS
                    },
                }
                for rel in volumes.relationships(state)
            },
        },
        "mail": {
            site: {
                "smtp": f"{layout.service_ip(site)}:{layout.SMTP_PORT}",
                "smtps": f"{layout.service_ip(site)}:{layout.SMTPS_PORT}",
                "imap": f"{layout.service_ip(site)}:{layout.IMAP_PORT}",
                "imaps": f"{layout.service_ip(site)}:{layout.IMAPS_PORT}",
                "volume": str(volumes.mount_point(state, site)),
                "maildir": str(mail.mail_root(state, site) / layout.MAIL_USER / "Maildir"),
                "servers": _mailbox_servers(state, site),
            }
            for site in layout.DATACENTERS
        }
        | {
            "user": mail.mail_address(),
            "login": layout.MAIL_USER,
            "password_file": str(mail.password_file(state)),
            # STARTTLS on smtp/imap, TLS from the first byte on smtps/imaps; IMAP takes
            # no login before TLS. The certificates name each site's address.
            "ca_file": str(state.pki / "ca.crt"),
        },
    }


def shell_exports(root: Path) -> str:
    info = describe(root)
    lines = {
        "SITECTL_CONFIG": info["topology"],
        "SITECTL_LAB_DIR": info["state_dir"],
        "ANSIBLE_INVENTORY": info["inventory"],
    }
    return "\n".join(f"export {name}={shlex.quote(value)}" for name, value in lines.items())
