"""Rules that relate two parts of the topology: pure, no filesystem, no network.

Each rule returns (field path, "what is wrong — how to fix it") pairs; the loader turns
paths into line numbers.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Iterator
from urllib.parse import urlsplit

from orchestrator.config.model import Topology
from orchestrator.config.problems import FieldPath
from orchestrator.config.weak import WEAK_TSIG

Finding = tuple[FieldPath, str]
_DIGEST_ID = re.compile(r"^[^:\s]+:[A-Za-z0-9+/]{27}=$")


def check_references(topo: Topology) -> list[Finding]:
    findings: list[Finding] = []
    for rule in (
        _sites,
        _hosts,
        _roles,
        _probes,
        _volumes,
        _dns,
        _ldap,
        _object_store,
        _zookeeper,
        _zookeeper_security,
        _weak_options,
        _ticket,
        _parity,
        _custom_steps,
    ):
        findings.extend(rule(topo))
    return findings


def _site_exists(topo: Topology, site: str, path: FieldPath) -> Iterator[Finding]:
    if site not in topo.sites:
        known = ", ".join(topo.sites)
        yield path, f"site {site!r} is not defined — use one of: {known}"


def _datacenter(topo: Topology, site: str, path: FieldPath, what: str) -> Iterator[Finding]:
    if site not in topo.sites:
        yield from _site_exists(topo, site, path)
    elif topo.sites[site].kind != "datacenter":
        yield (
            path,
            (
                f"{what} is the witness site {site!r}, which only votes — "
                f"use a datacenter: {', '.join(topo.datacenters())}"
            ),
        )


def _sites(topo: Topology) -> Iterator[Finding]:
    dcs = topo.datacenters()
    if len(dcs) != 2:
        yield (
            ("sites",),
            (
                f"{len(dcs)} datacenter(s) defined — sitectl moves a service between exactly "
                "two sites of kind datacenter"
            ),
        )
    witnesses = [n for n, s in topo.sites.items() if s.kind == "witness"]
    if len(witnesses) > 1:
        yield ("sites",), "more than one witness — keep one witness site"
    yield from _datacenter(topo, topo.active_site, ("active_site",), "the active site")


def _hosts(topo: Topology) -> Iterator[Finding]:
    names = Counter(h.name for h in topo.hosts)
    for index, host in enumerate(topo.hosts):
        yield from _site_exists(topo, host.site, ("hosts", index, "site"))
        if names[host.name] > 1:
            yield ("hosts", index, "name"), f"host {host.name!r} is listed twice — rename one"
        for r_index, role in enumerate(host.roles):
            if role not in topo.roles:
                yield (
                    ("hosts", index, "roles", r_index),
                    (
                        f"role {role!r} is not defined — add it under roles: or use one of: "
                        f"{', '.join(topo.roles)}"
                    ),
                )


def _roles(topo: Topology) -> Iterator[Finding]:
    for name, role in topo.roles.items():
        if not role.moves:
            continue
        for dc in topo.datacenters():
            if not topo.hosts_of(dc, name):
                yield (
                    ("roles", name),
                    (
                        f"role {name!r} has no host in datacenter {dc!r} — the service cannot "
                        f"start there after a failover; add a host with this role to {dc}"
                    ),
                )


# Ports the IANA gives to TLS from the first byte: a probe there must say so.
IMPLICIT_TLS_PORTS = {"imap": (993, "imaps"), "smtp": (465, "smtps")}


def _probes(topo: Topology) -> Iterator[Finding]:
    """No probe sends the probe user's password in clear unless it says it may; none
    speaks plain text to a port that expects a TLS handshake (it could never pass)."""
    user = topo.application.probe_user
    for name, role in topo.roles.items():
        for index, probe in enumerate(role.probes):
            base: FieldPath = ("roles", name, "probes", index)
            implicit = IMPLICIT_TLS_PORTS.get(probe.kind)
            if implicit and probe.port == implicit[0] and probe.tls != implicit[1]:
                spoken = "STARTTLS" if probe.tls else "plain text"
                yield (
                    (*base, "tls"),
                    (
                        f"port {probe.port} is {implicit[1].upper()}, TLS from the first byte, "
                        f"and this {probe.kind} probe speaks {spoken} to it (it can never "
                        f"pass) — set tls: {implicit[1]}"
                    ),
                )
            elif user and probe.sends_login and probe.tls is None and not probe.insecure:
                yield (
                    (*base, "tls"),
                    (
                        f"this {probe.kind} probe logs in as {user.user!r} over clear text: "
                        "the probe user's password would cross the network readable by "
                        "anyone on the path — use tls: imaps/starttls with a ca_file, or set "
                        "insecure: true on this probe if you accept sending it in clear"
                    ),
                )


def _volumes(topo: Topology) -> Iterator[Finding]:
    names = Counter(v.name for v in topo.volumes)
    for index, vol in enumerate(topo.volumes):
        base: FieldPath = ("volumes", index)
        if names[vol.name] > 1:
            yield (*base, "name"), f"volume {vol.name!r} is defined twice — rename one"
        if vol.role not in topo.roles:
            yield (
                (*base, "role"),
                (f"role {vol.role!r} is not defined — use one of: {', '.join(topo.roles)}"),
            )
        yield from _datacenter(topo, vol.mirror.source, (*base, "mirror", "source"), "the source")
        yield from _datacenter(
            topo, vol.mirror.destination, (*base, "mirror", "destination"), "the destination"
        )
        if vol.mirror.source == vol.mirror.destination:
            yield (
                (*base, "mirror"),
                "source and destination are the same site — mirror to the other datacenter",
            )
        if vol.mirror.source != topo.active_site and vol.mirror.source in topo.sites:
            yield (
                (*base, "mirror", "source"),
                (
                    f"the mirror source {vol.mirror.source!r} is not the active site "
                    f"{topo.active_site!r} — the active site's volume must be the source"
                ),
            )
        sites = getattr(vol, "sites", None)
        if sites is not None:
            for site in sites:
                yield from _datacenter(topo, site, (*base, "sites", site), "a volume site")
            for site in (vol.mirror.source, vol.mirror.destination):
                if site in topo.sites and site not in sites:
                    yield (*base, "sites"), f"no settings for site {site!r} — add sites.{site}"


def _dns(topo: Topology) -> Iterator[Finding]:
    zone_names = Counter(z.name for z in topo.dns.zones)
    for z_index, zone in enumerate(topo.dns.zones):
        base: FieldPath = ("dns", "zones", z_index)
        if zone_names[zone.name] > 1:
            yield (*base, "name"), f"zone {zone.name!r} is listed twice — merge them"
        for site, promotion in zone.promote.items():
            where = (*base, "promote", site)
            yield from _datacenter(topo, site, where, "a promotion site")
            host = next((h for h in topo.hosts if h.name == promotion.host), None)
            if host is None:
                yield (
                    (*where, "host"),
                    (
                        f"host {promotion.host!r} is not in hosts — name the host that runs "
                        f"{zone.name}'s DNS server in {site}"
                    ),
                )
            elif host.site != site:
                yield (
                    (*where, "host"),
                    (
                        f"host {promotion.host!r} is in {host.site}, not {site} — "
                        f"name a host in {site}"
                    ),
                )
            if zone.provider != "rfc2136":
                yield (*where,), "promotion is for rfc2136 zones only — remove it"
        for field in ("update_servers", "verify_servers"):
            for index, server in enumerate(getattr(zone, field)):
                if server.site is not None:
                    yield from _site_exists(topo, server.site, (*base, field, index, "site"))
        for r_index, record in enumerate(zone.records):
            r_base = (*base, "records", r_index)
            for site in record.values:
                yield from _datacenter(topo, site, (*r_base, "values", site), "a record value")
            for dc in topo.datacenters():
                if dc not in record.values:
                    yield (
                        (*r_base, "values"),
                        (
                            f"no value for datacenter {dc!r} — add values.{dc}, the address "
                            f"{zone.fqdn(record)} takes when {dc} is active"
                        ),
                    )


def _ldap(topo: Topology) -> Iterator[Finding]:
    if topo.ldap is None:
        return
    ids = Counter(m.server_id for m in topo.ldap.masters)
    for index, master in enumerate(topo.ldap.masters):
        base: FieldPath = ("ldap", "masters", index)
        yield from _datacenter(topo, master.site, (*base, "site"), "an LDAP master's site")
        if ids[master.server_id] > 1:
            yield (
                (*base, "server_id"),
                (
                    f"server_id {master.server_id} is used twice — each multi-master needs its "
                    "own serverID, or their contextCSNs collide"
                ),
            )
    for dc in topo.datacenters():
        if not any(m.site == dc for m in topo.ldap.masters):
            yield ("ldap", "masters"), f"no LDAP master in datacenter {dc!r} — add one"


def _object_store(topo: Topology) -> Iterator[Finding]:
    if topo.object_store is None:
        return
    for index, endpoint in enumerate(topo.object_store.endpoints):
        yield from _datacenter(
            topo, endpoint.site, ("object_store", "endpoints", index, "site"), "an S3 endpoint"
        )


def _ticket(topo: Topology) -> Iterator[Finding]:
    policy, ttl, fence_after = topo.policy, topo.ticket_ttl, topo.fence_after
    session = topo.zookeeper.session_timeout
    if policy.ticket_ttl is not None and ttl <= session:
        yield (
            ("policy", "ticket_ttl"),
            f"{ttl:g} s is not above zookeeper.session_timeout ({session:g} s) — the ticket "
            f"must outlive its holder's session; set it to {session + 4:g}s or more",
        )
    if fence_after >= ttl:
        yield (
            ("policy", "fence_after"),
            f"{fence_after:g} s is not below the ticket's ttl ({ttl:g} s) — a site must fence "
            f"itself before its ticket may be granted elsewhere; set it below {ttl:g}s",
        )
    elif fence_after <= policy.probe_interval:
        yield (
            ("policy", "fence_after" if policy.fence_after is not None else "probe_interval"),
            f"fence_after ({fence_after:g} s) is not above probe_interval "
            f"({policy.probe_interval:g} s) — the ticket is renewed once per probe interval, "
            "so the site would fence itself between renewals; lengthen fence_after",
        )


def _zookeeper(topo: Topology) -> Iterator[Finding]:
    hosts = topo.zookeeper.hosts
    for index, host in enumerate(hosts):
        yield from _site_exists(topo, host.site, ("zookeeper", "hosts", index, "site"))
    if len(hosts) % 2 == 0:
        yield (
            ("zookeeper", "hosts"),
            (
                f"{len(hosts)} ZooKeeper hosts — an even ensemble tolerates no more failures "
                "than one node fewer; use 3 (one per site) or 5"
            ),
        )
    per_site = Counter(h.site for h in hosts)
    if len(hosts) >= 3 and per_site and max(per_site.values()) > len(hosts) // 2:
        site, count = per_site.most_common(1)[0]
        yield (
            ("zookeeper", "hosts"),
            (
                f"{count} of {len(hosts)} ZooKeeper hosts sit in {site!r} — losing that site "
                "loses the quorum; spread them so no site holds a majority"
            ),
        )


def _zookeeper_security(topo: Topology) -> Iterator[Finding]:
    zk = topo.zookeeper
    for site, digest_id in zk.controller_ids.items():
        yield from _site_exists(topo, site, ("zookeeper", "controller_ids", site))
        if not _DIGEST_ID.match(digest_id):
            yield (
                ("zookeeper", "controller_ids", site),
                f"{digest_id!r} is not a digest id (USER:BASE64 of 28 characters) — paste "
                "what `sitectl controller identity FILE` prints",
            )
    if zk.insecure:
        return
    if zk.auth is None:
        yield (
            ("zookeeper",),
            "no auth: anyone who reaches the ensemble could forge vantage reports (and so "
            "a failover), pause automation or delete the fencing epoch — add auth: "
            '{credentials: {file: keys/zookeeper}} (a "user:password" file, mode 0600), '
            "or set insecure: true on zookeeper if you accept that",
        )
    if zk.tls is None:
        yield (
            ("zookeeper",),
            "no tls: the digest credentials and every record would cross the network in "
            "clear — add tls: {ca_file: …} and point hosts at the ensemble's "
            "secureClientPort, or set insecure: true on zookeeper if you accept that",
        )
    missing = [site for site in topo.sites if site not in zk.controller_ids]
    if missing:
        yield (
            ("zookeeper", "controller_ids"),
            f"no controller identity for {', '.join(missing)}: any controller could then "
            "publish another site's vantage report (and so vote for a failover) — run "
            "`sitectl controller identity USER:PASSWORD-FILE` on each site's controller host "
            "and list the ids here, or set insecure: true on zookeeper if you accept that",
        )
    if zk.tls is not None and (zk.tls.cert_file is None) != (zk.tls.key_file is None):
        yield (
            ("zookeeper", "tls"),
            "cert_file and key_file go together — give both for a client certificate, or neither",
        )


def _weak_options(topo: Topology) -> Iterator[Finding]:
    for index, zone in enumerate(topo.dns.zones):
        tsig = zone.tsig
        weak = tsig is not None and tsig.key_file is None and tsig.algorithm in WEAK_TSIG
        if tsig is not None and weak and not tsig.insecure:
            yield ("dns", "zones", index, "tsig", "algorithm"), weak_tsig(tsig.algorithm)
    ldap = topo.ldap
    if ldap is not None:
        for index, master in enumerate(ldap.masters):
            starttls = ldap.starttls if master.starttls is None else master.starttls
            insecure = ldap.insecure if master.insecure is None else master.insecure
            if master.uri.lower().startswith("ldap://") and not starttls and not insecure:
                yield (
                    ("ldap", "masters", index, "uri"),
                    f"{master.uri} without StartTLS would send the bind password in clear — "
                    "set starttls: true (or use ldaps://), or set insecure: true on this "
                    "master if you accept that",
                )
    if topo.object_store is not None:
        for index, endpoint in enumerate(topo.object_store.endpoints):
            if endpoint.url.lower().startswith("http://") and not endpoint.insecure:
                yield (
                    ("object_store", "endpoints", index, "url"),
                    f"{endpoint.url} is plain http: signed requests and every object would "
                    "cross the network in clear — use https:// (with ca_file for a private "
                    "CA), or set insecure: true on this endpoint if you accept that",
                )

    for index, target in enumerate(topo.notifications.targets):
        if target.url is not None and not target.insecure and plain_http_elsewhere(target.url):
            yield (
                ("notifications", "targets", index, "url"),
                f"{target.url} is plain http to another host: the payload (and a bearer "
                "token) would cross the network in clear — use https://, or set insecure: "
                "true on this target if you accept that",
            )


def plain_http_elsewhere(url: str) -> bool:
    """An http:// URL whose host is not this machine's loopback (where nothing crosses a
    network)."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "http":
        return False
    host = parts.hostname or ""
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True


def weak_tsig(algorithm: str) -> str:
    return (
        f"TSIG algorithm {algorithm} is weak (RFC 8945 says not to use it) — generate a new "
        "key with `tsig-keygen -a hmac-sha256 NAME`, or set insecure: true on this tsig "
        "while you migrate"
    )


def _parity(topo: Topology) -> Iterator[Finding]:
    """A setting compares the two datacenters: each must say where it reads it."""
    for index, setting in enumerate(topo.parity):
        base: FieldPath = ("parity", index, "sites")
        for site in setting.sites:
            yield from _datacenter(topo, site, (*base, site), "a parity site")
        for site in topo.datacenters():
            if site not in setting.sites:
                yield base, f"no source for datacenter {site!r} — add sites.{site}"


def _custom_steps(topo: Topology) -> Iterator[Finding]:
    names = Counter(c.name for c in topo.custom_steps)
    dcs = topo.datacenters()
    for index, custom in enumerate(topo.custom_steps):
        base: FieldPath = ("custom_steps", index)
        if names[custom.name] > 1:
            yield (*base, "name"), f"custom step {custom.name!r} is listed twice — rename one"
        if custom.on != "sitectl" and custom.on not in topo.roles:
            yield (
                (*base, "on"),
                f"role {custom.on!r} is not defined — use sitectl (this machine) or one of: "
                f"{', '.join(topo.roles)}",
            )
        for d_index, direction in enumerate(custom.directions):
            ends = direction.split("->")
            if any(end not in dcs for end in ends) or ends[0] == ends[1]:
                yield (
                    (*base, "directions", d_index),
                    f"direction {direction!r} does not go from one datacenter to the other — "
                    f"write {dcs[0]}->{dcs[-1]} or {dcs[-1]}->{dcs[0]}",
                )
