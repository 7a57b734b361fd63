"""Every lab server answers real clients as documented (one shared lab per session)."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsig
import dns.tsigkeyring
import dns.update
import ldap3
import pytest
from kazoo.client import KazooClient

from orchestrator.checks import zookeeper as zk_checks
from orchestrator.checks.result import Status
from orchestrator.config import load_topology
from orchestrator.coordination.client import connect as zk_connect
from orchestrator.errors import Unavailable
from orchestrator.lab import layout, mail, s3, volumes, zookeeper
from orchestrator.lab.credentials import ensure_ca
from orchestrator.lab.ldap import connect
from orchestrator.lab.mail import send_test_mail
from tests.conftest import LabHandle, eventually

pytestmark = pytest.mark.lab


def test_zookeeper_is_a_three_node_quorum(lab: LabHandle) -> None:
    modes = {}
    for site in layout.SITES:
        answer = zookeeper.four_letter(layout.service_ip(site), layout.ZK_CLIENT_PORT, "srvr")
        modes[site] = next(line for line in answer.splitlines() if line.startswith("Mode:"))
    assert sorted(modes.values()) == ["Mode: follower", "Mode: follower", "Mode: leader"]
    leader = next(site for site, mode in modes.items() if mode == "Mode: leader")
    mntr = zookeeper.four_letter(layout.service_ip(leader), layout.ZK_CLIENT_PORT, "mntr")
    assert "zk_synced_followers\t2" in mntr

    # A write through one site's node is read through another's.
    writer = KazooClient(hosts=f"{layout.service_ip('dc1')}:2181", timeout=5)
    reader = KazooClient(hosts=f"{layout.service_ip('witness')}:2181", timeout=5)
    writer.start(timeout=10)
    reader.start(timeout=10)
    try:
        path = f"/lab-test/{uuid.uuid4().hex}"
        writer.create(path, b"hello", makepath=True)
        reader.sync(path)
        assert reader.get(path)[0] == b"hello"
    finally:
        writer.stop()
        reader.stop()
    assert lab.env["zookeeper"]["connect"] == zookeeper.connect_string()


def test_sitectl_reaches_zookeeper_only_over_verified_tls(lab: LabHandle, tmp_path: Path) -> None:
    """The lab's topology points sitectl at the secure client port: a session and a
    four-letter word go through with the lab's CA, and both are refused under a CA that
    did not sign the servers' certificates (verification is real, not decoration)."""
    topo = load_topology(lab.env["topology"])
    assert topo.zookeeper.tls is not None and not topo.zookeeper.insecure
    assert all(h.address.endswith(f":{layout.ZK_SECURE_PORT}") for h in topo.zookeeper.hosts)
    client = zk_connect(topo, timeout=10)
    try:
        assert client.exists("/") is not None
    finally:
        client.stop()
        client.close()
    nodes = [c for c in zk_checks.checks(topo, 3) if c.site]
    assert {c.site: c.run(3).status for c in nodes} == dict.fromkeys(layout.SITES, Status.OK)

    # Another CA, made as the lab makes its own: it signed none of the servers.
    stranger = ensure_ca(tmp_path / "other-pki", "openssl")
    wrong = topo.model_copy(
        update={
            "zookeeper": topo.zookeeper.model_copy(
                update={"tls": topo.zookeeper.tls.model_copy(update={"ca_file": str(stranger)})}
            )
        }
    )
    with pytest.raises(Unavailable, match="over TLS"):
        zk_connect(wrong, timeout=3)
    refused = [c.run(3) for c in zk_checks.checks(wrong, 3) if c.site]
    assert refused and all(r.status is Status.DOWN for r in refused), refused


def _a_record(server: str, name: str) -> tuple[bool, list[str]]:
    answer = dns.query.udp(dns.message.make_query(name, "A"), server, port=53, timeout=2)
    assert answer.rcode() == dns.rcode.NOERROR, (server, name, dns.rcode.to_text(answer.rcode()))
    values = [rr.to_text() for rrset in answer.answer for rr in rrset]
    return bool(answer.flags & dns.flags.AA), values


@pytest.mark.parametrize("zone", [layout.INTERNAL_ZONE, layout.EXTERNAL_ZONE])
def test_every_dns_server_of_a_zone_answers_the_mail_record(lab: LabHandle, zone: str) -> None:
    info = lab.env["dns"]["zones"][zone]
    for site in [info["primary"], *info["secondaries"]]:
        server = lab.env["dns"]["servers"][site]["address"]
        authoritative, values = _a_record(server, f"mail.{zone}")
        assert authoritative, f"{site} is not authoritative for {zone}"
        assert values == [layout.service_ip(lab.active_site())], (site, values)


@pytest.mark.parametrize("zone", [layout.INTERNAL_ZONE, layout.EXTERNAL_ZONE])
def test_tsig_update_at_the_primary_reaches_every_secondary(lab: LabHandle, zone: str) -> None:
    info = lab.env["dns"]["zones"][zone]
    key = lab.ddns_key(zone)
    keyring = dns.tsigkeyring.from_text(key.keyring())
    name = f"probe-{uuid.uuid4().hex[:8]}"
    update = dns.update.Update(
        zone, keyring=keyring, keyname=key.name, keyalgorithm=dns.tsig.HMAC_SHA256
    )
    update.replace(name, 30, "A", "127.0.2.99")
    primary = layout.service_ip(info["primary"])
    assert dns.query.tcp(update, primary, port=53, timeout=5).rcode() == dns.rcode.NOERROR

    for site in info["secondaries"]:
        server = layout.service_ip(site)
        eventually(
            lambda server=server: _a_record(server, f"{name}.{zone}")[1] == ["127.0.2.99"],
            f"update at {info['primary']} visible at secondary {site}",
        )

    unsigned = dns.update.Update(zone)
    unsigned.replace(name, 30, "A", "127.0.2.98")
    assert dns.query.tcp(unsigned, primary, port=53, timeout=5).rcode() == dns.rcode.REFUSED


def _csns(lab: LabHandle, uri: str) -> tuple[str, ...]:
    conn = connect(uri, Path(lab.env["ldap"]["ca_file"]), lab.ldap_password)
    try:
        conn.search(layout.SUFFIX, "(objectClass=*)", ldap3.BASE, attributes=["contextCSN"])
        return tuple(sorted(conn.entries[0].contextCSN.values))
    finally:
        conn.unbind()


def test_ldap_write_on_one_provider_reaches_the_other_three(lab: LabHandle) -> None:
    uris = lab.env["ldap"]["uris"]
    uid = f"probe-{uuid.uuid4().hex[:8]}"
    dn = f"uid={uid},ou=people,{layout.SUFFIX}"
    writer = connect(uris["dc2-ldap2"], Path(lab.env["ldap"]["ca_file"]), lab.ldap_password)
    try:
        assert writer.tls_started
        assert writer.add(dn, ["inetOrgPerson"], {"cn": uid, "sn": "Probe", "uid": uid})
    finally:
        writer.unbind()

    def present(uri: str) -> bool:
        conn = connect(uri, Path(lab.env["ldap"]["ca_file"]), lab.ldap_password)
        try:
            return bool(conn.search(dn, "(objectClass=*)", ldap3.BASE))
        finally:
            conn.unbind()

    for name, uri in uris.items():
        eventually(lambda uri=uri: present(uri), f"{dn} replicated to {name}")
    csns = eventually(
        lambda: (
            len({_csns(lab, uri) for uri in uris.values()}) == 1 and _csns(lab, uris["dc1-ldap1"])
        ),
        "contextCSN equal on all four providers",
    )
    # dc1-ldap1 loaded the directory (sid 001) and dc2-ldap2 (sid 004) just wrote.
    assert {csn.split("#")[2] for csn in csns} >= {"001", "004"}


def test_ldap_refuses_a_bind_without_the_admin_password(lab: LabHandle) -> None:
    uri = lab.env["ldap"]["uris"]["dc1-ldap2"]
    with pytest.raises(ldap3.core.exceptions.LDAPException):
        connect(uri, Path(lab.env["ldap"]["ca_file"]), "wrong-password")


def test_object_put_at_the_active_site_is_replicated_to_the_standby(lab: LabHandle) -> None:
    state = lab.state()
    active, standby = lab.active_site(), lab.standby_site()
    key = f"probe/{uuid.uuid4().hex}"
    s3.client(state, active).put_object(Bucket=s3.BUCKET, Key=key, Body=b"blob")
    eventually(
        lambda: (
            s3.client(state, active).head_object(Bucket=s3.BUCKET, Key=key)["ReplicationStatus"]
            == "COMPLETED"
        ),
        f"ReplicationStatus COMPLETED at {active}",
    )
    replica = s3.client(state, standby).get_object(Bucket=s3.BUCKET, Key=key)
    assert replica["Body"].read() == b"blob"
    assert replica["ReplicationStatus"] == "REPLICA"


def _inbox_subjects(lab: LabHandle, site: str) -> list[str]:
    with mail.imap_client(lab.state(), site) as imap:  # STARTTLS, the lab CA verifying
        imap.select("INBOX", readonly=True)
        _, data = imap.search(None, "ALL")
        subjects = []
        for num in data[0].split():
            _, parts = imap.fetch(num, "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            subjects.append(parts[0][1].decode().strip())
        return subjects


def test_mail_sent_over_smtp_is_read_over_imap_and_reaches_the_mirror(lab: LabHandle) -> None:
    active, standby = lab.active_site(), lab.standby_site()
    # `lab env --json` gives a mail client what it needs: the addresses and a user's
    # credentials (the login below reads the password from the file it names).
    env = json.loads(lab.ok("env", "--json"))
    assert env["active_site"] == active
    for site in layout.DATACENTERS:
        assert env["mail"][site]["smtp"] == f"{layout.service_ip(site)}:{layout.SMTP_PORT}"
        assert env["mail"][site]["imap"] == f"{layout.service_ip(site)}:{layout.IMAP_PORT}"
    assert (env["mail"]["login"], env["mail"]["user"]) == (
        layout.MAIL_USER,
        f"{layout.MAIL_USER}@{layout.MAIL_DOMAIN}",
    )
    assert env["mail"]["password_file"] == lab.env["mail"]["password_file"]
    subject = f"lab probe {uuid.uuid4().hex}"
    send_test_mail(active, subject)
    eventually(
        lambda: f"Subject: {subject}" in _inbox_subjects(lab, active),
        "message readable over IMAP",
    )
    maildir = Path(lab.env["mail"][active]["maildir"])
    (message,) = [p for p in (maildir / "new").iterdir() if subject in p.read_text()]

    state = lab.state()
    standby_snaps = volumes.pool(state, standby) / "snaps"

    def mirrored() -> bool:
        last = volumes.mirror(state).status().last_snapshot
        copy = (
            standby_snaps / str(last) / "mail" / layout.MAIL_USER / "Maildir" / "new" / message.name
        )
        return copy.is_file() and copy.read_bytes() == message.read_bytes()

    eventually(mirrored, f"the message's file in {standby}'s newest mirrored snapshot")


def test_status_lists_every_component_up_except_the_standby_app(lab: LabHandle) -> None:
    rows = lab.status()
    # Down: the standby's application, and the controllers and dead-man agents,
    # configured but started only by `lab controllers up`; none is wanted. Everything
    # else runs.
    controllers = {f"{site}-controller" for site in layout.SITES} | {
        f"{site}-deadman" for site in layout.DATACENTERS
    }
    standby = {f"{lab.standby_site()}-postfix", f"{lab.standby_site()}-dovecot"} | controllers
    assert {name for name, row in rows.items() if row["state"] != "up"} == standby
    assert {name for name, row in rows.items() if not row["wanted"]} == standby
    for name, row in rows.items():
        assert row["site"] in layout.SITES
        assert (row["pid"] is None) == (name in standby)
    assert rows["dc1-ldap2"]["address"] == "198.18.1.12:389"
    assert rows["witness-zookeeper"]["address"] == "198.18.3.1:2181"


def test_secrets_are_private_and_env_points_at_them(lab: LabHandle) -> None:
    secrets = Path(lab.env["state_dir"]) / "secrets"
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o700
    files = [path for path in secrets.rglob("*") if path.is_file()]
    assert files
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    for directory in (path for path in secrets.rglob("*") if path.is_dir()):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory
    # The SSH client key is there (with its host keys and known_hosts), private too.
    assert secrets / "ssh" / "id_ed25519" in files
    referenced = [
        lab.env["ldap"]["password_file"],
        lab.env["s3"]["access_key_file"],
        lab.env["s3"]["secret_key_file"],
        lab.env["mail"]["password_file"],
        lab.env["dns"]["xfer_key_file"],
        *(z["ddns_key_file"] for z in lab.env["dns"]["zones"].values()),
        *(s["rndc"]["key_file"] for s in lab.env["dns"]["servers"].values()),
    ]
    assert {Path(p) for p in referenced} <= set(files)
    exports = lab.ok("env")
    assert f"export SITECTL_CONFIG={lab.env['topology']}" in exports


def test_the_lab_topology_is_valid_for_sitectl_validate(lab: LabHandle) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from orchestrator.cli.main import run; run()",
            "validate",
            "-c",
            lab.env["topology"],
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid" in result.stdout
