"""Writing sitectl's own files without following a link someone planted.

sitectl usually runs as root. Its audit log, drill reports and per-operation artifacts
go into directories it creates itself (mode 0700); a link planted where one of its files
goes — by whoever could write that directory before, or in a directory an operator named
— must never turn the write into one on the link's target (/etc/shadow, a key).

- `private_dir(path, root=…)`: creates what is missing, 0700; below `root` (the place
  the operator configured, taken as given) no part may be a symbolic link.
- `write_atomic(path, text)`: a new file beside `path` (O_CREAT|O_EXCL|O_NOFOLLOW, 0600)
  renamed over it: a link at `path` is replaced by the file, its target left untouched
  (rename acts on the name, never on what a link names). For whole files (reports).
- `open_append(path)`: O_APPEND|O_NOFOLLOW; a link at `path` is refused, as is anything
  but a regular file of this user (or root) with one name. For logs (the audit log),
  which cannot be replaced without losing what they hold.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from pathlib import Path

from orchestrator.errors import ConfigError

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


class UnsafePath(ConfigError):
    """A path sitectl writes is a link, or not the kind of file it should be."""


def _is_link(path: Path) -> bool:
    try:
        return stat.S_ISLNK(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


def _refuse_link(path: Path, what: str) -> None:
    raise UnsafePath(
        f"{what} {path} is a symbolic link — sitectl does not write through links; "
        f"remove it (rm {path}) and run again"
    )


def _mkdir(path: Path) -> None:
    try:
        os.mkdir(path, PRIVATE_DIR)
    except FileExistsError:
        return
    os.chmod(path, PRIVATE_DIR)  # whatever the umask took away or let through


def private_dir(path: Path, *, root: Path | None = None) -> Path:
    """`path`, a directory, created if missing; each directory created is mode 0700.

    `root` (default: `path`'s parent) is the configured place, taken as the operator
    wrote it (a link there is theirs); every part of `path` below it must be a real
    directory, not a link."""
    root = path.parent if root is None else root
    missing: list[Path] = []
    probe = root
    while not probe.exists() and not _is_link(probe) and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    for directory in reversed(missing):
        _mkdir(directory)
    if not root.is_dir():
        raise UnsafePath(f"{root} is not a directory — remove it or name another place")
    below = path.relative_to(root).parts if path != root else ()
    current = root
    for part in below:
        current = current / part
        if _is_link(current):
            _refuse_link(current, "directory")
        _mkdir(current)
        if not stat.S_ISDIR(os.lstat(current).st_mode):
            raise UnsafePath(f"{current} is not a directory — remove it and run again")
    return path


def write_atomic(path: Path, text: str | bytes, mode: int = PRIVATE_FILE) -> None:
    """Replace `path` by a file holding `text`; a reader sees the old or the new whole.

    The new file is made in `path`'s directory under a fresh name that cannot exist
    (O_EXCL) and is not followed if it is a link (O_NOFOLLOW), then renamed over `path`:
    a link at `path` itself is replaced, never written through."""
    data = text.encode("utf-8") if isinstance(text, str) else text
    directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        temporary = f".{path.name}.{secrets.token_hex(6)}.tmp"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(temporary, flags, mode, dir_fd=directory)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.rename(temporary, path.name, src_dir_fd=directory, dst_dir_fd=directory)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary, dir_fd=directory)
            raise
        os.fsync(directory)
    finally:
        os.close(directory)


def open_append(path: Path, what: str = "file") -> int:
    """A descriptor appending to `path` (created 0600): never through a link, never to a
    file that is not a regular one of this user or root with one name (a hard link
    planted there would name another file)."""
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, PRIVATE_FILE)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            _refuse_link(path, what)
        raise
    try:
        found = os.fstat(fd)
        if not stat.S_ISREG(found.st_mode):
            raise UnsafePath(f"{what} {path} is not a regular file — remove it and run again")
        if found.st_nlink != 1:
            raise UnsafePath(
                f"{what} {path} has {found.st_nlink} names (a hard link to another file?) — "
                f"move it away (mv {path} {path}.suspect) and run again"
            )
        if found.st_uid not in (os.geteuid(), 0):
            raise UnsafePath(
                f"{what} {path} belongs to uid {found.st_uid}, not to this user or root — "
                f"move it away (mv {path} {path}.suspect) and run again"
            )
    except BaseException:
        os.close(fd)
        raise
    return fd


def private_refusal(path: Path, found: os.stat_result, what: str = "secret file") -> str | None:
    """Why `found` (the stat of `path`) may not hold a secret, in one line with the fix;
    None when it may: owned by this user or root, nothing for its group or others."""
    if found.st_uid not in (os.geteuid(), 0):
        return (
            f"{what} {path} belongs to uid {found.st_uid}, not to this user "
            f"(uid {os.geteuid()}) or root — chown it to the user sitectl runs as "
            f"and chmod 600 {path}"
        )
    mode = found.st_mode
    if mode & 0o077:
        who = "everyone" if mode & 0o007 else "its group"
        kind = "readable or writable" if mode & 0o066 else "executable"
        return (
            f"{what} {path} is {kind} by {who} (mode {stat.S_IMODE(mode):04o}) — chmod 600 {path}"
        )
    return None
