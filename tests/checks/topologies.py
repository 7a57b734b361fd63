"""A small two-datacenter topology as plain data, for the pure tests (no servers)."""

from __future__ import annotations

import copy
from typing import Any

from orchestrator.config.model import Topology

BASE: dict[str, Any] = {
    "cluster": "checks-test",
    "active_site": "dc1",
    "sites": {
        "dc1": {"kind": "datacenter"},
        "dc2": {"kind": "datacenter"},
        "witness": {"kind": "witness"},
    },
    "ansible": {"inventory": "hosts.yml"},
    "hosts": [
        {"name": "dc1-mta", "site": "dc1", "roles": ["mta"], "address": "127.0.1.1"},
        {"name": "dc2-mta", "site": "dc2", "roles": ["mta"], "address": "127.0.2.1"},
    ],
    "roles": {
        "mta": {
            "start_order": 1,
            "services": ["postfix"],
            "probes": [{"kind": "smtp", "port": 2525}],
        }
    },
    "volumes": [
        {
            "name": "mailstore",
            "driver": "btrfs",
            "role": "mta",
            "mount_point": "/srv/mail",
            "mirror": {"source": "dc1", "destination": "dc2"},
            "mirror_config": "mirror.json",
            "sites": {"dc1": {"pool": "/pools/dc1"}, "dc2": {"pool": "/pools/dc2"}},
        }
    ],
    "dns": {
        "zones": [
            {
                "name": "lab.internal.",
                "scope": "internal",
                "provider": "rfc2136",
                "update_servers": ["127.0.1.1:53"],
                "verify_servers": ["127.0.1.1:53", "127.0.2.1:53"],
                "tsig": {"key_file": "ddns.key"},
                "records": [{"name": "mail", "values": {"dc1": "127.0.1.1", "dc2": "127.0.2.1"}}],
            }
        ]
    },
    "ldap": {
        "suffix": "dc=example,dc=test",
        "bind_dn": "cn=admin,dc=example,dc=test",
        "password": {"file": "ldap.password"},
        "timeout": 2,
        "masters": [
            {"uri": "ldap://127.0.1.11:389", "server_id": 1, "site": "dc1"},
            {"uri": "ldap://127.0.1.12:389", "server_id": 2, "site": "dc1"},
            {"uri": "ldap://127.0.2.11:389", "server_id": 3, "site": "dc2"},
            {"uri": "ldap://127.0.2.12:389", "server_id": 4, "site": "dc2"},
        ],
    },
    "object_store": {
        "endpoints": [
            {
                "site": s,
                "url": f"http://127.0.{n}.21:9000",
                "access_key": {"file": "ak"},
                "secret_key": {"file": "sk"},
            }
            for s, n in (("dc1", 1), ("dc2", 2))
        ],
        "buckets": [{"name": "mail-blobs"}],
    },
    "zookeeper": {
        "hosts": [
            {"address": f"127.0.{n}.1:2181", "site": s}
            for s, n in (("dc1", 1), ("dc2", 2), ("witness", 3))
        ]
    },
    "policy": {"rpo_limits": {"volume": 300, "ldap": 60, "object_store": 900}},
}


def topology(**changes: Any) -> Topology:
    """The base topology with top-level keys replaced."""
    data = copy.deepcopy(BASE)
    data.update(changes)
    return Topology.model_validate(data)
