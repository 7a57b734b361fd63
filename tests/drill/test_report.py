"""Reports rendered from recorded drills: HTML, JSON, JUnit, history. No servers."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from typing import ClassVar

import pytest

from orchestrator.drill import history, report, timeline
from orchestrator.drill.model import DrillRecord
from tests.drill.chromium import screenshot
from tests.drill.recorded import REPROTECT_STEPS, at, drill, leg, protect

PASSED = drill(
    leg("there", "dc1", "dc2", 0), leg("back", "dc2", "dc1", 60), failback=True, active="dc1"
)
FAILED = drill(
    leg("there", "dc1", "dc2", 0, status="failed", failed_step="start-services/dc2/mta"),
    failback=True,
    active="dc1",
    stopped="switchover dc1→dc2 failed at step start-services/dc2/mta: port 2525 in use",
)
FAILED.where = "dc2 holds the data and DNS points at it; its services are not all verified"
LOSSY = drill(leg("there", "dc1", "dc2", 0, lost=frozenset({4, 5})))
PROTECTED = drill(
    leg("there", "dc1", "dc2", 0),
    leg("back", "dc2", "dc1", 60),
    protect("dc1", "dc2", 90),
    failback=True,
    active="dc1",
)


class _Tags(HTMLParser):
    """Every element opened is closed (void elements aside): the template is well formed."""

    VOID: ClassVar[set[str]] = {"meta", "br", "hr", "img", "input", "link", "line", "rect"}

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.bad: list[str] = []

    def handle_starttag(self, tag: str, attrs: object) -> None:
        if tag not in self.VOID:
            self.open.append(tag)

    def handle_startendtag(self, tag: str, attrs: object) -> None:
        pass

    def handle_endtag(self, tag: str) -> None:
        if tag in self.VOID:
            return
        if not self.open or self.open[-1] != tag:
            self.bad.append(f"</{tag}> closes <{self.open[-1] if self.open else '-'}>")
            return
        self.open.pop()


def _well_formed(html: str) -> None:
    parser = _Tags()
    parser.feed(html)
    assert not parser.bad and not parser.open, (parser.bad, parser.open)


@pytest.mark.parametrize(
    "record", [PASSED, FAILED, LOSSY, PROTECTED], ids=["passed", "failed", "lossy", "protected"]
)
def test_html_is_well_formed_and_escapes_what_people_typed(record: DrillRecord) -> None:
    html = report.render_html(record)
    _well_formed(html)
    assert "Q4 &lt;b&gt;DR&lt;/b&gt; drill" in html
    assert "<b>DR</b>" not in html
    assert "alice on ops1" in html


def test_html_of_a_failed_drill_names_the_step_the_site_and_what_next() -> None:
    html = report.render_html(FAILED)
    assert ">FAILED<" in html
    assert "<code>start-services/dc2/mta</code>" in html
    assert (
        "<strong>Active site:</strong> dc1 as sitectl recorded it; the engine says: dc2 holds"
        in html
    )
    assert "port 2525 in use" in html


def test_html_of_a_lossy_drill_lists_the_lost_writes() -> None:
    html = report.render_html(LOSSY)
    assert "3 write(s) lost dc1→dc2" in html
    assert "canary 4" in html and "canary 5" in html
    assert "3 of 6 writes lost" in html


def test_timeline_has_a_bar_per_phase_and_step_group_inside_the_plot() -> None:
    tl = timeline.build(PASSED)
    groups = {b.label.split(" · ")[-1] for b in tl.bars if b.kind == "engine"}
    assert groups == {
        "preflight",
        "readiness",
        "disable-application",
        "final-sync",
        "mount",
        "dns",
        "start-services",
        "verify",
    }
    assert len([b for b in tl.bars if b.kind == "drill"]) == len(PASSED.phases)
    for b in tl.bars:
        assert b.x >= timeline.LABEL_W and b.x + b.w <= timeline.WIDTH + 0.5, b
    assert [label for _, label in tl.axis][:3] == ["0 s", "10 s", "20 s"]
    assert {t.status for t in tl.ticks} == {"old", "new", "refused"}
    html = report.render_html(PASSED)
    assert html.count("<rect") == len(tl.bars) + len(tl.ticks)


def test_json_round_trip_renders_the_same_page(tmp_path: Path) -> None:
    paths = report.write_reports(LOSSY, tmp_path)
    again = report.load(paths.json)
    assert again == LOSSY
    assert report.render_html(again) == paths.html.read_text()
    data = json.loads(paths.json.read_text())
    assert data["verdict"]["passed"] is False
    assert data["figures"][0]["rpo"]["lost"] == 3


def test_junit_has_a_case_per_check_and_step_and_fails_the_failed_step(tmp_path: Path) -> None:
    paths = report.write_reports(FAILED, tmp_path)
    root = ET.parse(paths.junit).getroot()
    cases = {c.get("name"): c for c in root.iter("testcase")}
    steps = FAILED.legs[0].operations[0].steps
    checks = FAILED.snapshots[0].checks
    assert {s.step_id for s in steps} <= set(cases)
    assert {f"{c.system} {c.site} {c.target}" for c in checks} <= set(cases)
    assert cases["start-services/dc2/mta"].find("failure") is not None
    assert cases["preflight/ldap"].find("failure") is None
    assert cases["verify/application/dc2"].find("skipped") is not None  # never ran
    for suite in root.iter("testsuite"):
        listed = suite.findall("testcase")
        assert int(suite.get("tests", "-1")) == len(listed)
        assert int(suite.get("failures", "-1")) == sum(
            c.find("failure") is not None for c in listed
        )


def test_the_last_reprotect_is_in_every_report(tmp_path: Path) -> None:
    paths = report.write_reports(PROTECTED, tmp_path)
    data = json.loads(paths.json.read_text())
    assert [(lg["name"], lg["moves"]) for lg in data["legs"]] == [
        ("there", True),
        ("back", True),
        ("protect", False),
    ]
    assert [f["name"] for f in data["figures"]] == ["there", "back"]
    assert report.load(paths.json) == PROTECTED

    root = ET.parse(paths.junit).getroot()
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    reprotect = suites["reprotect dc1→dc2 (op-reprotect-dc1-dc2)"]
    assert [c.get("name") for c in reprotect.iter("testcase")] == list(REPROTECT_STEPS)
    check = next(c for c in suites["verification at dc2 (protect)"].iter("testcase"))
    assert check.get("name") == "S3 objects replicated back once reprotected on dc2"
    assert check.find("failure") is None
    # Figures only for moves: no RTO or RPO case for the reprotect.
    figures = [c.get("name") for c in suites["figures against targets"].iter("testcase")]
    assert figures == [
        "RTO dc1→dc2 ≤ 300 s",
        "RPO dc1→dc2 ≤ 0 s",
        "RTO dc2→dc1 ≤ 300 s",
        "RPO dc2→dc1 ≤ 0 s",
    ]

    html = paths.html.read_text()
    assert (
        "<td>dc1→dc2 (last reprotect)</td><td>S3 objects replicated back once reprotected" in html
    )
    assert "<code>reprotect/object-store/mail-blobs</code>" in html


def test_a_report_written_before_protect_legs_were_recorded_still_loads(tmp_path: Path) -> None:
    paths = report.write_reports(PASSED, tmp_path)
    data = json.loads(paths.json.read_text())
    for lg in data["legs"]:
        del lg["moves"]
    paths.json.write_text(json.dumps(data))
    assert report.load(paths.json) == PASSED


def test_history_lists_drills_newest_first_and_says_which_it_could_not_read(tmp_path: Path) -> None:
    older = drill(leg("there", "dc1", "dc2", 0))
    older.id, older.started = "drill-older", at(-3600)
    report.write_reports(older, tmp_path / older.id)
    report.write_reports(FAILED, tmp_path / FAILED.id)
    (tmp_path / "drill-broken").mkdir()
    (tmp_path / "drill-broken" / "report.json").write_text("{not json")
    entries = history.history(tmp_path)
    assert [e.id for e in entries] == [FAILED.id, "drill-older", "drill-broken"]
    assert [e.passed for e in entries] == [False, True, None]
    assert entries[0].route == "dc1→dc2→dc1"
    assert "start-services/dc2/mta" in entries[0].summary
    assert entries[1].summary.startswith("dc1→dc2 RTO 9.5 s")
    assert history.history(tmp_path / "nowhere") == []


def test_the_page_renders_in_headless_chromium(tmp_path: Path) -> None:
    paths = report.write_reports(FAILED, tmp_path)
    shot = screenshot(paths.html, tmp_path / "report.png")
    assert shot.complaints == []
    assert (shot.width, shot.height) == (1200, 2600)
    assert shot.colours > 50, "the screenshot is nearly blank"


@pytest.mark.parametrize(
    ("row", "subject"),
    [
        (
            (b"1 (BODY[HEADER.FIELDS (SUBJECT)] {30}", b"Subject: sitectl-drill d1 x\r\n\r\n"),
            "sitectl-drill d1 x",
        ),
        # long subjects arrive folded onto a continuation line
        (
            (b"2 (...)", b"Subject: sitectl-drill d1 there\r\n probe 00001\r\n\r\n"),
            "sitectl-drill d1 there probe 00001",
        ),
        ((b"3 (...)", b"SUBJECT:   spaced  \r\n"), "spaced"),
        (b")", ""),
        ((b"4 (...)", b"From: someone\r\n"), ""),
    ],
)
def test_imap_subjects_are_unfolded(row: object, subject: str) -> None:
    from orchestrator.drill.canaries import _subject_of

    assert _subject_of(row) == subject
