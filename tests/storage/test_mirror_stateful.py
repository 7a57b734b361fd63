"""Random sequences of mirror operations on real loop devices, checked against the rules.

Hypothesis drives the driver through quiesce/resume/update/break/reverse/mount/unmount
and application writes in any order. After every step:

* the driver did what `relationship.decide` says (refused exactly what it refuses);
* the destination is never mounted unless the relationship is broken (in a disaster the
  old source may stay mounted after a break: that is allowed and documented);
* after a transfer, the destination's newest snapshot has exactly the source's files;
  after a break, the destination's live volume has exactly the last snapshot's files.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from orchestrator.errors import Failed
from orchestrator.storage import (
    BtrfsMirror,
    MirrorConfig,
    MirrorState,
    SitePaths,
    btrfs,
    create_site_volume,
    destroy_site_volume,
    statefile,
)
from orchestrator.storage.relationship import Op, Verdict, decide

from .conftest import loops_for, mounts_under

pytestmark = [pytest.mark.lab, pytest.mark.timeout(600)]
SITES = ("dc1", "dc2")


def tree(path: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in path.iterdir() if p.is_file()}


class MirrorMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="mirror-sm-"))
        sites = {}
        for site in SITES:
            vol = create_site_volume(self.dir, site, 160)
            sites[site] = SitePaths(vol.mountpoint, self.dir / site / "mail")
        self.config = MirrorConfig(
            name="mail",
            source="dc1",
            destination="dc2",
            sites=sites,
            state_file=self.dir / "volumes" / "mirror-mail.json",
        )
        self.mirror = BtrfsMirror(self.config)
        self.mirror.initialize()
        self.mirror.mount("dc1")
        self.writes = 0

    def teardown(self) -> None:
        for site in SITES:
            destroy_site_volume(self.dir, site, purge=True)
        assert mounts_under(self.dir) == []
        assert all(loops_for(self.dir / "volumes" / f"{s}.img") == "" for s in SITES)
        shutil.rmtree(self.dir, ignore_errors=True)

    # --- helpers ---

    def rel(self):  # type: ignore[no-untyped-def]
        rel = statefile.load(self.config.state_file)
        assert rel is not None
        return rel

    def live(self, site: str) -> Path:
        return self.config.sites[site].pool / "data"

    def newest(self, site: str) -> Path:
        rel = self.rel()
        assert rel.last_snapshot is not None
        return self.config.sites[site].pool / "snaps" / rel.last_snapshot

    def mounted(self, site: str) -> bool:
        return btrfs.mount_at(self.config.sites[site].service_path) is not None

    def expect(self, op: Op, call: object, new_source: str | None = None) -> Verdict:
        verdict = decide(self.rel(), op, new_source).verdict
        if verdict is Verdict.REFUSE:
            with pytest.raises(Failed):
                call()  # type: ignore[operator]
        else:
            call()  # type: ignore[operator]
        return verdict

    # --- rules ---

    @rule()
    def app_writes(self) -> None:
        site = self.mirror.status().writable_site
        if self.mounted(site):  # the application writes through its mount only
            self.writes += 1
            (self.config.sites[site].service_path / f"m{self.writes}").write_text(site)

    @rule()
    def quiesce(self) -> None:
        self.expect(Op.QUIESCE, self.mirror.quiesce)

    @rule()
    def resume(self) -> None:
        self.expect(Op.RESUME, self.mirror.resume)

    @rule()
    def update(self) -> None:
        if self.expect(Op.UPDATE, self.mirror.update) is Verdict.APPLY:
            rel = self.rel()
            assert tree(self.newest(rel.destination)) == tree(self.live(rel.source))

    @rule()
    def scheduled_transfer(self) -> None:
        before = self.rel()
        outcome = self.mirror.scheduled_transfer()
        applies = decide(before, Op.TRANSFER).verdict is Verdict.APPLY
        assert outcome.startswith("transferred" if applies else "skipped")

    @rule()
    def break_(self) -> None:
        if self.expect(Op.BREAK, self.mirror.break_) is Verdict.APPLY:
            rel = self.rel()
            assert tree(self.live(rel.destination)) == tree(self.newest(rel.destination))

    @rule()
    def reverse(self) -> None:
        self.expect(Op.REVERSE, self.mirror.reverse)

    @rule(site=st.sampled_from(SITES))
    def mount(self, site: str) -> None:
        writable = self.mirror.status().writable_site
        if site == writable:
            self.mirror.mount(site)
            assert self.mounted(site)
        else:
            with pytest.raises(Failed, match="split the brain"):
                self.mirror.mount(site)

    @rule(site=st.sampled_from(SITES))
    def unmount(self, site: str) -> None:
        self.mirror.unmount(site)
        assert not self.mounted(site)

    # --- invariants ---

    @invariant()
    def destination_unmounted_unless_broken(self) -> None:
        rel = self.rel()
        if rel.state is not MirrorState.BROKEN:
            assert not self.mounted(rel.destination)

    @invariant()
    def no_error_recorded(self) -> None:
        assert self.rel().last_error is None


MirrorMachine.TestCase.settings = settings(
    max_examples=20,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_mirror_operations_in_any_order = MirrorMachine.TestCase
