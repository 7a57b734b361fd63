"""No acknowledged write lost in a split (issue 18, item 7) on the real lab.

dc1 keeps taking mail its mirror never carries (the transfers stopped), and takes an
object its store never replicates, then the service fails over to dc2 without a final
transfer: dc2 lacks all of it. `reprotect` must first salvage it into dc2 — read back
with real clients at dc2 (IMAP, S3), not from sitectl's word — and add nothing twice when
the salvage runs again (a sitectl killed inside the mail salvage, then resumed).
"""

from __future__ import annotations

import email
import json
import signal
import smtplib
import subprocess
import uuid
from collections import Counter
from email.message import EmailMessage

import pytest

from orchestrator.adapters.s3 import s3_client
from orchestrator.drill import canaries
from orchestrator.lab import layout, mail
from orchestrator.storage import MirrorConfig
from tests.conftest import eventually
from tests.engine.conftest import Cluster
from tests.engine.test_failover import _mirror

pytestmark = pytest.mark.lab


def _send(site: str, message_id: str) -> None:
    message = EmailMessage()
    message["From"] = "writer@example.test"
    message["To"] = f"{layout.MAIL_USER}@{layout.MAIL_DOMAIN}"
    message["Subject"] = f"salvage scenario {message_id}"
    message["Message-ID"] = message_id
    message.set_content("acknowledged by dc1 after its mirror's last transfer\n")
    with smtplib.SMTP(layout.service_ip(site), layout.SMTP_PORT, timeout=5) as smtp:
        smtp.send_message(message)  # returns only once the server acknowledged it


def message_ids(cluster: Cluster, site: str) -> Counter[str]:
    """Message-ID → how many messages of the INBOX at `site` carry it, over IMAP."""
    imap = mail.imap_client(cluster.lab.state(), site)
    try:
        typ, count = imap.select("INBOX", readonly=True)
        assert typ == "OK", count
        found: Counter[str] = Counter()
        if int(count[0] or 0) == 0:
            return found
        typ, data = imap.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
        assert typ == "OK", data
        for part in data:
            if isinstance(part, tuple):
                header = email.message_from_bytes(part[1]).get("Message-ID")
                if header:
                    found[" ".join(header.split())] += 1
        return found
    finally:
        imap.logout()


def _split(cluster: Cluster, acked: list[str]) -> None:
    """dc1 acknowledges `acked` after its mirror's last transfer, then a failover to dc2
    without a final transfer: only dc1's copy holds them."""
    try:
        _mirror(cluster, "quiesce")  # dc1's copy now runs ahead of the last transfer
        for message_id in acked:
            _send("dc1", message_id)
        eventually(
            lambda: all(message_ids(cluster, "dc1")[m] == 1 for m in acked),
            "dc1 delivered every acknowledged message",
        )
        failed_over = cluster.sitectl(
            "failover",
            "--to",
            "dc2",
            "--yes",
            "--json",
            "--reason",
            "scenario: salvage",
            "--accept-data-loss",
            "scenario: dc1's last mail never reached dc2",
        )
        assert failed_over.returncode == 0, failed_over.stderr + failed_over.stdout
    finally:
        if cluster.status()["active_site"] == "dc1":
            _mirror(cluster, "resume")
    assert not set(acked) & set(message_ids(cluster, "dc2")), "dc2 got them without salvage"


def _audit(cluster: Cluster, tag: str) -> list[dict]:
    log = cluster.lab.state_dir / "sitectl" / "audit.jsonl"
    return [
        json.loads(line)
        for line in log.read_text().splitlines()
        if '"salvage.' in line and tag in line
    ]


def test_reprotect_salvages_what_only_the_old_site_acknowledged_once(cluster: Cluster) -> None:
    cluster.assert_protected("dc1")
    topo = cluster.topology
    assert topo.object_store is not None
    bucket = topo.object_store.buckets[0].name
    store = {e.site: s3_client(topo, e) for e in topo.object_store.endpoints}
    tag = uuid.uuid4().hex[:8]
    acked = [f"<{n}.salvage-{tag}@writer.test>" for n in range(1, 6)]
    lone, clash = f"salvage-{tag}/only-at-dc1", f"salvage-{tag}/both"
    _split(cluster, acked)

    # What dc1 took after the takeover and its store never replicated (the lab's store
    # would retry a failed copy; S3's own does not: without a rule it never copies).
    store["dc1"].delete_bucket_replication(Bucket=bucket)
    store["dc1"].put_object(Bucket=bucket, Key=lone, Body=b"only dc1 took this")
    store["dc1"].put_object(Bucket=bucket, Key=clash, Body=b"dc1's version")
    store["dc2"].put_object(Bucket=bucket, Key=clash, Body=b"dc2's version")
    canaries.write_ldap(topo, "dc1", f"salvage scenario {tag}")

    # The first salvage is killed after it copied the mail, before its checkpoint; the
    # resume salvages again and must add nothing twice.
    killed = cluster.sitectl(
        "reprotect",
        "--yes",
        "--reason",
        "scenario: salvage",
        SITECTL_FAULT_KILL_INSIDE="salvage/mail/mailstore",
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert cluster.mirror()["state"] == "broken", "killed before the mirror turned"
    resumed = cluster.ok("resume", "--yes")
    assert resumed["status"] == "succeeded", resumed["message"]
    steps = {s["id"]: s for s in resumed["steps"]}
    mail_step = steps["salvage/mail/mailstore"]["detail"]
    # The killed run copied all five; the resume found each at dc2 already.
    assert "holds no message dc2 lacks" in mail_step, mail_step
    objects_step = steps[f"salvage/objects/{bucket}"]["detail"]
    # (Salvaged side by side with the mail: the killed run may have copied them already.)
    assert "holds no object dc2 lacks" in objects_step or (
        "copied 2 object(s) only dc1 held into dc2: " in objects_step
        and f"1 key(s) dc2 holds differently kept beside them: {clash} → salvaged/" in objects_step
    ), objects_step
    ldap_step = steps["salvage/ldap-report"]["detail"]
    assert "LDAP: dc1's masters changed " in ldap_step and " 0 entr" not in ldap_step, ldap_step
    assert steps["salvage/decide"]["detail"] == (
        "applied and verified: nothing divergent is left on dc1: the mirrors may be reversed"
    )

    # Read back at dc2 with real clients: every message dc1 acknowledged, once each.
    at_dc2 = message_ids(cluster, "dc2")
    assert {m: at_dc2[m] for m in acked} == dict.fromkeys(acked, 1)
    assert store["dc2"].get_object(Bucket=bucket, Key=lone)["Body"].read() == (
        b"only dc1 took this"
    )
    # A key dc2 holds differently is never overwritten; dc1's version lies beside it, once.
    assert store["dc2"].get_object(Bucket=bucket, Key=clash)["Body"].read() == b"dc2's version"
    beside = [
        o["Key"]
        for o in store["dc2"].list_objects_v2(Bucket=bucket, Prefix="salvaged/").get("Contents", [])
        if o["Key"].endswith(f"/{clash}")
    ]
    assert len(beside) == 1, beside
    assert store["dc2"].get_object(Bucket=bucket, Key=beside[0])["Body"].read() == (
        b"dc1's version"
    )
    cluster.assert_protected("dc2")

    # A reprotect again (nothing left on dc1 now: its copy was reversed) adds nothing.
    again = cluster.ok("reprotect", "--yes", "--reason", "scenario: salvage again")
    assert again["status"] == "succeeded"
    at_dc2 = message_ids(cluster, "dc2")
    assert {m: at_dc2[m] for m in acked} == dict.fromkeys(acked, 1)
    audit = _audit(cluster, tag)
    copied = [m for e in audit if e["event"] == "salvage.mail" for m in e["copied"] if tag in m]
    assert sorted(copied) == sorted(acked), "each message copied exactly once"


def test_reprotect_refuses_to_discard_a_message_it_cannot_salvage_without_a_reason(
    cluster: Cluster,
) -> None:
    """dc2's Maildir refuses the copy (its new/ made immutable: even root cannot add to
    it): reprotect refuses, exit 4, the mirror untouched; with --discard-divergent it
    goes on, warned about, and the audit log names what was discarded and why."""
    cluster.assert_protected("dc1")
    tag = uuid.uuid4().hex[:8]
    acked = [f"<1.refused-{tag}@writer.test>"]
    _split(cluster, acked)
    config = MirrorConfig.load(cluster.lab.state_dir / "volumes" / "mirror-mail.config.json")
    new = (
        config.sites["dc2"].pool / config.subvolume / "mail" / layout.MAIL_USER / "Maildir" / "new"
    )
    subprocess.run(["chattr", "+i", str(new)], check=True)
    try:
        refused = cluster.sitectl("reprotect", "--yes", "--json", "--reason", "scenario: refuse")
        assert refused.returncode == 4, refused.stderr + refused.stdout
        outcome = json.loads(refused.stdout)
        assert (outcome["status"], outcome["failed_step"]) == ("refused", "salvage/decide")
        assert outcome["message"].startswith(
            "refused before the mirrors were touched: dc1 holds what the active site lacks "
            "and salvage could not carry: 1 mail message(s) (mailstore: mail/alice/Maildir/"
        ), outcome["message"]
        assert f"({acked[0]})" in outcome["message"]
        assert outcome["message"].endswith('rerun with --discard-divergent "REASON" to discard it')
        steps = {s["id"]: s["detail"] for s in outcome["steps"]}
        assert "copied 0 message(s)" in steps["salvage/mail/mailstore"]
        assert "1 could not be copied" in steps["salvage/mail/mailstore"]
        assert cluster.mirror() == {"source": "dc1", "destination": "dc2", "state": "broken"}
        assert cluster.status()["operation"]["status"] == "refused"

        reason = f"scenario {tag}: the message was re-sent by its author"
        discarded = cluster.sitectl(
            "reprotect", "--yes", "--json", "--reason", "scenario: discard",
            "--discard-divergent", reason,
        )  # fmt: skip
        assert discarded.returncode == 0, discarded.stderr + discarded.stdout
    finally:
        subprocess.run(["chattr", "-i", str(new)], check=True)
    assert "WARNING: --discard-divergent: whatever dc1 alone holds" in discarded.stderr
    outcome = json.loads(discarded.stdout)
    assert outcome["discard_divergent"] == reason
    decided = {s["id"]: s["detail"] for s in outcome["steps"]}["salvage/decide"]
    assert decided.startswith(
        "applied and verified: discarding what dc1 holds unsalvaged — 1 mail message(s)"
    ), decided
    (event,) = [e for e in _audit(cluster, tag) if e["event"] == "salvage.discarded"]
    assert event["reason"] == reason and acked[0] in event["mail"][0]
    assert message_ids(cluster, "dc2")[acked[0]] == 0, "discarded, as the operator said"
    cluster.assert_protected("dc2")
