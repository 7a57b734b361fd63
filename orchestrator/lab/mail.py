"""The mail application per datacenter: Postfix (SMTP) and Dovecot (IMAP).

Stands in for Zimbra's MTA and mailbox server. SMTP on <site ip>:2525 (STARTTLS
offered) and :4465 (SMTPS), IMAP on <site ip>:1143 (STARTTLS required before a login)
and :1993 (IMAPS), with a certificate for the site's address from the lab CA (the one
LDAP's StartTLS uses: <state>/pki/ca.crt). The mail user's Maildir is
`<volume>/mail/<user>/Maildir` on the site's volume, so what the mirror replicates is
exactly what the application wrote. Only the active site's application runs after `lab
up`; the standby's is configured but stopped (its volume is the mirror's destination).
`orchestrator.lab.app` starts and stops it.

Mail is stored as uid/gid `nobody`/`nogroup`: the lab creates no system users, and
both Postfix's virtual(8) and Dovecot refuse root for mailbox access.
"""

from __future__ import annotations

import grp
import imaplib
import os
import pwd
import smtplib
import ssl
from dataclasses import dataclass
from pathlib import Path

from orchestrator.lab import layout, shape, volumes
from orchestrator.lab.credentials import ensure_password, ensure_server_cert
from orchestrator.lab.state import Component, LabState
from orchestrator.lab.templates import render

MAIL_UID = pwd.getpwnam("nobody").pw_uid
MAIL_GID = grp.getgrnam("nogroup").gr_gid
KINDS = ("postfix", "dovecot")


def mail_address() -> str:
    return f"{layout.MAIL_USER}@{layout.MAIL_DOMAIN}"


def password_file(state: LabState, user: str = layout.MAIL_USER) -> Path:
    return state.secrets / f"mail-{user}.password"


def mail_root(state: LabState, site: str) -> Path:
    return volumes.mount_point(state, site) / "mail"


def ports(site: str) -> list[tuple[str, int]]:
    ip = layout.service_ip(site)
    return [
        (ip, layout.SMTP_PORT),
        (ip, layout.SMTPS_PORT),
        (ip, layout.IMAP_PORT),
        (ip, layout.IMAPS_PORT),
    ]


def cert_name(site: str) -> str:
    return f"{site}-mail"


def _certificate(state: LabState, site: str, programs: dict[str, str]) -> dict[str, Path]:
    """The site's mail certificate (for its service address), signed by the lab CA."""
    cert, key = ensure_server_cert(
        state.pki, cert_name(site), [layout.service_ip(site)], programs["openssl"]
    )
    return {"cert": cert, "key": key}


def tls_context(state: LabState) -> ssl.SSLContext:
    """A client context that trusts the lab CA only and checks the server's address."""
    context = ssl.create_default_context(cafile=str(state.pki / "ca.crt"))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def postfix(
    state: LabState,
    site: str,
    programs: dict[str, str],
    base: Path | None = None,
    routes: dict[str, str] | None = None,
) -> Component:
    """The site's MTA. `routes`: each user's Maildir relative to `base` (the
    virtual_mailbox_base), i.e. on which mailbox server's store the MTA delivers their
    mail; default: the mail user on the site's one volume."""
    base = base or mail_root(state, site)
    routes = routes or {layout.MAIL_USER: f"{layout.MAIL_USER}/Maildir/"}
    home = state.site_dir(site, "postfix")
    data = home / "data"
    data.mkdir(parents=True, exist_ok=True)
    postfix_user = pwd.getpwnam("postfix")
    os.chown(data, postfix_user.pw_uid, postfix_user.pw_gid)
    (home / "queue").mkdir(exist_ok=True)
    common = {"site": site, "home": home, "ip": layout.service_ip(site)}
    render(
        "postfix-main.cf.j2",
        home / "main.cf",
        domain=layout.MAIL_DOMAIN,
        mail_root=base,
        uid=MAIL_UID,
        gid=MAIL_GID,
        **_certificate(state, site, programs),
        **common,
    )
    render(
        "postfix-master.cf.j2",
        home / "master.cf",
        port=layout.SMTP_PORT,
        smtps_port=layout.SMTPS_PORT,
        **common,
    )
    # texthash: maps are read as plain text, so no postmap run is needed.
    vmailbox = home / "vmailbox"
    text = "".join(f"{user}@{layout.MAIL_DOMAIN} {path}\n" for user, path in routes.items())
    if not vmailbox.exists() or vmailbox.read_text() != text:
        vmailbox.write_text(text)
    return Component(
        name=f"{site}-postfix",
        site=site,
        kind="postfix",
        address=f"{layout.service_ip(site)}:{layout.SMTP_PORT}",
        argv=[programs["postfix"], "-c", str(home), "start-fg"],
        cwd=str(home),
        log=str(home / "postfix.log"),
        wanted=site == layout.ACTIVE_SITE,
        pid_file=str(home / "queue" / "pid" / "master.pid"),
    )


@dataclass(frozen=True)
class MailboxSpec:
    """One Dovecot: where it listens, whose mail it serves and where that lives."""

    name: str  # the component's name, e.g. "dc1-dovecot", "dc1-mailbox2-dovecot"
    instance: str  # Dovecot's instance_name suffix and the config's heading
    home: Path
    ip: str
    certificate: dict[str, Path]
    mail_root: Path  # Maildirs: <mail_root>/<user>/Maildir
    index_root: Path | None  # Dovecot's indexes (INDEX=); None: beside the Maildir
    logins: tuple[str, ...]


def dovecot(state: LabState, site: str, programs: dict[str, str], spec: MailboxSpec) -> Component:
    for sub in ("run", "state"):
        (spec.home / sub).mkdir(parents=True, exist_ok=True)
    conf = render(
        "dovecot.conf.j2",
        spec.home / "dovecot.conf",
        site=spec.instance,
        home=spec.home,
        ip=spec.ip,
        port=layout.IMAP_PORT,
        imaps_port=layout.IMAPS_PORT,
        mail_root=spec.mail_root,
        index_root=spec.index_root,
        uid=MAIL_UID,
        gid=MAIL_GID,
        **spec.certificate,
    )
    users = [(user, ensure_password(password_file(state, user))) for user in spec.logins]
    # Dovecot's auth process reads this as user `dovecot`: root-owned, group-readable only.
    render("dovecot-users.j2", spec.home / "users", mode=0o640, users=users)
    os.chown(spec.home / "users", 0, grp.getgrnam("dovecot").gr_gid)
    return Component(
        name=spec.name,
        site=site,
        kind="dovecot",
        address=f"{spec.ip}:{layout.IMAP_PORT}",
        argv=[programs["dovecot"], "-F", "-c", str(conf)],
        cwd=str(spec.home),
        log=str(spec.home / "dovecot.log"),
        wanted=site == layout.ACTIVE_SITE,
        stale_files=[str(spec.home / "run" / "master.pid")],
    )


def _dovecot(state: LabState, site: str, programs: dict[str, str]) -> Component:
    spec = MailboxSpec(
        name=f"{site}-dovecot",
        instance=site,
        home=state.site_dir(site, "dovecot"),
        ip=layout.service_ip(site),
        certificate=_certificate(state, site, programs),
        mail_root=mail_root(state, site),
        index_root=None,
        logins=(layout.MAIL_USER,),
    )
    return dovecot(state, site, programs, spec)


def prepare(state: LabState, programs: dict[str, str]) -> list[Component]:
    """The single shape's application (a wide lab's is `widemail.prepare`)."""
    comps = []
    for site in layout.DATACENTERS:
        comps += [postfix(state, site, programs), _dovecot(state, site, programs)]
    return comps


def prepare_mailstore(state: LabState, site: str) -> None:
    """Make the mail root on the site's (mounted, writable) volume, owned by the mail uid."""
    root = mail_root(state, site)
    root.mkdir(parents=True, exist_ok=True)
    os.chown(root, MAIL_UID, MAIL_GID)


def ready(comp: Component, state: LabState) -> bool:
    """Postfix greets over SMTP and takes STARTTLS; Dovecot lets the mail user log in
    after STARTTLS and open the INBOX (the lab CA verifying both certificates)."""
    ip, port = comp.address.rsplit(":", 1)
    if comp.kind == "postfix":
        with smtplib.SMTP(ip, int(port), timeout=2) as smtp:  # SMTPConnectError unless 220
            code, _ = smtp.starttls(context=tls_context(state))
            return code == 220
    server = shape.server_of(comp.name)
    user = server.users[0] if server else layout.MAIL_USER
    with imap_client(state, comp.site, timeout=2, address=ip, user=user) as imap:
        status, _ = imap.select("INBOX", readonly=True)
        return status == "OK"


def imap_client(
    state: LabState,
    site: str,
    timeout: float = 5,
    address: str | None = None,
    user: str = layout.MAIL_USER,
) -> imaplib.IMAP4:
    """`user` logged in to a Dovecot of the site (default: the one on its service
    address), over STARTTLS with the lab CA."""
    imap = imaplib.IMAP4(address or layout.service_ip(site), layout.IMAP_PORT, timeout=timeout)
    try:
        imap.starttls(ssl_context=tls_context(state))
        imap.login(user, password_file(state, user).read_text().strip())
    except BaseException:
        imap.shutdown()
        raise
    return imap


def send_test_mail(
    site: str,
    subject: str,
    body: str = "sent by the sitectl lab\n",
    user: str = layout.MAIL_USER,
) -> None:
    """Deliver one message to `user` through the site's SMTP server, as a mail client
    inside the lab would (no credentials: STARTTLS is not needed to send)."""
    sender = f"lab@{layout.MAIL_DOMAIN}"
    to = f"{user}@{layout.MAIL_DOMAIN}"
    message = f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n\r\n{body}"
    with smtplib.SMTP(layout.service_ip(site), layout.SMTP_PORT, timeout=5) as smtp:
        smtp.sendmail(sender, [to], message)
