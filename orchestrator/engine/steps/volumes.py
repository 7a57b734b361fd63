"""Mirror and volume steps through playbooks/volume.yml.

"Already true?" is read from the storage driver itself where sitectl can reach it (the
lab's btrfs mirror state); for NetApp and operator commands the playbook's own actions
are idempotent, so the step simply runs them.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Literal

from orchestrator.adapters.ansible import PlaybookCall
from orchestrator.config.model import BtrfsVolume, CommandVolume, NetappVolume, Topology, fill
from orchestrator.engine.handlers import StepContext
from orchestrator.engine.steps.common import PlaybookStep, playbook_call
from orchestrator.errors import Failed, Unavailable
from orchestrator.plan.model import Step
from orchestrator.storage import BtrfsMirror, MirrorConfig, MirrorState
from orchestrator.storage.btrfs import mount_at

Volume = BtrfsVolume | NetappVolume | CommandVolume


def _volume(topo: Topology, name: str) -> Volume:
    return next(v for v in topo.volumes if v.name == name)


def btrfs_mirror(topo: Topology, vol: BtrfsVolume) -> BtrfsMirror:
    if vol.mirror_config is None:
        raise Failed(
            f"volume {vol.name}: a btrfs volume needs mirror_config (the file `sitectl lab up` "
            "writes) so sitectl can read and drive the mirror"
        )
    return BtrfsMirror(MirrorConfig.load(topo.resolve(vol.mirror_config)))


def _extravars(topo: Topology, vol: Volume, action: str, site: str, plan_to: str) -> dict[str, Any]:
    extra: dict[str, Any] = {
        "volume_action": action,
        "volume_driver": vol.driver,
        "volume_site": site,
        "volume_mount_point": vol.mount_point_at(site),
    }
    if isinstance(vol, BtrfsVolume) and vol.mirror_config:
        extra["mirror_config"] = str(topo.resolve(vol.mirror_config))
    elif isinstance(vol, CommandVolume):
        command = vol.commands.get(action)
        if command is None:
            raise Failed(f"volume {vol.name}: no '{action}' command in the topology — add it")
        extra["volume_command"] = fill(
            command, volume=vol.name, site=site, mount_point=vol.mount_point
        )
    elif isinstance(vol, NetappVolume):
        dest = vol.sites[plan_to]
        creds = dest.credentials
        extra |= {
            "netapp_cluster": dest.cluster,
            "netapp_destination_path": f"{dest.svm}:{dest.volume}",
            "netapp_credentials_env": creds.env or "",
            "netapp_credentials_file": str(topo.resolve(creds.file)) if creds.file else "",
            "netapp_export": vol.sites[site].export if site in vol.sites else "",
        }
    return extra


def _storage_host(topo: Topology, vol: Volume, site: str) -> tuple[str, ...]:
    # Array-level actions run once, from one host of the volume's role on that site.
    hosts = topo.hosts_of(site, vol.role)
    if not hosts:
        raise Failed(f"volume {vol.name}: no host with role {vol.role} on {site}")
    return (hosts[0].name,)


class MirrorHandler(PlaybookStep):
    def __init__(self, action: Literal["update", "break", "reverse"]) -> None:
        self.action = action
        self._started: dict[str, float] = {}

    def check(self, step: Step, ctx: StepContext) -> bool:
        vol = _volume(ctx.topology, step.target)
        if self.action == "update" or not isinstance(vol, BtrfsVolume):
            return False  # a final transfer is never "already done": it must follow the stop
        status = btrfs_mirror(ctx.topology, vol).status()
        if self.action == "reverse":
            return status.state is MirrorState.MIRRORED and status.source == step.site
        return status.state is MirrorState.BROKEN and status.writable_site == step.site

    def starting(self, step: Step, ctx: StepContext) -> None:
        self._started[step.id] = time.time()

    def call(self, step: Step, ctx: StepContext) -> PlaybookCall:
        vol = _volume(ctx.topology, step.target)
        site = step.site or ctx.plan.to_site
        return playbook_call(
            ctx,
            step,
            "volume.yml",
            _storage_host(ctx.topology, vol, site),
            _extravars(ctx.topology, vol, self.action, site, ctx.plan.to_site),
        )

    def verify(self, step: Step, ctx: StepContext) -> None:
        vol = _volume(ctx.topology, step.target)
        if not isinstance(vol, BtrfsVolume):
            return
        status = btrfs_mirror(ctx.topology, vol).status()
        ctx.figures[f"mirror_lag_seconds/{vol.name}"] = status.lag_seconds
        if self.action == "break":
            if status.state is not MirrorState.BROKEN:
                raise Unavailable(f"mirror {vol.name} is {status.state}, not broken yet")
            return
        if self.action == "reverse":
            if status.state is not MirrorState.MIRRORED or status.source != step.site:
                raise Unavailable(
                    f"mirror {vol.name} is {status.state} {status.source}→{status.destination}, "
                    f"not yet mirrored from {step.site}"
                )
            return
        since = self._started.get(step.id, 0.0)
        if status.last_transfer_at is None or status.last_transfer_at < since:
            raise Unavailable(f"mirror {vol.name}: no transfer finished since the final sync began")


class MountHandler(PlaybookStep):
    def __init__(self, action: Literal["mount", "unmount"]) -> None:
        self.action = action

    def _mounted(self, ctx: StepContext, vol: Volume, site: str) -> bool | None:
        if not isinstance(vol, BtrfsVolume):
            return None
        service: Path = btrfs_mirror(ctx.topology, vol).config.sites[site].service_path
        return mount_at(service) is not None

    def check(self, step: Step, ctx: StepContext) -> bool:
        vol = _volume(ctx.topology, step.target)
        mounted = self._mounted(ctx, vol, step.site or "")
        if mounted is None:
            return False
        return mounted if self.action == "mount" else not mounted

    def call(self, step: Step, ctx: StepContext) -> PlaybookCall:
        vol = _volume(ctx.topology, step.target)
        site = step.site or ""
        return playbook_call(
            ctx,
            step,
            "volume.yml",
            step.hosts,
            _extravars(ctx.topology, vol, self.action, site, ctx.plan.to_site),
        )

    def verify(self, step: Step, ctx: StepContext) -> None:
        if (
            not self.check(step, ctx)
            and self._mounted(ctx, _volume(ctx.topology, step.target), step.site or "") is not None
        ):
            raise Unavailable(f"volume {step.target} not {self.action}ed on {step.site} yet")
