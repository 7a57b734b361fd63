"""Command line over the lab's mirror driver, for playbooks and operators.

    python -m orchestrator.storage --config <mirror config JSON> [--epoch N] OPERATION [SITE]

OPERATION: ``status``, ``update``, ``quiesce``, ``resume``, ``break``, ``reverse``
(optionally ``reverse SITE``: SITE must end up the source), ``mount SITE``,
``unmount SITE``.

With --epoch (the operation lease's epoch; the playbooks pass it), a changing operation
first compares-and-sets it on this host (storage/epochfence.py) and is refused if a
newer epoch has already acted.

Prints one JSON object on stdout: ``{"changed": bool, "status": {...}}``, where
``changed`` says whether the operation changed anything (for Ansible's ``changed_when``;
every operation is idempotent). Exit status: 0 done, 1 refused or failed (`Failed`:
message on stderr), 75 (EX_TEMPFAIL) transient (`Unavailable`: retry), 2 bad usage.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from orchestrator.errors import SitectlError, Unavailable
from orchestrator.storage import btrfs
from orchestrator.storage.btrfs_mirror import BtrfsMirror, MirrorConfig
from orchestrator.storage.epochfence import fenced

EX_TEMPFAIL = 75
_NEEDS_SITE = {"mount", "unmount"}
_COMPARED = ("state", "source", "destination", "last_snapshot", "mounted")
OPERATIONS = ("status", "update", "quiesce", "resume", "break", "reverse", "mount", "unmount")


def _snapshot(mirror: BtrfsMirror) -> dict[str, Any]:
    """What `changed` compares: the relationship and which service paths are mounted."""
    status = dataclasses.asdict(mirror.status())
    status["state"] = str(status["state"])
    status["mounted"] = sorted(
        site
        for site, paths in mirror.config.sites.items()
        if btrfs.mount_at(paths.service_path) is not None
    )
    return status


def run(config: Path, operation: str, site: str | None) -> dict[str, Any]:
    mirror = BtrfsMirror(MirrorConfig.load(config))
    before = _snapshot(mirror)
    if operation == "update":
        mirror.update()
    elif operation == "quiesce":
        mirror.quiesce()
    elif operation == "resume":
        mirror.resume()
    elif operation == "break":
        mirror.break_()
    elif operation == "reverse":
        mirror.reverse(site)
    elif operation == "mount":
        assert site is not None
        mirror.mount(site)
    elif operation == "unmount":
        assert site is not None
        mirror.unmount(site)
    after = _snapshot(mirror)
    # Compare what an operation can change, not the lag, which moves with the clock.
    # An update always transfers (a new snapshot), so it always reports a change.
    changed = any(before[k] != after[k] for k in _COMPARED)
    return {"changed": changed, "status": after}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m orchestrator.storage", description="Operate the lab's btrfs mirror."
    )
    parser.add_argument("--config", required=True, type=Path)
    parser.add_argument("--epoch", type=int, help="the operation's fencing epoch")
    parser.add_argument("operation", choices=OPERATIONS)
    parser.add_argument("site", nargs="?")
    args = parser.parse_args(argv)
    if args.operation in _NEEDS_SITE and not args.site:
        parser.error(f"{args.operation} needs a SITE")
    try:
        if args.epoch is None or args.operation == "status":
            result = run(args.config, args.operation, args.site)
        else:
            state_file = MirrorConfig.load(args.config).state_file
            with fenced(state_file, args.epoch, args.operation, args.site):
                result = run(args.config, args.operation, args.site)
    except Unavailable as exc:
        print(f"unavailable, retry: {exc}", file=sys.stderr)
        return EX_TEMPFAIL
    except SitectlError as exc:  # Failed, or a config that cannot be used
        print(str(exc), file=sys.stderr)
        return 1
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
