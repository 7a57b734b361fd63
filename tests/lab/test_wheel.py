"""sitectl as a new user gets it (issue 21, item 1): a wheel built from the package alone
(pyproject.toml, README.md, LICENSE and orchestrator/: nothing else of the checkout),
installed into a fresh venv outside the checkout without extras. It holds its playbooks
and its licence, pulls in no test and no NetApp dependency, knows its version, names the
extra a NetApp topology needs, and from a directory outside the checkout validates,
plans and switches the lab over with its own installed playbooks (the lab's topology
sets no playbook_dir).

Nothing is downloaded: the lab's tests run in a network namespace that reaches no
package index. The dependencies and the build backend come from the wheelhouse
scripts/install fills beside the venv (`.venv/wheelhouse`, refilled with pyproject.toml);
the venv and the wheel are new every run."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from email.parser import Parser
from pathlib import Path

import pytest
import yaml

from tests.conftest import LabHandle

pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "inventories" / "example-zimbra"
# What the wheel is built from: the package and the files pyproject.toml names.
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "orchestrator")
# Filled by scripts/install; $SITECTL_WHEELHOUSE names another (a worktree's tests run
# from a venv whose wheelhouse its own checkout filled).
WHEELHOUSE = Path(os.environ.get("SITECTL_WHEELHOUSE", Path(sys.prefix) / "wheelhouse"))
OFFLINE = ("--no-index", "--find-links", str(WHEELHOUSE))
# Extras' packages a plain install must not bring: ansible (400 MB, the netapp extra's;
# ansible-core is a dependency of sitectl itself), the test tools, moto (the lab's).
EXTRAS_ONLY = {"ansible", "pytest", "pytest-timeout", "hypothesis", "moto", "ruff", "ansible-lint"}
# Inside the wheel: the playbooks and Ansible plugins runtime needs, and the licence.
SHIPPED = {
    "orchestrator/playbooks/app.yml",
    "orchestrator/playbooks/volume.yml",
    "orchestrator/playbooks/dns-role.yml",
    "orchestrator/playbooks/custom.yml",
    "orchestrator/playbooks/tasks/netapp.yml",
    "orchestrator/playbooks/action_plugins/sitectl_lease.py",
    "orchestrator/playbooks/library/sitectl_epoch.py",
    "orchestrator/adapters/ansible_action/sitectl_gate.py",
}
PIP_TIMEOUT_S = 600
# A directory of sitectl's playbooks, as a run's files name it.
PLAYBOOK_DIR = re.compile(r"[\w./-]*/orchestrator/playbooks(?=/)")


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path
    home: Path  # an empty working directory outside the checkout

    @property
    def sitectl(self) -> Path:
        return self.venv / "bin" / "sitectl"

    def env(self) -> dict[str, str]:
        """The environment of a user who installed sitectl: none of this session's
        PYTHONPATH (a worktree's code) or topology, its venv first on PATH, and no
        Ansible collection but those installed into that venv."""
        env = _user_env()
        env["PATH"] = f"{self.venv / 'bin'}:{os.environ.get('PATH', '')}"
        env["ANSIBLE_COLLECTIONS_PATH"] = str(self.home / "no-collections")
        return env

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.sitectl), *args],
            cwd=self.home,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )


def _user_env() -> dict[str, str]:
    """This session's environment less what would make another Python see the checkout
    (PYTHONPATH: a worktree's code, and a sitectl pip would take as installed)."""
    drop = {"PYTHONPATH", "SITECTL_CONFIG", "VIRTUAL_ENV"}
    return {k: v for k, v in os.environ.items() if k not in drop}


def _pip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pip", *args],
        cwd="/",  # not the checkout: a sitectl.egg-info there would pass for installed
        env=_user_env(),
        capture_output=True,
        text=True,
        timeout=PIP_TIMEOUT_S,
        check=False,
    )


def _build_wheel(work: Path) -> Path:
    source = work / "source"
    source.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=ignore)
        else:
            shutil.copy(ROOT / name, source / name)
    # The build backend (setuptools, wheel) from the wheelhouse too: --no-index holds
    # for the isolated build environment pip makes.
    built = _pip("wheel", "--no-deps", "-q", *OFFLINE, "-w", str(work / "dist"), str(source))
    assert built.returncode == 0, built.stderr
    (wheel,) = (work / "dist").glob("sitectl-*.whl")
    return wheel


def _install(wheel: Path, venv: Path) -> None:
    """`wheel` and its dependencies (no extras) into a new `venv`, from the wheelhouse."""
    # No pip in it: this venv's pip installs into it (--python), which saves an ensurepip.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    # Compiled, as pip does by default: where PYTHONDONTWRITEBYTECODE is set (CI images),
    # every ansible-playbook of the switchover below would otherwise compile
    # ansible-core again.
    done = _pip("--python", python, "install", "-q", *OFFLINE, str(wheel))
    assert done.returncode == 0, (
        f"{done.stderr}\n(the wheelhouse {WHEELHOUSE} lacks a dependency: run scripts/install)"
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    work = tmp_path_factory.mktemp("wheel")
    started = time.monotonic()
    wheel = _build_wheel(work)
    _install(wheel, work / "venv")
    home = work / "home"
    (home / "no-collections").mkdir(parents=True)
    print(f"wheel built and installed in {time.monotonic() - started:.0f} s")
    yield Installed(wheel, work / "venv", home)


def _files(root: Path) -> dict[str, int]:
    """Every file under `root` and its size: what a refused command must not change."""
    return {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*") if p.is_file()}


def _requires(wheel: Path) -> list[str]:
    """The wheel's Requires-Dist lines without an extra's marker."""
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        metadata = Parser().parsestr(archive.read(name).decode())
    return [r for r in metadata.get_all("Requires-Dist") or [] if "extra ==" not in r]


def test_the_wheel_holds_the_playbooks_and_the_licence_and_installs_no_extra(
    installed: Installed,
) -> None:
    with zipfile.ZipFile(installed.wheel) as archive:
        names = set(archive.namelist())
    assert names >= SHIPPED, sorted(SHIPPED - names)
    licence = next(n for n in names if n.endswith(".dist-info/licenses/LICENSE"))
    with zipfile.ZipFile(installed.wheel) as archive:
        assert archive.read(licence) == (ROOT / "LICENSE").read_bytes()
    assert b"Apache License" in (ROOT / "LICENSE").read_bytes()[:200]
    declared = {
        r.split(";")[0].split("<")[0].split(">")[0].strip() for r in _requires(installed.wheel)
    }
    assert "ansible-core" in declared and not declared & {"ansible", "requests"}, declared

    listed = _pip("--python", str(installed.venv / "bin" / "python"), "list", "--format=json")
    assert listed.returncode == 0, listed.stderr
    present = {p["name"].lower() for p in json.loads(listed.stdout)}
    assert {"sitectl", "ansible-core", "ansible-runner"} <= present, present
    assert not present & EXTRAS_ONLY, sorted(present & EXTRAS_ONLY)


def test_the_installed_sitectl_knows_its_version(installed: Installed) -> None:
    """From the package's metadata. (That the code it runs is its own, not the
    checkout's: the lab test below finds every playbook it ran inside the venv.)"""
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    said = installed.run("--version")
    assert said.returncode == 0, said.stderr
    assert said.stdout.strip() == f"sitectl {version}"


def test_a_netapp_topology_is_refused_naming_the_extra_it_needs(
    installed: Installed, tmp_path: Path
) -> None:
    """The example's volumes are netapp ones: without sitectl[netapp] there is no
    netapp.ontap collection for their playbook, which validate says in one line."""
    example = tmp_path / "example"
    shutil.copytree(EXAMPLE, example)
    refused = installed.run("validate", "-c", str(example / "topology.yaml"))
    assert refused.returncode == 2, refused.stdout + refused.stderr
    (line,) = refused.stderr.strip().splitlines()
    assert line.startswith(f"{example / 'topology.yaml'}:"), line
    assert ": volumes.0.driver: the netapp driver needs the netapp.ontap collection" in line
    assert line.endswith("— pip install 'sitectl[netapp]'"), line


def test_the_installed_sitectl_moves_the_lab_with_its_own_playbooks(
    installed: Installed, lab: LabHandle
) -> None:
    topology = Path(lab.env["topology"])
    assert "playbook_dir" not in yaml.safe_load(topology.read_text())["ansible"]
    standby = lab.standby_site()
    try:
        valid = installed.run("validate", "-c", str(topology))
        assert valid.returncode == 0 and ": valid — " in valid.stdout, valid.stderr
        planned = installed.run("plan", "--to", standby, "--json", "-c", str(topology))
        assert planned.returncode == 0, planned.stderr
        assert json.loads(planned.stdout)["to_site"] == standby

        # A copy beside it (its paths are relative) whose playbook_dir does not exist:
        # refused in one line, nothing recorded (every verb loads as validate does).
        records = lab.state_dir / "sitectl"  # the lab topology's local_state
        before = _files(records)
        broken = topology.with_name("topology-no-playbooks.yaml")
        data = yaml.safe_load(topology.read_text())
        data["ansible"]["playbook_dir"] = "/nonexistent"
        broken.write_text(yaml.safe_dump(data, sort_keys=False))
        broken.chmod(0o644)
        try:
            refused = installed.run("validate", "-c", str(broken))
        finally:
            broken.unlink()
        assert refused.returncode == 2, refused.stdout + refused.stderr
        (line,) = refused.stderr.strip().splitlines()
        assert line.startswith(f"{broken}:"), line
        assert ": ansible.playbook_dir: directory /nonexistent does not exist — " in line
        assert _files(records) == before

        moved = installed.run(
            "switchover",
            "--to",
            standby,
            "--yes",
            "--reason",
            "installed wheel",
            "--json",
            "-c",
            str(topology),
            timeout=300,
        )
        assert moved.returncode == 0, moved.stdout[-3000:] + moved.stderr[-3000:]
        status = installed.run("status", "--json", "-c", str(topology))
        assert json.loads(status.stdout)["active_site"] == standby, status.stdout + status.stderr
        # Every ansible-playbook run was of the venv's own copy of the playbooks: named
        # in the runs' command lines and in the batches' composite playbooks.
        ours = next(installed.venv.glob("lib/python3*/site-packages/orchestrator/playbooks"))
        named = {
            found
            for path in records.rglob("*")
            if path.name in {"command", "batch.yml"} and path.is_file()
            for found in PLAYBOOK_DIR.findall(path.read_text(errors="replace"))
        }
        assert named == {str(ours)}, named
    finally:
        lab.renew()
