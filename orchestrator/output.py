"""How commands speak: JSON for scripts, rich tables for people, errors as one line each."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from typing import Any, NoReturn

import typer
from rich.console import Console

from orchestrator.exitcodes import ExitCode

# soft_wrap: a log line or an error must stay one line. emoji=False: "topology.yaml:100:"
# must not become an emoji (rich reads ":100:" as one).
console = Console(highlight=False, soft_wrap=True, emoji=False)
err_console = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)


def emit_json(data: Any) -> None:
    # Plain print, not rich: JSON must stay byte-exact for scripts and pipes.
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False) + "\n")


def fail(lines: Iterable[str] | str, code: ExitCode) -> NoReturn:
    for line in [lines] if isinstance(lines, str) else lines:
        # markup=False: messages quote file content, which may contain [brackets].
        err_console.print(line, markup=False, soft_wrap=True)
    raise typer.Exit(int(code))
