"""Render the servers' config files from the Jinja2 templates shipped in the package."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import jinja2

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("orchestrator.lab", "templates"),
    undefined=jinja2.StrictUndefined,  # a missing variable is a bug, not an empty string
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
    autoescape=False,  # these are config files, not HTML
)


def render(template: str, dest: Path, mode: int = 0o644, **variables: Any) -> Path:
    """Write the rendered template to `dest`, only if its content changed.

    Leaving an unchanged file alone keeps a second `lab up` from touching a running lab.
    """
    text = _ENV.get_template(template).render(**variables)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if not dest.exists() or dest.read_text() != text:
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
    os.chmod(dest, mode)
    return dest
