"""Protocol probes of the application: TCP, SMTP (banner + EHLO), IMAP (CAPABILITY +
login), and the canary message sent over SMTP and found again over IMAP.

SMTP and IMAP speak TLS when the topology says so (`Tls`): implicit (SMTPS, IMAPS) or
STARTTLS, the server's certificate always verified, and never a fall back to clear text
when the server does not offer it. Every probe is bounded by its timeout (a SIGSTOPped
server still accepts TCP and would otherwise hang us) and answers with a ProbeResult
instead of raising for "down".
"""

from __future__ import annotations

import contextlib
import functools
import imaplib
import os
import smtplib
import socket
import ssl
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from enum import StrEnum
from typing import Any

from orchestrator.errors import Failed, Unavailable


class Answer(StrEnum):
    UP = "up"
    REFUSED = "refused"  # nothing listens: stopped
    TIMEOUT = "timeout"  # listens but does not answer: hung, or a black hole
    WRONG = "wrong"  # answered, but not as the protocol says
    DENIED = "denied"  # answered, and refused our login


@dataclass(frozen=True)
class Login:
    """The probe user's credentials; the password never shows in a repr."""

    user: str
    password: str = field(repr=False)


class LoginRefused(Exception):
    """The server answered the login with NO or BAD."""


class TlsUnusable(ValueError):
    """Our side of TLS cannot be set up (the CA file is missing or not PEM)."""


@dataclass(frozen=True)
class Tls:
    """How a mail probe speaks TLS: `mode` "imaps"/"smtps" (TLS from the first byte) or
    "starttls". The server's certificate is verified against `ca_file` (else this
    machine's trust store) for `server_name` (else the address connected to)."""

    mode: str
    ca_file: str | None = None
    server_name: str | None = None

    @property
    def implicit(self) -> bool:
        return self.mode != "starttls"

    def context(self) -> ssl.SSLContext:
        try:
            stamp = os.stat(self.ca_file).st_mtime_ns if self.ca_file else 0
            return _context(self.ca_file, stamp, self.server_name)
        except (OSError, ssl.SSLError) as exc:
            raise TlsUnusable(f"CA file {self.ca_file} cannot be used: {exc}") from None

    def describe(self) -> str:
        return self.mode + (f" as {self.server_name}" if self.server_name else "")


class _VerifyingContext(ssl.SSLContext):
    """A client context that checks the certificate for `verify_name` when set, whatever
    host smtplib or imaplib connected to (they pass the address they dialled)."""

    verify_name: str | None = None

    def wrap_socket(self, sock: socket.socket, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        if self.verify_name:
            kwargs["server_hostname"] = self.verify_name
        return super().wrap_socket(sock, *args, **kwargs)


@functools.lru_cache(maxsize=64)
def _context(ca_file: str | None, stamp: int, server_name: str | None) -> ssl.SSLContext:
    """One context per CA file version and name: loading the system's trust store costs
    milliseconds, and the controller probes every second. `stamp` (the file's mtime)
    makes a replaced CA file load again."""
    del stamp
    context = _VerifyingContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies chain and name
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    else:
        context.load_default_certs()
    context.verify_name = server_name
    return context


def smtp_session(
    address: str, port: int, timeout: float, tls: Tls | None = None, helo: str = "sitectl"
) -> smtplib.SMTP:
    """An SMTP session past its EHLO, inside TLS when `tls` says so (STARTTLS refused or
    not offered is an error, never a fall back to clear text). The caller closes it."""
    context = tls.context() if tls else None
    if tls and tls.implicit:
        smtp: smtplib.SMTP = smtplib.SMTP_SSL(address, port, timeout=timeout, context=context)
    else:
        smtp = smtplib.SMTP(address, port, timeout=timeout)
    try:
        _ehlo(smtp, helo)
        if tls and not tls.implicit:
            smtp.starttls(context=context)
            _ehlo(smtp, helo)
    except BaseException:
        smtp.close()
        raise
    return smtp


def _ehlo(smtp: smtplib.SMTP, helo: str) -> None:
    code, said = smtp.ehlo(helo)
    if code != 250:
        raise smtplib.SMTPHeloError(code, said)


def imap_session(
    address: str,
    port: int,
    timeout: float,
    tls: Tls | None = None,
    deadline: float | None = None,
) -> imaplib.IMAP4:
    """An IMAP connection past its greeting, inside TLS when `tls` says so (STARTTLS not
    offered is an error, never a fall back to clear text). The caller logs out."""
    context = tls.context() if tls else None
    if tls and tls.implicit:
        imap: imaplib.IMAP4 = imaplib.IMAP4_SSL(address, port, ssl_context=context, timeout=timeout)
    else:
        imap = imaplib.IMAP4(address, port, timeout=timeout)
    if tls and not tls.implicit:
        try:
            if deadline is not None:
                _bound(imap, deadline)
            imap.starttls(ssl_context=context)
        except BaseException:
            with contextlib.suppress(OSError):
                imap.shutdown()
            raise
    return imap


@dataclass(frozen=True)
class ProbeResult:
    kind: str
    address: str
    port: int
    answer: Answer
    detail: str = ""
    seconds: float = 0.0

    @property
    def up(self) -> bool:
        return self.answer is Answer.UP

    def describe(self) -> str:
        text = f"{self.kind} {self.address}:{self.port} {self.answer.value}"
        return f"{text} ({self.detail})" if self.detail else text


def probe(
    kind: str,
    address: str,
    port: int,
    timeout: float = 3.0,
    login: Login | None = None,
    tls: Tls | None = None,
) -> ProbeResult:
    """One protocol probe. With `login`, IMAP also logs in (and out): a server that
    greets but refuses the probe user answers DENIED, which is no service either. With
    `tls`, SMTP and IMAP speak TLS first; a certificate that does not verify is WRONG
    (the server answers, but not as one we may trust)."""
    started = time.monotonic()
    try:
        if kind == "smtp":
            detail = _smtp(address, port, timeout, tls)
        elif kind == "imap":
            detail = _imap(address, port, timeout, login, tls)
        else:
            with socket.create_connection((address, port), timeout=timeout):
                detail = "open"
        answer = Answer.UP
    except ConnectionRefusedError:
        answer, detail = Answer.REFUSED, "connection refused"
    except TimeoutError:
        answer, detail = Answer.TIMEOUT, f"no answer within {timeout:g} s"
    except LoginRefused as exc:
        answer, detail = Answer.DENIED, str(exc)[:200]
    except ssl.SSLCertVerificationError as exc:
        answer, detail = Answer.WRONG, f"TLS certificate not trusted: {exc.verify_message}"[:200]
    except (ssl.SSLEOFError, ssl.SSLZeroReturnError) as exc:
        answer, detail = Answer.REFUSED, f"closed during the TLS handshake: {exc}"[:200]
    except ssl.SSLError as exc:
        answer, detail = Answer.WRONG, f"TLS failed: {exc}"[:200]
    except (smtplib.SMTPException, imaplib.IMAP4.error, ValueError) as exc:
        if _timed_out(exc):
            # A server that accepted the connection and then said nothing (hung, or
            # SIGSTOPped): smtplib and imaplib wrap the read's timeout in their own error.
            answer, detail = Answer.TIMEOUT, f"no answer within {timeout:g} s ({exc})"[:200]
        else:
            answer, detail = Answer.WRONG, f"{exc.__class__.__name__}: {exc}"[:200]
    except OSError as exc:
        answer, detail = Answer.REFUSED, f"{exc.__class__.__name__}: {exc}"[:200]
    return ProbeResult(kind, address, port, answer, detail, time.monotonic() - started)


def _timed_out(exc: BaseException) -> bool:
    """Whether `exc` was raised because a read timed out (its cause or context is)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, TimeoutError):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def _over(tls: Tls | None) -> str:
    return f" over {tls.describe()}" if tls else ""


def _smtp(address: str, port: int, timeout: float, tls: Tls | None = None) -> str:
    with smtp_session(address, port, timeout, tls, helo="sitectl-probe") as smtp:
        banner = smtp.sock.getpeername() if smtp.sock else ""
    return f"EHLO 250 from {banner[0] if banner else address}{_over(tls)}"


def _imap(
    address: str, port: int, timeout: float, login: Login | None = None, tls: Tls | None = None
) -> str:
    # One deadline for the whole exchange: imaplib's timeout bounds each read, and a
    # server that answers every command just in time must not stretch the probe.
    deadline = time.monotonic() + timeout
    imap = imap_session(address, port, timeout, tls, deadline)
    try:
        _bound(imap, deadline)
        code, _caps = imap.capability()
        if code != "OK":
            raise ValueError(f"CAPABILITY answered {code}")
        if login is None:
            return f"CAPABILITY OK{_over(tls)}"
        if "LOGINDISABLED" in imap.capabilities:
            # The password is not sent in clear to a server that asks for STARTTLS first.
            return "CAPABILITY OK; login not tried: the server takes it only after STARTTLS"
        _bound(imap, deadline)
        try:
            imap.login(login.user, login.password)
        except imaplib.IMAP4.error as exc:
            raise LoginRefused(f"login refused for {login.user}: {_said(exc)}") from None
        return f"CAPABILITY OK, logged in as {login.user}{_over(tls)}"
    finally:
        _bound(imap, deadline)
        _logout(imap)


def _bound(imap: imaplib.IMAP4, deadline: float) -> None:
    with contextlib.suppress(OSError):
        imap.sock.settimeout(max(0.05, deadline - time.monotonic()))


def _said(exc: imaplib.IMAP4.error) -> str:
    """The server's words (imaplib hands them over as bytes)."""
    said = exc.args[0] if exc.args else ""
    text = said.decode("utf-8", "replace") if isinstance(said, bytes) else str(said)
    return " ".join(text.split()) or "no reason given"


def _logout(imap: imaplib.IMAP4) -> None:
    with contextlib.suppress(imaplib.IMAP4.error, OSError):
        imap.logout()


def canary_subject(op_id: str) -> str:
    return f"sitectl-canary {op_id}"


def send_canary(
    address: str,
    port: int,
    recipient: str,
    op_id: str,
    timeout: float = 5.0,
    tls: Tls | None = None,
) -> str:
    """Send the canary message; return its subject. Unavailable if the MTA does not answer."""
    message = EmailMessage()
    message["From"] = f"sitectl@{recipient.partition('@')[2] or 'localhost'}"
    message["To"] = recipient
    message["Subject"] = canary_subject(op_id)
    message.set_content(
        f"Written by sitectl just before operation {op_id} stopped the application.\n"
    )
    try:
        with smtp_session(address, port, timeout, tls) as smtp:
            smtp.send_message(message)
    except TlsUnusable as exc:
        raise Failed(f"SMTP {address}:{port}: {exc}") from None
    except ssl.SSLCertVerificationError as exc:
        raise Failed(f"SMTP {address}:{port}: certificate not trusted: {exc}") from None
    except (OSError, smtplib.SMTPServerDisconnected) as exc:
        raise Unavailable(f"SMTP {address}:{port}: {exc}") from None
    except smtplib.SMTPException as exc:
        raise Failed(f"SMTP {address}:{port} refused the canary: {exc}") from None
    return message["Subject"]


def find_message(
    address: str,
    port: int,
    user: str,
    password: str,
    subject: str,
    timeout: float = 5.0,
    tls: Tls | None = None,
) -> int:
    """How many messages in INBOX carry `subject`; Unavailable if IMAP does not answer."""
    try:
        imap = imap_session(address, port, timeout, tls)
    except TlsUnusable as exc:
        raise Failed(f"IMAP {address}:{port}: {exc}") from None
    except ssl.SSLCertVerificationError as exc:
        raise Failed(f"IMAP {address}:{port}: certificate not trusted: {exc}") from None
    except (OSError, imaplib.IMAP4.abort) as exc:  # abort: closed on us, try again later
        raise Unavailable(f"IMAP {address}:{port}: {exc}") from None
    except imaplib.IMAP4.error as exc:
        raise Failed(f"IMAP {address}:{port}: {exc}") from None
    try:
        imap.login(user, password)
        imap.select("INBOX", readonly=True)
        code, data = imap.search(None, "SUBJECT", f'"{subject}"')
        if code != "OK":
            raise Failed(f"IMAP {address}:{port} SEARCH answered {code}")
        return len(data[0].split()) if data and data[0] else 0
    except imaplib.IMAP4.error as exc:
        raise Failed(f"IMAP {address}:{port}: {exc}") from None
    except OSError as exc:
        raise Unavailable(f"IMAP {address}:{port}: {exc}") from None
    finally:
        _logout(imap)
