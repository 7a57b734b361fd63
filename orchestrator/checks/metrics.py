"""Prometheus metrics of a sweep, on a registry of our own.

A custom collector that renders the latest sweep on every scrape, rather than Gauges set
label by label: a target that disappears from the topology (or a sid that stops being
reported) then disappears from the metrics instead of keeping its last value forever.
The controller serves it on its own registry, swept every `policy.health_every`
(controller/monitor.py); `sitectl health --metrics` prints it once.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from orchestrator.checks import ldap, mirrors, object_store, parity
from orchestrator.checks.result import Status, Sweep

_STATUS_CODE = {Status.OK: 0.0, Status.DEGRADED: 1.0, Status.DOWN: 2.0}
_SID_LAG = re.compile(r"^sid_(\d+)_lag_seconds$")


class SweepCollector(Collector):
    """Holds the latest sweep; thread-safe to update while being scraped."""

    def __init__(self, sweep: Sweep | None = None, exclude: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._sweep = sweep
        # Families a registry already has from elsewhere (the controller's own
        # sitectl_split_brain): a name twice in one exposition is invalid.
        self._exclude = frozenset(exclude)

    def update(self, sweep: Sweep) -> None:
        with self._lock:
            self._sweep = sweep

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            sweep = self._sweep
        if sweep is None:
            return
        yield from (f for f in families(sweep) if f.name not in self._exclude)


def families(sweep: Sweep) -> list[Metric]:
    up = GaugeMetricFamily(
        "sitectl_check_up",
        "1 unless the check found its target down.",
        labels=["system", "site", "target"],
    )
    status = GaugeMetricFamily(
        "sitectl_check_status", "0 ok, 1 degraded, 2 down.", labels=["system", "site", "target"]
    )
    ldap_lag = GaugeMetricFamily(
        "sitectl_ldap_replication_lag_seconds",
        "How far a master is behind the newest change of a writer (sid).",
        labels=["master", "sid"],
    )
    mirror_lag = GaugeMetricFamily(
        "sitectl_mirror_lag_seconds",
        "Age of the newest snapshot the mirror's destination holds.",
        labels=["volume"],
    )
    s3_lag = GaugeMetricFamily(
        "sitectl_object_store_replication_lag_seconds",
        "Replication lag of a bucket (backlog age or canary time).",
        labels=["bucket"],
    )
    equal = GaugeMetricFamily(
        "sitectl_config_parity_equal",
        "1 when both datacenters hold the same value of the setting, 0 when they differ.",
        labels=["setting"],
    )
    split = GaugeMetricFamily(
        "sitectl_split_brain",
        "1 while the sweep finds two sites serving (application or DNS primaries), else 0.",
    )
    split.add_metric([], 1.0 if sweep.split_brains() else 0.0)
    duration = GaugeMetricFamily("sitectl_sweep_duration_seconds", "How long the sweep took.")
    duration.add_metric([], sweep.seconds)
    bucket_lags: dict[str, float] = {}
    for r in sweep.results:
        labels = [r.system, r.site or "", r.target]
        up.add_metric(labels, 0.0 if r.status is Status.DOWN else 1.0)
        status.add_metric(labels, _STATUS_CODE[r.status])
        if r.system == ldap.SYSTEM:
            for key, value in r.figures.items():
                match = _SID_LAG.match(key)
                if match:
                    ldap_lag.add_metric([r.target, match[1]], value)
        elif r.system == mirrors.SYSTEM and "lag_seconds" in r.figures:
            mirror_lag.add_metric([r.target.removeprefix("mirror ")], r.figures["lag_seconds"])
        elif r.system == object_store.SYSTEM and object_store.LAG in r.figures:
            bucket = r.target.split()[1].split("@")[0]
            bucket_lags[bucket] = max(bucket_lags.get(bucket, 0.0), r.figures[object_store.LAG])
        elif r.system == parity.SYSTEM and parity.EQUAL in r.figures:
            equal.add_metric([r.target.removeprefix("setting ")], r.figures[parity.EQUAL])
    for bucket, lag in bucket_lags.items():
        s3_lag.add_metric([bucket], lag)
    return [up, status, ldap_lag, mirror_lag, s3_lag, equal, split, duration]


def exposition(sweep: Sweep) -> str:
    """The Prometheus text format of one sweep."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SweepCollector(sweep))
    return generate_latest(registry).decode()
