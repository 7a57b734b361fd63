"""A mail client that writes numbered messages and logs each acknowledgement.

    python -m tests.lab.writer --server ADDR:PORT --to RCPT --tag dc1 --every 0.1 --out FILE

Sends message n (Message-ID <n.TAG@writer.test>) every EVERY seconds until SIGTERM, each
over a fresh SMTP connection (a client that keeps one open would not notice a server
stopped and restarted elsewhere), and appends one JSON line per message the server
accepted: {"n", "tag", "message_id", "acked_at" (time.time() when the 250 arrived)}.
Refusals and timeouts are not logged: only what the server acknowledged counts. Run it
inside a site with `sitectl lab exec SITE -- …`: what a user there sends.
"""

from __future__ import annotations

import argparse
import json
import signal
import smtplib
import sys
import threading
import time
from email.message import EmailMessage


def send(server: str, rcpt: str, tag: str, n: int, timeout: float) -> str | None:
    """Message n's id when the server acknowledged it, else None."""
    host, _, port = server.rpartition(":")
    message_id = f"<{n}.{tag}@writer.test>"
    msg = EmailMessage()
    msg["From"] = f"writer-{tag}@writer.test"
    msg["To"] = rcpt
    msg["Subject"] = f"write {n} from {tag}"
    msg["Message-ID"] = message_id
    msg.set_content(f"message {n} written in {tag}\n")
    try:
        with smtplib.SMTP(host, int(port), timeout=timeout) as smtp:
            smtp.send_message(msg)
    except (OSError, smtplib.SMTPException):
        return None
    return message_id


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.lab.writer")
    parser.add_argument("--server", required=True)
    parser.add_argument("--to", required=True)
    parser.add_argument("--tag", required=True)
    parser.add_argument("--every", type=float, default=0.1)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    n = 0
    with open(args.out, "a", buffering=1) as out:
        while not stop.is_set():
            started = time.monotonic()
            n += 1
            message_id = send(args.server, args.to, args.tag, n, timeout=max(1.0, args.every))
            if message_id is not None:
                line = {"n": n, "tag": args.tag, "message_id": message_id, "acked_at": time.time()}
                out.write(json.dumps(line) + "\n")
            stop.wait(max(0.0, args.every - (time.monotonic() - started)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
