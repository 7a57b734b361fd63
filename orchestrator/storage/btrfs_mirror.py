"""The lab's mirror driver: btrfs read-only snapshots sent incrementally between two pools.

Stands in for SAN replication / NetApp SnapMirror. Both sites' pools are mounted on this
machine (see `volumes`), so one process can run both ends of `btrfs send | btrfs receive`.

Entry points::

    cfg = MirrorConfig(name="mail", source="dc1", destination="dc2",
                       sites={"dc1": SitePaths(pool=..., service_path=...), "dc2": ...},
                       state_file=<state_dir>/volumes/mirror-mail.json)
    cfg.save(path) / MirrorConfig.load(path)      # the JSON that mirrord --config reads
    m = BtrfsMirror(cfg)
    m.initialize()      # baseline: create the live subvolume on the source, first full send
    m.mount("dc1")      # mount the live subvolume at dc1's service path
    m.status() / update() / quiesce() / resume() / break_() / reverse() / unmount(site)
    m.scheduled_transfer()  # what mirrord calls every interval

On disk, per site pool: ``<subvol>`` (the live, writable volume: only on the writable
side), ``snaps/<subvol>@N`` (read-only snapshots, the same N on both sides) and
``retired/`` (a live subvolume set aside by break/reverse instead of deleted, so writes
that never reached the other side can still be recovered by hand) and ``salvage/``
(read-only snapshots of a site's live subvolume taken before a reprotect, which
sitectl's salvage reads: `salvage_snapshot`).

Semantics (pure rules in `relationship.decide`, shared by every driver):

* update: one transfer now, allowed mirrored or quiesced (the final sync of a switchover
  is quiesce → stop app → unmount → update → break).
* break_: writable snapshot of the last transferred snapshot becomes the destination's
  live subvolume. The source is not touched (in a disaster it may be unreachable); it
  can no longer be mounted by `mount()`, which only mounts the writable side.
* reverse: the broken-off destination becomes the source: the old source's service path
  is unmounted, its live subvolume retired, and the first transfer back is incremental
  from the last common snapshot (btrfs matches it through the received UUID).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.errors import Failed
from orchestrator.storage import btrfs, statefile
from orchestrator.storage.model import MirrorState, MirrorStatus
from orchestrator.storage.relationship import (
    Decision,
    Op,
    Relationship,
    Verdict,
    decide,
    status_of,
)
from orchestrator.storage.volumes import RETIRED_DIR, SALVAGE_DIR, SNAPS_DIR


@dataclass(frozen=True)
class SitePaths:
    pool: Path  # where the site's filesystem top level is mounted
    service_path: Path  # where the live subvolume is mounted for the application


@dataclass(frozen=True)
class MirrorConfig:
    name: str
    source: str  # initial direction; after that the state file decides
    destination: str
    sites: dict[str, SitePaths]
    state_file: Path
    subvolume: str = "data"
    keep_snapshots: int = 3
    interval_seconds: float = 2.0
    max_lag_seconds: float = 30.0

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["state_file"] = str(self.state_file)
        data["sites"] = {
            s: {"pool": str(p.pool), "service_path": str(p.service_path)}
            for s, p in self.sites.items()
        }
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MirrorConfig:
        values = dict(data)
        values["state_file"] = Path(values["state_file"])
        values["sites"] = {
            s: SitePaths(Path(p["pool"]), Path(p["service_path"]))
            for s, p in values["sites"].items()
        }
        return cls(**values)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> MirrorConfig:
        try:
            return cls.from_json(json.loads(Path(path).read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise Failed(f"mirror config {path}: {exc}") from exc


class BtrfsMirror:
    """A `MirrorDriver` over two btrfs pools on this machine."""

    def __init__(self, config: MirrorConfig, clock: Callable[[], float] = time.time) -> None:
        if config.source == config.destination or not {config.source, config.destination} <= set(
            config.sites
        ):
            raise Failed(
                f"mirror {config.name}: source and destination must be two of "
                f"the configured sites {sorted(config.sites)}"
            )
        if config.keep_snapshots < 1:
            raise Failed(
                f"mirror {config.name}: keep_snapshots must be at least 1 (the "
                "common snapshot every incremental transfer needs)"
            )
        self.config = config
        self.clock = clock
        self._snap_re = re.compile(rf"^{re.escape(config.subvolume)}@(\d+)$")

    # --- paths ---

    def _paths(self, site: str) -> SitePaths:
        try:
            return self.config.sites[site]
        except KeyError:
            raise Failed(
                f"mirror {self.config.name} has no site {site!r}; "
                f"it has {sorted(self.config.sites)}"
            ) from None

    def _live(self, site: str) -> Path:
        return self._paths(site).pool / self.config.subvolume

    def _snap(self, site: str, name: str) -> Path:
        return self._paths(site).pool / SNAPS_DIR / name

    def _device(self, site: str) -> str:
        pool = self._paths(site).pool
        entry = btrfs.mount_at(pool)
        if entry is None:
            raise Failed(f"{site}: pool {pool} is not mounted (create_site_volume first)")
        return entry.source

    # --- state ---

    def _load(self) -> Relationship:
        rel = statefile.load(self.config.state_file)
        if rel is None:
            raise Failed(
                f"mirror {self.config.name} is not initialised (no {self.config.state_file})"
            )
        return rel

    def _save(self, rel: Relationship) -> MirrorStatus:
        statefile.save(self.config.state_file, rel)
        return status_of(rel, self.clock(), self.config.max_lag_seconds)

    def status(self) -> MirrorStatus:
        return status_of(self._load(), self.clock(), self.config.max_lag_seconds)

    # --- operations ---

    def initialize(self) -> MirrorStatus:
        """Baseline transfer. No-op once the state file exists (whatever the state)."""
        with statefile.locked(self.config.state_file):
            existing = statefile.load(self.config.state_file)
            if existing is not None:
                self._check_state_matches_volumes(existing)
                return status_of(existing, self.clock(), self.config.max_lag_seconds)
            cfg = self.config
            for site in (cfg.source, cfg.destination):
                self._device(site)  # both pools must be mounted
                (self._paths(site).pool / SNAPS_DIR).mkdir(exist_ok=True)
            if not btrfs.is_subvolume(self._live(cfg.source)):
                btrfs.subvolume_create(self._live(cfg.source))
            rel = Relationship(name=cfg.name, source=cfg.source, destination=cfg.destination)
            return self._save(self._transfer(rel, Op.UPDATE))

    def update(self) -> MirrorStatus:
        with statefile.locked(self.config.state_file):
            rel = self._load()
            self._check(decide(rel, Op.UPDATE))
            return self._save(self._transfer(rel, Op.UPDATE))

    def scheduled_transfer(self) -> str:
        """One tick of the daemon: transfer if mirrored. Returns a sentence saying what happened."""
        with statefile.locked(self.config.state_file):
            rel = self._load()
            decision = decide(rel, Op.TRANSFER)
            if decision.verdict is not Verdict.APPLY:
                return f"skipped: {decision.reason}"
            new = self._transfer(rel, Op.TRANSFER)
            self._save(new)
            return (
                f"transferred {new.last_snapshot} {new.source}→{new.destination} "
                f"in {new.last_transfer_duration:.3f} s"
            )

    def quiesce(self) -> MirrorStatus:
        return self._set_state(Op.QUIESCE)

    def resume(self) -> MirrorStatus:
        return self._set_state(Op.RESUME)

    def _set_state(self, op: Op) -> MirrorStatus:
        with statefile.locked(self.config.state_file):
            rel = self._load()
            decision = decide(rel, op)
            if self._check(decision) is Verdict.NOOP:
                return status_of(rel, self.clock(), self.config.max_lag_seconds)
            target = MirrorState.QUIESCED if op is Op.QUIESCE else MirrorState.MIRRORED
            return self._save(rel.with_state(target, self.clock(), op, decision.reason))

    def break_(self) -> MirrorStatus:
        with statefile.locked(self.config.state_file):
            rel = self._load()
            decision = decide(rel, Op.BREAK)
            if self._check(decision) is Verdict.NOOP:
                return status_of(rel, self.clock(), self.config.max_lag_seconds)
            assert rel.last_snapshot is not None  # decide() refuses otherwise
            dest, live = rel.destination, self._live(rel.destination)
            last = self._snap(dest, rel.last_snapshot)
            if not btrfs.is_subvolume(last):
                raise Failed(f"{dest}: last transferred snapshot {last} is missing")
            if btrfs.is_subvolume(live) and not self._is_writable_child(live, last):
                self._retire(dest, rel.seq)
            if not btrfs.is_subvolume(live):
                btrfs.snapshot(last, live, readonly=False)
            return self._save(
                rel.with_state(MirrorState.BROKEN, self.clock(), Op.BREAK, decision.reason)
            )

    def reverse(self, new_source: str | None = None) -> MirrorStatus:
        with statefile.locked(self.config.state_file):
            rel = self._load()
            decision = decide(rel, Op.REVERSE, new_source)
            if self._check(decision) is Verdict.NOOP:
                return status_of(rel, self.clock(), self.config.max_lag_seconds)
            new_src, new_dst = rel.destination, rel.source
            # The old source becomes a destination: it must not be mounted or keep a live
            # subvolume (btrfs receive would not touch it, but mount() could expose it).
            self._unmount(new_dst)
            if btrfs.is_subvolume(self._live(new_dst)):
                self._retire(new_dst, rel.seq)
            swapped = dataclasses.replace(rel, source=new_src, destination=new_dst)
            transferred = self._transfer(swapped, Op.REVERSE, record_errors_on=rel)
            return self._save(
                transferred.with_state(
                    MirrorState.MIRRORED,
                    self.clock(),
                    Op.REVERSE,
                    f"reversed: now {new_src}→{new_dst}",
                )
            )

    def mount(self, site: str) -> None:
        with statefile.locked(self.config.state_file):
            writable = self.status().writable_site
            if site != writable:
                raise Failed(
                    f"{site} is not the writable side of mirror {self.config.name} "
                    f"({writable} is): mounting it would split the brain; break or "
                    "reverse first"
                )
            live, service = self._live(site), self._paths(site).service_path
            if not btrfs.is_subvolume(live):
                raise Failed(f"{site}: no live subvolume {live} to mount")
            device = self._device(site)
            current = btrfs.mount_at(service)
            if current is not None:
                if current.source == device and current.subvol == self.config.subvolume:
                    return
                raise Failed(
                    f"{service} already has {current.source} (subvol {current.subvol}) mounted"
                )
            btrfs.mount(device, service, subvol=self.config.subvolume)

    def unmount(self, site: str) -> None:
        with statefile.locked(self.config.state_file):
            self._unmount(site)

    # --- salvage (read-only views of a site's copy) ---

    def live_path(self, site: str) -> Path:
        """The site's live subvolume as a directory of its pool (it exists only on the
        writable side, or on a source not yet reversed)."""
        return self._live(site)

    def salvage_path(self, site: str, name: str) -> Path:
        return self._paths(site).pool / SALVAGE_DIR / f"{self.config.subvolume}@{name}"

    def common_snapshot(self, site: str) -> Path | None:
        """The last snapshot both sites received (the last common point), on `site`."""
        rel = self._load()
        if rel.last_snapshot is None:
            return None
        path = self._snap(site, rel.last_snapshot)
        return path if btrfs.is_subvolume(path) else None

    def salvage_snapshot(self, site: str, name: str) -> Path | None:
        """A read-only snapshot of `site`'s live subvolume, taken once under `name` (taken
        again it is the same one); None when `site` has no live subvolume (nothing was
        written there outside the mirror's snapshots)."""
        with statefile.locked(self.config.state_file):
            target = self.salvage_path(site, name)
            if btrfs.is_subvolume(target):
                return target
            live = self._live(site)
            self._device(site)  # the pool must be mounted
            if not btrfs.is_subvolume(live):
                return None
            target.parent.mkdir(exist_ok=True)
            btrfs.snapshot(live, target, readonly=True)
            return target

    def prune_salvage(self, site: str, keep: int, current: str) -> list[Path]:
        """Delete `site`'s salvage snapshots but the newest `keep` and `current`'s;
        return what was deleted. Each is evidence of what an isolated site accepted,
        read by its reprotect; older ones only fill the pool."""
        with statefile.locked(self.config.state_file):
            folder = self._paths(site).pool / SALVAGE_DIR
            if not folder.is_dir():
                return []
            taken = [
                path
                for path in folder.glob(f"{self.config.subvolume}@*")
                if btrfs.is_subvolume(path)
            ]
            taken.sort(key=lambda p: btrfs.subvolume_show(p).created_generation, reverse=True)
            kept = {*taken[:keep], self.salvage_path(site, current)}
            gone = [path for path in taken if path not in kept]
            for path in gone:
                btrfs.subvolume_delete(path)
            return gone

    # --- helpers ---

    def _check(self, decision: Decision) -> Verdict:
        if decision.verdict is Verdict.REFUSE:
            raise Failed(f"mirror {self.config.name}: {decision.reason}")
        return decision.verdict

    def _check_state_matches_volumes(self, rel: Relationship) -> None:
        """Refuse a state file that describes snapshots the pools do not have.

        That happens when the volumes were recreated (`lab down --purge`) but the state
        file survived: carrying on would fail later with a less useful message.
        """
        if rel.last_snapshot is None:
            return
        for site in (rel.source, rel.destination):
            if not btrfs.is_subvolume(self._snap(site, rel.last_snapshot)):
                raise Failed(
                    f"mirror state {self.config.state_file} says {rel.last_snapshot} is on "
                    f"both sites but {site} does not have it (volumes recreated?): remove "
                    "the state file to start a new baseline"
                )

    def _unmount(self, site: str) -> None:
        service = self._paths(site).service_path
        while btrfs.mount_at(service) is not None:  # stacked mounts: take them all off
            btrfs.umount(service)

    def _is_writable_child(self, live: Path, snap: Path) -> bool:
        """True if `live` is the writable snapshot of `snap` a crashed break_() left behind."""
        live_info, snap_info = btrfs.subvolume_show(live), btrfs.subvolume_show(snap)
        return not live_info.readonly and live_info.parent_uuid == snap_info.uuid

    def _retire(self, site: str, seq: int) -> None:
        retired = self._paths(site).pool / RETIRED_DIR
        retired.mkdir(exist_ok=True)
        target = retired / f"{self.config.subvolume}@{seq}-{int(self.clock())}"
        os.rename(self._live(site), target)  # renaming a subvolume is a plain rename(2)

    def _transfer(
        self, rel: Relationship, op: Op, record_errors_on: Relationship | None = None
    ) -> Relationship:
        """Snapshot the source's live subvolume and send it (incrementally if possible)."""
        seq = rel.seq + 1
        name = f"{self.config.subvolume}@{seq}"
        src_snap, dst_snap = self._snap(rel.source, name), self._snap(rel.destination, name)
        parent = self._snap(rel.source, rel.last_snapshot) if rel.last_snapshot else None
        if parent is not None:
            for site in (rel.source, rel.destination):
                if not btrfs.is_subvolume(self._snap(site, parent.name)):
                    raise Failed(
                        f"{site}: common snapshot {parent.name} is missing; the "
                        "mirror needs a new baseline"
                    )
        # A snapshot numbered `seq` can only be the leftover of a crashed, unrecorded
        # transfer (possibly half received): start it again from scratch.
        for leftover in (src_snap, dst_snap):
            if btrfs.is_subvolume(leftover):
                btrfs.subvolume_delete(leftover)
        started = time.monotonic()
        created = self.clock()
        try:
            btrfs.snapshot(self._live(rel.source), src_snap, readonly=True)
            btrfs.send_receive(src_snap, parent, dst_snap.parent)
        except Exception as exc:
            statefile.save(
                self.config.state_file,
                (record_errors_on or rel).with_error(self.clock(), op, str(exc)),
            )
            raise
        duration = time.monotonic() - started
        done = rel.with_transfer(name, seq, created, self.clock(), duration, op)
        for site in (rel.source, rel.destination):
            self._prune(site, keep_also=name)
        return done

    def _prune(self, site: str, keep_also: str) -> None:
        snaps_dir = self._paths(site).pool / SNAPS_DIR
        numbered = sorted(
            (int(m.group(1)), p) for p in snaps_dir.iterdir() if (m := self._snap_re.match(p.name))
        )
        for _, path in numbered[: -self.config.keep_snapshots]:
            if path.name != keep_also:
                btrfs.subvolume_delete(path)
