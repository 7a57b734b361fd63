"""`sitectl` imports a verb's module only when that verb runs (orchestrator/cli/lazy.py):
the table main.py lists the verbs from agrees with the real commands, listing them imports
none, and the everyday verbs do not import the engine, the controller daemon,
ansible-runner or boto3 (figures in BENCHMARKS.md; no timing is asserted here)."""

from __future__ import annotations

import importlib
import inspect
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from orchestrator.cli import failures
from orchestrator.cli.main import VERBS, app
from orchestrator.engine.exits import PlanChanged
from orchestrator.engine.session import OperationPending
from orchestrator.errors import ConfigError, LeaseLost, Locked, SitectlError, Unavailable
from orchestrator.plan import PlanRefused
from orchestrator.records import Mode, OperationRecord

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "inventories/example-zimbra/topology.yaml"
HEAVY = (
    "orchestrator.engine.operation",
    "orchestrator.engine.executor",
    "orchestrator.controller.daemon",
    "ansible_runner",
    "boto3",
)
VERB_MODULES = sorted({verb.module for verb in VERBS.values()})


def _first_paragraph(help_text: str | None) -> str:
    return inspect.cleandoc(help_text or "").split("\n\n")[0]


@pytest.mark.parametrize("module", VERB_MODULES)
def test_the_table_lists_each_verb_as_its_module_registers_it(module: str) -> None:
    sub = typer.Typer()
    importlib.import_module(module).register(sub)
    registered = typer.main.get_group(sub).commands
    in_table = {name for name, verb in VERBS.items() if verb.module == module}
    assert set(registered) == in_table, f"update VERBS in orchestrator/cli/main.py for {module}"
    for name, command in registered.items():
        assert _first_paragraph(command.help) == VERBS[name].summary, (
            f"{name}: VERBS' summary in orchestrator/cli/main.py must be its help's first "
            "paragraph, as `sitectl --help` lists it"
        )
        # What the listing would show beyond name and help, which the table does not hold.
        assert not command.hidden and not command.deprecated and command.short_help is None
        assert not getattr(command, "rich_help_panel", None)


def _help(group: Any) -> str:
    with CliRunner().isolation() as (out, _, _):
        group.main(["--help"], prog_name="sitectl", standalone_mode=False)
        return out.getvalue().decode()


def test_the_listing_from_the_table_is_the_listing_of_the_loaded_commands() -> None:
    group = typer.main.get_command(app)
    from_table = _help(group)
    loaded = dict(group.commands.items())  # walking every verb imports every module
    assert list(loaded) == list(VERBS)
    assert _help(group) == from_table
    # Completing a verb's name shows the same one line as the loaded command would.
    ctx = group.make_context("sitectl", [], resilient_parsing=True)
    fresh = typer.main.get_command(app)
    assert [(c.value, c.help) for c in fresh.shell_complete(ctx, "")] == [
        (name, command.get_short_help_str()) for name, command in loaded.items()
    ]


def _loaded_by(args: list[str]) -> list[str]:
    """Which modules `sitectl ARGS` imported, in a fresh interpreter."""
    script = (
        "import json, sys\n"
        "from orchestrator.cli.main import app\n"
        "try:\n"
        "    app(sys.argv[1:])\n"
        "except SystemExit:\n"
        "    pass\n"
        "sys.stderr.write('\\nMODULES ' + json.dumps(sorted(sys.modules)) + '\\n')\n"
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )
    line = done.stderr.rsplit("\nMODULES ", 1)[-1]
    return json.loads(line)


@pytest.mark.parametrize(
    "args",
    [
        ["--version"],
        ["--help"],
        ["validate", "-c", str(EXAMPLE)],
        ["status", "--help"],
        # Fails on the credentials it lacks, after importing all that reading needs.
        ["status", "-c", str(EXAMPLE)],
        ["health", "--help"],
        # The start gate before every application role start (a systemd ExecStartPre=).
        ["ticket", "check", "dc1", "-c", str(EXAMPLE)],
        ["lab", "--help"],
    ],
    ids=" ".join,
)
def test_everyday_verbs_import_nothing_heavy(args: list[str]) -> None:
    loaded = _loaded_by(args)
    assert [m for m in HEAVY if m in loaded] == []


@pytest.mark.parametrize("args", [["--version"], ["--help"]], ids=" ".join)
def test_the_root_alone_imports_no_verb_and_no_topology_code(args: list[str]) -> None:
    loaded = _loaded_by(args)
    assert [m for m in loaded if m in VERB_MODULES or m.startswith("orchestrator.config")] == []


# What the lab's lifecycle brings in (every server's client) and its network verbs never use.
LAB_SERVERS = ("orchestrator.lab.lifecycle", "orchestrator.config", "ldap3", "dns", "jinja2")


@pytest.mark.parametrize(
    "args",
    [
        # No lab in the checkout's .lab: each fails after importing all it would use.
        ["lab", "exec", "dc1", "--", "true", "--state-dir", "/nonexistent"],
        ["lab", "partition", "dc1", "--state-dir", "/nonexistent"],
        ["lab", "heal-network", "--state-dir", "/nonexistent"],
    ],
    ids=" ".join,
)
def test_the_labs_network_verbs_import_no_servers_client(args: list[str]) -> None:
    """Scenarios poll `lab exec` several times a second while they time a fence."""
    loaded = _loaded_by(args)
    assert [m for m in loaded if m.split(".")[0] in LAB_SERVERS or m in LAB_SERVERS] == []
    assert "orchestrator.lab.links" in loaded


def _outcome(errors: Callable[[], Any], exc: Exception, capsys: Any) -> tuple[int, str]:
    with pytest.raises(typer.Exit) as exited, errors():
        raise exc
    return exited.value.exit_code, capsys.readouterr().err


PENDING = OperationPending(
    OperationRecord(
        id="20261122T140000Z-ab12",
        mode=Mode.SWITCHOVER,
        from_site="dc1",
        to_site="dc2",
        started=1000.0,
        by="ops",
        host="box",
        reason="test",
        automatic=False,
        plan_digest="sha256:0",
    )
)


@pytest.mark.parametrize(
    ("exc", "code", "line"),
    [
        (PlanRefused("no such site", gate=False), 2, "refused: no such site"),
        (PlanRefused("dc2 is behind", gate=True), 4, "refused: dc2 is behind"),
        (Locked("held by ops@box"), 3, "busy: another operation holds the lock: held by ops@box"),
        (PENDING, 3, f"busy: {PENDING}"),
        (PlanChanged("not the plan you confirmed"), 5, "refused: not the plan you confirmed"),
        (ConfigError("bad"), 2, "refused: bad"),
        (
            LeaseLost("session expired"),
            1,
            "stopped: session expired. The operation stays recorded in ZooKeeper; the next "
            "leader or `sitectl resume` continues it.",
        ),
        (Unavailable("ZooKeeper did not answer"), 1, "unavailable: ZooKeeper did not answer"),
        (SitectlError("something else"), 1, "failed: something else"),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Exception) else str(v)[:12],
)
def test_a_failure_is_one_line_and_the_exit_code_a_script_acts_on(
    exc: Exception, code: int, line: str, capsys: Any
) -> None:
    """What `sitectl status`, `history` and the operations (here or answered by the
    controller, engine/exits.py) print and exit with when a command fails."""
    assert _outcome(failures.engine_errors, exc, capsys) == (code, line + "\n")
