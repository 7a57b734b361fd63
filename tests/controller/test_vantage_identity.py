"""Each site's controller identity (issue 19, finding 2), against a real ZooKeeper
ensemble: a controller host holding sitectl's identity and its own can neither change,
delete nor create another site's vantage report; a node it makes in another site's name
is not counted by the leader, whichever ACL it gives it; the rightful controller makes
its node again and is counted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError
from kazoo.security import ACL, Id, Permissions

from orchestrator.config import load_topology
from orchestrator.config.model import Topology
from orchestrator.controller.zkstate import ControllerState, VantageIdentities
from orchestrator.coordination.client import connect, digest_id, sitectl_id
from orchestrator.coordination.paths import ZkPaths
from tests.controller.conftest import Ensemble, topology_doc

pytestmark = pytest.mark.lab
SITES = ("dc1", "dc2", "witness")


def private(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o600)
    return path


@pytest.fixture
def topology(tmp_path: Path, ensemble: Ensemble, cluster_name: str) -> Topology:
    doc = topology_doc(cluster_name, ensemble.hosts)
    private(tmp_path / "sitectl.digest", "sitectl:s3cret\n")
    doc["zookeeper"]["auth"] = {"credentials": {"file": "sitectl.digest"}}
    doc["zookeeper"]["controller_ids"] = {s: digest_id(f"ctl-{s}:pw-{s}") for s in SITES}
    (tmp_path / "topology.yaml").write_text(yaml.safe_dump(doc))
    return load_topology(tmp_path / "topology.yaml", check_filesystem=False)


def controller_state(topo: Topology, site: str) -> tuple[KazooClient, ControllerState]:
    credentials = f"ctl-{site}:pw-{site}"
    client = connect(topo, timeout=10, identity=credentials)
    readers = (sitectl_id(topo) or "",)
    identities = VantageIdentities(
        dict(topo.zookeeper.controller_ids), own=digest_id(credentials), readers=readers
    )
    return client, ControllerState(
        client, ZkPaths.for_cluster(topo.zookeeper.chroot, topo.cluster), identities
    )


def counted(state: ControllerState) -> dict[str, str]:
    return {p.site: p.data["says"] for p in state.vantage_reports()}


def test_a_controller_cannot_vote_in_another_sites_name(topology: Topology) -> None:
    clients: list[KazooClient] = []
    try:
        (c1, dc1), (c2, dc2), (cw, leader) = (controller_state(topology, s) for s in SITES)
        clients += [c1, c2, cw]
        assert dc1.publish("dc1", {"says": "dc1 is fine"})
        assert dc2.publish("dc2", {"says": "dc1 is fine"})
        assert counted(leader) == {"dc1": "dc1 is fine", "dc2": "dc1 is fine"}, leader.untrusted
        assert leader.untrusted == {}

        node = f"{leader.vantage_path}/dc2"
        forged = json.dumps({"says": "dc1 is down"}).encode()
        with pytest.raises(NoAuthError):
            c1.set(f"{node}/report", forged)  # dc1's host, with sitectl's identity too
        with pytest.raises(NoAuthError):
            c1.delete(f"{node}/report")

        c2.stop()  # dc2's controller goes away: its report with its session
        c2.close()
        clients.remove(c2)
        assert counted(leader) == {"dc1": "dc1 is fine"}
        with pytest.raises(NoAuthError):
            c1.create(f"{node}/report", forged, ephemeral=True)

        # Its site's node is empty now, so sitectl's identity may delete it and make one
        # of its own: open, then closed to look like dc2's.
        sitectl_all = [ACL(Permissions.ALL, Id("digest", sitectl_id(topology) or ""))]
        c1.delete(node)
        c1.create(node, b"", acl=sitectl_all)
        c1.create(f"{node}/report", forged, ephemeral=True)
        assert counted(leader) == {"dc1": "dc1 is fine"}
        assert leader.untrusted["dc2"].startswith("it may be written by digest:sitectl:")
        readers = (sitectl_id(topology) or "",)
        legit = VantageIdentities({}, own=topology.zookeeper.controller_ids["dc2"], readers=readers)
        c1.set_acls(node, legit.node_acl())  # exactly the ACL dc2's controller gives it
        assert counted(leader) == {"dc1": "dc1 is fine"}
        assert leader.untrusted == {"dc2": "its ACL was changed after it was made (version 1)"}

        # A stranger may call itself ctl-dc2 (digest auth takes any password): its node,
        # closed from birth, names another digest than the topology's.
        c1.stop()  # its forged report ends with its session; then it comes back
        c1.close()
        clients.remove(c1)
        c1, dc1 = controller_state(topology, "dc1")
        clients.append(c1)
        assert dc1.publish("dc1", {"says": "dc1 is fine"})
        c1.delete(node)
        c1.add_auth("digest", "ctl-dc2:not-the-password")
        impostor = VantageIdentities({}, own=digest_id("ctl-dc2:not-the-password"), readers=readers)
        c1.create(node, b"", acl=impostor.node_acl())
        c1.create(f"{node}/report", forged, ephemeral=True)
        assert counted(leader) == {"dc1": "dc1 is fine"}
        assert leader.untrusted["dc2"].startswith("it may be written by digest:ctl-dc2:")
        assert digest_id("ctl-dc2:not-the-password") in leader.untrusted["dc2"]

        # dc2's controller comes back: it makes its node again and is counted.
        c2, dc2 = controller_state(topology, "dc2")
        clients.append(c2)
        c1.stop()  # the forged report was dc1's session's
        c1.close()
        clients.remove(c1)
        assert dc2.publish("dc2", {"says": "dc1 is fine"})
        assert counted(leader) == {"dc2": "dc1 is fine"}
        assert leader.untrusted == {}
    finally:
        for client in clients:
            client.stop()
            client.close()
