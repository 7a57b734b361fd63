"""The engine's mirror and mount steps on NetApp and command volumes: check ("already
true?") and verify ("done?") read ONTAP's relationship; the command driver says it
cannot be checked. Pure: ONTAP is the fake of `ontap_fake`, no playbook runs."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from orchestrator.config.model import Topology
from orchestrator.engine.handlers import StepContext
from orchestrator.engine.steps.volumes import MirrorHandler, MountHandler
from orchestrator.errors import Unavailable
from orchestrator.plan.build import build_plan, build_reprotect_plan
from orchestrator.plan.model import Plan
from orchestrator.plan.observed import ObservedState, assumed_state
from tests.checks.topologies import topology
from tests.storage.ontap_fake import (
    CLUSTERS,
    PATHS,
    FakeOntap,
    install,
    netapp_topology,
    record,
)
from tests.unit.engine_fakes import FakeFence, operation_record

STARTED = 1_800_000_000.0


@pytest.fixture
def ontap(monkeypatch: pytest.MonkeyPatch) -> FakeOntap:
    return install(monkeypatch)


class Clock:
    def __init__(self) -> None:
        self.now = STARTED

    def __call__(self) -> float:
        return self.now


def context(topo: Topology, plan: Plan, tmp_path: Path, logs: list[str]) -> StepContext:
    return StepContext(topo, plan, operation_record(plan), FakeFence(), tmp_path, logs.append)


def switchover(topo: Topology, tmp_path: Path, logs: list[str]) -> tuple[Plan, StepContext]:
    plan = build_plan(topo, assumed_state(topo), "switchover", "dc2")
    return plan, context(topo, plan, tmp_path, logs)


# --- break ------------------------------------------------------------------------


def test_break_is_already_true_when_the_new_sites_copy_is_broken_off(
    ontap: FakeOntap, tmp_path: Path
) -> None:
    ontap.holds("dc2", record("broken_off"))
    plan, ctx = switchover(netapp_topology(), tmp_path, [])
    assert MirrorHandler("break").check(plan.step("break-mirrors/mail"), ctx) is True
    assert [cluster for cluster, _ in ontap.calls] == ["https://ontap-dc2.test"]


@pytest.mark.parametrize("payload", ["snapmirrored_healthy", "paused_unhealthy"])
def test_break_is_not_already_true_before_the_break(
    ontap: FakeOntap, tmp_path: Path, payload: str
) -> None:
    ontap.holds("dc2", record(payload))
    plan, ctx = switchover(netapp_topology(), tmp_path, [])
    assert MirrorHandler("break").check(plan.step("break-mirrors/mail"), ctx) is False


def test_break_is_verified_once_ontap_reports_broken_off(ontap: FakeOntap, tmp_path: Path) -> None:
    relationship = record("paused_unhealthy")
    ontap.holds("dc2", relationship)
    plan, ctx = switchover(netapp_topology(), tmp_path, [])
    step = plan.step("break-mirrors/mail")
    with pytest.raises(Unavailable, match="mirror mail is quiesced, not broken yet"):
        MirrorHandler("break").verify(step, ctx)
    relationship.update(record("broken_off"))  # the array finished its job
    MirrorHandler("break").verify(step, ctx)
    assert ctx.figures["mirror_lag_seconds/mail"] == 600.5


def test_a_missing_relationship_is_not_verified(ontap: FakeOntap, tmp_path: Path) -> None:
    plan, ctx = switchover(netapp_topology(), tmp_path, [])
    with pytest.raises(Unavailable, match="no SnapMirror relationship into vs1:mail_data_dst"):
        MirrorHandler("break").verify(plan.step("break-mirrors/mail"), ctx)


# --- final sync -------------------------------------------------------------------


def test_a_final_sync_is_never_already_done(ontap: FakeOntap, tmp_path: Path) -> None:
    ontap.holds("dc2", record("snapmirrored_healthy"))
    plan, ctx = switchover(netapp_topology(), tmp_path, [])
    assert MirrorHandler("update").check(plan.step("final-sync/mail"), ctx) is False
    assert ontap.calls == []


@pytest.mark.parametrize(
    ("lag_time", "above", "already"),
    [
        ("PT2M31S", 30.0, False),  # 151 s behind: worth sending while the application serves
        ("PT20S", 30.0, True),  # 20 s: the final transfer will carry little anyway
        ("PT30S", 30.0, True),
        ("PT5S", 0.0, False),  # 0: always
        (None, 30.0, False),  # no lag known: send
    ],
)
def test_a_pre_sync_is_already_true_for_a_mirror_lagging_little(
    ontap: FakeOntap, tmp_path: Path, lag_time: str | None, above: float, already: bool
) -> None:
    relationship = record("snapmirrored_healthy")
    if lag_time is None:
        del relationship["lag_time"]
    else:
        relationship["lag_time"] = lag_time
    ontap.holds("dc2", relationship)
    topo = netapp_topology()
    topo = topo.model_copy(
        update={"policy": topo.policy.model_copy(update={"pre_sync_above": above})}
    )
    plan, ctx = switchover(topo, tmp_path, [])
    said: list[str] = []
    ctx = replace(ctx, log=said.append)
    assert MirrorHandler("update").check(plan.step("pre-sync/mail"), ctx) is already
    assert bool(said) is already
    if already:
        assert said == [
            f"volume mail: its mirror lags {ontap_lag(lag_time):.1f} s, no more than {above:g} "
            "s: nothing worth sending before the application stops"
        ]


def ontap_lag(lag_time: str | None) -> float:
    minutes, _, seconds = (lag_time or "").removeprefix("PT").removesuffix("S").rpartition("M")
    return float(minutes or 0) * 60 + float(seconds)


@pytest.mark.parametrize(
    ("seconds_since_start", "lag_time", "verified"),
    [
        (200.0, "PT2M31S", True),  # snapshot 151 s old, taken after the step began
        (100.0, "PT2M31S", False),  # snapshot older than the step: not the final one
        (100.0, None, False),  # nothing transferred at all
    ],
)
def test_a_final_sync_is_verified_by_a_snapshot_younger_than_the_step(
    ontap: FakeOntap,
    tmp_path: Path,
    seconds_since_start: float,
    lag_time: str | None,
    verified: bool,
) -> None:
    relationship = record("snapmirrored_healthy")
    if lag_time is None:
        del relationship["lag_time"]
    ontap.holds("dc2", relationship)
    plan, ctx = switchover(netapp_topology(), tmp_path, [])
    step = plan.step("final-sync/mail")
    clock = Clock()
    handler = MirrorHandler("update", clock=clock)
    handler.starting(step, ctx)
    clock.now += seconds_since_start
    if verified:
        handler.verify(step, ctx)
        assert ctx.figures["mirror_lag_seconds/mail"] == 151.0
    else:
        with pytest.raises(Unavailable, match="no transfer finished since the final sync began"):
            handler.verify(step, ctx)


# --- reverse (reprotect) ----------------------------------------------------------


def reprotect(topo: Topology, tmp_path: Path) -> tuple[Plan, StepContext]:
    plan = build_reprotect_plan(topo, ObservedState(active_site="dc2"))
    return plan, context(topo, plan, tmp_path, [])


def test_reverse_is_not_done_while_nothing_mirrors_into_the_standby(
    ontap: FakeOntap, tmp_path: Path
) -> None:
    ontap.holds("dc2", record("broken_off"))  # the failover's break, still there
    plan, ctx = reprotect(netapp_topology(), tmp_path)
    step = plan.step("reprotect/mail")
    assert MirrorHandler("reverse").check(step, ctx) is False
    assert [cluster for cluster, _ in ontap.calls] == ["https://ontap-dc1.test"]
    with pytest.raises(Unavailable, match="no SnapMirror relationship into vs0:mail_data"):
        MirrorHandler("reverse").verify(step, ctx)


def test_reverse_done_by_the_runbook_is_already_true(ontap: FakeOntap, tmp_path: Path) -> None:
    ontap.holds("dc1", record("snapmirrored_healthy", reverse=True))
    plan, ctx = reprotect(netapp_topology(), tmp_path)
    step = plan.step("reprotect/mail")
    assert MirrorHandler("reverse").check(step, ctx) is True
    MirrorHandler("reverse").verify(step, ctx)


def test_a_paused_reverse_is_not_verified(ontap: FakeOntap, tmp_path: Path) -> None:
    ontap.holds("dc1", record("paused_unhealthy", reverse=True))
    plan, ctx = reprotect(netapp_topology(), tmp_path)
    step = plan.step("reprotect/mail")
    assert MirrorHandler("reverse").check(step, ctx) is False
    with pytest.raises(Unavailable, match="not yet mirrored from dc2"):
        MirrorHandler("reverse").verify(step, ctx)


def test_reverse_names_the_standby_as_destination_and_the_active_copy_as_source(
    tmp_path: Path,
) -> None:
    # orchestrator/playbooks/tasks/netapp.yml resyncs the standby's copy from the active one, and reads
    # the active copy's cluster first to find the failover's break; secrets stay named.
    loaded_from = tmp_path / "topology.yaml"
    topo = netapp_topology().model_copy(update={"source_file": loaded_from})
    plan, ctx = reprotect(topo, tmp_path)
    extra = MirrorHandler("reverse").call(plan.step("reprotect/mail"), ctx).extravars
    assert {k: v for k, v in extra.items() if k.startswith("netapp_")} == {
        # The epoch check before each ONTAP change loads the same file again.
        "netapp_topology": str(loaded_from),
        "netapp_cluster": CLUSTERS["dc1"],
        "netapp_destination_path": PATHS["dc1"],
        "netapp_credentials_env": "ONTAP_DC1_TEST",
        "netapp_credentials_file": "",
        "netapp_export": "nfs-dc2:/mail",
        "netapp_source_cluster": CLUSTERS["dc2"],
        "netapp_source_path": PATHS["dc2"],
        "netapp_source_credentials_env": "ONTAP_DC2_TEST",
        "netapp_source_credentials_file": "",
    }


def test_a_netapp_step_hands_its_playbook_the_credentials_it_reads_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Not in ansible-playbook's environment, nor in the extra vars: named here and
    # written to private files for the run (adapters/ansible.py), read when it starts.
    monkeypatch.setenv("ONTAP_DC1_TEST", "admin:dc1-r8")
    monkeypatch.setenv("ONTAP_DC2_TEST", "admin:dc2-r8")
    plan, ctx = reprotect(netapp_topology(), tmp_path)
    call = MirrorHandler("reverse").call(plan.step("reprotect/mail"), ctx)
    assert {name: s.reveal() for name, s in call.secrets.items()} == {
        "ONTAP_DC1_TEST": "admin:dc1-r8",
        "ONTAP_DC2_TEST": "admin:dc2-r8",
    }
    assert "r8" not in repr(call) and "r8" not in str(call.extravars)
    plan, ctx = switchover(netapp_topology(), tmp_path, [])
    assert set(MirrorHandler("break").call(plan.step("break-mirrors/mail"), ctx).secrets) == {
        "ONTAP_DC2_TEST"
    }
    assert MountHandler("mount").call(plan.step("mount/dc2/mail"), ctx).secrets == {}


def test_only_a_reverse_names_a_source(tmp_path: Path) -> None:
    plan, ctx = switchover(netapp_topology(), tmp_path, [])
    extra = MirrorHandler("break").call(plan.step("break-mirrors/mail"), ctx).extravars
    assert extra["netapp_destination_path"] == PATHS["dc2"]
    assert not [k for k in extra if k.startswith("netapp_source")]


# --- mounts and the command driver ------------------------------------------------


def test_a_netapp_mount_is_left_to_the_playbook_and_says_so(
    ontap: FakeOntap, tmp_path: Path
) -> None:
    logs: list[str] = []
    plan, ctx = switchover(netapp_topology(), tmp_path, logs)
    step = plan.step("mount/dc2/mail")
    assert MountHandler("mount").check(step, ctx) is False
    MountHandler("mount").verify(step, ctx)
    assert logs == [
        "volume mail: sitectl cannot see netapp mounts on the hosts, so the playbook's own "
        "mount test decides whether to mount and its result verifies"
    ]
    assert ontap.calls == []


COMMAND_VOLUME: dict[str, Any] = {
    "name": "mail",
    "driver": "command",
    "role": "mta",
    "mount_point": "/srv/mail",
    "mirror": {"source": "dc1", "destination": "dc2"},
    "commands": {
        "status": "san-mirror status {volume}",
        "break": "san-mirror break {volume} {site}",
        "mount": "mount /dev/san/{volume} {mount_point}",
        "unmount": "umount {mount_point}",
    },
}


@pytest.mark.parametrize(
    ("action", "step_id"), [("break", "break-mirrors/mail"), ("update", "final-sync/mail")]
)
def test_a_command_volume_says_once_that_it_cannot_be_checked(
    tmp_path: Path, action: Any, step_id: str
) -> None:
    logs: list[str] = []
    topo = topology(volumes=[COMMAND_VOLUME], ldap=None, object_store=None)
    plan, ctx = switchover(topo, tmp_path, logs)
    handler = MirrorHandler(action)
    assert handler.check(plan.step(step_id), ctx) is False
    handler.verify(plan.step(step_id), ctx)
    assert logs == [
        f"volume mail: the command driver's state cannot be read by sitectl, so its {action} "
        "command runs unchecked and its exit status is the result"
    ]
