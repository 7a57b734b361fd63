"""The topology's JSON Schema and Markdown reference (docs/) are the models' own: the
committed copies match what the models generate, editors' validation accepts the
example topology, and refuses what `validate` refuses by shape."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

from orchestrator.cli.main import app
from orchestrator.config.model import Policy, Topology
from orchestrator.config.reference import REGENERATE, artefacts, reference_markdown, schema_text

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
EXAMPLE = ROOT / "inventories/example-zimbra/topology.yaml"
runner = CliRunner()


@pytest.mark.parametrize("name", sorted(artefacts()))
def test_the_committed_copy_is_what_the_models_generate(name: str) -> None:
    committed = DOCS / name
    assert committed.exists(), f"docs/{name} is missing: run `{REGENERATE}`"
    assert committed.read_text(encoding="utf-8") == artefacts()[name], (
        f"docs/{name} is stale (the models changed): run `{REGENERATE}` from the "
        "repository's root and commit the result"
    )


def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(schema_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_an_editor_accepts_the_example_topology() -> None:
    errors = [
        f"{'.'.join(map(str, e.path))}: {e.message}"
        for e in validator().iter_errors(yaml.safe_load(EXAMPLE.read_text()))
    ]
    assert not errors, errors


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda d: d["policy"].update(probe_intervall=5), "policy"),  # misspelt
        (lambda d: d["policy"].update(fence_after="8 sec"), "policy.fence_after"),
        (lambda d: d["sites"]["dc1"].update(kind="primary"), "sites.dc1.kind"),
        (lambda d: d.pop("zookeeper"), ""),
    ],
    ids=["misspelt-field", "bad-duration", "bad-enum", "missing-section"],
)
def test_an_editor_flags_what_validate_refuses_by_shape(change, where: str) -> None:
    data = yaml.safe_load(EXAMPLE.read_text())
    change(data)
    paths = {".".join(map(str, e.path)) for e in validator().iter_errors(data)}
    assert where in paths, paths


def test_durations_are_offered_as_numbers_or_text_as_validate_reads_them() -> None:
    rows = [line for line in reference_markdown().splitlines() if "`probe_interval`" in line]
    assert rows == [
        f"| `probe_interval` | duration | `5.0` | "
        f"{Policy.model_fields['probe_interval'].description or ''} |"
    ]
    assert Topology.model_fields["base_dir"].exclude, "base_dir is sitectl's, not the file's"
    assert '"base_dir"' not in schema_text()


def test_every_field_of_every_model_is_in_the_reference() -> None:
    text = reference_markdown()
    missing = []
    seen: set[type] = set()

    def walk(model: type) -> None:
        if model in seen:
            return
        seen.add(model)
        for name, field in model.model_fields.items():
            if field.exclude:
                continue
            if f"| `{name}` |" not in text:
                missing.append(f"{model.__name__}.{name}")
            for kind in _models_in(field.annotation):
                walk(kind)

    walk(Topology)
    assert not missing and len(seen) > 30, missing


def _models_in(annotation: object) -> list[type]:
    from typing import get_args

    from pydantic import BaseModel

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models_in(arg)]


def test_sitectl_schema_prints_and_writes_it(tmp_path: Path) -> None:
    printed = runner.invoke(app, ["schema"], env={"SITECTL_CONFIG": "/nonexistent.yaml"})
    assert printed.exit_code == 0, printed.output
    assert printed.stdout == schema_text()
    out = tmp_path / "topology.schema.json"
    written = runner.invoke(app, ["schema", "-o", str(out)])
    assert written.exit_code == 0 and out.read_text() == schema_text()
    docs = runner.invoke(app, ["schema", "--write-docs", "--docs-dir", str(tmp_path)])
    assert docs.exit_code == 0, docs.output
    assert (tmp_path / "topology-reference.md").read_text() == reference_markdown()
