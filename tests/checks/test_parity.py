"""Config parity between the datacenters, without servers: files and local commands.

The reads are real (files in a temp dir, processes started with the same code path an
`ssh host zmprov ...` takes); only the values are made up.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.checks import Status, parity, run_checks
from orchestrator.checks.metrics import exposition
from orchestrator.config import InvalidTopology
from orchestrator.config.loader import validate_text
from orchestrator.config.model import Topology
from tests.checks.topologies import topology

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "inventories" / "example-zimbra" / "topology.yaml"


def echo(text: str) -> str:
    """A command printing `text`, as a site's zmprov or postconf would."""
    return shlex.join([sys.executable, "-c", f"print({text!r})"])


def with_parity(tmp_path: Path, *settings: dict[str, Any]) -> Topology:
    return topology(parity=list(settings), base_dir=tmp_path)


def setting(name: str, dc1: dict[str, str], dc2: dict[str, str]) -> dict[str, Any]:
    return {"name": name, "sites": {"dc1": dc1, "dc2": dc2}}


def run(topo: Topology, timeout: float = 5.0) -> list[Any]:
    return [c.run(timeout) for c in parity.checks(topo, timeout)]


MAIN_CF = """# postfix main.cf
message_size_limit = 10240000
smtpd_banner = $myhostname ESMTP
# message_size_limit = 1
message_size_limit = 52428800
virtual_mailbox_maps = texthash:/etc/postfix/vmailbox
"""


@pytest.mark.parametrize(
    ("text", "key", "value"),
    [
        (MAIN_CF, "message_size_limit", "52428800"),  # the later line wins, as in Postfix
        (MAIN_CF, "virtual_mailbox_maps", "texthash:/etc/postfix/vmailbox"),  # ':' in a value
        ("# name default\nzimbraMailTrashLifetime: 30d\n", "zimbraMailTrashLifetime", "30d"),
        ("zimbraMailMessageLifetime:0\n", "zimbraMailMessageLifetime", "0"),
        ("auth_mechanisms = plain login\n", "auth_mechanisms", "plain login"),
        ("empty =\n", "empty", ""),
        ("  10240000  \n", None, "10240000"),  # postconf -h: the whole output is the value
        ("a\nb\n", None, "a\nb"),
    ],
)
def test_a_value_is_picked_from_text(text: str, key: str | None, value: str) -> None:
    assert parity.pick(text, key, "file main.cf") == value


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("# message_size_limit = 5\n", "message_size_limit"),  # commented out
        ("message_size_limit_x = 5\n", "message_size_limit"),  # another key
        ("message_size_limit\n", "message_size_limit"),  # no separator
        ("", "zimbraMailTrashLifetime"),
    ],
)
def test_a_missing_key_is_unreadable_naming_key_and_place(text: str, key: str) -> None:
    with pytest.raises(parity.Unreadable, match=f"no {key} line in file main.cf"):
        parity.pick(text, key, "file main.cf")


U = parity.Unreadable


@pytest.mark.parametrize(
    ("values", "status", "words"),
    [
        ({"dc1": "30d", "dc2": "30d"}, Status.OK, ""),
        ({"dc1": "", "dc2": ""}, Status.OK, ""),
        (
            {"dc1": "30d", "dc2": "60d"},
            Status.DEGRADED,
            "differs between the datacenters: dc1 has '30d', dc2 has '60d'",
        ),
        (
            {"dc1": "30d", "dc2": ""},
            Status.DEGRADED,
            "dc1 has '30d', dc2 has (empty)",
        ),
        ({"dc1": "30d", "dc2": "720h"}, Status.DEGRADED, "dc2 has '720h'"),  # text, not meaning
        (
            {"dc1": "x" * 200, "dc2": "y"},
            Status.DEGRADED,
            "dc1 has '" + "x" * 59 + "…', dc2 has 'y'",
        ),
        (
            {"dc1": "30d", "dc2": U("`ssh mbox1.dc2 zmprov` exited 255: No route to host")},
            Status.DOWN,
            "cannot compare — dc2: `ssh mbox1.dc2 zmprov` exited 255: No route to host",
        ),
        (
            {"dc1": U("cannot read a: gone"), "dc2": U("cannot read b: gone")},
            Status.DOWN,
            "dc1: cannot read a: gone; dc2: cannot read b: gone",
        ),
    ],
)
def test_judging_the_values(values: dict, status: Status, words: str) -> None:
    got, reason, figures = parity.judge(values)
    assert got is status and words in reason, reason
    assert "\n" not in reason
    assert figures == ({} if status is Status.DOWN else {parity.EQUAL: float(status is Status.OK)})


def test_files_and_commands_agreeing_are_ok(tmp_path: Path) -> None:
    (tmp_path / "dc1.cf").write_text(MAIN_CF)
    topo = with_parity(
        tmp_path,
        setting(
            "message_size_limit",
            {"file": "dc1.cf", "key": "message_size_limit"},
            {"command": echo("message_size_limit = 52428800"), "key": "message_size_limit"},
        ),
        setting("trash", {"command": echo("30d")}, {"command": echo("30d")}),
    )
    results = run(topo)
    assert [(r.system, r.site, r.target, r.status) for r in results] == [
        ("parity", None, "setting message_size_limit", Status.OK),
        ("parity", None, "setting trash", Status.OK),
    ]


def test_a_setting_that_differs_names_both_values(tmp_path: Path) -> None:
    (tmp_path / "dc1.cf").write_text("zimbraMailMessageLifetime: 0\n")
    (tmp_path / "dc2.cf").write_text("zimbraMailMessageLifetime: 365d\n")
    key = "zimbraMailMessageLifetime"
    topo = with_parity(
        tmp_path,
        setting("retention", {"file": "dc1.cf", "key": key}, {"file": "dc2.cf", "key": key}),
    )
    (result,) = run(topo)
    assert result.status is Status.DEGRADED
    assert result.reason == "differs between the datacenters: dc1 has '0', dc2 has '365d'"


@pytest.mark.parametrize(
    ("dc2", "words"),
    [
        ({"file": "absent.cf"}, "dc2: cannot read absent.cf: No such file or directory"),
        ({"file": "dc1.cf", "key": "nope"}, "dc2: no nope line in file dc1.cf"),
        (
            {"command": shlex.join([sys.executable, "-c", "import sys; sys.exit('denied\\n')"])},
            "exited 1: denied",
        ),
        ({"command": "/nonexistent/zmprov gcf x"}, "cannot run `/nonexistent/zmprov gcf x`"),
        ({"command": "zmprov 'unbalanced"}, "cannot split `zmprov 'unbalanced`"),
    ],
)
def test_an_unreadable_site_is_down_with_the_reason(
    tmp_path: Path, dc2: dict[str, str], words: str
) -> None:
    (tmp_path / "dc1.cf").write_text("x = 1\n")
    topo = with_parity(tmp_path, setting("x", {"file": "dc1.cf", "key": "x"}, dc2))
    (result,) = run(topo)
    assert result.status is Status.DOWN and words in result.reason, result.reason
    assert result.reason.startswith("cannot compare — ") and "\n" not in result.reason


def test_a_datacenter_without_a_source_and_a_witness_source_are_named(tmp_path: Path) -> None:
    topo = with_parity(
        tmp_path,
        {"name": "x", "sites": {"dc1": {"command": echo("1")}, "witness": {"command": echo("1")}}},
    )
    (result,) = run(topo)
    assert result.status is Status.DOWN
    assert "dc2: no source for dc2 — add parity[x].sites.dc2" in result.reason
    assert "witness: witness is not a datacenter — name only dc1, dc2" in result.reason


def test_hung_commands_are_cut_at_the_timeout_and_both_sites_read_at_once(tmp_path: Path) -> None:
    hang = shlex.join([sys.executable, "-c", "import time; time.sleep(60)"])
    topo = with_parity(tmp_path, setting("x", {"command": hang}, {"command": hang}))
    started = time.monotonic()
    (result,) = run(topo, timeout=1.5)
    took = time.monotonic() - started
    assert result.status is Status.DOWN
    assert result.reason == (
        f"cannot compare — dc1: `{hang}` did not finish within 1.5 s; "
        f"dc2: `{hang}` did not finish within 1.5 s"
    )
    # One after the other would take 3 s or more.
    assert took < 2.8, took


def test_a_hung_command_whose_child_escaped_the_kill_still_ends_in_bounded_time(
    tmp_path: Path,
) -> None:
    """A command that left a process in a session of its own (a daemonizing ssh) with
    its output pipes: killing the command's group cannot reach that process, and reading
    the pipes to their end would wait for it, the check's thread and both pipes held
    as long (leaked, in a long-running controller). The read gives up on them."""
    pid_file = tmp_path / "escaped.pid"
    script = (
        "import subprocess, sys, time; "
        "p = subprocess.Popen(['sleep', '60'], start_new_session=True); "
        f"open({str(pid_file)!r}, 'w').write(str(p.pid)); time.sleep(60)"
    )
    command = shlex.join([sys.executable, "-c", script])
    outcome: list[object] = []

    def read() -> None:
        try:
            parity.run_command(command, tmp_path, timeout=1.0)
        except parity.Unreadable as exc:
            outcome.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    started = time.monotonic()
    try:
        reader.start()
        reader.join(timeout=10)
        took = time.monotonic() - started
        assert not reader.is_alive(), "still waiting for the escaped process's pipes"
        assert [str(e) for e in outcome] == [f"`{command}` did not finish within 1 s"]
        assert took < 4, took
    finally:
        if pid_file.exists():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid_file.read_text()), signal.SIGKILL)


def test_parity_is_part_of_the_sweep_and_its_metrics(tmp_path: Path) -> None:
    topo = with_parity(
        tmp_path,
        setting("same", {"command": echo("1")}, {"command": echo("1")}),
        setting("other", {"command": echo("1")}, {"command": echo("2")}),
    )
    sweep = run_checks(topo, ["parity"], timeout=5)
    assert [(r.target, r.status) for r in sweep.results] == [
        ("setting same", Status.OK),
        ("setting other", Status.DEGRADED),
    ]
    assert sweep.worst() is Status.DEGRADED
    text = exposition(sweep)
    assert 'sitectl_config_parity_equal{setting="same"} 1.0' in text
    assert 'sitectl_config_parity_equal{setting="other"} 0.0' in text
    assert 'sitectl_check_status{site="",system="parity",target="setting other"} 1.0' in text


def test_no_parity_section_means_no_parity_results() -> None:
    assert run_checks(topology(), ["parity"]).results == ()


@pytest.mark.parametrize(
    ("source", "words"),
    [
        ({"key": "x"}, "exactly one of 'file' or 'command'"),
        ({"file": "a", "command": "b"}, "exactly one of 'file' or 'command'"),
        ({"command": "b", "shell": True}, "shell"),
    ],
)
def test_a_bad_parity_source_is_one_line_naming_the_field(source: dict, words: str) -> None:
    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    data["parity"] = [{"name": "x", "sites": {"dc1": {"command": "echo 1"}, "dc2": source}}]
    with pytest.raises(InvalidTopology) as raised:
        validate_text(yaml.safe_dump(data), "t.yaml", base_dir=EXAMPLE.parent)
    lines = str(raised.value).splitlines()
    assert len(lines) == 1 and lines[0].startswith("t.yaml:"), lines
    assert "parity.0.sites.dc2" in lines[0] and words in lines[0], lines


def test_the_example_compares_retention_settings() -> None:
    topo = validate_text(EXAMPLE.read_text(encoding="utf-8"), str(EXAMPLE), base_dir=EXAMPLE.parent)
    names = [s.name for s in topo.parity]
    assert "message lifetime (retention)" in names
    assert all(set(s.sites) == {"dc1", "dc2"} for s in topo.parity)
