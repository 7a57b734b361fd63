"""TSIG keys: from the file `tsig-keygen` writes, or from a name plus a SecretRef.

dnspython's own `dns.tsig.Key` prints its secret in its repr, so it is kept inside
`TsigKey` with repr disabled and handed only to dnspython's message constructors.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from pathlib import Path

import dns.exception
import dns.name
import dns.tsig

from orchestrator.adapters.secrets import Secret, SecretError, read_private_text, read_secret
from orchestrator.config.model import Tsig
from orchestrator.config.weak import KEY_FILE_ALGORITHM
from orchestrator.errors import Failed

# BIND's spellings → dnspython's algorithm names. hmac-md5 and sha1 are still found in
# old key files; refusing them would strand operators mid-migration.
ALGORITHMS: dict[str, dns.name.Name] = {
    "hmac-md5": dns.tsig.HMAC_MD5,
    "hmac-md5.sig-alg.reg.int": dns.tsig.HMAC_MD5,
    "hmac-sha1": dns.tsig.HMAC_SHA1,
    "hmac-sha224": dns.tsig.HMAC_SHA224,
    "hmac-sha256": dns.tsig.HMAC_SHA256,
    "hmac-sha384": dns.tsig.HMAC_SHA384,
    "hmac-sha512": dns.tsig.HMAC_SHA512,
}

_FIX = "write the output of `tsig-keygen -a hmac-sha256 NAME` into it (mode 0600)"
# Quoted strings first, so a comment marker inside one ("//" is common in base64: about
# one key in a hundred) is kept as text rather than cutting the secret short.
_COMMENTS = re.compile(r'"[^"]*"|/\*.*?\*/|//[^\n]*|#[^\n]*', re.S)
_KEY_BLOCK = re.compile(r'\bkey\s+("([^"]+)"|([A-Za-z0-9_.\-]+))\s*\{(.*?)\}\s*;', re.S)
_SECRET = re.compile(r'\bsecret\s+"([^"]*)"\s*;')


class TsigError(Failed):
    """A TSIG key cannot be used as given: fix the file or the reference."""


@dataclass(frozen=True)
class TsigKey:
    """A loaded key: its name and algorithm are safe to print, its secret never is."""

    name: dns.name.Name
    algorithm: str  # BIND spelling, e.g. "hmac-sha256"
    source: str  # where it came from, for messages
    _key: dns.tsig.Key = field(repr=False, compare=False)

    @property
    def keyring(self) -> dict[dns.name.Name, dns.tsig.Key]:
        return {self.name: self._key}

    @property
    def keyalgorithm(self) -> dns.name.Name:
        return ALGORITHMS[self.algorithm]

    def __str__(self) -> str:
        return f"TSIG key {self.name} ({self.algorithm}, from {self.source})"


@dataclass(frozen=True)
class _ParsedKey:
    name: str
    algorithm: str | None
    secret: str | None = field(repr=False)


def parse_key_text(text: str, source: str) -> list[_ParsedKey]:
    """Every `key` statement in BIND syntax; pure, so it is table-tested."""
    stripped = _COMMENTS.sub(lambda m: m.group() if m.group().startswith('"') else "", text)
    keys = []
    for match in _KEY_BLOCK.finditer(stripped):
        body = match.group(4)
        algorithm = KEY_FILE_ALGORITHM.search(body)
        secret = _SECRET.search(body)
        keys.append(
            _ParsedKey(
                name=match.group(2) or match.group(3),
                algorithm=algorithm.group(1).lower() if algorithm else None,
                secret=secret.group(1) if secret else None,
            )
        )
    if not keys:
        raise TsigError(
            f"{source} holds no key statement — expected "
            f'key "NAME" {{ algorithm hmac-sha256; secret "BASE64"; }}; {_FIX}'
        )
    return keys


def make_key(name: str, algorithm: str | None, secret: Secret | str | None, source: str) -> TsigKey:
    """Check each part and build the key; messages name the source, never the secret."""
    if algorithm is None:
        raise TsigError(
            f"{source}: key {_show(name)} has no algorithm — add `algorithm hmac-sha256;`"
        )
    algorithm = algorithm.lower()
    if algorithm not in ALGORITHMS:
        raise TsigError(
            f"{source}: key {_show(name)} uses algorithm {_show(algorithm)}, which sitectl "
            f"does not know — use one of {', '.join(sorted(ALGORITHMS))}"
        )
    value = secret.reveal() if isinstance(secret, Secret) else secret
    if not value:
        raise TsigError(f'{source}: key {_show(name)} has no secret — add `secret "BASE64";`')
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise TsigError(
            f"{source}: the secret of key {_show(name)} is not valid base64 — "
            "regenerate it with tsig-keygen"
        ) from None
    if not raw:
        raise TsigError(f"{source}: the secret of key {_show(name)} is empty")
    keyname = _key_name(name, source)
    return TsigKey(keyname, algorithm, source, dns.tsig.Key(keyname, raw, ALGORITHMS[algorithm]))


def load_key_file(path: Path, name: str | None = None) -> TsigKey:
    """The key in a BIND key file; `name` picks one when the file holds several.

    The file is checked as every secret file is (adapters/secrets.read_private_text):
    one its group or others may read is refused, not warned about."""
    if not path.exists() and not path.is_symlink():
        raise TsigError(f"TSIG key file {path} does not exist — {_FIX}")
    try:
        text = read_private_text(path, "TSIG key file")
    except SecretError as exc:
        raise TsigError(str(exc)) from None
    return select_key(parse_key_text(text, f"TSIG key file {path}"), name, f"TSIG key file {path}")


def select_key(keys: list[_ParsedKey], name: str | None, source: str) -> TsigKey:
    if name is not None:
        wanted = _key_name(name, source)
        matching = [k for k in keys if _same_name(k.name, wanted)]
        if not matching:
            found = ", ".join(_show(k.name) for k in keys)
            raise TsigError(
                f"{source} has no key named {_show(name)} (it holds {found}) — fix "
                "tsig.name or the file"
            )
        chosen = matching[0]
    elif len(keys) > 1:
        found = ", ".join(_show(k.name) for k in keys)
        raise TsigError(f"{source} holds several keys ({found}) — set tsig.name to choose one")
    else:
        chosen = keys[0]
    return make_key(chosen.name, chosen.algorithm, chosen.secret, source)


def _key_name(name: str, source: str) -> dns.name.Name:
    try:
        return dns.name.from_text(name)
    except dns.exception.DNSException:
        raise TsigError(f"{source}: {_show(name)} is not a valid key name") from None


def _same_name(text: str, wanted: dns.name.Name) -> bool:
    try:
        return dns.name.from_text(text) == wanted
    except dns.exception.DNSException:
        return False  # a malformed name in the file is not the one asked for


def _show(text: str) -> str:
    """A name from the file as it may appear in a one-line message."""
    if text.isprintable() and not any(c.isspace() for c in text):
        return text
    return repr(text)


def load_tsig(tsig: Tsig, base_dir: Path) -> TsigKey:
    """The topology's `tsig` section as a key (files are relative to `base_dir`)."""
    if tsig.key_file is not None:
        return load_key_file((base_dir / tsig.key_file).resolve(), tsig.name)
    assert tsig.name is not None and tsig.secret is not None  # Tsig's validator
    secret = read_secret(tsig.secret, base_dir)
    return make_key(tsig.name, tsig.algorithm, secret, f"tsig secret {secret.source}")
