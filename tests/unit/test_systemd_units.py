"""The systemd units in contrib/, checked offline by systemd's own tools (no running
systemd needed): `systemd-analyze verify` finds nothing to say, the controller's
`systemd-analyze security` exposure is at most 2.0, and the dead-man agent's unit holds
none of the settings that would make its fence a no-op on the host."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

CONTRIB = Path(__file__).resolve().parents[2] / "contrib"
CONTROLLER = CONTRIB / "sitectl-controller@.service"
DEADMAN = CONTRIB / "sitectl-deadman@.service"
INSTALLED = "/opt/sitectl/venv/bin/sitectl"  # docs/operators-guide.md installs it there
MAX_EXPOSURE = 2.0
ANALYZE = shutil.which("systemd-analyze")


def directives(unit: Path) -> list[tuple[str, str]]:
    """(key, value) of every setting, in order, comments and sections left out."""
    pairs = []
    for line in unit.read_text().splitlines():
        if line and line[0] not in "#;[" and "=" in line:
            key, _, value = line.partition("=")
            pairs.append((key.strip(), value.strip()))
    return pairs


def instance(unit: Path, tmp_path: Path) -> Path:
    """The template as the instance for dc1, its ExecStart's program an executable stub
    at a path that exists here (verify checks that it does)."""
    stub = tmp_path / "bin" / "sitectl"
    stub.parent.mkdir(exist_ok=True)
    stub.write_text("#!/bin/sh\n")
    stub.chmod(0o755)
    copy = tmp_path / unit.name.replace("@.", "@dc1.")
    copy.write_text(unit.read_text().replace(INSTALLED, str(stub)))
    return copy


def analyze(*args: str) -> subprocess.CompletedProcess[str]:
    assert ANALYZE is not None, "systemd-analyze is missing: scripts/install installs systemd"
    return subprocess.run([ANALYZE, *args], capture_output=True, text=True, timeout=60, check=False)


def exposure(output: str) -> float:
    found = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", output)
    assert found, f"no overall exposure in systemd-analyze's output:\n{output}"
    return float(found[1])


@pytest.mark.parametrize("unit", [CONTROLLER, DEADMAN], ids=lambda u: u.name)
def test_systemd_finds_nothing_to_say_about_the_unit(unit: Path, tmp_path: Path) -> None:
    done = analyze("verify", str(instance(unit, tmp_path)))
    said = (done.stdout + done.stderr).strip()
    assert done.returncode == 0 and not said, f"systemd-analyze verify {unit.name}:\n{said}"


def test_the_controller_is_sandboxed_to_an_exposure_of_at_most_2(tmp_path: Path) -> None:
    done = analyze("security", "--offline=true", str(instance(CONTROLLER, tmp_path)))
    assert done.returncode == 0, done.stderr
    score = exposure(done.stdout)
    assert score <= MAX_EXPOSURE, (
        f"{CONTROLLER.name}: exposure {score} > {MAX_EXPOSURE}; what systemd-analyze "
        f"holds against it:\n{done.stdout}"
    )


# Settings that give a process a mount namespace of its own (an unmount there is not
# the host's: systemd.exec(5), MountFlags=) or that a restored application started by
# the agent would inherit (a setuid launcher, a privileged port). See the unit's header.
NOT_FOR_THE_AGENT = {
    "ProtectSystem", "ProtectHome", "PrivateTmp", "PrivateDevices", "PrivateMounts",
    "PrivateUsers", "ReadWritePaths", "ReadOnlyPaths", "InaccessiblePaths", "TemporaryFileSystem",
    "BindPaths", "BindReadOnlyPaths", "ProtectKernelTunables", "ProtectKernelModules",
    "ProtectKernelLogs", "ProtectControlGroups", "ProtectProc", "ProcSubset", "RootDirectory",
    "RootImage", "MountFlags", "NoNewPrivileges", "CapabilityBoundingSet", "SystemCallFilter",
    "RestrictSUIDSGID", "MemoryDenyWriteExecute", "RestrictAddressFamilies", "DynamicUser",
    "ProtectClock", "PrivateNetwork", "IPAddressDeny", "RestrictNamespaces",
}  # fmt: skip


def test_the_agent_keeps_the_hosts_mounts_and_its_childrens_powers() -> None:
    found = {key for key, _ in directives(DEADMAN)} & NOT_FOR_THE_AGENT
    assert not found, (
        f"{DEADMAN.name} sets {', '.join(sorted(found))}: the agent's unmount would not "
        "reach the host's mounts, or a restored application would inherit the limit"
    )
    assert ("KillMode", "process") in directives(DEADMAN), (
        "a restart of the agent must not kill the application a restore started from it"
    )


@pytest.mark.parametrize("unit", [CONTROLLER, DEADMAN], ids=lambda u: u.name)
def test_each_unit_is_a_watched_notify_service_of_the_installed_package(unit: Path) -> None:
    settings = dict(directives(unit))
    assert settings["Type"] == "notify", "READY=1 comes from orchestrator/sdnotify.py"
    assert float(settings["WatchdogSec"]) > 15, "a fence action may take 15 s between pets"
    assert settings["ExecStart"].startswith(INSTALLED + " ")
    assert any(key == "EnvironmentFile" for key, _ in directives(unit))


@pytest.mark.parametrize("unit", [CONTROLLER, DEADMAN], ids=lambda u: u.name)
def test_each_secret_on_the_command_line_is_a_credential_the_unit_loads(unit: Path) -> None:
    loaded = {v.partition(":")[0] for k, v in directives(unit) if k == "LoadCredential"}
    used = set(re.findall(r"%d/([\w.-]+)", dict(directives(unit))["ExecStart"]))
    assert used and used == loaded, f"ExecStart reads {used}, LoadCredential= loads {loaded}"
