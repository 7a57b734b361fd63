"""Read YAML and remember the line of every field, so errors can say FILE:LINE."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class YamlProblem:
    path: Path_
    line: int
    message: str


@dataclass
class YamlSource:
    data: Any
    lines: dict[Path_, int] = field(default_factory=dict)
    problems: list[YamlProblem] = field(default_factory=list)

    def line_of(self, path: Path_) -> int:
        """The line of the deepest part of `path` that exists in the file."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:end]))
            if line is not None:
                return line
        return 1


def parse(text: str) -> YamlSource:
    """Parse YAML into plain data plus a map of field path → line number (1-based).

    A YAML syntax error becomes a single problem at its line. Duplicate keys, which
    PyYAML would silently resolve to the last one, become problems too: in a topology
    file a repeated key is almost always a copy-paste that lost a site's settings.
    """
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        reason = getattr(exc, "problem", None) or str(exc)
        return YamlSource(
            data=None,
            problems=[YamlProblem((), line, f"not valid YAML: {reason} — fix the syntax here")],
        )
    source = YamlSource(data=None)
    if root is None:
        return source
    source.lines[()] = root.start_mark.line + 1
    _walk(root, (), source)
    source.data = yaml.safe_load(text)
    return source


def _walk(node: yaml.Node, path: Path_, source: YamlSource) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
            child = (*path, key)
            if key in seen:
                source.problems.append(
                    YamlProblem(
                        child,
                        key_node.start_mark.line + 1,
                        f"duplicate key {key!r} — each key may appear once; merge the two",
                    )
                )
            seen.add(key)
            source.lines[child] = key_node.start_mark.line + 1
            _walk(value_node, child, source)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            child = (*path, index)
            source.lines[child] = item.start_mark.line + 1
            _walk(item, child, source)
