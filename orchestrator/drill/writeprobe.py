"""The write-probe loop: a client that keeps sending mail while the service moves.

Each try asks DNS where the service is (the authoritative servers of one of the
service's records, as a client after its cache expires would), then sends a numbered
message there over SMTP, with TLS as the topology's SMTP probe says. Every answer is an
`Attempt`; the accepted ones at the old site also become canaries, because they are the
last writes the old site took. The RTO is read from these attempts by `measure.rto`.
"""

from __future__ import annotations

import threading
import time

import dns.message
import dns.query
import dns.rdatatype

from orchestrator.config.model import DnsRecord, DnsZone, Topology
from orchestrator.drill import canaries
from orchestrator.drill.model import Attempt, Canary
from orchestrator.errors import Unavailable

INTERVAL_S = 0.5
TIMEOUT_S = 2.0


class Resolver:
    """The site an A record points at, asked of the zone's authoritative servers."""

    def __init__(self, topo: Topology) -> None:
        self.zone, self.record = _service_record(topo)
        self._sites = {value: site for site, value in self.record.values.items()}

    @property
    def name(self) -> str:
        return self.zone.fqdn(self.record)

    def resolve(self) -> tuple[str | None, str]:
        """(site, address); site None when no server answered or the value is unknown."""
        query = dns.message.make_query(self.name, dns.rdatatype.A)
        for server in self.zone.verify_servers:
            try:
                reply = dns.query.udp(query, server.address, port=server.port, timeout=TIMEOUT_S)
            except (OSError, dns.exception.DNSException):
                continue
            for rrset in reply.answer:
                for item in rrset:
                    address = getattr(item, "address", "")
                    return self._sites.get(address), address
        return None, ""


def _service_record(topo: Topology) -> tuple[DnsZone, DnsRecord]:
    # External first: the drill should see what the service's clients see.
    zones = sorted(topo.dns.zones, key=lambda z: z.scope != "external")
    for zone in zones:
        for record in zone.records:
            if record.type == "A":
                return zone, record
    raise Unavailable("no A record in the topology's DNS zones for the write probe to follow")


class WriteProbe:
    """Run the loop on a thread between `start()` and `stop()`."""

    def __init__(
        self, topo: Topology, drill_id: str, leg: str, interval: float = INTERVAL_S
    ) -> None:
        self.topo = topo
        self.interval = interval
        self.resolver = Resolver(topo)
        self.port = canaries.smtp_port(topo)
        self.recipient = canaries.mail_endpoint(topo, topo.datacenters()[0]).recipient
        self.drill_id, self.leg = drill_id, leg
        self.attempts: list[Attempt] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="drill write probe", daemon=True)

    def start(self) -> WriteProbe:
        self._thread.start()
        return self

    def accepted_at(self, site: str, after: float = 0.0) -> bool:
        return any(a.accepted and a.site == site and a.at > after for a in list(self.attempts))

    def stop(self) -> list[Attempt]:
        self._stop.set()
        self._thread.join(TIMEOUT_S * 3 + self.interval)
        return list(self.attempts)

    def canaries(self) -> list[Canary]:
        accepted = [a for a in self.attempts if a.accepted and a.site]
        return [Canary("probe", a.key, a.site or "", a.at) for a in accepted]

    def _run(self) -> None:
        number = 0
        while not self._stop.is_set():
            number += 1
            self.attempts.append(self._try(number))
            self._stop.wait(self.interval)

    def _try(self, number: int) -> Attempt:
        site, address = self.resolver.resolve()
        if not address:
            return Attempt(time.time(), None, "", False, f"no answer for {self.resolver.name}")
        title = canaries.subject(self.drill_id, f"{self.leg} probe {number:05d}")
        try:
            tls = canaries.smtp_tls_at(self.topo, address)
            at = canaries.send(address, self.port, self.recipient, title, TIMEOUT_S, tls)
        except Unavailable as exc:
            return Attempt(time.time(), site, address, False, str(exc)[:160])
        return Attempt(at, site, address, True, key=title)
