"""The dead-man agent's pure parts: the signed feed, the decision table by its sentences,
the fence actions read from the lab's and the example's topologies, and the agent's
loop driven by a fake clock and fake actions (no servers)."""

from __future__ import annotations

import json
import socket
from dataclasses import replace
from pathlib import Path

import pytest

from orchestrator.config import load_topology
from orchestrator.config.inventory import host_vars_in
from orchestrator.deadman.actions import (
    FenceAction,
    fence_actions,
    guarded_hosts,
    render,
    restore_actions,
)
from orchestrator.deadman.agent import Agent, override_in
from orchestrator.deadman.decision import Memory, Verdict, judge
from orchestrator.deadman.feed import Ack, BadFeed, Feed, decode, decode_ack, encode, encode_ack
from orchestrator.deadman.feeder import agent_addresses
from orchestrator.storage.epochfence import refused

KEY = b"k" * 24
EXAMPLE = Path(__file__).resolve().parents[2] / "inventories/example-zimbra/topology.yaml"


def test_a_feed_round_trips_and_nothing_else_passes() -> None:
    feed = Feed("dc1", True, 17, 5.0)
    assert decode(encode(feed, KEY), KEY) == feed
    with pytest.raises(BadFeed, match="bad signature"):
        decode(encode(feed, b"other key"), KEY)
    body = encode(feed, KEY).replace(b'"holder": true', b'"holder": false')
    with pytest.raises(BadFeed, match="bad signature"):
        decode(body, KEY)
    with pytest.raises(BadFeed, match="no signature"):
        decode(b'{"site": "dc1"}', KEY)
    with pytest.raises(BadFeed, match="fence_after must be positive"):
        decode(encode(Feed("dc1", True, 1, 0.0), KEY), KEY)


ARMED = Memory("dc1", armed=True, fed_at=100.0, fence_after=5.0, seq=1)


@pytest.mark.parametrize(
    ("memory", "now", "verdict", "sentence"),
    [
        (
            Memory("dc1"),
            500.0,
            Verdict.IDLE,
            "dc1 does not hold the right to serve: nothing to guard",
        ),
        (
            Memory("dc1", armed=False, fed_at=100.0, fence_after=5.0, seq=3),
            500.0,
            Verdict.IDLE,
            "dc1 does not hold the right to serve: nothing to guard",
        ),
        (ARMED, 103.25, Verdict.SERVE, "dc1 was confirmed 3.2 s ago: it may serve"),
        (ARMED, 105.0, Verdict.SERVE, "dc1 was confirmed 5.0 s ago: it may serve"),
        (
            ARMED,
            105.5,
            Verdict.FENCE,
            "dc1's controller has not confirmed the site for 5.5 s (fence after 5 s): fencing dc1",
        ),
        (
            Memory("dc1", armed=True, fed_at=100.0, fence_after=5.0, seq=1, fenced=True),
            900.0,
            Verdict.FENCED,
            "dc1 is fenced: waiting for its controller",
        ),
        (
            Memory("dc1", fed_at=100.0, fence_after=5.0, seq=4, lost=True),
            100.5,
            Verdict.FENCE,
            "dc1 lost the site ticket to a failover: fencing dc1",
        ),
        (
            Memory("dc1", fed_at=100.0, fence_after=5.0, seq=4, lost=True, fenced=True),
            100.5,
            Verdict.FENCED,
            "dc1 is fenced: waiting for its controller",
        ),
        (
            Memory("dc1", armed=True, fed_at=100.0, fence_after=5.0, seq=5, override="CHG-1"),
            900.0,
            Verdict.RESTORE,
            "dc1 serves by the operator's override (CHG-1): restoring dc1",
        ),
        (
            Memory(
                "dc1",
                armed=True,
                fed_at=100.0,
                fence_after=5.0,
                seq=5,
                override="CHG-1",
                restored=True,
            ),
            900.0,
            Verdict.OVERRIDDEN,
            "dc1 serves by the operator's override (CHG-1) without the cluster's ticket: "
            "not fencing it",
        ),
    ],
)
def test_the_agents_decision(memory: Memory, now: float, verdict: Verdict, sentence: str) -> None:
    assert judge(memory, now) == (verdict, sentence)


def test_a_replayed_feed_feeds_nothing_and_a_new_one_clears_a_fence() -> None:
    fenced = Memory("dc1", armed=True, fed_at=100.0, fence_after=5.0, seq=9, fenced=True)
    assert fenced.fed(holder=True, seq=9, fence_after=5.0, now=200.0) is fenced
    assert fenced.fed(holder=True, seq=8, fence_after=5.0, now=200.0) is fenced
    fresh = fenced.fed(holder=True, seq=10, fence_after=5.0, now=200.0)
    assert (fresh.fenced, fresh.fed_at, fresh.seq) == (False, 200.0, 10)
    assert not fresh.fed(holder=False, seq=11, fence_after=5.0, now=201.0).armed


def test_a_site_that_lost_the_ticket_is_fenced_on_the_first_feed_saying_so(
    tmp_path: Path,
) -> None:
    ran: list[str] = []
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    actions = [FenceAction("stop role mta on dc1-mta", argv=("true",))]
    agent = Agent("dc1", actions, KEY, sock, tmp_path / "m.json", clock=lambda: 0.0,
                  run=lambda a: ran.append(a.what))  # fmt: skip
    agent.heard(encode(Feed("dc1", False, 1, 5.0), KEY))
    assert agent.tick() is Verdict.IDLE, "a site that handed the ticket over stands down"
    agent.heard(encode(Feed("dc1", False, 2, 5.0, fence=True), KEY))
    assert agent.tick() is Verdict.FENCE and ran == ["stop role mta on dc1-mta"]
    agent.heard(encode(Feed("dc1", False, 3, 5.0, fence=True), KEY))
    assert agent.tick() is Verdict.FENCED and len(ran) == 1, "fenced once"
    sock.close()


def test_an_override_stands_until_the_cluster_decides() -> None:
    fenced = Memory("dc1", armed=True, fed_at=100.0, fence_after=5.0, seq=9, fenced=True)
    over = fenced.fed(holder=True, seq=10, fence_after=5.0, now=200.0, override="CHG-1")
    assert (over.override, over.fenced, over.restored, over.armed) == ("CHG-1", False, False, True)
    restored = replace(over, restored=True)
    # The controller without a quorum, or not vouching for the site: the override stands.
    standing = restored.fed(holder=False, seq=11, fence_after=5.0, now=300.0)
    assert (standing.override, standing.restored) == ("CHG-1", True)
    assert judge(standing, 10_000.0)[0] is Verdict.OVERRIDDEN, "silence fences nothing"
    # A quorum back and the site the holder: the ordinary rules again.
    held = standing.fed(holder=True, seq=12, fence_after=5.0, now=400.0)
    assert (held.override, judge(held, 401.0)[0]) == (None, Verdict.SERVE)
    # The site lost the ticket to a failover meanwhile: fenced at once.
    lost = standing.fed(holder=False, seq=12, fence_after=5.0, now=400.0, lost=True)
    assert (lost.override, judge(lost, 400.0)[0]) == (None, Verdict.FENCE)
    # A second override restores again (the site may have been fenced since).
    again = restored.fed(holder=True, seq=13, fence_after=5.0, now=500.0, override="CHG-2")
    assert (again.override, again.restored) == ("CHG-2", False)


def test_an_override_and_its_acknowledgement_are_signed() -> None:
    feed = Feed("dc1", True, 17, 5.0, override="dc2 lost; CHG-4711")
    assert decode(encode(feed, KEY), KEY) == feed
    assert decode_ack(encode_ack(Ack("dc1", 17), KEY), KEY) == Ack("dc1", 17)
    with pytest.raises(BadFeed, match="bad signature"):
        decode_ack(encode_ack(Ack("dc1", 17), b"other key"), KEY)


def test_an_agent_takes_an_override_acknowledges_it_and_restores_once(tmp_path: Path) -> None:
    now = [0.0]
    ran: list[str] = []
    fence = [FenceAction("stop role mta on dc1-mta", argv=("true",))]
    restore = [
        FenceAction("mount volume mail at dc1", argv=("true",)),
        FenceAction("start role mta on dc1-mta", argv=("true",)),
    ]
    agent_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    agent_sock.bind(("127.0.0.1", 0))
    operator = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    operator.bind(("127.0.0.1", 0))
    operator.settimeout(2)
    memory = tmp_path / "memory.json"
    agent = Agent("dc1", fence, KEY, agent_sock, memory, restore_actions=restore,
                  clock=lambda: now[0], run=lambda a: ran.append(a.what))  # fmt: skip
    agent.heard(encode(Feed("dc1", True, 1, 5.0), KEY))
    now[0] = 6.0
    assert agent.tick() is Verdict.FENCE and ran == ["stop role mta on dc1-mta"]
    assert override_in(memory, "dc1") is None
    agent.heard(encode(Feed("dc1", True, 2, 5.0, override="CHG-1"), KEY),
                operator.getsockname())  # fmt: skip
    assert decode_ack(operator.recv(4096), KEY) == Ack("dc1", 2)
    assert override_in(memory, "dc1") == "CHG-1", "the start gate reads it before the roles start"
    assert override_in(memory, "dc2") is None
    assert agent.tick() is Verdict.RESTORE
    assert ran[1:] == ["mount volume mail at dc1", "start role mta on dc1-mta"]
    now[0] = 1000.0
    assert agent.tick() is Verdict.OVERRIDDEN and len(ran) == 3, "restored once, never fenced"
    # Restarted, it remembers the override and does not fence on silence.
    again = Agent("dc1", fence, KEY, agent_sock, memory, restore_actions=restore,
                  clock=lambda: now[0], run=lambda a: ran.append(a.what))  # fmt: skip
    assert again.tick() is Verdict.OVERRIDDEN and len(ran) == 3
    agent_sock.close()
    operator.close()


def test_a_restore_undoes_each_fence_action_volumes_first_roles_in_start_order() -> None:
    topo = load_topology(EXAMPLE)
    hosts = guarded_hosts(topo, "dc1", None)
    undo = [a.what for a in restore_actions(topo, "dc1", hosts, {})]
    done = [a.what for a in fence_actions(topo, "dc1", hosts, {})]
    opposite = {"stop": "start", "unmount": "mount", "drop": "take"}
    assert sorted(undo) == sorted(
        f"{opposite[verb]} {rest}" for verb, rest in (w.split(" ", 1) for w in done)
    )
    starts = [w for w in undo if w.startswith("start role")]
    mounts = [w for w in undo if w.startswith("mount volume")]
    assert starts and mounts
    assert max(undo.index(w) for w in mounts) < min(undo.index(w) for w in starts)
    orders = [topo.roles[w.split()[2]].start_order for w in starts]
    assert orders == sorted(orders), "first-started first"


def test_render_fills_host_variables_and_refuses_an_unknown_one() -> None:
    assert render("{{ lab_app }} stop", {"lab_app": "/x/app"}) == "/x/app stop"
    with pytest.raises(ValueError, match=r"names \{\{ nope \}\}, which the host does not set"):
        render("{{ nope }} stop", {})


def test_the_example_fences_its_application_and_volumes_host_by_host() -> None:
    topo = load_topology(EXAMPLE)
    actions = fence_actions(topo, "dc1", guarded_hosts(topo, "dc1", None), {})
    whats = [a.what for a in actions]
    stops = [w for w in whats if w.startswith("stop role")]
    assert stops, "the application's moving roles are stopped"
    # Last started first: the order of the roles' start_order, reversed.
    orders = [topo.roles[w.split()[2]].start_order for w in stops]
    assert orders == sorted(orders, reverse=True)
    assert not any(w.startswith("stop role ldap") for w in whats), "LDAP does not move"
    assert {w for w in whats if w.startswith("unmount")} == {
        f"unmount volume {v.name} at dc1" for v in topo.volumes
    }
    assert whats.index(stops[-1]) < whats.index(next(w for w in whats if w.startswith("unmount")))


def test_an_agent_fences_once_when_starved_and_remembers_it(tmp_path: Path) -> None:
    now = [0.0]
    ran: list[str] = []
    actions = [
        FenceAction("stop role mta on dc1-mta", argv=("true",)),
        FenceAction("boom", shell="x"),
    ]

    def run(action: FenceAction) -> str | None:
        ran.append(action.what)
        return "exit 1: no such command" if action.what == "boom" else None

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    memory = tmp_path / "memory.json"
    agent = Agent("dc1", actions, KEY, sock, memory, clock=lambda: now[0], run=run)
    assert agent.tick() is Verdict.IDLE
    agent.heard(encode(Feed("dc2", True, 1, 5.0), KEY))  # another site's feed
    assert agent.tick() is Verdict.IDLE
    agent.heard(encode(Feed("dc1", True, 2, 5.0), KEY))
    now[0] = 4.0
    assert agent.tick() is Verdict.SERVE
    now[0] = 5.5
    assert agent.tick() is Verdict.FENCE
    assert ran == ["stop role mta on dc1-mta", "boom"], "a failed action does not stop the next"
    assert agent.tick() is Verdict.FENCED and len(ran) == 2
    assert json.loads(memory.read_text())["fenced"] is True
    # Restarted, it stays fenced; fed again, it serves.
    again = Agent("dc1", actions, KEY, sock, memory, clock=lambda: now[0], run=run)
    assert again.tick() is Verdict.FENCED
    again.heard(encode(Feed("dc1", True, 3, 5.0), KEY))
    assert again.tick() is Verdict.SERVE
    sock.close()


def test_an_agent_says_it_is_alive_between_fence_actions(tmp_path: Path) -> None:
    """systemd's watchdog must hear from an agent in the middle of a long fence, or it
    would kill the agent half-way (each action is bounded; the fence as a whole is not)."""
    said: list[str] = []
    actions = [FenceAction(f"stop {n}", argv=("true",)) for n in ("a", "b", "c")]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    agent = Agent(
        "dc1", actions, KEY, sock, tmp_path / "m.json", clock=lambda: 0.0,
        run=lambda a: said.append(a.what), alive=lambda: said.append("alive"),
    )  # fmt: skip
    agent.fence()
    assert said == ["stop a", "alive", "stop b", "alive", "stop c", "alive"]
    sock.close()


def test_an_agent_restarted_while_armed_fences_unless_fed_in_time(tmp_path: Path) -> None:
    memory = tmp_path / "memory.json"
    memory.write_text(json.dumps({"armed": True, "seq": 5, "fence_after": 5.0, "fenced": False}))
    now = [1000.0]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    agent = Agent("dc1", [], KEY, sock, memory, clock=lambda: now[0], run=lambda a: None)
    assert agent.tick() is Verdict.SERVE
    now[0] = 1005.1
    assert agent.tick() is Verdict.FENCE
    sock.close()


def test_host_vars_merge_groups_outer_first() -> None:
    inventory = {
        "all": {
            "vars": {"a": 1, "b": 1},
            "children": {
                "dc1": {"vars": {"b": 2}, "hosts": {"h1": {"c": 3}, "h2": None}},
                "dc1_mta": {"hosts": {"h1": None}},
            },
        }
    }
    found = host_vars_in(inventory)
    assert found["h1"] == {"a": 1, "b": 2, "c": 3}
    assert found["h2"] == {"a": 1, "b": 2}


@pytest.mark.parametrize(
    ("newest", "epoch", "refused_text"),
    [
        (None, 0, None),
        (5, 5, None),
        (5, 6, None),
        (5, 4, "epoch 4 is stale: epoch 5 has already acted on this mirror"),
    ],
)
def test_the_hosts_epoch_fence(newest: int | None, epoch: int, refused_text: str | None) -> None:
    said = refused(newest, epoch)
    assert (said is None) == (refused_text is None)
    assert refused_text is None or (said is not None and said.startswith(refused_text))


def test_only_hosts_a_fence_touches_run_an_agent() -> None:
    topo = load_topology(EXAMPLE)
    fed = {address for address, _ in agent_addresses(topo, "dc1")}
    for host in (h for h in topo.hosts if h.site == "dc1"):
        touched = bool(fence_actions(topo, "dc1", [host], {}))
        assert (host.address in fed) is touched or any(
            other.address == host.address for other in topo.hosts if other is not host
        ), host.name
    ldap_only = [h for h in topo.hosts if h.site == "dc1" and set(h.roles) == {"ldap"}]
    assert ldap_only and not {h.address for h in ldap_only} & fed, "LDAP never moves"


@pytest.mark.parametrize(
    ("host", "unmounted"),
    [
        ("mbox1.dc1", {"mailstore1", "metadata1", "index1"}),
        ("mbox2.dc1", {"mailstore2", "metadata2", "index2"}),
        ("mta1.dc1", set()),
    ],
)
def test_a_host_fences_only_the_volumes_it_mounts(host: str, unmounted: set[str]) -> None:
    # The example's volumes name their host per site (`hosts`): mbox1's agent must not
    # try mbox2's store, which is not mounted there.
    topo = load_topology(EXAMPLE)
    guarded = [h for h in topo.hosts if h.name == host]
    whats = [a.what for a in fence_actions(topo, "dc1", guarded, {})]
    assert {w.split()[2] for w in whats if w.startswith("unmount")} == unmounted


def test_an_agent_host_needs_only_the_topology_its_inventory_and_the_key(tmp_path: Path) -> None:
    """`deadman run` starts without the files the rest of the topology names (CAs,
    TSIG keys, LDAP and S3 secrets: not on every host); one that is there is still
    checked (test_config_validation: a world-readable key), and so is the key it reads,
    here a systemd credential given as --key-file."""
    import shutil

    from typer.testing import CliRunner

    from orchestrator.cli.main import app

    copy = tmp_path / "example"
    shutil.copytree(EXAMPLE.parent, copy)
    (copy / "pki" / "ca.pem").unlink()  # zookeeper.tls.ca_file: `validate` refuses this
    key = tmp_path / "deadman.key"
    key.write_text("k" * 32)
    key.chmod(0o400)  # as systemd makes a credential
    args = ["deadman", "run", "-c", str(copy / "topology.yaml"), "--site", "dc1",
            "--address", "192.0.2.31", "--state-file", str(tmp_path / "s.json"),
            "--key-file", str(key)]  # fmt: skip
    done = CliRunner().invoke(app, args, env={})
    # It got as far as listening: 192.0.2.31 (RFC 5737) is no address of this machine.
    assert done.exit_code == 2 and "cannot listen on UDP port 9401" in done.output, done.output
    key.chmod(0o644)
    done = CliRunner().invoke(app, args, env={})
    assert done.exit_code == 2 and f"chmod 600 {key}" in done.output, done.output
