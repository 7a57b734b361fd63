"""The `sitectl` command tree as click sees it, for tests that must cover every verb:
a verb added later is covered without touching the tests."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import typer

from orchestrator.cli.main import app

# Typer's own, on the root only: not sitectl's to document.
COMPLETION_OPTIONS = frozenset({"--install-completion", "--show-completion"})


@dataclass(frozen=True)
class Verb:
    path: tuple[str, ...]  # e.g. ("drill", "history")
    command: Any  # a click command (typer vendors click, so no isinstance check)
    runs_something: bool  # a leaf, or a group whose callback does work (`drill`)

    @property
    def name(self) -> str:
        return " ".join(self.path)

    def options(self) -> list[str]:
        """Every option's long name (or its only name), without --help."""
        names = []
        for param in self.command.params:
            if param.param_type_name != "option":
                continue
            flags = [*param.opts, *param.secondary_opts]
            long = [f for f in flags if f.startswith("--")]
            names.append(long[0] if long else flags[0])
        return [n for n in names if n != "--help" and n not in COMPLETION_OPTIONS]


def verbs() -> Iterator[Verb]:
    yield from _walk(typer.main.get_command(app), ())


def _walk(command: Any, path: tuple[str, ...]) -> Iterator[Verb]:
    children = getattr(command, "commands", None)
    if children is None:
        yield Verb(path, command, runs_something=True)
        return
    if path:
        # A group "runs something" when its callback takes options of its own.
        yield Verb(path, command, runs_something=bool(Verb(path, command, False).options()))
    for name, child in children.items():
        yield from _walk(child, (*path, name))
