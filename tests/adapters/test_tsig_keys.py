"""TSIG key files and secret references, as tables of inputs and expected outcomes."""

from __future__ import annotations

import base64
import os
import pickle
from pathlib import Path

import dns.tsig
import pytest

from orchestrator.adapters.dns.tsig import TsigError, load_key_file, load_tsig, parse_key_text
from orchestrator.adapters.secrets import Secret, SecretError, read_secret
from orchestrator.config.model import SecretRef, Tsig
from orchestrator.errors import Failed

SECRET = "70SCDhkhVT3+Mg6el+ohDaVDhPeLLKnFaF3b9rvM+Lo="
SECRET512 = (
    "BDS2RC9yS7eBZ/YPf9O60vWQn7kAX1RsAV/td0O4RK99Ms4Yoc4pjbmd1T+buJ74TtNfKekbaaRrwpAOQu6lHg=="
)
KEYGEN = f'key "ddns-key" {{\n\talgorithm hmac-sha256;\n\tsecret "{SECRET}";\n}};\n'

GOOD = [
    ("tsig-keygen output", KEYGEN, None, "ddns-key.", "hmac-sha256"),
    (
        "unquoted name, sha512, comments",
        f"# made by hand\nkey k.example. {{ // the ddns key\n algorithm HMAC-SHA512; "
        f'/* rotated */ secret "{SECRET512}"; }};',
        None,
        "k.example.",
        "hmac-sha512",
    ),
    # base64 holds "//" in about one key in a hundred; it is not a comment inside quotes.
    (
        "a secret with // in it, then a comment",
        KEYGEN.replace(SECRET, "ab//cdef" + SECRET[8:]).replace("};\n", "}; // end\n"),
        None,
        "ddns-key.",
        "hmac-sha256",
    ),
    (
        "two keys, one chosen by name",
        KEYGEN + KEYGEN.replace("ddns-key", "xfer-key"),
        "xfer-key",
        "xfer-key.",
        "hmac-sha256",
    ),
]


@pytest.mark.parametrize(
    ("case", "text", "name", "keyname", "algorithm"), GOOD, ids=[g[0] for g in GOOD]
)
def test_key_files_that_load(tmp_path: Path, case, text, name, keyname, algorithm) -> None:
    path = _private(tmp_path / "k.key", text)
    key = load_key_file(path, name)
    assert key.name.to_text() == keyname
    assert key.algorithm == algorithm
    assert set(key.keyring) == {key.name}
    assert isinstance(key.keyring[key.name], dns.tsig.Key)
    secret = next(line for line in text.splitlines() if "secret" in line).split('"')[1]
    assert key.keyring[key.name].secret == base64.b64decode(secret), "the whole secret"


BAD = [
    ("empty file", "", None, "holds no key statement"),
    ("not BIND syntax", "ddns-key:" + SECRET, None, "holds no key statement"),
    ("no algorithm", f'key "a" {{ secret "{SECRET}"; }};', None, "has no algorithm"),
    ("no secret", 'key "a" { algorithm hmac-sha256; };', None, "has no secret"),
    (
        "unknown algorithm",
        f'key "a" {{ algorithm hmac-rot13; secret "{SECRET}"; }};',
        None,
        "does not know",
    ),
    (
        "secret not base64",
        f'key "a" {{ algorithm hmac-sha256; secret "{SECRET[:-3]}!!"; }};',
        None,
        "not valid base64",
    ),
    ("several keys, none chosen", KEYGEN + KEYGEN.replace("ddns-key", "b"), None, "set tsig.name"),
    ("chosen key absent", KEYGEN, "other", "has no key named other"),
]


@pytest.mark.parametrize(("case", "text", "name", "says"), BAD, ids=[b[0] for b in BAD])
def test_bad_key_files_fail_naming_file_and_fix(tmp_path: Path, case, text, name, says) -> None:
    path = _private(tmp_path / "k.key", text)
    with pytest.raises(TsigError) as raised:
        load_key_file(path, name)
    message = str(raised.value)
    assert isinstance(raised.value, Failed)
    assert str(path) in message
    assert says in message
    assert SECRET[:12] not in message and SECRET512[:12] not in message


def test_a_missing_key_file_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(TsigError, match=r"does not exist — write the output of `tsig-keygen"):
        load_key_file(tmp_path / "absent.key")


def test_the_secret_never_shows_in_reprs_or_strings(tmp_path: Path) -> None:
    key = load_key_file(_private(tmp_path / "k.key", KEYGEN))
    for text in (repr(key), str(key), f"{key}", repr([key])):
        assert SECRET not in text
        assert "ddns-key" in text


def test_name_and_secret_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DDNS_SECRET", SECRET + "\n")
    key = load_tsig(Tsig(name="ddns-corp", secret=SecretRef(env="DDNS_SECRET")), tmp_path)
    assert key.name.to_text() == "ddns-corp."
    assert key.source == "tsig secret $DDNS_SECRET"
    assert SECRET not in repr(key)


def test_key_file_relative_to_the_topology(tmp_path: Path) -> None:
    _private(tmp_path / "keys" / "ddns.key", KEYGEN)
    key = load_tsig(Tsig(key_file="keys/ddns.key"), tmp_path)
    assert key.name.to_text() == "ddns-key."


def test_parse_is_pure_and_keeps_every_key() -> None:
    keys = parse_key_text(KEYGEN * 2, "test")
    assert [k.name for k in keys] == ["ddns-key", "ddns-key"]
    assert SECRET not in repr(keys)


# -- SecretRef ----------------------------------------------------------------------------

SECRET_CASES = [
    ("env set", SecretRef(env="S"), {"S": "pw\n"}, None, "pw", "$S"),
    ("env keeps inner spaces", SecretRef(env="S"), {"S": " p w "}, None, " p w ", "$S"),
    ("file", SecretRef(file="s.txt"), {}, "pw\r\n", "pw", "file "),
    ("env unset", SecretRef(env="S"), {}, None, "environment variable S is not set", None),
    ("env empty", SecretRef(env="S"), {"S": "\n"}, None, "environment variable S is empty", None),
    ("file missing", SecretRef(file="none.txt"), {}, None, "does not exist", None),
    ("file empty", SecretRef(file="s.txt"), {}, "\n", "is empty", None),
]


@pytest.mark.parametrize(
    ("case", "ref", "env", "content", "expect", "source"),
    SECRET_CASES,
    ids=[c[0] for c in SECRET_CASES],
)
def test_read_secret(tmp_path: Path, case, ref, env, content, expect, source) -> None:
    if content is not None:
        _private(tmp_path / "s.txt", content)
    if source is None:
        with pytest.raises(SecretError, match=expect):
            read_secret(ref, tmp_path, environ=env)
        return
    secret = read_secret(ref, tmp_path, environ=env)
    assert secret.reveal() == expect
    assert secret.source.startswith(source)


def test_a_secret_hides_itself() -> None:
    secret = Secret("hunter2", "$PW")
    assert "hunter2" not in repr(secret) and "hunter2" not in str(secret)
    assert "hunter2" not in f"{secret!s} {[secret]}"
    with pytest.raises(TypeError):
        pickle.dumps(secret)


def test_an_unreadable_secret_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    with pytest.raises(SecretError, match="is a directory"):
        read_secret(SecretRef(file="dir"), tmp_path)


def _private(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.chmod(path, 0o600)
    return path
