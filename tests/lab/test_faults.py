"""Fault injection: kill-site, pause-site, heal-site, and the app helper, on the real lab.

Each test leaves the lab healed for the next one (heal in `finally`).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import ldap3
import pytest

from orchestrator.lab import layout, s3, volumes, zookeeper
from orchestrator.lab.ldap import connect
from orchestrator.lab.procs import group_members
from orchestrator.storage.btrfs_mirror import BtrfsMirror
from tests.conftest import LabHandle, eventually

pytestmark = pytest.mark.lab


def _site_rows(lab: LabHandle, site: str) -> dict[str, dict]:
    return {name: row for name, row in lab.status().items() if row["site"] == site}


def test_kill_site_kills_every_process_and_heal_restarts_them_as_they_were(
    lab: LabHandle,
) -> None:
    active, standby = lab.active_site(), lab.standby_site()
    before = {c.name: c for c in lab.state().of_site(active)}
    running = {name for name, c in before.items() if c.wanted}
    try:
        out = lab.ok("kill-site", active)
        assert out.startswith(f"{active}: killed")
        after_kill = lab.state()
        for name in running:
            comp = after_kill.components[name]
            assert not group_members(comp), f"{name} still has live processes"
        rows = _site_rows(lab, active)
        assert {row["state"] for row in rows.values()} == {"down"}
        # The other two sites keep a ZooKeeper quorum.
        answer = zookeeper.four_letter(layout.service_ip(standby), layout.ZK_CLIENT_PORT, "srvr")
        assert "Mode: leader" in answer or "Mode: follower" in answer
        # The lost site's array went with it: the standby receives nothing more, and the
        # mirror's lag grows (else every failover would look loss-free).
        mirror = volumes.mirror(after_kill)
        last = _settled_transfer(mirror)
        time.sleep(2 * volumes.INTERVAL_S + 1)
        assert mirror.status().last_transfer_at == last
        assert f"the source {active}'s array does not answer (lab: killed)" in _mirrord_log(lab)
    finally:
        lab.ok("heal-site", active)
    eventually(
        lambda: (mirror.status().last_transfer_at or 0) > last,
        "the mirror transfers again after heal-site",
        within=4 * volumes.INTERVAL_S + 5,
    )
    healed = lab.state()
    for name in running:
        comp = healed.components[name]
        assert comp.argv == before[name].argv, name
        assert comp.pid != before[name].pid, name
    # What ran comes back; what was configured but not started (its controller, until
    # `lab controllers up`) stays down, as it was.
    states = {name: row["state"] for name, row in _site_rows(lab, active).items()}
    assert states == {name: "up" if name in running else "down" for name in before}
    # The active site's S3 came back empty (objects live in memory) but replicates again.
    key = f"after-heal/{uuid.uuid4().hex}"
    state = lab.state()
    s3.client(state, active).put_object(Bucket=s3.BUCKET, Key=key, Body=b"healed")
    eventually(
        lambda: (
            s3.client(state, standby).get_object(Bucket=s3.BUCKET, Key=key)["Body"].read()
            == b"healed"
        ),
        f"an object put at {active} after heal-site replicated to {standby}",
    )


def _settled_transfer(mirror: BtrfsMirror) -> float | None:
    """The last transfer's time, once one in flight when the site died has ended."""
    time.sleep(volumes.INTERVAL_S + 0.5)  # the lab's small deltas take well under a second
    return mirror.status().last_transfer_at


def _mirrord_log(lab: LabHandle) -> str:
    comp = lab.state().components[f"{volumes.MIRROR_SITE}-mirrord"]
    return Path(comp.log).read_text()


def test_pause_site_hangs_servers_that_still_accept_tcp(lab: LabHandle) -> None:
    uri = lab.env["ldap"]["uris"]["dc2-ldap1"]
    try:
        lab.ok("pause-site", "dc2")
        rows = _site_rows(lab, "dc2")
        wanted = {n for n, c in lab.state().components.items() if c.site == "dc2" and c.wanted}
        assert {rows[name]["state"] for name in wanted} == {"paused"}
        with socket.create_connection((layout.site_ip("dc2", 11), layout.LDAP_PORT), timeout=2):
            pass  # the kernel still completes the handshake for a stopped slapd
        with pytest.raises(ldap3.core.exceptions.LDAPException):
            connect(uri, Path(lab.env["ldap"]["ca_file"]), lab.ldap_password)
    finally:
        lab.ok("heal-site", "dc2")
    assert {_site_rows(lab, "dc2")[name]["state"] for name in wanted} == {"up"}
    conn = connect(uri, Path(lab.env["ldap"]["ca_file"]), lab.ldap_password)
    conn.unbind()


def test_kill_and_heal_the_witness(lab: LabHandle) -> None:
    try:
        lab.ok("kill-site", "witness")
        assert {r["state"] for r in _site_rows(lab, "witness").values()} == {"down"}
    finally:
        lab.ok("heal-site", "witness")
    eventually(
        lambda: (
            "Mode:"
            in zookeeper.four_letter(layout.service_ip("witness"), layout.ZK_CLIENT_PORT, "srvr")
        ),
        "the witness's ZooKeeper rejoined the quorum",
    )


@pytest.mark.parametrize("command", ["kill-site", "pause-site", "heal-site"])
def test_unknown_site_is_one_line_and_exit_2(lab: LabHandle, command: str) -> None:
    result = lab.cli(command, "dc3")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "unknown site 'dc3'" in result.stderr
    assert "dc1, dc2, witness" in result.stderr


def _app(lab: LabHandle, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.lab.app", *args, "--state-dir", str(lab.state_dir)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_app_stop_and_start_by_pid_and_kept_across_heal(lab: LabHandle) -> None:
    site = lab.active_site()
    assert _app(lab, "status", "--site", site).stdout.strip() == "up"
    try:
        assert _app(lab, "stop", "--site", site, "--role", "mta").returncode == 0
        assert _app(lab, "status", "--site", site, "--role", "mta").stdout.strip() == "down"
        assert _app(lab, "status", "--site", site, "--role", "mailbox").stdout.strip() == "up"
        with pytest.raises(OSError):
            socket.create_connection((layout.service_ip(site), layout.SMTP_PORT), timeout=2).close()
        lab.ok("heal-site", site)  # a stopped application is not "healed" back on
        assert _app(lab, "status", "--site", site, "--role", "mta").stdout.strip() == "down"
    finally:
        started = _app(lab, "start", "--site", site)
    assert started.returncode == 0, started.stderr
    assert _app(lab, "status", "--site", site).stdout.strip() == "up"
    bad = _app(lab, "start", "--site", "witness")
    assert bad.returncode == 2
    assert "no mail application for witness" in bad.stderr
