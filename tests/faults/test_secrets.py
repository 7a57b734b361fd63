"""Issue 8, R8: canary secrets never leave the secret files.

The lab's real secrets (TSIG secrets, the LDAP password, the S3 key pair, the probe
user's password, and the ZooKeeper digest when one is configured) are read from the
files the lab topology names. Then real operations run — a switchover to dc2 and its
reprotect, with and without `--json`, health and status, and failures forced with a
missing config file and with wrong secrets — while every process's command line is
sampled. Afterwards
everything sitectl left behind is searched for each secret: its stdout and stderr, the
audit log, every file under the ansible-runner artifact directories, the ZooKeeper
records of the operations, and the sampled command lines. A second scenario runs a
drill while a controller leads (it writes its canaries to LDAP and S3) and searches the
drill's report folder (report.html, report.json, junit.xml) and the controller's log.

A third scenario (issue 19) takes every one of those secrets from the environment
instead, as the example topology does (`{env: NAME}`): a copy of the lab topology names
variables, the values are exported to `sitectl` alone, with one more secret-looking
variable no topology names, and a drill with failback (four real operations) runs on it.
While it runs, the environment of every other process (/proc/PID/environ: ansible-
playbook, its workers, ssh, whatever they start) is sampled besides the command lines;
afterwards every file under the local state (audit log, artifacts, everything) and the
drill's report folder is searched for each value. Only sitectl's own process may hold
them. The hooks' part (a hook dumping its environment) is the last test here.

The scanner is proved with a positive control first, so a search that could not find
anything cannot pass.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import signal
import subprocess
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from orchestrator.adapters.ansible import RUN_MARKER
from orchestrator.adapters.secrets import read_secret
from orchestrator.config import Topology
from orchestrator.config.model import SecretRef
from orchestrator.controller.hooks import EVENTS, Hooks
from orchestrator.controller.http import read_token
from orchestrator.coordination.client import connect
from orchestrator.lab import controllers as lab_controllers
from orchestrator.lab.credentials import read_tsig_key
from tests.controller.conftest import wait_for
from tests.engine.conftest import SITECTL, Cluster

pytestmark = [pytest.mark.lab, pytest.mark.timeout(900)]


@dataclass(frozen=True)
class Canary:
    name: str  # what it is, for the failure message (never the value)
    forms: tuple[bytes, ...]  # every spelling a leak could take

    @classmethod
    def of(cls, name: str, value: str, raw: bytes | None = None) -> Canary:
        forms = {
            value.encode(),
            urllib.parse.quote(value, safe="").encode(),  # in URLs and artifact dir names
            json.dumps(value)[1:-1].encode(),  # inside JSON strings
        }
        if raw is not None:  # a TSIG secret as bytes: hex and Python's repr of them
            forms |= {raw.hex().encode(), repr(raw)[2:-1].encode()}
        return cls(name, tuple(sorted(forms)))


def lab_canaries(topo: Topology) -> list[Canary]:
    """Every secret the lab topology names, read the way sitectl reads it."""
    base = topo.base_dir
    found: list[Canary] = []
    if topo.ldap is not None:
        found.append(Canary.of("LDAP password", read_secret(topo.ldap.password, base).reveal()))
    if topo.object_store is not None:
        for endpoint in topo.object_store.endpoints:
            for kind, ref in (
                ("access key", endpoint.access_key),
                ("secret key", endpoint.secret_key),
            ):
                found.append(
                    Canary.of(f"S3 {kind} ({endpoint.site})", read_secret(ref, base).reveal())
                )
    for zone in topo.dns.zones:
        if zone.tsig is not None and zone.tsig.key_file is not None:
            text = read_tsig_key(topo.resolve(zone.tsig.key_file)).secret
            found.append(Canary.of(f"TSIG secret of {zone.name}", text, base64.b64decode(text)))
        elif zone.tsig is not None and zone.tsig.secret is not None:
            found.append(
                Canary.of(
                    f"TSIG secret of {zone.name}", read_secret(zone.tsig.secret, base).reveal()
                )
            )
    if topo.application.probe_user is not None:
        found.append(
            Canary.of(
                "probe user password",
                read_secret(topo.application.probe_user.password, base).reveal(),
            )
        )
    if topo.zookeeper.auth is not None:
        found.append(
            Canary.of(
                "ZooKeeper digest", read_secret(topo.zookeeper.auth.credentials, base).reveal()
            )
        )
    # The lab's topology sits in its state dir, beside the controllers' token.
    found.append(Canary.of("controller bearer token", read_token(lab_controllers.token_file(base))))
    # Distinct, and long enough that finding one by chance is impossible.
    for canary in found:
        assert min(len(f) for f in canary.forms) >= 16, f"{canary.name} is too short to search for"
    return found


@dataclass
class Scanner:
    canaries: list[Canary]
    places: int = 0  # how many texts were searched: a search of nothing proves nothing
    leaks: list[str] = field(default_factory=list)

    def text(self, where: str, data: bytes | str) -> None:
        blob = data.encode(errors="surrogateescape") if isinstance(data, str) else data
        self.places += 1
        for canary in self.canaries:
            if any(form in blob for form in canary.forms):
                self.leaks.append(f"{canary.name} in {where}")

    def tree(self, root: Path) -> int:
        """Search every file under `root` (names too); return how many files."""
        files = 0
        for path in sorted(root.rglob("*")):
            self.text(f"the name {path}", str(path))
            if path.is_file() and not path.is_symlink():
                self.text(str(path), path.read_bytes())
                files += 1
        return files


class CommandLines:
    """Samples /proc/*/cmdline of every process while an operation runs."""

    def __init__(self) -> None:
        self.seen: dict[bytes, int] = {}  # command line → a pid it was seen with
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> CommandLines:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(0.03)

    def sample(self) -> None:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                line = (entry / "cmdline").read_bytes()
            except OSError:  # gone between listing and reading
                continue
            if line:
                self.seen.setdefault(line, int(entry.name))

    def matching(self, word: bytes) -> list[bytes]:
        return [line for line in self.seen if word in line]


class Environs:
    """Samples /proc/*/environ of every process while an operation runs: each distinct
    environment, with the processes it was seen in (pid → parent pid and command line)."""

    def __init__(self) -> None:
        self.seen: dict[bytes, dict[int, tuple[int, bytes]]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Environs:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(0.02)

    def sample(self) -> None:
        me = os.getpid()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == me:
                continue
            try:
                environ = (entry / "environ").read_bytes()
                cmdline = (entry / "cmdline").read_bytes()
                # "pid (comm) state ppid …": comm may hold spaces, so split after it.
                ppid = int((entry / "stat").read_bytes().rpartition(b")")[2].split()[1])
            except (OSError, ValueError, IndexError):  # gone between listing and reading
                continue
            if environ:
                self.seen.setdefault(environ, {})[int(entry.name)] = (ppid, cmdline)

    def of_others(self, excluded: set[int]) -> dict[bytes, dict[int, str]]:
        """The environments seen in processes other than `excluded` and their copies: a
        child forked by one of them that has not yet exec'd its program is still that
        process (same memory, same command line), caught in the instant between fork
        and exec; what it then runs gets the environment sitectl gives it."""
        cmdlines = {pid: line for procs in self.seen.values() for pid, (_, line) in procs.items()}
        theirs = set(excluded)
        grew = True
        while grew:
            copies = {
                pid
                for procs in self.seen.values()
                for pid, (ppid, line) in procs.items()
                if pid not in theirs and ppid in theirs and line == cmdlines.get(ppid)
            }
            grew = bool(copies)
            theirs |= copies
        found = {}
        for environ, procs in self.seen.items():
            others = {
                pid: f"pid {pid} (parent {ppid}): "
                + line.replace(b"\0", b" ").decode(errors="replace")[:120]
                for pid, (ppid, line) in procs.items()
                if pid not in theirs
            }
            if others:
                found[environ] = others
        return found


def write_env_topology(cluster: Cluster) -> tuple[Path, dict[str, str]]:
    """The lab topology with every secret read from an environment variable instead of
    its file, beside the real one; and those variables' values (the lab's own secrets,
    so the operations work)."""
    topo = cluster.topology
    base = topo.base_dir
    data = yaml.safe_load(cluster.topology_file.read_text())
    env: dict[str, str] = {}

    def to_env(ref: dict[str, str], name: str) -> dict[str, str]:
        env[name] = read_secret(SecretRef(**ref), base).reveal()
        return {"env": name}

    data["ldap"]["password"] = to_env(data["ldap"]["password"], "R8_LDAP_PASSWORD")
    for endpoint in data["object_store"]["endpoints"]:
        endpoint["access_key"] = to_env(endpoint["access_key"], "R8_S3_ACCESS_KEY")
        endpoint["secret_key"] = to_env(endpoint["secret_key"], "R8_S3_SECRET_KEY")
    probe = data["application"]["probe_user"]
    probe["password"] = to_env(probe["password"], "R8_PROBE_PASSWORD")
    auth = data["zookeeper"]["auth"]
    auth["credentials"] = to_env(auth["credentials"], "R8_ZK_DIGEST")
    data["deadman"]["key"] = to_env(data["deadman"]["key"], "R8_DEADMAN_KEY")
    for index, zone in enumerate(data["dns"]["zones"]):
        key = read_tsig_key(topo.resolve(zone["tsig"]["key_file"]))
        name = f"R8_TSIG_SECRET_{index}"
        env[name] = key.secret
        zone["tsig"] = {"name": key.name, "algorithm": key.algorithm, "secret": {"env": name}}
    path = cluster.topology_file.parent / "r8-env-topology.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    path.chmod(0o644)
    return path, env


def write_wrong_topology(cluster: Cluster, wrong: dict[str, str]) -> Path:
    """The lab topology with its TSIG key, LDAP password and S3 secret key replaced by
    other (wrong) values, beside the real one so its other relative paths still work."""
    home = cluster.topology_file.parent
    # The real key's name with another secret: the server answers BADSIG, not BADKEY.
    zone = cluster.topology.dns.zones[0]
    assert zone.tsig is not None and zone.tsig.key_file is not None
    name = read_tsig_key(cluster.topology.resolve(zone.tsig.key_file)).name
    key = home / "secrets" / "r8-wrong-ddns.key"
    ldap = home / "secrets" / "r8-wrong-ldap.password"
    s3 = home / "secrets" / "r8-wrong-s3-secret-key"
    for path, text in (
        (key, f'key "{name}" {{\n\talgorithm hmac-sha256;\n\tsecret "{wrong["tsig"]}";\n}};\n'),
        (ldap, wrong["ldap"] + "\n"),
        (s3, wrong["s3"] + "\n"),
    ):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
    text = cluster.topology_file.read_text()
    text = re.sub(r"key_file: secrets/[\w.-]+\.key", f"key_file: secrets/{key.name}", text)
    text = text.replace("file: secrets/ldap-admin.password", f"file: secrets/{ldap.name}")
    text = text.replace("file: secrets/s3-secret-key", f"file: secrets/{s3.name}")
    topology = home / "r8-wrong-topology.yaml"
    topology.write_text(text)
    return topology


@pytest.fixture
def cluster(cluster: Cluster) -> Iterator[Cluster]:
    """From home (tests/faults/conftest.py); the test leaves dc2 active and protected."""
    yield cluster
    for name in (
        "r8-env-topology.yaml",
        "r8-wrong-topology.yaml",
        "secrets/r8-wrong-ddns.key",
        "secrets/r8-wrong-ldap.password",
        "secrets/r8-wrong-s3-secret-key",
    ):
        (cluster.topology_file.parent / name).unlink(missing_ok=True)


def test_the_scanner_finds_a_planted_secret(tmp_path: Path) -> None:
    """Positive control: each spelling of a secret, in a text and in a file, is found."""
    raw = secrets.token_bytes(32)
    text = base64.b64encode(raw).decode()
    canary = Canary.of("planted", text, raw)
    for form in canary.forms:
        scanner = Scanner([canary])
        scanner.text("a log line", b"before " + form + b" after")
        assert scanner.leaks == ["planted in a log line"]
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "job_events.json").write_text(json.dumps({"stdout": f"pw={text}"}))
    (tmp_path / "a" / "clean").write_text("nothing here")
    scanner = Scanner([canary])
    assert scanner.tree(tmp_path) == 2
    assert scanner.leaks == [f"planted in {tmp_path / 'a' / 'b' / 'job_events.json'}"]
    with CommandLines() as lines:
        lines.sample()
    assert lines.matching(b"pytest") or lines.matching(b"python")
    # A child holding a secret in its environment is found by the environment sampler.
    child = subprocess.Popen(["sleep", "5"], env={"PATH": os.environ["PATH"], "PW": text})
    try:
        with Environs() as environs:
            environs.sample()
    finally:
        child.kill()
        child.wait()
    scanner = Scanner([canary])
    for environ, procs in environs.of_others(set()).items():
        scanner.text(f"the environment of {[p.split(': ')[1] for p in procs.values()]}", environ)
    assert scanner.leaks == ["planted in the environment of ['sleep 5 ']"]
    # Excluded, the child's environment is not searched.
    assert not [e for e in environs.of_others({child.pid}) if text.encode() in e]


def test_secrets_appear_nowhere_sitectl_writes(cluster: Cluster) -> None:
    topo = cluster.topology
    canaries = lab_canaries(topo)
    names = {c.name for c in canaries}
    assert {"LDAP password", "probe user password"} <= names
    assert any(n.startswith("TSIG secret") for n in names)
    assert any(n.startswith("S3 secret key") for n in names)
    assert "ZooKeeper digest" in names  # the lab ACLs sitectl's znodes
    wrong = {
        "tsig": base64.b64encode(secrets.token_bytes(32)).decode(),
        "ldap": secrets.token_urlsafe(18),
        "s3": secrets.token_urlsafe(30),
    }
    canaries += [
        Canary.of("the wrong TSIG secret", wrong["tsig"], base64.b64decode(wrong["tsig"])),
        Canary.of("the wrong LDAP password", wrong["ldap"]),
        Canary.of("the wrong S3 secret key", wrong["s3"]),
    ]
    wrong_topology = write_wrong_topology(cluster, wrong)
    scanner = Scanner(canaries)
    outputs: dict[str, tuple[int, str, str]] = {}

    def run(command: str) -> int:
        """`sitectl COMMAND` (words split on spaces), its output kept for the scan."""
        done = cluster.sitectl(*command.split())
        outputs[command] = (done.returncode, done.stdout, done.stderr)
        return done.returncode

    absent = cluster.topology_file.parent / "absent.yaml"
    wrong_switchover = f"switchover --to dc1 --yes --reason r8-wrong -c {wrong_topology}"
    with CommandLines() as lines:
        assert run("switchover --to dc2 --yes --json --reason r8") == 0, outputs
        assert run("status --json") == 0, outputs
        assert run("status") == 0, outputs
        run("health --json")  # whatever it finds, it must not print a secret
        assert run("reprotect --yes --reason r8") == 0, outputs
        # Forced failures: the error paths print the most detail.
        assert run(f"switchover --to dc1 --yes -c {absent}") == 2
        run(f"health --json -c {wrong_topology}")
        refused = run(wrong_switchover)
        run(f"{wrong_switchover} --json")
    assert refused not in (0, 2), outputs[wrong_switchover]
    cluster.assert_protected("dc2")  # the wrong secrets changed nothing

    # What the scan covered: the operations really ran and were seen.
    assert lines.matching(b"switchover") and lines.matching(b"ansible-playbook"), sorted(
        lines.seen
    )[:20]
    said = outputs[wrong_switchover][1] + outputs[wrong_switchover][2]
    assert "BADSIG" in said or "TSIG" in said or "ldap" in said.lower(), said

    for label, (_, out, err) in outputs.items():
        scanner.text(f"stdout of `sitectl {label}`", out)
        scanner.text(f"stderr of `sitectl {label}`", err)
    for line, pid in lines.seen.items():
        program = line.split(b"\0")[0].decode(errors="replace")
        scanner.text(f"the command line of pid {pid} ({program} …)", line)
    local = cluster.lab.state_dir / "sitectl"
    audit = local / "audit.jsonl"
    assert audit.read_text().count("\n") > 10
    scanner.text(str(audit), audit.read_bytes())
    assert scanner.tree(local / "artifacts") > 20  # ansible-runner's events, stdout, env
    for node, data in zookeeper_records(topo):
        scanner.text(f"ZooKeeper node {node}", data)

    assert scanner.places > 100
    assert scanner.leaks == [], "secrets leaked:\n" + "\n".join(scanner.leaks)


def zookeeper_records(topo: Topology) -> Iterator[tuple[str, bytes]]:
    """Every node under the cluster's chroot: operation records, checkpoints, views."""
    client = connect(topo, timeout=15)  # sitectl's identity: its znodes are ACLed
    try:
        pending = [topo.zookeeper.chroot or "/"]
        while pending:
            node = pending.pop()
            try:
                data, _ = client.get(node)
                children = client.get_children(node)
            except Exception:  # deleted while walking (an ephemeral node)
                continue
            yield node, data or b""
            pending += [f"{node.rstrip('/')}/{child}" for child in children]
    finally:
        client.stop()
        client.close()


CONTROLLER_LISTEN = "127.0.23.3:9401"  # no lab server uses it


def controller_status(cluster: Cluster) -> dict:
    """Its /status, with the lab's bearer token (which it was started with)."""
    token = lab_controllers.token_file(cluster.lab.state_dir)
    return lab_controllers.status(CONTROLLER_LISTEN, token)


def test_secrets_appear_nowhere_in_a_drills_reports_or_a_controllers_log(
    cluster: Cluster, tmp_path: Path
) -> None:
    canaries = lab_canaries(cluster.topology)
    scanner = Scanner(canaries)
    reports = tmp_path / "reports"
    log = tmp_path / "controller.log"
    token = lab_controllers.token_file(cluster.lab.state_dir)
    with open(log, "wb") as sink:
        controller = subprocess.Popen(
            [
                *(SITECTL, "controller", "run", "--site", "witness"),
                *("--listen", CONTROLLER_LISTEN, "--token-file", str(token)),
                *(
                    "--identity",
                    str(lab_controllers.identity_file(cluster.lab.state_dir, "witness")),
                ),
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=cluster.env(),
            start_new_session=True,
        )
    try:
        # Leading, with its canaries written (LDAP password and S3 keys in use), before
        # and throughout the drill.
        wait_for(
            lambda: (
                (status := controller_status(cluster))["leader"]
                and status.get("canary_problems") == []
            ),
            "the controller leads and has written its canaries",
            within=90,
        )
        with CommandLines() as lines:
            drill = cluster.sitectl(
                "drill",
                "--to",
                "dc2",
                "--yes",
                "--json",
                "--reason",
                "r8 drill",
                "--report-dir",
                str(reports),
                timeout=600,
            )
        assert controller.poll() is None, "the controller died during the drill"
    finally:
        os.killpg(controller.pid, signal.SIGTERM)
        controller.wait(timeout=30)

    assert drill.returncode in (0, 1), drill.stderr  # passed or failed: a report either way
    printed = json.loads(drill.stdout)
    folder = Path(printed["reports"]["json"]).parent
    assert {p.name for p in folder.iterdir()} >= {"report.html", "report.json", "junit.xml"}
    assert json.loads((folder / "report.json").read_text())["legs"], "a drill with no leg"
    said = log.read_text()
    assert "controller of witness started" in said and "controller of witness stopped" in said

    assert scanner.tree(reports) >= 3
    scanner.text(str(log), log.read_bytes())
    scanner.text("stdout of `sitectl drill`", drill.stdout)
    scanner.text("stderr of `sitectl drill`", drill.stderr)
    audit = cluster.lab.state_dir / "sitectl" / "audit.jsonl"
    scanner.text(str(audit), audit.read_bytes())
    for line, pid in lines.seen.items():
        program = line.split(b"\0")[0].decode(errors="replace")
        scanner.text(f"the command line of pid {pid} ({program} …)", line)
    assert lines.matching(b"drill"), "the drill was not seen running"
    assert scanner.leaks == [], "secrets leaked:\n" + "\n".join(scanner.leaks)


def test_secrets_read_from_the_environment_reach_no_child_and_no_file(
    cluster: Cluster, tmp_path: Path
) -> None:
    topology, exported = write_env_topology(cluster)
    # Named by no topology: only an allow-list keeps it from the children too.
    exported["R8_UNRELATED_API_TOKEN"] = "tok-" + secrets.token_urlsafe(24)
    canaries = [Canary.of(f"${name}", value) for name, value in exported.items()]
    canaries += [
        Canary.of(f"${name} (raw)", value, base64.b64decode(value))
        for name, value in exported.items()
        if name.startswith("R8_TSIG_SECRET")
    ]
    assert min(len(f) for c in canaries for f in c.forms) >= 16
    scanner = Scanner(canaries)
    reports = tmp_path / "reports"
    ours: set[int] = set()  # the sitectl processes started here: they hold the secrets
    outputs: dict[str, tuple[int, str, str]] = {}

    def run(*args: str, timeout: float = 300) -> int:
        proc = subprocess.Popen(
            [SITECTL, *args, "-c", str(topology)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env=cluster.env(**exported),
        )
        ours.add(proc.pid)
        out, err = proc.communicate(timeout=timeout)
        outputs[" ".join(args)] = (proc.returncode, out, err)
        return proc.returncode

    assert run("validate") == 0, outputs
    with CommandLines() as lines, Environs() as environs:
        drill = ("drill", "--to", "dc2", "--failback", "--yes", "--json", "--reason", "r8 env")
        drill = (*drill, "--report-dir", str(reports))
        code = run(*drill, timeout=600)
        assert run("status", "--json") == 0
        run("health", "--json")
    said = outputs[" ".join(drill)]
    assert code == 0, said  # the secrets from the environment worked: the drill passed
    cluster.assert_protected("dc1")

    # What the scan covered: ansible-playbook ran and its environment was sampled, as
    # were the commands it started on the hosts (the storage CLI over ssh).
    others = environs.of_others(ours)
    runs = [e for e in others if f"{RUN_MARKER}=".encode() in e]
    assert runs, sorted({n for p in others.values() for n in p.values()})[:30]
    assert any(b"ansible-playbook" in line for e in runs for _, line in environs.seen[e].values())
    assert lines.matching(b"ansible-playbook") and lines.matching(b"orchestrator.storage")
    # sitectl itself held them (what was searched for is what was exported).
    # By pid and command line: this machine's 32,768 pids wrap a few times in a full test
    # run, so an exited sitectl's pid (validate's, say) may be another process's by now.
    mine = [
        e
        for e, procs in environs.seen.items()
        if any(pid in ours and SITECTL.encode() in line for pid, (_, line) in procs.items())
    ]
    assert mine and all(exported["R8_LDAP_PASSWORD"].encode() in e for e in mine)

    for label, (_, out, err) in outputs.items():
        scanner.text(f"stdout of `sitectl {label}`", out)
        scanner.text(f"stderr of `sitectl {label}`", err)
    for environ, procs in others.items():
        scanner.text(f"the environment of {sorted(procs.values())[:3]}", environ)
    for line, pid in lines.seen.items():
        program = line.split(b"\0")[0].decode(errors="replace")
        scanner.text(f"the command line of pid {pid} ({program} …)", line)
    local = cluster.lab.state_dir / "sitectl"
    assert scanner.tree(local) > 50  # the audit log and every operation's artifacts
    assert scanner.tree(reports) >= 3
    assert (local / "audit.jsonl").read_text().count("r8 env") >= 4

    assert scanner.places > 200
    assert scanner.leaks == [], "secrets leaked:\n" + "\n".join(sorted(set(scanner.leaks)))


def test_a_hook_holds_no_secret_of_the_controllers_environment(
    cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A controller run on the environment topology holds its secrets in its own
    environment; a hook it runs dumps its environment: none of them is in it."""
    _, exported = write_env_topology(cluster)
    exported["R8_UNRELATED_API_TOKEN"] = "tok-" + secrets.token_urlsafe(24)
    for name, value in exported.items():
        monkeypatch.setenv(name, value)
    dump = tmp_path / "hook-env.txt"
    hooks = Hooks({event: f"sh -c 'env >> {dump}; cat >> {dump}'" for event in EVENTS_TOLD})
    for event in EVENTS_TOLD:
        assert hooks.run(event, {"from_site": "dc1", "to_site": "dc2"}).ok
    said = dump.read_text()
    assert said.count("SITECTL_EVENT=") == len(EVENTS_TOLD) and "PATH=" in said
    scanner = Scanner([Canary.of(f"${name}", value) for name, value in exported.items()])
    scanner.text(str(dump), said)
    assert scanner.leaks == [], "secrets leaked:\n" + "\n".join(scanner.leaks)


# Every event a hook is told: a new one is held to the same environment.
EVENTS_TOLD = EVENTS
