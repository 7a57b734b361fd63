"""The LDAP fence (issue 8, R4): the leader's epoch on each entry it writes, checked by
the directory server itself.

Every change the leader makes carries the assertion control (RFC 4528, OpenLDAP
supports it): "apply this only if the entry's `ou` is `sitectl-epoch=N`". The control
tests the entry being changed, so the epoch lives on that entry, not on a separate
fence entry. A new leader first moves each entry's epoch up to its own by
compare-and-set (the old value asserted, so two raises never both pass); from then on
the server refuses, as `assertionFailed`, any change still asserting an older epoch,
however late its sender wakes up.

Why `ou` and equality: the canary entries are `organizationalRole` (core schema), which
allows `ou`; it has no ordering rule, so "lower than" is a compare of the value just
read, not a filter. Why each master on its own: a raise reaches the other masters only
by replication, later; a stale write must meet the new epoch on the master it is sent
to, so callers raise the entry on the one master that the entry is written on.
"""

from __future__ import annotations

import re
from typing import Any

import ldap3
from ldap3.protocol.rfc4511 import (
    AssertionValue,
    AttributeDescription,
    EqualityMatch,
    Filter,
    Not,
    Present,
)
from pyasn1.codec.ber import encoder

from orchestrator.errors import Failed, LeaseLost

ASSERTION_OID = "1.3.6.1.1.12"
ATTRIBUTE = "ou"
PREFIX = "sitectl-epoch="
_EPOCH = re.compile(r"^sitectl-epoch=(\d{1,18})$", re.IGNORECASE)
_ROUNDS = 3
_NO_SUCH_OBJECT, _ALREADY_EXISTS, _ASSERTION_FAILED = 32, 68, 122

Control = tuple[str, bool, bytes]


class Stale(LeaseLost):
    """A newer leader's epoch holds the entry: our change was refused, not lost in
    transit, so it must never be retried."""

    def __init__(self, held: int, ours: int) -> None:
        super().__init__(f"epoch {held} holds the fence, we are {ours}")
        self.held, self.ours = held, ours


def value_of(epoch: int) -> str:
    if epoch < 0:
        raise ValueError("a fencing epoch is never negative")
    return f"{PREFIX}{epoch}"


def parse(dn: str, values: list[str]) -> int | None:
    """The epoch an entry holds, None when it holds none. Anything but one
    `sitectl-epoch=N` is refused: guessing would let a stale leader through."""
    if not values:
        return None
    match = _EPOCH.match(values[0]) if len(values) == 1 else None
    if match is None:
        raise Failed(
            f"{dn}: {ATTRIBUTE} holds {values!r}, not one {PREFIX}N — make sure no other "
            f"sitectl leader runs, then delete that {ATTRIBUTE} and let the leader set it again"
        )
    return int(match.group(1))


def asserting(value: str | None) -> Control:
    """The assertion control: the entry's epoch attribute equals `value` (None: the
    entry has no epoch yet). Critical, so a server that does not know the control
    refuses the change rather than apply it unchecked."""
    condition = Filter()
    if value is None:
        inner = Filter()
        inner["present"] = Present(ATTRIBUTE)
        negation = Not()
        negation["innerNotFilter"] = inner
        # ldap3's own compile_filter sets NOT this way (RFC 4511's recursive definition).
        condition.setComponentByName("notFilter", negation, verifyConstraints=False)
    else:
        match = EqualityMatch()
        match["attributeDesc"] = AttributeDescription(ATTRIBUTE)
        match["assertionValue"] = AssertionValue(value.encode())
        condition["equalityMatch"] = match
    return (ASSERTION_OID, True, encoder.encode(condition))


def read(conn: ldap3.Connection, dn: str) -> tuple[bool, list[str]]:
    """(entry exists, its epoch attribute's values)."""
    found = conn.search(dn, "(objectClass=*)", search_scope=ldap3.BASE, attributes=[ATTRIBUTE])
    if found and conn.entries:
        return True, [str(v) for v in conn.entries[0].entry_attributes_as_dict.get(ATTRIBUTE, [])]
    if _code(conn) == _NO_SUCH_OBJECT:
        return False, []
    raise Failed(f"reading the epoch of {dn}: {_said(conn)}")


def raise_epoch(
    conn: ldap3.Connection, dn: str, epoch: int, object_class: str, attributes: dict[str, Any]
) -> int | None:
    """Move the entry's epoch up to `epoch` by compare-and-set; return the epoch it held.
    An absent entry is created holding it (`attributes` besides). `Stale` if it holds a
    newer one."""
    for _ in range(_ROUNDS):
        exists, values = read(conn, dn)
        held = parse(dn, values)
        if held is not None and held > epoch:
            raise Stale(held, epoch)
        if held == epoch:
            return held
        if not exists:
            if conn.add(dn, [object_class], {**attributes, ATTRIBUTE: value_of(epoch)}):
                return None
            if _code(conn) == _ALREADY_EXISTS:
                continue  # created by someone else since we read: read it again
            raise Failed(f"creating {dn}: {_said(conn)}")
        change = {ATTRIBUTE: [(ldap3.MODIFY_REPLACE, [value_of(epoch)])]}
        if conn.modify(dn, change, controls=[asserting(values[0] if values else None)]):
            return held
        if _code(conn) not in (_ASSERTION_FAILED, _NO_SUCH_OBJECT):
            raise Failed(f"raising the epoch of {dn}: {_said(conn)}")
        # Changed (or deleted) between our read and our write: read it again.
    raise LeaseLost(f"{dn}: the epoch kept changing while raising it to {epoch}")


def fenced_modify(
    conn: ldap3.Connection,
    dn: str,
    changes: dict[str, Any],
    epoch: int,
    object_class: str,
    attributes: dict[str, Any],
) -> None:
    """Apply `changes` only if the entry holds our epoch, which the server checks.

    An entry that holds an older epoch or none (we have not raised it yet, or it was
    deleted) is raised first and the change asserted again; one holding a newer epoch
    raises `Stale` at once."""
    for _ in range(2):
        if conn.modify(dn, changes, controls=[asserting(value_of(epoch))]):
            return
        if _code(conn) not in (_ASSERTION_FAILED, _NO_SUCH_OBJECT):
            raise Failed(f"changing {dn}: {_said(conn)}")
        raise_epoch(conn, dn, epoch, object_class, attributes)  # Stale if a newer one holds
    raise LeaseLost(f"{dn}: the epoch kept changing under our change (epoch {epoch})")


def _code(conn: ldap3.Connection) -> int:
    result = conn.result or {}
    code = result.get("result")
    return code if isinstance(code, int) else -1


def _said(conn: ldap3.Connection) -> str:
    result = conn.result or {}
    message = " ".join(str(result.get("message", "")).split())[:200]
    return f"{result.get('description', 'no answer')}" + (f" ({message})" if message else "")
