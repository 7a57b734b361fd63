"""The IMAP probe logs in as the probe user, against a tiny IMAP server on loopback.

The server is a plain socket server in a thread that speaks just enough IMAP4rev1
(greeting, CAPABILITY, LOGIN, LOGOUT) for imaplib, and records every command line, so
the tests see what the probe really sent.
"""

from __future__ import annotations

import contextlib
import shlex
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from orchestrator.adapters.probes import Answer, Login, Tls, probe
from orchestrator.checks import Status, application
from orchestrator.config.model import Topology
from tests.checks.topologies import topology
from tests.loopback import listener, serving

USER = "sitectl-probe@example.com"
PASSWORD = 'pa ss"word'  # a space and a quote: imaplib must quote it, the server unquote it


@dataclass
class FakeImap:
    password: str = PASSWORD
    capabilities: str = "IMAP4rev1 AUTH=PLAIN"
    hang_on_login: bool = False
    commands: list[str] = field(default_factory=list)
    port: int = 0

    @contextlib.contextmanager
    def running(self) -> Iterator[FakeImap]:
        server = listener()
        server.settimeout(0.05)
        self.port = server.getsockname()[1]
        try:
            with serving(lambda stop: self._serve(server, stop)):
                yield self
        finally:
            server.close()

    def _serve(self, server: socket.socket, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn, contextlib.suppress(OSError):
                conn.settimeout(5)
                self._session(conn.makefile("rwb"), stop)

    def _session(self, io: socket.SocketIO, stop: threading.Event) -> None:
        def say(*lines: str) -> None:
            io.write(b"".join(f"{line}\r\n".encode() for line in lines))
            io.flush()

        say("* OK fake IMAP ready")
        while not stop.is_set():
            raw = io.readline()
            if not raw:
                return
            line = raw.decode(errors="replace").rstrip("\r\n")  # a TLS hello is binary
            self.commands.append(line)
            tag, _, rest = line.partition(" ")
            command, _, args = rest.partition(" ")
            command = command.upper()
            if command == "CAPABILITY":
                say(f"* CAPABILITY {self.capabilities}", f"{tag} OK CAPABILITY completed")
            elif command == "LOGIN":
                if self.hang_on_login:
                    stop.wait(10)
                    return
                user, password = shlex.split(args)
                if (user, password) == (USER, self.password):
                    say(f"{tag} OK [CAPABILITY IMAP4rev1] Logged in")
                else:
                    say(f"{tag} NO [AUTHENTICATIONFAILED] Authentication failed.")
            elif command == "LOGOUT":
                say("* BYE Logging out", f"{tag} OK Logout completed.")
                return
            else:
                say(f"{tag} BAD unknown command")

    def names(self) -> list[str]:
        """The commands received after CAPABILITY (imaplib asks for it on connecting, the
        probe once more), without tags and arguments."""
        names = [c.split(" ")[1].upper() for c in self.commands]
        assert names and names[0] == "CAPABILITY", names
        return [n for n in names if n != "CAPABILITY"]


def test_the_probe_logs_in_and_out_with_the_right_password() -> None:
    with FakeImap().running() as server:
        result = probe("imap", "127.0.0.1", server.port, 2.0, login=Login(USER, PASSWORD))
    assert result.answer is Answer.UP, result.describe()
    assert result.detail == f"CAPABILITY OK, logged in as {USER}"
    assert server.names() == ["LOGIN", "LOGOUT"]


def test_a_wrong_password_is_denied_with_the_server_words_and_still_logs_out() -> None:
    with FakeImap().running() as server:
        result = probe("imap", "127.0.0.1", server.port, 2.0, login=Login(USER, "wrong"))
    assert result.answer is Answer.DENIED and not result.up
    assert result.detail == (
        f"login refused for {USER}: [AUTHENTICATIONFAILED] Authentication failed."
    )
    assert "wrong" not in result.describe() and "wrong" not in repr(Login(USER, "wrong"))
    assert server.names() == ["LOGIN", "LOGOUT"]


def test_without_credentials_no_login_is_sent() -> None:
    with FakeImap().running() as server:
        result = probe("imap", "127.0.0.1", server.port, 2.0)
    assert (result.answer, result.detail) == (Answer.UP, "CAPABILITY OK")
    assert server.names() == ["LOGOUT"]


def test_no_password_goes_in_clear_to_a_server_that_disables_login() -> None:
    with FakeImap(capabilities="IMAP4rev1 STARTTLS LOGINDISABLED").running() as server:
        result = probe("imap", "127.0.0.1", server.port, 2.0, login=Login(USER, PASSWORD))
    assert result.answer is Answer.UP
    assert "login not tried" in result.detail
    assert "LOGIN" not in server.names()


def test_a_login_that_never_answers_times_out_within_the_bound() -> None:
    with FakeImap(hang_on_login=True).running() as server:
        started = time.monotonic()
        result = probe("imap", "127.0.0.1", server.port, 1.0, login=Login(USER, PASSWORD))
        took = time.monotonic() - started
    assert result.answer is Answer.TIMEOUT, result.describe()
    # One deadline for greeting, CAPABILITY, LOGIN and LOGOUT together, not one each.
    assert took < 1.9, took


def mailbox_topology(port: int, password: dict[str, str], base_dir: Path) -> Topology:
    return topology(
        hosts=[
            {"name": "dc1-mailbox", "site": "dc1", "roles": ["mailbox"], "address": "127.0.0.1"}
        ],
        roles={
            "mailbox": {
                "start_order": 1,
                "services": ["dovecot"],
                "probes": [{"kind": "imap", "port": port}],
            }
        },
        application={"probe_user": {"user": USER, "password": password}},
        base_dir=base_dir,
    )


def health(server: FakeImap, password: dict[str, str], base_dir: Path) -> tuple[Status, str]:
    topo = mailbox_topology(server.port, password, base_dir)
    (check,) = application.checks(topo, 2.0)
    result = check.run(2.0)
    return result.status, result.reason


@pytest.mark.parametrize(
    ("written", "status", "words"),
    [
        (PASSWORD, Status.OK, ""),
        (
            "stale-password",
            Status.DOWN,
            f"login refused (login refused for {USER}: [AUTHENTICATIONFAILED]",
        ),
    ],
)
def test_the_health_check_logs_in_as_the_probe_user(
    tmp_path: Path, written: str, status: Status, words: str
) -> None:
    secret = tmp_path / "probe.pw"
    secret.write_text(written + "\n")
    secret.chmod(0o600)
    with FakeImap().running() as server:
        got, reason = health(server, {"file": "probe.pw"}, tmp_path)
    assert got is status and words in reason, reason
    assert "LOGIN" in server.names() and server.names()[-1] == "LOGOUT"


def test_an_unreadable_probe_password_degrades_the_check_and_sends_no_login(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SITECTL_TEST_PROBE_PASSWORD", raising=False)
    with FakeImap().running() as server:
        got, reason = health(server, {"env": "SITECTL_TEST_PROBE_PASSWORD"}, tmp_path)
    assert got is Status.DEGRADED
    assert reason == (
        "answers, but the login was not tried: environment variable "
        "SITECTL_TEST_PROBE_PASSWORD is not set — export it (e.g. from the vault) before "
        "running sitectl"
    )
    assert "LOGIN" not in server.names()


def test_the_standby_is_not_logged_into(tmp_path: Path) -> None:
    secret = tmp_path / "probe.pw"
    secret.write_text(PASSWORD)
    secret.chmod(0o600)
    with FakeImap().running() as server:
        topo = mailbox_topology(server.port, {"file": "probe.pw"}, tmp_path)
        standby = topo.model_copy(update={"active_site": "dc2"})
        (check,) = application.checks(standby, 2.0)
        result = check.run(2.0)
    # Answering at all on the standby is the finding; the password stays home.
    assert result.status is Status.DEGRADED and "running on the standby" in result.reason
    assert "LOGIN" not in server.names()


def test_starttls_not_offered_is_wrong_and_the_password_stays_home() -> None:
    """A probe told to use STARTTLS never falls back to clear text: no STARTTLS in the
    server's CAPABILITY is a wrong answer, and no LOGIN is sent."""
    with FakeImap().running() as server:
        result = probe(
            "imap", "127.0.0.1", server.port, 2.0, Login(USER, PASSWORD), tls=Tls("starttls")
        )
    assert result.answer is Answer.WRONG, result.describe()
    assert "TLS not supported by server" in result.detail
    assert all("LOGIN" not in c.upper() for c in server.commands), server.commands


def test_imaps_to_a_plain_server_is_wrong_and_sends_no_login() -> None:
    with FakeImap().running() as server:
        result = probe(
            "imap", "127.0.0.1", server.port, 2.0, Login(USER, PASSWORD), tls=Tls("imaps")
        )
    assert result.answer is Answer.WRONG and result.detail.startswith("TLS failed"), result.detail
    assert all("LOGIN" not in c.upper() for c in server.commands), server.commands


def test_a_missing_ca_file_is_wrong_and_connects_nowhere(tmp_path: Path) -> None:
    with FakeImap().running() as server:
        tls = Tls("starttls", str(tmp_path / "gone.pem"))
        result = probe("imap", "127.0.0.1", server.port, 2.0, Login(USER, PASSWORD), tls=tls)
    assert result.answer is Answer.WRONG, result.describe()
    assert f"CA file {tmp_path / 'gone.pem'} cannot be used" in result.detail
    assert server.commands == []
