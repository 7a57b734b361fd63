"""Volumes and their mirror relationships (SAN replication / SnapMirror and its lab stand-in).

- `model`: `MirrorState`, `MirrorStatus` and the `MirrorDriver` interface the orchestrator uses.
- `relationship`: the persisted state and its transition rules (pure).
- `statefile`: atomic JSON state file and the per-relationship lock.
- `btrfs`: one function per btrfs/mount/losetup command, errors mapped to `orchestrator.errors`.
- `volumes`: lab volumes, `create_site_volume` / `destroy_site_volume`.
- `btrfs_mirror`: `BtrfsMirror`, the lab's driver, and its `MirrorConfig`.
- `python -m orchestrator.storage --config CFG OP [SITE]`: the driver from the shell, for
  playbooks (JSON with a ``changed`` flag; see `__main__`).
- `netapp`: `OntapSnapMirror`, a thin ONTAP REST client (status, quiesce, resume, break,
  update), tested on sample payloads only.
"""

from orchestrator.storage.btrfs_mirror import BtrfsMirror, MirrorConfig, SitePaths
from orchestrator.storage.model import MirrorDriver, MirrorState, MirrorStatus
from orchestrator.storage.volumes import SiteVolume, create_site_volume, destroy_site_volume

__all__ = [
    "BtrfsMirror",
    "MirrorConfig",
    "MirrorDriver",
    "MirrorState",
    "MirrorStatus",
    "SitePaths",
    "SiteVolume",
    "create_site_volume",
    "destroy_site_volume",
]
