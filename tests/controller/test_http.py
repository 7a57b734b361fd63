"""The controller's HTTP endpoint over real sockets: /status behind the bearer token (a
private file, its mode checked whenever it is read), /metrics and /healthz behind it
when configured, and a slowloris (many idle or dribbling connections) that neither
holds threads without bound nor keeps /healthz from answering everyone else, against
a server in a process of its own and against a real `sitectl controller run`."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
import yaml

from orchestrator.adapters.secrets import SecretError
from orchestrator.cli.controller import _listen
from orchestrator.config import load_topology
from orchestrator.controller.http import (
    Access,
    Board,
    Endpoint,
    Metrics,
    access_of,
    parse_head,
    read_token,
    serve,
)
from orchestrator.inventory import render_inventory_text
from tests.controller.conftest import Controllers, topology_doc, wait_for

REPO = Path(__file__).resolve().parents[2]
WORKERS = 4  # Endpoint's default


def write_token(path: Path, mode: int = 0o600, token: str | None = None) -> str:
    token = token or secrets.token_hex(32)
    path.write_text(token + "\n")
    path.chmod(mode)
    return token


def get(
    endpoint: Endpoint | str, path: str, token: str | None = None, method: str = "GET"
) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of one request (an error status is an answer too)."""
    if isinstance(endpoint, str):
        where = endpoint
    else:
        host, port = endpoint.server_address
        where = f"{host}:{port}"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(f"http://{where}{path}", headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


@contextlib.contextmanager
def endpoint(access: Access, **options: float) -> Iterator[Endpoint]:
    metrics, board = Metrics("dc1"), Board(site="dc1", leader=True)
    server = serve(
        "127.0.0.1", 0, metrics, board, lambda: (True, "dc1 up"), access=access, **options
    )
    try:
        yield server
    finally:
        server.shutdown()


def test_status_is_served_only_with_the_bearer_token(tmp_path: Path) -> None:
    token = write_token(tmp_path / "token")
    with endpoint(access_of(tmp_path / "token", ())) as server:
        code, headers, body = get(server, "/status")
        assert code == 401
        assert headers["WWW-Authenticate"] == 'Bearer realm="sitectl"'
        assert b"dc1" not in body
        assert get(server, "/status", "not-the-token-at-all-0000")[0] == 401
        assert get(server, "/status", token[:-1])[0] == 401
        code, headers, body = get(server, "/status", token)
        assert (code, headers["Content-Type"]) == (200, "application/json")
        assert json.loads(body) == {"site": "dc1", "leader": True}
        # The rest stays open unless the topology says otherwise.
        assert get(server, "/metrics")[0] == 200
        assert get(server, "/healthz")[:3:2] == (200, b"dc1 up\n")
        assert get(server, "/healthz", method="HEAD")[:3:2] == (200, b"")
        assert get(server, "/nothing")[0] == 404
        assert get(server, "/healthz", method="POST")[0] == 405


def test_metrics_and_healthz_may_need_it_too(tmp_path: Path) -> None:
    token = write_token(tmp_path / "token")
    with endpoint(access_of(tmp_path / "token", ("metrics", "healthz"))) as server:
        for path in ("/status", "/metrics", "/healthz"):
            assert get(server, path)[0] == 401, path
            assert get(server, path, token)[0] == 200, path


def test_without_a_token_file_status_is_refused_to_everyone() -> None:
    with endpoint(access_of(None, ())) as server:
        code, _, body = get(server, "/status", "anything-anything-anything")
        assert code == 403
        assert b"set controller.http.token_file" in body
        assert get(server, "/metrics")[0] == 200


@pytest.mark.parametrize(
    ("mode", "content", "words"),
    [
        (0o644, None, "readable or writable by its group or others (mode 0644) — chmod 600"),
        (0o620, None, "(mode 0620)"),
        (0o600, "short", "shorter than 16 characters"),
        (0o600, "", "is empty"),
        (0o600, "two words in one token file", "more than one word or line"),
    ],
)
def test_a_token_file_others_may_read_or_a_weak_token_stops_the_start(
    tmp_path: Path, mode: int, content: str | None, words: str
) -> None:
    path = tmp_path / "token"
    path.write_text(secrets.token_hex(32) if content is None else content)
    path.chmod(mode)
    with pytest.raises(SecretError) as refused:
        access_of(path, ())
    assert words in str(refused.value)


def test_a_missing_token_file_or_a_directory_is_named(tmp_path: Path) -> None:
    with pytest.raises(SecretError, match="does not exist — write a token into it"):
        read_token(tmp_path / "absent")
    with pytest.raises(SecretError, match="not a regular file"):
        read_token(tmp_path)


def test_the_token_file_is_read_again_when_it_changes_and_refused_once_opened_up(
    tmp_path: Path,
) -> None:
    path = tmp_path / "token"
    old = write_token(path)
    with endpoint(access_of(path, ())) as server:
        assert get(server, "/status", old)[0] == 200
        path.chmod(0o644)  # opened up while running: refused, not used
        code, _, body = get(server, "/status", old)
        assert code == 503 and b"token file is unusable" in body
        path.chmod(0o600)
        assert get(server, "/status", old)[0] == 200
        new = write_token(path)  # rotated: no restart needed
        assert get(server, "/status", old)[0] == 401
        assert get(server, "/status", new)[0] == 200


def test_request_heads_are_parsed_strictly() -> None:
    request = parse_head(b"GET /status?x=1 HTTP/1.1\r\nAuthorization: Bearer abc\r\nHost: h")
    assert request is not None
    assert (request.method, request.path, request.headers["authorization"]) == (
        "GET",
        "/status",
        "Bearer abc",
    )
    assert parse_head(b"GET /status") is None  # HTTP/0.9
    assert parse_head(b"GET status HTTP/1.1") is None
    assert parse_head(b"GET /status HTTP/1.1\r\n folded: header") is None
    assert parse_head(b"GET /status HTTP/1.1\r\nno colon") is None


# ---- --listen ----------------------------------------------------------------------


@pytest.mark.parametrize("written", ["9400", ":9400", " :9400", "127.0.0.1:", "[]:9400", "h:0"])
def test_listen_needs_an_address_written_out(written: str) -> None:
    with pytest.raises(typer.Exit):
        _listen(written)


def test_every_interface_is_served_only_when_written() -> None:
    assert _listen("0.0.0.0:9400") == ("0.0.0.0", 9400)
    assert _listen("[::]:9400") == ("::", 9400)
    assert _listen("[::1]:9400") == ("::1", 9400)
    assert _listen("198.18.3.1:9400") == ("198.18.3.1", 9400)


def topology(tmp_path: Path, **http: object) -> Path:
    doc = topology_doc("t", "127.0.0.1:1,127.0.0.1:2,127.0.0.1:3")
    if http:
        doc["controller"] = {"http": http}
    path = tmp_path / "topology.yaml"
    path.write_text(yaml.safe_dump(doc))
    topo = load_topology(path, check_filesystem=False)
    (tmp_path / "hosts.yml").write_text(render_inventory_text(topo))
    return path


def controller_run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.cli.controller", "controller", "run", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO,
    )


def test_controller_run_refuses_a_bare_port_and_a_token_file_others_may_read(
    tmp_path: Path,
) -> None:
    """Each before ZooKeeper is even asked (it is not reachable here)."""
    topo = topology(tmp_path, token_file="token")
    write_token(tmp_path / "token")
    bare = controller_run("--site", "dc1", "--listen", ":9400", "-c", str(topo))
    assert bare.returncode == 2
    assert "the address is required (0.0.0.0:9400 serves every interface" in bare.stderr
    other = tmp_path / "other"
    write_token(other, mode=0o604)
    flag = controller_run(
        *("--site", "dc1", "--listen", "127.0.0.1:19400", "--token-file", str(other)),
        *("-c", str(topo)),
    )
    assert flag.returncode == 2
    assert f"token file {other} is readable or writable by its group or others" in flag.stderr
    # The topology's own is checked when the topology is read (as `sitectl validate`).
    (tmp_path / "token").chmod(0o640)
    opened = controller_run("--site", "dc1", "--listen", "127.0.0.1:19400", "-c", str(topo))
    assert opened.returncode == 2
    assert "controller.http.token_file: secret file token is readable" in opened.stderr
    assert "(mode 0640) — chmod 600 token" in opened.stderr


def test_the_topology_says_what_needs_the_token(tmp_path: Path) -> None:
    topo = load_topology(
        topology(tmp_path, token_file="token", token_for=["status", "metrics"]),
        check_filesystem=False,
    )
    assert topo.controller.http.token_for == ("status", "metrics")
    with pytest.raises(Exception, match="always needs the token"):
        topology(tmp_path, token_file="token", token_for=["metrics"])


# ---- slowloris -------------------------------------------------------------------

SERVER = """
import sys
from pathlib import Path
from orchestrator.controller.http import Board, Metrics, access_of, serve
server = serve(
    "127.0.0.1", 0, Metrics("dc1"), Board(site="dc1"), lambda: (True, "dc1 up"),
    access=access_of(Path(sys.argv[1]), ()), read_timeout=float(sys.argv[2]),
    max_connections=int(sys.argv[3]),
)
print(server.server_address[1], flush=True)
sys.stdin.read()
server.shutdown()
"""


def proc_threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def proc_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def slowloris(address: tuple[str, int], idle: int, dribbling: int) -> list[socket.socket]:
    """`idle` connections that send nothing, `dribbling` that send a byte of a request
    head now and then and never finish it."""
    conns = []
    for _ in range(idle):
        with contextlib.suppress(OSError):  # the server may already drop the oldest
            conns.append(socket.create_connection(address, timeout=5))
    for _ in range(dribbling):
        with contextlib.suppress(OSError):
            conn = socket.create_connection(address, timeout=5)
            conn.sendall(b"GET /status HTTP/1.1\r\n")
            conns.append(conn)
    return conns


def dribble(conns: list[socket.socket], stop: threading.Event) -> None:
    while not stop.wait(0.3):
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.sendall(b"X")


def healthz_answers_meanwhile(address: str, rounds: int, within: float) -> list[float]:
    """Each round: /healthz answered 200 (by a client not part of the attack), within
    `within` seconds; the times it took."""
    took = []
    for _ in range(rounds):
        started = time.monotonic()
        assert get(address, "/healthz")[0] == 200
        took.append(time.monotonic() - started)
        assert took[-1] < within, took
        time.sleep(0.1)
    return took


def closed_by_the_server(conn: socket.socket) -> bool:
    """The server hung up (EOF after an optional 408), or reset."""
    conn.settimeout(0.2)
    try:
        while chunk := conn.recv(4096):
            if b"408" not in chunk:
                return False
        return True
    except TimeoutError:
        return False
    except OSError:
        return True


def test_a_slowloris_holds_no_thread_and_healthz_answers_others(tmp_path: Path) -> None:
    token = tmp_path / "token"
    write_token(token)
    read_timeout, most = 2.0, 32
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(token), str(read_timeout), str(most)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    conns: list[socket.socket] = []
    stop = threading.Event()
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        address = ("127.0.0.1", port)
        where = f"127.0.0.1:{port}"
        healthz_answers_meanwhile(where, 3 * WORKERS, within=2)  # every worker made
        threads, fds = proc_threads(server.pid), proc_fds(server.pid)
        assert threads <= 2 + WORKERS  # main, the waiting thread, the workers

        conns = slowloris(address, idle=300, dribbling=20)
        dribbler = threading.Thread(target=dribble, args=(conns[-20:], stop), daemon=True)
        dribbler.start()
        healthz_answers_meanwhile(where, 20, within=1.5)
        assert proc_threads(server.pid) == threads
        assert proc_fds(server.pid) <= fds + most

        # None outlives the read timeout, not even one that keeps sending.
        time.sleep(read_timeout + 0.5)
        assert all(closed_by_the_server(c) for c in conns[-20:])
        assert sum(closed_by_the_server(c) for c in conns) == len(conns)
        assert proc_fds(server.pid) <= fds + 1
        assert proc_threads(server.pid) == threads
    finally:
        stop.set()
        for conn in conns:
            conn.close()
        server.communicate(b"", timeout=20)
    assert server.returncode == 0


@pytest.mark.lab
def test_a_slowloris_against_a_running_controller(controllers: Controllers) -> None:
    """`sitectl controller run` against the ensemble: hundreds of idle connections leave
    its thread count alone and /healthz answering."""
    controllers.start("dc1")
    wait_for(lambda: controllers.status("dc1").get("decision"), "the controller decides")
    pid = controllers.procs["dc1"].pid
    host, port = controllers.address("dc1").split(":")
    for _ in range(3 * WORKERS):
        controllers.get("dc1", "/healthz")
    threads = proc_threads(pid)
    conns = slowloris((host, int(port)), idle=300, dribbling=0)
    try:
        for _ in range(10):
            started = time.monotonic()
            controllers.get("dc1", "/healthz")  # 200, or urllib raises
            assert time.monotonic() - started < 1.5
            time.sleep(0.1)
        # The controller's own threads come and go a little (a probe, a hook); the
        # 300 connections would have made 300.
        assert proc_threads(pid) <= threads + 2
        assert controllers.status("dc1")["site"] == "dc1"
    finally:
        for conn in conns:
            conn.close()
