"""The RFC 2136 provider and verify against a real BIND primary + secondary."""

from __future__ import annotations

import dns.message
import dns.query
import dns.rcode
import dns.update
import pytest

from orchestrator.adapters.dns import RecordChange, outcomes, soa_serials, verify
from orchestrator.adapters.dns.rfc2136 import KEYCHECK_LABEL
from orchestrator.config.model import DnsServer
from orchestrator.errors import Failed, Unavailable
from tests.adapters.bindlab import BLACKHOLE, BindPair

pytestmark = [pytest.mark.lab, pytest.mark.timeout(120)]


class FakeClock:
    """Monotonic clock moved only by the injected sleep: bounds without waiting."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _serials(bind: BindPair, zone: str) -> list[int | None]:
    return [s.serial for s in soa_serials(zone, bind.servers)]


def _settled(bind: BindPair, zone: str, changes) -> None:
    """Both servers hold `changes` (secondaries catch up by NOTIFY/IXFR)."""
    result = verify(zone, changes, bind.servers, timeout=10)
    assert result.ok, result.describe()


def test_apply_reaches_primary_and_secondary(bind: BindPair, provider) -> None:
    before = _serials(bind, "alpha.test.")
    changes = [
        RecordChange("mail.alpha.test.", "A", 60, "198.51.100.21"),
        RecordChange("smtp.alpha.test.", "A", 60, "198.51.100.11"),
    ]
    result = provider().apply(changes, tag="op-1/dns/alpha.test.")
    assert (result.server, result.records, result.messages) == (str(bind.primary), 2, 1)
    outcome = verify("alpha.test.", changes, bind.servers, timeout=10)
    assert outcome.ok, outcome.describe()
    assert outcome.describe() == "zone alpha.test.: all 2 server(s) answer the 2 new value(s)"
    _settled(
        bind,
        "alpha.test.",
        [RecordChange("_sitectl-op.alpha.test.", "TXT", 0, "op-1/dns/alpha.test.")],
    )
    after = _serials(bind, "alpha.test.")
    assert after[0] == after[1] and after[0] > before[0]


def test_applying_the_same_values_again_changes_nothing(bind: BindPair, provider) -> None:
    changes = [RecordChange("again.alpha.test.", "A", 60, "198.51.100.50")]
    provider().apply(changes)
    _settled(bind, "alpha.test.", changes)
    serials = _serials(bind, "alpha.test.")
    provider().apply(changes)
    assert _serials(bind, "alpha.test.") == serials


def test_every_record_type_the_topology_allows(bind: BindPair, provider) -> None:
    changes = [
        RecordChange("v6.beta.test.", "AAAA", 60, "2001:db8::21"),
        RecordChange("alias.beta.test.", "CNAME", 60, "mail.beta.test."),
        RecordChange("note.beta.test.", "TXT", 60, 'active site is "dc2"'),
    ]
    provider("beta.test.").apply(changes)
    _settled(bind, "beta.test.", changes)


def test_the_old_value_is_reported_until_the_bound(bind: BindPair, provider) -> None:
    provider().apply([RecordChange("stale.alpha.test.", "A", 60, "192.0.2.99")])
    _settled(bind, "alpha.test.", {"stale.alpha.test.": "192.0.2.99"})
    clock = FakeClock()
    result = verify(
        "alpha.test.",
        {"stale.alpha.test.": "198.51.100.99", "missing.alpha.test.": "198.51.100.98"},
        bind.servers,
        timeout=1.0,
        interval=0.25,
        clock=clock,
        sleep=clock.sleep,
    )
    assert not result.ok
    assert result.rounds == 5 and sum(clock.sleeps) == pytest.approx(1.0)
    assert result.disagreeing() == [str(bind.primary), str(bind.secondary)]
    said = {(m.server, m.name): m.answered for m in result.mismatches}
    assert said == {
        (str(bind.primary), "stale.alpha.test."): "192.0.2.99",
        (str(bind.secondary), "stale.alpha.test."): "192.0.2.99",
        (str(bind.primary), "missing.alpha.test."): "NXDOMAIN",
        (str(bind.secondary), "missing.alpha.test."): "NXDOMAIN",
    }


def test_a_wrong_secret_is_badsig_and_changes_nothing(
    bind: BindPair, provider, foreign_key
) -> None:
    wrong = provider(key_file=foreign_key("sitectl-ddns"))  # same name, other secret
    with pytest.raises(Failed) as raised:
        wrong.apply([RecordChange("mail.alpha.test.", "A", 60, "203.0.113.66")])
    assert str(raised.value) == (
        f"update of zone alpha.test. at {bind.primary} failed: BADSIG: the TSIG secret does "
        "not match the server's"
    )
    assert (
        verify("alpha.test.", {"mail.alpha.test.": "203.0.113.66"}, [bind.primary], timeout=0)
        .mismatches[0]
        .answered
        != "203.0.113.66"
    )
    with pytest.raises(Failed, match="BADSIG"):
        wrong.check_key()


def test_an_unknown_key_is_badkey(bind: BindPair, provider, foreign_key) -> None:
    with pytest.raises(Failed, match=r"failed: BADKEY: the server does not know this TSIG key"):
        provider(key_file=foreign_key("nobody-knows")).apply(
            [RecordChange("mail.alpha.test.", "A", 60, "203.0.113.67")]
        )


def test_an_unsigned_update_is_refused(bind: BindPair) -> None:
    update = dns.update.Update("alpha.test.")
    update.replace("mail.alpha.test.", 60, "A", "203.0.113.68")
    response = dns.query.tcp(update, bind.primary.address, port=bind.primary.port, timeout=2)
    error = outcomes.from_rcode(response.rcode(), "update", bind.primary, "alpha.test.")
    assert isinstance(error, Failed)
    assert str(error).startswith(f"update of zone alpha.test. at {bind.primary} failed: REFUSED")


def test_a_key_without_a_grant_is_refused(bind: BindPair, provider) -> None:
    with pytest.raises(Failed) as raised:
        provider(key_file=bind.readonly_key_file).apply(
            [RecordChange("mail.alpha.test.", "A", 60, "203.0.113.71")]
        )
    assert str(raised.value) == (
        f"update of zone alpha.test. at {bind.primary} failed: REFUSED — the server refused "
        "it — is the TSIG key granted in the zone's update-policy, and is this the primary?"
    )
    with pytest.raises(Failed, match="REFUSED"):
        provider(key_file=bind.readonly_key_file).check_key()


def test_a_zone_the_server_does_not_serve_is_notauth(bind: BindPair, provider) -> None:
    with pytest.raises(Failed) as raised:
        provider("nowhere.test.").apply([RecordChange("mail.nowhere.test.", "A", 60, "1.2.3.4")])
    assert str(raised.value).startswith(
        f"update of zone nowhere.test. at {bind.primary} failed: NOTAUTH — "
    )


def test_an_update_sent_to_the_secondary_is_refused(bind: BindPair, provider) -> None:
    with pytest.raises(Failed, match=r"at 127\.0\.10\.2:53 failed: REFUSED .* is this the primary"):
        provider(servers=(bind.secondary,)).apply(
            [RecordChange("mail.alpha.test.", "A", 60, "203.0.113.69")]
        )


def test_a_blackholed_server_is_unavailable_after_bounded_retries(
    provider, blackhole, sleeps
) -> None:
    with pytest.raises(Unavailable) as raised:
        provider(servers=(blackhole.server,), timeout=0.3).apply(
            [RecordChange("mail.alpha.test.", "A", 60, "203.0.113.70")]
        )
    assert str(raised.value) == (
        f"update of zone alpha.test. at {BLACKHOLE}:53: no answer within the timeout"
    )
    assert len(sleeps.calls) == 2  # three attempts, jittered waits between them
    assert all(0 < s <= 2.2 for s in sleeps.calls)


def test_nothing_listening_is_unavailable(provider, sleeps) -> None:
    closed = DnsServer(address=BLACKHOLE, port=54)
    with pytest.raises(Unavailable, match="connection refused"):
        provider(servers=(closed,)).check_key()
    assert len(sleeps.calls) == 2


def test_the_next_server_is_tried_when_one_is_silent(
    bind: BindPair, provider, blackhole, sleeps
) -> None:
    changes = [RecordChange("failover.alpha.test.", "A", 60, "198.51.100.77")]
    result = provider(servers=(blackhole.server, bind.primary), timeout=0.3).apply(changes)
    assert result.server == str(bind.primary)
    assert sleeps.calls == []
    _settled(bind, "alpha.test.", changes)


def test_verify_names_a_silent_server_within_its_bound(bind: BindPair, blackhole) -> None:
    clock = FakeClock()
    result = verify(
        "alpha.test.",
        {"ns1.alpha.test.": "127.0.10.1"},
        [bind.primary, blackhole.server],
        timeout=0.5,
        interval=0.25,
        query_timeout=0.2,
        clock=clock,
        sleep=clock.sleep,
    )
    assert result.disagreeing() == [str(blackhole.server)]
    assert [m.answered for m in result.mismatches] == ["timeout"]


def test_the_key_check_is_signed_and_changes_nothing(bind: BindPair, provider) -> None:
    serials = _serials(bind, "beta.test.")
    assert provider("beta.test.").check_key() == str(bind.primary)
    assert _serials(bind, "beta.test.") == serials
    probe = dns.message.make_query(f"{KEYCHECK_LABEL}.beta.test.", "TXT")
    answer = dns.query.udp(probe, bind.primary.address, port=bind.primary.port, timeout=2)
    assert answer.rcode() == dns.rcode.NXDOMAIN


def test_soa_serials_report_silence_per_server(bind: BindPair, blackhole) -> None:
    serials = soa_serials("beta.test.", [bind.primary, blackhole.server], timeout=0.2)
    assert serials[0].serial is not None and serials[0].error is None
    assert (serials[1].serial, serials[1].error) == (None, "timeout")
    assert serials[1].describe() == f"{blackhole.server}: timeout"


def test_a_thousand_records_in_two_zones(bind: BindPair, provider) -> None:
    """Correctness of the bench's workload (P4); its time is measured by bench/, not here."""
    for zone in ("alpha.test.", "beta.test."):
        changes = [
            RecordChange(f"bulk{i:03d}.{zone}", "A", 60, f"10.20.{i // 200}.{i % 200}")
            for i in range(500)
        ]
        result = provider(zone).apply(changes)
        assert (result.records, result.messages) == (500, 1)
        _settled(bind, zone, changes)


def test_a_truncated_answer_is_asked_again_over_tcp(bind: BindPair, provider) -> None:
    """Three 200-byte TXT strings overflow a 512-byte UDP answer: TC, then TCP."""
    texts = [f'"{letter * 200}"' for letter in "xyz"]
    update = provider("beta.test.")._message()
    update.replace("big.beta.test.", 60, "TXT", *texts)
    provider("beta.test.")._send_any("test set-up", lambda: update, fenced=False)
    big = RecordChange("big.beta.test.", "TXT", 60, "x" * 200)
    (mismatch,) = verify("beta.test.", [big], [bind.primary], timeout=0).mismatches
    assert mismatch.answered == ", ".join(sorted(texts))  # the whole RRset, via TCP


def test_secrets_stay_out_of_logs_and_errors(
    bind: BindPair, provider, blackhole, foreign_key, caplog: pytest.LogCaptureFixture
) -> None:
    """R8: exercise failures that log (retries) and raise, then look for the secret."""
    caplog.set_level("DEBUG")
    secrets = [bind.ddns_key_file.read_text().split('secret "')[1].split('"')[0]]
    wrong = foreign_key("sitectl-ddns")
    secrets.append(wrong.read_text().split('secret "')[1].split('"')[0])
    messages = []
    for attempt in (
        lambda: provider(key_file=wrong).apply(
            [RecordChange("mail.alpha.test.", "A", 60, "1.2.3.4")]
        ),
        lambda: provider(servers=(blackhole.server,), timeout=0.2).check_key(),
        lambda: provider(servers=(blackhole.server, bind.primary), timeout=0.2).claim_fence(1),
    ):
        try:
            attempt()
        except Exception as exc:
            messages.append(f"{exc!r} {exc}")
    provider().apply([RecordChange("logged.alpha.test.", "A", 60, "198.51.100.8")])
    text = caplog.text + " ".join(messages) + repr(provider())
    assert len(messages) == 2 and "retrying in" in caplog.text
    for secret in secrets:
        assert secret not in text
