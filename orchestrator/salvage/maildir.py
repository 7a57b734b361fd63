"""Maildirs on a volume copy sitectl can read as files: each message's identity, and
copying a message into another copy's Maildir, the way a delivery agent does.

A Maildir is any directory holding `cur/` and `new/`; a message is a file in one of them.
Its identity is its Message-ID header, or the SHA-256 of its bytes when it has none, so
a message read (moved from new/ to cur/ and renamed with flags) is still the same one.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from email.parser import BytesHeaderParser
from email.policy import compat32
from pathlib import Path

from orchestrator.errors import Failed, Unavailable
from orchestrator.salvage.divergence import MailItem

HEADER_LIMIT = 256 * 1024  # a header block larger than this is read no further
_SUBDIRS = ("cur", "new")


def identity_of(data: bytes) -> str:
    """The Message-ID of a message's bytes, else the digest of the bytes."""
    return _message_id(data) or "sha256:" + hashlib.sha256(data).hexdigest()


def identity_of_file(path: Path) -> str:
    """identity_of the file's bytes, reading only its head when that has a Message-ID."""
    with path.open("rb") as fh:
        head = fh.read(HEADER_LIMIT)
        found = _message_id(head)
        if found:
            return found
        digest = hashlib.sha256(head)
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def _message_id(data: bytes) -> str | None:
    head = data[:HEADER_LIMIT].split(b"\n\n", 1)[0].split(b"\r\n\r\n", 1)[0]
    headers = BytesHeaderParser(policy=compat32).parsebytes(head + b"\n\n")
    message_id = headers.get("Message-ID")
    if message_id and str(message_id).strip():
        return " ".join(str(message_id).split())
    return None


def _maildirs(root: Path) -> Iterator[Path]:
    for current, dirs, _files in os.walk(root):
        if all(d in dirs for d in _SUBDIRS):
            yield Path(current)
        # A Maildir's own cur/new/tmp hold messages, not Maildirs; Maildir++ folders
        # (".Sent") sit beside them and are walked.
        dirs[:] = [d for d in dirs if d not in (*_SUBDIRS, "tmp")]


def scan(root: Path) -> list[MailItem]:
    """Every message under `root` (a volume copy's top directory), with its identity."""
    if not root.is_dir():
        raise Failed(f"{root} is not a directory: no copy to read mail from")
    items = []
    try:
        for maildir in _maildirs(root):
            relative = maildir.relative_to(root).as_posix()
            for subdir in _SUBDIRS:
                for entry in os.scandir(maildir / subdir):
                    if not entry.is_file(follow_symlinks=False):
                        continue
                    identity = identity_of_file(Path(entry.path))
                    items.append(MailItem(relative, entry.name, subdir, identity))
    except OSError as exc:
        raise Unavailable(f"reading mail under {root}: {exc}") from exc
    return sorted(items)


def deliver(item: MailItem, source_root: Path, target_root: Path) -> bool:
    """Copy `item` from the copy at `source_root` into the same Maildir under
    `target_root`, as new mail: written in tmp/, renamed into new/ (the Maildir
    protocol, so a reader never sees half a message), owner and mode kept. Its file name
    is kept; if another message holds it there, a name derived from its identity is used.
    False when the message is already there under either name (or, never in practice,
    other messages hold both); the caller de-duplicates by identity first."""
    source = source_root / item.path
    maildir = target_root / item.maildir
    # Its own name, unless another message took it: then a name of its identity's.
    suffix = hashlib.sha256(item.identity.encode()).hexdigest()[:12]
    names = (item.base_name, f"{item.base_name}.salvaged-{suffix}")
    try:
        name = None
        for candidate in names:
            holder = _holder(maildir, candidate)
            if holder is None:
                name = candidate
                break
            if identity_of_file(holder) == item.identity:
                return False  # delivered before (read since, perhaps)
        if name is None:
            return False
        target = maildir / "new" / name
        stat = source.stat()
        _make_maildir(maildir, source_root / item.maildir)
        tmp = maildir / "tmp" / f"{name}.sitectl-salvage"
        try:
            tmp.write_bytes(source.read_bytes())
            os.chown(tmp, stat.st_uid, stat.st_gid)
            os.chmod(tmp, stat.st_mode & 0o7777)
            os.utime(tmp, (stat.st_atime, stat.st_mtime))
            os.rename(tmp, target)
        except OSError:
            tmp.unlink(missing_ok=True)  # no half-made copy left behind in tmp/
            raise
    except OSError as exc:
        raise Unavailable(f"copying {item.path} into {maildir}: {exc}") from exc
    return True


def _holder(maildir: Path, name: str) -> Path | None:
    """The file that holds `name` in the Maildir (in new/, or in cur/ with flags)."""
    for path in (maildir / "new" / name, maildir / "cur" / name):
        if path.exists():
            return path
    cur = maildir / "cur"
    return next(cur.glob(f"{_glob_safe(name)}:*"), None) if cur.is_dir() else None


def _glob_safe(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[]" else c for c in name)


def _make_maildir(maildir: Path, like: Path) -> None:
    """Create the Maildir (and its parents) where missing, owned as the source's is."""
    missing = []
    for path in (maildir, *maildir.parents):
        if path.exists():
            break
        missing.append(path)
    for path in reversed(missing):
        path.mkdir()
        _own_like(path, like)
    for sub in ("cur", "new", "tmp"):
        path = maildir / sub
        if not path.exists():
            path.mkdir()
            _own_like(path, like)


def _own_like(path: Path, like: Path) -> None:
    try:
        stat = like.stat()
    except OSError:
        return
    os.chown(path, stat.st_uid, stat.st_gid)
    os.chmod(path, stat.st_mode & 0o7777)
