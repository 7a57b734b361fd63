"""sitectl's mail probes and canaries against the lab's real Postfix and Dovecot, over
TLS: IMAPS, IMAP STARTTLS, SMTPS and SMTP STARTTLS, each verified against the lab CA.

The verification is real: the same probes fail with another CA (even one with the lab
CA's very subject) and with a name the certificate does not hold. And no password
crosses the wire in clear: a TCP relay in front of Dovecot records every byte the
client sends, and the probe user's password is never among them, while a client that
does log in in clear through the same relay is caught (the recorder sees what it must).
"""

from __future__ import annotations

import contextlib
import imaplib
import os
import re
import socket
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from orchestrator.adapters.probes import Answer, Login, Tls, find_message, probe
from orchestrator.config import Topology, load_topology
from orchestrator.config.model import Host, Probe
from orchestrator.drill import canaries
from orchestrator.lab import layout
from orchestrator.lab.credentials import ensure_ca
from orchestrator.plan import assumed_state, build_plan
from orchestrator.plan.model import Plan
from orchestrator.runbook import manual
from tests.conftest import LabHandle, eventually
from tests.loopback import listener, serving

pytestmark = pytest.mark.lab

# (kind, port, tls mode): the four ways a client reaches the lab's mail over TLS.
WAYS = [
    ("imap", layout.IMAPS_PORT, "imaps"),
    ("imap", layout.IMAP_PORT, "starttls"),
    ("smtp", layout.SMTPS_PORT, "smtps"),
    ("smtp", layout.SMTP_PORT, "starttls"),
]
IDS = [f"{kind}-{mode}" for kind, _, mode in WAYS]
TIMEOUT_S = 5.0


def lab_ca(lab: LabHandle) -> str:
    return str(lab.env["mail"]["ca_file"])


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A CA the lab's servers were not signed by, made as the lab makes its own (the same
    subject, "sitectl lab CA": only its key differs)."""
    return str(ensure_ca(tmp_path_factory.mktemp("other-ca") / "pki", "openssl"))


def login(lab: LabHandle, kind: str) -> Login | None:
    return Login(layout.MAIL_USER, lab.mail_password) if kind == "imap" else None


@pytest.mark.parametrize(("kind", "port", "mode"), WAYS, ids=IDS)
def test_a_probe_over_tls_passes_with_the_lab_ca(
    lab: LabHandle, kind: str, port: int, mode: str
) -> None:
    site = lab.active_site()
    result = probe(
        kind,
        layout.service_ip(site),
        port,
        TIMEOUT_S,
        login=login(lab, kind),
        tls=Tls(mode, lab_ca(lab)),
    )
    assert result.answer is Answer.UP, result.describe()
    assert result.detail.endswith(f"over {mode}"), result.detail
    if kind == "imap":
        assert f"logged in as {layout.MAIL_USER}" in result.detail


@pytest.mark.parametrize(("kind", "port", "mode"), WAYS, ids=IDS)
def test_the_same_probe_fails_with_another_ca(
    lab: LabHandle, other_ca: str, kind: str, port: int, mode: str
) -> None:
    site = lab.active_site()
    result = probe(
        kind,
        layout.service_ip(site),
        port,
        TIMEOUT_S,
        login=login(lab, kind),
        tls=Tls(mode, other_ca),
    )
    assert result.answer is Answer.WRONG, result.describe()
    assert "TLS certificate not trusted: unable to get local issuer certificate" in result.detail


@pytest.mark.parametrize(("kind", "port", "mode"), WAYS, ids=IDS)
def test_the_same_probe_fails_for_a_name_the_certificate_does_not_hold(
    lab: LabHandle, kind: str, port: int, mode: str
) -> None:
    site = lab.active_site()
    other = layout.service_ip(next(s for s in layout.DATACENTERS if s != site))
    result = probe(
        kind,
        layout.service_ip(site),
        port,
        TIMEOUT_S,
        login=login(lab, kind),
        tls=Tls(mode, lab_ca(lab), server_name=other),
    )
    assert result.answer is Answer.WRONG, result.describe()
    assert "TLS certificate not trusted: IP address mismatch" in result.detail


# --- what crosses the wire ---------------------------------------------------------


class Relay:
    """A TCP relay on 127.0.0.1 in front of one server: records every byte a client
    sends through it (what anyone on the path would see)."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.sent = bytearray()
        self.port = 0
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def running(self) -> Iterator[Relay]:
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
                client, _ = server.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._pair, args=(client, stop), daemon=True).start()

    def _pair(self, client: socket.socket, stop: threading.Event) -> None:
        with client, socket.create_connection(self.upstream, timeout=TIMEOUT_S) as upstream:
            record = threading.Thread(
                target=self._pump, args=(client, upstream, stop, True), daemon=True
            )
            record.start()
            self._pump(upstream, client, stop, False)
            record.join(TIMEOUT_S)

    def _pump(
        self, src: socket.socket, dst: socket.socket, stop: threading.Event, rec: bool
    ) -> None:
        src.settimeout(0.1)
        while not stop.is_set():
            try:
                data = src.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if not data:
                break
            if rec:
                with self._lock:
                    self.sent += data
            try:
                dst.sendall(data)
            except OSError:
                break
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def saw(self, secret: str) -> bool:
        with self._lock:
            return secret.encode() in self.sent


@pytest.mark.parametrize(
    ("port", "mode"), [(layout.IMAPS_PORT, "imaps"), (layout.IMAP_PORT, "starttls")]
)
def test_no_password_crosses_the_wire_in_clear(lab: LabHandle, port: int, mode: str) -> None:
    site = lab.active_site()
    ip, password = layout.service_ip(site), lab.mail_password
    # The relay's address is not the certificate's: verify the name the server holds.
    tls = Tls(mode, lab_ca(lab), server_name=ip)
    with Relay((ip, port)).running() as relay:
        logged_in = probe(
            "imap", "127.0.0.1", relay.port, TIMEOUT_S, Login(layout.MAIL_USER, password), tls
        )
        found = find_message(
            "127.0.0.1", relay.port, layout.MAIL_USER, password, "no such subject", tls=tls
        )
        endpoint = canaries.MailEndpoint(
            site, ("", 0), ("127.0.0.1", relay.port), layout.MAIL_USER, password, "", None, tls
        )
        subjects = canaries.subjects_present(endpoint, "sitectl-drill no such drill")
    assert logged_in.answer is Answer.UP and "logged in" in logged_in.detail, logged_in.describe()
    assert (found, subjects) == (0, set())  # each logged in: a refused login raises
    assert len(relay.sent) > 1000  # three sessions' handshakes and records went through
    assert not relay.saw(password)
    assert not relay.saw(layout.MAIL_USER)  # the login is inside TLS too


def test_the_relay_sees_a_password_sent_in_clear(lab: LabHandle) -> None:
    """The control: the same relay catches a client that logs in without TLS (imaplib
    sends LOGIN even to a server that announces LOGINDISABLED; Dovecot refuses it, but
    the password has crossed the wire). The probe itself sends none there."""
    site = lab.active_site()
    ip, password = layout.service_ip(site), lab.mail_password
    with Relay((ip, layout.IMAP_PORT)).running() as relay:
        cleartext = probe(
            "imap", "127.0.0.1", relay.port, TIMEOUT_S, Login(layout.MAIL_USER, password)
        )
        assert "login not tried" in cleartext.detail, cleartext.describe()
        assert not relay.saw(password)
        imap = imaplib.IMAP4("127.0.0.1", relay.port, timeout=TIMEOUT_S)
        with pytest.raises(imaplib.IMAP4.error, match=r"PRIVACYREQUIRED|[Pp]laintext"):
            imap.login(layout.MAIL_USER, password)
        imap.logout()
    assert relay.saw(password)


def test_lab_topology_probes_speak_tls_with_the_lab_ca(lab: LabHandle) -> None:
    topo = load_topology(Path(lab.env["topology"]))
    probes = {name: role.probes for name, role in topo.roles.items() if name in ("mailbox", "mta")}
    assert {(p.kind, p.tls) for ps in probes.values() for p in ps} == {
        ("imap", "imaps"),
        ("smtp", "starttls"),
    }
    for ps in probes.values():
        for p in ps:
            assert p.ca_file and topo.resolve(p.ca_file) == Path(lab_ca(lab)), p
            assert not p.insecure


# --- the runbook's commands --------------------------------------------------------


def _run_from_topology_dir(
    lab: LabHandle, command: str, **env: str
) -> subprocess.CompletedProcess[str]:
    """As the runbook says: run from the topology file's directory (its paths are
    relative to it)."""
    return subprocess.run(
        ["bash", "-c", command],
        cwd=Path(lab.env["topology"]).parent,
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **env},
        check=False,
    )


def _mail_probes(topo: Topology, site: str) -> list[tuple[Host, Probe]]:
    return [
        (host, p)
        for name in ("mailbox", "mta")
        for host in topo.hosts_of(site, name)
        for p in topo.roles[name].probes
    ]


def test_the_runbook_probe_commands_verify_the_certificate(lab: LabHandle, other_ca: str) -> None:
    """What a person types (openssl s_client) answers with the lab CA and stops at the
    certificate with another, as sitectl's own probe does."""
    topo = load_topology(Path(lab.env["topology"]))
    site = lab.active_site()
    expect = {"imap": "a1 OK", "smtp": "250"}
    for host, p in _mail_probes(topo, site):
        done = _run_from_topology_dir(lab, manual._probe_command(host, p))
        assert done.returncode == 0 and expect[p.kind] in done.stdout, (done.stdout, done.stderr)
        assert "verify error" not in done.stderr
        untrusted = p.model_copy(update={"ca_file": other_ca})
        refused = _run_from_topology_dir(lab, manual._probe_command(host, untrusted))
        assert refused.returncode != 0 and "verify error" in refused.stderr, refused.stderr
        assert expect[p.kind] not in refused.stdout


def plan_with_canary(topo: Topology, site: str) -> Plan:
    """A switchover plan away from the active `site`: it reads the canary over IMAP,
    so the runbook makes the netrc file the search needs."""
    other = next(s for s in topo.datacenters() if s != site)
    return build_plan(
        topo.model_copy(update={"active_site": site}), assumed_state(topo), "switchover", other
    )


def test_the_runbook_canary_commands_use_tls(lab: LabHandle) -> None:
    """The canary the runbook writes with curl over SMTP STARTTLS is found by the
    runbook's curl search over IMAPS: both verify the lab CA."""
    topo = load_topology(Path(lab.env["topology"]))
    site = lab.active_site()
    plan = SimpleNamespace(from_site=site, to_site=site)
    write = manual._write_canary(topo, plan, None)  # type: ignore[arg-type]
    search = manual._verify_canary(topo, plan, None)  # type: ignore[arg-type]
    assert "--ssl-reqd --cacert pki/ca.crt smtp://" in write.commands[1], write.commands
    assert "imaps://" in search.commands[0] and "--cacert pki/ca.crt" in search.commands[0]
    canary = f"sitectl-canary runbook-{uuid.uuid4().hex[:8]}"
    sent = _run_from_topology_dir(lab, write.commands[1], CANARY=canary)
    assert sent.returncode == 0, sent.stderr

    # The runbook's "Secret files" block makes the netrc file the search reads.
    secrets = "\n".join(manual.secret_files(topo, plan_with_canary(topo, site)))

    def found() -> bool:
        done = _run_from_topology_dir(lab, f"{secrets}\n{search.commands[0]}", CANARY=canary)
        return done.returncode == 0 and re.search(r"\* SEARCH \d", done.stdout) is not None

    eventually(found, "the runbook's canary found by the runbook's search")
