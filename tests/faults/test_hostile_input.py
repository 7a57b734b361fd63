"""Issue 8, R7: hostile input gets one of our errors with a clear message, never a raw
library exception or a traceback.

- the topology file, fuzzed (hypothesis): mutated documents, YAML tricks, binary garbage;
  the loader accepts it or raises ConfigError whose every line is `FILE:LINE: field: what
  — fix`, and `sitectl validate` exits 2 without a traceback;
- the DNS update adapter facing a real (loopback) server that answers REFUSED, NOTAUTH,
  SERVFAIL, a forged unsigned success, cut-short or garbage bytes, or hangs up;
- the verify path (UDP, TCP after truncation) facing garbage and truncated answers;
- the S3 adapter facing a moto server's refusals and a socket that answers garbage.

Already covered elsewhere, not repeated here: garbage DNS answer bytes judged purely and
hostile TSIG key files (tests/adapters/test_dns_pure.py), a blackholed DNS server and
BIND's own BADSIG/BADKEY/REFUSED/NOTAUTH (tests/adapters/test_rfc2136_lab.py), garbage
contextCSN values (tests/checks/test_csn.py), S3/LDAP/ZooKeeper error mapping in checks
(tests/checks/test_hostile_answers.py).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import dns.message
import dns.name
import dns.rcode
import dns.tsig
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.adapters.dns import (
    RecordChange,
    RetryPolicy,
    Rfc2136Provider,
    load_key_file,
    soa_serials,
    verify,
)
from orchestrator.adapters.dns.outcomes import UpdateRefused
from orchestrator.adapters.s3 import (
    keys_with_etags,
    replication_destination,
    s3_client,
    stop_replicating,
)
from orchestrator.config import load_topology
from orchestrator.config.model import DnsServer
from orchestrator.errors import ConfigError, Failed, SitectlError, Unavailable
from tests.checks.topologies import topology as store_topology
from tests.faults.peers import HostileDns, HostileHttp, bare_reply, framed, http_response, s3_error

EXAMPLE = Path(__file__).resolve().parents[2] / "inventories" / "example-zimbra"
BASE_TEXT = (EXAMPLE / "topology.yaml").read_text(encoding="utf-8")
BASE_DATA: dict[str, Any] = yaml.safe_load(BASE_TEXT)
SITECTL = str(Path(sys.executable).with_name("sitectl"))
FUZZ = settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the example's directory: the topology is rewritten per example."""
    home = tmp_path_factory.mktemp("topology")
    shutil.copy(EXAMPLE / "hosts.yml", home / "hosts.yml")
    shutil.copytree(EXAMPLE / "pki", home / "pki", dirs_exist_ok=True)  # zookeeper.tls.ca_file
    return home


def verdict(path: Path) -> list[str]:
    """Load `path`: [] if accepted, else the error's lines — each checked to name the
    file, a line, a field, what is wrong and the fix. Any other exception escapes."""
    try:
        load_topology(path)
    except ConfigError as exc:
        lines = str(exc).split("\n")
        assert lines and all(lines), f"empty problem lines: {str(exc)!r}"
        shape = re.compile(re.escape(str(path)) + r":\d+: .+: .+ — .+")
        for line in lines:
            assert shape.fullmatch(line), f"not FILE:LINE: field: what — fix: {line!r}"
        return lines
    return []


# -- what a hostile or careless editor writes ------------------------------------------

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),  # unicode, control characters, line breaks
    st.sampled_from(
        [
            "",
            "dc1",
            "dc2",
            "witness",
            "-1",
            "0x10",
            "1e999",
            "5s",
            "-5s",
            "9999999999h",
            "../../../etc/shadow",
            "a" * 3000,
            "\u202edc1",
            "127.0.0.1:99999",
            "{file: x}",
            "mail.corp.example.net",
            "\x00",
            "\ufeff",
        ]
    ),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=3)
    ),
    max_leaves=6,
)


def _paths(node: Any, here: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [here]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*here, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*here, index))
    return found


PATHS = _paths(BASE_DATA)[1:]


@st.composite
def mutated(draw: st.DrawFn) -> Any:
    """The example topology with one to four fields deleted, replaced or renamed."""
    data: Any = yaml.safe_load(BASE_TEXT)
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(PATHS))
        parent: Any = data
        try:
            for part in path[:-1]:
                parent = parent[part]
            parent[path[-1]]
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed it
        last = path[-1]
        action = draw(st.sampled_from(["delete", "replace", "rename", "wrap"]))
        if action == "delete":
            del parent[last]
        elif action == "replace":
            parent[last] = draw(VALUES)
        elif action == "rename" and isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=12))] = parent.pop(last)
        else:
            parent[last] = [parent[last]]
    if draw(st.integers(0, 9)) == 0:  # sometimes not a mapping at all
        data = draw(st.sampled_from([[data], "cluster", 42, None]))
    return data


YAML_TRICKS = [
    "&a [*a]",
    "!!python/object/apply:os.system ['true']",
    "!foo bar",
    "!!binary 'zz'",
    "!!float abc",
    "!!timestamp 2026-13-45",
    "? {a: 1}\n: x",
    "*undefined",
    "[" * 400,
    "<<: 5",
    "{a: 1, a: 2}",
    "\t- x",
    "--- \n--- \n",
    "%YAML 9.9\n---",
    "\x00",
    "\ufeff",
    "'unterminated",
    "key: value: other",
    "- - - -",
    "!!set {a, b}",
]


@st.composite
def edited_text(draw: st.DrawFn) -> str:
    """The example's text with lines repeated (duplicate keys), deleted, cut, or with a
    YAML trick or random text dropped in."""
    lines = BASE_TEXT.split("\n")
    for _ in range(draw(st.integers(1, 3))):
        if not lines:
            break  # cut, then deleted, down to nothing: the empty file is the case
        at = draw(st.integers(0, len(lines) - 1))
        action = draw(st.sampled_from(["repeat", "delete", "trick", "text", "cut"]))
        if action == "repeat":
            lines.insert(at, lines[at])
        elif action == "delete":
            del lines[at]
        elif action == "trick":
            indent = len(lines[at]) - len(lines[at].lstrip())
            key = lines[at].strip().split(":")[0] if ":" in lines[at] else "x"
            lines[at] = " " * indent + f"{key}: {draw(st.sampled_from(YAML_TRICKS))}"
        elif action == "text":
            lines[at] = draw(st.text(max_size=60))
        else:
            lines = lines[: at + 1]
            lines[-1] = lines[-1][: draw(st.integers(0, len(lines[-1])))]
    return "\n".join(lines)


@FUZZ
@given(mutated())
def test_mutated_documents_are_accepted_or_refused_line_by_line(workdir: Path, data: Any) -> None:
    path = workdir / "topology.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    verdict(path)


@FUZZ
@given(edited_text())
def test_edited_text_is_accepted_or_refused_line_by_line(workdir: Path, text: str) -> None:
    path = workdir / "topology.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    verdict(path)


@settings(FUZZ, max_examples=100)
@given(
    st.binary(max_size=400)
    | st.builds(lambda b: BASE_TEXT.encode()[:300] + b, st.binary(max_size=60))
)
def test_binary_garbage_is_refused_line_by_line(workdir: Path, blob: bytes) -> None:
    path = workdir / "topology.yaml"
    path.write_bytes(blob)
    verdict(path)


# Each found, before the fix, to escape as a raw exception or to break the one-line rule.
NASTY = {
    "recursive alias": "cluster: &a [*a]\n",
    "alias bomb": "".join(
        f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10) if i else 'x'}]\n" for i in range(9)
    )
    + "cluster: *a8\n",
    "python tag": "cluster: !!python/object/apply:os.system ['true']\n",
    "unknown tag": "cluster: !foo x\n",
    "unhashable key": "? {a: 1}\n: x\n",
    "deep nesting": "cluster: " + "[" * 1000 + "]" * 1000 + "\n",
    "line break in a key": '"a\\nb": 1\ncluster: x\n',
    "bad float": "cluster: !!float abc\n",
    "bad timestamp": "cluster: !!timestamp 2026-13-45\n",
    "NUL byte": "cluster: a\x00b\n",
    "NUL in a secret path": BASE_TEXT.replace(
        "password: {env: ZIMBRA_LDAP_PASSWORD}", 'password: {file: "a\\0b"}'
    ),
    "secret path too long": BASE_TEXT.replace(
        "password: {env: ZIMBRA_LDAP_PASSWORD}", "password: {file: " + "p" * 5000 + "}"
    ),
    "inventory path too long": BASE_TEXT.replace(
        "inventory: hosts.yml", "inventory: " + "i" * 5000
    ),
    "a list": "- cluster: x\n",
    "empty": "",
}


@pytest.mark.parametrize("name", list(NASTY))
def test_nasty_files_are_one_line_problems(workdir: Path, name: str) -> None:
    path = workdir / "topology.yaml"
    path.write_text(NASTY[name], encoding="utf-8")
    assert verdict(path), f"{name} was accepted"


def test_the_cli_refuses_nasty_files_without_a_traceback(tmp_path: Path) -> None:
    """The real `sitectl validate` (a subprocess, as an operator runs it): exit 2, every
    line names the file, no traceback — also with --json and for unreadable paths."""
    shutil.copy(EXAMPLE / "hosts.yml", tmp_path / "hosts.yml")
    shutil.copytree(EXAMPLE / "pki", tmp_path / "pki", dirs_exist_ok=True)  # zookeeper.tls.ca_file
    runs: list[tuple[Path, bool]] = []
    for index, name in enumerate(
        ["recursive alias", "python tag", "NUL in a secret path", "line break in a key"]
    ):
        path = tmp_path / f"t{index}.yaml"
        path.write_text(NASTY[name], encoding="utf-8")
        runs.append((path, index == 1))  # one of them with --json
    garbage = tmp_path / "garbage.yaml"
    garbage.write_bytes(bytes(range(256)) * 4)
    runs += [(garbage, False), (tmp_path, False)]  # binary garbage; a directory
    # Started together: each spends most of its time importing sitectl.
    started = [
        subprocess.Popen(
            [SITECTL, "validate", "-c", str(path), *(["--json"] if as_json else [])],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for path, as_json in runs
    ]
    for (path, as_json), proc in zip(runs, started, strict=True):
        stdout, stderr = proc.communicate(timeout=120)
        done = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
        said = done.stdout + done.stderr
        assert done.returncode == 2, said
        assert "Traceback" not in said, said
        if as_json:
            problems = json.loads(done.stdout)["problems"]
            assert problems and all(p["file"] == str(path) for p in problems), said
        else:
            lines = [line for line in done.stderr.splitlines() if line.strip()]
            assert lines and all(line.startswith(f"{path}:") for line in lines), said


# -- the DNS update adapter against a hostile server ------------------------------------

SECRET = "cjctaG9zdGlsZS1wZWVyLXRzaWctc2VjcmV0LTAwMDE="  # the canary: never in a message
OTHER_SECRET = "b3RoZXItc2VjcmV0LW9mLXRoZS1zYW1lLWtleS1uYW1l"
ZONE = "alpha.test."


def _key_file(home: Path) -> Path:
    path = home / "ddns.key"
    path.write_text(f'key "sitectl-ddns" {{\n\talgorithm hmac-sha256;\n\tsecret "{SECRET}";\n}};\n')
    path.chmod(0o600)
    return path


def _signed(query: bytes, rcode: int, secret: str = SECRET, flags: int = 0) -> bytes:
    """What a server holding the key answers: a reply with `rcode`, signed with `secret`
    (another secret than ours: a peer that cannot prove it is our server)."""
    name = dns.name.from_text("sitectl-ddns.")
    parsed = dns.message.from_wire(query, keyring={name: dns.tsig.Key(name, SECRET)})
    response = dns.message.make_response(parsed)
    if secret != SECRET:
        response.use_tsig({name: dns.tsig.Key(name, secret)}, keyname=name)
    response.set_rcode(rcode)
    response.flags |= flags
    return response.to_wire()


def _with_id(wire: bytes, qid: int) -> bytes:
    return qid.to_bytes(2, "big") + wire[2:]


# name, what the peer sends for a query, the error kind, words the message must hold
DNS_PEERS = [
    (
        "REFUSED",
        lambda q: framed(_signed(q, dns.rcode.REFUSED)),
        UpdateRefused,  # a Failed the promotion checks can tell from a TSIG error
        "failed: REFUSED — the server refused it",
    ),
    (
        "NOTAUTH",
        lambda q: framed(_signed(q, dns.rcode.NOTAUTH)),
        Failed,
        "failed: NOTAUTH — the server is not authoritative",
    ),
    ("SERVFAIL", lambda q: framed(_signed(q, dns.rcode.SERVFAIL)), Unavailable, "SERVFAIL"),
    (
        "signed with another secret",
        lambda q: framed(_signed(q, 0, OTHER_SECRET)),
        Failed,
        "signature that does not verify with our key",
    ),
    (
        "a forged, unsigned success",
        lambda q: framed(bare_reply(q, dns.rcode.NOERROR)),
        Failed,
        "the answer is malformed (response requires a TSIG",
    ),
    (
        "an unsigned REFUSED",
        lambda q: framed(bare_reply(q, dns.rcode.REFUSED)),
        Failed,
        "the answer is malformed",
    ),
    (
        "a reply to another query id",
        lambda q: framed(_with_id(_signed(q, 0), q[0] ^ 0xFF)),
        Failed,
        "the answer is malformed",
    ),
    ("garbage bytes", lambda q: framed(bytes(range(7, 90))), Failed, "the answer is malformed"),
    (
        "garbage after our id",
        lambda q: framed(q[:2] + b"\xff" * 40),
        Failed,
        "the answer is malformed",
    ),
    (
        "a message cut in half",
        lambda q: framed(_signed(q, 0)[:30]),
        Failed,
        "the answer is malformed",
    ),
    (
        "a length prefix promising more than comes",
        lambda q: framed(_signed(q, 0))[:25],
        Unavailable,
        "the server closed the connection",
    ),
    ("a hang-up", lambda q: None, Unavailable, "the server closed the connection"),
]
ACTIONS = {
    "update": lambda p: p.apply(
        [RecordChange(f"mail.{ZONE}", "A", 60, "198.51.100.7")], epoch=3, tag="op/dns"
    ),
    "key check": lambda p: p.check_key(),
    "fence read": lambda p: p.claim_fence(3),  # reading the fence is the first message
}


@pytest.mark.parametrize("action", list(ACTIONS))
@pytest.mark.parametrize(
    ("case", "reply", "kind", "says"), DNS_PEERS, ids=[p[0] for p in DNS_PEERS]
)
def test_dns_updates_facing_a_hostile_server_fail_as_ours(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    action: str,
    case: str,
    reply: Any,
    kind: type[Exception],
    says: str,
) -> None:
    sleeps: list[float] = []
    peer = HostileDns(tcp_reply=reply)
    with peer.running():
        server = DnsServer(address="127.0.0.1", port=peer.port)
        provider = Rfc2136Provider(
            ZONE,
            (server,),
            load_key_file(_key_file(tmp_path)),
            timeout=1.0,
            retry=RetryPolicy(attempts=3, sleep=sleeps.append),
        )
        with pytest.raises(SitectlError) as raised:
            ACTIONS[action](provider)
    error = raised.value
    message = str(error)
    assert type(error) is kind, f"{case}: {type(error).__name__}: {message}"
    assert message.startswith(f"{action} of zone {ZONE} at {server}"), message
    assert says in message and "\n" not in message, message
    assert SECRET not in message + repr(error)
    assert peer.received, "the peer was never asked"
    # Refusals are final at once; silence and SERVFAIL are retried, then given up.
    assert len(sleeps) == (2 if kind is Unavailable else 0)


UDP_PEERS = [
    ("garbage datagrams", lambda q: bytes(range(200)), None, "timeout"),
    ("datagrams too short for a header", lambda q: b"\x00\x01", None, "timeout"),
    ("REFUSED", lambda q: bare_reply(q, dns.rcode.REFUSED), None, "REFUSED"),
    (
        "truncated, then garbage over TCP",
        lambda q: bare_reply(q, 0, flags=0x0200),
        lambda q: framed(bytes(range(7, 90))),
        "error (",
    ),
    (
        "truncated, then a hang-up over TCP",
        lambda q: bare_reply(q, 0, flags=0x0200),
        lambda q: None,
        "error (",
    ),
    (
        "truncated, then truncated again over TCP",
        lambda q: bare_reply(q, 0, flags=0x0200),
        lambda q: framed(bare_reply(q, 0, flags=0x0200)),
        "not authoritative",
    ),
]


@pytest.mark.parametrize(("case", "udp", "tcp", "says"), UDP_PEERS, ids=[p[0] for p in UDP_PEERS])
def test_verify_names_what_a_hostile_server_said(case: str, udp: Any, tcp: Any, says: str) -> None:
    peer = HostileDns(tcp_reply=tcp or (lambda q: None), udp_reply=udp)
    with peer.running():
        server = DnsServer(address="127.0.0.1", port=peer.port)
        result = verify(
            ZONE, {f"mail.{ZONE}": "198.51.100.7"}, [server], timeout=0, query_timeout=0.3
        )
        serials = soa_serials(ZONE, [server], timeout=0.3)
    assert not result.ok, f"{case} was taken for agreement"
    (mismatch,) = result.mismatches
    assert says in mismatch.answered and "\n" not in mismatch.answered, mismatch
    assert serials[0].serial is None and serials[0].error, serials
    assert peer.received


# -- the S3 adapter against moto's refusals and a socket that answers garbage -----------

S3_PEERS = [
    (
        "500 InternalError",
        lambda h: s3_error(500, "InternalError"),
        Unavailable,
        "the store is busy or failing (500 InternalError)",
    ),
    ("503 SlowDown", lambda h: s3_error(503, "SlowDown"), Unavailable, "busy or failing"),
    (
        "403 SignatureDoesNotMatch",
        lambda h: s3_error(403, "SignatureDoesNotMatch"),
        Failed,
        "refused (SignatureDoesNotMatch)",
    ),
    (
        "200 with a body that is not XML",
        lambda h: http_response(200, b"\x00\xff<<garbage"),
        None,
        "",
    ),
    ("not HTTP at all", lambda h: bytes(range(256)), Unavailable, "no answer"),
    ("a hang-up", None, Unavailable, "no answer"),
    ("silence", "silence", Unavailable, "no answer"),
]
S3_CALLS = {
    "listing mail-blobs": lambda s3: keys_with_etags(s3, "mail-blobs"),
    "reading the replication of mail-blobs": lambda s3: replication_destination(s3, "mail-blobs"),
    "removing the replication of mail-blobs": lambda s3: stop_replicating(s3, "mail-blobs"),
}


def _store_topology(monkeypatch: pytest.MonkeyPatch, url: str) -> Any:
    monkeypatch.setenv("R7_S3_ACCESS", "AKIAR7HOSTILEPEER001")
    monkeypatch.setenv("R7_S3_SECRET", SECRET)
    endpoints = [
        {
            "site": s,
            "url": url,
            "access_key": {"env": "R7_S3_ACCESS"},
            "secret_key": {"env": "R7_S3_SECRET"},
        }
        for s in ("dc1", "dc2")
    ]
    return store_topology(
        object_store={"endpoints": endpoints, "buckets": [{"name": "mail-blobs"}]}
    )


# Each peer against one of the calls in turn: every call meets several kinds of trouble.
S3_CASES = [(*peer, list(S3_CALLS)[i % len(S3_CALLS)]) for i, peer in enumerate(S3_PEERS)]


@pytest.mark.parametrize(
    ("case", "reply", "kind", "says", "call"), S3_CASES, ids=[f"{c[0]}-{c[4]}" for c in S3_CASES]
)
def test_s3_calls_facing_a_hostile_endpoint_fail_as_ours(
    monkeypatch: pytest.MonkeyPatch, call: str, case: str, reply: Any, kind: Any, says: str
) -> None:
    peer = HostileHttp(reply)
    with peer.running():
        topo = _store_topology(monkeypatch, peer.url)
        s3 = s3_client(topo, topo.object_store.endpoints[0], timeout=0.5)
        try:
            S3_CALLS[call](s3)
        except SitectlError as exc:
            error: SitectlError | None = exc
        else:
            error = None
    assert peer.requests, "the endpoint was never asked"
    if kind is None:  # nonsense that parses to nothing: no error, and nothing believed
        assert error is None or isinstance(error, Failed | Unavailable), error
        return
    assert type(error) is kind, f"{case}: {error!r}"
    message = str(error)
    assert message.startswith(f"{call}: ") and says in message and "\n" not in message, message
    assert SECRET not in message + repr(error)


def test_s3_refusals_from_moto_are_failed_with_the_code(
    moto_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    topo = _store_topology(monkeypatch, moto_url)
    s3 = s3_client(topo, topo.object_store.endpoints[0], timeout=2)
    for call, does in S3_CALLS.items():
        with pytest.raises(Failed) as raised:
            does(s3)  # the bucket does not exist on this endpoint
        assert str(raised.value) == f"{call}: refused (NoSuchBucket)"
    s3.create_bucket(Bucket="mail-blobs")
    assert replication_destination(s3, "mail-blobs") is None  # none set: not an error
    assert keys_with_etags(s3, "mail-blobs") == {}
