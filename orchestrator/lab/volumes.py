"""The sites' mail volumes: btrfs on loop devices, mirrored dc1 → dc2.

Stands in for SAN volumes + SnapMirror, using the project's btrfs driver
(`orchestrator.storage.volumes`, `orchestrator.storage.btrfs_mirror`) and mirror daemon
(`orchestrator.lab.mirrord`). Per datacenter:

- `<state>/volumes/<site>.img`: a sparse 256 MB image on a loop device, btrfs;
- `<state>/volumes/<site>/`: the pool (filesystem top level, live subvolume `data`,
  read-only snapshots `snaps/data@N`);
- `<state>/<site>/volume`: the service path where the writable side's `data` subvolume
  is mounted; the mail store is `<service path>/mail/<user>/Maildir`.

The relationship `mail` (config `<state>/volumes/mirror-mail.config.json`, state
`mirror-mail.json`) starts dc1 → dc2. The mirror daemon is recorded under dc2, as a
SnapMirror destination pulls on its schedule: `kill-site dc2` or `pause-site dc2` stops
the transfers and the lag grows, which is what a drill wants to see.

Both sites' pools sit on this machine, so a killed or hung site's data would still be
readable. A lost site's array is not, and a mirror cannot copy what its source no longer
serves: `kill-site` and `pause-site` leave `<state>/volumes/<site>.down` (saying which),
and the daemon sends nothing from or to a site marked so. Without it the standby would
go on receiving the dead site's last writes, and every failover would look loss-free.
`heal-site`, `up` and `down` take the mark away.

A `wide` lab (`orchestrator.lab.shape`) has four relationships instead of `mail`, one per
volume of each mailbox server (`mailbox1-store`, `mailbox1-index`, ...), each with its own
subvolume in the site's pool (one array per site, many volumes, as a SAN has) and its own
service path `<state>/<site>/<server>/<kind>`; one mirror daemon transfers them all.
The first relationship stands for the lab's direction (`writable_site`).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from orchestrator.lab import layout, shape
from orchestrator.lab.mirrord import CUTS_FILE
from orchestrator.lab.state import Component, LabState
from orchestrator.storage.btrfs_mirror import BtrfsMirror, MirrorConfig, SitePaths
from orchestrator.storage.volumes import create_site_volume, destroy_site_volume, volume_paths

SUBVOLUME = "data"  # the mirrored subvolume that holds the mail store
MIRROR = "mail"
MIRROR_SITE = "dc2"  # where the mirror daemon runs (the destination, as SnapMirror)
INTERVAL_S = 2.0


def pool(state: LabState, site: str) -> Path:
    """Where the site's whole btrfs filesystem (live subvolume, snapshots) is mounted."""
    return volume_paths(state.root, layout.check_site(site))[1]


def mount_point(state: LabState, site: str) -> Path:
    """Where the site's mail volume is mounted (the application's data lives under it)."""
    return state.root / layout.check_site(site) / "volume"


@dataclass(frozen=True)
class Relationship:
    """One mirrored volume: its relationship's name, its subvolume, where each site mounts it."""

    name: str
    subvolume: str
    server: str | None  # the wide mailbox server that mounts it (None: the single shape)
    kind: str  # "store" or "index" (wide); "mail" (single)

    def mount_point(self, state: LabState, site: str) -> Path:
        if self.server is None:
            return mount_point(state, site)
        return state.root / layout.check_site(site) / self.server / self.kind


def relationships(state: LabState) -> list[Relationship]:
    """The lab's mirrored volumes, in its recorded shape; the first sets the direction."""
    servers = shape.servers(shape.recorded(state.resources))
    if not servers:
        return [Relationship(MIRROR, SUBVOLUME, None, MIRROR)]
    return [
        Relationship(server.volume(kind), server.volume(kind), server.name, kind)
        for server in servers
        for kind in shape.VOLUME_KINDS
    ]


def config_path(state: LabState, name: str = MIRROR) -> Path:
    return state.root / "volumes" / f"mirror-{name}.config.json"


def first_config_path(state: LabState) -> Path:
    """The config of the relationship that stands for the lab's direction."""
    return config_path(state, relationships(state)[0].name)


def faults_dir(state: LabState) -> Path:
    """Where `<site>.down` marks a site whose array no longer answers (see the module doc)."""
    return state.root / "volumes"


def mark_array_down(state: LabState, site: str, how: str) -> None:
    """Written before the site's processes are signalled: no transfer starts after it."""
    if site in layout.DATACENTERS:
        faults_dir(state).mkdir(parents=True, exist_ok=True)
        (faults_dir(state) / f"{site}.down").write_text(f"{how}\n")


def mark_array_up(state: LabState, site: str) -> None:
    (faults_dir(state) / f"{site}.down").unlink(missing_ok=True)


def mark_cuts(state: LabState, cuts: set[tuple[str, str]]) -> None:
    """Tell the mirror daemon which WAN links are cut (its transfers cross the WAN)."""
    faults_dir(state).mkdir(parents=True, exist_ok=True)
    target = faults_dir(state) / CUTS_FILE
    tmp = target.with_suffix(".tmp")
    tmp.write_text(json.dumps(sorted([a, b] for a, b in cuts)) + "\n")
    os.replace(tmp, target)


def clear_array_faults(state: LabState) -> None:
    """Every site's array answers again: `up` brings every site back, `down` ends them."""
    for site in layout.DATACENTERS:
        mark_array_up(state, site)
    (faults_dir(state) / CUTS_FILE).unlink(missing_ok=True)


def mirror_config(state: LabState, rel: Relationship | None = None) -> MirrorConfig:
    """A relationship's config (default: the first, the one that sets the direction)."""
    rel = rel or relationships(state)[0]
    return MirrorConfig(
        name=rel.name,
        source=layout.ACTIVE_SITE,
        destination=next(s for s in layout.DATACENTERS if s != layout.ACTIVE_SITE),
        sites={
            site: SitePaths(pool=pool(state, site), service_path=rel.mount_point(state, site))
            for site in layout.DATACENTERS
        },
        state_file=state.root / "volumes" / f"mirror-{rel.name}.json",
        subvolume=rel.subvolume,
        interval_seconds=INTERVAL_S,
    )


def mirror(state: LabState) -> BtrfsMirror:
    return BtrfsMirror(mirror_config(state))


def create(state: LabState) -> None:
    """Attach, format (first time only) and mount both pools; mount the writable side.

    Idempotent, and also what a second `up` after `down` runs: the relationship's state
    file, not the initial direction, says which site is writable (it may be dc2 after a
    failover).
    """
    recorded = state.resources.setdefault("volumes", {})
    for site in layout.DATACENTERS:
        volume = create_site_volume(state.root, site)
        recorded[site] = {
            "image": str(volume.image),
            "loopdev": volume.loopdev,
            "pool": str(volume.mountpoint),
        }
        state.save()  # recorded at once: `down` must find the loop device after a crash
    for rel in relationships(state):
        for site in layout.DATACENTERS:
            # The host's directory the mount point goes in, at every site, as a real
            # host's /opt/zimbra is there before any mount (`sitectl evaluate` checks
            # it): for the single shape, the site's own directory, there already.
            rel.mount_point(state, site).parent.mkdir(parents=True, exist_ok=True)
        config = mirror_config(state, rel)
        config.save(config_path(state, rel.name))
        driver = BtrfsMirror(config)
        status = driver.initialize()  # baseline transfer; a no-op once initialised
        rel.mount_point(state, status.writable_site).mkdir(parents=True, exist_ok=True)
        driver.mount(status.writable_site)


def writable_site(state: LabState) -> str:
    return mirror(state).status().writable_site


def prepare(state: LabState, programs: dict[str, str]) -> list[Component]:
    """The mirror daemon (started after `create` has initialised the relationship)."""
    del programs  # runs on this venv's Python, like the rest of sitectl
    home = state.site_dir(MIRROR_SITE, "mirrord")
    home.mkdir(parents=True, exist_ok=True)
    return [
        Component(
            name=f"{MIRROR_SITE}-mirrord",
            site=MIRROR_SITE,
            kind="mirrord",
            address=f"mirror {', '.join(rel.name for rel in relationships(state))}",
            argv=[
                sys.executable,
                "-m",
                "orchestrator.lab.mirrord",
                # One daemon for every relationship: a process each would cost a Python.
                *(
                    arg
                    for rel in relationships(state)
                    for arg in ("--config", str(config_path(state, rel.name)))
                ),
                "--down-dir",
                str(faults_dir(state)),
            ],
            cwd=str(home),
            log=str(home / "mirrord.log"),
        )
    ]


def ready(state: LabState) -> bool:
    """Every relationship has completed a transfer and reports no error."""
    for rel in relationships(state):
        status = BtrfsMirror(mirror_config(state, rel)).status()
        if status.last_transfer_at is None or status.last_error is not None:
            return False
    return True


def destroy(state: LabState) -> None:
    """Unmount everything on the sites' loop devices and detach them (images are kept)."""
    for site in layout.DATACENTERS:
        destroy_site_volume(state.root, site)
    clear_array_faults(state)
    state.resources.pop("volumes", None)
