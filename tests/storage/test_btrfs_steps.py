"""The engine's mount steps on a btrfs volume answer "already true?" only where they can
see the volume's pool. The driver's mounts are this machine's: a sitectl that does not
see the pool (run from another mount namespace, or on a host without it) must not take
an empty service path for an unmounted volume. Pure: no btrfs, no playbook."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from orchestrator.engine.handlers import StepContext
from orchestrator.engine.steps.volumes import MountHandler
from orchestrator.errors import Unavailable
from orchestrator.plan.build import build_plan
from orchestrator.plan.observed import assumed_state
from orchestrator.storage import MirrorConfig
from orchestrator.storage.btrfs_mirror import SitePaths
from tests.checks.topologies import BASE, topology
from tests.unit.engine_fakes import FakeFence, operation_record


@pytest.mark.parametrize(
    ("action", "step_id"), [("unmount", "unmount/dc1/mailstore"), ("mount", "mount/dc2/mailstore")]
)
def test_a_pool_sitectl_cannot_see_leaves_the_mount_unknown_not_done(
    tmp_path: Path, action: str, step_id: str
) -> None:
    config = MirrorConfig(
        name="mail",
        source="dc1",
        destination="dc2",
        sites={
            site: SitePaths(pool=tmp_path / site / "pool", service_path=tmp_path / site / "volume")
            for site in ("dc1", "dc2")
        },
        state_file=tmp_path / "mirror-state.json",
    )
    config.save(tmp_path / "mirror.json")
    volume = copy.deepcopy(BASE["volumes"][0]) | {"mirror_config": str(tmp_path / "mirror.json")}
    topo = topology(volumes=[volume])
    plan = build_plan(topo, assumed_state(topo), "switchover", "dc2")
    step = next(s for s in plan.steps() if s.id == step_id)
    ctx = StepContext(topo, plan, operation_record(plan), FakeFence(), tmp_path, lambda _: None)

    with pytest.raises(Unavailable, match=r"dc\d's pool .* is not mounted where sitectl runs"):
        MountHandler(action).check(step, ctx)  # type: ignore[arg-type]
