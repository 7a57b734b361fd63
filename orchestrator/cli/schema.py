"""`sitectl schema`: the topology file's JSON Schema, a thin wrapper over
orchestrator.config.reference."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from orchestrator.cli.exitcodes import ExitCode
from orchestrator.cli.output import console, err_console, fail
from orchestrator.config.reference import schema_text, write_docs


def schema(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file, not stdout.")
    ] = None,
    write_docs_: Annotated[
        bool,
        typer.Option(
            "--write-docs",
            help="Write docs/topology.schema.json and docs/topology-reference.md (into "
            "--docs-dir) instead: what a change to the models must be committed with.",
        ),
    ] = False,
    docs_dir: Annotated[Path, typer.Option("--docs-dir", help="Where --write-docs writes.")] = Path(
        "docs"
    ),
) -> None:
    """Print the topology file's JSON Schema, generated from the models validate uses.

    Editors read it: with the YAML language server, a first line
    `# yaml-language-server: $schema=PATH/topology.schema.json` in the topology file
    gives completion, field descriptions and errors while typing. Needs no topology.

    [b]Example:[/b] sitectl schema -o /etc/sitectl/topology.schema.json

    [b]Example:[/b] sitectl schema --write-docs   (in a checkout, after changing the models)
    """
    if write_docs_:
        if not docs_dir.is_dir():
            fail(f"--docs-dir {docs_dir}: no such directory", ExitCode.BAD_INPUT)
        for path in write_docs(docs_dir):
            err_console.print(f"wrote {path}", markup=False)
        return
    text = schema_text()
    if output is None:
        typer.echo(text, nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        fail(f"--output {output}: {exc.strerror or exc}", ExitCode.BAD_INPUT)
    console.print(f"wrote {output}", markup=False)


def register(app: typer.Typer) -> None:
    app.command("schema")(schema)
