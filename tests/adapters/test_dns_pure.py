"""The DNS adapter's pure parts: records, batching, error mapping, verdicts, rendering."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path

import botocore.exceptions
import dns.exception
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import dns.tsig
import dns.update
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.adapters.dns import outcomes
from orchestrator.adapters.dns.authoritative import Mismatch, VerifyResult, judge, verify
from orchestrator.adapters.dns.fence import (
    fence_rdataset,
    fence_text,
    parse_fence,
    route53_fence_epoch,
)
from orchestrator.adapters.dns.query import Question, Unsure, quick_verdict, resolve
from orchestrator.adapters.dns.records import (
    RecordChange,
    batches,
    changes_for_site,
    changes_from_params,
    expected_changes,
    in_zone,
)
from orchestrator.adapters.dns.route53 import (
    MAX_CHANGES,
    Route53Provider,
    change_batches,
    from_boto_error,
)
from orchestrator.adapters.dns.tsig import TsigError, parse_key_text, select_key
from orchestrator.config import load_topology
from orchestrator.config.model import DnsServer
from orchestrator.errors import Failed, LeaseLost, Unavailable
from orchestrator.plan import assumed_state, build_plan

EXAMPLE = Path(__file__).resolve().parents[2] / "inventories" / "example-zimbra" / "topology.yaml"
MAIL = RecordChange("mail.alpha.test.", "A", 60, "198.51.100.1")


def test_a_plan_step_becomes_the_changes_the_topology_names() -> None:
    topo = load_topology(EXAMPLE)
    plan = build_plan(topo, assumed_state(topo), "switchover", "dc2")
    step = plan.step("dns/corp.example.net.")
    zone = next(z for z in topo.dns.zones if z.name == "corp.example.net.")
    assert (
        changes_from_params(step.params)
        == changes_for_site(zone, "dc2")
        == [
            RecordChange("mail.corp.example.net.", "A", 60, "198.51.100.21"),
            RecordChange("smtp.corp.example.net.", "A", 60, "198.51.100.11"),
        ]
    )


@pytest.mark.parametrize("params", [{}, {"records": [{"type": "A"}]}, {"records": None}])
def test_malformed_step_params_fail_plainly(params) -> None:
    with pytest.raises(Failed, match="params are malformed"):
        changes_from_params(params)


@pytest.mark.parametrize(
    ("expected", "types"),
    [
        ({"a.z.": "192.0.2.1"}, ["A"]),
        ({"a.z.": "2001:db8::1"}, ["AAAA"]),
        ({"a.z": "mail.dc2.z."}, ["CNAME"]),
    ],
)
def test_expected_values_infer_their_type(expected, types) -> None:
    changes = expected_changes(expected)
    assert [c.type for c in changes] == types
    assert all(c.name.endswith(".") for c in changes)


def test_txt_values_are_quoted_for_the_wire() -> None:
    change = RecordChange("t.z.", "TXT", 0, 'op=1 say "hi"')
    assert change.rdata().to_text() == '"op=1 say \\"hi\\""'


def test_bad_values_fail_naming_the_record() -> None:
    with pytest.raises(Failed, match=r"'300.1.1.1' is not a valid A value for x.z."):
        RecordChange("x.z.", "A", 60, "300.1.1.1").rdata()


def test_records_outside_the_zone_are_refused_before_sending() -> None:
    with pytest.raises(Failed, match=r"mail\.other\.test\. are not in zone alpha\.test\."):
        in_zone([MAIL, RecordChange("mail.other.test.", "A", 60, "192.0.2.1")], "alpha.test.")


def _many(n: int, zone: str = "alpha.test.") -> list[RecordChange]:
    return [
        RecordChange(f"host{i:04d}.{zone}", "A", 60, f"10.0.{i // 250}.{i % 250}") for i in range(n)
    ]


def test_one_message_when_it_fits_several_when_it_would_not() -> None:
    assert len(batches(_many(500))) == 1
    cut = batches(_many(3000))
    assert len(cut) > 1
    assert [c for b in cut for c in b] == _many(3000)  # nothing lost, order kept


@pytest.mark.parametrize("limit", [2_000, 10_000, 60_000])
def test_every_batch_renders_under_the_limit_with_tsig(limit: int) -> None:
    keyring = {dns.name.from_text("k."): dns.tsig.Key("k.", b"0" * 32, dns.tsig.HMAC_SHA512)}
    for batch in batches(_many(2000), limit):
        update = dns.update.Update(
            "alpha.test.", keyring=keyring, keyname="k.", keyalgorithm=dns.tsig.HMAC_SHA512
        )
        update.present("_sitectl-fence.alpha.test.", fence_rdataset(123456789))
        for change in batch:
            update.replace(change.owner(), change.ttl, change.rdata())
        assert len(update.to_wire()) <= limit


# -- fence values -------------------------------------------------------------------------


def _txt(*texts: str) -> dns.rrset.RRset:
    return dns.rrset.from_text("_sitectl-fence.z.", 0, "IN", "TXT", *texts)


@pytest.mark.parametrize(
    ("rdataset", "epoch"),
    [(None, None), (_txt('"epoch=0"'), 0), (_txt('"epoch=42"'), 42)],
)
def test_fence_values(rdataset, epoch) -> None:
    assert parse_fence("z.", rdataset).epoch == epoch


@pytest.mark.parametrize(
    "texts", [['"epoch=x"'], ['"epoch=1"', '"epoch=2"'], ['"hello"'], ['"epoch=-1"']]
)
def test_a_fence_that_is_not_one_epoch_is_refused(texts) -> None:
    with pytest.raises(Failed, match='not one "epoch=N" — make sure no other sitectl'):
        parse_fence("z.", _txt(*texts))


def test_fence_text() -> None:
    assert fence_text(7) == '"epoch=7"'
    with pytest.raises(ValueError):
        fence_text(-1)


# -- error mapping ------------------------------------------------------------------------

EXCEPTIONS = [
    (dns.exception.Timeout(), Unavailable, "no answer within the timeout"),
    (ConnectionRefusedError(111, "Connection refused"), Unavailable, "connection refused"),
    (ConnectionResetError(104, "reset"), Unavailable, "closed the connection"),
    (EOFError(), Unavailable, "closed the connection"),
    (TimeoutError(), Unavailable, "no answer within the timeout"),
    (OSError(113, "No route to host"), Unavailable, "network error (No route to host)"),
    (dns.tsig.PeerBadSignature(), Failed, "BADSIG: the TSIG secret does not match"),
    (dns.tsig.PeerBadKey(), Failed, "BADKEY: the server does not know this TSIG key"),
    (dns.tsig.PeerBadTime(), Failed, "BADTIME"),
    (dns.tsig.BadSignature(), Failed, "does not verify with our key"),
    (dns.exception.FormError("short"), Failed, "the answer is malformed"),
    (ValueError("odd"), Failed, "ValueError: odd"),
]


@pytest.mark.parametrize(
    ("exc", "kind", "says"), EXCEPTIONS, ids=[type(e[0]).__name__ for e in EXCEPTIONS]
)
def test_exceptions_map_to_one_line_errors(exc, kind, says) -> None:
    error = outcomes.from_exception(exc, "update", "127.0.10.1:53", "alpha.test.")
    assert type(error) is kind
    text = str(error)
    assert text.startswith("update of zone alpha.test. at 127.0.10.1:53")
    assert says in text and "\n" not in text


RCODES = [
    (dns.rcode.NOERROR, False, None, None),
    # A Failed that callers can tell apart: REFUSED is also how a secondary says no.
    (dns.rcode.REFUSED, False, outcomes.UpdateRefused, "failed: REFUSED — the server refused it"),
    (dns.rcode.NOTAUTH, False, Failed, "failed: NOTAUTH — the server is not authoritative"),
    (dns.rcode.NOTZONE, False, Failed, "failed: NOTZONE"),
    (dns.rcode.SERVFAIL, False, Unavailable, "SERVFAIL"),
    (dns.rcode.NXRRSET, True, LeaseLost, "refused by the server's fence check (NXRRSET)"),
    (dns.rcode.YXRRSET, True, LeaseLost, "refused by the server's fence check (YXRRSET)"),
    (dns.rcode.NXRRSET, False, Failed, "failed: NXRRSET"),
]


@pytest.mark.parametrize(
    ("rcode", "fenced", "kind", "says"),
    RCODES,
    ids=[f"{dns.rcode.to_text(r[0])}-{r[1]}" for r in RCODES],
)
def test_response_codes_map_to_errors(rcode, fenced, kind, says) -> None:
    error = outcomes.from_rcode(rcode, "update", "127.0.10.1:53", "alpha.test.", fenced=fenced)
    if kind is None:
        assert error is None
        return
    assert type(error) is kind
    assert says in str(error) and "alpha.test." in str(error) and "127.0.10.1:53" in str(error)


def _client_error(code: str, status: int) -> botocore.exceptions.ClientError:
    return botocore.exceptions.ClientError(
        {"Error": {"Code": code, "Message": "msg"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "ChangeResourceRecordSets",
    )


BOTO = [
    (_client_error("Throttling", 400), Unavailable),
    (_client_error("PriorRequestNotComplete", 400), Unavailable),
    (_client_error("InternalError", 500), Unavailable),
    (_client_error("InvalidChangeBatch", 400), Failed),
    (_client_error("NoSuchHostedZone", 404), Failed),
    (_client_error("AccessDenied", 403), Failed),
    (botocore.exceptions.EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), Unavailable),
    (botocore.exceptions.NoCredentialsError(), Failed),
]


@pytest.mark.parametrize(("exc", "kind"), BOTO)
def test_boto_errors_map(exc, kind) -> None:
    error = from_boto_error(exc, "change", "example.test.")
    assert type(error) is kind
    assert str(error).startswith("Route 53 change of zone example.test.")


def test_route53_batches_stay_within_the_api_limits() -> None:
    cut = change_batches(_many(1000))
    assert all(len(b) <= MAX_CHANGES for b in cut)
    assert [c for b in cut for c in b] == _many(1000)


# -- verdicts and rendering ---------------------------------------------------------------


def _answer(
    rcode: int = dns.rcode.NOERROR, aa: bool = True, *rrsets: dns.rrset.RRset
) -> dns.message.Message:
    query = dns.message.make_query(MAIL.name, dns.rdatatype.A)
    response = dns.message.make_response(query)
    response.set_rcode(rcode)
    if aa:
        response.flags |= dns.flags.AA
    response.answer.extend(rrsets)
    return response


A_NEW = dns.rrset.from_text(MAIL.name, 60, "IN", "A", "198.51.100.1")
A_OLD = dns.rrset.from_text(MAIL.name, 60, "IN", "A", "192.0.2.1")
A_BOTH = dns.rrset.from_text(MAIL.name, 60, "IN", "A", "192.0.2.1", "198.51.100.1")
CNAME = dns.rrset.from_text(MAIL.name, 60, "IN", "CNAME", "elsewhere.test.")

VERDICTS = [
    ("new value", _answer(dns.rcode.NOERROR, True, A_NEW), None),
    ("old value", _answer(dns.rcode.NOERROR, True, A_OLD), "192.0.2.1"),
    ("old and new", _answer(dns.rcode.NOERROR, True, A_BOTH), "192.0.2.1, 198.51.100.1"),
    ("NXDOMAIN", _answer(dns.rcode.NXDOMAIN), "NXDOMAIN"),
    ("REFUSED", _answer(dns.rcode.REFUSED), "REFUSED"),
    ("NODATA", _answer(), "no A record (NODATA)"),
    ("CNAME instead", _answer(dns.rcode.NOERROR, True, CNAME), "CNAME elsewhere.test."),
    (
        "not authoritative",
        _answer(dns.rcode.NOERROR, False, A_NEW),
        "not authoritative for the zone (referral or cache)",
    ),
    ("silence", "timeout", "timeout"),
]


@pytest.mark.parametrize(("case", "answer", "said"), VERDICTS, ids=[v[0] for v in VERDICTS])
def test_judging_one_answer(case, answer, said) -> None:
    assert judge(MAIL, answer) == said


def test_a_verify_result_names_each_server_and_what_it_said() -> None:
    ok = VerifyResult("alpha.test.", ("a:53", "b:53"), 2, 1, ())
    assert ok.ok and ok.describe() == "zone alpha.test.: all 2 server(s) answer the 2 new value(s)"
    bad = VerifyResult(
        "alpha.test.",
        ("a:53", "b:53", "c:53"),
        5,
        7,
        (
            Mismatch("b:53", "mail.alpha.test.", "A", "198.51.100.1", "192.0.2.1"),
            *(
                Mismatch("c:53", f"h{i}.alpha.test.", "A", "198.51.100.1", "timeout")
                for i in range(5)
            ),
        ),
    )
    assert not bad.ok
    assert bad.disagreeing() == ["b:53", "c:53"]
    assert bad.describe() == (
        "zone alpha.test.: 2 of 3 server(s) disagree after 7 round(s): "
        "b:53 — mail.alpha.test. A: 192.0.2.1 (expected 198.51.100.1) | "
        "c:53 — h0.alpha.test. A: timeout (expected 198.51.100.1); "
        "h1.alpha.test. A: timeout (expected 198.51.100.1); "
        "h2.alpha.test. A: timeout (expected 198.51.100.1); and 2 more"
    )


@pytest.mark.parametrize(
    ("case", "answer", "said"), VERDICTS[:-1], ids=[v[0] for v in VERDICTS[:-1]]
)
def test_the_byte_level_verdict_agrees_with_the_parsed_one(case, answer, said) -> None:
    """quick_verdict decides from bytes or says UNSURE; when it decides, judge agrees."""
    question = Question(MAIL.owner(), dns.rdatatype.A)
    quick = quick_verdict(answer.to_wire(), question, MAIL.rdata().to_wire())
    assert isinstance(quick, Unsure) or quick == said
    if case in ("new value", "old value", "NXDOMAIN", "REFUSED", "NODATA", "not authoritative"):
        assert quick == said  # the common cases must not need a full parse


@pytest.mark.parametrize("wire", [b"", b"\x00" * 11, b"\x00\x01\x80\x00" + b"\x00" * 8])
def test_short_or_odd_wire_is_never_taken_for_agreement(wire: bytes) -> None:
    question = Question(MAIL.owner(), dns.rdatatype.A)
    assert quick_verdict(wire, question, MAIL.rdata().to_wire()) is not None


def test_verifying_against_no_servers_is_not_a_success() -> None:
    with pytest.raises(Failed, match="no servers to verify against"):
        verify("alpha.test.", {MAIL.name: MAIL.value}, [])


def test_servers_may_be_named_by_address_or_host_name() -> None:
    assert resolve(DnsServer(address="127.0.10.1")) == (socket.AF_INET, "127.0.10.1")
    assert resolve(DnsServer(address="::1"))[0] == socket.AF_INET6
    family, address = resolve(DnsServer(address="localhost"))  # from /etc/hosts
    assert family in (socket.AF_INET, socket.AF_INET6) and address in ("127.0.0.1", "::1")


# -- hostile input (issue 8, R7): garbage never escapes as anything but our errors --------


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_garbage_answers_are_judged_not_raised(wire: bytes) -> None:
    question = Question(MAIL.owner(), dns.rdatatype.A)
    quick = quick_verdict(wire, question, MAIL.rdata().to_wire())
    said = judge(MAIL, wire)
    assert said is None or isinstance(said, str)
    if quick is None:  # the bytes path only says "agrees" when the parse agrees too
        assert said is None


def test_a_cut_short_answer_never_counts_as_agreement() -> None:
    wire = _answer(dns.rcode.NOERROR, True, A_NEW).to_wire()
    question = Question(MAIL.owner(), dns.rdatatype.A)
    assert judge(MAIL, wire) is None
    for end in range(len(wire)):
        assert quick_verdict(wire[:end], question, MAIL.rdata().to_wire()) is not None
        assert isinstance(judge(MAIL, wire[:end]), str)


_KEY_PART = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40)


@settings(max_examples=300, deadline=None)
@given(
    st.text(max_size=300)
    | st.builds(
        lambda name, algorithm, secret: (
            f'key "{name}" {{ algorithm {algorithm}; secret "{secret}"; }};'
        ),
        _KEY_PART,
        st.sampled_from(["hmac-sha256", "hmac-sha512", "hmac-md5", "rot13"]) | _KEY_PART,
        _KEY_PART | st.just("c2VjcmV0LWNhbmFyeQ=="),
    )
)
def test_hostile_key_files_fail_only_as_one_line_tsig_errors(text: str) -> None:
    for chosen in (None, "ddns-key", "a..b"):
        try:
            select_key(parse_key_text(text, "fuzz"), chosen, "fuzz")
        except TsigError as exc:
            assert "\n" not in str(exc)
            assert "c2VjcmV0LWNhbmFyeQ==" not in str(exc)


# -- the INSYNC wait, with a scripted client (moto is always INSYNC) --------------------


@dataclass
class Scripted:
    statuses: list[str]

    def get_change(self, Id: str) -> dict:
        return {"ChangeInfo": {"Id": Id, "Status": self.statuses.pop(0)}}


@dataclass
class Clock:
    now: float = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_waits_for_insync_within_its_bound() -> None:
    clock = Clock()
    provider = Route53Provider(
        "example.test.",
        "Z1",
        Scripted(["PENDING", "PENDING", "INSYNC"]),
        sync_timeout=10,
        poll_interval=2,
        clock=clock,
        sleep=clock.sleep,
    )
    provider.wait_insync("C1")
    assert clock.now == 4


def test_gives_up_when_a_change_stays_pending() -> None:
    clock = Clock()
    provider = Route53Provider(
        "example.test.",
        "Z1",
        Scripted(["PENDING"] * 10),
        sync_timeout=5,
        poll_interval=2,
        clock=clock,
        sleep=clock.sleep,
    )
    with pytest.raises(Unavailable, match=r"change C1 still PENDING after 5s"):
        provider.wait_insync("C1")


# -- the Route 53 fence's compare-and-set, on a client that matches DELETEs exactly -----


@dataclass
class StrictRoute53:
    """Route 53's documented batch semantics: atomic; a DELETE must match the record's
    current TTL and values exactly; a CREATE must not find the record. moto checks the
    DELETE against any value the record ever had, which hides the race tested here."""

    records: dict = field(default_factory=dict)  # (name, type) → (ttl, sorted values)
    refused: int = 0

    def change_resource_record_sets(self, HostedZoneId: str, ChangeBatch: dict) -> dict:
        after = dict(self.records)
        for change in ChangeBatch["Changes"]:
            rrset = change["ResourceRecordSet"]
            key = (rrset["Name"], rrset["Type"])
            value = (rrset["TTL"], sorted(r["Value"] for r in rrset["ResourceRecords"]))
            if change["Action"] == "DELETE":
                if after.get(key) != value:
                    self.refused += 1
                    raise _client_error("InvalidChangeBatch", 400)
                del after[key]
            elif change["Action"] == "CREATE" and key in after:
                self.refused += 1
                raise _client_error("InvalidChangeBatch", 400)
            else:
                after[key] = value
        self.records = after
        return {"ChangeInfo": {"Id": "C1", "Status": "INSYNC"}}

    def get_change(self, Id: str) -> dict:
        return {"ChangeInfo": {"Id": Id, "Status": "INSYNC"}}

    def list_resource_record_sets(self, **query: str) -> dict:
        key = (query["StartRecordName"], query["StartRecordType"])
        if key not in self.records:
            return {"ResourceRecordSets": []}
        ttl, values = self.records[key]
        rrset = {"Name": key[0], "Type": key[1], "TTL": ttl}
        return {
            "ResourceRecordSets": [{**rrset, "ResourceRecords": [{"Value": v} for v in values]}]
        }


def test_a_route53_batch_whose_fence_changed_after_its_read_is_refused_whole() -> None:
    api = StrictRoute53()
    old, new = (Route53Provider("example.test.", "Z1", api) for _ in range(2))
    to_dc1 = [RecordChange("mail.example.test.", "A", 60, "192.0.2.1")]
    to_dc2 = [RecordChange("mail.example.test.", "A", 60, "198.51.100.1")]
    old.apply_claiming(to_dc1, epoch=5)
    old.apply_claiming(to_dc1, epoch=5)  # its own next batch matches what it read
    took_over: list[bool] = []

    def newer_leader_writes_between_our_read_and_our_batch() -> None:
        if not took_over:
            took_over.append(True)
            new.apply_claiming(to_dc2, epoch=6)

    with pytest.raises(LeaseLost, match=r"the fence holds epoch=6, newer than ours \(5\)"):
        old.apply_claiming(
            to_dc1, epoch=5, before_write=newer_leader_writes_between_our_read_and_our_batch
        )
    assert api.refused == 1, "the stale batch was sent once and refused whole"
    assert api.records[("mail.example.test.", "A")] == (60, ["198.51.100.1"])
    (fence,) = api.records[("_sitectl-fence.example.test.", "TXT")][1]
    assert fence.startswith('"epoch=6" "write=')


@pytest.mark.parametrize(
    ("values", "epoch"),
    [([], None), (['"epoch=7" "write=17f"'], 7), (['"epoch=7"'], 7)],
)
def test_the_route53_fence_value_is_read_strictly(values: list[str], epoch: int | None) -> None:
    assert route53_fence_epoch("z.", values) == epoch


@pytest.mark.parametrize("values", [['"epoch=x"'], ['"epoch=1"', '"epoch=2"'], ["epoch=1"]])
def test_a_route53_fence_it_cannot_read_is_refused(values: list[str]) -> None:
    with pytest.raises(Failed, match='not one "epoch=N"'):
        route53_fence_epoch("z.", values)
