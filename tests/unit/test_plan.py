"""The plan is a pure function: tables of (topology, observed state, mode, target) →
ordered phases, groups and refusals. No servers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.config import Topology, load_topology
from orchestrator.config.model import BtrfsSite, BtrfsVolume, Mirror
from orchestrator.plan import (
    Action,
    MirrorView,
    ObservedState,
    Phase,
    PlanRefused,
    assumed_state,
    build_plan,
    build_reprotect_plan,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "inventories" / "example-zimbra" / "topology.yaml"


@pytest.fixture(scope="module")
def topo() -> Topology:
    return load_topology(EXAMPLE)


def _shape(plan) -> list[tuple[str, list[str]]]:
    return [(g.phase.value, [s.id for s in g.steps]) for g in plan.groups]


# Each mailbox server's own store, database and index, mbox1's first.
VOLUMES = ["mailstore1", "metadata1", "index1", "mailstore2", "metadata2", "index2"]
SWITCHOVER = [
    (
        "preflight",
        [
            "preflight/zookeeper",
            "preflight/ldap",
            "preflight/object-store",
            "preflight/mirrors",
            "preflight/dns",
            "preflight/application",
        ],
    ),
    ("readiness", ["readiness/gate"]),
    # While the application still serves: the final sync after the stop is then short.
    ("pre-sync", [f"pre-sync/{v}" for v in VOLUMES]),
    ("disable-application", ["disable-application/dc1/canary"]),
    ("disable-application", ["disable-application/dc1/mta", "disable-application/dc1/proxy"]),
    ("disable-application", ["disable-application/dc1/mailbox"]),
    ("unmount", [f"unmount/dc1/{v}" for v in VOLUMES]),
    ("ticket", ["ticket/release/dc1"]),
    ("final-sync", [f"final-sync/{v}" for v in VOLUMES]),
    ("break-mirrors", [f"break-mirrors/{v}" for v in VOLUMES]),
    ("mount", [f"mount/dc2/{v}" for v in VOLUMES]),
    ("dns", ["dns/corp.example.net.", "dns/example.com."]),
    ("ticket", ["ticket/grant/dc2"]),
    # The example's own step (custom_steps): mbox*.dc2 take over the Zimbra server
    # identities once their volumes are mounted and the ticket is dc2's.
    ("custom", ["custom/zimbra-move-identity"]),
    ("start-services", ["start-services/dc2/dns", "start-services/dc2/ldap"]),
    ("start-services", ["start-services/dc2/mailbox"]),
    ("start-services", ["start-services/dc2/mta", "start-services/dc2/proxy"]),
    ("verify", ["verify/dns", "verify/application/dc2", "verify/canary"]),
    ("verify", ["verify/activate"]),
]


def test_switchover_follows_the_zimbra_procedure(topo: Topology) -> None:
    plan = build_plan(topo, assumed_state(topo), "switchover", "dc2")
    assert _shape(plan) == SWITCHOVER
    assert (plan.from_site, plan.to_site, plan.old_site_reachable) == ("dc1", "dc2", True)
    assert all(s.if_unreachable == "fail" for s in plan.steps())


def test_a_pre_sync_is_skipped_below_its_lag_and_left_out_when_switched_off(
    topo: Topology,
) -> None:
    plan = build_plan(topo, assumed_state(topo), "switchover", "dc2")
    step = plan.step("pre-sync/mailstore1")
    assert (step.action, step.site, step.params["lag_above"]) == (
        Action.MIRROR_UPDATE,
        "dc2",
        topo.policy.pre_sync_above,
    )
    off = topo.model_copy(
        update={"policy": topo.policy.model_copy(update={"pre_sync_above": None})}
    )
    plan = build_plan(off, assumed_state(off), "switchover", "dc2")
    assert not [s for s in plan.steps() if s.phase is Phase.PRE_SYNC]


def test_failover_takes_no_final_sync_and_skips_an_unreachable_old_site(topo: Topology) -> None:
    observed = assumed_state(topo, frozenset({"dc1"}))
    plan = build_plan(topo, observed, "failover", "dc2")
    expected = [
        (phase, [i for i in ids if i != "verify/canary"])
        for phase, ids in SWITCHOVER
        if phase not in ("pre-sync", "final-sync") and ids != ["disable-application/dc1/canary"]
    ]
    # Not a release by a site that may be gone: a wait for its ticket, before anything
    # at dc2 becomes writable.
    expected[expected.index(("ticket", ["ticket/release/dc1"]))] = ("ticket", ["fence/wait/dc1"])
    # dc1 holds the internal zone's only primary: dc2's server is promoted before the
    # updates, side by side with the mirrors' break.
    breaks = [f"break-mirrors/{v}" for v in VOLUMES]
    at = expected.index(("break-mirrors", breaks))
    expected[at] = ("break-mirrors", [*breaks, "dns/promote/corp.example.net."])
    assert _shape(plan) == expected
    old_site_steps = [s for s in plan.steps() if s.site == "dc1"]
    assert old_site_steps and all(s.if_unreachable == "skip" for s in old_site_steps)
    new_site_steps = [s for s in plan.steps() if s.site == "dc2"]
    assert all(s.if_unreachable == "fail" for s in new_site_steps)
    assert any("dc1 did not answer" in note for note in plan.notes)


@pytest.mark.parametrize("unreachable", [frozenset(), frozenset({"dc1"})])
def test_failover_waits_for_the_old_sites_ticket_before_dc2_becomes_writable(
    topo: Topology, unreachable: frozenset[str]
) -> None:
    plan = build_plan(topo, assumed_state(topo, unreachable), "failover", "dc2")
    order = [s.id for s in plan.steps()]
    wait = plan.step("fence/wait/dc1")
    assert (wait.action, wait.site, wait.if_unreachable) == (Action.FENCE_WAIT, "dc2", "fail")
    writable = {Phase.BREAK_MIRRORS, Phase.MOUNT, Phase.DNS, Phase.START_SERVICES}
    first_writable = min(order.index(s.id) for s in plan.steps() if s.phase in writable)
    assert order.index(wait.id) < first_writable
    # It passes at once only if every stop step on dc1 succeeded: all of them, by id.
    assert wait.params["stop_steps"] == [
        "disable-application/dc1/mta",
        "disable-application/dc1/proxy",
        "disable-application/dc1/mailbox",
        *[f"unmount/dc1/{v}" for v in VOLUMES],
    ]
    assert wait.params["clock_drift"] == topo.policy.clock_drift
    grant = plan.step("ticket/grant/dc2")
    starts = [order.index(s.id) for s in plan.steps() if s.phase is Phase.START_SERVICES]
    assert order.index(wait.id) < order.index(grant.id) < min(starts)
    assert grant.params["ttl"] == topo.ticket_ttl == 14.0
    assert "ticket/release/dc1" not in order


def test_switchover_releases_the_ticket_after_the_stop_and_grants_it_before_the_start(
    topo: Topology,
) -> None:
    plan = build_plan(topo, assumed_state(topo), "switchover", "dc2")
    order = [s.id for s in plan.steps()]
    release, grant = plan.step("ticket/release/dc1"), plan.step("ticket/grant/dc2")
    assert (release.action, release.site) == (Action.TICKET_RELEASE, "dc1")
    stops = [order.index(s.id) for s in plan.steps() if s.action is Action.APP_STOP]
    starts = [order.index(s.id) for s in plan.steps() if s.action is Action.APP_START]
    assert max(stops) < order.index(release.id) < order.index(grant.id) < min(starts)
    assert "fence/wait/dc1" not in order


@pytest.mark.parametrize(
    ("mode", "to", "unreachable", "gate", "says"),
    [
        ("switchover", "dc1", set(), False, "dc1 is already the active site"),
        ("switchover", "witness", set(), False, "'witness' is the witness, which only votes"),
        ("failover", "dc9", set(), False, "site 'dc9' is not in the topology"),
        ("switchover", "dc2", {"dc1"}, True, "use `sitectl failover --to dc2`"),
        ("failover", "dc2", {"dc2"}, True, "dc2 is unreachable"),
    ],
)
def test_refusals(topo: Topology, mode, to, unreachable, gate, says) -> None:
    with pytest.raises(PlanRefused) as refused:
        build_plan(topo, assumed_state(topo, frozenset(unreachable)), mode, to)
    assert says in str(refused.value)
    assert refused.value.gate is gate


def test_moving_back_needs_the_mirrors_reversed_first(topo: Topology) -> None:
    after_failover = ObservedState(active_site="dc2")  # mirrors still dc1→dc2 per topology
    with pytest.raises(
        PlanRefused, match="mirrors dc1→dc2, not towards dc1 — run `sitectl reprotect`"
    ):
        build_plan(topo, after_failover, "switchover", "dc1")

    reprotected = ObservedState(
        active_site="dc2",
        mirrors={v: MirrorView("dc2", "dc1") for v in VOLUMES},
    )
    plan = build_plan(topo, reprotected, "switchover", "dc1")
    assert (plan.from_site, plan.to_site) == ("dc2", "dc1")
    assert plan.step("disable-application/dc2/mailbox").hosts == ("mbox1.dc2", "mbox2.dc2")
    # Each mailbox server's volumes on that server only (the volume's `hosts`).
    assert plan.step("mount/dc1/mailstore1").hosts == ("mbox1.dc1",)
    assert plan.step("mount/dc1/index2").hosts == ("mbox2.dc1",)
    assert plan.step("unmount/dc2/metadata2").hosts == ("mbox2.dc2",)


def test_ldap_runs_on_both_sites_so_it_is_never_stopped(topo: Topology) -> None:
    plan = build_plan(topo, assumed_state(topo), "switchover", "dc2")
    stopped = {s.target for s in plan.steps() if s.action is Action.APP_STOP}
    assert stopped == {"mailbox", "mta", "proxy"}
    start = plan.step("start-services/dc2/ldap")
    assert start.description == "make sure ldap runs on dc2 (it runs on both sites)"


def test_dns_steps_carry_the_new_and_old_values(topo: Topology) -> None:
    plan = build_plan(topo, assumed_state(topo), "switchover", "dc2")
    internal = plan.step("dns/corp.example.net.")
    assert internal.params["records"] == [
        {
            "name": "mail.corp.example.net.",
            "type": "A",
            "ttl": 60,
            "value": "198.51.100.21",
            "old_value": "192.0.2.21",
        },
        {
            "name": "smtp.corp.example.net.",
            "type": "A",
            "ttl": 60,
            "value": "198.51.100.11",
            "old_value": "192.0.2.11",
        },
    ]
    assert plan.step("dns/example.com.").params["provider"] == "route53"


def test_the_plan_is_deterministic_and_json_ready(topo: Topology) -> None:
    first = build_plan(topo, assumed_state(topo), "switchover", "dc2").to_dict()
    second = build_plan(topo, assumed_state(topo), "switchover", "dc2").to_dict()
    assert first == second
    assert json.loads(json.dumps(first)) == first
    assert first["schema"] == "sitectl.plan/v1"
    ids = [s["id"] for g in first["groups"] for s in g["steps"]]
    assert len(ids) == len(set(ids)), "step ids are checkpoint keys: they must be unique"
    # pre-flight, readiness, the pre-syncs side by side, the canary
    assert [g["parallel"] for g in first["groups"]][:4] == [True, False, True, False]


def test_a_topology_without_volumes_ldap_or_s3_plans_only_what_exists(topo: Topology) -> None:
    slim = topo.model_copy(update={"volumes": (), "ldap": None, "object_store": None})
    plan = build_plan(slim, assumed_state(slim), "switchover", "dc2")
    phases = plan.phases()
    assert not {Phase.PRE_SYNC, Phase.FINAL_SYNC, Phase.MOUNT} & set(phases)
    assert [s.id for s in plan.groups[0].steps] == [
        "preflight/zookeeper",
        "preflight/dns",
        "preflight/application",
    ]


def test_a_broken_mirror_still_points_one_way_only(topo: Topology) -> None:
    # After a switchover to dc2 the mirror is broken with dc2 writable: dc1's copy is
    # stale, so moving back must wait for a reprotect.
    broken = ObservedState(
        active_site="dc2",
        mirrors={v.name: MirrorView("dc1", "dc2", "broken") for v in topo.volumes},
    )
    with pytest.raises(PlanRefused, match="reprotect"):
        build_plan(topo, broken, "switchover", "dc1")


def test_reprotect_reverses_every_mirror_towards_the_standby(topo: Topology) -> None:
    plan = build_reprotect_plan(topo, ObservedState(active_site="dc2"))
    assert (plan.mode, plan.from_site, plan.to_site) == ("reprotect", "dc2", "dc1")
    assert _shape(plan) == [
        (
            "reprotect",
            [
                "reprotect/disable-application/dc1/mta",
                "reprotect/disable-application/dc1/proxy",
                "reprotect/disable-application/dc1/mailbox",
            ],
        ),
        # Before anything turns: what only dc1 holds is salvaged into dc2 or reported.
        # The example's volumes are NetApp's, which sitectl cannot read: no snapshot or
        # mail step, and the decision names them.
        ("salvage", ["salvage/objects/zimbra-blobs", "salvage/ldap-report"]),
        ("salvage", ["salvage/decide"]),
        (
            "reprotect",
            [*[f"reprotect/{v}" for v in VOLUMES], "reprotect/object-store/zimbra-blobs"],
        ),
        ("reprotect", ["reprotect/dns/corp.example.net."]),
    ]
    assert {s.action for s in plan.groups[0].steps} == {Action.APP_STOP}
    assert all(s.site == "dc1" for s in plan.groups[0].steps)
    assert [s.action for s in plan.groups[3].steps] == [
        *[Action.MIRROR_REVERSE] * len(VOLUMES),
        Action.OBJECT_STORE_REVERSE,
    ]
    assert all(s.site == "dc2" for s in plan.groups[3].steps)
    decide = plan.step("salvage/decide")
    assert decide.params["old_site"] == "dc1"
    assert decide.params["buckets"] == ["zimbra-blobs"]
    assert decide.params["uninspected"] == [
        f"volume {v} (netapp): sitectl cannot read dc1's copy" for v in VOLUMES
    ]
    with pytest.raises(PlanRefused, match="dc1 is unreachable") as refused:
        build_plan_unreachable = ObservedState(
            active_site="dc2", unreachable_sites=frozenset({"dc1"})
        )
        build_reprotect_plan(topo, build_plan_unreachable)
    assert refused.value.gate


def test_reprotect_snapshots_and_salvages_each_btrfs_volume_before_reversing_it(
    topo: Topology,
) -> None:
    """A volume sitectl can read (btrfs): its old copy is snapshotted first, then its mail
    salvaged beside the objects and the LDAP report, and only then reversed."""
    btrfs = topo.model_copy(
        update={
            "volumes": (
                BtrfsVolume(
                    name="mailstore",
                    driver="btrfs",
                    role="mailbox",
                    mount_point="/opt/zimbra/store",
                    mirror=Mirror(source="dc1", destination="dc2"),
                    sites={s: BtrfsSite(pool=f"/pools/{s}") for s in ("dc1", "dc2")},
                ),
            )
        }
    )
    plan = build_reprotect_plan(btrfs, ObservedState(active_site="dc2"))
    order = {s.id: i for i, g in enumerate(plan.groups) for s in g.steps}
    assert (
        order["reprotect/disable-application/dc1/mailbox"]
        < order["salvage/snapshot/mailstore"]
        < order["salvage/mail/mailstore"]
        == order["salvage/objects/zimbra-blobs"]
        == order["salvage/ldap-report"]
        < order["salvage/decide"]
        < order["reprotect/mailstore"]
    )
    snapshot = plan.step("salvage/snapshot/mailstore")
    assert (snapshot.action, snapshot.site) == (Action.SALVAGE_SNAPSHOT, "dc1")
    mail = plan.step("salvage/mail/mailstore")
    assert (mail.action, mail.site, mail.params) == (
        Action.SALVAGE_MAIL,
        "dc2",
        {"old_site": "dc1"},
    )
    assert plan.step("salvage/decide").params == {
        "old_site": "dc1",
        "volumes": ["mailstore"],
        "buckets": ["zimbra-blobs"],
        "uninspected": [],
    }


def test_failover_promotes_the_standby_dns_server_and_updates_it_first(topo: Topology) -> None:
    plan = build_plan(topo, assumed_state(topo, frozenset({"dc1"})), "failover", "dc2")
    promote = plan.step("dns/promote/corp.example.net.")
    assert (promote.action, promote.site, promote.hosts) == (
        Action.DNS_PROMOTE,
        "dc2",
        ("ns1.dc2",),
    )
    update = plan.step("dns/corp.example.net.")
    assert update.params["servers"] == ["198.51.100.53:53", "192.0.2.53:53"]
    assert update.params["verify_servers"] == ["198.51.100.53:53"]  # dc1's may be gone
    assert plan.step("verify/dns").params["zones"]["corp.example.net."] == ["198.51.100.53:53"]
    assert any("promoted to primary of corp.example.net." in note for note in plan.notes)
    group_of = {s.id: i for i, g in enumerate(plan.groups) for s in g.steps}
    assert group_of[promote.id] < group_of[update.id], "the update goes to the promoted server"


def test_a_second_failover_back_promotes_the_server_the_topology_names_primary(
    topo: Topology,
) -> None:
    """dc1 lost, failover to dc2 (dc2's server promoted), reprotect (dc1's demoted), then
    dc2 lost: dc1's server is a secondary now although the topology names it, so the
    failover back must promote it, or no record could be repointed."""
    observed = ObservedState(
        active_site="dc2",
        unreachable_sites=frozenset({"dc2"}),
        mirrors={v.name: MirrorView("dc2", "dc1") for v in topo.volumes},  # reprotected
    )
    plan = build_plan(topo, observed, "failover", "dc1")
    promote = plan.step("dns/promote/corp.example.net.")
    assert (promote.site, promote.hosts, promote.params["server"]) == (
        "dc1",
        ("ns1.dc1",),
        "192.0.2.53:53",
    )
    assert plan.step("dns/corp.example.net.").params["servers"][0] == "192.0.2.53:53"


def test_switchover_keeps_the_live_primary_and_verifies_every_server(topo: Topology) -> None:
    plan = build_plan(topo, assumed_state(topo), "switchover", "dc2")
    assert not [s for s in plan.steps() if s.action is Action.DNS_PROMOTE]
    update = plan.step("dns/corp.example.net.")
    assert update.params["servers"] == ["192.0.2.53:53", "198.51.100.53:53"]
    assert update.params["verify_servers"] == ["192.0.2.53:53", "198.51.100.53:53"]


def test_reprotect_demotes_a_primary_that_came_back(topo: Topology) -> None:
    plan = build_reprotect_plan(topo, ObservedState(active_site="dc2"))
    demote = plan.step("reprotect/dns/corp.example.net.")
    assert (demote.action, demote.site) == (Action.DNS_DEMOTE, "dc1")
    assert demote.params["servers"] == ["198.51.100.53:53", "192.0.2.53:53"]


@pytest.mark.parametrize(
    ("template", "values", "expected"),
    [
        (
            "{{ lab_dnsrole }} demote --primary {primary}",
            {"primary": "127.0.2.1"},
            "{{ lab_dnsrole }} demote --primary 127.0.2.1",
        ),
        ("zone-role secondary {primary}", {"primary": "10.0.0.1"}, "zone-role secondary 10.0.0.1"),
        ("awk '{print $1}' {volume}", {"volume": "mailstore"}, "awk '{print $1}' mailstore"),
        ("no placeholders", {"site": "dc2"}, "no placeholders"),
    ],
)
def test_placeholders_leave_jinja_and_shell_braces_alone(template, values, expected) -> None:
    from orchestrator.config.model import fill

    assert fill(template, **values) == expected


@pytest.mark.parametrize(
    ("hosts", "unmount_on", "mount_on"),
    [
        # No `hosts`: every host of the volume's role at the site.
        ({}, ("mbox1.dc1", "mbox2.dc1"), ("mbox1.dc2", "mbox2.dc2")),
        # `hosts`: the one named host per site, whichever it is.
        ({"dc1": "mbox2.dc1", "dc2": "mbox1.dc2"}, ("mbox2.dc1",), ("mbox1.dc2",)),
    ],
    ids=["the-role", "one-host-per-site"],
)
def test_a_volume_is_mounted_where_its_hosts_say(
    topo: Topology, hosts: dict[str, str], unmount_on: tuple[str, ...], mount_on: tuple[str, ...]
) -> None:
    volume = topo.volumes[0].model_copy(update={"hosts": hosts})
    changed = topo.model_copy(update={"volumes": (volume,)})
    plan = build_plan(changed, assumed_state(changed), "switchover", "dc2")
    assert plan.step(f"unmount/dc1/{volume.name}").hosts == unmount_on
    assert plan.step(f"mount/dc2/{volume.name}").hosts == mount_on
