"""The relationship state file: atomic replace, clear errors, and the operation lock."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest

from orchestrator.errors import Failed, Unavailable
from orchestrator.storage import MirrorState, statefile
from orchestrator.storage.relationship import Relationship


def test_missing_file_means_not_initialised(tmp_path: Path) -> None:
    assert statefile.load(tmp_path / "absent.json") is None


def test_save_then_load_round_trips_and_leaves_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "mirror-mail.json"
    rel = Relationship(
        name="mail",
        source="dc1",
        destination="dc2",
        state=MirrorState.QUIESCED,
        seq=4,
        last_snapshot="data@4",
        last_snapshot_created=10.0,
    )
    statefile.save(path, rel)
    statefile.save(path, rel)  # replacing an existing file
    assert statefile.load(path) == rel
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mirror-mail.json"]


def test_unreadable_file_is_a_clear_failure(tmp_path: Path) -> None:
    path = tmp_path / "mirror-mail.json"
    path.write_text("{not json")
    with pytest.raises(Failed, match="unreadable"):
        statefile.load(path)


def test_lock_held_elsewhere_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "mirror-mail.json"
    with statefile.locked(path):
        pass  # creates the lock file
    # Another holder: flock conflicts between separate open file descriptions.
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with (
            pytest.raises(Unavailable, match="held by another operation"),
            statefile.locked(path, timeout=0.2),
        ):
            pass
    finally:
        os.close(fd)
    with statefile.locked(path, timeout=0.2):
        pass  # free again once the other holder is gone
