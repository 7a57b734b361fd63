"""The sites' volumes, as the lab's other modules see them.

INTEGRATION POINT (btrfs): `orchestrator.storage.btrfs` and `orchestrator.lab.mirrord`
(built in parallel) will provide btrfs on loop devices, the mirror daemon and
break/mount/reverse. Until they land, `create` makes a plain directory per datacenter at
the mount point, so the application has its Maildir where the volume will be mounted;
nothing is mirrored. Only `create`, `destroy` and `mount_point` are used elsewhere in
the lab, so the switch-over is confined to this module.
"""

from __future__ import annotations

from pathlib import Path

from orchestrator.lab import layout
from orchestrator.lab.state import LabState

SUBVOLUME = "data"  # the mirrored subvolume that holds the mail store


def pool(state: LabState, site: str) -> Path:
    """Where the site's whole btrfs filesystem (live subvolume, snapshots) is mounted."""
    return state.root / "volumes" / layout.check_site(site)


def mount_point(state: LabState, site: str) -> Path:
    """Where the site's mail volume is mounted (the application's data lives under it)."""
    return state.root / layout.check_site(site) / "volume"


def create(state: LabState) -> None:
    for site in layout.DATACENTERS:
        mount_point(state, site).mkdir(parents=True, exist_ok=True)
    state.resources["volumes"] = {"driver": "directory"}


def destroy(state: LabState) -> None:
    state.resources.pop("volumes", None)
