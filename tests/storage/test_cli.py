"""`python -m orchestrator.storage`, as a playbook calls it, on real loop devices."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

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
