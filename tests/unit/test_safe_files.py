"""Issue 19, finding 10: files sitectl writes as root, and secrets it reads at run time.

A link planted where the audit log, a drill report or an operation's artifacts go must
not make sitectl write to the link's target (a "victim" file here): the audit log
refuses the link (a log cannot be replaced without losing what it holds), a report
replaces it (the report is sitectl's to write there, and the victim is untouched either
way). Directories sitectl creates are 0700. A secret file made readable by others after
`validate` passed is refused when it is read, and so is one that belongs to someone else.
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import pytest

from orchestrator.adapters.dns.tsig import TsigError, load_key_file
from orchestrator.adapters.secrets import SecretError, read_secret
from orchestrator.audit import AuditLog
from orchestrator.config.model import SecretRef
from orchestrator.drill import report
from orchestrator.engine.operation import new_operation_id, operation_artifacts, prune_artifacts
from orchestrator.safefiles import UnsafePath, private_dir, write_atomic
from tests.drill.recorded import drill, leg

VICTIM_TEXT = "root:the victim's own content\n"


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    path = tmp_path / "elsewhere" / "victim"
    path.parent.mkdir()
    path.write_text(VICTIM_TEXT)
    return path


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


# -- the audit log --------------------------------------------------------------------


def test_a_link_planted_as_the_audit_log_is_refused_and_its_target_untouched(
    tmp_path: Path, victim: Path
) -> None:
    log = tmp_path / "state" / "audit.jsonl"
    log.parent.mkdir()
    log.symlink_to(victim)
    audit = AuditLog(log)

    for write in (audit.check, lambda: audit.write("operation.started", op="x")):
        with pytest.raises(UnsafePath) as refused:
            write()
        assert str(refused.value) == (
            f"audit log {log} is a symbolic link — sitectl does not write through links; "
            f"remove it (rm {log}) and run again"
        )
    assert victim.read_text() == VICTIM_TEXT
    assert log.is_symlink()


def test_a_hard_link_planted_as_the_audit_log_is_refused(tmp_path: Path, victim: Path) -> None:
    log = tmp_path / "audit.jsonl"
    os.link(victim, log)
    with pytest.raises(UnsafePath, match="has 2 names"):
        AuditLog(log).write("operation.started", op="x")
    assert victim.read_text() == VICTIM_TEXT


def test_the_audit_log_and_its_new_directory_are_private(tmp_path: Path) -> None:
    log = tmp_path / "var" / "log" / "sitectl" / "audit.jsonl"
    AuditLog(log).write("operation.started", op="x")
    AuditLog(log).write("operation.finished", op="x")
    assert [json.loads(line)["event"] for line in log.read_text().splitlines()] == [
        "operation.started",
        "operation.finished",
    ]
    assert (mode(log), mode(log.parent), mode(tmp_path / "var")) == (0o600, 0o700, 0o700)


# -- drill reports ---------------------------------------------------------------------

RECORD = drill(leg("there", "dc1", "dc2", 0))


def test_a_link_planted_as_a_report_is_replaced_and_its_target_untouched(
    tmp_path: Path, victim: Path
) -> None:
    folder = tmp_path / "drills" / RECORD.id
    folder.mkdir(parents=True)
    (folder / report.JSON).symlink_to(victim)
    # Where the report used to be written before its rename: a link there was followed.
    (folder / (report.JSON + ".tmp")).symlink_to(victim)
    (folder / (report.HTML + ".tmp")).symlink_to(victim)

    paths = report.write_reports(RECORD, folder)

    assert victim.read_text() == VICTIM_TEXT
    assert not paths.json.is_symlink() and json.loads(paths.json.read_text())["id"] == RECORD.id
    assert paths.html.read_text().startswith("<!") and mode(paths.json) == 0o600


def test_a_link_planted_as_a_drills_folder_is_refused(tmp_path: Path, victim: Path) -> None:
    drills = tmp_path / "drills"
    drills.mkdir()
    (drills / RECORD.id).symlink_to(victim.parent)
    with pytest.raises(UnsafePath, match=re.escape(f"directory {drills / RECORD.id} is a sym")):
        report.write_reports(RECORD, drills / RECORD.id)
    assert sorted(p.name for p in victim.parent.iterdir()) == ["victim"]


def test_report_folders_sitectl_creates_are_private(tmp_path: Path) -> None:
    folder = tmp_path / "state" / "drills" / RECORD.id
    report.write_reports(RECORD, folder)
    assert {mode(folder), mode(folder.parent), mode(folder.parent.parent)} == {0o700}


def test_write_atomic_leaves_no_temporary_file_and_replaces_a_link(
    tmp_path: Path, victim: Path
) -> None:
    target = tmp_path / "batch.yml"
    target.symlink_to(victim)
    write_atomic(target, "plays: []\n")
    assert victim.read_text() == VICTIM_TEXT
    assert target.read_text() == "plays: []\n" and not target.is_symlink()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


# -- operation artifacts ----------------------------------------------------------------


def test_an_operations_artifacts_are_private_and_not_written_through_a_link(
    tmp_path: Path, victim: Path
) -> None:
    state = tmp_path / "state"
    op = new_operation_id(1_800_000_000)
    here = operation_artifacts(state, op, kept=5)
    assert here == state / "artifacts" / op
    assert (mode(state), mode(state / "artifacts"), mode(here)) == (0o700, 0o700, 0o700)

    planted = new_operation_id(1_800_000_100)
    (state / "artifacts" / planted).symlink_to(victim.parent)
    with pytest.raises(UnsafePath, match="is a symbolic link"):
        operation_artifacts(state, planted, kept=5)
    assert sorted(p.name for p in victim.parent.iterdir()) == ["victim"]


def test_only_the_newest_operations_artifacts_are_kept(tmp_path: Path) -> None:
    root = tmp_path / "artifacts"
    ops = [new_operation_id(1_800_000_000 + 60 * n) for n in range(6)]
    for op in ops:
        (root / op / "step" / "artifacts").mkdir(parents=True)
    (root / "notes").mkdir()  # not an operation's: left alone
    resumed = ops[0]  # an old operation resumed now keeps its artifacts

    removed = prune_artifacts(root, kept=3, current=resumed)

    assert removed == ops[1:4]
    assert sorted(p.name for p in root.iterdir()) == sorted([resumed, *ops[4:], "notes"])


def test_private_dir_takes_the_configured_root_as_given(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir(mode=0o755)
    configured = tmp_path / "configured"
    configured.symlink_to(real)  # an operator's link to the state's real place
    made = private_dir(configured / "artifacts" / "op", root=configured)
    assert (real / "artifacts" / "op").is_dir() and mode(made) == 0o700
    assert mode(real) == 0o755  # not sitectl's to change


# -- secrets read at run time -----------------------------------------------------------


def private(path: Path, text: str) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    return path


def test_a_secret_file_made_readable_after_validate_is_refused_when_read(
    tmp_path: Path,
) -> None:
    secret = private(tmp_path / "ldap.password", "pw-r8\n")
    ref = SecretRef(file="ldap.password")
    assert read_secret(ref, tmp_path).reveal() == "pw-r8"

    secret.chmod(0o644)

    with pytest.raises(SecretError) as refused:
        read_secret(ref, tmp_path)
    assert str(refused.value) == (
        f"secret file {secret} is readable or writable by everyone (mode 0644) — chmod 600 {secret}"
    )
    secret.chmod(0o640)
    with pytest.raises(SecretError, match="by its group \\(mode 0640\\)"):
        read_secret(ref, tmp_path)
    secret.chmod(0o400)
    assert read_secret(ref, tmp_path).reveal() == "pw-r8"


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file away needs root")
def test_a_secret_file_of_another_user_is_refused(tmp_path: Path) -> None:
    secret = private(tmp_path / "s3.key", "key-r8\n")
    os.chown(secret, 65534, 65534)
    with pytest.raises(SecretError, match="belongs to uid 65534, not to this user"):
        read_secret(SecretRef(file="s3.key"), tmp_path)


def test_a_tsig_key_file_made_readable_is_refused_not_warned_about(tmp_path: Path) -> None:
    key = private(
        tmp_path / "ddns.key",
        'key "ddns" { algorithm hmac-sha256; secret "c2VjcmV0c2VjcmV0"; };\n',
    )
    assert str(load_key_file(key).name) == "ddns."
    key.chmod(0o644)
    with pytest.raises(TsigError, match=re.escape(f"— chmod 600 {key}")):
        load_key_file(key)
