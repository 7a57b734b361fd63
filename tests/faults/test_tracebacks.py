"""Issue 8, R8: an unexpected traceback from `sitectl` shows no local variable's value.

Typer prints uncaught exceptions with rich, which can list every frame's locals; a
command holding a secret it read (a TSIG secret, a password) would print it. The real
`sitectl` app, with one extra command that holds a canary in a local and then fails
unexpectedly, is run as a process; a control with locals switched on proves the canary
would be seen if they were shown.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

import pytest

SCRIPT = """
import os
import sys
from orchestrator.cli.main import app

app.pretty_exceptions_show_locals = {show} or app.pretty_exceptions_show_locals

@app.command("r8-explode")
def explode() -> None:
    tsig_secret = os.environ["R8_CANARY"]  # as a command holds a secret it has read
    raise RuntimeError("an unexpected failure, not a SitectlError")

sys.argv = ["sitectl", "r8-explode"]
app()
"""


def _crash(canary: str, show: bool) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TYPER_", "_TYPER_"))}
    return subprocess.run(
        [sys.executable, "-c", SCRIPT.format(show=show)],
        capture_output=True,
        text=True,
        # From the environment, so no source line shown in the traceback can hold it.
        env={**env, "COLUMNS": "200", "R8_CANARY": canary},
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("show", [False, True], ids=["sitectl", "control-with-locals"])
def test_an_unexpected_traceback_shows_no_local_values(show: bool) -> None:
    canary = "r8-" + secrets.token_hex(16)
    done = _crash(canary, show)

    # A traceback was printed (the test is about what it shows, not whether it exists).
    assert done.returncode == 1, done.stderr
    assert "RuntimeError" in done.stderr and "an unexpected failure" in done.stderr
    assert "explode" in done.stderr, done.stderr
    output = done.stdout + done.stderr
    if show:  # the control: with locals on, the same crash prints the value
        assert canary in output, done.stderr
    else:
        assert canary not in output, "a local's value is in the traceback:\n" + done.stderr
