"""The Route 53 provider against moto's server, a real HTTP process on 127.0.0.1.

moto stands in for the Route 53 API: it applies change batches and reports them INSYNC
at once, and serves no DNS, so values are read back through the API. The INSYNC wait
loop runs on a scripted client in test_dns_pure.py, because moto never says PENDING.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator

import boto3
import pytest
from moto.server import ThreadedMotoServer

from orchestrator.adapters.dns import RecordChange, RetryPolicy, Route53Provider
from orchestrator.config.model import DnsRecord, DnsZone, Route53, SecretRef
from orchestrator.errors import Failed, LeaseLost, Unavailable

pytestmark = [pytest.mark.lab, pytest.mark.timeout(120)]
ZONE = "example.test."
ENV = {"R53_ACCESS": "testing-access", "R53_SECRET": "testing-secret-canary"}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="module")
def hosted_zone(moto_url: str) -> str:
    client = boto3.client(
        "route53",
        endpoint_url=moto_url,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="y",
    )
    created = client.create_hosted_zone(Name=ZONE, CallerReference="sitectl-tests")
    return str(created["HostedZone"]["Id"]).rsplit("/", 1)[-1]


def _zone(url: str, hosted_zone_id: str) -> DnsZone:
    return DnsZone(
        name=ZONE,
        scope="external",
        provider="route53",
        verify_servers=["127.0.0.1"],
        route53=Route53(
            hosted_zone_id=hosted_zone_id,
            endpoint_url=url,
            access_key=SecretRef(env="R53_ACCESS"),
            secret_key=SecretRef(env="R53_SECRET"),
        ),
        records=(DnsRecord(name="mail", values={"dc1": "192.0.2.1", "dc2": "198.51.100.1"}),),
    )


@pytest.fixture
def route53(moto_url: str, hosted_zone: str, sleeps, tmp_path):
    def make(url: str = moto_url, zone_id: str = hosted_zone) -> Route53Provider:
        return Route53Provider.from_zone(
            _zone(url, zone_id),
            tmp_path,
            environ=ENV,
            timeout=2,
            retry=RetryPolicy(attempts=3, sleep=sleeps),
            sleep=sleeps,
        )

    return make


def test_upsert_then_read_back(route53) -> None:
    provider = route53()
    first = [
        RecordChange("mail.example.test.", "A", 60, "192.0.2.1"),
        RecordChange("alias.example.test.", "CNAME", 60, "mail.example.test."),
        RecordChange("note.example.test.", "TXT", 60, "active dc1"),
    ]
    result = provider.apply(first, epoch=3, tag="op-7/dns/example.test.")
    assert (result.server, result.records, result.messages) == ("route53", 4, 1)
    assert provider.read_back(first).ok
    second = [RecordChange("mail.example.test.", "A", 60, "198.51.100.1")]
    provider.apply(second)
    assert provider.read_back(second).ok
    stale = provider.read_back(first[:1])
    assert stale.describe() == (
        "zone example.test.: 1 of 1 server(s) disagree after 1 round(s): route53 API — "
        "mail.example.test. A: 198.51.100.1 (expected 192.0.2.1)"
    )


def test_a_thousand_records_go_in_several_batches(route53) -> None:
    changes = [
        RecordChange(f"bulk{i:04d}.example.test.", "A", 60, f"10.30.{i // 200}.{i % 200}")
        for i in range(1000)
    ]
    result = route53().apply(changes)
    assert result.messages == 3
    assert route53().read_back(changes).ok


def test_an_unknown_hosted_zone_fails_plainly(route53) -> None:
    with pytest.raises(
        Failed,
        match=r"^Route 53 change_resource_record_sets of zone "
        r"example\.test\.: NoSuchHostedZone",
    ):
        route53(zone_id="ZNOTTHERE").apply([RecordChange("mail.example.test.", "A", 60, "1.2.3.4")])


def test_an_api_that_does_not_answer_is_unavailable(route53, sleeps) -> None:
    down = f"http://127.0.0.1:{_free_port()}"
    with pytest.raises(Unavailable, match="the API did not answer") as raised:
        route53(url=down).apply([RecordChange("mail.example.test.", "A", 60, "1.2.3.4")])
    assert len(sleeps.calls) == 2
    assert ENV["R53_SECRET"] not in str(raised.value)


def test_records_outside_the_zone_are_refused(route53) -> None:
    with pytest.raises(Failed, match=r"not in zone example\.test\."):
        route53().apply([RecordChange("mail.other.test.", "A", 60, "1.2.3.4")])


def _fence(provider: Route53Provider) -> list[str]:
    return provider._read_fence()


def test_the_fence_goes_in_each_batch_and_a_stale_epoch_is_refused_by_the_service(
    route53,
) -> None:
    """A newer leader's batch rewrites the fence with its epoch; an older leader's next
    batch is refused, its records untouched. (The race where the older leader read the
    fence before the newer one wrote it needs Route 53's exact DELETE match, which moto
    does not check: test_dns_pure.py runs it on a client that does.)"""
    provider = route53()
    older = [RecordChange("mail.example.test.", "A", 60, "192.0.2.1")]
    newer = [RecordChange("mail.example.test.", "A", 60, "198.51.100.1")]
    provider.apply_claiming(older, epoch=5, tag="op-1/dns")
    provider.apply_claiming(older, epoch=5, tag="op-1/dns")  # the same leader again
    (held,) = _fence(provider)
    assert held.startswith('"epoch=5" "write=')
    provider.apply_claiming(newer, epoch=6, tag="op-2/dns")
    assert _fence(provider)[0].startswith('"epoch=6" ')

    with pytest.raises(LeaseLost, match=r"the fence holds epoch=6, newer than ours \(5\)"):
        provider.apply_claiming(older, epoch=5, tag="op-1/dns")
    assert provider.read_back(newer).ok, "the stale leader changed nothing"


def test_a_lease_check_before_the_batch_stops_it(route53) -> None:
    def lost() -> None:
        raise LeaseLost("our ZooKeeper lease is gone")

    before = _fence(route53())
    with pytest.raises(LeaseLost, match="lease is gone"):
        route53().apply_claiming(
            [RecordChange("gone.example.test.", "A", 60, "192.0.2.9")], epoch=99, before_write=lost
        )
    assert _fence(route53()) == before
