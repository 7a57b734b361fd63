"""OpenLDAP: four slapd multi-providers, two per datacenter.

dc1: 198.18.1.11 (serverID 1), 198.18.1.12 (2); dc2: 198.18.2.11 (3), 198.18.2.12 (4); all
on port 389 with StartTLS (certificates from the lab CA). Each pulls from the three
others with syncrepl refreshAndPersist over StartTLS, bound as the admin DN.

The directory is loaded once into dc1-ldap1 with slapadd; the others start empty and
get it by their first refresh, so every entry has a single origin (one entryUUID,
one CSN) as it would after a real migration.
"""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
from pathlib import Path

import ldap3

from orchestrator.lab import layout
from orchestrator.lab.credentials import ensure_password, ensure_server_cert
from orchestrator.lab.state import Component, LabState
from orchestrator.lab.templates import render

USERS = [
    {"uid": layout.MAIL_USER, "cn": "Alice Example", "sn": "Example"},
    {"uid": "bob", "cn": "Bob Example", "sn": "Example"},
    {"uid": "carol", "cn": "Carol Example", "sn": "Example"},
]
# A SIGSTOPped slapd still accepts TCP: never wait unbounded. An int: ldap3 packs
# receive_timeout into SO_RCVTIMEO with struct and rejects a float.
PROBE_TIMEOUT_S = 2


def password_file(state: LabState) -> Path:
    return state.secrets / "ldap-admin.password"


def ssha(password: str) -> str:
    """RFC 2307 {SSHA} hash, as slappasswd writes it (keeps the clear text out of configs)."""
    salt = os.urandom(8)
    digest = hashlib.sha1(password.encode() + salt).digest()
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


def ports() -> list[tuple[str, int]]:
    return [(node.ip, layout.LDAP_PORT) for node in layout.ldap_nodes()]


def prepare(state: LabState, programs: dict[str, str]) -> list[Component]:
    password = ensure_password(password_file(state))
    nodes = layout.ldap_nodes()
    comps = []
    for node in nodes:
        home = state.site_dir(node.site, f"ldap{node.index}")
        data = home / "data"
        fresh = not data.exists()
        data.mkdir(parents=True, exist_ok=True)
        cert, key = ensure_server_cert(state.pki, node.name, [node.ip], programs["openssl"])
        conf_path = home / "slapd.conf"
        # Keep the existing hash on a second `up`: a new salt would rewrite the file.
        admin_hash = _existing_rootpw(conf_path) or ssha(password)
        peers = [
            {"rid": node.server_id * 10 + peer.server_id, "uri": peer.uri}
            for peer in nodes
            if peer != node
        ]
        conf = render(
            "slapd.conf.j2",
            conf_path,
            mode=0o600,
            name=node.name,
            server_id=node.server_id,
            home=home,
            ca=state.pki / "ca.crt",
            cert=cert,
            key=key,
            suffix=layout.SUFFIX,
            admin_dn=layout.ADMIN_DN,
            admin_hash=admin_hash,
            admin_password=password,
            peers=peers,
        )
        if fresh and node.server_id == 1:
            ldif = render(
                "directory.ldif.j2",
                home / "directory.ldif",
                suffix=layout.SUFFIX,
                users=USERS,
                domain=layout.MAIL_DOMAIN,
            )
            subprocess.run(
                [programs["slapadd"], "-f", str(conf), "-S", "1", "-w", "-q", "-l", str(ldif)],
                check=True,
                capture_output=True,
            )
        comps.append(
            Component(
                name=node.name,
                site=node.site,
                kind="slapd",
                address=f"{node.ip}:{layout.LDAP_PORT}",
                # -d sync: stay in the foreground, log replication to stderr.
                argv=[programs["slapd"], "-d", "sync", "-h", f"{node.uri}/", "-f", str(conf)],
                cwd=str(home),
                log=str(home / "slapd.log"),
            )
        )
    return comps


def _existing_rootpw(conf: Path) -> str | None:
    if not conf.exists():
        return None
    for line in conf.read_text().splitlines():
        if line.startswith("rootpw "):
            return line.split(None, 1)[1]
    return None


def connect(uri: str, ca: Path, password: str) -> ldap3.Connection:
    """An admin connection over StartTLS with bounded timeouts."""
    # Here, not at the top: it imports every check (dns, boto, the topology's models),
    # which every `sitectl lab …` would pay for (lifecycle imports this module).
    from orchestrator.checks.ldap import open_with_starttls

    tls = ldap3.Tls(ca_certs_file=str(ca), validate=2)  # ssl.CERT_REQUIRED
    server = ldap3.Server(uri, tls=tls, connect_timeout=PROBE_TIMEOUT_S)
    conn = open_with_starttls(
        lambda: ldap3.Connection(
            server, user=layout.ADMIN_DN, password=password, receive_timeout=PROBE_TIMEOUT_S
        )
    )
    # ldap3 reports a refused bind as False, not as an exception: never carry on anonymous.
    if not conn.bind():
        conn.unbind()
        raise ldap3.core.exceptions.LDAPBindError(f"{uri}: bind as {layout.ADMIN_DN} refused")
    return conn


def ready(comp: Component, state: LabState) -> bool:
    """The node answers over StartTLS and holds the mail user (replicated or loaded)."""
    password = password_file(state).read_text().strip()
    conn = connect(f"ldap://{comp.address}", state.pki / "ca.crt", password)
    try:
        base = f"uid={layout.MAIL_USER},ou=people,{layout.SUFFIX}"
        return bool(conn.search(base, "(objectClass=inetOrgPerson)", search_scope=ldap3.BASE))
    finally:
        conn.unbind()
