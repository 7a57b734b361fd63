"""Thin wrappers over the `btrfs`, `mount`, `umount` and `losetup` commands.

Each function runs one command and maps its failure onto the project's error tree:
a timeout or a busy mount point is `Unavailable` (retrying may help); anything else the
tool refuses is `Failed`, with the tool's own message so an operator can act on it.
Each runs with an allow-listed environment (orchestrator/childenv.py), not sitectl's.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from orchestrator.childenv import command_env
from orchestrator.errors import Failed, Unavailable

TIMEOUT_S = 60.0
_BUSY = ("target is busy", "device is busy", "resource busy")


def run(argv: list[str], timeout: float = TIMEOUT_S) -> str:
    """Run a command; return its stdout or raise Failed/Unavailable naming the command."""
    try:
        proc = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, check=False, env=command_env()
        )
    except FileNotFoundError as exc:
        raise Failed(
            f"{argv[0]} is not installed (apt-get install -y btrfs-progs util-linux)"
        ) from exc
    except subprocess.TimeoutExpired as exc:
        raise Unavailable(f"{' '.join(argv)} timed out after {timeout:.0f} s") from exc
    if proc.returncode != 0:
        message = f"{' '.join(argv)}: {(proc.stderr or proc.stdout).strip()}"
        if any(b in message.lower() for b in _BUSY):
            raise Unavailable(message)
        raise Failed(message)
    return proc.stdout


# --- subvolumes -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SubvolumeInfo:
    uuid: str
    parent_uuid: str | None
    received_uuid: str | None
    readonly: bool
    # The filesystem's transaction count when it was created ("Gen at creation"): orders
    # the subvolumes of one pool by creation, where "Creation time" has whole seconds.
    created_generation: int = 0


def _none_if_dash(value: str) -> str | None:
    return None if value in ("", "-") else value


def parse_subvolume_show(text: str) -> SubvolumeInfo:
    """Parse `btrfs subvolume show` output (key: value lines, tab-indented)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    if "UUID" not in fields:
        raise Failed(f"unexpected `btrfs subvolume show` output: {text[:200]!r}")
    return SubvolumeInfo(
        uuid=fields["UUID"],
        parent_uuid=_none_if_dash(fields.get("Parent UUID", "-")),
        received_uuid=_none_if_dash(fields.get("Received UUID", "-")),
        readonly="readonly" in fields.get("Flags", ""),
        created_generation=int(fields.get("Gen at creation", "0") or 0),
    )


def subvolume_show(path: Path) -> SubvolumeInfo:
    return parse_subvolume_show(run(["btrfs", "subvolume", "show", str(path)]))


def is_subvolume(path: Path) -> bool:
    # A btrfs subvolume's root directory always has inode number 256.
    try:
        return path.is_dir() and os.stat(path).st_ino == 256
    except FileNotFoundError:
        return False


def subvolume_create(path: Path) -> None:
    run(["btrfs", "subvolume", "create", str(path)])


def snapshot(source: Path, dest: Path, readonly: bool) -> None:
    run(["btrfs", "subvolume", "snapshot", *(["-r"] if readonly else []), str(source), str(dest)])


def subvolume_delete(path: Path) -> None:
    run(["btrfs", "subvolume", "delete", str(path)])


def send_receive(
    snap: Path, parent: Path | None, dest_dir: Path, timeout: float = TIMEOUT_S
) -> None:
    """`btrfs send [-p parent] snap | btrfs receive dest_dir`, failing if either side fails."""
    send_argv = ["btrfs", "send", "-q", *(["-p", str(parent)] if parent else []), str(snap)]
    recv_argv = ["btrfs", "receive", "-q", str(dest_dir)]
    with (
        subprocess.Popen(
            send_argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=command_env()
        ) as send,
        subprocess.Popen(
            recv_argv, stdin=send.stdout, stderr=subprocess.PIPE, env=command_env()
        ) as recv,
    ):
        assert send.stdout is not None
        send.stdout.close()  # so that send gets SIGPIPE if receive dies
        try:
            _, recv_err = recv.communicate(timeout=timeout)
            _, send_err = send.communicate(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            send.kill()
            recv.kill()
            raise Unavailable(
                f"btrfs send|receive of {snap} timed out after {timeout:.0f} s"
            ) from exc
    if send.returncode != 0 or recv.returncode != 0:
        detail = "; ".join(e.decode(errors="replace").strip() for e in (send_err, recv_err) if e)
        raise Failed(f"btrfs send {snap} | receive {dest_dir} failed: {detail}")


# --- mounts ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class MountEntry:
    source: str
    target: str
    fstype: str
    options: str

    @property
    def subvol(self) -> str | None:
        for opt in self.options.split(","):
            if opt.startswith("subvol="):
                return opt.removeprefix("subvol=").lstrip("/")
        return None


def _unescape(field: str) -> str:
    # /proc/mounts escapes space, tab, newline and backslash as octal.
    return (
        field.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
    )


def parse_mounts(text: str) -> list[MountEntry]:
    entries = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 4:
            entries.append(MountEntry(_unescape(parts[0]), _unescape(parts[1]), parts[2], parts[3]))
    return entries


def mounts() -> list[MountEntry]:
    return parse_mounts(Path("/proc/mounts").read_text(encoding="utf-8"))


def mount_at(target: Path) -> MountEntry | None:
    """The topmost mount on `target`, if any."""
    resolved = str(target.resolve())
    found = [m for m in mounts() if m.target == resolved]
    return found[-1] if found else None


def mount(device: str, target: Path, subvol: str | None = None) -> None:
    target.mkdir(parents=True, exist_ok=True)
    options = ["-o", f"subvol={subvol}"] if subvol else []
    run(["mount", "-t", "btrfs", *options, device, str(target)])


def umount(target: Path) -> None:
    run(["umount", str(target)])


# --- loop devices ---------------------------------------------------------------------------


def loop_devices_for(image: Path) -> list[str]:
    """Every loop device backed by `image` (there can be several after a crashed setup)."""
    out = run(["losetup", "-j", str(image.resolve()), "-O", "NAME", "-n"])
    return [line.strip() for line in out.splitlines() if line.strip()]


def loop_attach(image: Path) -> str:
    # Always -f: loop0 may already be taken by someone else on this machine.
    return run(["losetup", "-f", "--show", str(image)]).strip()


def loop_detach(device: str) -> None:
    run(["losetup", "-d", device])


def fs_type(device: str) -> str | None:
    """Filesystem signature on `device` (`blkid -p`), None if blank.

    Only blkid's "nothing found" (exit 2) means blank: any other failure raises, because
    a blank answer is what lets the caller run mkfs.
    """
    argv = ["blkid", "-p", "-o", "value", "-s", "TYPE", device]
    try:
        proc = subprocess.run(
            argv, capture_output=True, text=True, timeout=TIMEOUT_S, check=False, env=command_env()
        )
    except FileNotFoundError as exc:
        raise Failed("blkid is not installed (apt-get install -y util-linux)") from exc
    except subprocess.TimeoutExpired as exc:
        raise Unavailable(f"{' '.join(argv)} timed out") from exc
    if proc.returncode == 2:
        return None
    if proc.returncode != 0:
        raise Failed(f"{' '.join(argv)}: {proc.stderr.strip()}")
    return proc.stdout.strip() or None


def mkfs(device: str, label: str) -> None:
    run(["mkfs.btrfs", "-q", "-L", label, device])
