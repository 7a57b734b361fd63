"""The controller's live status page on the real lab, loaded in headless Chromium as a
person opens it (once with ?token=, then on the cookie it set), in three states: a
healthy lab; a switchover held at an approval, its steps shown advancing to it; the
standby killed. Each state is kept as a screenshot (printed path) and asserted on the
DOM Chromium rendered. The lab is left as found: dc1 active, mirrored to dc2."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.controller.http import read_token
from orchestrator.lab import controllers as lab_daemons
from tests.conftest import LabHandle
from tests.controller.conftest import wait_for
from tests.engine.conftest import SITECTL, Cluster
from tests.htmldom import Dom, words

pytestmark = pytest.mark.lab

APPROVAL = "approval/change-board"
SERVED_BY = "witness"  # the page survives either datacenter's loss
SHOTS = Path(tempfile.gettempdir()) / "sitectl-status-page"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1200,2000",
)


@pytest.fixture(scope="module")
def cluster(lab: LabHandle) -> Cluster:
    return Cluster(lab)


@pytest.fixture
def page_controllers(cluster: Cluster) -> Iterator[Path]:
    """The lab's controllers on a copy of its topology with an approval before the
    switchover changes anything: the operation the page shows waits there."""
    doc = yaml.safe_load(cluster.topology_file.read_text())
    doc["custom_steps"] = [
        {
            "name": "change-board",
            "approval": True,
            "before": "disable-application",
            "description": "the change board agrees to leave dc1",
        }
    ]
    topology = cluster.topology_file.with_name("topology-status-page.yaml")
    topology.write_text(yaml.safe_dump(doc, sort_keys=False))
    cluster.lab.ok("controllers", "up", "--topology", str(topology))
    try:
        yield topology
    finally:
        cluster.lab.ok("controllers", "down")
        cluster.lab.heal_all()
        topology.unlink()


class Browser:
    """Headless Chromium against one controller's page: each load a fresh profile that
    signs in with ?token= (the redirect drops it and sets the cookie)."""

    def __init__(self, lab: LabHandle, tmp: Path) -> None:
        self.address = lab_daemons.listen(SERVED_BY)
        self.token = read_token(lab_daemons.token_file(lab.state_dir))
        self.tmp = tmp
        self.binary = shutil.which("chromium")
        if self.binary is None:
            pytest.fail("chromium is not installed: run ./scripts/install (it adds the package)")

    def _run(self, *action: str) -> subprocess.CompletedProcess[str]:
        profile = tempfile.mkdtemp(prefix="profile-", dir=self.tmp)
        try:
            return subprocess.run(
                [
                    str(self.binary),
                    *CHROMIUM_FLAGS,
                    f"--user-data-dir={profile}",
                    *action,
                    f"http://{self.address}/?token={self.token}",
                ],
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            )
        finally:
            shutil.rmtree(profile, ignore_errors=True)

    def load(self, name: str) -> Dom:
        """The page as Chromium renders it: its screenshot kept (and copied to SHOTS,
        path printed) and the DOM it drew, from one and the same load."""
        png = self.tmp / f"{name}.png"
        dom = Dom(self._run(f"--screenshot={png}", "--dump-dom").stdout)
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        SHOTS.mkdir(exist_ok=True)
        kept = SHOTS / png.name
        shutil.copyfile(png, kept)
        print(f"status page screenshot ({name}): {kept}")
        assert dom.find(id="active-site"), "Chromium did not get the page (not signed in?)"
        return dom

    def fetch(self) -> Dom:
        """The page as a script reads it (bearer header), for waiting on a state."""
        request = urllib.request.Request(
            f"http://{self.address}/", headers={"Authorization": f"Bearer {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=5) as answer:
            return Dom(answer.read().decode())


def sites(dom: Dom) -> dict[str, dict[str, str]]:
    """The sites' rows (the cluster-wide checks' row left out)."""
    rows = dom.with_attribute("data-verdict")
    return {e["data-site"]: e for e in rows if e["data-site"] != "cluster"}


def swept(dom: Dom) -> bool:
    """A health sweep is on the page: each datacenter has its systems' cells."""
    return len(dom.find(tag="td", **{"data-system": "ldap"})) >= 2


def steps(dom: Dom) -> dict[str, str]:
    return {e["data-step"]: e["data-status"] for e in dom.with_attribute("data-step")}


def test_the_status_page_shows_a_healthy_lab_a_switchover_and_a_site_down(
    cluster: Cluster, page_controllers: Path, tmp_path: Path
) -> None:
    started = time.monotonic()
    browser = Browser(cluster.lab, tmp_path)
    # Without the token, nothing but how to sign in.
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"http://{browser.address}/", timeout=5)
    assert refused.value.code == 401 and b"?token=" in refused.value.read()

    # 1. Healthy: dc1 active, every site up, the standby ready within the RPO limits.
    wait_for(
        lambda: (
            swept(d := browser.fetch()) and {s["data-verdict"] for s in sites(d).values()} == {"up"}
        ),
        "the page shows a health sweep with every site up",
        within=45,
    )
    print(f"healthy shown after {time.monotonic() - started:.0f} s")
    dom = browser.load("healthy")
    assert dom.one(id="active-site")["data-site"] == "dc1"
    assert dom.one(id="state")["data-state"] == "good"
    shown = sites(dom)
    assert {n: (s["data-role"], s["data-verdict"]) for n, s in shown.items()} == {
        "dc1": ("active", "up"),
        "dc2": ("standby", "up"),
        "witness": ("witness", "up"),
    }
    assert {e["data-status"] for e in dom.with_attribute("data-lag")} == {"ok"}
    assert not dom.find(id="operation") or dom.one(id="operation")["data-in-progress"] == "no"

    # 2. A switchover that waits at its approval: the steps before it done, the
    # approval running, the rest pending.
    switchover = subprocess.Popen(
        [SITECTL, "switchover", "--to", "dc2", "--yes", "-r", "status page test"],
        env=cluster.env(SITECTL_CONFIG=str(page_controllers)),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(
            lambda: steps(browser.fetch()).get(APPROVAL) == "running",
            "the page shows the switchover waiting at its approval",
            within=60,
        )
        print(f"switchover at its approval after {time.monotonic() - started:.0f} s")
        dom = browser.load("switchover")
        operation = dom.one(id="operation")
        assert (operation["data-status"], operation["data-in-progress"]) == ("running", "yes")
        now = steps(dom)
        order = list(now)
        before, after = order[: order.index(APPROVAL)], order[order.index(APPROVAL) + 1 :]
        assert before and {now[s] for s in before} <= {"done", "skipped"}, now
        assert after and {now[s] for s in after} == {"pending"}, now
        assert any(s.startswith("disable-application/") for s in after), after
        current = words(dom.one(id="current-step"))
        assert f"now at {APPROVAL} (waiting for approval)" in current, current
        assert dom.one(id="state")["data-state"] == "warn"
        op_id = operation["data-id"]
        rejected = cluster.sitectl(
            "reject", op_id, "-r", "status page test", SITECTL_CONFIG=str(page_controllers)
        )
        assert rejected.returncode == 0, rejected.stderr
        out, err = switchover.communicate(timeout=60)
    finally:
        switchover.kill()
    assert switchover.returncode == 4, out + err  # refused before any change

    # 3. The standby killed: marked down, dc1 still active; the refused switchover is the
    # newest of the last operations.
    cluster.lab.ok("kill-site", "dc2")
    try:
        try:
            wait_for(
                lambda: sites(browser.fetch())["dc2"]["data-verdict"] == "down",
                "the page marks dc2 down",
                within=45,
            )
        except AssertionError:
            browser.load("site-down-not-shown")  # what it showed instead
            raise
        print(f"dc2 down shown after {time.monotonic() - started:.0f} s")
        dom = browser.load("site-down")
    finally:
        cluster.lab.ok("heal-site", "dc2")
    assert dom.one(id="active-site")["data-site"] == "dc1"
    assert dom.one(id="state")["data-state"] == "bad"
    shown = sites(dom)
    # dc1 still serves (its store may rightly say replication to dc2 is failing).
    assert shown["dc2"]["data-verdict"] == "down"
    assert shown["dc1"]["data-verdict"] in ("up", "degraded"), shown["dc1"]
    assert shown["dc2"]["data-role"] == "standby" and shown["dc1"]["data-role"] == "active"
    assert "dc2 is down." in words(dom.one(id="summary"))
    newest: dict[str, Any] = dom.with_attribute("data-kind")[0]
    assert (newest["data-id"], newest["data-status"]) == (op_id, "refused")
    print(f"dc2 healed after {time.monotonic() - started:.0f} s")
    wait_for(lambda: cluster.at_home(), "dc1 active and mirrored to dc2 again", within=60)
    print(f"status page lab test: {time.monotonic() - started:.0f} s")
