"""The controller's part of the site ticket on a fake store: only the holder's site
renews, each renewal feeds the callbacks (where a dead-man agent is fed), a missing ticket
is created by the active site's controller only, and /metrics shows holder and expiry.
Each decision is one logged sentence, said once per change."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from orchestrator.config import Topology, load_topology
from orchestrator.controller.http import Board, Metrics
from orchestrator.controller.ticketing import TicketKeeper
from orchestrator.coordination.ticket import Ticket, granted
from orchestrator.errors import Unavailable

EXAMPLE = Path(__file__).resolve().parents[2] / "inventories" / "example-zimbra" / "topology.yaml"
NOW = 1_800_000_000.0


@dataclass
class FakeStore:
    ticket: Ticket | None = None
    down: bool = False
    created: list[str] = field(default_factory=list)

    def read(self) -> tuple[Ticket, int] | None:
        if self.down:
            raise Unavailable("reading the site ticket: ZooKeeper unreachable (ConnectionLoss)")
        return (self.ticket, 3) if self.ticket else None

    def renew_read(self, found: tuple[Ticket, int], site: str, now: float) -> Ticket | None:
        ticket, _ = found
        if not ticket.renewable_by(site):
            return None
        self.ticket = ticket.renewed(now)
        return self.ticket

    def bootstrap(self, site: str, now: float, ttl: float) -> Ticket | None:
        if self.ticket is not None:
            return None
        self.created.append(site)
        self.ticket = granted(site, 0, now, ttl)
        return self.ticket


@pytest.fixture(scope="module")
def topo() -> Topology:
    return load_topology(EXAMPLE)


def _keeper(topo: Topology, site: str, store: FakeStore) -> TicketKeeper:
    return TicketKeeper(topo, site, store, Metrics(site), Board(), clock=lambda: NOW)  # type: ignore[arg-type]


def _sentences(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "sitectl.controller"]


def test_the_holders_controller_renews_and_feeds_every_callback(topo, caplog) -> None:
    caplog.set_level(logging.INFO)
    store = FakeStore(granted("dc1", 4, NOW - 5, 14.0))
    keeper = _keeper(topo, "dc1", store)
    fed: list[Ticket] = []
    keeper.on_renewal.append(fed.append)
    assert keeper.cycle("dc1", connected=True) and keeper.cycle("dc1", connected=True)
    assert [t.renewed_at for t in fed] == [NOW, NOW]
    assert _sentences(caplog) == ["dc1 holds the site ticket and renews it every cycle"]
    text = keeper.metrics.render().decode()
    assert 'sitectl_ticket_holder{site="dc1"} 1.0' in text
    assert 'sitectl_ticket_holder{site="dc2"} 0.0' in text
    assert "sitectl_ticket_expiry_seconds 14.0" in text
    assert "sitectl_ticket_renewals_total 2.0" in text
    assert keeper.board.read()["ticket"]["expires_at"] == NOW + 14


@pytest.mark.parametrize(
    ("site", "ticket", "connected", "down", "says"),
    [
        (
            "dc2",
            granted("dc1", 4, NOW, 14.0),
            True,
            False,
            "dc2 does not hold the site ticket (dc1 does)",
        ),
        (
            "dc1",
            granted("dc1", 4, NOW, 14.0).revoked(NOW),
            True,
            False,
            "dc1's site ticket was revoked by a failover: no longer renewing it",
        ),
        (
            "dc1",
            None,
            False,
            False,
            "dc1 cannot renew or read the site ticket: no ZooKeeper session",
        ),
        (
            "dc1",
            granted("dc1", 4, NOW, 14.0),
            True,
            True,
            "dc1 could not renew the site ticket: reading the site ticket: ZooKeeper unreachable",
        ),
        ("dc2", None, True, False, "no site ticket recorded yet: dc2 is not the active site"),
    ],
)
def test_no_renewal_says_why_in_one_sentence(
    topo, caplog, site, ticket, connected, down, says
) -> None:
    caplog.set_level(logging.INFO)
    store = FakeStore(ticket, down=down)
    keeper = _keeper(topo, site, store)
    fed: list[Ticket] = []
    keeper.on_renewal.append(fed.append)
    assert not keeper.cycle("dc1", connected=connected)
    assert not fed and store.created == []
    (said,) = _sentences(caplog)
    assert said.startswith(says)


def test_the_active_sites_controller_creates_a_missing_ticket_and_says_so(topo, caplog) -> None:
    caplog.set_level(logging.INFO)
    store = FakeStore()
    keeper = _keeper(topo, "dc1", store)
    assert keeper.cycle("dc1", connected=True)
    assert store.created == ["dc1"] and store.ticket is not None
    assert store.ticket.ttl == topo.ticket_ttl
    assert _sentences(caplog)[0] == (
        "no site ticket existed (a cluster set up before tickets): created it for the "
        "active site dc1 at epoch 0"
    )
