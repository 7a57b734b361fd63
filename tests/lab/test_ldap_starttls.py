"""The lab's slapd enforces StartTLS (issue 8): nothing but StartTLS itself in clear.

A plain ldap:// connection that skips StartTLS gets confidentialityRequired for a simple
bind (whatever the password, so the clear text is never even checked) and for an
anonymous read; the same bind after StartTLS works, on every one of the four masters.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import ldap3
import pytest

from orchestrator.lab import layout
from orchestrator.lab.ldap import connect
from tests.conftest import LabHandle

pytestmark = pytest.mark.lab

CONFIDENTIALITY_REQUIRED = 13


def _plain(uri: str, user: str | None, password: str | None) -> ldap3.Connection:
    """A connection that never starts TLS: what a careless client would send."""
    server = ldap3.Server(uri, get_info=ldap3.NONE, connect_timeout=5)
    conn = ldap3.Connection(
        server, user=user, password=password, receive_timeout=5, raise_exceptions=False
    )
    conn.open()
    assert not conn.tls_started
    return conn


@pytest.mark.parametrize("password", ["the admin password", "a wrong password"])
def test_a_simple_bind_in_clear_is_refused_on_every_master(lab: LabHandle, password: str) -> None:
    secret = lab.ldap_password if password == "the admin password" else "not-" + lab.ldap_password
    for name, uri in lab.env["ldap"]["uris"].items():
        conn = _plain(uri, layout.ADMIN_DN, secret)
        try:
            assert not conn.bind(), f"{name} accepted a simple bind without StartTLS"
            assert conn.result["result"] == CONFIDENTIALITY_REQUIRED, (name, conn.result)
            assert conn.result["description"] == "confidentialityRequired", (name, conn.result)
        finally:
            conn.unbind()


def test_an_anonymous_read_in_clear_is_refused(lab: LabHandle) -> None:
    for name, uri in lab.env["ldap"]["uris"].items():
        conn = _plain(uri, None, None)
        try:
            base = f"uid={layout.MAIL_USER},ou=people,{layout.SUFFIX}"
            assert not conn.search(base, "(objectClass=*)", ldap3.BASE, attributes=["mail"])
            assert conn.result["result"] == CONFIDENTIALITY_REQUIRED, (name, conn.result)
            assert conn.entries == []
        finally:
            conn.unbind()


def test_the_same_bind_after_starttls_works(lab: LabHandle) -> None:
    ca = Path(lab.env["ldap"]["ca_file"])
    for name, uri in lab.env["ldap"]["uris"].items():
        conn = connect(uri, ca, lab.ldap_password)
        try:
            assert conn.tls_started, name
            assert conn.extend.standard.who_am_i() == f"dn:{layout.ADMIN_DN}", name
        finally:
            conn.unbind()


def test_starttls_on_the_same_connection_lifts_the_refusal(lab: LabHandle) -> None:
    """The refusal is about the channel, not the client: after a refused clear bind, the
    same connection starts TLS and binds."""
    uri = lab.env["ldap"]["uris"]["dc2-ldap1"]
    tls = ldap3.Tls(ca_certs_file=lab.env["ldap"]["ca_file"], validate=ssl.CERT_REQUIRED)
    server = ldap3.Server(uri, tls=tls, get_info=ldap3.NONE, connect_timeout=5)
    conn = ldap3.Connection(
        server,
        user=layout.ADMIN_DN,
        password=lab.ldap_password,
        receive_timeout=5,
        raise_exceptions=False,
    )
    conn.open()
    try:
        assert not conn.bind()
        assert conn.result["result"] == CONFIDENTIALITY_REQUIRED, conn.result
        assert conn.start_tls()
        assert conn.bind(), conn.result
    finally:
        conn.unbind()
