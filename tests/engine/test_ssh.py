"""Ansible reaches the lab's hosts over SSH with host-key checking on, as in production.

Invariant: a host whose key is not the one the operator's known_hosts holds (a replaced
host, a man in the middle) is never acted on — the operation stops at its first step on
that host, says why in SSH's own words, and nothing moves.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from orchestrator.lab import hosts, layout
from tests.engine.conftest import Cluster

pytestmark = pytest.mark.lab


def _impostor_key(tmp_path: Path) -> str:
    key = tmp_path / "impostor"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    kind, blob = key.with_suffix(".pub").read_text().split()[:2]
    return f"{kind} {blob}"


def test_a_changed_host_key_is_refused_and_nothing_changes(
    cluster: Cluster, tmp_path: Path
) -> None:
    cluster.assert_protected("dc1")
    dns_before = cluster.dns_answers()
    known_hosts = cluster.lab.state_dir / "secrets" / "ssh" / "known_hosts"
    original = known_hosts.read_text()
    dc1 = layout.service_ip("dc1")
    # dc1's servers now present a key other than the one on record.
    lines = [
        f"{line.split()[0]} {_impostor_key(tmp_path)}" if f"{dc1}," in line else line
        for line in original.splitlines()
    ]
    assert lines != original.splitlines()
    known_hosts.write_text("\n".join(lines) + "\n")
    # Connections already open (ControlPersist) were checked against the real key when
    # they were made: a replaced host would have dropped them. Start from none.
    hosts.close_connections(cluster.lab.state_dir)
    try:
        refused = cluster.sitectl("switchover", "--to", "dc2", "--yes", "--reason", "key test")
    finally:
        known_hosts.write_text(original)

    said = refused.stdout + refused.stderr
    assert refused.returncode != 0, said
    # SSH's own words (its first line or its last, as the message is cut to fit).
    assert (
        "REMOTE HOST IDENTIFICATION HAS CHANGED" in said or "Host key verification failed" in said
    ), said
    # Nothing moved: DNS, the mounted volume, the running application, the mirror.
    assert cluster.dns_answers() == dns_before
    assert cluster.mounted_sites() == {"dc1"}
    assert cluster.mirror() == {"source": "dc1", "destination": "dc2", "state": "mirrored"}
    answers = cluster.app_answers("dc1")
    assert set(answers.values()) == {answers["smtp"]} and answers["smtp"].value == "up"
    # The stopped operation is the operator's to abort or resume; this one is aborted.
    cluster.sitectl("abort", "--wait", "30")
    cluster.assert_protected("dc1")
