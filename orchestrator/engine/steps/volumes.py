"""Mirror and volume steps through orchestrator/playbooks/volume.yml.

"Already true?" and "done?" are read from the storage driver itself where sitectl can
reach it: the lab's btrfs mirror state, and ONTAP's SnapMirror relationship (REST) for
NetApp. The `command` driver's status command prints nothing sitectl can interpret and
mounts live on the hosts, so those steps run their (idempotent) playbook actions and
trust the playbook's result; the step says so in the log.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Literal

from orchestrator.adapters.ansible import AnsibleTemplate, PlaybookCall
from orchestrator.adapters.secrets import SecretSource
from orchestrator.config.model import (
    BtrfsVolume,
    CommandVolume,
    NetappVolume,
    Topology,
    fill_for_ansible,
)
from orchestrator.engine.handlers import StepContext
from orchestrator.engine.steps.common import PlaybookStep, driver_tag, playbook_call
from orchestrator.errors import Failed, Unavailable
from orchestrator.plan.model import Step
from orchestrator.storage import BtrfsMirror, MirrorConfig, MirrorState, MirrorStatus, netapp
from orchestrator.storage.btrfs import mount_at
from orchestrator.storage.netapp import RelationshipNotFound

Volume = BtrfsVolume | NetappVolume | CommandVolume
# One ONTAP REST call; verify polls, so a slow answer is asked again, not waited out.
ONTAP_TIMEOUT_S = 10.0
# The actions orchestrator/playbooks/tasks/netapp.yml takes to ONTAP (with credentials).
ONTAP_ACTIONS = frozenset({"update", "quiesce", "resume", "break", "reverse"})


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
        # The operator's command, templated by Ansible on purpose; sitectl's values
        # reach it from volume_fill, unsafe and shell-quoted (volume.yml).
        values = {"volume": vol.name, "site": site, "mount_point": vol.mount_point_at(site)}
        extra["volume_command"] = AnsibleTemplate(fill_for_ansible(command, "volume_fill", values))
        extra["volume_fill"] = values
    elif isinstance(vol, NetappVolume):
        dest = vol.sites[plan_to]
        creds = dest.credentials
        extra |= {
            "netapp_cluster": dest.cluster,
            "netapp_destination_path": f"{dest.svm}:{dest.volume}",
            "netapp_credentials_env": creds.env or "",
            "netapp_credentials_file": str(topo.resolve(creds.file)) if creds.file else "",
            "netapp_export": vol.sites[site].export if site in vol.sites else "",
            # Read again by the epoch check before each ONTAP change (sitectl_lease);
            # empty, the check fails closed.
            "netapp_topology": str(topo.source_file or ""),
        }
        if action == "reverse":
            # The reversed relationship's source is the active site's copy; the playbook
            # reads that copy's cluster to check the failover's break before resyncing.
            src = vol.sites[site]
            extra |= {
                "netapp_source_cluster": src.cluster,
                "netapp_source_path": f"{src.svm}:{src.volume}",
                "netapp_source_credentials_env": src.credentials.env or "",
                "netapp_source_credentials_file": (
                    str(topo.resolve(src.credentials.file)) if src.credentials.file else ""
                ),
            }
    return extra


def _handover(
    topo: Topology, vol: Volume, action: str, site: str, plan_to: str
) -> dict[str, SecretSource]:
    """The secrets a NetApp step's playbook reads that the topology takes from the
    environment, by variable name: the ONTAP credentials it names in its extra vars and
    the ZooKeeper digest its epoch check (sitectl_lease) connects with. Handed over to
    the run in files (adapters/ansible.py); ansible-playbook's environment has none."""
    if not isinstance(vol, NetappVolume) or action not in ONTAP_ACTIONS:
        return {}  # a mount or unmount of the export: no ONTAP call, no credentials
    refs = [vol.sites[plan_to].credentials]
    if action == "reverse":
        refs.append(vol.sites[site].credentials)
    if topo.zookeeper.auth is not None:
        refs.append(topo.zookeeper.auth.credentials)
    return {ref.env: SecretSource(ref, topo.base_dir) for ref in refs if ref.env is not None}


def _storage_host(topo: Topology, vol: Volume, site: str) -> tuple[str, ...]:
    # Array-level actions run once, from one host that mounts the volume on that site.
    hosts = topo.volume_hosts(vol, site)
    if not hosts:
        raise Failed(f"volume {vol.name}: no host mounts it on {site} (its role {vol.role})")
    return (hosts[0].name,)


class MirrorHandler(PlaybookStep):
    def __init__(
        self,
        action: Literal["update", "break", "reverse"],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.action = action
        self.clock = clock
        self._started: dict[str, float] = {}

    def check(self, step: Step, ctx: StepContext) -> bool:
        vol = _volume(ctx.topology, step.target)
        if isinstance(vol, CommandVolume):
            ctx.log(
                f"volume {vol.name}: the command driver's state cannot be read by sitectl, so "
                f"its {self.action} command runs unchecked and its exit status is the result"
            )
            return False
        if self.action == "update":
            return self._nothing_to_send_early(step, ctx, vol)
        try:
            status = self._status(step, ctx, vol)
        except RelationshipNotFound:
            if self.action == "reverse":
                return False  # no relationship into the standby yet: not reversed
            raise
        if self.action == "reverse":
            return status.state is MirrorState.MIRRORED and status.source == step.site
        return status.state is MirrorState.BROKEN and status.writable_site == step.site

    def _nothing_to_send_early(
        self, step: Step, ctx: StepContext, vol: BtrfsVolume | NetappVolume
    ) -> bool:
        """A final transfer is never "already done": it must follow the stop. A pre-sync
        (params lag_above) is, when the mirror lags no more than that: the final transfer
        will carry little anyway, and a transfer now would only lengthen the move."""
        above = step.params.get("lag_above")
        if above is None:
            return False
        lag = self._status(step, ctx, vol).lag_seconds
        if lag is None or lag > float(above):
            return False
        ctx.log(
            f"volume {vol.name}: its mirror lags {lag:.1f} s, no more than {float(above):g} s: "
            "nothing worth sending before the application stops"
        )
        return True

    def _status(
        self, step: Step, ctx: StepContext, vol: BtrfsVolume | NetappVolume
    ) -> MirrorStatus:
        """The relationship as the driver reports it, its ends named by site."""
        if isinstance(vol, BtrfsVolume):
            return btrfs_mirror(ctx.topology, vol).status()
        # A break or final sync acts on the relationship into the new site's copy; a
        # reverse makes one into the standby's (the step's own site is the active one).
        site = step.site or ctx.plan.to_site
        destination = site
        if self.action == "reverse":
            destination = step.params.get("destination") or next(s for s in vol.sites if s != site)
        return netapp.volume_status(
            ctx.topology, vol, destination=destination, timeout=ONTAP_TIMEOUT_S
        )

    def starting(self, step: Step, ctx: StepContext) -> None:
        self._started[step.id] = self.clock()

    def call(self, step: Step, ctx: StepContext) -> PlaybookCall:
        vol = _volume(ctx.topology, step.target)
        site = step.site or ctx.plan.to_site
        return playbook_call(
            ctx,
            step,
            "volume.yml",
            _storage_host(ctx.topology, vol, site),
            _extravars(ctx.topology, vol, self.action, site, ctx.plan.to_site),
            runs_tags=[driver_tag(vol.driver)],
            secrets=_handover(ctx.topology, vol, self.action, site, ctx.plan.to_site),
        )

    def verify(self, step: Step, ctx: StepContext) -> None:
        vol = _volume(ctx.topology, step.target)
        if isinstance(vol, CommandVolume):
            return  # the command's exit status was the verdict (logged by check)
        try:
            status = self._status(step, ctx, vol)
        except RelationshipNotFound as exc:
            raise Unavailable(f"mirror {vol.name}: {exc}") from exc
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
        if isinstance(vol, NetappVolume):
            # ONTAP's lag is the age of the newest snapshot the destination holds, on the
            # array's own clock: younger than the step means it was taken after the step
            # began, whatever the skew between the array's clock and ours.
            elapsed = self.clock() - since
            if status.lag_seconds is None or status.lag_seconds > elapsed:
                lag = "none" if status.lag_seconds is None else f"{status.lag_seconds:.0f} s old"
                raise Unavailable(
                    f"mirror {vol.name}: no transfer finished since the final sync began "
                    f"{elapsed:.0f} s ago (newest snapshot: {lag})"
                )
            return
        if status.last_transfer_at is None or status.last_transfer_at < since:
            raise Unavailable(f"mirror {vol.name}: no transfer finished since the final sync began")


class MountHandler(PlaybookStep):
    def __init__(self, action: Literal["mount", "unmount"]) -> None:
        self.action = action

    def _mounted(self, ctx: StepContext, vol: Volume, site: str) -> bool | None:
        if not isinstance(vol, BtrfsVolume):
            return None
        paths = btrfs_mirror(ctx.topology, vol).config.sites[site]
        # The btrfs driver's mounts are this machine's. Where its pool is not mounted (a
        # sitectl in another mount namespace, or on a host without the pool), an empty
        # service path says nothing: taken as "unmounted", the old site's copy could stay
        # mounted while the new one is.
        if mount_at(paths.pool) is None:
            raise Unavailable(
                f"volume {vol.name}: {site}'s pool {paths.pool} is not mounted where sitectl "
                f"runs, so whether {paths.service_path} is mounted cannot be seen from here"
            )
        return mount_at(paths.service_path) is not None

    def check(self, step: Step, ctx: StepContext) -> bool:
        vol = _volume(ctx.topology, step.target)
        mounted = self._mounted(ctx, vol, step.site or "")
        if mounted is None:
            ctx.log(
                f"volume {vol.name}: sitectl cannot see {vol.driver} mounts on the hosts, so "
                f"the playbook's own mount test decides whether to {self.action} and its "
                "result verifies"
            )
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
            runs_tags=[driver_tag(vol.driver)],
            secrets=_handover(ctx.topology, vol, self.action, site, ctx.plan.to_site),
        )

    def verify(self, step: Step, ctx: StepContext) -> None:
        mounted = self._mounted(ctx, _volume(ctx.topology, step.target), step.site or "")
        if mounted is not None and mounted != (self.action == "mount"):
            raise Unavailable(f"volume {step.target} not {self.action}ed on {step.site} yet")
