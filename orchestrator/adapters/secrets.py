"""Reading a SecretRef (a file next to the topology, or an environment variable).

The value is wrapped in `Secret`, whose repr and str never show it, so a secret that
ends up in a log line, an exception or a dataclass repr prints as a placeholder. Only
`reveal()` hands the value out, at the one place a library needs it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from orchestrator.config.model import SecretRef
from orchestrator.errors import Failed


class SecretError(Failed):
    """A secret could not be read: permanent until the operator fixes the reference."""


class Secret:
    """A secret value that does not print itself."""

    __slots__ = ("_source", "_value")

    def __init__(self, value: str, source: str) -> None:
        self._value = value
        self._source = source

    @property
    def source(self) -> str:
        """Where it came from ("file keys/x", "$VAR"): safe to log."""
        return self._source

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret(<hidden, from {self._source}>)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> tuple[object, ...]:
        # Pickling would copy the value into places we do not control (multiprocessing
        # payloads, caches); nothing in sitectl needs it, so refuse loudly.
        raise TypeError("Secret values are not picklable")


def read_secret(
    ref: SecretRef,
    base_dir: Path,
    *,
    environ: Mapping[str, str] | None = None,
) -> Secret:
    """The secret `ref` names; files are relative to `base_dir` (the topology's folder).

    Trailing newlines are stripped (editors and `echo` add them); any other whitespace
    is kept, because it may be part of a password.
    """
    if ref.env is not None:
        return _from_env(ref.env, os.environ if environ is None else environ)
    assert ref.file is not None  # SecretRef guarantees exactly one of file/env
    return _from_file(ref.file, base_dir)


def _from_env(name: str, environ: Mapping[str, str]) -> Secret:
    value = environ.get(name)
    if value is None:
        raise SecretError(
            f"environment variable {name} is not set — export it (e.g. from the vault) "
            "before running sitectl"
        )
    value = value.rstrip("\r\n")
    if not value:
        raise SecretError(f"environment variable {name} is empty — set it to the secret")
    return Secret(value, f"${name}")


def _from_file(relative: str, base_dir: Path) -> Secret:
    path = (base_dir / relative).resolve()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SecretError(
            f"secret file {path} does not exist — create it (mode 0600) "
            "or fix the path in the topology"
        ) from None
    except PermissionError:
        raise SecretError(
            f"secret file {path} is not readable by this user — fix its owner or mode (0600)"
        ) from None
    except IsADirectoryError:
        raise SecretError(f"secret file {path} is a directory — name the file") from None
    except UnicodeDecodeError:
        raise SecretError(f"secret file {path} is not UTF-8 text") from None
    value = text.rstrip("\r\n")
    if not value:
        raise SecretError(f"secret file {path} is empty — write the secret into it")
    return Secret(value, f"file {path}")


def is_private(path: Path) -> bool:
    """True if group and others have no access (the 0600 rule for key files)."""
    return path.stat().st_mode & 0o077 == 0


# What a secret looks like in a command's output: `password=…`, `secret: …`, a TSIG key
# statement, an HTTP Authorization header, a PEM private key. The value is replaced, the
# name kept, so the operator still sees which setting the command complained about.
_SECRET_SHAPES = (
    re.compile(
        r"(?i)\b((?:[\w.-]*(?:password|passwd|secret|token|api[_-]?key|access[_-]?key)[\w.-]*)"
        r"[\"']?\s*[=:]\s*)(\"[^\"]*\"|'[^']*'|\S+)"
    ),
    re.compile(r"(?i)\b(secret\s+)(\"[^\"]*\"|\S+)"),
    re.compile(r"(?i)\b(authorization:\s*\w+\s+)(\S+)"),
    re.compile(r"(?i)(\bbindpw\s+|(?<!\S)-w\s+)(\S+)"),
)
_PEM_KEY = re.compile(
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(-----END [A-Z ]*PRIVATE KEY-----|$)", re.S
)
HIDDEN = "<hidden>"


def scrub(text: str, known: Iterable[Secret | str] = ()) -> str:
    """`text` (a command's output, an error) with secrets replaced by <hidden>: the values
    in `known`, wherever they appear, and anything shaped like a secret setting."""
    for secret in known:
        value = secret.reveal() if isinstance(secret, Secret) else secret
        if len(value) >= 4:  # a shorter "secret" would blank out ordinary words
            text = text.replace(value, HIDDEN)
    text = _PEM_KEY.sub(HIDDEN, text)
    for shape in _SECRET_SHAPES:
        text = shape.sub(lambda m: m.group(1) + HIDDEN, text)
    return text
