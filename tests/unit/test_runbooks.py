"""Committed runbooks must match what `sitectl runbook` renders today: a person who
follows a stale runbook during an outage runs yesterday's procedure."""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from orchestrator.adapters.dns.tsig import load_key_file
from orchestrator.cli.main import app
from orchestrator.config import Topology, load_topology
from orchestrator.config.loader import validate_text
from orchestrator.coordination.ticket import granted
from orchestrator.lab import topology as lab_topology
from orchestrator.lab.state import LabState
from orchestrator.plan import (
    ObservedState,
    Plan,
    assumed_state,
    build_plan,
    build_reprotect_plan,
)
from orchestrator.runbook import render_runbook

ROOT = Path(__file__).resolve().parents[2]
TOPOLOGY = "inventories/example-zimbra/topology.yaml"

RUNBOOKS = [
    ("runbooks/example-zimbra/switchover-to-dc2.md", ["--to", "dc2"]),
    (
        "runbooks/example-zimbra/failover-to-dc2.md",
        ["--to", "dc2", "--mode", "failover", "--unreachable", "dc1"],
    ),
    ("runbooks/example-zimbra/reprotect-from-dc2.md", ["--mode", "reprotect", "--from", "dc2"]),
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
    assert "snapmirror break -destination-path svm_mail_dc2:zstore1_dst" in text
    assert "nsupdate -k \"$RUNBOOK_SECRETS/ddns-corp.key\" <<'EOF'" in text
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
        "ssh admin@ontap.dc2.example.net snapmirror update -destination-path svm_mail_dc2:zstore1_dst"
        in text
    )
    # The example starts its roles by their commands (Zimbra's zmcontrol, as zimbra), and
    # mounts each mailbox server's volumes on that server only.
    assert (
        "ansible -i hosts.yml dc2_mailbox -m ansible.builtin.shell -a "
        """'su - zimbra -c '"'"'zmcontrol start'"'"''"""
    ) in text
    assert (
        "ansible -i hosts.yml mbox2.dc2 -m ansible.builtin.shell -a 'mountpoint -q /opt/zimbra/db"
        " || { mkdir -p /opt/zimbra/db && mount -t nfs nfs.dc2.example.net:/zdb2_dst "
        "/opt/zimbra/db; }'"
    ) in text


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


# --- secrets never on a command line -------------------------------------------------
#
# What a command line holds, `ps` shows every user of the machine for as long as the
# command runs: the runbook's commands read each secret from a file (nsupdate -k,
# ldapsearch -y, curl --netrc-file), made once by the "Secret files" block, whose
# printf is the shell's builtin.

# Values no real secret has, to look for in what the runbook prints. Quotes, a dollar,
# a percent and a backslash: printf and the shell must pass them through untouched.
TSIG_SECRET = base64.b64encode(b"tsig-secret-for-the-runbook-test").decode()
SECRET = 'pa$$ "w%s\\rd'


def _secret_refs(node: object) -> list[dict[str, str | None]]:
    """Every {file, env} secret reference the topology holds."""
    if isinstance(node, dict):
        own = [node] if set(node) == {"file", "env"} else []
        return own + [r for value in node.values() for r in _secret_refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in _secret_refs(value)]
    return []


def _example(root: Path, monkeypatch: pytest.MonkeyPatch) -> Topology:
    topo = load_topology(ROOT / TOPOLOGY)
    for ref in _secret_refs(topo.model_dump(mode="json")):
        value = TSIG_SECRET if ref["env"] == "DDNS_CORP_SECRET" else f"{SECRET}-{ref['env']}"
        monkeypatch.setenv(str(ref["env"]), value)
    shutil.copytree(ROOT / "inventories/example-zimbra", root, dirs_exist_ok=True)
    return topo.model_copy(update={"base_dir": root})


def _lab(root: Path, monkeypatch: pytest.MonkeyPatch) -> Topology:
    """The topology `lab up` writes (no lab running), its secret files made here."""
    text = yaml.safe_dump(lab_topology.build(LabState(root)), sort_keys=False)
    topo = validate_text(text, str(root / "topology.yaml"), base_dir=root, check_filesystem=False)
    for ref in _secret_refs(topo.model_dump(mode="json")):
        path = root / str(ref["file"])
        path.parent.mkdir(parents=True, exist_ok=True)
        # Trailing newlines, as an editor leaves them: sitectl drops them, so must the runbook.
        path.write_text(f"{SECRET}-{path.name}\n\n")
        path.chmod(0o600)
    return topo


TOPOLOGIES = {"example": _example, "lab": _lab}


def _plans(topo: Topology) -> dict[str, Plan]:
    return {
        "switchover": build_plan(topo, assumed_state(topo), "switchover", "dc2"),
        "failover": build_plan(topo, assumed_state(topo, frozenset({"dc1"})), "failover", "dc2"),
        "reprotect": build_reprotect_plan(topo, ObservedState(active_site="dc2")),
    }


def _blocks(text: str) -> list[list[str]]:
    """The lines of each ```sh block: what an operator pastes into a shell."""
    return [block.splitlines() for block in re.findall(r"```sh\n(.*?)```", text, re.S)]


def _secret_values(topo: Topology) -> list[str]:
    values = []
    for ref in _secret_refs(topo.model_dump(mode="json")):
        if ref["env"]:
            values.append(os.environ[str(ref["env"])])
        else:
            values.append(topo.resolve(str(ref["file"])).read_text().rstrip("\n"))
    return values


@pytest.mark.parametrize("mode", ["switchover", "failover", "reprotect"])
@pytest.mark.parametrize("name", list(TOPOLOGIES))
def test_no_runbook_command_line_holds_a_secret(
    name: str, mode: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    topo = TOPOLOGIES[name](tmp_path, monkeypatch)
    text = render_runbook(topo, _plans(topo)[mode], "topology.yaml")
    refs = _secret_refs(topo.model_dump(mode="json"))
    blocks = _blocks(text)
    setup = blocks[0] if blocks and blocks[0][0].startswith("export RUNBOOK_SECRETS=") else []
    steps = [line for block in blocks if block is not setup for line in block]
    assert steps, "the runbook has commands"
    for value in _secret_values(topo):
        assert value not in text
    for line in steps:
        # The secret forms the runbook used to print: a TSIG secret after -y, an LDAP
        # password after -w, curl's --user login:password.
        assert not re.search(r"(^|\s)-y\s+[\"']?[\w-]+:", line), line
        if "ldapsearch" in line:
            assert not re.search(r"(^|\s)-w(\s|$)", line), line
            assert re.search(r' -(y "\$RUNBOOK_SECRETS/[\w.-]+"|W) ', line), line
        if line.startswith("nsupdate"):
            assert re.match(r'nsupdate -k ("\$RUNBOOK_SECRETS/[\w.-]+\.key"|\S+) <<', line), line
        if line.startswith("curl") and "imap://" in line:
            assert '--netrc-file "$RUNBOOK_SECRETS/probe.netrc"' in line, line
        assert not re.search(r"(--user|-u)\s+\S*:", line), line
        # Nor the expansions that would put one there when the line runs.
        for ref in refs:
            if ref["env"]:
                assert f"${ref['env']}" not in line and f"${{{ref['env']}}}" not in line, line
            else:
                assert f"cat {ref['file']}" not in line, line
    # Only printf, the shell's builtin, ever sees a secret, and only in the setup block.
    for line in setup[1:]:
        assert line.startswith(("# ", "(umask 077 && printf ")), line
    # Each file a step reads is one the block makes.
    made = {m for line in setup for m in re.findall(r'> "\$RUNBOOK_SECRETS/([\w.-]+)"\)$', line)}
    read = {m for line in steps for m in re.findall(r'"\$RUNBOOK_SECRETS/([\w.-]+)"', line)}
    assert read == made
    if made:
        assert 'remove them: `rm -r "$RUNBOOK_SECRETS"`' in text


@pytest.mark.parametrize("shell", ["bash", "sh"])
@pytest.mark.parametrize("name", list(TOPOLOGIES))
def test_the_secret_files_block_makes_private_files_the_tools_read(
    name: str, shell: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pasted into a shell from the topology's directory, as the runbook says, the
    block makes each file as its tool reads it: ldapsearch -y the whole file as the
    password, nsupdate -k a BIND key statement, curl a netrc's default entry."""
    said = subprocess.run([shell, "-c", "type printf"], capture_output=True, text=True)
    assert "builtin" in said.stdout, said
    topo = TOPOLOGIES[name](tmp_path, monkeypatch)
    text = render_runbook(topo, _plans(topo)["switchover"], "topology.yaml")
    setup = _blocks(text)[0]
    out = tmp_path / "made"
    script = "\n".join([*setup, f'cp -p "$RUNBOOK_SECRETS"/* {out}/', 'rm -r "$RUNBOOK_SECRETS"'])
    out.mkdir()
    subprocess.run([shell, "-c", script], cwd=topo.base_dir, check=True)

    assert topo.ldap is not None
    ldap_password = _secret_of(topo, topo.ldap.password)
    assert (out / "ldap.pw").read_text() == ldap_password  # no newline: -y takes it all
    user = topo.application.probe_user
    assert user is not None
    assert (out / "probe.netrc").read_text() == (
        f"default login {user.user} password {_secret_of(topo, user.password)}\n"
    )
    for zone in topo.dns.zones:
        if zone.tsig is not None and zone.tsig.secret is not None:
            key = load_key_file(out / f"{zone.tsig.name}.key", zone.tsig.name)
            assert (key.algorithm, str(key.name)) == (zone.tsig.algorithm, f"{zone.tsig.name}.")
            assert key.keyring[key.name].secret == base64.b64decode(TSIG_SECRET)
    for made in out.iterdir():
        assert made.stat().st_mode & 0o777 == 0o600, made


def _secret_of(topo: Topology, ref: object) -> str:
    file, env = getattr(ref, "file", None), getattr(ref, "env", None)
    if env:
        return os.environ[env]
    return topo.resolve(str(file)).read_text().rstrip("\n")


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


# --- the lab's runbooks, as the runbook-following lab test walks them -----------------
#
# tests/lab/test_runbook_follow.py runs these blocks on the lab; here, what makes them
# followable at all, checked on the text (and the fence wait's arithmetic in a real bash).


def _lab_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str) -> str:
    topo = _lab(tmp_path, monkeypatch)
    return render_runbook(topo, _plans(topo)[mode], "topology.yaml")


def _step_block(text: str, step_id: str) -> list[str]:
    """The command lines of one step's block."""
    after = text[text.index(f"`{step_id}`") :]
    return after[
        after.index("```sh\n") + 6 : after.index("```\n", after.index("```sh\n") + 6)
    ].splitlines()


@pytest.mark.parametrize(
    "step_id",
    ["disable-application/dc1/mta", "disable-application/dc1/mailbox", "unmount/dc1/mailstore"],
)
def test_a_failover_runs_the_old_sites_steps_only_if_its_hosts_answer(
    step_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    topo = _lab(tmp_path, monkeypatch)
    lines = _step_block(render_runbook(topo, _plans(topo)["failover"], "topology.yaml"), step_id)
    assert lines[0].startswith("# Skip if dc1 is unreachable"), lines
    # Bounded as the engine bounds the step: by policy.unreachable_timeout.
    timeout = int(topo.policy.unreachable_timeout)
    ping = rf"if ansible -i \S+ dc1-\w+ -m ansible.builtin.ping -T {timeout} -o "
    assert re.match(ping, lines[1]), lines[1]
    assert lines[-3:] == ["else", 'echo "skipped: dc1 unreachable"', "fi"]
    # The step's own commands between, unguarded: a stop that fails on a site that
    # answers still fails.
    assert all(line.startswith("ansible ") for line in lines[2:-3]), lines


def test_a_failovers_checks_of_the_old_site_say_it_does_not_answer_instead_of_failing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = _lab_text(tmp_path, monkeypatch, "failover")
    said = ' || echo "skipped: dc1 does not answer (a failover goes on without it)"'
    checks = [
        line
        for step in (
            "preflight/zookeeper",
            "preflight/ldap",
            "preflight/dns",
            "preflight/application",
        )
        for line in _step_block(text, step)
    ]
    for line in checks:
        at_dc1 = "198.18.1." in line.split(" || ")[0]
        assert line.endswith(said) == at_dc1, line
    assert any("198.18.1." in line for line in checks) and any(
        "198.18.2." in line for line in checks
    )
    # A switchover needs the old site: the same checks there fail when it does not answer.
    assert "skipped: dc1" not in _lab_text(tmp_path, monkeypatch, "switchover")


def test_a_failover_asks_nothing_of_the_lost_sites_servers_after_its_checks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ZooKeeper's client sends its input at once: a request queued while it tries the
    lost site's server fails (ConnectionLoss), so only the survivors are named; the DNS
    verification asks the servers the plan expects an answer from."""
    text = _lab_text(tmp_path, monkeypatch, "failover")
    servers = re.findall(r" -server (\S+) <<EOF", text)
    assert len(servers) == 3  # fence wait, grant, activate
    assert set(servers) == {"198.18.2.1:2281,198.18.3.1:2281"}
    assert not [line for line in _step_block(text, "verify/dns") if "@198.18.1." in line]
    switchover = _lab_text(tmp_path, monkeypatch, "switchover")
    assert set(re.findall(r" -server (\S+) <<EOF", switchover)) == {
        "198.18.1.1:2281,198.18.2.1:2281,198.18.3.1:2281"
    }


def test_a_failover_sends_a_canary_at_the_new_site_and_reads_it_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = _lab_text(tmp_path, monkeypatch, "failover")
    lines = _step_block(text, "verify/application/dc2")
    assert lines[-5].startswith('export CANARY="sitectl-canary manual-')
    assert "smtp://198.18.2.1:2525/" in lines[-4]
    assert "imaps://198.18.2.1:1993/INBOX" in lines[-1] and lines[-1].endswith(
        "| grep '^\\* SEARCH [0-9]'"
    )
    assert '> "$RUNBOOK_SECRETS/probe.netrc")' in text  # the search's login, made first


def _fence_wait_tail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The fence wait's lines after the ticket is read: what decides how long to wait."""
    lines = _step_block(_lab_text(tmp_path, monkeypatch, "failover"), "fence/wait/dc1")
    return "\n".join(lines[lines.index('echo "ticket: ${TICKET:-none read}"') :])


@pytest.mark.parametrize(
    ("ticket", "waits"),
    [
        # dc1's ticket, last renewed long ago: expired, no wait.
        ('{"epoch": 3, "holder": "dc1", "renewed_at": {old}, "ttl": 10.0}', False),
        # dc1's ticket, passing 1.5 s from now (renewal + ttl 10 + drift 1): waited for.
        ('{"epoch": 3, "holder": "dc1", "renewed_at": {soon}, "ttl": 10.0}', True),
        # Another site holds it, or none is recorded: nothing of dc1's to wait for.
        ('{"epoch": 3, "holder": "dc2", "renewed_at": {soon}, "ttl": 10.0}', False),
        ('{"epoch": 3, "holder": null, "renewed_at": {soon}, "ttl": 10.0}', False),
        ("Node does not exist: /sitectl/lab/sitectl-lab/ticket", False),
    ],
)
def test_the_fence_wait_waits_in_bash_until_the_old_sites_ticket_has_passed(
    ticket: str, waits: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    now = time.time()
    told = ticket.replace("{old}", f"{now - 100:.3f}").replace("{soon}", f"{now - 9.5:.3f}")
    script = f"set -eo pipefail\nTICKET='{told}'\n{_fence_wait_tail(tmp_path, monkeypatch)}"
    began = time.monotonic()
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30)
    took = time.monotonic() - began
    assert done.returncode == 0, done.stderr
    if waits:
        # Until the whole second after renewal + ttl + drift: 1.5 s from now, rounded up.
        assert took >= 1.0 and time.time() >= now + 1.5, (took, done.stdout)
        assert "waiting until " in done.stdout, done.stdout
    else:
        assert took < 1.0, (took, done.stdout)
        assert "nothing to wait for: dc1 holds no ticket, or it has passed" in done.stdout


def test_the_fence_wait_stops_the_operator_when_zookeeper_does_not_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = f"set -e\nTICKET=''\n{_fence_wait_tail(tmp_path, monkeypatch)}"
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30)
    assert done.returncode != 0 and "waiting until" not in done.stdout, done.stdout


def test_the_reprotect_runbook_is_what_sitectl_reprotect_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = _lab_text(tmp_path, monkeypatch, "reprotect")
    assert text.startswith(
        "# Runbook: reprotect of `sitectl-lab`: dc2 stays active and protects towards dc1"
    )
    assert "it is the same plan `sitectl reprotect` executes" in text
    # The snapshot is named when taken, and the comparison reads that one.
    snapshot = _step_block(text, "salvage/snapshot/mailstore")
    assert snapshot[0].startswith('export SALVAGE_MAILSTORE="') and "by-hand-$(date" in snapshot[0]
    assert '"$SALVAGE_MAILSTORE"' in _step_block(text, "salvage/mail/mailstore")[0]
    # The LDAP report: the password from its file, the takeover from the operator.
    ldap = _step_block(text, "salvage/ldap-report")
    assert ldap[1] == 'test -n "$TAKEOVER" || { echo "set TAKEOVER first"; false; }'
    assert all('-y "$RUNBOOK_SECRETS/ldap.pw"' in line for line in ldap[2:]) and len(ldap) == 4
    # Decide compares again, and fails while anything is left.
    assert _step_block(text, "salvage/decide")[1:] == [
        'test -z "$(comm -23 /tmp/salvage-mailstore-old.ids /tmp/salvage-mailstore-known.ids)"',
        'test -z "$(comm -23 /tmp/salvage-mail-blobs-old.objects '
        '/tmp/salvage-mail-blobs-active.objects)"',
    ]
    # dc1's DNS server is demoted only while it and dc2's both take updates.
    demote = _step_block(text, "reprotect/dns/lab.internal.")
    assert (
        demote[1].startswith("if printf 'server 198.18.1.1 53\\n")
        and "server 198.18.2.1" in demote[1]
    )
    assert "demote --zone lab.internal. --primary 198.18.2.1" in demote[2]


@pytest.mark.parametrize(
    ("args", "refusal"),
    [
        (["--mode", "reprotect", "--to", "dc1"], "a reprotect moves nothing"),
        (["--mode", "switchover"], "--to SITE: where the switchover moves the service"),
        (["--mode", "failover", "--unreachable", "dc1"], "--to SITE: where the failover"),
    ],
)
def test_runbook_asks_for_to_exactly_when_the_mode_moves_the_service(
    args: list[str], refusal: str
) -> None:
    os.chdir(ROOT)
    result = CliRunner().invoke(app, ["runbook", "-c", TOPOLOGY, "--from", "dc1", *args])
    assert result.exit_code == 2, result.output
    assert refusal in result.output
