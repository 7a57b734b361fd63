"""The health CLI's input handling, without servers."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from orchestrator.checks import CheckResult, Readiness, Status, Sweep
from orchestrator.cli import health
from orchestrator.config import Topology

app = typer.Typer()
health.register(app)
runner = CliRunner()


def test_an_invalid_topology_exits_2_naming_the_problem(tmp_path: Path) -> None:
    bad = tmp_path / "topology.yaml"
    bad.write_text("cluster: Not A Name\n")
    for args in (["health"], ["readiness", "--to", "dc2"]):
        result = runner.invoke(app, [*args, "-c", str(bad)])
        assert result.exit_code == 2
        assert str(bad) in result.output


def test_unknown_site_and_system_are_bad_input() -> None:
    example = "inventories/example-zimbra/topology.yaml"
    assert runner.invoke(app, ["health", "-c", example, "--site", "mars"]).exit_code == 2
    assert runner.invoke(app, ["health", "-c", example, "--system", "nfs"]).exit_code == 2
    assert runner.invoke(app, ["readiness", "-c", example, "--to", "witness"]).exit_code == 2


def test_figures_hide_raw_csn_timestamps() -> None:
    assert health.figures_text({"csn_sid_1": 1.7e9, "lag_seconds": 2.5, "zxid": 4294967296.0}) == (
        "lag_seconds=2.5 zxid=4294967296"
    )


# -- health and readiness on made-up sweeps -------------------------------------------
# The checks themselves are tested on their own; here `run_checks` and `readiness` are
# replaced where the CLI calls them, so these tests are about exit codes and output.

EXAMPLE = str(Path(__file__).resolve().parents[2] / "inventories/example-zimbra/topology.yaml")
OK = CheckResult("zookeeper", None, "quorum", Status.OK, "", {"leaders": 1.0})
DEGRADED = CheckResult(
    "mirrors", "dc2", "mirror mailstore", Status.DEGRADED, "lags 400 s", {"lag_seconds": 400.0}
)
DOWN = CheckResult("ldap", "dc2", "ldap://ldap1.dc2.example.net:389", Status.DOWN, "refused", {})


@dataclass
class Stubs:
    sweeps: list[Sweep | BaseException]  # what each call of run_checks returns or raises
    calls: list[dict[str, Any]] = field(default_factory=list)
    sessions: int = 0

    def run_checks(self, topo: Topology, systems: Any = None, **kwargs: Any) -> Sweep:
        self.calls.append({"topo": topo, "systems": systems, **kwargs})
        outcome = self.sweeps[min(len(self.calls), len(self.sweeps)) - 1]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    @contextlib.contextmanager
    def own_session(self, topo: Topology) -> Iterator[None]:
        self.sessions += 1
        yield


@pytest.fixture
def stub(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Stubs]:
    def install(*sweeps: Sweep | BaseException) -> Stubs:
        stubs = Stubs(list(sweeps))
        monkeypatch.setattr(health, "as_recorded", lambda topo: topo)  # no ZooKeeper to ask
        monkeypatch.setattr(health, "run_checks", stubs.run_checks)
        monkeypatch.setattr(health, "own_session", stubs.own_session)
        # Wide enough that the table does not fold a target or reason across lines.
        monkeypatch.setattr(health.console, "_width", 200)
        return stubs

    return install


def sweep(*results: CheckResult) -> Sweep:
    return Sweep(tuple(results), 0.25)


@pytest.mark.parametrize(
    ("results", "code", "last_line"),
    [
        ((OK,), 0, "ok — 1 checks in 0.25 s"),
        ((OK, DEGRADED), 1, "degraded — 2 checks in 0.25 s"),
        ((OK, DEGRADED, DOWN), 2, "down — 3 checks in 0.25 s"),
    ],
)
def test_health_exits_with_the_worst_status(
    stub: Callable[..., Stubs], results: tuple[CheckResult, ...], code: int, last_line: str
) -> None:
    stubs = stub(sweep(*results))
    result = runner.invoke(app, ["health", "-c", EXAMPLE])
    assert result.exit_code == code, result.output
    assert result.output.strip().splitlines()[-1] == last_line
    for r in results:
        if r.status is not Status.OK:  # a problem is named with its target and reason
            assert f"{r.target}: {r.reason}" in result.output
    verbose = runner.invoke(app, ["health", "-c", EXAMPLE, "--verbose"])
    assert verbose.exit_code == code, verbose.output
    for r in results:  # every check, the healthy ones too
        assert r.target in verbose.output and r.reason in verbose.output
    (call, _) = stubs.calls
    assert call["systems"] is None and call["sites"] is None
    assert stubs.sessions == 2  # our ZooKeeper session is opened for each whole command


def test_health_json_shape(stub: Callable[..., Stubs]) -> None:
    stub(sweep(OK, DEGRADED))
    result = runner.invoke(app, ["health", "-c", EXAMPLE, "--json"])
    assert result.exit_code == 1, result.output
    data = json.loads(result.stdout)
    assert data["status"] == "degraded" and data["seconds"] == 0.25
    assert data["results"][1] == {
        "system": "mirrors",
        "site": "dc2",
        "target": "mirror mailstore",
        "status": "degraded",
        "reason": "lags 400 s",
        "figures": {"lag_seconds": 400.0},
    }
    assert [r["system"] for r in data["results"]] == ["zookeeper", "mirrors"]


def test_health_metrics_prints_the_exposition_and_exits_0_for_a_textfile_collector(
    stub: Callable[..., Stubs],
) -> None:
    # Something down: the table's exit would be 2; the metrics say it, and exit 0, since a
    # textfile collector's `... > f.tmp && mv f.tmp f.prom` keeps a successful run only.
    stub(sweep(OK, DOWN))
    result = runner.invoke(app, ["health", "-c", EXAMPLE, "--metrics"])
    assert result.exit_code == 0, result.output
    assert (
        'sitectl_check_up{site="dc2",system="ldap",target="ldap://ldap1.dc2.example.net:389"} 0.0'
        in result.stdout
    )
    assert 'sitectl_check_status{site="",system="zookeeper",target="quorum"} 0.0' in result.stdout
    assert "sitectl_sweep_duration_seconds 0.25" in result.stdout
    assert "checks in" not in result.stdout  # no table, no summary line: only the exposition


def test_health_site_and_system_are_passed_on_and_skip_the_session(
    stub: Callable[..., Stubs],
) -> None:
    stubs = stub(sweep(OK))
    args = ["health", "-c", EXAMPLE, "--site", "dc2", "--system", "dns", "--timeout", "1.5"]
    assert runner.invoke(app, args).exit_code == 0
    (call,) = stubs.calls
    assert (call["systems"], call["sites"], call["timeout"]) == (["dns"], ["dc2"], 1.5)
    assert stubs.sessions == 0  # no ZooKeeper check, no session


def test_watch_repeats_until_interrupted_and_exits_with_the_last_sweep(
    stub: Callable[..., Stubs],
) -> None:
    # The second sweep is interrupted (Ctrl-C while it runs): the first one's status counts.
    stubs = stub(sweep(OK, DOWN), sweep(OK, DEGRADED), KeyboardInterrupt())
    result = runner.invoke(app, ["health", "-c", EXAMPLE, "--watch", "0.5", "--json"])
    assert len(stubs.calls) == 3
    assert result.exit_code == 1, result.output
    shown = [json.loads(chunk) for chunk in _json_documents(result.stdout)]
    assert [d["status"] for d in shown] == ["down", "degraded"]
    assert stubs.sessions == 1  # one session for the whole watch


def test_watch_interrupted_before_any_sweep_exits_130(stub: Callable[..., Stubs]) -> None:
    stub(KeyboardInterrupt())
    result = runner.invoke(app, ["health", "-c", EXAMPLE, "--watch", "0.5"])
    assert result.exit_code == 130, result.output


def _json_documents(text: str) -> list[str]:
    """Split concatenated pretty-printed JSON documents (one per sweep)."""
    decoder = json.JSONDecoder()
    out, index = [], 0
    while index < len(text):
        if text[index].isspace():
            index += 1
            continue
        _, end = decoder.raw_decode(text, index)
        out.append(text[index:end])
        index = end
    return out


def test_readiness_refused_exits_4_naming_the_replicator(
    stub: Callable[..., Stubs], monkeypatch: pytest.MonkeyPatch
) -> None:
    stubs = stub(sweep(DEGRADED))
    asked: list[tuple[str, Sweep]] = []

    def refuse(topo: Topology, to: str, given: Sweep) -> Readiness:
        asked.append((to, given))
        return Readiness(
            to,
            False,
            {"volume": 400.0, "ldap": 2.0},
            {"volume": 300.0, "ldap": 60.0},
            ("volume mirror mailstore lags 400.0 s, over the 300 s limit by 100.0 s",),
        )

    monkeypatch.setattr(health, "readiness", refuse)
    result = runner.invoke(app, ["readiness", "-c", EXAMPLE, "--to", "dc2"])
    assert result.exit_code == 4, result.output
    assert "volume mirror mailstore lags 400.0 s, over the 300 s limit by 100.0 s" in result.output
    assert "loss    400.0 s   limit 300 s" in result.output
    assert [to for to, _ in asked] == ["dc2"] and asked[0][1] is stubs.sweeps[0]
    assert stubs.calls[0]["systems"] == ["mirrors", "ldap", "object-store"]
    as_json = runner.invoke(app, ["readiness", "-c", EXAMPLE, "--to", "dc2", "--json"])
    assert as_json.exit_code == 4
    assert json.loads(as_json.stdout)["ready"] is False
