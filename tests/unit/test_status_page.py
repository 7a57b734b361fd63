"""The controller's live status page (controller/page*.py) as pure data in, HTML out: each
state a table row, the page parsed back and its elements asserted on; who may see it
(header, cookie, the token once in the query); its routes behind the HTTP responder."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from orchestrator.checks import ldap, mirrors, object_store
from orchestrator.checks.result import CheckResult, Status, Sweep
from orchestrator.config import Topology, load_topology
from orchestrator.controller import page, pageview
from orchestrator.controller.http import (
    Access,
    Board,
    Metrics,
    Request,
    TokenFile,
    parse_head,
    responder,
)
from orchestrator.controller.pagesource import read_report
from orchestrator.controller.pageview import ClusterRead, OperationRead, StepLine
from orchestrator.coordination.ticket import Ticket
from orchestrator.history import HistoryRow
from orchestrator.records import (
    ApprovalRequest,
    Mode,
    OperationRecord,
    OpStatus,
    StepRecord,
    StepStatus,
)
from tests.htmldom import Dom

EXAMPLE = Path(__file__).resolve().parents[2] / "inventories/example-zimbra/topology.yaml"
NOW = 1_790_000_000.0
TOKEN = "0123456789abcdef0123456789abcdef"


@pytest.fixture(scope="module")
def topo() -> Topology:
    return load_topology(EXAMPLE)


# ---- data ------------------------------------------------------------------------------


def sweep(topo: Topology, *, down: str | None = None, mirror_lag: float = 20.0) -> dict[str, Any]:
    """A health sweep of the example as `Sweep.to_json()` plus `at`: every check ok, the
    mirrors `mirror_lag` behind, and everything of `down` refusing."""
    assert topo.ldap is not None and topo.object_store is not None
    standby = "dc2"
    results: list[CheckResult] = []
    sids = [m.server_id for m in topo.ldap.masters]
    for m in topo.ldap.masters:
        figures = {f"{ldap.CSN_FIGURE}{sid}": NOW - 5 for sid in sids}
        results.append(CheckResult(ldap.SYSTEM, m.site, m.uri, Status.OK, "", figures))
    for bucket in topo.object_store.buckets:
        for site in ("dc1", "dc2"):
            results.append(
                CheckResult(
                    object_store.SYSTEM,
                    site,
                    object_store.bucket_target(bucket.name, site),
                    Status.OK,
                    "",
                    {object_store.LAG: 3.0} if site == "dc1" else {},
                )
            )
    for volume in topo.volumes:
        results.append(
            CheckResult(
                mirrors.SYSTEM,
                standby,
                mirrors.target(volume.name),
                Status.OK,
                "",
                {"state": 0.0, "lag_seconds": mirror_lag},
            )
        )
    for site in ("dc1", "dc2", "witness"):
        results.append(CheckResult("zookeeper", site, f"zk {site}", Status.OK, ""))
    for site in ("dc1", "dc2"):
        results.append(CheckResult("dns", site, f"ns {site}", Status.OK, ""))
        up = 1.0 if site == "dc1" else 0.0
        results.append(CheckResult("application", site, f"mta {site}", Status.OK, "", {"up": up}))
    if down is not None:
        results = [
            replace(r, status=Status.DOWN, reason=f"{r.target} refused the connection", figures={})
            if r.site == down and r.system != "application"
            else r
            for r in results
        ]
    return {**Sweep(tuple(results), 1.5).to_json(), "at": NOW - 4}


def board(topo: Topology, health: Mapping[str, Any] | None, **vantage: str) -> dict[str, Any]:
    sites = {s: {"status": vantage.get(s, "up"), "streak": 0, "reason": ""} for s in ("dc1", "dc2")}
    data: dict[str, Any] = {
        "site": "witness",
        "identity": "witness root@lab:42",
        "leader": True,
        "connected": True,
        "decision": "dc1 serves; nothing to do",
        "vantage": {"vantage": "witness", "active_site": "dc1", "sites": sites},
    }
    if health is not None:
        data["health"] = health
    return data


def operation(mode: Mode = Mode.SWITCHOVER, status: OpStatus = OpStatus.RUNNING) -> OperationRecord:
    return OperationRecord(
        id="20261207T010203Z-abcd",
        mode=mode,
        from_site="dc1",
        to_site="dc2",
        started=NOW - 60,
        by="alice",
        host="ops1",
        reason="quarterly move <b>CHG-1</b>",
        automatic=False,
        plan_digest="x",
        status=status,
    )


PLANNED = (
    ("preflight/zookeeper", "preflight"),
    ("readiness/gate", "readiness"),
    ("approval/change-board", "approval"),
    ("disable-application/dc1/mta", "disable-application"),
    ("dns/mail", "dns"),
)


def checkpoints(*running: str) -> dict[str, StepRecord]:
    done = {
        "preflight/zookeeper": StepRecord(
            "preflight/zookeeper", StepStatus.DONE, 1, NOW - 50, NOW - 49
        ),
        "readiness/gate": StepRecord("readiness/gate", StepStatus.DONE, 1, NOW - 49, NOW - 40),
    }
    for step in running:
        done[step] = StepRecord(step, StepStatus.RUNNING, 1, NOW - 30)
    return done


WAITING = ApprovalRequest(
    "approval/change-board", NOW - 30, "the change board agrees to leave dc1", ("alice",)
)


def in_progress() -> OperationRead:
    records = checkpoints("approval/change-board")
    return OperationRead(operation(), True, pageview.step_lines(PLANNED, records), True, (WAITING,))


def drill_row() -> HistoryRow:
    return HistoryRow(
        id="drill-20261201",
        kind="drill",
        mode="switchover",
        route="dc1→dc2→dc1",
        from_site="dc1",
        to_site="dc2",
        started=NOW - 86400,
        finished=NOW - 86000,
        status="passed",
        by="bob",
        automatic=False,
        reason="Q4 drill",
        note="dc1→dc2 RTO 41.0 s, RPO 0.0 s",
        report="/var/lib/sitectl/drills/drill-20261201/report.html",
    )


def read(op: OperationRead | None = None, **changes: Any) -> ClusterRead:
    ticket = Ticket("dc1", 3, NOW - 1000, NOW - 1, 30.0)
    controllers = tuple(
        {"site": s, "leader": s == "witness", "identity": f"{s} root@lab"}
        for s in ("dc1", "dc2", "witness")
    )
    base = ClusterRead(
        at=NOW - 1,
        active_site="dc1",
        ticket=ticket,
        operation=op,
        history=(drill_row(),),
        controllers=controllers,
    )
    return replace(base, **changes)


# ---- reading the HTML back ----------------------------------------------------------------


def dom_of(topo: Topology, board_data: Mapping[str, Any], cluster: ClusterRead | None) -> Dom:
    html = page.render(pageview.build(topo, board_data, cluster, NOW))
    dom = Dom(html)
    assert not dom.bad and not dom.open, (dom.bad, [e["tag"] for e in dom.open])
    return dom


def verdicts(dom: Dom) -> dict[str, str]:
    return {e["data-site"]: e["data-verdict"] for e in dom.find(tag="tr") if "data-verdict" in e}


# ---- the page's states ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (
            "healthy",
            {
                "banner": "good",
                "verdicts": {"dc1": "up", "dc2": "up", "witness": "up"},
                "said": "dc1 serves; every site answers as it should.",
                "lag": {"volume mirrors": "ok", "LDAP": "ok", "object store": "ok"},
            },
        ),
        (
            "switchover waiting for approval",
            {
                "banner": "warn",
                "verdicts": {"dc1": "up", "dc2": "up", "witness": "up"},
                "said": "switchover dc1 → dc2 in progress: step 3 of 5: now at "
                "approval/change-board (waiting for approval).",
                "lag": {"volume mirrors": "ok", "LDAP": "ok", "object store": "ok"},
            },
        ),
        (
            "standby down",
            {
                "banner": "bad",
                "verdicts": {"dc1": "up", "dc2": "down", "witness": "up"},
                "said": "dc2 is down.",
                # With dc2's masters and stores silent, what dc2 holds cannot be known.
                "lag": {"volume mirrors": "unknown", "LDAP": "unknown", "object store": "unknown"},
            },
        ),
        (
            "active down by the probe",
            {
                "banner": "bad",
                "verdicts": {"dc1": "down", "dc2": "up", "witness": "up"},
                "said": "dc1 is down.",
                "lag": {"volume mirrors": "ok", "LDAP": "ok", "object store": "ok"},
            },
        ),
        (
            "mirror over its limit",
            {
                "banner": "warn",
                "verdicts": {"dc1": "up", "dc2": "up", "witness": "up"},
                "said": "not ready to move to dc2: volume mirror mailstore1 lags 400 s, over "
                "the 300 s limit by 100 s.",
                "lag": {"volume mirrors": "over", "LDAP": "ok", "object store": "ok"},
            },
        ),
    ],
)
def test_each_state_shows_the_active_site_the_sites_and_the_lag(
    topo: Topology, state: str, expected: dict[str, Any]
) -> None:
    op = in_progress() if "switchover" in state else None
    health = {
        "healthy": sweep(topo),
        "switchover waiting for approval": sweep(topo),
        "standby down": sweep(topo, down="dc2"),
        "active down by the probe": sweep(topo),
        "mirror over its limit": sweep(topo, mirror_lag=400.0),
    }[state]
    vantage = {"dc1": "down"} if state == "active down by the probe" else {}
    dom = dom_of(topo, board(topo, health, **vantage), read(op))

    assert dom.one(id="active-site")["text"] == "dc1"
    assert dom.one(id="state")["data-state"] == expected["banner"]
    assert verdicts(dom) == expected["verdicts"]
    said = " ".join(dom.one(id="summary")["text"].split())
    assert expected["said"] in said, said
    lag = {e["data-lag"]: e["data-status"] for e in dom.find(tag="tr") if "data-lag" in e}
    assert lag == expected["lag"]
    # The last drill, linked to its report on this controller.
    assert dom.find(tag="a", href="/reports/drill-20261201")


def test_an_operation_in_progress_shows_its_steps_advancing(topo: Topology) -> None:
    dom = dom_of(topo, board(topo, sweep(topo)), read(in_progress()))
    heading = dom.one(id="operation")
    assert (heading["data-status"], heading["data-in-progress"]) == ("running", "yes")
    steps = {e["data-step"]: e["data-status"] for e in dom.find(tag="tr") if "data-step" in e}
    assert steps == {
        "preflight/zookeeper": "done",
        "readiness/gate": "done",
        "approval/change-board": "running",
        "disable-application/dc1/mta": "pending",
        "dns/mail": "pending",
    }
    (now,) = [e for e in dom.find(tag="tr") if "now" in e.get("class", "").split()]
    assert now["data-step"] == "approval/change-board"
    assert "sitectl approve 20261207T010203Z-abcd" in " ".join(
        e["text"] for e in dom.find(tag="code")
    )
    # Further along, the page says so.
    later = checkpoints()
    for step in ("approval/change-board", "disable-application/dc1/mta"):
        later[step] = StepRecord(step, StepStatus.DONE, 1, NOW - 20, NOW - 10)
    later["dns/mail"] = StepRecord("dns/mail", StepStatus.RUNNING, 1, NOW - 5)
    moved = OperationRead(operation(), True, pageview.step_lines(PLANNED, later), True)
    dom = dom_of(topo, board(topo, sweep(topo)), read(moved))
    assert " ".join(dom.one(id="current-step")["text"].split()) == "step 5 of 5: now at dns/mail"


def test_without_a_sweep_or_zookeeper_the_page_says_what_it_lacks(topo: Topology) -> None:
    dom = dom_of(topo, board(topo, None), read(error="ZooKeeper did not answer", history=()))
    notes = [" ".join(e["text"].split()) for e in dom.find(tag="p", **{"class": "warn note"})]
    assert notes == [
        "ZooKeeper could not be read (ZooKeeper did not answer)",
        "no health sweep yet: health by system and replication lag appear with it",
    ]
    # An earlier read's operation stays on the page, said to be that old.
    kept = dom_of(topo, board(topo, sweep(topo)), read(in_progress(), error="no session"))
    notes = [" ".join(e["text"].split()) for e in kept.find(tag="p", **{"class": "warn note"})]
    assert notes == ["ZooKeeper could not be read (no session): showing what it held 1 s ago"]
    assert kept.one(id="operation")["data-in-progress"] == "yes"
    # The controller's own probe still marks sites; the controllers are not known.
    assert verdicts(dom) == {"dc1": "up", "dc2": "up", "witness": "unknown"}
    assert dom.one(id="active-site")["text"] == "dc1"
    # Nothing read at all yet: the vantage report's active site.
    dom = dom_of(topo, board(topo, None), None)
    assert dom.one(id="active-site")["text"] == "dc1"


def test_everything_shown_is_escaped(topo: Topology) -> None:
    hostile = '<script>alert("x")</script>'
    health = sweep(topo, down="dc2")
    health["results"][0]["reason"] = hostile
    health["results"][0]["status"] = "down"
    data = board(topo, health)
    data["decision"] = hostile
    op = in_progress()
    op = replace(op, record=replace(op.record, reason=hostile, message=hostile))
    row = replace(drill_row(), note=hostile, id='x" onmouseover="y')
    html = page.render(pageview.build(topo, data, read(op, history=(row,)), NOW))
    assert "<script>" not in html and hostile.replace("<", "&lt;").replace(">", "&gt;")[:20] in html
    assert 'onmouseover="y' not in html
    assert 'href="/reports/x%22%20onmouseover%3D%22y"' in html


@pytest.mark.parametrize(
    ("results", "probe", "verdict"),
    [
        ([], None, "unknown"),
        ([], {"status": "up"}, "up"),
        ([("ldap", "ok", 1.0)], None, "up"),
        ([("ldap", "degraded", 1.0)], None, "degraded"),
        ([("ldap", "down", 1.0), ("dns", "ok", 1.0)], None, "degraded"),
        ([("ldap", "down", 1.0), ("dns", "down", 1.0)], None, "down"),
        # The standby's application refusing is what it must do: it proves nothing alive.
        ([("ldap", "down", 1.0), ("application", "ok", 0.0)], None, "down"),
        ([("application", "ok", 0.0)], None, "up"),
        # A mirror's state and parity are read from elsewhere: they do not keep it alive.
        ([("ldap", "down", 1.0), ("mirrors", "ok", 1.0), ("parity", "ok", 1.0)], None, "down"),
        ([("mirrors", "down", 1.0)], None, "degraded"),
        ([("ldap", "ok", 1.0)], {"status": "down", "streak": 4}, "down"),
        ([("ldap", "ok", 1.0)], {"status": "degraded", "reason": "slow"}, "degraded"),
    ],
)
def test_a_site_is_down_when_nothing_that_should_answer_there_does(
    results: list[tuple[str, str, float]], probe: dict[str, Any] | None, verdict: str
) -> None:
    checks = [
        CheckResult(system, "dc2", f"t{i}", Status(status), "", {"up": up})
        for i, (system, status, up) in enumerate(results)
    ]
    assert pageview.judge(checks, probe)[0] == verdict


def test_steps_follow_the_plan_or_else_the_order_they_started() -> None:
    records = checkpoints("approval/change-board")
    planned = pageview.step_lines(PLANNED, records)
    assert [(s.id, s.status) for s in planned][2:] == [
        ("approval/change-board", "running"),
        ("disable-application/dc1/mta", "pending"),
        ("dns/mail", "pending"),
    ]
    records["custom/unplanned"] = StepRecord("custom/unplanned", StepStatus.DONE, 1, NOW - 49.5)
    unplanned = pageview.step_lines(None, records)
    assert [s.id for s in unplanned] == [
        "preflight/zookeeper",
        "custom/unplanned",
        "readiness/gate",
        "approval/change-board",
    ]
    assert unplanned[1] == StepLine("custom/unplanned", "custom", "done", None, "", 1)
    # A checkpoint the plan does not name is still shown, last.
    assert pageview.step_lines(PLANNED, records)[-1].id == "custom/unplanned"


def test_a_malformed_sweep_is_read_as_far_as_it_goes() -> None:
    assert pageview.sweep_of(None) is None
    assert pageview.sweep_of({"results": "nope"}) is None
    found = pageview.sweep_of(
        {
            "results": [
                {"system": "dns", "site": "dc1", "target": "a", "status": "ok"},
                {"system": "dns", "site": "dc1", "target": "b", "status": "sideways"},
                {"target": "c"},
            ]
        }
    )
    assert found is not None and [r.target for r in found.results] == ["a"]


# ---- who may look ---------------------------------------------------------------------------


@pytest.fixture
def token(tmp_path: Path) -> TokenFile:
    path = tmp_path / "token"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, (TOKEN + "\n").encode())
    os.close(fd)
    return TokenFile(path)


def request(target: str = "/", **headers: str) -> Request:
    return Request("GET", target, {k.lower(): v for k, v in headers.items()})


@pytest.mark.parametrize(
    ("target", "headers", "code"),
    [
        ("/", {}, 401),
        ("/", {"Authorization": f"Bearer {TOKEN}"}, None),
        ("/", {"Authorization": f"bearer  {TOKEN} "}, None),
        ("/", {"Authorization": "Bearer wrong-token-0123456789"}, 401),
        ("/", {"Authorization": f"Basic {TOKEN}"}, 401),
        ("/", {"Cookie": f"{page.COOKIE}={page.cookie_value(TOKEN)}"}, None),
        ("/", {"Cookie": f"other=1; {page.COOKIE}={page.cookie_value(TOKEN)}"}, None),
        # The cookie is an HMAC of the token: the token itself is no cookie, and a
        # rotated token's cookie no longer opens anything.
        ("/", {"Cookie": f"{page.COOKIE}={TOKEN}"}, 401),
        ("/", {"Cookie": f"{page.COOKIE}={page.cookie_value('an-older-token-000000')}"}, 401),
        ("/", {"Cookie": 'bad"cookie'}, 401),
        (f"/?token={TOKEN}", {}, 303),
        ("/?token=guess", {}, 401),
        ("/?token=", {}, 401),
        (f"/reports/d1?token={TOKEN}", {}, 303),
        # Signed in already: the token still leaves the address.
        (f"/?token={TOKEN}", {"Cookie": f"{page.COOKIE}={page.cookie_value(TOKEN)}"}, 303),
        ("/?token=guess", {"Authorization": f"Bearer {TOKEN}"}, 401),
    ],
)
def test_who_may_see_the_page(
    token: TokenFile, target: str, headers: dict[str, str], code: int | None
) -> None:
    admission = page.admit(Access(token), request(target, **headers))
    assert admission.code == code
    if code == 303:
        # Back to the same page without the token, with a cookie no script can read and
        # no other site's page can make the browser send.
        assert admission.location == target.split("?")[0]
        assert admission.cookie == (
            f"{page.COOKIE}={page.cookie_value(TOKEN)}; Path=/; HttpOnly; SameSite=Strict"
        )
        assert TOKEN not in (admission.cookie or "")


def test_without_a_usable_token_nobody_sees_the_page(tmp_path: Path) -> None:
    assert page.admit(Access(None), request(f"/?token={TOKEN}")).code == 403
    loose = tmp_path / "loose"
    loose.write_text(TOKEN + "\n")
    loose.chmod(0o644)
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert page.admit(Access(TokenFile(loose)), request("/", **bearer)).code == 503


class _Source:
    """A PageSource stand-in: one read, one report."""

    def __init__(self) -> None:
        self.closed = False

    def latest(self, wait: float = 2.0) -> ClusterRead:
        return read(in_progress())

    def report(self, drill_id: str) -> bytes | None:
        return b"<html>the report</html>" if drill_id == "d1" else None

    def close(self) -> None:
        self.closed = True


def test_the_responder_serves_the_page_and_reports_behind_the_token(
    topo: Topology, token: TokenFile
) -> None:
    status_page = page.StatusPage(
        topo, Board(**board(topo, sweep(topo))), Access(token), _Source(), clock=lambda: NOW
    )
    respond = responder(
        Metrics("witness"), Board(), lambda: (True, "ok"), Access(token), status_page.respond
    )
    bearer = f"Bearer {TOKEN}"

    def get(target: str, **headers: str) -> Any:
        head = f"GET {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        parsed = parse_head(head.rstrip("\r\n").encode())
        assert parsed is not None
        return respond(parsed)

    shown = get("/", Authorization=bearer)
    assert shown.code == 200 and shown.content_type.startswith("text/html")
    assert shown.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert b'http-equiv="refresh"' in shown.body and b"<script" not in shown.body
    assert get("/").code == 401 and b"?token=" in get("/").body
    signed = get(f"/?token={TOKEN}")
    assert signed.code == 303 and signed.headers["Location"] == "/"
    cookie = signed.headers["Set-Cookie"].split(";")[0]
    assert get("/", Cookie=cookie).code == 200
    assert get("/reports/d1", Cookie=cookie).body == b"<html>the report</html>"
    assert get("/reports/../../etc/passwd", Cookie=cookie).code == 404
    assert get("/reports/d1").code == 401
    # The cookie opens the page, never /status.
    assert get("/status", Cookie=cookie).code == 401
    # Without a page, / is not found; the other endpoints answer as before.
    plain = responder(Metrics("witness"), Board(), lambda: (True, "ok"), Access(token))
    assert plain(request("/")).code == 404
    assert plain(request("/status", Authorization=bearer)).code == 200


def test_a_report_is_read_only_from_a_regular_file(tmp_path: Path) -> None:
    real = tmp_path / "report.html"
    real.write_text("<html>ok</html>")
    link = tmp_path / "link.html"
    link.symlink_to(real)
    assert read_report(real) == b"<html>ok</html>"
    assert read_report(link) is None
    assert read_report(tmp_path) is None
    assert read_report(tmp_path / "missing.html") is None


@pytest.mark.parametrize(
    ("automatic", "paused", "shown"),
    [
        (False, None, "off"),
        (False, "maintenance", "off"),
        (True, None, "armed"),
        (True, "x", "paused"),
    ],
)
def test_the_page_says_whether_the_controllers_would_fail_over(
    topo: Topology, automatic: bool, paused: str | None, shown: str
) -> None:
    policy = topo.policy.model_copy(update={"automatic_promotion": automatic})
    moved = topo.model_copy(update={"policy": policy})
    dom = dom_of(moved, board(moved, sweep(moved)), read(paused=paused))
    assert dom.one(id="automatic")["text"].strip() == shown
