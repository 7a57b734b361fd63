"""Committed runbooks must match what `sitectl runbook` renders today: a person who
follows a stale runbook during an outage runs yesterday's procedure."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestrator.cli.main import app
from orchestrator.config import load_topology
from orchestrator.coordination.ticket import granted
from orchestrator.plan import assumed_state, build_plan
from orchestrator.runbook import render_runbook

ROOT = Path(__file__).resolve().parents[2]
TOPOLOGY = "inventories/example-zimbra/topology.yaml"

RUNBOOKS = [
    ("runbooks/example-zimbra/switchover-to-dc2.md", ["--to", "dc2"]),
    (
        "runbooks/example-zimbra/failover-to-dc2.md",
        ["--to", "dc2", "--mode", "failover", "--unreachable", "dc1"],
    ),
]


@pytest.mark.parametrize(("path", "args"), RUNBOOKS, ids=[p for p, _ in RUNBOOKS])
def test_committed_runbook_is_current(path: str, args: list[str]) -> None:
    os.chdir(ROOT)  # the runbook names the topology file as given, relative to the repo
    result = CliRunner().invoke(app, ["runbook", "-c", TOPOLOGY, *args])
    assert result.exit_code == 0, result.output
    regenerate = f"sitectl runbook -c {TOPOLOGY} {' '.join(args)} -o {path}"
    assert (ROOT / path).read_text(encoding="utf-8") == result.stdout, (
        f"{path} is stale — regenerate it: {regenerate}"
    )


def test_failover_runbook_tells_the_operator_what_to_skip_and_how_to_update_dns() -> None:
    text = (ROOT / "runbooks/example-zimbra/failover-to-dc2.md").read_text(encoding="utf-8")
    assert 'If dc1 does not answer within 15 s, write "skipped: unreachable" and go on.' in text
    assert "snapmirror update" not in text  # no final transfer from a lost site
    assert "snapmirror break -destination-path svm_mail_dc2:zstore_dst" in text
    assert "nsupdate -y \"hmac-sha256:ddns-corp:$DDNS_CORP_SECRET\" <<'EOF'" in text
    assert "update add mail.corp.example.net. 60 A 198.51.100.21" in text
    assert "dig @198.51.100.53 -p 53 +norec +short mail.corp.example.net. A" in text


def test_switchover_runbook_has_every_step_with_a_check() -> None:
    text = (ROOT / "runbooks/example-zimbra/switchover-to-dc2.md").read_text(encoding="utf-8")
    topo = load_topology(ROOT / TOPOLOGY)
    steps = list(build_plan(topo, assumed_state(topo), "switchover", "dc2").steps())
    assert text.count("- **It worked when:**") == text.count("- [ ] done at") == len(steps)
    for step in steps:
        assert f"`{step.id}`" in text
    assert (
        "ssh admin@ontap.dc2.example.net snapmirror update -destination-path svm_mail_dc2:zstore_dst"
        in text
    )
    assert (
        "ansible -i hosts.yml dc2_mailbox -m ansible.builtin.service -a 'name=zimbra-mailbox state=started'"
        in text
    )


def test_the_failover_runbook_shows_the_fence_wait_arithmetic_from_the_ticket() -> None:
    topo = load_topology(ROOT / TOPOLOGY)
    plan = build_plan(topo, assumed_state(topo, frozenset({"dc1"})), "failover", "dc2")
    # dc1's controllers last renewed its ticket at 08:00:00.0Z (ttl 14 s).
    ticket = granted("dc1", 3, 1_800_000_000.0, 14.0)
    text = render_runbook(topo, plan, TOPOLOGY, ticket)
    assert (
        "last renewal 08:00:00.0Z + ttl 14 s + clock drift 2 s = 08:00:16.0Z "
        "(1800000016 s since the epoch)"
    ) in text
    assert "make nothing at dc2 writable" in text
    wait, first_break = text.index("`fence/wait/dc1`"), text.index("`break-mirrors/")
    assert wait < first_break < text.index("`ticket/grant/dc2`")
    # Without a ticket read, the formula stands in for the numbers.
    assert "renewed_at + ttl + 2 s (clock drift)" in render_runbook(topo, plan, TOPOLOGY)


def test_tls_probes_render_commands_that_verify_as_the_probe_does() -> None:
    """openssl s_client and curl with the probe's CA, checking the probed address (an IP
    in the certificate) or the probe's server_name reached at the host's address; curl
    must not fall back to clear text after a refused STARTTLS (--ssl-reqd)."""
    from orchestrator.config.model import Host, Probe
    from orchestrator.runbook import manual

    host = Host(name="mbox1", site="dc1", roles=("mailbox",), address="198.18.1.1")
    imaps = Probe(kind="imap", port=1993, tls="imaps", ca_file="pki/ca.crt")
    smtp = Probe(kind="smtp", port=2525, tls="starttls", server_name="{host}.example.net")
    clear = Probe(kind="imap", port=143, insecure=True)
    assert manual._probe_command(host, imaps) == (
        "printf 'a1 CAPABILITY\\r\\na2 LOGOUT\\r\\n' | timeout 5 openssl s_client -quiet "
        "-verify_return_error -connect 198.18.1.1:1993 -CAfile pki/ca.crt -verify_ip 198.18.1.1"
    )
    assert manual._probe_command(host, smtp) == (
        "printf 'EHLO runbook\\r\\nQUIT\\r\\n' | timeout 5 openssl s_client -quiet "
        "-verify_return_error -starttls smtp -connect 198.18.1.1:2525 "
        "-servername mbox1.example.net -verify_hostname mbox1.example.net"
    )
    assert manual._probe_command(host, clear) == (
        "printf 'a1 CAPABILITY\\r\\na2 LOGOUT\\r\\n' | nc -w 5 198.18.1.1 143"
    )
    assert manual._curl_url(host, imaps, "INBOX") == (
        "imaps://198.18.1.1:1993/INBOX",
        " --cacert pki/ca.crt",
    )
    assert manual._curl_url(host, smtp, "") == (
        "smtp://mbox1.example.net:2525/",
        " --ssl-reqd --connect-to mbox1.example.net:2525:198.18.1.1:2525",
    )
    assert manual._curl_url(host, clear, "INBOX") == ("imap://198.18.1.1:143/INBOX", "")
