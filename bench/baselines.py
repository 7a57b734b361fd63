"""The hand-written baseline of benchmark P2 for each lab shape (orchestrator/lab/shape.py).

What an operator would run instead of `sitectl switchover`: ONE `ansible-playbook` run of
the shape's playbook, then bench/baseline/dns.sh (nsupdate + TSIG) for both zones. For a
benchmark to pick the right one::

    from baselines import baseline_for, lab_shape
    baseline = baseline_for(lab_shape(state_dir))
    argv = [ansible_playbook, "-i", str(state_dir / "hosts.yml"), str(baseline.playbook),
            *baseline.extra_vars(topo, frm, to)]

The single shape's playbook needs the mirror's config file; the wide shape's finds each
mailbox server's two volumes' configs from its inventory (lab_dir, lab_server).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from orchestrator.config.model import BtrfsVolume, Topology
from orchestrator.lab import shape
from orchestrator.lab import state as lab_state

BASELINE_DIR = Path(__file__).resolve().parent / "baseline"
DNS_SCRIPT = BASELINE_DIR / "dns.sh"


@dataclass(frozen=True)
class Baseline:
    shape: str
    playbook: Path
    needs_mirror_config: bool  # the single shape's playbook takes -e mirror_config=FILE

    def extra_vars(self, topo: Topology, frm: str, to: str) -> list[str]:
        """The playbook's `-e` arguments for a move from `frm` to `to`."""
        args = ["-e", f"from_site={frm}", "-e", f"to_site={to}"]
        if self.needs_mirror_config:
            args += ["-e", f"mirror_config={mirror_config(topo)}"]
        return args


BASELINES: dict[str, Baseline] = {
    shape.SINGLE: Baseline(shape.SINGLE, BASELINE_DIR / "switchover.yml", True),
    shape.WIDE: Baseline(shape.WIDE, BASELINE_DIR / "switchover-wide.yml", False),
}


def baseline_for(lab_shape_name: str) -> Baseline:
    return BASELINES[shape.check(lab_shape_name)]


def lab_shape(state_dir: Path) -> str:
    """The shape the lab in `state_dir` was made with (`lab up --shape`)."""
    return shape.recorded(lab_state.load(state_dir).resources)


def mirror_config(topo: Topology) -> Path:
    """The first btrfs volume's mirror config (the single shape's only one)."""
    vol = next(v for v in topo.volumes if isinstance(v, BtrfsVolume))
    assert vol.mirror_config is not None
    return topo.resolve(vol.mirror_config)
