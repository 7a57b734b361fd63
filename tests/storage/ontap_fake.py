"""Two ONTAP clusters for pure tests: the sample payloads of tests/storage/ontap/ served
in place of the REST transport (`OntapSnapMirror._call`), and a two-site topology whose
NetApp volume names the payloads' paths (``vs0:mail_data`` in dc1, ``vs1:mail_data_dst``
in dc2). Unreachable clusters are tested over real sockets instead (see the tests).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from orchestrator.config.model import Topology
from orchestrator.storage.netapp import OntapSnapMirror, Request
from tests.checks.topologies import topology
from tests.storage.test_netapp import payload

CLUSTERS = {"dc1": "ontap-dc1.test", "dc2": "ontap-dc2.test"}
PATHS = {"dc1": "vs0:mail_data", "dc2": "vs1:mail_data_dst"}
CREDENTIALS = {"dc1": "ONTAP_DC1_TEST", "dc2": "ONTAP_DC2_TEST"}


def netapp_volume(clusters: dict[str, str] | None = None) -> dict[str, Any]:
    """The volume ``mail`` on NetApp, mirrored dc1 → dc2, as topology data."""
    clusters = clusters or CLUSTERS
    return {
        "name": "mail",
        "driver": "netapp",
        "role": "mta",
        "mount_point": "/srv/mail",
        "mirror": {"source": "dc1", "destination": "dc2"},
        "sites": {
            site: {
                "cluster": clusters[site],
                "svm": PATHS[site].split(":")[0],
                "volume": PATHS[site].split(":")[1],
                "export": f"nfs-{site}:/mail",
                "credentials": {"env": CREDENTIALS[site]},
            }
            for site in ("dc1", "dc2")
        },
    }


def netapp_topology(clusters: dict[str, str] | None = None, **changes: Any) -> Topology:
    """The checks' base topology with only the NetApp volume as replicated data."""
    return topology(volumes=[netapp_volume(clusters)], ldap=None, object_store=None, **changes)


def record(name: str, *, reverse: bool = False, **fields: Any) -> dict[str, Any]:
    """A sample payload, optionally mirrored dc2 → dc1, with fields replaced."""
    data = copy.deepcopy(payload(name))
    if reverse:
        data["source"], data["destination"] = {"path": PATHS["dc2"]}, {"path": PATHS["dc1"]}
    data.update(fields)
    return data


@dataclass
class FakeOntap:
    """Relationships per cluster (``https://host``), listed by their destination path."""

    clusters: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    calls: list[tuple[str, Request]] = field(default_factory=list)

    def holds(self, site: str, relationship: dict[str, Any], cluster: str = "") -> None:
        """`site`'s cluster (or `cluster`) lists `relationship` (ONTAP lists it at its
        destination)."""
        host = cluster or CLUSTERS[site]
        self.clusters.setdefault(f"https://{host}", []).append(relationship)

    def answer(self, client: OntapSnapMirror, req: Request) -> dict[str, Any]:
        self.calls.append((client.base_url, req))
        if req.method != "GET":
            return {}  # a change: ONTAP answers with a job, which the client does not read
        url = urlsplit(req.path)
        assert url.path == "/api/snapmirror/relationships", req
        wanted = parse_qs(url.query)["destination.path"][0]
        found = [
            r for r in self.clusters.get(client.base_url, []) if r["destination"]["path"] == wanted
        ]
        return {"records": found, "num_records": len(found)}


def install(monkeypatch: pytest.MonkeyPatch) -> FakeOntap:
    """Answer every ONTAP call from a `FakeOntap`, with the test credentials set."""
    fake = FakeOntap()
    monkeypatch.setattr(OntapSnapMirror, "_call", lambda client, req: fake.answer(client, req))
    for name in CREDENTIALS.values():
        monkeypatch.setenv(name, "admin:secret")
    return fake
