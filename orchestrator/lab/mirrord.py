"""The lab's mirror daemon: scheduled btrfs transfers for one relationship (SnapMirror's schedule).

Command line::

    python -m orchestrator.lab.mirrord --config <state_dir>/volumes/mirror-mail.config.json \\
        [--interval SECONDS]

``--config``   a `MirrorConfig` JSON, written with `MirrorConfig.save()` (see
               `orchestrator.storage.btrfs_mirror`); the relationship must be initialised
               (`BtrfsMirror.initialize()`) before the daemon starts, or it exits with 1.
               Repeat it for more relationships (a wide lab's four volumes): each gets
               a schedule of its own, on a thread of its own, as each SnapMirror
               relationship has.
``--interval`` seconds between transfers; default: the config's ``interval_seconds`` (2).
``--down-dir`` where the lab marks a lost site's array (``<site>.down``, written by
               ``lab kill-site``/``pause-site``): no transfer starts from or to such a
               site, so the lag grows as it would behind a real SAN that went away.

Every interval it calls `BtrfsMirror.scheduled_transfer()`: an incremental transfer when
the relationship is mirrored, nothing while quiesced or broken. The direction is read from
the state file at each tick, so it follows a reverse(). Old snapshots are pruned to the
config's ``keep_snapshots``. Results, including errors, are written to the relationship's
state file (atomically) by the driver; the daemon logs only changes of outcome, so a
quiet log means steady transfers. A failed transfer is retried at the next tick.

Stops on SIGTERM/SIGINT after the transfer in flight (if any) completes: within ~1 s for
the lab's small deltas. Exit status 0 on a clean stop, 1 if the config is unusable.
SIGKILL is safe too: the next transfer redoes a half-done one, and the flock dies with
the process. A SIGSTOPped daemon holding the lock mid-transfer makes other operations
wait, then raise `Unavailable` after 30 s.

Lab recipe (what `sitectl lab up/down` does with these pieces)::

    up:   for site in dc1, dc2: create_site_volume(state_dir, site)   # storage.volumes
          cfg = MirrorConfig(...); cfg.save(config_path)               # storage.btrfs_mirror
          BtrfsMirror(cfg).initialize(); BtrfsMirror(cfg).mount(writable site)
          start: python -m orchestrator.lab.mirrord --config config_path
    down: SIGTERM mirrord; stop the application (a busy mount cannot be unmounted);
          for site: destroy_site_volume(state_dir, site, purge=...)   # unmounts, detaches
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path

from orchestrator.errors import SitectlError
from orchestrator.storage.btrfs_mirror import BtrfsMirror, MirrorConfig

log = logging.getLogger("sitectl.lab.mirrord")
CUTS_FILE = "wan-cuts.json"


def unreachable_end(mirror: BtrfsMirror, down_dir: Path | None) -> str | None:
    """Which end of the relationship the lab has marked lost, as the reason to skip."""
    if down_dir is None:
        return None
    status = mirror.status()
    for end, site in (("source", status.source), ("destination", status.destination)):
        try:
            how = (down_dir / f"{site}.down").read_text().strip()
        except FileNotFoundError:
            continue
        return f"skipped: the {end} {site}'s array does not answer (lab: {how})"
    # A mirror's transfers cross the WAN: a cut link between its ends stops them as it
    # stops any other connection (`lab partition` writes the cuts here).
    try:
        cuts = {tuple(link) for link in json.loads((down_dir / CUTS_FILE).read_text())}
    except (FileNotFoundError, ValueError):
        cuts = set()
    if (status.source, status.destination) in cuts or (status.destination, status.source) in cuts:
        return f"skipped: the WAN link {status.source} <-> {status.destination} is cut (lab)"
    return None


def run_loop(
    mirror: BtrfsMirror, interval: float, stop: threading.Event, down_dir: Path | None = None
) -> None:
    """Transfer every `interval` seconds until `stop` is set."""
    # Each line names its relationship: one daemon may run several (a wide lab's four).
    name = mirror.config.name
    last_outcome = ""
    while not stop.is_set():
        try:
            outcome = unreachable_end(mirror, down_dir) or mirror.scheduled_transfer()
            kind = outcome.split(" ", 1)[0]  # "transferred" / "skipped: ..." without figures
            summary = outcome if kind != "transferred" else kind
            if summary != last_outcome:
                log.info("%s: %s", name, outcome)
            last_outcome = summary
        except SitectlError as exc:
            # Already recorded in the state file as last_error; next tick retries.
            if str(exc) != last_outcome:
                log.error("%s: transfer failed: %s", name, exc)
            last_outcome = str(exc)
        except Exception:  # keep the schedule alive; the traceback says what broke
            log.exception("%s: unexpected error in transfer", name)
            last_outcome = "unexpected"
        stop.wait(interval)


def main(argv: list[str] | None = None) -> int:
    # Signals are blocked in every thread and taken with sigwait() in the main thread, so
    # a SIGTERM never interrupts a send|receive half-way (see s3store for the deadlock a
    # Python signal handler setting an Event can cause).
    signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    parser = argparse.ArgumentParser(
        prog="python -m orchestrator.lab.mirrord",
        description="Lab mirror daemon (btrfs send/receive).",
    )
    parser.add_argument("--config", required=True, type=Path, action="append")
    parser.add_argument("--interval", type=float)
    parser.add_argument("--down-dir", type=Path)
    args = parser.parse_args(argv)
    if args.interval is not None and args.interval <= 0:
        parser.error("--interval must be a positive number of seconds")
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s mirrord %(levelname)s %(message)s",
    )
    stop = threading.Event()
    workers = []
    for path in args.config:
        try:
            config = MirrorConfig.load(path)
            mirror = BtrfsMirror(config)
            status = mirror.status()
        except SitectlError as exc:
            log.error("%s", exc)
            return 1
        interval = args.interval or config.interval_seconds
        log.info(
            "mirror %s: %s %s→%s, every %.1f s",
            config.name,
            status.state.value,
            status.source,
            status.destination,
            interval,
        )
        workers.append(
            threading.Thread(
                target=run_loop,
                args=(mirror, interval, stop, args.down_dir),
                name=f"mirror-transfers-{config.name}",
            )
        )
    for worker in workers:
        worker.start()
    signal.sigwait(signals)
    stop.set()
    for worker in workers:
        worker.join()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
