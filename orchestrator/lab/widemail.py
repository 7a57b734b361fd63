"""A wide lab's mail application: one MTA and two mailbox servers per datacenter.

Per datacenter (see `orchestrator.lab.shape`):

- Postfix on the site's service address, as in the single shape, routing each user to
  the mailbox server that holds their mailbox: its virtual map names the user's Maildir
  on that server's `store` volume (alice → mailbox1, bob → mailbox2). No LMTP: Debian's
  dovecot-lmtpd is not among the lab's packages, and virtual(8) writing onto the
  server's mounted store is what the single shape does too.
- one Dovecot per mailbox server, on the server's own address (IMAP with STARTTLS,
  IMAPS, a certificate for that address from the lab CA), its Maildirs on the server's
  `store` volume and its indexes on its `index` volume (`INDEX=`): both volumes are
  written by the running service, so both mirrors carry something real.

Only the active site's application runs after `lab up`, as in the single shape.
"""

from __future__ import annotations

import os
from pathlib import Path

from orchestrator.lab import layout, mail, shape, volumes
from orchestrator.lab.credentials import ensure_server_cert
from orchestrator.lab.state import Component, LabState


def server_ip(site: str, server: shape.MailboxServer) -> str:
    return layout.site_ip(site, server.octet)


def host_name(site: str, server: shape.MailboxServer) -> str:
    """The server's host in the inventory and the topology, e.g. "dc1-mailbox2"."""
    return f"{site}-{server.name}"


def _volume(state: LabState, site: str, server: shape.MailboxServer, kind: str) -> Path:
    rel = next(r for r in volumes.relationships(state) if r.name == server.volume(kind))
    return rel.mount_point(state, site)


def store_root(state: LabState, site: str, server: shape.MailboxServer) -> Path:
    """The server's Maildirs: <store volume>/mail/<user>/Maildir."""
    return _volume(state, site, server, "store") / "mail"


def index_root(state: LabState, site: str, server: shape.MailboxServer) -> Path:
    return _volume(state, site, server, "index") / "index"


def _dovecot(
    state: LabState, site: str, server: shape.MailboxServer, programs: dict[str, str]
) -> Component:
    ip = server_ip(site, server)
    cert, key = ensure_server_cert(state.pki, host_name(site, server), [ip], programs["openssl"])
    spec = mail.MailboxSpec(
        name=f"{host_name(site, server)}-dovecot",
        instance=host_name(site, server),
        home=state.site_dir(site, f"{server.name}-dovecot"),
        ip=ip,
        certificate={"cert": cert, "key": key},
        mail_root=store_root(state, site, server),
        index_root=index_root(state, site, server),
        logins=shape.logins(server),
    )
    return mail.dovecot(state, site, programs, spec)


def routes(state: LabState, site: str) -> dict[str, str]:
    """Each user's Maildir relative to the site's directory (Postfix's mailbox base)."""
    base = state.root / site
    return {
        user: f"{store_root(state, site, server).relative_to(base)}/{user}/Maildir/"
        for server in shape.WIDE_SERVERS
        for user in server.users
    }


def prepare(state: LabState, programs: dict[str, str]) -> list[Component]:
    comps = []
    for site in layout.DATACENTERS:
        postfix = mail.postfix(state, site, programs, state.root / site, routes(state, site))
        comps.append(postfix)
        comps += [_dovecot(state, site, server, programs) for server in shape.WIDE_SERVERS]
    return comps


def prepare_mailstore(state: LabState, site: str) -> None:
    """Make each server's mail and index roots on its (mounted, writable) volumes, owned
    by the mail uid: Postfix's virtual(8) and Dovecot write there as that uid."""
    for server in shape.WIDE_SERVERS:
        for root in (store_root(state, site, server), index_root(state, site, server)):
            root.mkdir(parents=True, exist_ok=True)
            os.chown(root, mail.MAIL_UID, mail.MAIL_GID)
