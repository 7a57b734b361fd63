"""Protocol probes of the application: TCP, SMTP (banner + EHLO), IMAP (CAPABILITY +
login), and the canary message sent over SMTP and found again over IMAP.

Every probe is bounded by its timeout (a SIGSTOPped server still accepts TCP and would
otherwise hang us) and answers with a ProbeResult instead of raising for "down".
"""

from __future__ import annotations

import contextlib
import imaplib
import smtplib
import socket
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from enum import StrEnum

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
    kind: str, address: str, port: int, timeout: float = 3.0, login: Login | None = None
) -> ProbeResult:
    """One protocol probe. With `login`, IMAP also logs in (and out): a server that
    greets but refuses the probe user answers DENIED, which is no service either."""
    started = time.monotonic()
    try:
        if kind == "smtp":
            detail = _smtp(address, port, timeout)
        elif kind == "imap":
            detail = _imap(address, port, timeout, login)
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
    except (smtplib.SMTPException, imaplib.IMAP4.error, ValueError) as exc:
        answer, detail = Answer.WRONG, f"{exc.__class__.__name__}: {exc}"[:200]
    except OSError as exc:
        answer, detail = Answer.REFUSED, f"{exc.__class__.__name__}: {exc}"[:200]
    return ProbeResult(kind, address, port, answer, detail, time.monotonic() - started)


def _smtp(address: str, port: int, timeout: float) -> str:
    with smtplib.SMTP(address, port, timeout=timeout) as smtp:
        code, _ = smtp.ehlo("sitectl-probe")
        if code != 250:
            raise ValueError(f"EHLO answered {code}")
        banner = smtp.sock.getpeername() if smtp.sock else ""
    return f"EHLO 250 from {banner[0] if banner else address}"


def _imap(address: str, port: int, timeout: float, login: Login | None = None) -> str:
    # One deadline for the whole exchange: imaplib's timeout bounds each read, and a
    # server that answers every command just in time must not stretch the probe.
    deadline = time.monotonic() + timeout
    imap = imaplib.IMAP4(address, port, timeout=timeout)
    try:
        _bound(imap, deadline)
        code, _caps = imap.capability()
        if code != "OK":
            raise ValueError(f"CAPABILITY answered {code}")
        if login is None:
            return "CAPABILITY OK"
        if "LOGINDISABLED" in imap.capabilities:
            # The password is not sent in clear to a server that asks for STARTTLS first.
            return "CAPABILITY OK; login not tried: the server takes it only after STARTTLS"
        _bound(imap, deadline)
        try:
            imap.login(login.user, login.password)
        except imaplib.IMAP4.error as exc:
            raise LoginRefused(f"login refused for {login.user}: {_said(exc)}") from None
        return f"CAPABILITY OK, logged in as {login.user}"
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


def send_canary(address: str, port: int, recipient: str, op_id: str, timeout: float = 5.0) -> str:
    """Send the canary message; return its subject. Unavailable if the MTA does not answer."""
    message = EmailMessage()
    message["From"] = f"sitectl@{recipient.partition('@')[2] or 'localhost'}"
    message["To"] = recipient
    message["Subject"] = canary_subject(op_id)
    message.set_content(
        f"Written by sitectl just before operation {op_id} stopped the application.\n"
    )
    try:
        with smtplib.SMTP(address, port, timeout=timeout) as smtp:
            smtp.send_message(message)
    except (OSError, smtplib.SMTPServerDisconnected) as exc:
        raise Unavailable(f"SMTP {address}:{port}: {exc}") from None
    except smtplib.SMTPException as exc:
        raise Failed(f"SMTP {address}:{port} refused the canary: {exc}") from None
    return message["Subject"]


def find_message(
    address: str, port: int, user: str, password: str, subject: str, timeout: float = 5.0
) -> int:
    """How many messages in INBOX carry `subject`; Unavailable if IMAP does not answer."""
    try:
        imap = imaplib.IMAP4(address, port, timeout=timeout)
    except OSError as exc:
        raise Unavailable(f"IMAP {address}:{port}: {exc}") from None
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
