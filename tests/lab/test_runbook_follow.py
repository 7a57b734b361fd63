"""The rendered runbooks, followed by hand (issue 20, item 7): every ```sh block of a
`sitectl runbook` for the lab run in order, in one bash session from the topology's
directory, as a person at a terminal would (a variable one block exports is there for
the next). Every block must succeed, and the end state is checked with real clients.

- Switchover: sitectl's own status, every DNS server's answer, the mail service
  answering on the new site only, the volume mounted there, the runbook's canary
  readable there over IMAP; then `sitectl reprotect`: the state the hand-run runbook
  left is one sitectl carries on from.
- Failover with dc1 killed: dc1's steps say they were skipped, and dc2 serves.
- Reprotect after a switchover by sitectl: dc2 stays active and protects towards dc1.
Each renews the lab (~10 s) to leave it as the next tests expect."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import dns.message
import dns.query
import pytest

from orchestrator.lab import hosts, layout, s3, volumes
from orchestrator.lab.mail import imap_client, send_test_mail
from orchestrator.runbook.aws import SECRETS_VAR
from orchestrator.runbook.manual import MAKE_SECRETS_DIR, REMOVE_SECRETS_DIR
from tests.conftest import LabHandle, eventually

pytestmark = pytest.mark.lab

# A heading, then its first ```sh block before the next heading ("Secret files" included).
BLOCK = re.compile(r"^#{3,} ([^\n]+)\n(?:(?!^#{3,} ).)*?^```sh\n(.*?)^```", re.S | re.M)


@dataclass(frozen=True)
class Followed:
    title: str
    status: int
    output: str


def follow(
    runbook: Path, cwd: Path, told: dict[str, str] | None = None
) -> tuple[list[Followed], dict[str, str]]:
    """Each block in one bash session; its status is that of the first command that
    failed in it (an ERR trap, with pipefail), else 0. Also the shell's variables the
    runbook exported, read at the end. `told`: what the runbook asks the person to set."""
    shell = subprocess.Popen(
        ["bash"],
        cwd=cwd,
        env={**os.environ, **(told or {})},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert shell.stdin is not None and shell.stdout is not None
    followed = []
    text = runbook.read_text(encoding="utf-8")
    blocks = BLOCK.findall(text)
    assert blocks, f"no command block in {runbook}"
    # Last, as the person is told once every step is done: the secret files' directory
    # goes, and then must be gone (they are real credentials, left in /tmp otherwise).
    if MAKE_SECRETS_DIR in text:
        assert f"remove them: `{REMOVE_SECRETS_DIR}`" in text, "the runbook never says to"
        gone = f'[ ! -e "${SECRETS_VAR}" ] || {{ echo "still there: ${SECRETS_VAR}"; false; }}'
        blocks.append(("remove the secret files", f"{REMOVE_SECRETS_DIR}\n{gone}"))
    for title, body in blocks:
        mark = uuid.uuid4().hex
        shell.stdin.write(
            # The trap saves $? first: inside it, `[` would otherwise have replaced it.
            "set -o pipefail; __status=0; trap '__rc=$?; [ $__status = 0 ] && __status=$__rc' ERR\n"
            f"{body}\ntrap - ERR; echo {mark} $__status\n"
        )
        shell.stdin.flush()
        lines = []
        while not (line := shell.stdout.readline()).startswith(mark):
            assert line, f"bash ended during {title!r}: {''.join(lines)[-2000:]}"
            lines.append(line)
        followed.append(Followed(title, int(line.split()[1]), "".join(lines)))
    shell.stdin.write("echo CANARY=$CANARY\n")
    shell.stdin.close()
    exported = dict(line.strip().split("=", 1) for line in shell.stdout.readlines() if "=" in line)
    shell.wait(timeout=30)
    return followed, exported


def runbook(lab: LabHandle, tmp_path: Path, *args: str) -> Path:
    """`sitectl runbook ARGS` for the lab, as a file."""
    path = tmp_path / f"runbook{'-'.join(('', *args)).replace('--', '')}.md"
    made = subprocess.run(
        ["sitectl", "runbook", "-c", lab.env["topology"], *args, "-o", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    return path


def answers(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return True
    except OSError:
        return False


def mail_record(lab: LabHandle, zone: str, lost: str | None = None) -> set[tuple[str, str]]:
    """(server site, address) for the mail record at every server of `zone` (but the
    lost site's)."""
    info = lab.env["dns"]["zones"][zone]
    found = set()
    for site in [info["primary"], *info["secondaries"]]:
        if site == lost:
            continue
        server = lab.env["dns"]["servers"][site]
        query = dns.message.make_query(f"{layout.MAIL_RECORD}.{zone}", "A")
        answer = dns.query.udp(query, server["address"], port=server["port"], timeout=2)
        found |= {(site, rr.to_text()) for rrset in answer.answer for rr in rrset}
    return found


def assert_serving_at(
    lab: LabHandle, site: str, other: str, canary: str, *, other_lost: bool = False
) -> None:
    """`other_lost`: killed, so its DNS server does not answer and its volume stays
    mounted where it was (nobody could unmount it)."""
    status = subprocess.run(
        ["sitectl", "status", "--json", "-c", lab.env["topology"]],
        capture_output=True,
        text=True,
        check=False,
    )
    assert json.loads(status.stdout)["active_site"] == site, status.stdout + status.stderr
    for zone in (layout.INTERNAL_ZONE, layout.EXTERNAL_ZONE):
        addresses = {
            address for _, address in mail_record(lab, zone, other if other_lost else None)
        }
        assert addresses == {layout.service_ip(site)}, (zone, addresses)
    mail = lab.env["mail"]
    assert answers(mail[site]["smtp"]) and answers(mail[site]["imap"])
    assert not answers(mail[other]["smtp"]) and not answers(mail[other]["imap"])
    mounts = Path("/proc/self/mounts").read_text()
    assert f" {mail[site]['volume']} " in mounts
    assert other_lost or f" {mail[other]['volume']} " not in mounts
    imap = imap_client(lab.state(), site)  # STARTTLS with the lab CA, then login
    with imap:
        imap.select("INBOX", readonly=True)
        _, found = imap.search(None, "SUBJECT", f'"{canary}"')
        assert found[0].split(), f"the runbook's canary {canary!r} is not readable on {site}"


def test_the_switchover_runbook_followed_by_hand_moves_the_service(
    lab: LabHandle, tmp_path: Path
) -> None:
    home = Path(lab.env["topology"]).parent
    try:
        followed, exported = follow(runbook(lab, tmp_path, "--to", "dc2"), home)
        assert followed[0].title == "Secret files", [f.title for f in followed][:3]
        failed = [f"{f.title}: {f.output[-1500:]}" for f in followed if f.status != 0]
        assert failed == [], "\n\n".join(failed)
        assert exported.get("CANARY", "").startswith("sitectl-canary manual-"), exported
        assert_serving_at(lab, "dc2", "dc1", exported["CANARY"])

        # sitectl carries on from the state the hand-run runbook left: the operator's
        # next step, protecting dc2, runs as after a switchover of its own.
        done = subprocess.run(
            [
                *("sitectl", "reprotect", "--yes", "-r", "after the runbook test"),
                *("-c", lab.env["topology"]),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, f"sitectl reprotect: {done.stdout}{done.stderr}"
        assert_serving_at(lab, "dc2", "dc1", exported["CANARY"])
    finally:
        # The next tests share the lab and start from dc1 active: a new lab (~10 s) is
        # quicker than the way back, which tests/engine covers.
        lab.renew()


def test_the_failover_runbook_followed_by_hand_moves_the_service_off_a_killed_site(
    lab: LabHandle, tmp_path: Path
) -> None:
    """dc1 killed: its steps say they are skipped, its checks that it does not answer,
    the fence wait reads its ticket, and the canary the runbook sends at dc2 is read
    there. The lab is then renewed (~10 s): the way back after a failover is the
    failover tests' scenario (tests/engine/test_failover.py), not this one's."""
    home = Path(lab.env["topology"]).parent
    try:
        lab.ok("kill-site", "dc1")
        # A dead site's connections die with it. kill-site ends dc1's processes, but an
        # SSH session Ansible multiplexes over (ControlPersist, from the tests before)
        # outlives its killed listener, and dc1's stops would still run through it.
        hosts.close_connections(lab.state_dir)
        path = runbook(lab, tmp_path, "--to", "dc2", "--mode", "failover", "--unreachable", "dc1")
        followed, exported = follow(path, home)
        failed = [f"{f.title}: {f.output[-1500:]}" for f in followed if f.status != 0]
        assert failed == [], "\n\n".join(failed)
        # The two stops and the unmount, each on dc1's hosts.
        skipped = [f.title for f in followed if "skipped: dc1 unreachable" in f.output]
        assert len(skipped) == 3, skipped
        assert exported.get("CANARY", "").startswith("sitectl-canary manual-"), exported
        assert_serving_at(lab, "dc2", "dc1", exported["CANARY"], other_lost=True)
    finally:
        lab.renew()


def sitectl(lab: LabHandle, *verb: str) -> None:
    done = subprocess.run(
        ["sitectl", *verb, "--yes", "-r", "the runbook test", "-c", lab.env["topology"]],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, f"sitectl {' '.join(verb)}: {done.stdout}{done.stderr}"


def assert_protected_from(lab: LabHandle, active: str, standby: str) -> None:
    """A mail at `active` reaches `standby`'s newest mirrored snapshot; an object put at
    `active` is replicated to `standby`."""
    state = lab.state()
    subject = f"runbook reprotect {uuid.uuid4().hex}"
    send_test_mail(active, subject)
    maildir = Path(lab.env["mail"][active]["maildir"]) / "new"
    (message,) = eventually(
        lambda: [p for p in maildir.iterdir() if subject in p.read_text()],
        f"the mail delivered at {active}",
    )
    snaps = volumes.pool(state, standby) / "snaps"

    def mirrored() -> bool:
        status = volumes.mirror(state).status()
        assert (status.source, status.destination) == (active, standby), status
        copy = snaps / str(status.last_snapshot) / "mail" / layout.MAIL_USER / "Maildir"
        copy = copy / "new" / message.name
        return copy.is_file() and copy.read_bytes() == message.read_bytes()

    eventually(mirrored, f"the mail in {standby}'s newest mirrored snapshot")
    key = f"runbook/{uuid.uuid4().hex}"
    s3.client(state, active).put_object(Bucket=s3.BUCKET, Key=key, Body=b"reprotected")
    eventually(
        lambda: (
            s3.client(state, active).head_object(Bucket=s3.BUCKET, Key=key)["ReplicationStatus"]
            == "COMPLETED"
        ),
        f"ReplicationStatus COMPLETED at {active}",
    )
    replica = s3.client(state, standby).get_object(Bucket=s3.BUCKET, Key=key)
    assert replica["Body"].read() == b"reprotected"


def test_the_reprotect_runbook_followed_by_hand_protects_the_new_site(
    lab: LabHandle, tmp_path: Path
) -> None:
    """After a switchover to dc2 by sitectl, the reprotect runbook by hand: dc2 stays
    active and its mail and objects reach dc1, and `sitectl status` agrees. Then the
    lab is renewed (~10 s), the state the next tests expect."""
    home = Path(lab.env["topology"]).parent
    try:
        takeover = time.strftime("%Y%m%d%H%M%S", time.gmtime())
        sitectl(lab, "switchover", "--to", "dc2")
        # The runbook asks for when dc2 took over (for the LDAP report): the person knows.
        path = runbook(lab, tmp_path, "--mode", "reprotect")
        followed, _ = follow(path, home, {"TAKEOVER": takeover})
        failed = [f"{f.title}: {f.output[-1500:]}" for f in followed if f.status != 0]
        assert failed == [], "\n\n".join(failed)
        titles = " ".join(f.title for f in followed)
        assert "snapshot of dc1's copy" in titles and "Reverse the mirror" in titles, titles
        status = subprocess.run(
            ["sitectl", "status", "--json", "-c", lab.env["topology"]],
            capture_output=True,
            text=True,
            check=False,
        )
        assert json.loads(status.stdout)["active_site"] == "dc2", status.stdout + status.stderr
        assert_protected_from(lab, "dc2", "dc1")
    finally:
        lab.renew()
