"""What the old site holds that the active site does not, and what to do about it (pure).

Rules, in order:

1. A mail message is divergent when its identity (its Message-ID, or the digest of its
   bytes when it has none) is in the old site's copy, not in the last copy both sites
   shared (the mirror's last common snapshot: a message deleted at the active site since
   then is not brought back), and not in the active site's copy. Two files with one
   identity are one message: the first (by path) is salvaged.
2. An object is divergent when the old site's bucket holds its key and the active's does
   not, or holds it with another ETag. An absent key is copied under the same key; a key
   the active site holds differently is never overwritten: the old site's version is
   copied beside it, under `salvaged/<ETag>/<key>` (the same content always lands on the
   same key, so salvaging twice copies nothing twice). Objects under the salvage prefix
   or sitectl's own prefix are never salvaged again.
3. An LDAP entry is reported when a master of the old site holds it with an entryCSN
   written by one of the old site's servers at or after the takeover; it is "replicated"
   when the active site's masters hold the same CSN, else "differs" (or "missing").
   LDAP is reported, not salvaged: multi-provider replication has already resolved it by
   last writer wins, and a person decides whether the loser mattered.
4. The reprotect may go on when nothing divergent is left unsalvaged and no copy was
   left uninspected; otherwise only with a reason to discard it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from orchestrator.checks.csn import CsnError, parse_csn

SALVAGE_PREFIX = "salvaged/"


@dataclass(frozen=True, order=True)
class MailItem:
    """One message file of a Maildir, relative to the volume's root."""

    maildir: str  # the Maildir's directory, e.g. "mail/alice/Maildir"
    name: str  # the file's name inside cur/ or new/
    subdir: str  # "cur" or "new"
    identity: str  # its Message-ID, or "sha256:<hex>" when it has none

    @property
    def path(self) -> str:
        return f"{self.maildir}/{self.subdir}/{self.name}"

    @property
    def base_name(self) -> str:
        """The name without Maildir's info suffix (":2,S"): the same message in new/
        and, once read, in cur/."""
        return self.name.split(":", 1)[0]


def identities(items: Iterable[MailItem]) -> frozenset[str]:
    return frozenset(item.identity for item in items)


def divergent_mail(
    old: Iterable[MailItem], base: Iterable[str] | None, active: Iterable[str]
) -> list[MailItem]:
    """Rule 1. `base`: identities in the last common copy, None when unknown (then
    everything the active site lacks counts)."""
    known = set(active) | set(base or ())
    found: list[MailItem] = []
    for item in sorted(old, key=lambda i: i.path):
        if item.identity in known:
            continue
        known.add(item.identity)
        found.append(item)
    return found


@dataclass(frozen=True)
class ObjectInfo:
    etag: str
    size: int = 0


class CopyKind(StrEnum):
    MISSING = "missing"  # the active site has no such key: copied under it
    CONFLICT = "conflict"  # the active site holds it differently: copied beside it


@dataclass(frozen=True)
class ObjectCopy:
    key: str  # at the old site
    target_key: str  # at the active site
    etag: str
    kind: CopyKind


def salvage_key(key: str, etag: str) -> str:
    return f"{SALVAGE_PREFIX}{etag.strip(chr(34))}/{key}"


def divergent_objects(
    old: Mapping[str, ObjectInfo], active: Mapping[str, ObjectInfo]
) -> list[ObjectCopy]:
    """Rule 2: the copies that would make the active site hold every old-site version."""
    copies = []
    for key, info in sorted(old.items()):
        if key.startswith(SALVAGE_PREFIX):
            continue
        held = active.get(key)
        if held is not None and held.etag == info.etag:
            continue
        if held is None:
            copies.append(ObjectCopy(key, key, info.etag, CopyKind.MISSING))
            continue
        target = salvage_key(key, info.etag)
        there = active.get(target)
        if there is not None and there.etag == info.etag:
            continue  # salvaged before
        copies.append(ObjectCopy(key, target, info.etag, CopyKind.CONFLICT))
    return copies


class LdapState(StrEnum):
    REPLICATED = "replicated"  # the active site holds the same change
    DIFFERS = "differs"  # the active site holds another version (another CSN)
    MISSING = "missing"  # the active site does not hold the entry at all


@dataclass(frozen=True)
class LdapChange:
    dn: str
    csn: str  # the old site's entryCSN
    active_csn: str | None
    state: LdapState


def ldap_changes(
    old: Mapping[str, str],
    active: Mapping[str, str],
    since: float,
    old_server_ids: Iterable[int],
) -> list[LdapChange]:
    """Rule 3. `old`, `active`: DN → entryCSN (the newest a site's masters hold);
    `since`: the takeover, UNIX seconds."""
    sids = set(old_server_ids)
    changes = []
    for dn, text in sorted(old.items()):
        try:
            csn = parse_csn(text)
        except CsnError:
            continue  # not a change any server of ours wrote
        if csn.sid not in sids or csn.time < since:
            continue
        theirs = active.get(dn)
        if theirs is None:
            state = LdapState.MISSING
        elif theirs == text:
            state = LdapState.REPLICATED
        else:
            state = LdapState.DIFFERS
        changes.append(LdapChange(dn, text, theirs, state))
    return changes


def newest_csns(listings: Iterable[Mapping[str, str]]) -> dict[str, str]:
    """DN → the newest entryCSN any of the listings (one per master) holds."""
    newest: dict[str, str] = {}
    for listing in listings:
        for dn, text in listing.items():
            if dn not in newest or _csn_key(text) > _csn_key(newest[dn]):
                newest[dn] = text
    return newest


def _csn_key(text: str) -> tuple[float, int, int, int]:
    try:
        csn = parse_csn(text)
    except CsnError:
        return (0.0, 0, 0, 0)
    return (csn.time, csn.count, csn.sid, csn.mod)


@dataclass(frozen=True)
class Residual:
    """What is still divergent once salvage has run: left on the old site only."""

    mail: tuple[str, ...] = ()  # "volume: path (identity)"
    objects: tuple[str, ...] = ()  # "bucket/key"
    uninspected: tuple[str, ...] = ()  # copies sitectl could not read, and why

    @property
    def empty(self) -> bool:
        return not (self.mail or self.objects or self.uninspected)

    def describe(self) -> str:
        parts = []
        if self.mail:
            parts.append(f"{len(self.mail)} mail message(s) ({_first(self.mail)})")
        if self.objects:
            parts.append(f"{len(self.objects)} object(s) ({_first(self.objects)})")
        if self.uninspected:
            parts.append(f"copies not inspected: {'; '.join(self.uninspected)}")
        return ", ".join(parts) if parts else "nothing"


def _first(items: tuple[str, ...], shown: int = 3) -> str:
    more = f", and {len(items) - shown} more" if len(items) > shown else ""
    return ", ".join(items[:shown]) + more


@dataclass(frozen=True)
class Decision:
    proceed: bool
    discarded: bool  # going on although something divergent is left behind
    sentence: str


def decide(residual: Residual, old_site: str, discard_reason: str | None) -> Decision:
    """Rule 4, as one sentence each way."""
    if residual.empty:
        return Decision(
            True, False, f"nothing divergent is left on {old_site}: the mirrors may be reversed"
        )
    left = residual.describe()
    if discard_reason:
        return Decision(
            True,
            True,
            f"discarding what {old_site} holds unsalvaged — {left} — because {discard_reason!r}",
        )
    return Decision(
        False,
        False,
        f"{old_site} holds what the active site lacks and salvage could not carry: {left}; "
        'salvage it by hand, or rerun with --discard-divergent "REASON" to discard it',
    )
