"""The application's start gate: may SITE start its application now? (issue 18)

    python -m orchestrator.startgate SITE -c topology.yaml [--agent-state FILE]

The same decision as `sitectl ticket check`, which calls `decide` too, without the CLI:
the gate runs before every start of every application role (a unit's `ExecStartPre=`,
the lab's role start commands), so it imports only the topology and ZooKeeper's client
(≈ 0.3 s, against ≈ 0.9 s for the whole CLI). Exit 0 with one line on stdout when the
site may start, 4 with one line on stderr when not, 2 for a topology it cannot read.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from orchestrator.config import load_topology
from orchestrator.config.model import Topology
from orchestrator.coordination.client import connect
from orchestrator.coordination.paths import ZkPaths
from orchestrator.coordination.store import ZkStore
from orchestrator.coordination.ticket import refuse_start
from orchestrator.deadman.agent import override_in
from orchestrator.errors import SitectlError
from orchestrator.exitcodes import ExitCode


def decide(topo: Topology, site: str, agent_state: Path | None) -> tuple[bool, str]:
    """(may start, the one sentence saying why) from the ticket in ZooKeeper; with
    ZooKeeper unreachable, only an operator's override in the agent's state file lets
    the site start."""
    try:
        client = connect(topo)
        try:
            store = ZkStore(client, ZkPaths.for_cluster(topo.zookeeper.chroot, topo.cluster))
            ticket, active = store.ticket(), store.active_site() or topo.active_site
        finally:
            client.stop()
            client.close()
    except SitectlError as exc:
        reason = override_in(agent_state, site) if agent_state else None
        if reason is not None:
            return True, (
                f"{site} may start: by the operator's override ({reason}); the ticket "
                f"cannot be read ({exc})"
            )
        return False, f"{site} may not start: the ticket cannot be read ({exc})"
    refused = refuse_start(ticket, site, active, time.time())
    if refused is not None:
        return False, f"{site} may not start: {refused}"
    return True, f"{site} may start: it holds the site ticket"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestrator.startgate")
    parser.add_argument("site")
    parser.add_argument("-c", "--config", type=Path, default=os.environ.get("SITECTL_CONFIG"))
    parser.add_argument("--agent-state", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.config is None:
        print("startgate: name the topology with -c FILE or SITECTL_CONFIG", file=sys.stderr)
        return int(ExitCode.BAD_INPUT)
    try:
        topo = load_topology(args.config)
    except (OSError, SitectlError, ValueError) as exc:
        print(f"startgate: {args.config}: {exc}", file=sys.stderr)
        return int(ExitCode.BAD_INPUT)
    may, sentence = decide(topo, args.site, args.agent_state)
    print(sentence, file=sys.stdout if may else sys.stderr)
    return int(ExitCode.OK if may else ExitCode.GATE_REFUSED)


if __name__ == "__main__":
    sys.exit(main())
