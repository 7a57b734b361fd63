"""Ansible action plugin: go on only while the operation's fencing epoch is the newest.

For systems that cannot check an epoch themselves. ONTAP has no request conditional on
ours, so orchestrator/playbooks/tasks/netapp.yml asks this immediately before each call that changes
a relationship: ZooKeeper's epoch (bumped by every lease taken) must still be the
operation's. A leader frozen after its playbook started, whose successor has taken the
lease since, stops at the next call instead of making it. What is left is the moment
between this answer and ONTAP receiving the request, and the job ONTAP then runs on its
own.

It runs inside ansible-playbook (sitectl's own interpreter), on the controller side, with
no connection to a host. It reads the topology named by `topology` (the engine passes
the file it loaded) to reach ZooKeeper exactly as sitectl does. It fails closed: a
ZooKeeper it cannot read stops the run too.
"""

from __future__ import annotations

from typing import Any

from ansible.plugins.action import ActionBase


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        args = self._task.args
        doing = str(args.get("before") or self._task.get_name())
        why = self._why_not(args, doing)
        result.update(changed=False, failed=why is not None, msg=why or "the epoch is ours")
        return result

    @staticmethod
    def _why_not(args: dict[str, Any], doing: str) -> str | None:
        try:
            epoch = int(args["epoch"])
            topology = str(args["topology"])
        except (KeyError, TypeError, ValueError) as exc:
            return f"sitectl_lease needs an integer epoch and a topology ({exc}); not {doing}"
        # Imported here: ansible loads every plugin of the directory for each run.
        from orchestrator.config import load_topology
        from orchestrator.coordination.client import connect
        from orchestrator.coordination.lease import newest_epoch, stale_epoch
        from orchestrator.coordination.paths import ZkPaths
        from orchestrator.errors import SitectlError

        try:
            topo = load_topology(topology, check_filesystem=False)
            client = connect(topo, timeout=topo.zookeeper.session_timeout)
            try:
                newest = newest_epoch(
                    client, ZkPaths.for_cluster(topo.zookeeper.chroot, topo.cluster)
                )
            finally:
                client.stop()
                client.close()
        except SitectlError as exc:
            return f"could not read the fencing epoch ({exc}); not {doing}"
        return stale_epoch(epoch, newest, doing)
