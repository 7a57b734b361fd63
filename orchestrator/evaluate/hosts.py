"""The target site's hosts: each answers Ansible (`ping`) over SSH with its known host
key, each mount point a move mounts has its directory there, and each service a move
starts exists there.

One read-only playbook run on every host the plan's target-site steps name (made here
as data, like the shared run's plays): `ping`, `stat` of the mount points' parent
directories, the role's `status` command where the topology gives `commands` (run, its
answer ignored: only "cannot run", exit 126 or 127, is a problem: a stopped service's
status is the normal answer on a standby), else `service_facts` for the role's services.
Interpretation (`judge_host`) is pure and table-tested.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.adapters.ansible import AnsibleTemplate, ProbeReport, run_probe
from orchestrator.config.model import Topology
from orchestrator.errors import SitectlError
from orchestrator.evaluate.findings import Finding, note, ok, problem
from orchestrator.plan.model import Action, Plan
from orchestrator.safefiles import private_dir, write_atomic

ANSIBLE = "ansible"
MOUNT = "mount"
SERVICE = "service"
PING, PATHS, COMMANDS, SERVICES = "ping", "mount point directories", "status commands", "services"
CANNOT_RUN = (126, 127)  # the shell's "not executable" and "not found"
HOST_KEY_SIGNS = ("Host key verification failed", "REMOTE HOST IDENTIFICATION HAS CHANGED")
PROBE_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Expect:
    """What one host must offer a move: (volume, directory) pairs, (role, status
    command) pairs and (role, service) pairs."""

    paths: tuple[tuple[str, str], ...] = ()
    commands: tuple[tuple[str, str], ...] = ()
    services: tuple[tuple[str, str], ...] = ()


@dataclass
class _Building:
    paths: list[tuple[str, str]] = field(default_factory=list)
    commands: list[tuple[str, str]] = field(default_factory=list)
    services: list[tuple[str, str]] = field(default_factory=list)


def expectations(topo: Topology, plan: Plan) -> dict[str, Expect]:
    """Per host the plan's target-site steps run on, what it must offer (pure)."""
    found: dict[str, _Building] = {}
    for step in plan.steps():
        if step.site != plan.to_site or not step.hosts:
            continue
        for host in step.hosts:
            want = found.setdefault(host, _Building())
            if step.action is Action.VOLUME_MOUNT:
                vol = next(v for v in topo.volumes if v.name == step.target)
                parent = str(Path(vol.mount_point_at(plan.to_site)).parent)
                want.paths.append((vol.name, parent))
            elif step.action is Action.APP_START:
                role = topo.roles[step.target]
                if role.commands is not None:
                    want.commands.append((step.target, role.commands.status))
                else:
                    want.services.extend((step.target, s) for s in role.services)
    return {
        host: Expect(tuple(b.paths), tuple(b.commands), tuple(b.services))
        for host, b in found.items()
    }


def merged(each: list[dict[str, Expect]]) -> dict[str, Expect]:
    """Several plans' expectations as one per host, each item once (pure)."""
    out: dict[str, Expect] = {}
    for expect in each:
        for host, e in expect.items():
            had = out.get(host, Expect())
            out[host] = Expect(
                tuple(dict.fromkeys(had.paths + e.paths)),
                tuple(dict.fromkeys(had.commands + e.commands)),
                tuple(dict.fromkeys(had.services + e.services)),
            )
    return out


def probe_play(expect: Mapping[str, Expect]) -> list[dict[str, Any]]:
    """The read-only play, as data (pure). Each host reads its own lists from the
    `sitectl_expect` extra var (paths and services are passed unsafe, never templated;
    a status command is the operator's, whose `{{ host_var }}` Ansible fills in)."""
    del expect  # the lists travel as extra vars; the play is the same for every host
    mine = "sitectl_expect[inventory_hostname]"
    return [
        {
            "name": "sitectl evaluate: look, change nothing",
            "hosts": "all",
            "gather_facts": False,
            "tasks": [
                {"name": PING, "ansible.builtin.ping": {}},
                {
                    "name": PATHS,
                    "ansible.builtin.stat": {
                        "path": "{{ item }}",
                        "get_checksum": False,
                        "get_mime": False,
                        "get_attributes": False,
                    },
                    "loop": f"{{{{ {mine}.paths }}}}",
                },
                {
                    "name": COMMANDS,
                    "ansible.builtin.shell": "{{ item }}",
                    "loop": f"{{{{ {mine}.commands }}}}",
                    "changed_when": False,
                    "failed_when": False,
                },
                {
                    "name": SERVICES,
                    "ansible.builtin.service_facts": {},
                    "when": f"{mine}.services | length > 0",
                    "ignore_errors": True,
                },
            ],
        }
    ]


def extravars(expect: Mapping[str, Expect]) -> dict[str, Any]:
    return {
        "sitectl_expect": {
            host: {
                "paths": [path for _, path in e.paths],
                "commands": [AnsibleTemplate(command) for _, command in e.commands],
                "services": [service for _, service in e.services],
            }
            for host, e in expect.items()
        }
    }


def judge_host(
    host: str,
    expect: Expect,
    results: Mapping[str, Mapping[str, Any]],
    unreachable: str | None = None,
    failed: str | None = None,
) -> list[Finding]:
    """The findings for one host from what the probe's tasks returned there (pure)."""
    if unreachable is not None:
        if any(sign in unreachable for sign in HOST_KEY_SIGNS):
            why = (
                "its SSH host key does not match known_hosts (changed, or a machine in its "
                "place) — verify the host, then update known_hosts"
            )
        else:
            why = f"does not answer Ansible over SSH: {unreachable}"
        return [problem(ANSIBLE, host, why)]
    if PING not in results or results[PING].get("failed"):
        return [problem(ANSIBLE, host, f"Ansible ping failed: {failed or 'no answer'}")]
    out = [ok(ANSIBLE, host, "answers Ansible ping over SSH with its known host key")]
    out += _judge_paths(host, expect, results.get(PATHS))
    out += _judge_commands(host, expect, results.get(COMMANDS))
    out += _judge_services(host, expect, results.get(SERVICES))
    return out


def _items(res: Mapping[str, Any] | None, count: int) -> list[Mapping[str, Any] | None]:
    """A loop task's per-item results, padded with None to `count`."""
    items = list((res or {}).get("results") or [])
    return [items[i] if i < len(items) else None for i in range(count)]


def _judge_paths(host: str, expect: Expect, res: Mapping[str, Any] | None) -> list[Finding]:
    out = []
    for (volume, path), item in zip(expect.paths, _items(res, len(expect.paths)), strict=True):
        subject = f"{volume} on {host}"
        stat = (item or {}).get("stat") or {}
        if item is None:
            out.append(problem(MOUNT, subject, f"{path} was not looked at: {_said(res)}"))
        elif stat.get("exists") and stat.get("isdir"):
            out.append(ok(MOUNT, subject, f"{path}, where the mount point goes, exists"))
        elif stat.get("exists"):
            out.append(problem(MOUNT, subject, f"{path} exists but is not a directory"))
        else:
            out.append(
                problem(MOUNT, subject, f"{path} does not exist, so the mount point cannot be made")
            )
    return out


def _judge_commands(host: str, expect: Expect, res: Mapping[str, Any] | None) -> list[Finding]:
    out = []
    for (role, _command), item in zip(
        expect.commands, _items(res, len(expect.commands)), strict=True
    ):
        subject = f"{role} on {host}"
        rc = (item or {}).get("rc")
        if not isinstance(rc, int):
            out.append(problem(SERVICE, subject, f"its status command did not run: {_said(res)}"))
        elif rc in CANNOT_RUN:
            tail = " ".join(str((item or {}).get("stderr") or "").split())[:200]
            out.append(
                problem(
                    SERVICE,
                    subject,
                    f"its status command cannot run (exit {rc}: {tail or 'not found'}) — "
                    f"install the role there or fix roles.{role}.commands.status",
                )
            )
        else:
            out.append(ok(SERVICE, subject, f"its status command runs there (exit {rc})"))
    return out


def _judge_services(host: str, expect: Expect, res: Mapping[str, Any] | None) -> list[Finding]:
    if not expect.services:
        return []
    listed = ((res or {}).get("ansible_facts") or {}).get("services")
    if not isinstance(listed, Mapping) or (res or {}).get("failed"):
        return [
            note(
                SERVICE,
                f"{role} on {host}",
                f"the services cannot be listed there ({_said(res)}); give the role "
                "commands with a status command to check it",
            )
            for role in dict.fromkeys(r for r, _ in expect.services)
        ]
    out = []
    for role, service in expect.services:
        subject = f"{role}/{service} on {host}"
        if service in listed or f"{service}.service" in listed:
            out.append(ok(SERVICE, subject, f"service {service} is installed"))
        else:
            out.append(problem(SERVICE, subject, f"service {service} is not installed on {host}"))
    return out


def _said(res: Mapping[str, Any] | None) -> str:
    return " ".join(str((res or {}).get("msg") or "no result").split())[:200]


def check_hosts(topo: Topology, plans: list[Plan], artifacts: Path | None = None) -> list[Finding]:
    """Run the probe on the hosts the `plans` act on at their target site; judge each (I/O)."""
    expect = merged([expectations(topo, plan) for plan in plans])
    if not expect:
        return []
    with tempfile.TemporaryDirectory(prefix="sitectl-evaluate-") as scratch:
        where = artifacts or Path(scratch)
        private_dir(where)
        playbook = where / "evaluate.yml"
        write_atomic(playbook, json.dumps(probe_play(expect), indent=1))
        try:
            report = run_probe(
                playbook,
                topo.resolve(topo.ansible.inventory),
                tuple(sorted(expect)),
                extravars(expect),
                where / "run",
                timeout=PROBE_TIMEOUT_S,
            )
        except SitectlError as exc:
            where = plans[0].to_site
            return [problem(ANSIBLE, where, f"the probe playbook did not run: {exc}")]
    return judge_report(expect, report)


def judge_report(expect: Mapping[str, Expect], report: ProbeReport) -> list[Finding]:
    out: list[Finding] = []
    for host in sorted(expect):
        out += judge_host(
            host,
            expect[host],
            report.results.get(host, {}),
            report.unreachable.get(host),
            report.failed.get(host),
        )
    return out
