"""Issue 8, R7 "no half-applied step": a step facing a hostile peer is recorded failed,
the operation says where the service is, and nothing the step was to change changed.

The real executor with its in-memory store and fence (tests/unit/engine_fakes.py) runs a
switchover of the example topology; every step is scripted except the one under test,
which is the real handler talking over the network to a loopback peer:
- DNS: a stateful authoritative server (tests/faults/peers.py's socket server) that
  holds the zone, answers queries from it and takes sitectl's key check and fence
  claim, then answers the record update REFUSED or BADSIG, or refuses everything;
- S3 (reprotect): the active site's store is moto's server, the standby's an endpoint
  that answers reads and takes the fence claim, then refuses the first real write
  (403 AccessDenied, or 503 SlowDown through every retry).
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.tsig
import pytest
import yaml
from botocore.exceptions import ClientError

from orchestrator.adapters.dns.fence import FENCE_LABEL
from orchestrator.adapters.dns.rfc2136 import KEYCHECK_LABEL
from orchestrator.audit import AuditLog
from orchestrator.config import Topology, load_topology
from orchestrator.engine.executor import Executor
from orchestrator.engine.records import OperationRecord, OpStatus, StepRecord, StepStatus
from orchestrator.engine.steps import default_handlers
from orchestrator.plan import (
    Action,
    ObservedState,
    Plan,
    assumed_state,
    build_plan,
    build_reprotect_plan,
)
from tests.faults.peers import HostileDns, HostileHttp, framed, http_response, s3_error
from tests.unit.engine_fakes import FakeFence, MemoryStore, ScriptedHandler, operation_record

EXAMPLE = Path(__file__).resolve().parents[2] / "inventories/example-zimbra/topology.yaml"
ZONE = "corp.example.net."
KEY_NAME = "ddns-corp"
SECRET = "cjctaGFsZi1hcHBsaWVkLXN0ZXAtdHNpZy0wMDAx"
KEYRING = {dns.name.from_text(KEY_NAME): dns.tsig.Key(KEY_NAME, SECRET)}

Records = dict[tuple[str, str], frozenset[str]]  # (owner, type) → rdata texts


@dataclass
class Primary:
    """One zone's authoritative server: answers from what it holds, applies the updates
    that only prove the key or touch the fence, and answers an update of the zone's
    records with `hostile` (bytes of a whole DNS message); None: applies it (the control)."""

    records: Records
    hostile: Callable[[dns.message.Message], bytes] | None
    refuse_all: bool = False
    seen: list[str] = field(default_factory=list)  # what was asked, in order

    def tcp(self, wire: bytes) -> bytes:
        message = dns.message.from_wire(wire, keyring=KEYRING)
        return framed(self._reply(message))

    def udp(self, wire: bytes) -> bytes:
        return self._reply(dns.message.from_wire(wire, keyring=KEYRING))

    def _reply(self, message: dns.message.Message) -> bytes:
        if message.opcode() != dns.opcode.UPDATE:
            self.seen.append("query")
            return self._answer(message)
        labels = {rrset.name.labels[0].decode() for rrset in message.update}
        kind = (
            "fence"
            if labels == {FENCE_LABEL}
            else "key check"
            if labels <= {KEYCHECK_LABEL}
            else "records"
        )
        self.seen.append(kind)
        if self.refuse_all:
            return refused(message)
        if kind == "records" and self.hostile is not None:
            return self.hostile(message)
        if kind != "key check":  # the key check deletes what does not exist: a no-op
            self._apply(message)
        return dns.message.make_response(message).to_wire()

    def _apply(self, message: dns.message.Message) -> None:
        for rrset in message.update:
            key = (rrset.name.to_text(), dns.rdatatype.to_text(rrset.rdtype))
            if rrset.deleting is not None:
                self.records.pop(key, None)
            else:
                self.records[key] = self.records.get(key, frozenset()) | {
                    rd.to_text() for rd in rrset
                }

    def _answer(self, query: dns.message.Message) -> bytes:
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        question = query.question[0]
        key = (question.name.to_text(), dns.rdatatype.to_text(question.rdtype))
        if key in self.records:
            response.answer.append(
                dns.rrset.from_text_list(
                    question.name, 60, dns.rdataclass.IN, question.rdtype, sorted(self.records[key])
                )
            )
        else:
            response.set_rcode(dns.rcode.NXDOMAIN)
        return response.to_wire()


def refused(message: dns.message.Message) -> bytes:
    response = dns.message.make_response(message)
    response.set_rcode(dns.rcode.REFUSED)
    return response.to_wire()


def bad_signature(message: dns.message.Message) -> bytes:
    """What a server holding another secret under our key's name answers (RFC 8945
    5.2.2: NOTAUTH, TSIG error BADSIG)."""
    response = dns.message.make_response(message)
    response.use_tsig(KEYRING, KEY_NAME, tsig_error=dns.rcode.BADSIG)
    response.set_rcode(dns.rcode.NOTAUTH)
    return response.to_wire()


def dns_topology(home: Path, port: int) -> Topology:
    """The example topology with its RFC 2136 zone served by the loopback peer (its
    other zone, at Route 53, taken out: this test is about one zone's step)."""
    doc = yaml.safe_load(EXAMPLE.read_text())
    zone = next(z for z in doc["dns"]["zones"] if z["name"] == ZONE)
    server = {"address": "127.0.0.1", "port": port, "site": "dc1"}
    zone.update({"update_servers": [server], "verify_servers": [server]})
    zone["tsig"] = {"key_file": "ddns.key"}
    zone.pop("promote", None)
    doc["dns"]["zones"] = [zone]
    key = home / "ddns.key"
    key.write_text(f'key "{KEY_NAME}" {{\n\talgorithm hmac-sha256;\n\tsecret "{SECRET}";\n}};\n')
    key.chmod(0o600)
    shutil.copy(EXAMPLE.with_name("hosts.yml"), home / "hosts.yml")
    shutil.copytree(
        EXAMPLE.with_name("pki"), home / "pki", dirs_exist_ok=True
    )  # zookeeper.tls.ca_file
    # the custom step's playbook
    shutil.copytree(EXAMPLE.with_name("playbooks"), home / "playbooks", dirs_exist_ok=True)
    path = home / "topology.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return load_topology(path)


def home_records(topo: Topology) -> Records:
    """The zone as it stands with dc1 active: each record holds its dc1 value."""
    zone = topo.dns.zones[0]
    return {(zone.fqdn(r), r.type): frozenset({r.values["dc1"]}) for r in zone.records}


@dataclass
class Outcome:
    op: OperationRecord
    steps: dict[str, StepRecord]
    others: ScriptedHandler
    plan: Plan
    audit: list[dict[str, Any]]


def run_switchover(topo: Topology, tmp_path: Path, real: set[Action]) -> Outcome:
    """The executor runs a switchover to dc2: the `real` actions by their real handlers,
    every other step scripted to succeed."""
    plan = build_plan(topo, assumed_state(topo, frozenset()), "switchover", "dc2")
    return run_plan(topo, plan, tmp_path, real)


def run_plan(topo: Topology, plan: Plan, tmp_path: Path, real: set[Action]) -> Outcome:
    op = operation_record(plan, "20261122T210000Z-r7h4", reason="R7 half-applied")
    store = MemoryStore(ops={op.id: (op, 0)}, current=op.id)
    others = ScriptedHandler()
    handlers: dict[Action, Any] = dict.fromkeys(Action, others)
    handlers |= {a: h for a, h in default_handlers(lambda site: None).items() if a in real}
    audit = AuditLog(tmp_path / "audit.jsonl")
    executor = Executor(
        plan=plan,
        topology=topo,
        store=store,
        lease=FakeFence(),
        handlers=handlers,
        audit=audit,
        artifacts=tmp_path / "artifacts",
        sleep=lambda _: None,
        batch=False,
    )
    result = executor.run(op.id)
    steps = {k: r for k, (r, _) in store.steps(op.id).items()}
    return Outcome(result, steps, others, plan, audit.read())


def later_steps(plan: Plan, step_id: str) -> list[str]:
    ids = [s.id for s in plan.steps()]
    return ids[ids.index(step_id) + 1 :]


@pytest.fixture
def primary_for() -> Iterator[Callable[[Primary], tuple[Primary, int]]]:
    """Serve a Primary on loopback for the rest of the test; returns it and its port."""
    with contextlib.ExitStack() as peers:

        def start(primary: Primary) -> tuple[Primary, int]:
            peer = peers.enter_context(
                HostileDns(tcp_reply=primary.tcp, udp_reply=primary.udp).running()
            )
            return primary, peer.port

        yield start


DNS_CASES = [
    # name, the peer, the step's failure must say
    ("REFUSED", {"hostile": refused}, "REFUSED"),
    ("BADSIG", {"hostile": bad_signature}, "BADSIG"),
    ("refuses even the key check", {"hostile": refused, "refuse_all": True}, "takes updates"),
]


@pytest.mark.parametrize(("case", "peer", "says"), DNS_CASES, ids=[c[0] for c in DNS_CASES])
def test_a_dns_step_facing_a_hostile_primary_fails_whole_and_says_where(
    tmp_path: Path, primary_for: Any, case: str, peer: dict[str, Any], says: str
) -> None:
    primary, port = primary_for(Primary(records={}, **peer))
    topo = dns_topology(tmp_path, port)
    primary.records.update(home_records(topo))
    before = {k: v for k, v in primary.records.items() if FENCE_LABEL not in k[0]}

    done = run_switchover(topo, tmp_path, {Action.DNS_UPDATE})

    step = f"dns/{ZONE}"
    assert done.op.status is OpStatus.FAILED, done.op
    assert done.op.failed_step == step
    record = done.steps[step]
    assert record.status is StepStatus.FAILED, record  # never "done", never left running
    assert says in (record.detail or ""), record.detail
    assert "\n" not in (record.detail or "") and SECRET not in (record.detail or "")
    # The operation names the step and where the service is: the data moved, DNS did not.
    assert done.op.message.startswith(f"step {step} failed: "), done.op.message
    assert "dc2 holds the data (volumes mounted there) but DNS may still point at dc1" in (
        done.op.message
    )
    assert f"sitectl resume {done.op.id}" in done.op.message
    # Nothing after the failed step ran, and the zone's records are as they were.
    assert not set(done.others.applied) & set(later_steps(done.plan, step))
    assert {k: v for k, v in primary.records.items() if FENCE_LABEL not in k[0]} == before
    assert "records" in primary.seen or case == "refuses even the key check", primary.seen
    assert [e["event"] for e in done.audit][-1] == "operation.failed"
    assert SECRET not in (tmp_path / "audit.jsonl").read_text()


def test_the_same_primary_when_honest_takes_the_update(tmp_path: Path, primary_for: Any) -> None:
    """The control: the peer applies what it accepts and the assertions above can fail."""
    primary, port = primary_for(Primary(records={}, hostile=None))
    topo = dns_topology(tmp_path, port)
    primary.records.update(home_records(topo))

    done = run_switchover(topo, tmp_path, {Action.DNS_UPDATE})

    assert done.op.status is OpStatus.SUCCEEDED, done.op.message
    assert done.steps[f"dns/{ZONE}"].status is StepStatus.DONE
    zone = topo.dns.zones[0]
    for r in zone.records:
        assert primary.records[(zone.fqdn(r), r.type)] == {r.values["dc2"]}


# -- S3: a reprotect whose standby store answers with errors ------------------------------

S3_CASES = [
    ("403 AccessDenied", 403, "AccessDenied"),
    ("503 SlowDown", 503, "SlowDown"),  # retried, then given up
]
FENCE_ETAG = '"r7-standby-fence"'


def standby_store(status: int, code: str) -> Callable[[bytes], bytes]:
    """An endpoint that answers reads (no replication, no objects, no fence yet), takes
    sitectl's fence claim, and refuses the first real write: removing the bucket's old
    replication, which a reprotect does after both fences are held and before it sets
    the new direction on the active store."""

    def reply(head: bytes) -> bytes:
        method, target = head.split(b" ", 2)[:2]
        path, _, query = target.partition(b"?")
        if path.endswith(b"/.sitectl/fence"):
            if method == b"GET":
                return s3_error(404, "NoSuchKey")
            return http_response(200, b"", ETag=FENCE_ETAG)  # the claim, and its checks
        if method == b"GET" and query.startswith(b"replication"):
            return s3_error(404, "ReplicationConfigurationNotFoundError")
        if method == b"GET" and b"list-type=2" in query:
            body = b'<?xml version="1.0"?><ListBucketResult><KeyCount>0</KeyCount>'
            return http_response(200, body + b"</ListBucketResult>")
        return s3_error(status, code)

    return reply


def s3_topology(home: Path, bucket: str, active_url: str, standby_url: str) -> Topology:
    """The example topology whose bucket dc2 (active after a failover) serves from moto's
    server, and dc1's store (the reprotect's destination) is the hostile endpoint."""
    doc = yaml.safe_load(EXAMPLE.read_text())
    for endpoint in doc["object_store"]["endpoints"]:
        endpoint["url"] = active_url if endpoint["site"] == "dc2" else standby_url
        endpoint["insecure"] = True  # moto's plain-http servers, said explicitly
    doc["object_store"]["buckets"][0]["name"] = bucket
    shutil.copy(EXAMPLE.with_name("hosts.yml"), home / "hosts.yml")
    shutil.copytree(
        EXAMPLE.with_name("pki"), home / "pki", dirs_exist_ok=True
    )  # zookeeper.tls.ca_file
    # the custom step's playbook
    shutil.copytree(EXAMPLE.with_name("playbooks"), home / "playbooks", dirs_exist_ok=True)
    path = home / "topology.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return load_topology(path, check_filesystem=False)


@pytest.mark.parametrize(("case", "status", "code"), S3_CASES, ids=[c[0] for c in S3_CASES])
def test_a_reprotect_facing_a_failing_store_fails_whole_and_says_where(
    tmp_path: Path,
    moto_url: str,
    monkeypatch: pytest.MonkeyPatch,
    case: str,
    status: int,
    code: str,
) -> None:
    for site in ("DC1", "DC2"):
        monkeypatch.setenv(f"RING_{site}_ACCESS_KEY", "AKIAR7HALFAPPLIED01")
        monkeypatch.setenv(f"RING_{site}_SECRET_KEY", SECRET)
    bucket = f"r7-blobs-{status}"  # one per case: moto's server lives for the module
    active = boto3.client(
        "s3",
        endpoint_url=moto_url,
        region_name="us-east-1",
        aws_access_key_id="AKIAR7HALFAPPLIED01",
        aws_secret_access_key=SECRET,
    )
    active.create_bucket(Bucket=bucket)
    active.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    for key in ("blobs/1", "blobs/2"):
        active.put_object(Bucket=bucket, Key=key, Body=key.encode())

    def objects() -> dict[str, str]:
        listed = active.list_objects_v2(Bucket=bucket).get("Contents", [])
        return {o["Key"]: o["ETag"] for o in listed if not o["Key"].startswith(".sitectl/")}

    before = objects()
    peer = HostileHttp(standby_store(status, code))
    with peer.running():
        topo = s3_topology(tmp_path, bucket, moto_url, peer.url)
        plan = build_reprotect_plan(topo, ObservedState(active_site="dc2"))
        done = run_plan(topo, plan, tmp_path, {Action.OBJECT_STORE_REVERSE})

    step = f"reprotect/object-store/{bucket}"
    asked = [r.split(b"\r\n")[0].decode() for r in peer.requests]
    assert any(line.startswith(f"DELETE /{bucket}?replication") for line in asked), asked
    assert done.op.status is OpStatus.FAILED, done.op
    assert done.op.failed_step == step
    record = done.steps[step]
    assert record.status is StepStatus.FAILED, record  # never "done", never left running
    assert record.detail is not None and "\n" not in record.detail
    assert record.detail.startswith(f"removing the replication of {bucket}: "), record.detail
    assert code in record.detail, record.detail
    assert SECRET not in (record.detail or "") + done.op.message
    assert done.op.message.startswith(f"step {step} failed: "), done.op.message
    assert f"sitectl resume {done.op.id}" in done.op.message, done.op.message
    assert "dc2 is active and serves" in done.op.message, done.op.message  # a reprotect's where
    # The active store is as it was but for sitectl's fence: the same objects, and
    # replicating nowhere (the new direction is set only after the old one is gone).
    assert objects() == before
    with pytest.raises(ClientError, match="ReplicationConfigurationNotFound"):
        active.get_bucket_replication(Bucket=bucket)
