"""The LDAP fence (R4 for LDAP) against the lab's four OpenLDAP multi-providers: the
server itself refuses, through the assertion control, a change that asserts an epoch
older than the one the entry holds."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import ldap3
import pytest

from orchestrator.adapters import ldap_fence
from orchestrator.adapters.ldap_fence import Stale, fenced_modify, raise_epoch
from orchestrator.checks import ldap as ldap_checks
from orchestrator.config import Topology, load_topology
from orchestrator.config.model import LdapMaster
from orchestrator.errors import Failed
from tests.conftest import LabHandle, eventually

CLASS = "organizationalRole"


@pytest.fixture(scope="module")
def topo(lab: LabHandle) -> Topology:
    return load_topology(Path(lab.env["topology"]))


@contextmanager
def connection(topo: Topology, master: LdapMaster) -> Iterator[ldap3.Connection]:
    conn = ldap_checks.connect(topo, master, 5)
    try:
        yield conn
    finally:
        ldap_checks.close(conn)


@pytest.fixture
def entries(topo: Topology) -> Iterator[dict[LdapMaster, str]]:
    """An entry per master, written only on that master, as the controller's canaries
    are; deleted afterwards."""
    assert topo.ldap is not None
    made = {
        m: f"cn=sitectl-fence-test-sid{m.server_id},{topo.ldap.suffix}" for m in topo.ldap.masters
    }
    yield made
    for master, dn in made.items():
        with connection(topo, master) as conn:
            conn.delete(dn)


def change(text: str) -> dict[str, Any]:
    return {"description": [(ldap3.MODIFY_REPLACE, [text])]}


def shown(topo: Topology, master: LdapMaster, dn: str) -> dict[str, list[str]]:
    with connection(topo, master) as conn:
        assert conn.search(
            dn, "(objectClass=*)", search_scope=ldap3.BASE, attributes=["description", "ou"]
        ), conn.result
        found = conn.entries[0].entry_attributes_as_dict
        return {k: sorted(str(v) for v in found.get(k, [])) for k in ("description", "ou")}


@pytest.mark.lab
def test_a_stale_epoch_is_refused_on_every_master(
    topo: Topology, entries: dict[LdapMaster, str]
) -> None:
    for master, dn in entries.items():
        with connection(topo, master) as conn:
            assert raise_epoch(conn, dn, 7, CLASS, {"description": "made at 7"}) is None
            with pytest.raises(Stale, match=r"^epoch 7 holds the fence, we are 5$"):
                fenced_modify(conn, dn, change("from 5"), 5, CLASS, {})
            with pytest.raises(Stale):
                raise_epoch(conn, dn, 6, CLASS, {})  # an old leader cannot raise it back
            fenced_modify(conn, dn, change("from 7"), 7, CLASS, {})  # the current one can
        assert shown(topo, master, dn) == {"description": ["from 7"], "ou": ["sitectl-epoch=7"]}


@pytest.mark.lab
def test_a_new_leaders_raise_refuses_the_old_leaders_next_canary(
    topo: Topology, entries: dict[LdapMaster, str]
) -> None:
    master, dn = next(iter(entries.items()))
    with connection(topo, master) as old, connection(topo, master) as new:
        # The old leader's first canary creates the entry under its epoch.
        fenced_modify(old, dn, change("old 1"), 5, CLASS, {"description": "old 1"})
        assert raise_epoch(new, dn, 6, CLASS, {}) == 5
        with pytest.raises(Stale, match="epoch 6 holds the fence, we are 5") as refused:
            fenced_modify(old, dn, change("old 2"), 5, CLASS, {})
        assert (refused.value.held, refused.value.ours) == (6, 5)
        fenced_modify(new, dn, change("new 1"), 6, CLASS, {})
    assert shown(topo, master, dn) == {"description": ["new 1"], "ou": ["sitectl-epoch=6"]}
    # Replication carries the epoch to the other masters, which then refuse it too
    # (only the entry's own master is relied on: it holds the epoch before any write).
    others = [m for m in entries if m != master]
    eventually(
        lambda: all(shown(topo, m, dn)["ou"] == ["sitectl-epoch=6"] for m in others),
        "the raised epoch replicated to every master",
    )
    for other in others:
        with connection(topo, other) as conn, pytest.raises(Stale):
            fenced_modify(conn, dn, change("old, elsewhere"), 5, CLASS, {})
        assert shown(topo, other, dn)["description"] == ["new 1"]


@pytest.mark.lab
def test_raises_racing_for_one_entry_never_both_pass(
    topo: Topology, entries: dict[LdapMaster, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The raise is a compare-and-set on the value read: a newer leader's raise landing
    between an older one's read and write makes the older one's assertion fail; it
    reads again and finds itself stale, rather than overwrite the newer epoch."""
    master, dn = next(iter(entries.items()))
    with connection(topo, master) as conn, connection(topo, master) as rival:
        raise_epoch(conn, dn, 3, CLASS, {})
        real_read = ldap_fence.read
        raced: list[bool] = []

        def read_then_lose_the_race(c: ldap3.Connection, target: str) -> tuple[bool, list[str]]:
            answer = real_read(c, target)
            if c is conn and not raced:
                raced.append(True)
                raise_epoch(rival, dn, 8, CLASS, {})
            return answer

        monkeypatch.setattr(ldap_fence, "read", read_then_lose_the_race)
        with pytest.raises(Stale, match="epoch 8 holds the fence, we are 4"):
            raise_epoch(conn, dn, 4, CLASS, {})
    assert raced and shown(topo, master, dn)["ou"] == ["sitectl-epoch=8"]


@pytest.mark.lab
def test_an_entry_from_before_fencing_is_raised_and_garbage_is_refused(
    topo: Topology, entries: dict[LdapMaster, str]
) -> None:
    master, dn = next(iter(entries.items()))
    with connection(topo, master) as conn:
        assert conn.add(dn, [CLASS], {"description": "written before fencing"}), conn.result
        fenced_modify(conn, dn, change("fenced"), 2, CLASS, {})
        assert shown(topo, master, dn) == {"description": ["fenced"], "ou": ["sitectl-epoch=2"]}
        assert conn.modify(dn, {"ou": [(ldap3.MODIFY_REPLACE, ["sales"])]}), conn.result
        with pytest.raises(Failed, match=r"holds \['sales'\], not one sitectl-epoch=N"):
            fenced_modify(conn, dn, change("guessing"), 9, CLASS, {})
    assert shown(topo, master, dn)["description"] == ["fenced"]


def test_the_assertion_is_the_ber_filter_of_rfc_4528() -> None:
    """The control's value is an RFC 4511 Filter: equality on `ou`, or NOT present."""
    oid, critical, value = ldap_fence.asserting("sitectl-epoch=5")
    assert (oid, critical) == ("1.3.6.1.1.12", True)
    assert (
        value == bytes([0xA3, 0x15, 0x04, 0x02]) + b"ou" + bytes([0x04, 0x0F]) + b"sitectl-epoch=5"
    )
    assert ldap_fence.asserting(None)[2] == bytes([0xA2, 0x04, 0x87, 0x02]) + b"ou"
