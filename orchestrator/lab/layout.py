"""The lab's fixed address and port map, in one place.

Every lab module takes addresses from here, so the map in the package docstring, the
rendered configs, `lab env` and the generated topology cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

DATACENTERS: tuple[str, ...] = ("dc1", "dc2")
SITES: tuple[str, ...] = (*DATACENTERS, "witness")
ACTIVE_SITE = "dc1"  # where the application runs right after `lab up`

_SITE_OCTET = {"dc1": 1, "dc2": 2, "witness": 3}

ZK_CLIENT_PORT = 2181
ZK_PEER_PORT = 2888
ZK_ELECTION_PORT = 3888
DNS_PORT = 53
RNDC_PORT = 953
LDAP_PORT = 389
LDAP_HOSTS = (11, 12)  # last octet of the two slapd providers in each datacenter
SMTP_PORT = 2525
IMAP_PORT = 1143
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
    """Address `host` in the site's /24, e.g. site_ip("dc2") == "127.0.2.1"."""
    return f"127.0.{_SITE_OCTET[check_site(site)]}.{host}"


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
