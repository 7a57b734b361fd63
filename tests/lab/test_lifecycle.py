"""up is idempotent, down leaves nothing behind, bad input is one line and changes nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from orchestrator.lab import layout, mail, prereqs, zookeeper
from orchestrator.lab.mail import send_test_mail
from tests.conftest import LabHandle, eventually, lab_command, leftovers, recorded_pids

pytestmark = pytest.mark.lab


def test_second_up_changes_nothing_and_says_so(lab: LabHandle) -> None:
    before = {name: row["pid"] for name, row in lab.status().items()}
    out = lab.ok("up")
    assert "already up" in out and "nothing changed" in out
    assert {name: row["pid"] for name, row in lab.status().items()} == before


def _other_dir(lab: LabHandle) -> Path:
    """A fresh state dir path next to the session's lab (a parent other users can search)."""
    return lab.state_dir.parent / f"other-{uuid.uuid4().hex[:8]}"


def _one_line(result_stderr: str) -> str:
    lines = result_stderr.strip().splitlines()
    assert len(lines) == 1, result_stderr
    return lines[0]


def test_a_lab_running_elsewhere_is_refused(lab: LabHandle) -> None:
    other = _other_dir(lab)
    result = lab_command("up", "--state-dir", str(other))
    assert result.returncode == 3
    line = _one_line(result.stderr)
    assert f"already running from {lab.state_dir}" in line
    assert not other.exists()


def test_a_missing_binary_names_the_apt_get_line(lab: LabHandle, tmp_path: Path) -> None:
    # A PATH with every program the lab needs except slapd.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for program in prereqs.PROGRAMS:
        if program != "slapd":
            (bin_dir / program).symlink_to(shutil.which(program) or "/nonexistent")
    other = _other_dir(lab)
    result = lab_command("up", "--state-dir", str(other), env={"PATH": str(bin_dir)})
    assert result.returncode == 2
    line = _one_line(result.stderr)
    assert "missing slapd" in line
    assert "apt-get install -y slapd" in line
    assert not other.exists()


def test_a_network_in_use_is_one_line_and_starts_nothing(lab: LabHandle, tmp_path: Path) -> None:
    # Another marker file, so this `up` does not see the session's lab as "elsewhere"
    # and meets its ops network (address and route) instead.
    other = _other_dir(lab)
    env = {"SITECTL_LAB_MARKER": str(tmp_path / "marker.json")}
    pids_before = recorded_pids(lab.state_dir)
    result = lab_command("up", "--state-dir", str(other), env=env)
    assert result.returncode == 1
    line = _one_line(result.stderr)
    assert "already in use" in line
    assert not other.exists()
    assert recorded_pids(lab.state_dir) == pids_before
    # The session's lab still answers from here: its route was not taken.
    assert lab.status()["dc2-ldap1"]["state"] == "up"
    zookeeper.four_letter(layout.service_ip("dc2"), layout.ZK_CLIENT_PORT, "ruok")


def test_a_state_dir_other_users_cannot_reach_is_refused(tmp_path: Path) -> None:
    # pytest's own tmp dirs are mode 0700: Postfix (user postfix) could not read its config.
    env = {"SITECTL_LAB_MARKER": str(tmp_path / "marker.json")}  # not the session's lab
    result = lab_command("up", "--state-dir", str(tmp_path / "lab"), env=env)
    assert result.returncode == 2
    assert "not searchable by other users" in _one_line(result.stderr)
    assert not (tmp_path / "lab").exists()


def _subjects(lab: LabHandle, site: str) -> str:
    with mail.imap_client(lab.state(), site) as imap:  # STARTTLS, the lab CA verifying
        imap.select("INBOX", readonly=True)
        _, data = imap.search(None, "ALL")
        fetched = [imap.fetch(n, "(BODY.PEEK[HEADER])")[1][0][1] for n in data[0].split()]
        return b"".join(fetched).decode()


def test_down_leaves_nothing_and_up_again_keeps_the_data(lab: LabHandle) -> None:
    active = lab.active_site()
    subject = f"before down {uuid.uuid4().hex}"
    send_test_mail(active, subject)
    eventually(lambda: subject in _subjects(lab, active), "mail delivered before down")
    pids = recorded_pids(lab.state_dir)

    lab.ok("down")
    assert leftovers(lab.state_dir, pids) == []
    assert lab.state_dir.exists()  # without --purge the data stays
    assert {row["state"] for row in lab.status().values()} == {"down"}

    _a_loop_device_that_cannot_be_attached_rolls_back(lab)
    _down_after_up_was_killed_half_way_leaves_nothing(lab)

    out = lab.ok("up")
    assert "lab up in" in out
    # Where the state is and how to use it, pasteable as printed.
    assert f"state in {lab.state_dir}" in out
    assert f'use it:  eval "$(sitectl lab env --state-dir {lab.state_dir})"' in out
    assert lab.active_site() == active  # the mirror's direction survives down/up
    assert subject in _subjects(lab, active)
    assert lab.status()[f"{active}-postfix"]["state"] == "up"


def _a_loop_device_that_cannot_be_attached_rolls_back(lab: LabHandle) -> None:
    """Run while no lab is up: a fresh `up` whose losetup cannot attach leaves nothing."""
    fake = lab.state_dir.parent / f"fake-bin-{uuid.uuid4().hex[:8]}"
    fake.mkdir()
    losetup = fake / "losetup"
    real = shutil.which("losetup")
    losetup.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = "-f" ]; then echo "losetup: cannot find an unused loop device" >&2; '
        "exit 1; fi\n"
        f'exec {real} "$@"\n'
    )
    losetup.chmod(0o755)
    other = _other_dir(lab)
    result = lab_command(
        "up", "--state-dir", str(other), env={"PATH": f"{fake}:{os.environ['PATH']}"}
    )
    assert result.returncode == 1
    line = _one_line(result.stderr)
    assert "cannot find an unused loop device" in line
    assert leftovers(other, []) == []
    assert recorded_pids(other) == []
    assert lab_command("down", "--purge", "--state-dir", str(other)).returncode == 0
    shutil.rmtree(fake)


def _down_after_up_was_killed_half_way_leaves_nothing(lab: LabHandle) -> None:
    """SIGKILL `lab up` once it has started some servers; `down` still finds them all."""
    up = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.lab", "up", "--state-dir", str(lab.state_dir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        eventually(lambda: len(recorded_pids(lab.state_dir)) >= 3, "up started some servers")
    finally:
        up.kill()
        up.wait()
    pids = recorded_pids(lab.state_dir)
    assert pids
    lab.ok("down")
    assert leftovers(lab.state_dir, pids) == []


def test_down_is_harmless_where_there_is_no_lab(tmp_path: Path) -> None:
    result = lab_command("down", "--purge", "--state-dir", str(tmp_path / "never-used"))
    assert result.returncode == 0, result.stderr
    assert os.path.exists(tmp_path)
