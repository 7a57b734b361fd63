"""Which servers take a zone's signed updates now, against a real BIND pair (primary and
secondary) and a blackhole that never answers, standing for a site that is gone."""

from __future__ import annotations

import threading
from types import SimpleNamespace

from orchestrator.adapters.dns.primary import accepting, first_accepting
from orchestrator.config.model import DnsRecord, DnsServer, DnsZone, Tsig
from orchestrator.engine.steps.dns import accepting_now
from tests.adapters.bindlab import BindPair
from tests.adapters.conftest import Blackhole

# Long enough that waiting it out would stop the join below from seeing an answer.
DEAD_TIMEOUT_S = 600.0
ANSWER_WITHIN_S = 20.0


def _zone(bind: BindPair, servers: tuple[DnsServer, ...]) -> DnsZone:
    return DnsZone(
        name="alpha.test.",
        scope="internal",
        provider="rfc2136",
        update_servers=servers,
        verify_servers=servers,
        tsig=Tsig(key_file=str(bind.ddns_key_file)),
        records=(DnsRecord(name="mail", values={"dc1": "192.0.2.1", "dc2": "192.0.2.2"}),),
    )


def _within(call, seconds: float):
    """`call()`'s result, or AssertionError if it has none after `seconds`."""
    result: list[object] = []
    worker = threading.Thread(target=lambda: result.append(call()), daemon=True)
    worker.start()
    worker.join(seconds)
    assert result, f"no answer within {seconds:g} s: it waited for the dead server"
    return result[0]


def test_the_primary_is_found_without_waiting_for_a_dead_server_after_it(
    bind: BindPair, blackhole: Blackhole, tmp_path
) -> None:
    servers = (bind.primary, blackhole.server)
    zone = _zone(bind, servers)
    found = _within(
        lambda: first_accepting(zone, servers, tmp_path, timeout=DEAD_TIMEOUT_S), ANSWER_WITHIN_S
    )
    assert found == (bind.primary, [])


def test_servers_before_the_primary_are_named_with_why_they_do_not_take_updates(
    bind: BindPair, blackhole: Blackhole, tmp_path
) -> None:
    # The secondary refuses; the dead server is waited for (it comes first) up to its
    # timeout; the primary after them is the answer.
    servers = (blackhole.server, bind.secondary, bind.primary)
    primary, refusals = first_accepting(_zone(bind, servers), servers, tmp_path, timeout=0.5)
    assert primary == bind.primary
    assert [r.split(":")[0] for r in refusals] == [blackhole.server.address, bind.secondary.address]
    assert "no answer within the timeout" in refusals[0]
    assert "REFUSED" in refusals[1] or "refused" in refusals[1]


def test_no_server_takes_updates(bind: BindPair, blackhole: Blackhole, tmp_path) -> None:
    servers = (bind.secondary, blackhole.server)
    primary, refusals = first_accepting(_zone(bind, servers), servers, tmp_path, timeout=0.5)
    assert primary is None
    assert len(refusals) == 2
    assert first_accepting(_zone(bind, servers), (), tmp_path) == (None, [])


def test_every_server_is_asked_and_all_that_accept_are_named(
    bind: BindPair, blackhole: Blackhole, tmp_path
) -> None:
    servers = (blackhole.server, bind.primary, bind.secondary)
    found = accepting(_zone(bind, servers), servers, tmp_path, timeout=0.5)
    assert found.accepted == [bind.primary]
    assert len(found.refusals) == 2


def test_a_server_that_says_nothing_is_told_from_one_that_refuses(
    bind: BindPair, blackhole: Blackhole, tmp_path
) -> None:
    # Health attributes a zone without a primary to where a server said nothing (the
    # primary lost with its site), not to a secondary that answered REFUSED.
    servers = (bind.secondary, blackhole.server)
    found = accepting(_zone(bind, servers), servers, tmp_path, timeout=0.5)
    assert (found.accepted, found.silent) == ([], [blackhole.server])
    assert found.declined == [bind.secondary]
    assert len(found.refusals) == 2


def test_a_secondary_refusing_is_said_plainly_when_asking_who_is_primary(
    bind: BindPair, tmp_path
) -> None:
    # A promotion or demotion step asks this before acting: the secondary's REFUSED is
    # the answer it expects, not a hint that the TSIG key is not granted.
    servers = (bind.primary, bind.secondary)
    logs: list[str] = []
    ctx = SimpleNamespace(topology=SimpleNamespace(base_dir=tmp_path), log=logs.append)
    primaries = accepting_now(ctx, _zone(bind, servers), [str(s) for s in servers])  # type: ignore[arg-type]
    assert primaries == [str(bind.primary)]
    assert logs == [f"alpha.test.: {bind.secondary} refuses updates, as a secondary does"]
