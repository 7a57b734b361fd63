"""Read YAML and remember the line of every field, so errors can say FILE:LINE."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

Path_ = tuple[str | int, ...]
_BOOL = "tag:yaml.org,2002:bool"


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2's booleans: only true and false. YAML 1.1 also
    reads on/off/yes/no as booleans, which turns a custom step's `on: proxy` key into
    True; pydantic still takes "yes" or "off" for a boolean field."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _BOOL]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    _BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


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
    Whatever the text holds (tags, recursive aliases, alias bombs, deep nesting), the
    result is problems, never an exception.
    """
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        return _unreadable(_yaml_line(exc, text), _yaml_reason(exc))
    except RecursionError:
        return _unreadable(1, "nested hundreds of levels deep — a topology needs fewer than ten")
    source = YamlSource(data=None)
    if root is None:
        return source
    source.lines[()] = root.start_mark.line + 1
    try:
        _walk(root, (), source, set(), [0])
    except _Unwalkable as exc:
        return _unreadable(exc.line, f"{exc} — {_PLAINLY}")
    try:
        source.data = yaml.load(text, Loader=_Loader)  # a SafeLoader: no arbitrary objects
    except yaml.YAMLError as exc:
        # Composing succeeded, constructing did not: an unknown tag (!foo,
        # !!python/object), an unhashable key, a bad !!binary or !!timestamp value.
        fix = "quote the value or key, or remove its tag"
        return _unreadable(_yaml_line(exc, text), _yaml_reason(exc, fix))
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:  # !!float abc
        return _unreadable(1, f"cannot read a value: {exc} — quote the value or remove its tag")
    return source


# The YAML features that can make a short file enormous or endless.
_PLAINLY = "write the topology out plainly, without recursive or repeated aliases"
# A real topology has a few thousand values (a 1,000-record zone ≈ 5,000): this bound
# only stops alias bombs, which would otherwise take minutes and gigabytes.
MAX_NODES = 200_000


class _Unwalkable(Exception):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line


def _unreadable(line: int, message: str) -> YamlSource:
    return YamlSource(data=None, problems=[YamlProblem((), line, message)])


def _yaml_line(exc: yaml.YAMLError, text: str) -> int:
    mark = getattr(exc, "problem_mark", None)
    if mark is not None:
        return int(mark.line) + 1
    position = getattr(exc, "position", None)  # ReaderError: a bad character
    return text.count("\n", 0, position) + 1 if isinstance(position, int) else 1


def _yaml_reason(exc: yaml.YAMLError, fix: str = "fix the syntax here") -> str:
    if isinstance(exc, yaml.reader.ReaderError):
        char = exc.character  # an int (code point) or a one-character str
        code = char if isinstance(char, int) else ord(str(char)[:1] or " ")
        reason = f"{exc.reason} (character #x{code:04x})"
    else:
        reason = getattr(exc, "problem", None) or str(exc)
    return f"not valid YAML: {reason} — {fix}"


def _walk(
    node: yaml.Node, path: Path_, source: YamlSource, above: set[int], seen_nodes: list[int]
) -> None:
    # `above`: the nodes on the way here, to find an alias that contains itself.
    # `seen_nodes`: values visited so far (aliases counted each time they are used).
    seen_nodes[0] += 1
    if seen_nodes[0] > MAX_NODES:
        raise _Unwalkable(
            node.start_mark.line + 1, f"the file expands to more than {MAX_NODES:,} values"
        )
    if id(node) in above:
        raise _Unwalkable(node.start_mark.line + 1, "an alias refers to a value containing it")
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
            _walk(value_node, child, source, above | {id(node)}, seen_nodes)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            child = (*path, index)
            source.lines[child] = item.start_mark.line + 1
            _walk(item, child, source, above | {id(node)}, seen_nodes)
