"""A typer group that imports a verb's module only when that verb runs (or shows its help).

Importing every verb module cost each `sitectl` command ≈ 0.75 s before it did anything
(the engine, the controller daemon, ansible-runner, boto3, ldap3…), a price `--version`,
`validate` or `status` paid for nothing. The root group instead holds a table: each
verb's name, the module whose `register(app)` adds it, and the one-line help that
`sitectl --help` lists, so listing the verbs imports none of them
(tests/unit/test_lazy_cli.py fails when the table and the real commands disagree).

Everything click and typer do with a group goes through `commands`, a mapping that
imports a module the first time one of its verbs is looked up: running, `VERB --help`,
completion of a verb's options, a typo's "Did you mean" (names only: nothing imported).
Walking `commands.items()` (the tests' tree of every verb) imports them all.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

import typer
from typer.core import TyperCommand, TyperGroup

# Click's classes here are typer's private vendored copy (typer._click), so commands,
# contexts and formatters are typed Any rather than tied to that private module.


@dataclass(frozen=True)
class Verb:
    module: str  # its `register(app)` adds this verb (and maybe others) to a typer app
    summary: str  # the first paragraph of its help: what `sitectl --help` lists
    optional: bool = False  # the module may be absent (the lab, in a slim install)


class _LazyCommands(MutableMapping[str, Any]):
    """click's `Group.commands`, filled on demand. Keys are known without imports."""

    def __init__(self, group: LazyGroup, eager: MutableMapping[str, Any]) -> None:
        self._group = group
        self._loaded: dict[str, Any] = dict(eager)
        self._modules_tried: set[str] = set()
        self._absent: set[str] = set()  # optional modules that could not be imported

    def __getitem__(self, name: str) -> Any:
        if name not in self._loaded and name in self._group.verbs:
            self._load(self._group.verbs[name])
        return self._loaded[name]

    def _load(self, verb: Verb) -> None:
        if verb.module in self._modules_tried:
            return
        self._modules_tried.add(verb.module)
        try:
            module = importlib.import_module(verb.module)
        except ImportError:
            if not verb.optional:
                raise
            self._absent.add(verb.module)
            return  # as before: an optional verb that cannot be imported is not a verb
        # A throwaway app with the root's settings: typer turns what `register` added
        # into click commands exactly as it did when every module registered on the root.
        sub = typer.Typer(
            rich_markup_mode=self._group.rich_markup_mode,
            suggest_commands=self._group.suggest_commands,
        )
        module.register(sub)
        for name, command in typer.main.get_group(sub).commands.items():
            self._loaded.setdefault(name, command)

    def __setitem__(self, name: str, command: Any) -> None:
        self._loaded[name] = command

    def __delitem__(self, name: str) -> None:
        del self._loaded[name]

    def __iter__(self) -> Iterator[str]:
        yield from (name for name in self._group.verbs if self._available(name))
        yield from (name for name in self._loaded if name not in self._group.verbs)

    def _available(self, name: str) -> bool:
        """An optional verb whose module is absent is not a verb (found without importing)."""
        verb = self._group.verbs[name]
        if not verb.optional or name in self._loaded:
            return True
        if verb.module in self._absent:
            return False
        try:
            return importlib.util.find_spec(verb.module) is not None
        except ModuleNotFoundError:  # its package is absent too
            return False

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        return name in self._loaded or (name in self._group.verbs and self._available(name))

    def summary(self, name: str) -> Any:
        """What a listing shows for `name`: the loaded command, else one made from the
        table (name and one-line help), so listing imports nothing."""
        if name in self._loaded:
            return self._loaded[name]
        if name not in self:
            return None
        return TyperCommand(name=name, help=self._group.verbs[name].summary)


class LazyGroup(TyperGroup):
    """The root group; a subclass sets `verbs` (typer builds the group from `cls=`)."""

    verbs: ClassVar[dict[str, Verb]] = {}

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.commands = _LazyCommands(self, self.commands)
        self._listing = False

    def list_commands(self, ctx: Any) -> list[str]:
        # typer's walks `commands.items()`, which would import every verb.
        return list(self.commands)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if self._listing:
            assert isinstance(self.commands, _LazyCommands)
            return self.commands.summary(cmd_name)
        return super().get_command(ctx, cmd_name)

    @contextmanager
    def _summaries(self) -> Iterator[None]:
        """While the root lists its verbs (help, completing a verb's name), a verb is
        its name and one line: nothing imported."""
        self._listing = True
        try:
            yield
        finally:
            self._listing = False

    def format_help(self, ctx: Any, formatter: Any) -> None:
        with self._summaries():
            super().format_help(ctx, formatter)

    def shell_complete(self, ctx: Any, incomplete: str) -> list[Any]:
        with self._summaries():
            return super().shell_complete(ctx, incomplete)
