"""The ONTAP client reached from a topology: the relationship found by its destination
path, its ends named by site, and what a missing, doubled or silent one gives."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from orchestrator.adapters.secrets import SecretError
from orchestrator.errors import Failed, Unavailable
from orchestrator.storage import MirrorState
from orchestrator.storage.netapp import (
    FIELDS,
    RelationshipNotFound,
    cluster_url,
    for_site,
    request_by_destination,
    volume_status,
)
from tests.storage.ontap_fake import CREDENTIALS, FakeOntap, install, netapp_topology, record
from tests.storage.test_netapp import UUID


@pytest.fixture
def ontap(monkeypatch: pytest.MonkeyPatch) -> FakeOntap:
    return install(monkeypatch)


def test_the_relationship_into_a_site_is_read_on_that_sites_cluster(ontap: FakeOntap) -> None:
    ontap.holds("dc2", record("snapmirrored_healthy"))
    status = volume_status(
        netapp_topology(), netapp_topology().volumes[0], destination="dc2", timeout=1.0
    )
    assert (status.name, status.source, status.destination) == ("mail", "dc1", "dc2")
    assert (status.state, status.healthy, status.lag_seconds) == (MirrorState.MIRRORED, True, 151)
    assert status.last_transfer_duration == 2.0
    [(cluster, req)] = ontap.calls
    assert cluster == "https://ontap-dc2.test"
    assert req.path == request_by_destination("vs1:mail_data_dst").path


def test_the_lookup_asks_for_the_destination_and_every_parsed_field() -> None:
    req = request_by_destination("vs1:mail_data_dst")
    assert req.method == "GET"
    assert req.path == (
        f"/api/snapmirror/relationships?destination.path=vs1%3Amail_data_dst&fields={FIELDS}"
    )


def test_either_way_follows_a_reversed_mirror(ontap: FakeOntap) -> None:
    topo = netapp_topology()
    ontap.holds("dc1", record("snapmirrored_healthy", reverse=True))
    with pytest.raises(
        RelationshipNotFound,
        match=r"ontap-dc2\.test has no SnapMirror relationship into vs1:mail_data_dst",
    ):
        volume_status(topo, topo.volumes[0], destination="dc2", timeout=1.0)
    status = volume_status(topo, topo.volumes[0], destination="dc2", timeout=1.0, either_way=True)
    assert (status.source, status.destination, status.state) == ("dc2", "dc1", MirrorState.MIRRORED)


def test_no_relationship_either_way_names_both_lookups(ontap: FakeOntap) -> None:
    topo = netapp_topology()
    with pytest.raises(RelationshipNotFound) as caught:
        volume_status(topo, topo.volumes[0], destination="dc2", timeout=1.0, either_way=True)
    assert "vs1:mail_data_dst" in str(caught.value) and "vs0:mail_data" in str(caught.value)


def test_two_relationships_into_one_copy_are_refused(ontap: FakeOntap) -> None:
    topo = netapp_topology()
    ontap.holds("dc2", record("snapmirrored_healthy"))
    ontap.holds("dc2", record("paused_unhealthy"))
    with pytest.raises(Failed, match="lists 2 SnapMirror relationships into vs1:mail_data_dst"):
        volume_status(topo, topo.volumes[0], destination="dc2", timeout=1.0)


def test_an_operation_acts_on_the_uuid_it_found(ontap: FakeOntap) -> None:
    topo = netapp_topology()
    ontap.holds("dc2", record("snapmirrored_healthy"))
    for_site(topo, topo.volumes[0], "dc2", 1.0).break_()
    changes = [(req.method, req.path, req.body) for _, req in ontap.calls if req.method != "GET"]
    assert changes == [("PATCH", f"/api/snapmirror/relationships/{UUID}", {"state": "broken_off"})]


def test_credentials_must_be_user_colon_password(
    ontap: FakeOntap, monkeypatch: pytest.MonkeyPatch
) -> None:
    topo = netapp_topology()
    monkeypatch.setenv(CREDENTIALS["dc2"], "just-a-password")
    with pytest.raises(
        Failed, match=f"credentials of dc2 \\(\\${CREDENTIALS['dc2']}\\) are not 'user:password'"
    ):
        for_site(topo, topo.volumes[0], "dc2", 1.0)
    monkeypatch.delenv(CREDENTIALS["dc2"])
    with pytest.raises(SecretError, match=CREDENTIALS["dc2"]):
        for_site(topo, topo.volumes[0], "dc2", 1.0)


@pytest.mark.parametrize(
    ("cluster", "url"),
    [
        ("ontap.dc1.example.net", "https://ontap.dc1.example.net"),
        ("192.0.2.5:8443", "https://192.0.2.5:8443"),
        ("https://ontap.dc1.example.net/", "https://ontap.dc1.example.net"),
    ],
)
def test_cluster_url_is_always_https(cluster: str, url: str) -> None:
    assert cluster_url(cluster) == url


# --- clusters that do not answer, over real sockets on 127.0.0.1 --------------------


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def silent_port() -> Iterator[int]:
    """Accepts TCP connections (the kernel does) but never says a word."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield int(sock.getsockname()[1])


@pytest.mark.parametrize("port_fixture", ["closed_port", "silent_port"])
def test_a_cluster_that_does_not_answer_is_unavailable(
    port_fixture: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = request.getfixturevalue(port_fixture)
    for name in CREDENTIALS.values():
        monkeypatch.setenv(name, "admin:secret")
    topo = netapp_topology({"dc1": f"127.0.0.1:{port}", "dc2": f"127.0.0.1:{port}"})
    with pytest.raises(Unavailable, match=f"ONTAP https://127.0.0.1:{port} unreachable"):
        volume_status(topo, topo.volumes[0], destination="dc2", timeout=0.3, either_way=True)
