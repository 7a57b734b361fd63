"""The salvage steps of a reprotect by hand (pure): list what only the old site holds,
with the tools a person has (btrfs, grep, comm, aws, ldapsearch). Each renderer returns
(commands, expect, done_when) for runbook/manual.py's ManualStep."""

from __future__ import annotations

import shlex

from orchestrator.config.model import BtrfsVolume, Topology
from orchestrator.plan.model import Plan, Step
from orchestrator.runbook.aws import s3api

Rendered = tuple[tuple[str, ...], str, str]
_IDS = "grep -rih -m1 '^message-id:' {} | sed 's/^[^:]*: *//' | sort -u > {}"


def _btrfs(topo: Topology, name: str) -> BtrfsVolume | None:
    vol = next((v for v in topo.volumes if v.name == name), None)
    return vol if isinstance(vol, BtrfsVolume) else None


def _snapshot_dir(vol: BtrfsVolume, site: str) -> str:
    return f"{vol.sites[site].pool}/salvage/{vol.subvolume}@by-hand"


def snapshot(topo: Topology, plan: Plan, step: Step) -> Rendered:
    vol = _btrfs(topo, step.target)
    assert vol is not None and step.site  # planned for btrfs volumes only
    pool = vol.sites[step.site].pool
    return (
        (
            f"mkdir -p {pool}/salvage",
            f"btrfs subvolume snapshot -r {pool}/{vol.subvolume} {_snapshot_dir(vol, step.site)}",
        ),
        "Create a readonly snapshot",
        f"{_snapshot_dir(vol, step.site)} exists, read-only",
    )


def mail(topo: Topology, plan: Plan, step: Step) -> Rendered:
    vol = _btrfs(topo, step.target)
    assert vol is not None
    old, active = step.params["old_site"], plan.from_site
    old_pool, active_pool = vol.sites[old].pool, vol.sites[active].pool
    return (
        (
            _IDS.format(_snapshot_dir(vol, old), "/tmp/salvage-old.ids"),
            _IDS.format(
                f"{active_pool}/{vol.subvolume} $(ls -d {old_pool}/snaps/{vol.subvolume}@* "
                "| sort -t@ -k2 -n | tail -1)",
                "/tmp/salvage-known.ids",
            ),
            "comm -23 /tmp/salvage-old.ids /tmp/salvage-known.ids",
        ),
        "the Message-IDs only the old site holds (none: nothing to salvage)",
        f"each listed message's file (`grep -ril 'Message-ID: <id>' "
        f"{_snapshot_dir(vol, old)}`) is copied into the same Maildir's new/ under "
        f"{active_pool}/{vol.subvolume}, owner and mode kept, and the comparison lists nothing",
    )


def objects(topo: Topology, plan: Plan, step: Step) -> Rendered:
    store = topo.object_store
    assert store is not None
    endpoints = {e.site: e for e in store.endpoints}
    old, active = step.params["old_site"], plan.from_site

    def listing(site: str, into: str) -> str:
        return (
            s3api(
                endpoints[site],
                f"list-objects-v2 --bucket {step.target} --query 'Contents[].[Key,ETag]' "
                "--output text",
            )
            + f" | sort > {into}"
        )

    return (
        (
            listing(old, "/tmp/salvage-old.objects"),
            listing(active, "/tmp/salvage-active.objects"),
            "comm -23 /tmp/salvage-old.objects /tmp/salvage-active.objects",
        ),
        "key and ETag of each object only the old site holds, or holds differently",
        f"each is copied to {active} (`aws s3 cp`) under its key when {active} lacks the key, "
        'else under "salvaged/<ETag>/<key>"; the comparison then lists only those kept beside',
    )


def ldap_report(topo: Topology, plan: Plan, step: Step) -> Rendered:
    ldap = topo.ldap
    assert ldap is not None
    since = "<YYYYmmddHHMMSS of the takeover>.000000Z#000000#000#000000"
    commands = tuple(
        f"ldapsearch -LLL -H {m.uri}{' -ZZ' if ldap.starttls else ''} -x -D "
        f"{shlex.quote(m.bind_dn or ldap.bind_dn)} -W -b {shlex.quote(ldap.suffix)} "
        f"'(entryCSN>={since})' entryCSN"
        for m in ldap.masters
        if m.site == step.site
    )
    return (
        commands,
        "the entries changed since the takeover, each with its entryCSN "
        f"(written by {step.site} when its third field is one of its servers' ids)",
        f"a person has compared each with {step.params['active']}'s masters and kept or "
        "redone the change there",
    )


def decide(topo: Topology, plan: Plan, step: Step) -> Rendered:
    uninspected = step.params["uninspected"]
    commands = tuple(f"# {what}: compare and salvage it by hand" for what in uninspected)
    return (
        commands or ("# the comparisons above list nothing",),
        "nothing left that only the old site holds",
        "every list above is empty, or the decision to discard what is left is recorded "
        "with its reason; only then reverse the mirrors",
    )
