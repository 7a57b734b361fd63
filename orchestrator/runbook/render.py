"""Render a plan into a Markdown runbook a person can follow by hand."""

from __future__ import annotations

from pathlib import Path

import jinja2

from orchestrator.config.model import Topology
from orchestrator.coordination.ticket import Ticket
from orchestrator.plan.model import Plan
from orchestrator.runbook.manual import REMOVE_SECRETS_DIR, manual_step, secret_files

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("orchestrator.runbook", "templates"),
    autoescape=False,  # Markdown with shell commands: escaping would corrupt them
    keep_trailing_newline=True,
    undefined=jinja2.StrictUndefined,
)
# jinja's capitalize lower-cases the rest ("Dns", "Contextcsn"); only lift the first letter.
_ENV.filters["sentence"] = lambda text: text[:1].upper() + text[1:]


def render_runbook(
    topo: Topology, plan: Plan, topology_file: str, ticket: Ticket | None = None
) -> str:
    """`ticket`: the site ticket as read now, for a failover's fence/wait arithmetic."""
    groups = []
    for g_index, group in enumerate(plan.groups, start=1):
        groups.append(
            {
                "number": g_index,
                "phase": group.phase.value,
                "parallel": group.parallel,
                "steps": [
                    {
                        "number": f"{g_index}.{s_index}",
                        "step": step,
                        "manual": manual_step(topo, plan, step, ticket),
                    }
                    for s_index, step in enumerate(group.steps, start=1)
                ],
            }
        )
    return _ENV.get_template("runbook.md.j2").render(
        plan=plan,
        groups=groups,
        topology_file=topology_file,
        topology_dir=str(Path(topology_file).parent),
        secret_sources=_secret_sources(topo),
        secret_files=secret_files(topo, plan),
        remove_secret_files=REMOVE_SECRETS_DIR,
        unreachable_timeout=int(topo.policy.unreachable_timeout),
    )


def _secret_sources(topo: Topology) -> list[str]:
    """Name every environment variable and file the commands read, so the operator can
    set them up before the first step rather than discover them mid-way."""
    found: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if set(node) == {"file", "env"}:
                found.append(f"${node['env']}" if node["env"] else f"file {node['file']}")
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(topo.model_dump(mode="json"))
    for zone in topo.dns.zones:
        if zone.tsig is not None and zone.tsig.key_file:
            found.append(f"key file {zone.tsig.key_file}")
    return sorted(set(found)) or ["nowhere (no secrets referenced)"]
