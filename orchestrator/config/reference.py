"""The topology file's JSON Schema and its Markdown reference, both generated from the
pydantic models (model.py), so neither can say other than what `validate` checks.

`sitectl schema` prints the schema (editors: YAML language servers read it); `sitectl
schema --write-docs` writes both into docs/, and tests/unit/test_topology_reference.py
fails when the committed copies are stale. Descriptions come from each field's
docstring (the string under it in model.py, read here) and each model's class docstring.
"""

from __future__ import annotations

import ast
import functools
import inspect
import json
import re
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from orchestrator.config.model import SITE_NAME, Topology

SCHEMA_FILE = "topology.schema.json"
REFERENCE_FILE = "topology-reference.md"
SCHEMA_ID = "https://sitectl.invalid/schemas/topology.schema.json"
REGENERATE = "sitectl schema --write-docs"

Schema = dict[str, Any]


def attribute_docstrings(cls: type) -> dict[str, str]:
    """Each field's docstring (the string literal right under its annotation) in the
    class's own source, as pydantic's use_attribute_docstrings reads them."""
    body = ast.parse(textwrap.dedent(inspect.getsource(cls))).body[0]
    assert isinstance(body, ast.ClassDef)
    docs = {}
    for field, after in zip(body.body, body.body[1:], strict=False):
        if (
            isinstance(field, ast.AnnAssign)
            and isinstance(field.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            docs[field.target.id] = inspect.cleandoc(after.value.value)
    return docs


def _models(root: type[BaseModel]) -> list[type[BaseModel]]:
    """`root` and every model its fields name, each once, each after those it names."""
    order: list[type[BaseModel]] = []
    seen: set[type] = set()

    def visit(cls: type) -> None:
        if cls in seen or not (isinstance(cls, type) and issubclass(cls, BaseModel)):
            return
        seen.add(cls)
        for field in cls.model_fields.values():
            for named in _named_types(field.annotation):
                visit(named)
        order.append(cls)

    visit(root)
    return order


def _named_types(annotation: object) -> Iterator[type]:
    if isinstance(annotation, type):
        yield annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        yield from _named_types(arg)
    origin = getattr(annotation, "__origin__", None)
    if origin is not None and hasattr(annotation, "__metadata__"):  # Annotated[...]
        yield from _named_types(origin)


@functools.cache
def _describe_fields() -> None:
    """Give every model's fields their docstrings as descriptions, then rebuild the
    models, the ones named inside others first (a model's schema holds theirs)."""
    models = _models(Topology)
    for cls in models:
        docs = {
            name: text
            for base in reversed(cls.__mro__)  # inherited fields too, the nearest last
            if issubclass(base, BaseModel) and base.__module__ == cls.__module__
            for name, text in attribute_docstrings(base).items()
        }
        for name, field in cls.model_fields.items():
            if field.description is None and name in docs:
                field.description = docs[name]
    for cls in models:
        cls.model_rebuild(force=True)


def topology_schema() -> Schema:
    """The JSON Schema (draft 2020-12) of a topology file as `validate` reads it."""
    _describe_fields()
    schema = Topology.model_json_schema(mode="validation")
    # Fields sitectl fills in itself (where the file was read from) are not the file's.
    for name, field in Topology.model_fields.items():
        if field.exclude:
            schema["properties"].pop(name, None)
            if name in schema.get("required", []):
                schema["required"].remove(name)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **schema,
        "title": "sitectl topology",
        "description": "One cluster: sites, hosts, roles, volumes, DNS, LDAP, object store, "
        "ZooKeeper and policy. Generated from orchestrator/config/model.py by "
        f"`{REGENERATE}`; see docs/topology-reference.md.",
    }


def schema_text() -> str:
    return json.dumps(topology_schema(), indent=2, ensure_ascii=False) + "\n"


def _words(text: str | None) -> str:
    """One line of Markdown table cell: whitespace joined, pipes escaped."""
    return re.sub(r"\s+", " ", text or "").strip().replace("|", "\\|")


def _def_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def _type(node: Schema) -> str:
    """A field's type in words, a nested model as a link to its section."""
    if "$ref" in node:
        name = _def_name(node["$ref"])
        return f"[{name}](#{name.lower()})"
    if "const" in node:
        return f"`{json.dumps(node['const'])}`"
    if "enum" in node:
        return " \\| ".join(f"`{json.dumps(v)}`" for v in node["enum"])
    for key in ("anyOf", "oneOf"):
        if key in node:
            if _is_duration(node):
                return "duration"
            return " or ".join(dict.fromkeys(_type(option) for option in node[key]))
    kind = node.get("type")
    if kind == "array":
        return f"list of {_type(node.get('items', {}))}"
    if kind == "object":
        key, values = _map_values(node)
        return f"map of {key} → {_type(values)}" if values is not None else "map"
    if kind == "string" and "pattern" in node:
        return f"string (`{node['pattern']}`)"
    return {"number": "number", "integer": "integer", "boolean": "boolean", "null": "null"}.get(
        kind, kind or "any"
    )


def _map_values(node: Schema) -> tuple[str, Schema | None]:
    """(what the keys are, the values' schema) of a map: a dict keyed by site names
    (SiteName) is written as patternProperties."""
    for pattern, values in node.get("patternProperties", {}).items():
        return ("site" if pattern == SITE_NAME.pattern else "name"), values
    values = node.get("additionalProperties")
    return ("name", values) if isinstance(values, dict) else ("name", None)


def _is_duration(node: Schema) -> bool:
    """Seconds or a number with a unit (model.py: Seconds), whatever the field says."""
    options = node.get("anyOf", [])
    kinds = {option.get("type") for option in options}
    units = any("(ms|s|m|h|d)" in option.get("pattern", "") for option in options)
    return kinds == {"number", "string"} and units


def _default(node: Schema, required: bool) -> str:
    if required:
        return "**required**"
    if "default" not in node:  # a default_factory: an empty map or list
        return "empty"
    value = node["default"]
    if value is None:
        return "unset"
    if value == [] or value == {}:
        return "empty"
    if isinstance(value, dict):  # a section's own defaults, listed in its section
        return "its defaults"
    return f"`{json.dumps(value, ensure_ascii=False)}`"


def _limits(node: Schema) -> str:
    """Bounds JSON Schema states beside the type (minimum, lengths)."""
    words = {
        "minimum": "≥ {}",
        "exclusiveMinimum": "> {}",
        "maximum": "≤ {}",
        "minItems": "not empty" if node.get("minItems") == 1 else "at least {} items",
        "minProperties": "at least {} entries",
        "minLength": "not empty" if node.get("minLength") == 1 else "at least {} characters",
    }
    said = [text.format(node[key]) for key, text in words.items() if key in node]
    return f" ({', '.join(said)})" if said else ""


def _refs(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        if "$ref" in node:
            yield _def_name(node["$ref"])
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _places(schema: Schema) -> dict[str, list[str]]:
    """Each model's paths in the file, e.g. Policy: ["policy"], Host: ["hosts[]"]."""
    defs = schema["$defs"]
    found: dict[str, list[str]] = {}

    def walk(model: Schema, path: str, seen: tuple[str, ...]) -> None:
        for field, node in model.get("properties", {}).items():
            for name, suffix in _children(node):
                if name in seen:
                    continue
                where = f"{path}.{field}{suffix}" if path else f"{field}{suffix}"
                found.setdefault(name, []).append(where)
                walk(defs[name], where, (*seen, name))

    walk(schema, "", ())
    return found


def _children(node: Schema, suffix: str = "") -> Iterator[tuple[str, str]]:
    """(model, path suffix) of each model a field's value holds: `[]` for a list's
    items, `.<key>` for a map's values."""
    if "$ref" in node:
        yield _def_name(node["$ref"]), suffix
    for key in ("anyOf", "oneOf"):
        for option in node.get(key, []):
            yield from _children(option, suffix)
    if node.get("type") == "array":
        yield from _children(node.get("items", {}), suffix + "[]")
    key, values = _map_values(node)
    if node.get("type") == "object" and values is not None:
        yield from _children(values, f"{suffix}.<{key}>")


def _table(model: Schema) -> list[str]:
    required = set(model.get("required", []))
    rows = ["| field | type | default | description |", "| --- | --- | --- | --- |"]
    for field, node in model.get("properties", {}).items():
        own = node.get("description")
        # A duration's generic description is said by its type, not in every row.
        description = "" if _is_duration(node) and "500ms" in (own or "") else own
        rows.append(
            f"| `{field}` | {_type(node)}{_limits(node)} | "
            f"{_default(node, field in required)} | {_words(description)} |"
        )
    return rows


def reference_markdown() -> str:
    """docs/topology-reference.md: the top level, then one section per model, in the
    order the file meets them."""
    schema = topology_schema()
    places = _places(schema)
    lines = [
        "# Topology reference",
        "",
        f"<!-- Generated from orchestrator/config/model.py by `{REGENERATE}`: do not edit. -->",
        "",
        "Every field of the topology file (`sitectl validate` checks it), generated from "
        "the models `validate` reads it with. Its JSON Schema, for editors, is "
        f"[{SCHEMA_FILE}]({SCHEMA_FILE}): with the YAML language server (VS Code's YAML "
        "extension, Neovim, Helix) a first line",
        "",
        "```yaml",
        "# yaml-language-server: $schema=https://…/docs/topology.schema.json",
        "```",
        "",
        "(or a local path to the file) gives completion, descriptions and errors while "
        "typing. A *duration* is seconds (`30`) or a number with a unit (`500ms`, `30s`, "
        "`5m`, `1h`, `1d`). Relative paths are relative to the topology file. A secret is "
        "a [SecretRef](#secretref): `{file: path}` (mode 0600) or `{env: NAME}`, never the "
        "value. `validate` also checks what a schema cannot say (cross-references, files, "
        "weak settings); see README.md.",
        "",
        "## Topology",
        "",
        "The file's top level.",
        "",
        *_table(schema),
    ]
    order = list(dict.fromkeys(name for name in _refs(schema["properties"])))
    for name in order:
        _extend(order, schema["$defs"][name])
    for name in order:
        model = schema["$defs"][name]
        at = ", ".join(f"`{p}`" for p in places.get(name, []))
        lines += ["", f"## {name}", ""]
        if model.get("description"):
            lines += [_words(model["description"]).replace("\\|", "|"), ""]
        if at:
            lines += [f"At: {at}", ""]
        lines += _table(model)
    return "\n".join(lines) + "\n"


def _extend(order: list[str], model: Schema) -> None:
    for name in _refs(model.get("properties", {})):
        if name not in order:
            order.append(name)


def artefacts() -> dict[str, str]:
    """Each generated file in docs/ with its text."""
    return {SCHEMA_FILE: schema_text(), REFERENCE_FILE: reference_markdown()}


def write_docs(docs_dir: Path) -> list[Path]:
    written = []
    for name, text in artefacts().items():
        path = docs_dir / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
