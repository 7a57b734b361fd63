"""A running controller's /metrics on the lab: the scrape passes `promtool check metrics`,
carries the health sweep's lag gauges with real figures (every LDAP master, every
mirrored volume, every replicated bucket of the lab's topology), the active site, the
RPO limits and the records, and holds every metric name the alerting rules and the
Grafana dashboard read (contrib/; tests/unit/test_monitoring_kit.py checks them against
the registry alone). `sitectl health --metrics` exits 0 on the same lab and its output
passes promtool too. Against the controller tests' own ensemble: `sitectl pause` reaches
every controller's /metrics, follower or leader."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from orchestrator.config import load_topology
from orchestrator.lab import controllers as lab_controllers
from tests.conftest import LabHandle, eventually
from tests.controller.conftest import Controllers, wait_for
from tests.monitoring import (
    dashboard_expressions,
    exported_names,
    metric_names,
    promtool,
    rule_expressions,
)

pytestmark = pytest.mark.lab

SITE = "witness"  # whose controller is scraped: up whichever datacenter serves
LAG = (
    "sitectl_ldap_replication_lag_seconds",
    "sitectl_mirror_lag_seconds",
    "sitectl_object_store_replication_lag_seconds",
)


def samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return found


def scrape(lab: LabHandle) -> str:
    token = lab_controllers.token_file(lab.state_dir)  # the lab guards /metrics too
    address = lab_controllers.listen(SITE)
    return lab_controllers.get(address, "/metrics", token, timeout=5).decode()


def swept(lab: LabHandle) -> str | None:
    """The scrape once the controller's first health sweep and records are in it."""
    text = scrape(lab)
    found = samples(text)
    read = found.get("sitectl_records_read_timestamp_seconds", [({}, 0.0)])[0][1]
    return text if all(name in found for name in LAG) and read > 0 else None


def test_a_running_controllers_scrape_carries_the_lag_and_passes_promtool(lab: LabHandle) -> None:
    topo = load_topology(Path(lab.env["topology"]))
    assert topo.ldap is not None and topo.object_store is not None and topo.volumes
    lab.ok("controllers", "up")
    try:
        # The first sweep runs as the controller starts (then every policy.health_every).
        text = eventually(lambda: swept(lab), "the first health sweep on /metrics", within=60)
    finally:
        lab.ok("controllers", "down")
    checked = promtool("check", "metrics", stdin=text)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    found = samples(text)

    for name in LAG:
        assert all(math.isfinite(v) and v >= 0 for _, v in found[name]), found[name]
    ldap_lag = found["sitectl_ldap_replication_lag_seconds"]
    assert {labels["master"] for labels, _ in ldap_lag} == {m.uri for m in topo.ldap.masters}
    assert {labels["volume"] for labels, _ in found["sitectl_mirror_lag_seconds"]} == {
        v.name for v in topo.volumes
    }
    buckets = found["sitectl_object_store_replication_lag_seconds"]
    assert {labels["bucket"] for labels, _ in buckets} == {
        b.name for b in topo.object_store.buckets if b.replicated
    }

    active = lab.active_site()
    assert ({"site": active}, 1.0) in found["sitectl_active_site"]
    limits = {labels["kind"]: v for labels, v in found["sitectl_rpo_limit_seconds"]}
    assert limits["ldap"] == topo.policy.rpo_limits.ldap, limits
    loss = {labels["kind"] for labels, _ in found["sitectl_controller_estimated_loss_seconds"]}
    assert loss == {"volume", "ldap", "object_store"}, found
    assert found["sitectl_paused"] == [({}, 0.0)]
    assert found["sitectl_build_info"][0][1] == 1.0
    assert found["sitectl_config_parity_equal"] or not topo.parity

    exported = exported_names(text)
    for source in (rule_expressions(), dashboard_expressions()):
        unknown = {w: sorted(metric_names(e) - exported) for w, e in source.items()}
        assert {w: n for w, n in unknown.items() if n} == {}


def test_health_metrics_exits_0_with_an_exposition_promtool_accepts(lab: LabHandle) -> None:
    done = subprocess.run(
        [
            *(sys.executable, "-m", "orchestrator.cli.main", "health", "--metrics"),
            *("-c", lab.env["topology"], "--system", "ldap", "--system", "mirrors"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "sitectl_ldap_replication_lag_seconds{" in done.stdout
    checked = promtool("check", "metrics", stdin=done.stdout)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def gauge(controllers: Controllers, site: str, name: str) -> float | None:
    found = samples(controllers.get(site, "/metrics")).get(name)
    return found[0][1] if found else None


def test_a_pause_reaches_every_controllers_metrics(controllers: Controllers) -> None:
    sites = ("dc1", "witness")
    for site in sites:
        controllers.start(site)
    for site in sites:
        wait_for(
            lambda s=site: (
                (gauge(controllers, s, "sitectl_records_read_timestamp_seconds") or 0) > 0
            ),
            f"{site}'s first reading of the records",
        )
        assert gauge(controllers, site, "sitectl_paused") == 0.0
    paused = controllers.cli("pause", "--reason", "monitoring test")
    assert paused.returncode == 0, paused.stdout + paused.stderr
    for site in sites:
        wait_for(lambda s=site: gauge(controllers, s, "sitectl_paused") == 1.0, f"{site} paused")
    text = controllers.get("witness", "/metrics")
    assert 'sitectl_active_site{site="dc1"} 1.0' in text, text
    assert 'sitectl_active_site{site="dc2"} 0.0' in text, text
