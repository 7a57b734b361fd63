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
from pathlib import Path

from orchestrator.lab import layout, volumes
from orchestrator.lab.credentials import ensure_password, ensure_server_cert
from orchestrator.lab.state import Component, LabState
from orchestrator.lab.templates import render

MAIL_UID = pwd.getpwnam("nobody").pw_uid
MAIL_GID = grp.getgrnam("nogroup").gr_gid
KINDS = ("postfix", "dovecot")


def mail_address() -> str:
    return f"{layout.MAIL_USER}@{layout.MAIL_DOMAIN}"


def password_file(state: LabState) -> Path:
    return state.secrets / f"mail-{layout.MAIL_USER}.password"


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


def _postfix(state: LabState, site: str, programs: dict[str, str]) -> Component:
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
        mail_root=mail_root(state, site),
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
    text = f"{mail_address()} {layout.MAIL_USER}/Maildir/\n"
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


def _dovecot(state: LabState, site: str, programs: dict[str, str]) -> Component:
    home = state.site_dir(site, "dovecot")
    for sub in ("run", "state"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    password = ensure_password(password_file(state))
    conf = render(
        "dovecot.conf.j2",
        home / "dovecot.conf",
        site=site,
        home=home,
        ip=layout.service_ip(site),
        port=layout.IMAP_PORT,
        imaps_port=layout.IMAPS_PORT,
        mail_root=mail_root(state, site),
        uid=MAIL_UID,
        gid=MAIL_GID,
        **_certificate(state, site, programs),
    )
    # Dovecot's auth process reads this as user `dovecot`: root-owned, group-readable only.
    render("dovecot-users.j2", home / "users", mode=0o640, user=layout.MAIL_USER, password=password)
    os.chown(home / "users", 0, grp.getgrnam("dovecot").gr_gid)
    return Component(
        name=f"{site}-dovecot",
        site=site,
        kind="dovecot",
        address=f"{layout.service_ip(site)}:{layout.IMAP_PORT}",
        argv=[programs["dovecot"], "-F", "-c", str(conf)],
        cwd=str(home),
        log=str(home / "dovecot.log"),
        wanted=site == layout.ACTIVE_SITE,
        stale_files=[str(home / "run" / "master.pid")],
    )


def prepare(state: LabState, programs: dict[str, str]) -> list[Component]:
    comps = []
    for site in layout.DATACENTERS:
        comps += [_postfix(state, site, programs), _dovecot(state, site, programs)]
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
    with imap_client(state, comp.site, timeout=2) as imap:
        status, _ = imap.select("INBOX", readonly=True)
        return status == "OK"


def imap_client(state: LabState, site: str, timeout: float = 5) -> imaplib.IMAP4:
    """The mail user logged in to the site's Dovecot, over STARTTLS with the lab CA."""
    imap = imaplib.IMAP4(layout.service_ip(site), layout.IMAP_PORT, timeout=timeout)
    try:
        imap.starttls(ssl_context=tls_context(state))
        imap.login(layout.MAIL_USER, password_file(state).read_text().strip())
    except BaseException:
        imap.shutdown()
        raise
    return imap


def send_test_mail(site: str, subject: str, body: str = "sent by the sitectl lab\n") -> None:
    """Deliver one message to the mail user through the site's SMTP server, as a mail
    client inside the lab would (no credentials: STARTTLS is not needed to send)."""
    sender = f"lab@{layout.MAIL_DOMAIN}"
    message = f"From: {sender}\r\nTo: {mail_address()}\r\nSubject: {subject}\r\n\r\n{body}"
    with smtplib.SMTP(layout.service_ip(site), layout.SMTP_PORT, timeout=5) as smtp:
        smtp.sendmail(sender, [mail_address()], message)
