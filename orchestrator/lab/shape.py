"""The lab's shapes: how many mailbox servers a datacenter has and which volumes each owns.

- `single` (the default): one mailbox host per datacenter on the site's service address,
  one mirrored volume (`mailstore`) holding the mail store.
- `wide`: two mailbox servers per datacenter, as a Zimbra site really has, each on an
  address of its own with its own Dovecot and its own two mirrored volumes: `store` (the
  Maildirs) and `index` (Dovecot's indexes, Zimbra's index/db). Postfix routes each user
  to the server holding their mailbox. A switchover then has real work in parallel: four
  volumes' final sync, break and mount, two servers' stop and start.

The shape is chosen by the first `lab up` and recorded in the lab state
(`resources["shape"]`), so every later command (`down`, `env`, `kill-site`...) acts on
the lab as it was made. Pure: no I/O beyond reading that record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SINGLE = "single"
WIDE = "wide"
SHAPES: tuple[str, ...] = (SINGLE, WIDE)

VOLUME_KINDS: tuple[str, ...] = ("store", "index")  # each wide mailbox server's volumes
# The account sitectl's probes and canaries log in as on every wide mailbox server
# (each has its own mailbox for it): a login must work on each server the probes reach,
# and no real user lives on more than one.
PROBE_USER = "probe"


@dataclass(frozen=True)
class MailboxServer:
    name: str  # "mailbox1": the host is "<site>-mailbox1"
    octet: int  # last octet of its address in each datacenter's /24
    users: tuple[str, ...]  # whose mailboxes it holds (the MTA routes them here)

    def volume(self, kind: str) -> str:
        """A volume's (and its mirror relationship's) name, e.g. "mailbox1-store"."""
        return f"{self.name}-{kind}"

    def volumes(self) -> list[str]:
        return [self.volume(kind) for kind in VOLUME_KINDS]


# The probe user's mail is routed to the first server: the canary is looked for at the
# first IMAP host of a site, which is mailbox1.
WIDE_SERVERS: tuple[MailboxServer, ...] = (
    MailboxServer("mailbox1", 31, ("alice", PROBE_USER)),
    MailboxServer("mailbox2", 32, ("bob",)),
)


def check(shape: str) -> str:
    if shape not in SHAPES:
        raise ValueError(f"unknown lab shape {shape!r}: use {' or '.join(SHAPES)}")
    return shape


def recorded(resources: dict[str, Any]) -> str:
    """The shape a lab's state records; a lab made before shapes existed is `single`."""
    return str(resources.get("shape", SINGLE))


def servers(shape: str) -> tuple[MailboxServer, ...]:
    """The mailbox servers of each datacenter with addresses of their own (none: single)."""
    return WIDE_SERVERS if check(shape) == WIDE else ()


def server_of(component: str) -> MailboxServer | None:
    """The wide mailbox server a component ("dc1-mailbox2-dovecot") belongs to."""
    for server in WIDE_SERVERS:
        if f"-{server.name}-" in component:
            return server
    return None


def logins(server: MailboxServer) -> tuple[str, ...]:
    """Who can log in to the server over IMAP: its users (the probe user on every one)."""
    return server.users if PROBE_USER in server.users else (*server.users, PROBE_USER)


def extra_octets(resources: dict[str, Any]) -> tuple[int, ...]:
    """Host octets a lab of the recorded shape adds to each datacenter's addresses."""
    return tuple(server.octet for server in servers(recorded(resources)))
