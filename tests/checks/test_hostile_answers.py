"""Hostile and broken answers map to degraded/down with a sentence, never a traceback.

Real library exception objects and answers, built by hand: these are the pure mappings
the checks run every answer through.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import botocore.exceptions
import pytest
from dns import message as dns_message
from dns import name as dns_name
from dns import rcode, tsig
from ldap3.core import exceptions as ldap_exc

from orchestrator.adapters.dns import Mismatch, SoaSerial
from orchestrator.adapters.probes import Answer, ProbeResult
from orchestrator.checks import application, dns, ldap, mirrors, object_store, zookeeper
from orchestrator.checks.result import Status
from orchestrator.storage import MirrorState, MirrorStatus
from tests.checks.topologies import topology
from tests.faults.peers import HostileDns, framed


def client_error(http: int, code: str, message: str = "") -> botocore.exceptions.ClientError:
    return botocore.exceptions.ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": http}},
        "HeadBucket",
    )


@pytest.mark.parametrize(
    ("exc", "status", "words"),
    [
        (client_error(403, "403", "Forbidden"), Status.DOWN, "not authorised"),
        (
            client_error(403, "InvalidAccessKeyId"),
            Status.DOWN,
            "not authorised (InvalidAccessKeyId)",
        ),
        (client_error(403, "SignatureDoesNotMatch"), Status.DOWN, "check the key pair"),
        (client_error(404, "404", "Not Found"), Status.DOWN, "the bucket does not exist"),
        (client_error(404, "NoSuchBucket"), Status.DOWN, "the bucket does not exist"),
        (client_error(500, "InternalError"), Status.DOWN, "failed the request (500 InternalError)"),
        (client_error(503, "SlowDown"), Status.DEGRADED, "throttling or busy"),
        (
            client_error(400, "InvalidRequest", "bad\nthing"),
            Status.DOWN,
            "refused: InvalidRequest bad thing",
        ),
        (
            botocore.exceptions.ReadTimeoutError(endpoint_url="http://127.0.2.21:9000"),
            Status.DOWN,
            "did not answer within 2 s",
        ),
        (
            botocore.exceptions.ConnectTimeoutError(endpoint_url="http://127.0.2.21:9000"),
            Status.DOWN,
            "no connection within 2 s",
        ),
        (
            botocore.exceptions.EndpointConnectionError(endpoint_url="http://127.0.2.21:9000"),
            Status.DOWN,
            "cannot connect",
        ),
        (ValueError("something odd"), Status.DOWN, "ValueError: something odd"),
    ],
)
def test_s3_errors(exc: BaseException, status: Status, words: str) -> None:
    got_status, reason = object_store.describe_error(exc, 2.0)
    assert (got_status, words in reason) == (status, True), reason
    assert "\n" not in reason


@pytest.mark.parametrize(
    ("data", "figures"),
    [
        (
            {"pending": 0, "failed": 0, "oldest_pending_seconds": None},
            {"pending": 0.0, "failed": 0.0, "replication_lag_seconds": 0.0},
        ),
        (
            {"pending": 3, "failed": 1, "oldest_pending_seconds": 12.5},
            {"pending": 3.0, "failed": 1.0, "replication_lag_seconds": 12.5},
        ),
        ({"pending": "many"}, {}),  # nonsense from the store is not a figure
        ({}, {}),
    ],
)
def test_backlog_figures(data: dict, figures: dict) -> None:
    assert object_store.backlog_figures(data) == figures


@pytest.mark.parametrize(
    ("exc", "words"),
    [
        (
            ldap_exc.LDAPSocketOpenError(
                "socket connection error while opening: [Errno 111] Connection refused"
            ),
            "connection refused (slapd not running)",
        ),
        (
            ldap_exc.LDAPSocketOpenError("socket connection error while opening: timed out"),
            "no TCP connection within 2 s",
        ),
        (
            ldap_exc.LDAPSocketReceiveError("error receiving data: timed out"),
            "did not answer within 2 s (hung?)",
        ),
        (ldap_exc.LDAPResponseTimeoutError("no response from server"), "did not answer within 2 s"),
        (
            ldap_exc.LDAPStartTLSError("wrong version number"),
            "StartTLS failed: wrong version number",
        ),
        (ldap_exc.LDAPSessionTerminatedByServerError("closed"), "the server closed the connection"),
        (RuntimeError("boom\nwith lines"), "RuntimeError: boom with lines"),
    ],
)
def test_ldap_errors(exc: BaseException, words: str) -> None:
    assert words in ldap.describe_error(exc, 2.0)


SOA_OK = SoaSerial("127.0.2.1:53", 2026112201)


@pytest.mark.parametrize(
    ("soa", "mismatches", "status", "words"),
    [
        (SOA_OK, [], Status.OK, ""),
        (
            SoaSerial("127.0.2.1:53", None, "NXDOMAIN"),
            [],
            Status.DOWN,
            "does not serve lab.internal.: NXDOMAIN",
        ),
        (SoaSerial("127.0.2.1:53", None, "REFUSED"), [], Status.DOWN, "REFUSED"),
        (SoaSerial("127.0.2.1:53", None, "timeout"), [], Status.DOWN, "timeout"),
        (
            SoaSerial("127.0.2.1:53", None, "not authoritative for the zone (referral or cache)"),
            [],
            Status.DOWN,
            "not authoritative",
        ),
        (
            SOA_OK,
            [Mismatch("127.0.2.1:53", "mail.lab.internal.", "A", "127.0.1.1", "NXDOMAIN")],
            Status.DEGRADED,
            "mail.lab.internal. A: NXDOMAIN (expected 127.0.1.1)",
        ),
        (
            SOA_OK,
            [Mismatch("127.0.2.1:53", "mail.lab.internal.", "A", "127.0.1.1", "127.0.2.1")],
            Status.DEGRADED,
            "127.0.2.1 (expected 127.0.1.1)",
        ),
    ],
)
def test_dns_answers(soa: SoaSerial, mismatches: list, status: Status, words: str) -> None:
    got, reason, figures = dns.judge_answers("lab.internal.", soa, mismatches)
    assert got is status and words in reason
    assert (dns.SERIAL in figures) == (soa.serial is not None)


LEADER = """Zookeeper version: 3.8.0-debian, built on 2022-06-14
Latency min/avg/max: 0/0.5/3
Received: 40
Sent: 39
Connections: 2
Outstanding: 0
Zxid: 0x10000002a
Mode: leader
Node count: 7
Proposal sizes last/min/max: 48/48/92
"""


@pytest.mark.parametrize(
    ("text", "status", "figures", "words"),
    [
        (LEADER, Status.OK, {"leader": 1.0, "zxid": float(0x10000002A)}, ""),
        (
            LEADER.replace("leader", "follower"),
            Status.OK,
            {"leader": 0.0, "zxid": float(0x10000002A)},
            "",
        ),
        (
            "This ZooKeeper instance is not currently serving requests\n",
            Status.DOWN,
            {},
            "not part of a quorum",
        ),
        (
            "srvr is not executed because it is not in the whitelist.\n",
            Status.DEGRADED,
            {},
            "4lw.commands.whitelist",
        ),
        ("", Status.DEGRADED, {}, "without a known Mode"),
        ("Mode: observer-ish\nZxid: zz\n", Status.DEGRADED, {}, "without a known Mode"),
        ("Mode: follower\nZxid: not-hex\n", Status.OK, {"leader": 0.0}, ""),
    ],
)
def test_zookeeper_srvr(text: str, status: Status, figures: dict, words: str) -> None:
    got, reason, got_figures = zookeeper.judge_srvr(text)
    assert (got, got_figures) == (status, figures) and words in reason


def probe(answer: Answer, detail: str = "") -> ProbeResult:
    return ProbeResult("smtp", "127.0.2.1", 2525, answer, detail)


@pytest.mark.parametrize(
    ("answer", "expect_up", "status", "words"),
    [
        (Answer.UP, True, Status.OK, ""),
        (Answer.REFUSED, True, Status.DOWN, "not running"),
        (Answer.TIMEOUT, True, Status.DOWN, "did not answer"),
        (Answer.WRONG, True, Status.DEGRADED, "not as smtp should"),
        (Answer.REFUSED, False, Status.OK, ""),  # a stopped standby is healthy
        (Answer.UP, False, Status.DEGRADED, "running on the standby"),
        (Answer.TIMEOUT, False, Status.DOWN, "did not answer"),
    ],
)
def test_application_probes(answer: Answer, expect_up: bool, status: Status, words: str) -> None:
    got, reason = application.judge(probe(answer, "detail"), expect_up)
    assert got is status and words in reason


def mirror(
    state: MirrorState = MirrorState.MIRRORED,
    lag: float | None = 4.0,
    healthy: bool = True,
    error: str | None = None,
) -> MirrorStatus:
    return MirrorStatus("mail", "dc1", "dc2", state, "data@7", 1000.0, 0.2, lag, healthy, error)


@pytest.mark.parametrize(
    ("status", "expected", "words"),
    [
        (mirror(), Status.OK, ""),
        (mirror(lag=400.0, healthy=False), Status.DEGRADED, "lags 400 s, over the 300 s RPO limit"),
        (mirror(lag=40.0, healthy=False), Status.DEGRADED, "unhealthy (lag 40 s)"),
        (mirror(MirrorState.QUIESCED), Status.DEGRADED, "quiesced"),
        (mirror(MirrorState.BROKEN), Status.DEGRADED, "broken off: dc2 is writable"),
        (
            mirror(error="btrfs receive: No space left\non device"),
            Status.DEGRADED,
            "the last transfer failed: btrfs receive: No space left on device",
        ),
        (mirror(lag=None), Status.DEGRADED, "no snapshot has been transferred"),
    ],
)
def test_mirror_states(status: MirrorStatus, expected: Status, words: str) -> None:
    result = mirrors.judge(status, "mirrors", "dc2", "mirror mail", limit=300.0)
    assert result.status is expected and words in result.reason


# -- the DNS check's TSIG key probe against a server answering a TSIG error -------------

ZONE = "lab.internal."
KEY_NAME = "sitectl-ddns."
KEY_SECRET = "c2l0ZWN0bC1jaGVja3MtYmFkc2lnLXRlc3Qtc2VjcmV0"


def tsig_error_reply(error: int) -> Callable[[bytes], bytes]:
    """What BIND sends for a signed update whose signature it rejects: NOTAUTH, with the
    TSIG error in a TSIG record (RFC 8945 5.3.2), framed for TCP."""

    def reply(query: bytes) -> bytes:
        name = dns_name.from_text(KEY_NAME)
        key = tsig.Key(name, KEY_SECRET)
        parsed = dns_message.from_wire(query, keyring={name: key})
        response = dns_message.make_response(parsed)
        response.set_rcode(rcode.NOTAUTH)
        response.use_tsig({name: key}, keyname=name, tsig_error=error)
        return framed(response.to_wire())

    return reply


@pytest.mark.parametrize(
    ("error", "words"),
    [
        (rcode.BADSIG, "BADSIG: the TSIG secret does not match the server's"),
        (rcode.BADKEY, "BADKEY: the server does not know this TSIG key"),
        (rcode.BADTIME, "BADTIME: the clocks of this host and the server differ"),
    ],
)
def test_dns_key_check_facing_a_tsig_error_is_down_with_the_reason(
    tmp_path: Path, error: int, words: str
) -> None:
    key_file = tmp_path / "ddns.key"
    key_file.write_text(
        f'key "{KEY_NAME[:-1]}" {{\n\talgorithm hmac-sha256;\n\tsecret "{KEY_SECRET}";\n}};\n'
    )
    key_file.chmod(0o600)
    peer = HostileDns(tcp_reply=tsig_error_reply(error))
    with peer.running():
        server = f"127.0.0.1:{peer.port}"
        zone = {
            "name": ZONE,
            "scope": "internal",
            "provider": "rfc2136",
            "update_servers": [server],
            "verify_servers": [server],
            "tsig": {"key_file": key_file.name},
            "records": [{"name": "mail", "values": {"dc1": "127.0.1.1", "dc2": "127.0.2.1"}}],
        }
        topo = topology(dns={"zones": [zone]}, base_dir=tmp_path)
        (check,) = [c for c in dns.checks(topo, 1.0) if c.target == f"update servers of {ZONE}"]
        result = check.run(1.0)
    assert peer.received, "the fake server was never asked"
    assert result.status is Status.DOWN, result.describe()
    assert words in result.reason and result.reason.startswith(server), result.reason
    assert "\n" not in result.reason and "Traceback" not in result.reason
    assert KEY_SECRET not in result.reason
