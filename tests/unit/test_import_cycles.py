"""No import cycle in orchestrator/: between modules, nor between subpackages.

Every import counts, wherever it is written (a function body, `if TYPE_CHECKING:`): a
cycle that only type checkers follow still ties two modules into one to read and change.
A package's `__init__` re-exporting its own modules is not a cycle of its package.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "orchestrator"


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted((ROOT / PACKAGE).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _imported(module: str, path: Path, known: dict[str, Path]) -> Iterator[str]:
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            # `from pkg import module` imports the module; `from module import name`, the module.
            names = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                for alias in node.names
            ]
        else:
            continue
        for name in names:
            while name and name not in known:  # `import a.b.c` of a module a.b.c, or a name
                name = name.rpartition(".")[0]
            if name.startswith(PACKAGE + ".") and name != module:
                yield name


def graph() -> dict[str, set[str]]:
    known = modules()
    return {m: set(_imported(m, p, known)) for m, p in known.items()}


def subpackage(module: str) -> str:
    """orchestrator.engine.steps.dns → orchestrator.engine; a top-level module is its own."""
    return ".".join(module.split(".")[:2])


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one member (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_sees_a_cycle_and_only_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_between_modules() -> None:
    edges = graph()
    assert len(edges) > 100  # the walk found the package
    assert cycles(edges) == []


def test_no_import_cycle_between_subpackages() -> None:
    edges: dict[str, set[str]] = {}
    for module, imported in graph().items():
        # A package's own modules importing one another (or its __init__) stay inside it.
        edges.setdefault(subpackage(module), set()).update(
            subpackage(m) for m in imported if subpackage(m) != subpackage(module)
        )
    assert cycles(edges) == []
