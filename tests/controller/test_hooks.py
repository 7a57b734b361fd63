"""Hooks run for real: commands through the OS, webhooks against a local HTTP server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from orchestrator.controller.hooks import Hooks

EVENT = {"from_site": "dc1", "to_site": "dc2", "sentence": "dc1 down for 3 probes"}


def test_no_hook_allows() -> None:
    result = Hooks().run("pre-failover", EVENT)
    assert (result.ran, result.ok) == (False, True)


def test_a_zero_exit_allows_and_sees_the_event(tmp_path) -> None:
    seen = tmp_path / "seen.json"
    hooks = Hooks({"pre-failover": f"sh -c 'cat > {seen}; test \"$SITECTL_TO_SITE\" = dc2'"})
    result = hooks.run("pre-failover", EVENT)
    assert result.ok, result.detail
    assert json.loads(seen.read_text()) == {"event": "pre-failover", **EVENT}


def test_a_non_zero_exit_vetoes_and_says_why() -> None:
    result = Hooks({"pre-failover": "sh -c 'echo change freeze >&2; exit 3'"}).run(
        "pre-failover", EVENT
    )
    assert not result.ok
    assert result.sentence() == (
        "pre-failover hook refused: \"sh -c 'echo change freeze >&2; exit 3'\" exited 3: "
        "change freeze"
    )


def test_a_hook_that_hangs_is_cut_off_and_vetoes() -> None:
    result = Hooks({"pre-failover": "sleep 30"}, timeout=0.5).run("pre-failover", EVENT)
    assert not result.ok
    assert result.detail == "'sleep 30' ran over 0.5 s"


def test_a_missing_command_vetoes() -> None:
    result = Hooks({"pre-failover": "/nonexistent/hook"}).run("pre-failover", EVENT)
    assert not result.ok
    assert result.detail == "'/nonexistent/hook' could not run (No such file or directory)"


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict], list[int]]]:
    received: list[dict] = []
    answers = [204]

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            received.append(json.loads(self.rfile.read(length)))
            self.send_response(answers[0])
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hook", received, answers
    finally:
        server.shutdown()


def test_a_webhook_gets_the_event_and_its_status_decides(webhook) -> None:
    url, received, answers = webhook
    assert Hooks({"post-failover": url}).run("post-failover", EVENT).ok
    assert received == [{"event": "post-failover", **EVENT}]
    answers[0] = 409
    refused = Hooks({"pre-failover": url}).run("pre-failover", EVENT)
    assert not refused.ok and refused.detail == f"{url} answered 409"


def test_a_webhook_nobody_answers_vetoes() -> None:
    result = Hooks({"pre-failover": "http://127.0.0.1:9/hook"}, timeout=1).run(
        "pre-failover", EVENT
    )
    assert not result.ok and result.detail.startswith("http://127.0.0.1:9/hook did not answer")


def test_bad_hook_specs_are_refused_with_the_fix() -> None:
    with pytest.raises(ValueError, match="write EVENT=COMMAND with EVENT one of pre-failover"):
        Hooks.parse(["on-failover=/bin/true"], 5)
    assert Hooks.parse(["pre-failover=/bin/true"], 5).commands == {"pre-failover": "/bin/true"}


def test_a_hook_gets_the_allow_list_and_its_event_not_the_controllers_secrets(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hook that dumps its environment: what the controller exported (a secret the
    topology reads from the environment, a token no topology names) is not in it."""
    planted = {"ZIMBRA_LDAP_PASSWORD": "hook-r8-ldap-pw-canary", "VENDOR_TOKEN": "hook-r8-token"}
    for name, value in planted.items():
        monkeypatch.setenv(name, value)
    dump = tmp_path / "env.txt"
    result = Hooks({"post-failover": f"sh -c 'env > {dump}'"}).run("post-failover", EVENT)
    assert result.ok, result.detail
    seen = dict(line.split("=", 1) for line in dump.read_text().splitlines() if "=" in line)
    assert seen["SITECTL_EVENT"] == "post-failover" and seen["SITECTL_TO_SITE"] == "dc2"
    assert "PATH" in seen
    assert not [v for v in planted.values() if v in dump.read_text()]
    allowed = {"PATH", "HOME", "LANG", "LANGUAGE", "TZ", "PWD", "SHLVL", "_"}  # sh adds 3
    assert {k for k in seen if not k.startswith(("SITECTL_", "LC_"))} <= allowed, seen
