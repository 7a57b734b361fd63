"""The lab's fixed address and port map, in one place.

Every lab module takes addresses from here, so the map in the package docstring, the
rendered configs, `lab env` and the generated topology cannot disagree.

Each site is a network namespace with its own /24 in 198.18.0.0/15 (RFC 2544's
benchmark range: plainly ours, routed nowhere else); the WAN router holds `.254` in every
site's network and in the operator's ("ops", 198.18.0.0/24, where `lab up` runs).
"""

from __future__ import annotations

from dataclasses import dataclass

DATACENTERS: tuple[str, ...] = ("dc1", "dc2")
SITES: tuple[str, ...] = (*DATACENTERS, "witness")
ACTIVE_SITE = "dc1"  # where the application runs right after `lab up`

_SITE_OCTET = {"dc1": 1, "dc2": 2, "witness": 3}

NETWORK_PREFIX = "198.18"
WAN_RANGE = "198.18.0.0/15"  # every site and ops route this range via the router, nothing else
OPS = "ops"  # the operator's network: the namespace `lab up` runs in
OPS_OCTET = 0
OPS_HOST = 1  # the operator's address in the ops network
ROUTER_HOST = 254  # the router's address in every network
SSH_PORT = 22

ZK_CLIENT_PORT = 2181
# TLS (sitectl's sessions); the plain port stays for the lab's own four-letter words.
ZK_SECURE_PORT = 2281
ZK_PEER_PORT = 2888
ZK_ELECTION_PORT = 3888
DNS_PORT = 53
RNDC_PORT = 953
LDAP_PORT = 389
LDAP_HOSTS = (11, 12)  # last octet of the two slapd providers in each datacenter
SMTP_PORT = 2525  # STARTTLS offered (a client sending mail may skip it; no login here)
IMAP_PORT = 1143  # STARTTLS required before any login
SMTPS_PORT = 4465  # TLS from the first byte (as 465)
IMAPS_PORT = 1993  # TLS from the first byte (as 993)
S3_HOST = 21  # last octet of each datacenter's S3 endpoint
S3_PORT = 9000

INTERNAL_ZONE = "lab.internal."
EXTERNAL_ZONE = "example.test."
MAIL_RECORD = "mail"  # mail.lab.internal. and mail.example.test.
RECORD_TTL = 30
SUFFIX = "dc=example,dc=test"
ADMIN_DN = f"cn=admin,{SUFFIX}"
MAIL_DOMAIN = "example.test"
MAIL_USER = "alice"


def check_site(site: str) -> str:
    """Return `site` if the lab has it; raise ValueError naming the valid ones otherwise."""
    if site not in _SITE_OCTET:
        raise ValueError(f"unknown site {site!r}: the lab's sites are {', '.join(SITES)}")
    return site


def site_ip(site: str, host: int = 1) -> str:
    """Address `host` in the site's /24, e.g. site_ip("dc2") == "198.18.2.1"."""
    return f"{NETWORK_PREFIX}.{_SITE_OCTET[check_site(site)]}.{host}"


def network(site_or_ops: str) -> str:
    """The /24 of a site or of ops, e.g. network("dc1") == "198.18.1.0/24"."""
    octet = OPS_OCTET if site_or_ops == OPS else _SITE_OCTET[check_site(site_or_ops)]
    return f"{NETWORK_PREFIX}.{octet}.0/24"


def router_ip(site_or_ops: str) -> str:
    """The router's address in a site's or in the ops network (each network's gateway)."""
    return network(site_or_ops).replace(".0/24", f".{ROUTER_HOST}")


def ops_ip() -> str:
    return f"{NETWORK_PREFIX}.{OPS_OCTET}.{OPS_HOST}"


def site_addresses(site: str, extra_hosts: tuple[int, ...] = ()) -> list[str]:
    """Every address a site's servers listen on; the first is the site's own (its
    outgoing connections leave from it, so the router can tell the sites apart).
    `extra_hosts`: a datacenter's further hosts in the lab's shape (its mailbox servers)."""
    hosts = [1, *LDAP_HOSTS] if site in DATACENTERS else [1]
    if site in DATACENTERS:
        hosts += [S3_HOST, *extra_hosts]
    return [site_ip(site, host) for host in hosts]


def site_of_address(address: str) -> str | None:
    """The site whose network holds `address` (None for ops or a foreign one)."""
    for site, octet in _SITE_OCTET.items():
        if address.startswith(f"{NETWORK_PREFIX}.{octet}."):
            return site
    return None


def service_ip(site: str) -> str:
    """The site's service address: ZooKeeper, DNS, SMTP and IMAP listen here."""
    return site_ip(site, 1)


def zk_myid(site: str) -> int:
    return _SITE_OCTET[check_site(site)]


@dataclass(frozen=True)
class LdapNode:
    site: str
    index: int  # 1 or 2 within the datacenter
    server_id: int  # unique across the four providers: dc1 → 1, 2; dc2 → 3, 4
    ip: str

    @property
    def name(self) -> str:
        return f"{self.site}-ldap{self.index}"

    @property
    def uri(self) -> str:
        return f"ldap://{self.ip}:{LDAP_PORT}"


def ldap_nodes() -> list[LdapNode]:
    nodes = []
    for dc_index, site in enumerate(DATACENTERS):
        for index, host in enumerate(LDAP_HOSTS, start=1):
            server_id = dc_index * len(LDAP_HOSTS) + index
            nodes.append(LdapNode(site, index, server_id, site_ip(site, host)))
    return nodes


def s3_endpoint(site: str) -> str:
    return f"http://{site_ip(site, S3_HOST)}:{S3_PORT}"
