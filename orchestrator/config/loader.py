"""Load and validate a topology file: every problem found, each as one line.

`load_topology` either returns a Topology or raises InvalidTopology carrying every
problem at once, so an operator fixes the file in one pass instead of one error a run.
"""

from __future__ import annotations

import difflib
import os
import stat
from collections.abc import Callable, Iterable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from orchestrator.childenv import note_secret_names
from orchestrator.config import model
from orchestrator.config.extras import check_extras
from orchestrator.config.files import check_files, secret_refs
from orchestrator.config.problems import FieldPath, Problem, dotted
from orchestrator.config.references import Finding, check_references
from orchestrator.config.yamlsource import YamlSource, parse
from orchestrator.errors import ConfigError

ENV_VAR = "SITECTL_CONFIG"


class InvalidTopology(ConfigError):
    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def config_path(given: str | os.PathLike[str] | None) -> Path:
    """The topology file from -c/--config, else $SITECTL_CONFIG."""
    if given:
        return Path(given)
    from_env = os.environ.get(ENV_VAR)
    if from_env:
        return Path(from_env)
    raise InvalidTopology(
        [Problem("(none)", 0, "", f"no topology file given — pass -c FILE or set {ENV_VAR}")]
    )


# A check of the whole topology by a layer above this one (the planner: does each
# custom step's anchor exist in a plan?), given by whoever loads it.
TopologyCheck = Callable[[model.Topology], Iterable[Finding]]


def load_topology(
    path: str | os.PathLike[str],
    *,
    check_filesystem: bool = True,
    absent_files_ok: bool = False,
    checks: Sequence[TopologyCheck] = (),
) -> model.Topology:
    """The topology in `path`; InvalidTopology with every problem, one per line.

    `absent_files_ok`: a file the topology names may be missing (a dead-man agent's host
    holds only what the agent reads); one that is there is still checked (0600, owner).

    A topology file anyone may write is refused before it is parsed, whatever else is
    asked (`validate` and every command load it here): it says which hosts sitectl acts
    on, which commands it runs and where it writes, as root."""
    file = Path(path)
    shown = str(path)
    try:
        text = _read(file, shown)
    except FileNotFoundError:
        raise InvalidTopology(
            [Problem(shown, 0, "", "file not found — check the path or $SITECTL_CONFIG")]
        ) from None
    except UnicodeDecodeError as exc:
        raise InvalidTopology(
            [Problem(shown, 0, "", f"cannot read it: {exc} — save it as UTF-8 text")]
        ) from None
    except OSError as exc:
        fix = "check the path and that the sitectl user may read it"
        raise InvalidTopology([Problem(shown, 0, "", f"cannot read it: {exc} — {fix}")]) from None
    topo = validate_text(
        text,
        shown,
        base_dir=file.parent,
        check_filesystem=check_filesystem,
        absent_files_ok=absent_files_ok,
        checks=checks,
    )
    return topo.model_copy(update={"source_file": file.resolve()})


def _read(file: Path, shown: str) -> str:
    """The file's text, its mode checked on the descriptor read from (a link is
    followed: the file that counts is the one read)."""
    with open(file, "rb") as handle:
        mode = os.fstat(handle.fileno()).st_mode
        if mode & stat.S_IWOTH:
            raise InvalidTopology(
                [
                    Problem(
                        shown,
                        0,
                        "",
                        f"the topology file is writable by everyone (mode "
                        f"{stat.S_IMODE(mode):04o}) — chmod o-w {shown}",
                    )
                ]
            )
        return handle.read().decode("utf-8")


def validate_text(
    text: str,
    shown: str,
    *,
    base_dir: Path = Path("."),
    check_filesystem: bool = True,
    absent_files_ok: bool = False,
    checks: Sequence[TopologyCheck] = (),
) -> model.Topology:
    source = parse(text)
    problems = [Problem(shown, p.line, dotted(p.path), p.message) for p in source.problems]
    if problems and source.data is None:
        raise InvalidTopology(problems)
    if not isinstance(source.data, dict):
        problems.append(
            Problem(shown, 1, "", "the file is not a mapping — start with 'cluster: NAME'")
        )
        raise InvalidTopology(problems)
    try:
        topo = model.Topology.model_validate({**source.data, "base_dir": base_dir})
    except ValidationError as exc:
        problems.extend(_from_pydantic(exc, source, shown))
        raise InvalidTopology(problems) from None
    # No child sitectl starts inherits a variable a secret is read from (childenv.py).
    note_secret_names(ref.env for _, ref in secret_refs(topo) if ref.env is not None)
    findings = check_references(topo)
    if check_filesystem:
        findings.extend(check_files(topo, absent_ok=absent_files_ok))
        if not absent_files_ok:  # what this machine must have installed to run a move
            findings.extend(check_extras(topo))
    if not findings:  # the checks above may assume what those refuse (a role that exists)
        for check in checks:
            findings.extend(check(topo))
    problems.extend(Problem(shown, source.line_of(p), dotted(p), m) for p, m in findings)
    if problems:
        raise InvalidTopology(problems)
    return topo


def _from_pydantic(exc: ValidationError, source: YamlSource, shown: str) -> list[Problem]:
    problems = []
    for error in exc.errors():
        path = _data_path(error["loc"], source.data)
        if error["type"] in {"union_tag_invalid", "union_tag_not_found"}:
            path = (*path, _discriminator(error))
        problems.append(Problem(shown, source.line_of(path), dotted(path), _explain(error)))
    return problems


def _data_path(loc: tuple[Any, ...], data: Any) -> FieldPath:
    """Drop the parts of pydantic's location that are not in the file (union tags)."""
    path: list[str | int] = []
    node = data
    for index, part in enumerate(loc):
        last = index == len(loc) - 1
        in_dict = isinstance(node, dict) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and part < len(node)
        if in_dict or in_list:
            node = node[part]
            path.append(part)
        elif last and isinstance(part, str) and part not in ("__root__", "[key]"):
            path.append(part)  # a missing or unknown field: name it
        # "[key]": the key itself was refused (a role's name): the path names it already.
    return tuple(path)


def _explain(error: Any) -> str:
    kind = error["type"]
    ctx = error.get("ctx", {})
    value = error.get("input")
    name = error["loc"][-1] if error["loc"] else ""
    if kind == "missing":
        return f"required field {name!r} is missing — add it"
    if kind == "extra_forbidden":
        hint = difflib.get_close_matches(str(name), _known_fields(), n=1)
        fix = f"did you mean {hint[0]!r}?" if hint else "remove it or fix its spelling"
        return f"unknown field {name!r} — {fix}"
    if kind == "literal_error":
        return f"{value!r} is not allowed — use {ctx.get('expected')}"
    if kind == "union_tag_invalid":
        return (
            f"{_discriminator(error)} {ctx.get('tag')!r} is unknown — use one of "
            f"{ctx.get('expected_tags')}"
        )
    if kind == "union_tag_not_found":
        return f"{_discriminator(error)} is missing — add it"
    if kind in {"value_error", "assertion_error"}:
        message = str(ctx.get("error", error["msg"]))
        return message if "—" in message else f"{message} — fix the value"
    if kind == "string_pattern_mismatch":
        return (
            f"{value!r} has characters that are not allowed — use lower-case letters, "
            f"digits and dashes (pattern {ctx.get('pattern')})"
        )
    if kind == "too_short":
        return f"needs at least {ctx.get('min_length')} item(s) — add them"
    if kind in {"dict_type", "model_type", "model_attributes_type"}:
        return (
            f"expected a mapping of fields, got {type(value).__name__} — indent its fields below it"
        )
    if kind in {"list_type", "tuple_type"}:
        return f"expected a list, got {type(value).__name__} — write it as [a, b] or '- a' lines"
    return f"{error['msg']} (got {value!r}) — fix the value"


def _discriminator(error: Any) -> str:
    return str(error.get("ctx", {}).get("discriminator", "driver")).strip("'")


@cache
def _known_fields() -> tuple[str, ...]:
    names: set[str] = set()
    for obj in vars(model).values():
        if isinstance(obj, type) and issubclass(obj, BaseModel):
            names.update(obj.model_fields)
    return tuple(sorted(names))
