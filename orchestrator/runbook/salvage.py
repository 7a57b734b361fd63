"""The salvage steps of a reprotect by hand (pure): list what only the old site holds,
with the tools a person has (btrfs, grep, comm, aws, ldapsearch). Each renderer returns
(commands, expect, done_when) for runbook/manual.py's ManualStep."""

from __future__ import annotations

import re
import shlex

from orchestrator.config.model import BtrfsVolume, Topology
from orchestrator.plan.model import Plan, Step
from orchestrator.runbook.aws import s3api

Rendered = tuple[tuple[str, ...], str, str]
# grep exits 1 when it finds nothing (an empty Maildir), 2 on an error: only 2 fails.
_IDS = "{{ grep -rih -m1 '^message-id:' {} || [ $? = 1 ]; }} | sed 's/^[^:]*: *//' | sort -u > {}"


def _listing(target: str, which: str) -> str:
    """The file a comparison's side is listed into, one per volume or bucket, so the
    decide step can compare them again."""
    return f"/tmp/salvage-{re.sub(r'[^A-Za-z0-9_.-]', '_', target)}-{which}"


def snapshot_var(volume: str) -> str:
    """The shell variable the snapshot step leaves the snapshot's path in."""
    return "SALVAGE_" + re.sub(r"[^A-Za-z0-9]", "_", volume).upper()


def _btrfs(topo: Topology, name: str) -> BtrfsVolume | None:
    vol = next((v for v in topo.volumes if v.name == name), None)
    return vol if isinstance(vol, BtrfsVolume) else None


def snapshot(topo: Topology, plan: Plan, step: Step) -> Rendered:
    vol = _btrfs(topo, step.target)
    assert vol is not None and step.site  # planned for btrfs volumes only
    pool, var = shlex.quote(vol.sites[step.site].pool), snapshot_var(vol.name)
    live = f"{pool}/{shlex.quote(vol.subvolume)}"
    return (
        (
            # A new name each time: an older snapshot may hold what is not settled yet.
            f'export {var}="{pool}/salvage/{vol.subvolume}@by-hand-$(date -u +%Y%m%dT%H%M%SZ)"',
            f"mkdir -p {pool}/salvage",
            f"if btrfs subvolume show {live} >/dev/null 2>&1; then",
            f'btrfs subvolume snapshot -r {live} "${var}"',
            "else",
            f'echo "{step.site} has no live copy: nothing outside the mirror\'s snapshots"',
            f'{var}="$(mktemp -d)"  # an empty listing for the comparison',
            "fi",
        ),
        f"Create a readonly snapshot of '{live}' in '...' (or: no live copy)",
        f'${var} exists, read-only (`btrfs property get "${var}" ro`: ro=true)',
    )


def mail(topo: Topology, plan: Plan, step: Step) -> Rendered:
    vol = _btrfs(topo, step.target)
    assert vol is not None
    old, active = step.params["old_site"], plan.from_site
    old_pool, active_pool = vol.sites[old].pool, vol.sites[active].pool
    var = snapshot_var(vol.name)
    old_ids, known_ids = _listing(vol.name, "old.ids"), _listing(vol.name, "known.ids")
    return (
        (
            _IDS.format(f'"${var}"', old_ids),
            _IDS.format(
                f"{active_pool}/{vol.subvolume} $(ls -d {old_pool}/snaps/{vol.subvolume}@* "
                "| sort -t@ -k2 -n | tail -1)",
                known_ids,
            ),
            f"comm -23 {old_ids} {known_ids}",
        ),
        "the Message-IDs only the old site holds (none: nothing to salvage)",
        f"each listed message's file (`grep -ril 'Message-ID: <id>' \"${var}\"`) is "
        f"copied into the same Maildir's new/ under {active_pool}/{vol.subvolume}, owner "
        "and mode kept, and the comparison lists nothing",
    )


def objects(topo: Topology, plan: Plan, step: Step) -> Rendered:
    store = topo.object_store
    assert store is not None
    endpoints = {e.site: e for e in store.endpoints}
    old, active = step.params["old_site"], plan.from_site

    def listing(site: str, which: str) -> str:
        return (
            s3api(
                endpoints[site],
                f"list-objects-v2 --bucket {step.target} --query 'Contents[].[Key,ETag]' "
                "--output text",
            )
            + f" | sort > {_listing(step.target, which)}"
        )

    return (
        (
            listing(old, "old.objects"),
            listing(active, "active.objects"),
            f"comm -23 {_listing(step.target, 'old.objects')} "
            f"{_listing(step.target, 'active.objects')}",
        ),
        "key and ETag of each object only the old site holds, or holds differently",
        f"each is copied to {active} (`aws s3 cp`) under its key when {active} lacks the key, "
        'else under "salvaged/<ETag>/<key>"; the comparison then lists only those kept beside',
    )


def decide(topo: Topology, plan: Plan, step: Step) -> Rendered:
    uninspected = step.params["uninspected"]
    # Each comparison again, after what was salvaged: it must list nothing now.
    checks = [
        f'test -z "$(comm -23 {_listing(name, "old.ids")} {_listing(name, "known.ids")})"'
        for name in step.params["volumes"]
    ] + [
        f'test -z "$(comm -23 {_listing(name, "old.objects")} {_listing(name, "active.objects")})"'
        for name in step.params["buckets"]
    ]
    commands = tuple(f"# {what}: compare and salvage it by hand" for what in uninspected)
    if checks:
        fails = "# each fails while the old site holds something the active one lacks"
        commands = (fails, *checks, *commands)
    return (
        commands or ("# the comparisons above list nothing",),
        "nothing left that only the old site holds",
        "every list above is empty, or the decision to discard what is left is recorded "
        "with its reason; only then reverse the mirrors",
    )
