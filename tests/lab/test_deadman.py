"""The dead-man agents on the namespace lab: the loss policy of the active site.

Invariants a user would check, with real clients inside the sites: once the active
site's controller can no longer vouch for it (the site cut off from the ZooKeeper
majority, or the controller dead), a client inside that site gets no SMTP answer, its
DNS server sends nobody to it, and its volume is not mounted, within `fence_after` and
the time the fence takes; while the controller can still vouch (a single link cut, the
standby cut off), nothing is fenced.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dns.query
import dns.rcode
import dns.tsig
import dns.tsigkeyring
import dns.update
import pytest

from orchestrator.config import load_topology
from orchestrator.lab import layout, volumes
from orchestrator.lab.deadman import KIND
from orchestrator.lab.environment import topology_path
from tests.conftest import LabHandle, eventually, lab_command
from tests.lab.test_partition import answering, seen_from

pytestmark = pytest.mark.lab


def fence_after(lab: LabHandle) -> float:
    return load_topology(topology_path(lab.state_dir)).fence_after


# The fence's reaction: ZooKeeper noticing the cut (its sync limit, 2.5 s), one feed
# interval, the agent's tick and the fence actions themselves on a busy machine.
REACTION = 8.0


def service(site: str) -> list[str]:
    """What a client inside `site` writes through: its mail servers."""
    ip = layout.service_ip(site)
    return [f"smtp@{ip}:{layout.SMTP_PORT}", f"imap@{ip}:{layout.IMAP_PORT}"]


def local_dns(site: str) -> list[str]:
    """The service's names, asked of the site's own DNS server."""
    server = f"{layout.service_ip(site)}:{layout.DNS_PORT}"
    zones = (layout.INTERNAL_ZONE, layout.EXTERNAL_ZONE)
    return [f"dns:{layout.MAIL_RECORD}.{zone}@{server}" for zone in zones]


def agent_log(lab: LabHandle, site: str) -> str:
    path = Path(lab.state().components[f"{site}-{KIND}"].log)
    return path.read_text(errors="replace") if path.exists() else ""


def controller_log(lab: LabHandle, site: str) -> str:
    lines = Path(lab.state().components[f"{site}-controller"].log).read_text().splitlines()
    return "\n".join(line for line in lines if "vouch" in line)


def mounted(lab: LabHandle, site: str) -> bool:
    point = str(volumes.mount_point(lab.state(), site))
    return any(line.split()[1] == point for line in Path("/proc/mounts").read_text().splitlines())


@pytest.fixture
def guarded(lab: LabHandle) -> Iterator[LabHandle]:
    """The lab with its controllers and agents up, the active site vouched for; a fresh
    lab afterwards (a fence rewrites the site's DNS and stops its application)."""
    if lab.active_site() != layout.ACTIVE_SITE:
        lab.renew()
    lab.ok("controllers", "up")
    try:
        eventually(
            lambda: f"{layout.ACTIVE_SITE} was confirmed" in agent_log(lab, layout.ACTIVE_SITE),
            "the active site's agent is fed",
            within=30,
        )
        yield lab
    finally:
        lab.ok("heal-network")
        lab.ok("controllers", "down")
        lab.renew()


def wait_fenced(lab: LabHandle, site: str, since: float) -> float:
    """Seconds from `since` until a client inside `site` gets none of its service."""
    deadline = since + fence_after(lab) + REACTION + 10
    while True:
        still = answering(seen_from(lab, site, service(site)))
        if not still:
            return time.monotonic() - since
        if time.monotonic() > deadline:
            pytest.fail(f"{site} still serves {sorted(still)}; its agent:\n{agent_log(lab, site)}")
        time.sleep(0.2)


def assert_fenced_by_its_agent(lab: LabHandle, site: str) -> None:
    # The clients see the application go first; the DNS and volume actions follow.
    eventually(lambda: f"{site} fenced in" in agent_log(lab, site), f"{site}'s fence ends")
    log = agent_log(lab, site)
    assert f"fencing {site}" in log
    done = [line for line in log.splitlines() if f"{site} fenced in" in line]
    fenced_line = done[-1]
    total = fenced_line.rsplit("of ", 1)[1].split()[0]
    assert f": {total} of {total} actions done" in fenced_line, log
    assert not mounted(lab, site), f"{site}'s volume is still mounted"


def test_a_site_cut_off_from_the_majority_fences_itself(guarded: LabHandle) -> None:
    lab, site = guarded, layout.ACTIVE_SITE
    assert answering(seen_from(lab, site, service(site))) == set(service(site))
    cut = time.monotonic()
    lab.ok("partition", site)
    took = wait_fenced(lab, site, cut)
    assert took <= fence_after(lab) + REACTION, f"{site} fenced {took:.1f} s after the cut"
    assert_fenced_by_its_agent(lab, site)
    # Its DNS server dropped the zones it can no longer refresh: a client inside the
    # site is sent nowhere, not to its own fenced site's address.
    seen = seen_from(lab, site, local_dns(site))
    assert not answering(seen), seen


def test_a_dead_controller_fences_its_site(guarded: LabHandle) -> None:
    lab, site = guarded, layout.ACTIVE_SITE
    assert takes_updates(lab, site, layout.INTERNAL_ZONE), "the primary takes updates"
    controller = lab.state().components[f"{site}-controller"]
    assert controller.pid is not None
    killed = time.monotonic()
    os.kill(controller.pid, signal.SIGKILL)
    took = wait_fenced(lab, site, killed)
    # No ZooKeeper delay here: the feeds stop with the process.
    assert took <= fence_after(lab) + REACTION, f"{site} fenced {took:.1f} s after the kill"
    assert_fenced_by_its_agent(lab, site)
    # Not cut off, its DNS server follows the others again: no longer the zone's
    # primary, it takes no update.
    assert not takes_updates(lab, site, layout.INTERNAL_ZONE)


def takes_updates(lab: LabHandle, site: str, zone: str) -> bool:
    """Whether `site`'s DNS server accepts a signed RFC 2136 update of `zone`."""
    key = lab.ddns_key(zone)
    update = dns.update.Update(
        zone,
        keyring=dns.tsigkeyring.from_text(key.keyring()),
        keyname=key.name,
        keyalgorithm=dns.tsig.HMAC_SHA256,
    )
    update.replace("fence-probe", 30, "A", "127.0.2.97")
    try:
        answer = dns.query.tcp(update, layout.service_ip(site), port=layout.DNS_PORT, timeout=5)
    except dns.tsig.PeerError:  # BADKEY: a secondary does not hold the update key
        return False
    return answer.rcode() == dns.rcode.NOERROR


def test_cuts_that_leave_the_active_site_a_majority_fence_nothing(guarded: LabHandle) -> None:
    lab, active = guarded, layout.ACTIVE_SITE
    standby = next(s for s in layout.DATACENTERS if s != active)
    for cut in (
        ["partition", active, "--from", standby],
        ["partition", active, "--from", "witness"],
        ["partition", standby],
    ):
        lab.ok(*cut)
        time.sleep(fence_after(lab) + 3)
        seen = seen_from(lab, active, service(active))
        assert answering(seen) == set(service(active)), (
            f"after {' '.join(cut)}: {seen}\n{controller_log(lab, active)}"
        )
        assert mounted(lab, active)
        lab.ok("heal-network")
    for site in (active, standby):
        assert "fencing" not in agent_log(lab, site)
    assert f"{standby} does not hold the right to serve" in agent_log(lab, standby)


def test_the_lone_survivor_fences_itself(guarded: LabHandle, tmp_path: Path) -> None:
    """dc2 and the witness lost at once: no quorum anywhere, so dc1's controller cannot
    renew the ticket, and dc1 fences itself (safety first, as booth does)."""
    lab, site = guarded, layout.ACTIVE_SITE
    lab.ok("kill-site", "dc2")
    started = time.monotonic()
    lab.ok("kill-site", "witness")
    # From here no write reaches a quorum, so no renewal succeeds: the last one came
    # before this instant (and after `started`); then only the agent's tick and the
    # application's stop. Each kill takes seconds on a busy machine, which is why the
    # clock does not start before them.
    lost = time.monotonic()
    took = wait_fenced(lab, site, lost)
    assert took <= fence_after(lab) + 2.5, (
        f"{site} fenced {took:.1f} s after losing quorum (the witness's kill took "
        f"{lost - started:.1f} s)"
    )
    assert_fenced_by_its_agent(lab, site)

    # The operator's way back, from inside the site: no quorum can record a grant, so
    # the override goes to the site's agent, which restores the site.
    audit = tmp_path / "audit.jsonl"
    reason = "test: dc2 and the witness lost for good, CHG-18"
    sitectl = [sys.executable, "-m", "orchestrator.cli.main", "ticket", "grant", site]
    without = lab_command(
        *("exec", "--state-dir", str(lab.state_dir), site, "--", *sitectl),
        *("-c", str(topology_path(lab.state_dir))),
        env={"SITECTL_AUDIT_LOG": str(audit)},
    )
    assert without.returncode == 1 and "--no-quorum" in without.stderr, without.stderr
    granted = lab_command(
        *("exec", "--state-dir", str(lab.state_dir), site, "--", *sitectl, "--force", reason),
        *("--no-quorum", "-c", str(topology_path(lab.state_dir))),
        env={"SITECTL_AUDIT_LOG": str(audit)},
    )
    assert granted.returncode == 0, granted.stderr + granted.stdout
    assert "WARNING: the right to serve was given without a quorum" in granted.stderr
    assert f"1 of 1 dead-man agents of {site} took the override" in granted.stdout
    eventually(
        lambda: answering(seen_from(lab, site, service(site))) == set(service(site)),
        f"{site} serves again",
        within=60,
    )
    assert f"{site} restored in" in agent_log(lab, site)
    assert mounted(lab, site), f"{site}'s volume is mounted again"
    assert takes_updates(lab, site, layout.INTERNAL_ZONE), "its DNS server is the primary again"
    (audited,) = [
        json.loads(line) for line in audit.read_text().splitlines() if "ticket.granted" in line
    ]
    assert (audited["site"], audited["reason"], audited["no_quorum"]) == (site, reason, True)
    assert audited["user"] and audited["acknowledged"]
    # Still no quorum: the agent does not fence the site it was told to keep serving.
    time.sleep(fence_after(lab) + 2)
    assert answering(seen_from(lab, site, service(site))) == set(service(site))
    assert agent_log(lab, site).count(f"{site} fenced in") == 1
