"""BIND 9: three `named`, one per site, serving two zones.

- `lab.internal.` (internal): primary in dc1, secondary in dc2, so each datacenter
  serves it.
- `example.test.` (external): primary at the witness, standing in for the DNS provider
  outside both datacenters; secondaries in dc1 and dc2 receive NOTIFY/IXFR.

Both hold `mail.<zone>` A → the active site's service address (198.18.1.1 after up).
Updates need the zone's TSIG key (`<zone>-ddns`), transfers and NOTIFY the shared
`lab-xfer` key; each named has its own rndc key on <site ip>:953.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import dns.flags
import dns.message
import dns.query
import dns.rdatatype

from orchestrator.lab import layout
from orchestrator.lab.credentials import ensure_tsig_key
from orchestrator.lab.state import Component, LabState
from orchestrator.lab.templates import render

XFER_KEY = "lab-xfer"


@dataclass(frozen=True)
class Zone:
    name: str
    primary: str  # site
    secondaries: tuple[str, ...]

    @property
    def label(self) -> str:
        return self.name.rstrip(".").replace(".", "-")

    @property
    def ddns_key(self) -> str:
        return f"{self.label}-ddns"

    def sites(self) -> tuple[str, ...]:
        return (self.primary, *self.secondaries)


ZONES = (
    Zone(layout.INTERNAL_ZONE, primary="dc1", secondaries=("dc2",)),
    Zone(layout.EXTERNAL_ZONE, primary="witness", secondaries=("dc1", "dc2")),
)


def key_path(state: LabState, key_name: str) -> Path:
    return state.secrets / f"{key_name}.key"


def rndc_key_name(site: str) -> str:
    return f"rndc-{site}"


def ports(site: str) -> list[tuple[str, int, bool]]:
    ip = layout.service_ip(site)
    return [
        (ip, layout.DNS_PORT, False),
        (ip, layout.DNS_PORT, True),
        (ip, layout.RNDC_PORT, False),
    ]


def _zone_file(zone: Zone, site: str, home: Path) -> str:
    if zone.primary != site:
        return f"{zone.label}.secondary.db"
    path = home / f"{zone.label}.db"
    # Rendered once only: afterwards the zone belongs to named and its journal.
    if not path.exists():
        nameservers = [
            {"name": f"ns-{ns_site}.{zone.name}", "ip": layout.service_ip(ns_site)}
            for ns_site in zone.sites()
        ]
        render(
            "zone.db.j2",
            path,
            zone=zone.name,
            ttl=layout.RECORD_TTL,
            nameservers=nameservers,
            mail_record=layout.MAIL_RECORD,
            mail_ip=layout.service_ip(layout.ACTIVE_SITE),
        )
    return path.name


def prepare(state: LabState, programs: dict[str, str]) -> list[Component]:
    keygen = programs["tsig-keygen"]
    ensure_tsig_key(key_path(state, XFER_KEY), XFER_KEY, keygen)
    for zone in ZONES:
        ensure_tsig_key(key_path(state, zone.ddns_key), zone.ddns_key, keygen)
    comps = []
    for site in layout.SITES:
        home = state.site_dir(site, "named")
        home.mkdir(parents=True, exist_ok=True)
        rndc = rndc_key_name(site)
        ensure_tsig_key(key_path(state, rndc), rndc, keygen)
        zones = []
        for zone in ZONES:
            if site not in zone.sites():
                continue
            zones.append(
                {
                    "name": zone.name,
                    "primary": zone.primary == site,
                    "file": _zone_file(zone, site, home),
                    "ddns_key": zone.ddns_key,
                    "secondaries": [layout.service_ip(s) for s in zone.secondaries],
                    "primaries": [layout.service_ip(zone.primary)],
                }
            )
        keys = [key_path(state, k) for k in (XFER_KEY, rndc, *(z.ddns_key for z in ZONES))]
        conf = render(
            "named.conf.j2",
            home / "named.conf",
            site=site,
            home=home,
            ip=layout.service_ip(site),
            port=layout.DNS_PORT,
            rndc_port=layout.RNDC_PORT,
            rndc_key=rndc,
            xfer_key=XFER_KEY,
            keys=keys,
            zones=zones,
        )
        comps.append(
            Component(
                name=f"{site}-named",
                site=site,
                kind="named",
                address=f"{layout.service_ip(site)}:{layout.DNS_PORT}",
                # -g: foreground, log to stderr; -n 1: one worker thread is plenty here.
                argv=[programs["named"], "-g", "-n", "1", "-c", str(conf)],
                cwd=str(home),
                log=str(home / "named.log"),
            )
        )
    return comps


def served_zones(site: str) -> list[Zone]:
    return [z for z in ZONES if site in z.sites()]


def ready(comp: Component) -> bool:
    """The server answers authoritatively for every zone it serves (secondaries loaded)."""
    ip, port = comp.address.rsplit(":", 1)
    for zone in served_zones(comp.site):
        query = dns.message.make_query(zone.name, dns.rdatatype.SOA)
        answer = dns.query.udp(query, ip, port=int(port), timeout=1.0)
        if answer.rcode() != 0 or not answer.flags & dns.flags.AA or not answer.answer:
            return False
    return True
