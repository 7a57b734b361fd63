"""StartTLS asked once more after slapd's spurious operationsError, and only then.

slapd under load can refuse a brand-new connection's StartTLS with operationsError
("cannot start TLS when operations are outstanding", seen once in a full test run right
after another test closed its connections). Pure: scripted stand-ins for ldap3's
Connection, no server."""

from __future__ import annotations

import pytest
from ldap3.core import exceptions as ldap_exc

from orchestrator.checks import ldap as ldap_checks


class ScriptedConnection:
    """Answers StartTLS as scripted: "success", an LDAP result description, or "hung"."""

    def __init__(self, answer: str) -> None:
        self.answer = answer
        self.result: dict[str, str] = {}
        self.opened = self.unbound = False

    def open(self) -> None:
        self.opened = True

    def start_tls(self) -> bool:
        self.result = {"description": self.answer}
        if self.answer == "hung":
            raise ldap_exc.LDAPSocketReceiveError("timed out")
        if self.answer != "success":
            raise ldap_exc.LDAPStartTLSError(f"startTLS failed - {self.answer}")
        return True

    def unbind(self) -> None:
        self.unbound = True


@pytest.fixture
def made(monkeypatch: pytest.MonkeyPatch) -> list[ScriptedConnection]:
    monkeypatch.setattr(ldap_checks, "STARTTLS_RETRY_PAUSE_S", 0.0)
    return []


def _factory(made: list[ScriptedConnection], answers: list[str]):
    def fresh() -> ScriptedConnection:
        made.append(ScriptedConnection(answers[len(made)]))
        return made[-1]

    return fresh


@pytest.mark.parametrize(
    ("answers", "tries", "started"),
    [
        (["success"], 1, True),
        (["operationsError", "success"], 2, True),  # the spurious refusal, then TLS
        (["operationsError", "operationsError"], 2, False),  # asked once more, no more
        (["protocolError", "success"], 1, False),  # any other refusal stands
        (["unavailable", "success"], 1, False),  # slapd without TLS: no retry either
        (["hung", "success"], 1, False),  # no answer in time: not retried, and closed
    ],
)
def test_starttls_is_asked_again_only_after_operations_error(
    made: list[ScriptedConnection], answers: list[str], tries: int, started: bool
) -> None:
    fresh = _factory(made, answers)
    if started:
        conn = ldap_checks.open_with_starttls(fresh)  # type: ignore[arg-type]
        assert conn is made[-1] and not conn.unbound
    else:
        with pytest.raises(ldap_exc.LDAPException):
            ldap_checks.open_with_starttls(fresh)  # type: ignore[arg-type]
    assert len(made) == tries
    # Every refused connection was closed, each retry on a new one.
    assert all(c.opened for c in made)
    assert [c.unbound for c in made] == [c.answer != "success" for c in made]
    assert [c.result["description"] for c in made] == answers[:tries]
