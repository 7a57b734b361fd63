"""Real btrfs pools on loop devices in a tmp dir, torn down and checked after each test."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from orchestrator.storage import (
    BtrfsMirror,
    MirrorConfig,
    SitePaths,
    create_site_volume,
    destroy_site_volume,
)

SIZE_MB = 160


def mounts_under(path: Path) -> list[str]:
    prefix = str(path.resolve())
    with open("/proc/mounts", encoding="utf-8") as fh:
        return [line for line in fh if line.split()[1].startswith(prefix)]


def loops_for(image: Path) -> str:
    return subprocess.run(
        ["losetup", "-j", str(image)], capture_output=True, text=True, check=True
    ).stdout.strip()


@dataclass
class Clock:
    """Injected wall clock: lag and ages are computed from it, so tests never sleep."""

    now: float = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Lab:
    state_dir: Path
    config: MirrorConfig
    config_path: Path
    clock: Clock

    def mirror(self) -> BtrfsMirror:
        """A fresh driver object: proves state comes from disk, not from memory."""
        return BtrfsMirror(self.config, clock=self.clock)

    def service(self, site: str) -> Path:
        return self.config.sites[site].service_path

    def snap(self, site: str, name: str) -> Path:
        return self.config.sites[site].pool / "snaps" / name


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    # Teardown is part of the contract: nothing of ours may stay mounted or attached.
    for site in ("dc1", "dc2"):
        destroy_site_volume(tmp_path, site, purge=True)
    assert mounts_under(tmp_path) == []
    for site in ("dc1", "dc2"):
        assert loops_for(tmp_path / "volumes" / f"{site}.img") == ""


@pytest.fixture
def lab(state_dir: Path) -> Lab:
    sites = {}
    for site in ("dc1", "dc2"):
        vol = create_site_volume(state_dir, site, SIZE_MB)
        sites[site] = SitePaths(pool=vol.mountpoint, service_path=state_dir / site / "mail")
    config = MirrorConfig(
        name="mail",
        source="dc1",
        destination="dc2",
        sites=sites,
        state_file=state_dir / "volumes" / "mirror-mail.json",
        keep_snapshots=3,
        interval_seconds=0.3,
        max_lag_seconds=30,
    )
    config_path = state_dir / "volumes" / "mirror-mail.config.json"
    config.save(config_path)
    lab = Lab(state_dir, config, config_path, Clock())
    lab.mirror().initialize()
    lab.mirror().mount("dc1")
    return lab
