"""Loopback addresses and port checks.

BIND only listens on addresses configured on an interface, so each site's service
address is added to `lo` as a /32. Only addresses we added are recorded and removed:
an address the machine already had is not ours to take away.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import subprocess


class PortInUse(Exception):
    pass


def lo_has(address: str) -> bool:
    out = subprocess.run(
        ["ip", "-o", "-4", "addr", "show", "dev", "lo"], capture_output=True, text=True, check=True
    ).stdout
    return f" {address}/" in out


def lo_add(address: str) -> bool:
    """Add `address`/32 to lo; True if we added it, False if it was already there."""
    if lo_has(address):
        return False
    subprocess.run(["ip", "addr", "add", f"{address}/32", "dev", "lo"], check=True)
    return True


def lo_remove(address: str) -> None:
    if lo_has(address):
        subprocess.run(["ip", "addr", "del", f"{address}/32", "dev", "lo"], check=True)


def check_free(address: str, port: int, udp: bool = False) -> None:
    """Raise PortInUse if something already listens on address:port."""
    kind = socket.SOCK_DGRAM if udp else socket.SOCK_STREAM
    with contextlib.closing(socket.socket(socket.AF_INET, kind)) as sock:
        # SO_REUSEADDR so a socket in TIME_WAIT from a previous lab does not count.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                proto = "udp" if udp else "tcp"
                raise PortInUse(f"{address}:{port}/{proto} is already in use") from exc
            raise
