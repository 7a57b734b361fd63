"""Helpers for the engine's scenarios on the real lab: run `sitectl` as a user would,
and read the world back through real clients (DNS, SMTP/IMAP, /proc/mounts)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rdatatype
import pytest

from orchestrator.adapters.ansible import GATE_PLAY
from orchestrator.adapters.probes import Answer, Tls, probe
from orchestrator.config import Topology, load_topology
from orchestrator.engine.operation import ARTIFACTS
from orchestrator.lab import layout
from tests.conftest import LabHandle, eventually

SITECTL = str(Path(sys.executable).with_name("sitectl"))


@contextlib.contextmanager
def lab_controllers(cluster: Cluster) -> Iterator[None]:
    """The lab's own controllers (and dead-man agents) up for the block, down after."""
    cluster.lab.ok("controllers", "up")
    try:
        yield
    finally:
        cluster.lab.ok("controllers", "down")


@dataclass
class Cluster:
    """The lab seen through sitectl's eyes."""

    lab: LabHandle

    @property
    def topology_file(self) -> Path:
        return self.lab.state_dir / "topology.yaml"

    @property
    def topology(self) -> Topology:
        return load_topology(self.topology_file)

    def env(self, **extra: str) -> dict[str, str]:
        env = {
            **os.environ,
            "SITECTL_CONFIG": str(self.topology_file),
            "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
        }
        env.pop("SITECTL_FAULT_KILL_AFTER_STEPS", None)
        env.pop("SITECTL_FAULT_KILL_INSIDE", None)
        return {**env, **extra}

    def sitectl(
        self, *args: str, timeout: float = 300, **env: str
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [SITECTL, *args],
            capture_output=True,
            text=True,
            env=self.env(**env),
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )

    def ok(self, *args: str, **env: str) -> dict[str, Any]:
        done = self.sitectl(*args, "--json", **env)
        assert done.returncode == 0, (
            f"sitectl {' '.join(args)} → {done.returncode}\n{done.stderr}\n{done.stdout}"
        )
        return json.loads(done.stdout)

    def status(self) -> dict[str, Any]:
        return self.ok("status")

    # The world, read back by real clients

    def dns_answers(self) -> dict[str, set[str]]:
        """`server fqdn` → the A values it answers, for every record on every server."""
        answers = {}
        for zone in self.topology.dns.zones:
            for record in zone.records:
                name = zone.fqdn(record)
                for server in zone.verify_servers:
                    query = dns.message.make_query(name, dns.rdatatype.A)
                    query.flags &= ~dns.flags.RD
                    reply = dns.query.udp(query, server.address, port=server.port, timeout=2)
                    values = {r.address for rrset in reply.answer for r in rrset}
                    answers[f"{server} {name}"] = values
        return answers

    def dns_answers_alive(self) -> dict[str, set[str]]:
        """Like dns_answers, skipping servers that do not answer (a killed site's)."""
        answers = {}
        for zone in self.topology.dns.zones:
            for record in zone.records:
                for server in zone.verify_servers:
                    query = dns.message.make_query(zone.fqdn(record), dns.rdatatype.A)
                    query.flags &= ~dns.flags.RD
                    try:
                        reply = dns.query.udp(query, server.address, port=server.port, timeout=1)
                    except dns.exception.Timeout:
                        continue
                    answers[f"{server} {zone.fqdn(record)}"] = {
                        r.address for rrset in reply.answer for r in rrset
                    }
        return answers

    def mounted_sites(self) -> set[str]:
        mounts = Path("/proc/mounts").read_text()
        return {
            site
            for site in layout.DATACENTERS
            if f" {self.lab.state_dir / site / 'volume'} " in mounts
        }

    def tls(self, mode: str) -> Tls:
        return Tls(mode, self.lab.env["mail"]["ca_file"])

    def app_answers(self, site: str) -> dict[str, Answer]:
        ip = layout.service_ip(site)
        return {
            "smtp": probe("smtp", ip, layout.SMTP_PORT, 3, tls=self.tls("starttls")).answer,
            "imap": probe("imap", ip, layout.IMAP_PORT, 3, tls=self.tls("starttls")).answer,
        }

    def send_mail(self, site: str) -> str:
        import smtplib
        from email.message import EmailMessage

        subject = f"scenario {uuid.uuid4().hex[:10]}"
        message = EmailMessage()
        message["From"] = "tester@example.test"
        message["To"] = f"{layout.MAIL_USER}@{layout.MAIL_DOMAIN}"
        message["Subject"] = subject
        message.set_content("written by a scenario test\n")
        with smtplib.SMTP(layout.service_ip(site), layout.SMTP_PORT, timeout=5) as smtp:
            smtp.send_message(message)
        return subject

    def mail_count(self, site: str, subject: str) -> int:
        from orchestrator.adapters.probes import find_message

        return find_message(
            layout.service_ip(site),
            layout.IMAPS_PORT,
            layout.MAIL_USER,
            self.lab.mail_password,
            subject,
            tls=self.tls("imaps"),
        )

    def wait_delivered(self, site: str, subject: str) -> None:
        eventually(lambda: self.mail_count(site, subject) >= 1, f"{subject!r} delivered on {site}")

    def mirror(self) -> dict[str, Any]:
        """The lab mirror's status, as its driver reports it."""
        from orchestrator.storage import BtrfsMirror, MirrorConfig

        config = self.lab.state_dir / "volumes" / "mirror-mail.config.json"
        status = BtrfsMirror(MirrorConfig.load(config)).status()
        return {
            "source": status.source,
            "destination": status.destination,
            "state": status.state.value,
        }

    def shared_run_tasks(self, op_id: str) -> list[dict[str, Any]]:
        """Each task event of the operation's shared playbook runs (every lane's) in its
        steps' plays, gates aside: event, play, task and host."""
        topo = self.topology
        runs = topo.resolve(topo.local_state) / ARTIFACTS / op_id
        found = [
            json.loads(path.read_text())
            for path in runs.glob("batch-*/artifacts/*/job_events/*.json")
        ]
        return [
            {"event": e["event"], **{k: e["event_data"].get(k) for k in ("play", "task", "host")}}
            for e in found
            if e.get("event", "").startswith("runner_on_")
            and not str(e["event_data"].get("play", "")).startswith(GATE_PLAY)
        ]

    def assert_protected(self, site: str) -> None:
        """`site` is active and its volume mirrors towards the other datacenter."""
        other = next(s for s in layout.DATACENTERS if s != site)
        self.assert_active(site)
        assert self.mirror() == {"source": site, "destination": other, "state": "mirrored"}

    def assert_active(self, site: str) -> None:
        """DNS everywhere, the mounted volume, the running application and sitectl agree."""
        other = next(s for s in layout.DATACENTERS if s != site)
        expected = {layout.service_ip(site)}
        wrong = {k: v for k, v in self.dns_answers().items() if v != expected}
        assert not wrong, f"DNS servers not pointing at {site}: {wrong}"
        assert self.mounted_sites() == {site}
        assert set(self.app_answers(site).values()) == {Answer.UP}
        assert set(self.app_answers(other).values()) == {Answer.REFUSED}
        assert self.status()["active_site"] == site

    def at_home(self) -> bool:
        """dc1 active and protected, nothing in progress: where every scenario starts."""
        try:
            status = self.status()
            self.assert_protected("dc1")
        except Exception:  # a dead server (a DNS timeout) also means "not home"
            return False
        return not (status["operation"] and status["operation"]["in_progress"])

    def move_back_to_dc1(self) -> None:
        """Leave the lab as the next scenario expects it: dc1 active, mirrored to dc2."""
        self.lab.heal_all()
        op = self.status()["operation"]
        # An earlier scenario may have stopped mid-operation on purpose: finish it first.
        if op and op["in_progress"] and self.sitectl("resume", "--yes").returncode != 0:
            self.sitectl("abort")
        if self.status()["active_site"] != "dc1":
            if self.mirror()["destination"] != "dc1":
                self.ok("reprotect", "--yes", "--reason", "scenario cleanup")
            self.ok("switchover", "--to", "dc1", "--yes", "--reason", "scenario cleanup")
        if self.mirror()["source"] != "dc1":
            self.ok("reprotect", "--yes", "--reason", "scenario cleanup")


@pytest.fixture(scope="session")
def cluster(lab: LabHandle) -> Cluster:
    return Cluster(lab)


@pytest.fixture(autouse=True)
def _start_home(cluster: Cluster) -> None:
    """Every scenario starts from dc1 active and protected, whatever ran before it (a
    drill may rightly end with dc2 active): from a new lab when it is not, which is much
    quicker than operating the way back (a scenario of its own)."""
    if not cluster.at_home():
        cluster.lab.renew()
