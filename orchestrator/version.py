"""sitectl's version, as the installed package says it (pyproject.toml's `version`)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

DISTRIBUTION = "sitectl"  # pyproject.toml's [project] name


def version_text() -> str:
    """`sitectl X.Y.Z`; run from a checkout that was never installed, it says so rather
    than guessing a number."""
    try:
        return f"{DISTRIBUTION} {version(DISTRIBUTION)}"
    except PackageNotFoundError:
        return f"{DISTRIBUTION} (version unknown: the {DISTRIBUTION} package is not installed)"


def version_number() -> str:
    """The installed package's version ("0.1.0"), "unknown" from a checkout never
    installed: what `sitectl_build_info{version}` says."""
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return "unknown"
