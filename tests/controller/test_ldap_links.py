"""The LDAP connections the leader keeps between canaries (controller/ldap_links.py),
with stand-in connections: one connection per master while it works, a new one when it
broke, and no retry where a retry would only wait again or repeat a refusal."""

from __future__ import annotations

from typing import Any

import pytest
from ldap3.core.exceptions import LDAPSessionTerminatedByServerError, LDAPSocketReceiveError

from orchestrator.checks.ldap import Unusable
from orchestrator.config.model import LdapMaster
from orchestrator.controller.ldap_links import LdapLinks
from orchestrator.errors import LeaseLost

MASTER = LdapMaster(uri="ldap://127.0.1.11:389", server_id=1, site="dc1")
TOPO: Any = None  # the stand-in connect never reads it


class Conn:
    def __init__(self, number: int) -> None:
        self.number, self.closed = number, False

    def unbind(self) -> None:
        self.closed = True


class Directory:
    """Hands out numbered connections; `refuse` makes opening one fail."""

    def __init__(self) -> None:
        self.opened: list[Conn] = []
        self.refuse = ""

    def connect(self, topo: Any, master: LdapMaster, timeout: float) -> Conn:
        if self.refuse:
            raise Unusable(self.refuse)
        self.opened.append(Conn(len(self.opened) + 1))
        return self.opened[-1]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def directory() -> Directory:
    return Directory()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def links(directory: Directory, clock: Clock) -> LdapLinks:
    return LdapLinks(connect=directory.connect, clock=clock, max_age=600)  # type: ignore[arg-type]


def number(conn: Any) -> int:
    return int(conn.number)


def test_one_connection_serves_every_canary(links: LdapLinks, directory: Directory) -> None:
    assert [links.run(TOPO, MASTER, 1.0, number) for _ in range(3)] == [1, 1, 1]
    assert len(directory.opened) == 1 and not directory.opened[0].closed


def test_a_connection_the_server_dropped_is_replaced_and_the_canary_still_written(
    links: LdapLinks, directory: Directory
) -> None:
    links.run(TOPO, MASTER, 1.0, number)

    def write(conn: Any) -> int:
        if conn.number == 1:  # the master restarted since: the old session is gone
            raise LDAPSessionTerminatedByServerError("session terminated by server")
        return number(conn)

    assert links.run(TOPO, MASTER, 1.0, write) == 2
    assert directory.opened[0].closed
    assert links.run(TOPO, MASTER, 1.0, number) == 2  # and the new one is kept


def test_a_hung_master_costs_one_timeout_not_two(
    links: LdapLinks, directory: Directory, clock: Clock
) -> None:
    links.run(TOPO, MASTER, 1.0, number)

    def hang(conn: Any) -> int:
        clock.now += 1.0  # the whole receive timeout went by without an answer
        raise LDAPSocketReceiveError("error receiving data: The read operation timed out")

    with pytest.raises(Unusable, match=r"did not answer within 1 s"):
        links.run(TOPO, MASTER, 1.0, hang)
    assert len(directory.opened) == 1  # no second try on a fresh connection


def test_a_broken_fresh_connection_is_not_retried(links: LdapLinks, directory: Directory) -> None:
    def drop(conn: Any) -> int:
        raise LDAPSessionTerminatedByServerError("session terminated by server")

    with pytest.raises(Unusable, match="the server closed the connection"):
        links.run(TOPO, MASTER, 1.0, drop)
    assert len(directory.opened) == 1 and directory.opened[0].closed


def test_a_refusal_is_never_retried(links: LdapLinks, directory: Directory) -> None:
    links.run(TOPO, MASTER, 1.0, number)

    def refused(conn: Any) -> int:
        raise LeaseLost("epoch 9 holds the fence, we are 7")

    with pytest.raises(LeaseLost):
        links.run(TOPO, MASTER, 1.0, refused)
    assert len(directory.opened) == 1


def test_a_master_that_cannot_be_reached_says_why(links: LdapLinks, directory: Directory) -> None:
    directory.refuse = "connection refused (slapd not running)"
    with pytest.raises(Unusable, match="slapd not running"):
        links.run(TOPO, MASTER, 1.0, number)


def test_an_old_connection_is_replaced_so_rotated_secrets_take_effect(
    links: LdapLinks, directory: Directory, clock: Clock
) -> None:
    links.run(TOPO, MASTER, 1.0, number)
    clock.now += 601
    assert links.run(TOPO, MASTER, 1.0, number) == 2
    assert directory.opened[0].closed


def test_close_unbinds_every_kept_connection(links: LdapLinks, directory: Directory) -> None:
    other = LdapMaster(uri="ldap://127.0.1.12:389", server_id=2, site="dc1")
    links.run(TOPO, MASTER, 1.0, number)
    links.run(TOPO, other, 1.0, number)
    links.close()
    assert all(conn.closed for conn in directory.opened) and len(directory.opened) == 2
