"""Salvage before a reprotect, the pure part (orchestrator/salvage/divergence.py): the
diff of two listings, de-duplication, where a salvaged object goes, which LDAP changes
are reported, and whether the reprotect may go on. Tables, no servers. Plus the Maildir
reader and writer on a temporary directory."""

from __future__ import annotations

import json
import os
import time
from dataclasses import replace
from pathlib import Path

import pytest

from orchestrator.audit import AuditLog
from orchestrator.config import load_topology
from orchestrator.engine.handlers import StepContext
from orchestrator.engine.steps.salvage import DecideHandler, SalvageRefused
from orchestrator.engine.steps.salvage_ldap import LdapReportHandler
from orchestrator.errors import Unavailable
from orchestrator.plan import assumed_state, build_reprotect_plan
from orchestrator.runbook.render import render_runbook
from orchestrator.salvage import directory, maildir, report
from orchestrator.salvage.divergence import (
    CopyKind,
    LdapState,
    MailItem,
    ObjectCopy,
    ObjectInfo,
    Residual,
    decide,
    divergent_mail,
    divergent_objects,
    ldap_changes,
    newest_csns,
)
from tests.unit.engine_fakes import FakeFence, operation_record


def mail(
    name: str, identity: str, maildir_: str = "mail/alice/Maildir", sub: str = "new"
) -> MailItem:
    return MailItem(maildir_, name, sub, identity)


@pytest.mark.parametrize(
    ("old", "base", "active", "expected"),
    [
        # nothing at the old site: nothing to salvage
        ([], set(), set(), []),
        # acknowledged at dc1 after the last transfer: only the old copy has it
        ([mail("1.a", "<1@w>")], {"<0@w>"}, {"<0@w>"}, ["<1@w>"]),
        # already at the active site (replicated before the split, or salvaged before)
        ([mail("1.a", "<1@w>")], set(), {"<1@w>"}, []),
        # read at the active site since (moved to cur/, renamed): same Message-ID
        ([mail("1.a", "<1@w>")], {"<1@w>"}, {"<1@w>"}, []),
        # in the last common copy and deleted at the active site since: not brought back
        ([mail("1.a", "<1@w>")], {"<1@w>"}, set(), []),
        # the common copy unknown: everything the active site lacks counts
        ([mail("1.a", "<1@w>")], None, set(), ["<1@w>"]),
        # two files, one Message-ID (a duplicate delivery): one message
        ([mail("2.b", "<2@w>"), mail("2.a", "<2@w>", sub="cur")], set(), set(), ["<2@w>"]),
        # no Message-ID: identified by digest, like any other
        ([mail("3.a", "sha256:ab")], set(), {"sha256:cd"}, ["sha256:ab"]),
    ],
    ids=[
        "empty", "after-last-transfer", "at-active", "read-since", "deleted-since",
        "no-base", "duplicate-files", "digest",
    ],
)  # fmt: skip
def test_divergent_mail(
    old: list[MailItem], base: set[str] | None, active: set[str], expected: list[str]
) -> None:
    assert [i.identity for i in divergent_mail(old, base, active)] == expected


def test_a_duplicate_is_salvaged_from_its_first_path() -> None:
    found = divergent_mail([mail("b", "<x>"), mail("a", "<x>", sub="cur")], set(), set())
    assert [i.path for i in found] == ["mail/alice/Maildir/cur/a"]


E1, E2 = '"e1"', '"e2"'


@pytest.mark.parametrize(
    ("old", "active", "expected"),
    [
        ({}, {"k": E1}, []),
        ({"k": E1}, {"k": E1}, []),
        ({"k": E1}, {}, [("k", "k", CopyKind.MISSING)]),
        # the active site holds another version: kept, the old one copied beside it
        ({"k": E2}, {"k": E1}, [("k", "salvaged/e2/k", CopyKind.CONFLICT)]),
        # ... once: salvaged before under its content's key
        ({"k": E2}, {"k": E1, "salvaged/e2/k": E2}, []),
        # salvage copies are never salvaged again
        ({"salvaged/e2/k": E2}, {}, []),
        (
            {"a": E1, "b": E2, "c": E1},
            {"b": E2},
            [("a", "a", CopyKind.MISSING), ("c", "c", CopyKind.MISSING)],
        ),
    ],
    ids=["none", "same", "missing", "conflict", "conflict-salvaged", "own-copies", "several"],
)
def test_divergent_objects(
    old: dict[str, str], active: dict[str, str], expected: list[tuple[str, str, CopyKind]]
) -> None:
    copies = divergent_objects(
        {k: ObjectInfo(v) for k, v in old.items()}, {k: ObjectInfo(v) for k, v in active.items()}
    )
    assert [(c.key, c.target_key, c.kind) for c in copies] == expected
    assert all(isinstance(c, ObjectCopy) and c.etag == old[c.key] for c in copies)


TAKEOVER = 1_796_000_000.0  # 2026-11-30T...
BEFORE = "20261130000000.000000Z#000000#001#000000"


def csn(seconds_after: int, sid: int) -> str:
    stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(TAKEOVER + seconds_after))
    return f"{stamp}.000000Z#000000#{sid:03x}#000000"


@pytest.mark.parametrize(
    ("old", "active", "expected"),
    [
        # written at dc1 (sid 1) after the takeover, replicated since: reported as such
        ({"uid=a": csn(5, 1)}, {"uid=a": csn(5, 1)}, [("uid=a", LdapState.REPLICATED)]),
        # dc2 changed it later: the two differ, a person reviews
        ({"uid=a": csn(5, 1)}, {"uid=a": csn(9, 3)}, [("uid=a", LdapState.DIFFERS)]),
        # created at dc1 only
        ({"uid=b": csn(5, 2)}, {}, [("uid=b", LdapState.MISSING)]),
        # before the takeover: not the split's
        ({"uid=a": csn(-5, 1)}, {}, []),
        # written by dc2's server (sid 3) and replicated to dc1: not dc1's change
        ({"uid=a": csn(5, 3)}, {}, []),
        # not a CSN at all
        ({"uid=a": "garbage"}, {}, []),
    ],
    ids=["replicated", "differs", "missing", "before", "other-site", "not-a-csn"],
)
def test_ldap_changes(
    old: dict[str, str], active: dict[str, str], expected: list[tuple[str, LdapState]]
) -> None:
    changes = ldap_changes(old, active, TAKEOVER, old_server_ids=[1, 2])
    assert [(c.dn, c.state) for c in changes] == expected


def test_newest_csns_takes_the_newest_per_entry_across_masters() -> None:
    first = {"uid=a": csn(1, 1), "uid=b": csn(9, 2)}
    second = {"uid=a": csn(3, 2), "uid=c": "garbage"}
    assert newest_csns([first, second]) == {
        "uid=a": csn(3, 2),
        "uid=b": csn(9, 2),
        "uid=c": "garbage",
    }


@pytest.mark.parametrize(
    ("residual", "reason", "proceed", "discarded", "sentence"),
    [
        (
            Residual(),
            None,
            True,
            False,
            "nothing divergent is left on dc1: the mirrors may be reversed",
        ),
        (
            Residual(),
            "drill",
            True,
            False,
            "nothing divergent is left on dc1: the mirrors may be reversed",
        ),
        (
            Residual(mail=("mailstore: mail/alice/Maildir/new/1 (<1@w>)",)),
            None,
            False,
            False,
            "dc1 holds what the active site lacks and salvage could not carry: 1 mail "
            "message(s) (mailstore: mail/alice/Maildir/new/1 (<1@w>)); salvage it by hand, "
            'or rerun with --discard-divergent "REASON" to discard it',
        ),
        (
            Residual(objects=("b/k1", "b/k2", "b/k3", "b/k4")),
            None,
            False,
            False,
            "dc1 holds what the active site lacks and salvage could not carry: 4 object(s) "
            "(b/k1, b/k2, b/k3, and 1 more); salvage it by hand, or rerun with "
            '--discard-divergent "REASON" to discard it',
        ),
        (
            Residual(uninspected=("volume z (netapp): sitectl cannot read dc1's copy",)),
            "copied by hand, ticket 42",
            True,
            True,
            "discarding what dc1 holds unsalvaged — copies not inspected: volume z (netapp): "
            "sitectl cannot read dc1's copy — because 'copied by hand, ticket 42'",
        ),
    ],
    ids=["nothing", "nothing-with-reason", "mail-left", "objects-left", "discarded"],
)
def test_decide(
    residual: Residual, reason: str | None, proceed: bool, discarded: bool, sentence: str
) -> None:
    decision = decide(residual, "dc1", reason)
    assert (decision.proceed, decision.discarded, decision.sentence) == (
        proceed,
        discarded,
        sentence,
    )


# -- Maildirs on disk -----------------------------------------------------------------


def _message(path: Path, message_id: str | None, body: str = "hello") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    header = f"Message-ID: {message_id}\n" if message_id else ""
    path.write_text(f"From: a@b\n{header}Subject: s\n\n{body}\n")


def _maildir(root: Path, rel: str = "mail/alice/Maildir") -> Path:
    md = root / rel
    for sub in ("cur", "new", "tmp"):
        (md / sub).mkdir(parents=True, exist_ok=True)
    return md


def test_scan_reads_identities_from_every_maildir_and_folder(tmp_path: Path) -> None:
    md = _maildir(tmp_path)
    sent = _maildir(tmp_path, "mail/alice/Maildir/.Sent")
    _message(md / "new" / "1.x", "<1@w>")
    _message(md / "cur" / "2.x:2,S", "<2@w>")
    _message(sent / "cur" / "3.x:2,S", None, body="no id")
    _message(md / "tmp" / "4.x", "<4@w>")  # being delivered: not a message yet
    found = {(i.path, i.identity) for i in maildir.scan(tmp_path)}
    assert ("mail/alice/Maildir/new/1.x", "<1@w>") in found
    assert ("mail/alice/Maildir/cur/2.x:2,S", "<2@w>") in found
    digest = [i for p, i in found if p.endswith("3.x:2,S")]
    assert digest and digest[0].startswith("sha256:")
    assert len(found) == 3


def test_deliver_copies_into_new_keeping_owner_and_is_idempotent(tmp_path: Path) -> None:
    old, active = tmp_path / "old", tmp_path / "active"
    _message(_maildir(old) / "cur" / "1.x:2,S", "<1@w>")
    os.chmod(old / "mail/alice/Maildir/cur/1.x:2,S", 0o600)
    _maildir(active)
    (item,) = maildir.scan(old)
    assert maildir.deliver(item, old, active) is True
    copied = active / "mail/alice/Maildir/new/1.x"
    assert copied.read_bytes() == (old / item.path).read_bytes()
    assert copied.stat().st_mode & 0o777 == 0o600
    assert not list((active / "mail/alice/Maildir/tmp").iterdir())
    assert maildir.deliver(item, old, active) is False  # the same file is there
    assert [i.identity for i in maildir.scan(active)] == ["<1@w>"]


def test_deliver_takes_another_name_when_a_different_message_holds_its_own(
    tmp_path: Path,
) -> None:
    old, active = tmp_path / "old", tmp_path / "active"
    _message(_maildir(old) / "new" / "1.x", "<1@w>")
    _message(_maildir(active) / "cur" / "1.x:2,S", "<other@w>")
    (item,) = maildir.scan(old)
    assert maildir.deliver(item, old, active) is True
    assert sorted(i.identity for i in maildir.scan(active)) == ["<1@w>", "<other@w>"]


def test_deliver_creates_a_maildir_the_active_site_lacks(tmp_path: Path) -> None:
    old, active = tmp_path / "old", tmp_path / "active"
    _message(_maildir(old, "mail/bob/Maildir") / "new" / "9.x", "<9@w>")
    active.mkdir()
    (item,) = maildir.scan(old)
    assert maildir.deliver(item, old, active)
    assert {"cur", "new", "tmp"} <= {p.name for p in (active / "mail/bob/Maildir").iterdir()}


# -- the decision step, on the example topology (NetApp volumes sitectl cannot read) ----


def _decide_context(tmp_path: Path, discard: str | None):
    topo = load_topology(Path(__file__).parents[2] / "inventories/example-zimbra/topology.yaml")
    plan = build_reprotect_plan(topo, assumed_state(topo))
    step = plan.step("salvage/decide")
    # Only what needs no server: the uninspected volumes (no bucket listed).
    step = replace(step, params={**step.params, "buckets": []})
    logs: list[str] = []
    audit = tmp_path / "audit.jsonl"
    ctx = StepContext(
        topo,
        plan,
        replace(operation_record(plan), discard_divergent=discard),
        FakeFence(),
        tmp_path,
        logs.append,
        audit=AuditLog(audit),
    )

    def events() -> list[dict]:
        return (
            [json.loads(line) for line in audit.read_text().splitlines()] if audit.exists() else []
        )

    return step, ctx, logs, events


def test_the_decision_step_refuses_what_it_could_not_inspect(tmp_path: Path) -> None:
    step, ctx, _logs, events = _decide_context(tmp_path, None)
    with pytest.raises(SalvageRefused, match="--discard-divergent") as refused:
        DecideHandler().verify(step, ctx)
    assert "volume mailstore (netapp): sitectl cannot read dc2's copy" in str(refused.value)
    assert [e["event"] for e in events()] == ["salvage.refused"]


def test_the_decision_step_goes_on_with_a_reason_warned_and_audited(tmp_path: Path) -> None:
    step, ctx, logs, events = _decide_context(tmp_path, "copied by hand, change 42")
    handler = DecideHandler()
    handler.verify(step, ctx)
    assert logs[0].startswith("WARNING: discarding what dc2 holds unsalvaged — copies not ")
    assert logs[0].endswith("because 'copied by hand, change 42'")
    (event,) = events()
    assert event["event"] == "salvage.discarded"
    assert event["reason"] == "copied by hand, change 42"
    assert len(event["uninspected"]) == 3
    assert handler.summary(step, ctx) == logs[0].removeprefix("WARNING: ")


@pytest.mark.parametrize(
    ("figures", "expected"),
    [
        ({}, None),
        ({"estimated_loss_seconds/volume": 3.0}, None),
        (
            {
                "salvage/mail/mailstore/copied": 5,
                "salvage/mail/mailstore/ids": "<1@w> <2@w>",
                "salvage/objects/blobs/copied": 2,
                "salvage/ldap/to_review": 1,
            },
            "salvaged from dc1: 5 message(s), 2 object(s); 1 LDAP change(s) for a person to review",
        ),
        (
            {"salvage/objects/a/copied": 0, "salvage/objects/b/copied": 1},
            "salvaged from dc1: 1 object(s)",
        ),
    ],
    ids=["none", "other-figures", "all", "buckets-added"],
)
def test_the_salvage_sentence_of_a_reprotect(figures: dict, expected: str | None) -> None:
    assert report.summarize(figures, "dc1") == expected


def test_the_salvage_steps_render_as_a_runbook_a_person_can_follow() -> None:
    """Every salvage step has manual commands, NetApp volumes named as left to a person."""
    topo = load_topology(Path(__file__).parents[2] / "inventories/example-zimbra/topology.yaml")
    plan = build_reprotect_plan(topo, assumed_state(topo))
    text = render_runbook(topo, plan, "topology.yaml")
    for step in ("salvage/objects/zimbra-blobs", "salvage/ldap-report", "salvage/decide"):
        assert step in text, step
    # One pair of listings per bucket, compared again by the decide step.
    assert (
        "comm -23 /tmp/salvage-zimbra-blobs-old.objects /tmp/salvage-zimbra-blobs-active.objects"
        in text
    )
    assert "(entryCSN>=" in text
    assert "# volume mailstore (netapp): sitectl cannot read dc2's copy" in text


def test_a_copy_that_cannot_land_leaves_nothing_half_made(tmp_path: Path) -> None:
    old, active = tmp_path / "old", tmp_path / "active"
    _message(_maildir(old) / "new" / "1.x", "<1@w>")
    target = _maildir(active)
    (item,) = maildir.scan(old)
    (target / "new").rmdir()
    (target / "new").write_text("not a directory")  # the rename into new/ fails
    with pytest.raises(Unavailable, match=r"copying mail/alice/Maildir/new/1\.x into"):
        maildir.deliver(item, old, active)
    assert not list((target / "tmp").iterdir())


# -- the LDAP report step, its directory reads replaced by tables ---------------------


def _ldap_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, old, active, takeover):
    """The example's reprotect with dc1 active: dc2 (servers 3 and 4) is the old site.
    `old`/`active`: uri → DN → entryCSN, or an error to raise for that master."""
    _, ctx, _, events = _decide_context(tmp_path, None)
    step = ctx.plan.step("salvage/ldap-report")

    def read(listing):
        def answer(topo, master, *args):
            found = listing.get(master.uri, {})
            if isinstance(found, Exception):
                raise found
            return found

        return answer

    monkeypatch.setattr(directory, "changed_since", read(old))
    monkeypatch.setattr(directory, "csns_of", read(active))
    handler = LdapReportHandler(lambda: takeover)
    handler.apply(step, ctx)
    return handler.summary(step, ctx), ctx.figures, events


DC2_A, DC2_B = "ldap://ldap1.dc2.example.net:389", "ldap://ldap2.dc2.example.net:389"
DC1_A = "ldap://ldap1.dc1.example.net:389"


def test_the_ldap_report_lists_the_old_sites_changes_since_the_takeover(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = {
        DC2_A: {"uid=a": csn(5, 3), "uid=z": csn(-5, 3)},  # z: before the takeover
        DC2_B: {"uid=b": csn(7, 4), "uid=c": csn(8, 1)},  # c: dc1's write, replicated
    }
    active = {DC1_A: {"uid=a": csn(5, 3), "uid=b": csn(9, 1)}}
    said, figures, events = _ldap_step(tmp_path, monkeypatch, old, active, TAKEOVER)
    assert said == (
        "LDAP: dc2's masters changed 2 entr(y/ies) after the takeover; 1 differ at dc1 and "
        "need a person's review: uid=b (differs)"
    )
    assert (figures["salvage/ldap/changed"], figures["salvage/ldap/to_review"]) == (2, 1)
    (event,) = events()
    assert [c["dn"] for c in event["changes"]] == ["uid=a", "uid=b"]


def test_the_ldap_report_says_what_it_could_not_read_and_never_stops_the_reprotect(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    down = Unavailable("LDAP ldap://ldap1.dc2.example.net:389: connection refused")
    old = {DC2_A: down, DC2_B: Unavailable("LDAP ldap://ldap2.dc2.example.net:389: timed out")}
    said, _, _ = _ldap_step(tmp_path, monkeypatch, old, {}, TAKEOVER)
    assert said is not None and said.startswith(
        "LDAP: no master of dc2 answered, so its changes since the takeover could not be "
        "listed; review them by hand (LDAP ldap://ldap1.dc2.example.net:389: connection refused"
    )
    said, _, _ = _ldap_step(tmp_path, monkeypatch, {}, {}, None)
    assert said == (
        "LDAP: no move to dc1 is recorded, so no takeover to compare dc2's changes with: "
        "nothing listed"
    )


@pytest.mark.parametrize(
    "data",
    [
        b"Message-ID: <a@b>\n\nbody",
        b"Message-ID:\n  <folded@b>\r\n\r\nbody",
        b"Subject: none\n\n" + b"x" * (3 << 20),  # no Message-ID, longer than one read
        b"",
    ],
    ids=["plain", "folded-crlf", "no-id-long", "empty"],
)
def test_a_files_identity_is_that_of_its_bytes(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "m"
    path.write_bytes(data)
    assert maildir.identity_of_file(path) == maildir.identity_of(data)
