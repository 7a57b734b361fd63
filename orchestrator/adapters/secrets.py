"""Reading a SecretRef (a file next to the topology, or an environment variable).

The value is wrapped in `Secret`, whose repr and str never show it, so a secret that
ends up in a log line, an exception or a dataclass repr prints as a placeholder. Only
`reveal()` hands the value out, at the one place a library needs it.

A secret file is checked at every read, not only by `sitectl validate`: it must be a
regular file of this user (or root) that neither its group nor anyone else may read,
write or run (mode 0600 or 0400); anything else is refused in one line naming the file
and the `chmod 600` that fixes it. An environment variable's name is remembered, so no
child sitectl starts inherits it (orchestrator/childenv.py). A child that needs the
secret (the playbook of a NetApp step, its epoch check) finds it instead in the file
of that name in the private directory SITECTL_SECRETS_DIR names, which sitectl writes
for the run and removes after it (adapters/ansible.py); the same checks apply there.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from orchestrator.childenv import SECRETS_DIR, note_secret_names
from orchestrator.config.model import SecretRef
from orchestrator.errors import Failed
from orchestrator.safefiles import private_refusal


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


@dataclass(frozen=True)
class SecretSource:
    """A reference to a secret, read only when revealed (a playbook step names the
    secrets its run needs when it is planned; they are read when the run starts)."""

    ref: SecretRef
    base_dir: Path

    def reveal(self) -> str:
        return read_secret(self.ref, self.base_dir).reveal()

    def __repr__(self) -> str:
        return f"SecretSource({self.ref.describe()})"


def _from_env(name: str, environ: Mapping[str, str]) -> Secret:
    note_secret_names([name])
    value = environ.get(name)
    if value is None:
        handed = environ.get(SECRETS_DIR)
        if handed:  # a child of sitectl: the secret is in a file, not in the environment
            return _handed_over(Path(handed) / name, name)
        raise SecretError(
            f"environment variable {name} is not set — export it (e.g. from the vault) "
            "before running sitectl"
        )
    value = value.rstrip("\r\n")
    if not value:
        raise SecretError(f"environment variable {name} is empty — set it to the secret")
    return Secret(value, f"${name}")


def _handed_over(path: Path, name: str) -> Secret:
    if not path.is_file():
        raise SecretError(
            f"environment variable {name} is not set and sitectl handed this run no file "
            f"{path} — export it before running sitectl"
        )
    value = read_private_text(path).rstrip("\r\n")
    if not value:
        raise SecretError(f"secret file {path} is empty — set ${name} to the secret")
    return Secret(value, f"${name}")


def _from_file(relative: str, base_dir: Path) -> Secret:
    path = (base_dir / relative).resolve()
    value = read_private_text(path).rstrip("\r\n")
    if not value:
        raise SecretError(f"secret file {path} is empty — write the secret into it")
    return Secret(value, f"file {path}")


def read_private_text(path: Path, what: str = "secret file") -> str:
    """The text of the secret file `path`, refused (SecretError, one line naming the file
    and the fix) unless it is a regular file of this user or root with no bit for its
    group or others. A link is followed (a secret mounted by a vault agent or Kubernetes
    is one): the checks apply to the file read, through the descriptor read from."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise SecretError(
            f"{what} {path} does not exist — create it (mode 0600) or fix the path in the topology"
        ) from None
    except PermissionError:
        raise SecretError(
            f"{what} {path} is not readable by this user — fix its owner or mode (0600)"
        ) from None
    except OSError as exc:
        raise SecretError(f"{what} {path} cannot be opened ({exc.strerror or exc})") from None
    try:
        found = os.fstat(fd)
        if stat.S_ISDIR(found.st_mode):
            raise SecretError(f"{what} {path} is a directory — name the file")
        if not stat.S_ISREG(found.st_mode):
            raise SecretError(f"{what} {path} is not a regular file — name the file")
        refusal = private_refusal(path, found, what)
        if refusal is not None:
            raise SecretError(refusal)
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd, "rb") as handle:
        data = handle.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise SecretError(f"{what} {path} is not UTF-8 text") from None


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
