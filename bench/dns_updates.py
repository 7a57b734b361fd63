"""P4 (issue 8): 1,000 DNS records across 2 zones applied and verified on every server.

Starts its own BIND primary + secondary on 127.0.10.1/.2 (the DNS adapter tests'
helper), loads two zones with 500 A records each at "dc1" values, then times, per run:
both zones' signed updates (in parallel, as the engine runs the DNS group) plus verify
until primary and secondary both answer all 1,000 new values. Runs alternate dc1→dc2
and dc2→dc1 so every run changes every record. Target: ≤ 2 s.

The secondary runs with serial-query-rate 1000 (see tests/adapters/bindlab.py): with
BIND's default of 20/s the second zone's transfer waits for the refresh rate limiter's
500 ms tick. `--serial-query-rate 0` measures that default.

    .venv/bin/python bench/dns_updates.py [--runs 7] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orchestrator.adapters.dns import (
    RecordChange,
    Rfc2136Provider,
    load_key_file,
    verify,
)
from tests.adapters.bindlab import SERIAL_QUERY_RATE, BindPair, remove, scratch_dir

ZONES = ("bench-a.test.", "bench-b.test.")
PER_ZONE = 500
TARGET_S = 2.0


def values(site: str) -> dict[str, str]:
    prefix = "10.1" if site == "dc1" else "10.2"
    return {f"host{i:03d}": f"{prefix}.{i // 250}.{i % 250}" for i in range(PER_ZONE)}


def changes(zone: str, site: str) -> list[RecordChange]:
    return [RecordChange(f"{name}.{zone}", "A", 60, value) for name, value in values(site).items()]


def one_run(providers: dict[str, Rfc2136Provider], pair: BindPair, site: str) -> dict[str, float]:
    wanted = {zone: changes(zone, site) for zone in ZONES}
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=len(ZONES)) as pool:
        list(pool.map(lambda z: providers[z].apply(wanted[z]), ZONES))
    applied = time.perf_counter()
    with ThreadPoolExecutor(max_workers=len(ZONES)) as pool:
        results = list(
            pool.map(lambda z: verify(z, wanted[z], pair.servers, timeout=10, interval=0.02), ZONES)
        )
    done = time.perf_counter()
    for result in results:
        if not result.ok:
            raise SystemExit(f"verify failed: {result.describe()}")
    return {
        "apply_s": applied - start,
        "verify_s": done - applied,
        "total_s": done - start,
        "verify_rounds": max(r.rounds for r in results),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--serial-query-rate",
        type=int,
        default=SERIAL_QUERY_RATE,
        help="the secondary's serial-query-rate; 0 = BIND's default (20/s)",
    )
    args = parser.parse_args()
    home = scratch_dir()
    try:
        rate = args.serial_query_rate or None
        zones = {z: values("dc1") for z in ZONES}
        with BindPair.running(home, zones, serial_query_rate=rate) as pair:
            key = load_key_file(pair.ddns_key_file)
            providers = {z: Rfc2136Provider(z, [pair.primary], key) for z in ZONES}
            runs = [
                one_run(providers, pair, "dc2" if n % 2 == 0 else "dc1") for n in range(args.runs)
            ]
    finally:
        remove(home)
    totals = [r["total_s"] for r in runs]
    report = {
        "figure": "P4 DNS: 1,000 records in 2 zones applied and verified on 2 servers",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "serial_query_rate": args.serial_query_rate or "BIND default (20)",
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cpu, "
        f"Python {platform.python_version()}",
        "runs": runs,
        "median_total_s": statistics.median(totals),
        "max_total_s": max(totals),
        "target_s": TARGET_S,
        "met": max(totals) <= TARGET_S,
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(report["figure"])
        print(
            f"  {report['machine']}, {report['date']}, secondary serial-query-rate "
            f"{report['serial_query_rate']}"
        )
        for n, run in enumerate(runs, 1):
            print(
                f"  run {n}: apply {run['apply_s']:.3f} s + verify {run['verify_s']:.3f} s "
                f"= {run['total_s']:.3f} s ({run['verify_rounds']} verify round(s))"
            )
        print(
            f"  median {report['median_total_s']:.3f} s, max {report['max_total_s']:.3f} s, "
            f"target ≤ {TARGET_S:.1f} s: {'met' if report['met'] else 'NOT met'}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
