"""`python -m orchestrator.storage`, as a playbook calls it, on real loop devices."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from orchestrator.storage.epochfence import ledger_path

from .conftest import Lab

pytestmark = pytest.mark.lab
REPO = Path(__file__).resolve().parents[2]


def storage(lab: Lab, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.storage", "--config", str(lab.config_path), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def ok(lab: Lab, *args: str) -> dict[str, Any]:
    result = storage(lab, *args)
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def test_changed_reports_only_real_changes(lab: Lab) -> None:
    assert ok(lab, "status")["changed"] is False
    assert ok(lab, "mount", "dc1")["changed"] is False  # the fixture mounted it
    first = ok(lab, "quiesce")
    assert first["changed"] is True and first["status"]["state"] == "quiesced"
    assert ok(lab, "quiesce")["changed"] is False
    assert ok(lab, "update")["changed"] is True  # a new snapshot every time
    assert ok(lab, "unmount", "dc1")["changed"] is True
    assert ok(lab, "break")["status"]["state"] == "broken"
    mounted = ok(lab, "mount", "dc2")
    assert mounted["changed"] is True and mounted["status"]["mounted"] == ["dc2"]
    reversed_ = ok(lab, "reverse", "dc2")
    assert (reversed_["status"]["source"], reversed_["status"]["destination"]) == ("dc2", "dc1")
    assert ok(lab, "reverse", "dc2")["changed"] is False


def test_refusal_exits_1_with_the_reason(lab: Lab) -> None:
    result = storage(lab, "reverse")
    assert result.returncode == 1
    assert "break the relationship first" in result.stderr
    assert result.stdout == ""


def test_mount_without_a_site_is_bad_usage(lab: Lab) -> None:
    assert storage(lab, "mount").returncode == 2


def test_an_older_epoch_never_acts_after_a_newer_one(lab: Lab) -> None:
    """A playbook task released by a leader that then froze carries its old epoch: once a
    newer epoch has acted on the mirror, it is refused on the host and changes nothing."""
    assert ok(lab, "--epoch", "5", "quiesce")["status"]["state"] == "quiesced"
    stale = storage(lab, "--epoch", "4", "resume")
    assert stale.returncode == 1
    assert "epoch 4 is stale: epoch 5 has already acted on this mirror" in stale.stderr
    assert ok(lab, "status")["status"]["state"] == "quiesced", "the stale resume changed it"
    assert ok(lab, "--epoch", "5", "quiesce")["changed"] is False, "the same epoch goes on"
    assert ok(lab, "--epoch", "7", "resume")["status"]["state"] != "quiesced"
    ledger = ledger_path(Path(json.loads(lab.config_path.read_text())["state_file"]))
    acted = [json.loads(line) for line in ledger.read_text().splitlines()]
    assert [(e["epoch"], e["action"]) for e in acted] == [
        (5, "quiesce"),
        (5, "quiesce"),
        (7, "resume"),
    ]
    assert ok(lab, "--epoch", "3", "status")["changed"] is False, "reading is never fenced"
