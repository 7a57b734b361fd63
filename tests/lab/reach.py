"""A client that says which lab servers answer, from wherever it runs.

    python -m tests.lab.reach KIND@ADDRESS:PORT ...

prints one JSON object {target: "ok" | error}. Kinds are real protocol exchanges, not
bare connects: `smtp` (EHLO answered 250), `imap` (the server's greeting), `dns` (an
answer for mail.example.test., a zone every site serves, or for NAME with
`dns:NAME@…`), `zk` (the node serves as a
quorum member), `tcp` (a connect). Run inside a site with `sitectl lab exec SITE -- …` to see what a user
there sees.
"""

from __future__ import annotations

import imaplib
import json
import smtplib
import socket
import sys
from concurrent.futures import ThreadPoolExecutor

import dns.message
import dns.query

TIMEOUT_S = 2.0


def _smtp(host: str, port: int) -> None:
    with smtplib.SMTP(host, port, timeout=TIMEOUT_S) as smtp:
        code, _ = smtp.ehlo("reach.test")
        if code != 250:
            raise RuntimeError(f"EHLO answered {code}")


def _imap(host: str, port: int) -> None:
    imap = imaplib.IMAP4(host, port, timeout=TIMEOUT_S)
    imap.logout()


def _dns(host: str, port: int, name: str = "mail.example.test.") -> None:
    query = dns.message.make_query(name, "A")
    answer = dns.query.udp(query, host, port=port, timeout=TIMEOUT_S)
    if not answer.answer:
        raise RuntimeError(f"no answer ({dns.rcode.to_text(answer.rcode())})")


def _zk(host: str, port: int) -> None:
    with socket.create_connection((host, port), timeout=TIMEOUT_S) as sock:
        sock.settimeout(TIMEOUT_S)
        sock.sendall(b"srvr")
        text = b"".join(iter(lambda: sock.recv(4096), b"")).decode()
    if "Mode: leader" not in text and "Mode: follower" not in text:
        raise RuntimeError("not serving (no quorum)")


def _tcp(host: str, port: int) -> None:
    socket.create_connection((host, port), timeout=TIMEOUT_S).close()


KINDS = {"smtp": _smtp, "imap": _imap, "dns": _dns, "zk": _zk, "tcp": _tcp}


def probe(target: str) -> str:
    """`KIND@ADDRESS:PORT`, or `dns:NAME@ADDRESS:PORT` for another name than the default."""
    kind, _, address = target.partition("@")
    kind, _, arg = kind.partition(":")
    host, _, port = address.rpartition(":")
    try:
        KINDS[kind](host, int(port), *([arg] if arg else []))
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return "ok"


def main(targets: list[str]) -> int:
    with ThreadPoolExecutor(max_workers=max(1, len(targets))) as pool:
        results = dict(zip(targets, pool.map(probe, targets), strict=True))
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
