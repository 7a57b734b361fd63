"""The rendered runbook, followed by hand (issue 20, item 7): every ```sh block of a
`sitectl runbook` for the lab run in order, in one bash session from the topology's
directory, as a person at a terminal would (a variable one block exports is there for
the next). Every block must succeed, and the end state is checked with real clients:
sitectl's own status, every DNS server's answer, the mail service answering on the new
site only, the volume mounted there, and the runbook's canary readable there over IMAP.
Then the way back by sitectl itself (reprotect, switchover): the state the hand-run
runbook left is one sitectl carries on from, and the shared lab ends as it began."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import dns.message
import dns.query
import pytest

from orchestrator.lab import layout
from orchestrator.lab.mail import imap_client
from tests.conftest import LabHandle

pytestmark = pytest.mark.lab

# A heading, then its first ```sh block before the next heading ("Secret files" included).
BLOCK = re.compile(r"^#{3,} ([^\n]+)\n(?:(?!^#{3,} ).)*?^```sh\n(.*?)^```", re.S | re.M)


@dataclass(frozen=True)
class Followed:
    title: str
    status: int
    output: str


def follow(runbook: Path, cwd: Path) -> tuple[list[Followed], dict[str, str]]:
    """Each block in one bash session; its status is that of the first command that
    failed in it (an ERR trap, with pipefail), else 0. Also the shell's variables the
    runbook exported, read at the end."""
    shell = subprocess.Popen(
        ["bash"],
        cwd=cwd,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert shell.stdin is not None and shell.stdout is not None
    followed = []
    blocks = BLOCK.findall(runbook.read_text(encoding="utf-8"))
    assert blocks, f"no command block in {runbook}"
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


def runbook(lab: LabHandle, tmp_path: Path, to_site: str) -> Path:
    path = tmp_path / f"to-{to_site}.md"
    made = subprocess.run(
        ["sitectl", "runbook", "-c", lab.env["topology"], "--to", to_site, "-o", str(path)],
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


def mail_record(lab: LabHandle, zone: str) -> set[tuple[str, str]]:
    """(server site, address) for the mail record at every server of `zone`."""
    info = lab.env["dns"]["zones"][zone]
    found = set()
    for site in [info["primary"], *info["secondaries"]]:
        server = lab.env["dns"]["servers"][site]
        query = dns.message.make_query(f"{layout.MAIL_RECORD}.{zone}", "A")
        answer = dns.query.udp(query, server["address"], port=server["port"], timeout=2)
        found |= {(site, rr.to_text()) for rrset in answer.answer for rr in rrset}
    return found


def assert_serving_at(lab: LabHandle, site: str, other: str, canary: str) -> None:
    status = subprocess.run(
        ["sitectl", "status", "--json", "-c", lab.env["topology"]],
        capture_output=True,
        text=True,
        check=False,
    )
    assert json.loads(status.stdout)["active_site"] == site, status.stdout + status.stderr
    for zone in (layout.INTERNAL_ZONE, layout.EXTERNAL_ZONE):
        addresses = {address for _, address in mail_record(lab, zone)}
        assert addresses == {layout.service_ip(site)}, (zone, addresses)
    mail = lab.env["mail"]
    assert answers(mail[site]["smtp"]) and answers(mail[site]["imap"])
    assert not answers(mail[other]["smtp"]) and not answers(mail[other]["imap"])
    mounts = Path("/proc/self/mounts").read_text()
    assert f" {mail[site]['volume']} " in mounts and f" {mail[other]['volume']} " not in mounts
    imap = imap_client(lab.state(), site)  # STARTTLS with the lab CA, then login
    with imap:
        imap.select("INBOX", readonly=True)
        _, found = imap.search(None, "SUBJECT", f'"{canary}"')
        assert found[0].split(), f"the runbook's canary {canary!r} is not readable on {site}"


def test_the_switchover_runbook_followed_by_hand_moves_the_service(
    lab: LabHandle, tmp_path: Path
) -> None:
    home = Path(lab.env["topology"]).parent
    moved_back = False
    try:
        followed, exported = follow(runbook(lab, tmp_path, "dc2"), home)
        assert followed[0].title == "Secret files", [f.title for f in followed][:3]
        failed = [f"{f.title}: {f.output[-1500:]}" for f in followed if f.status != 0]
        assert failed == [], "\n\n".join(failed)
        assert exported.get("CANARY", "").startswith("sitectl-canary manual-"), exported
        assert_serving_at(lab, "dc2", "dc1", exported["CANARY"])

        # The lab began protected (dc1 mirrored to dc2): a switchover breaks the mirrors,
        # the last reprotect starts them again in that direction.
        for verb in (["reprotect"], ["switchover", "--to", "dc1"], ["reprotect"]):
            done = subprocess.run(
                [
                    *("sitectl", *verb, "--yes", "-r", "back after the runbook test"),
                    *("-c", lab.env["topology"]),
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            assert done.returncode == 0, f"sitectl {' '.join(verb)}: {done.stdout}{done.stderr}"
        assert_serving_at(lab, "dc1", "dc2", exported["CANARY"])
        moved_back = True
    finally:
        if not moved_back:
            # Half moved by hand: the lab the next tests share starts again, as new.
            lab.ok("down", "--purge")
            lab.ok("up")
