"""What a topology needs installed beyond sitectl itself: its optional extras.

The netapp volume driver's playbook (orchestrator/playbooks/tasks/netapp.yml) runs the
netapp.ontap collection's modules, which come with the `ansible` package (400 MB), so
they are the `netapp` extra rather than a dependency every installation pays for. A
topology with a netapp volume on a sitectl without them is refused when it is loaded,
naming the extra, instead of failing at a move's first mirror step.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path

from orchestrator.config.model import NetappVolume, Topology
from orchestrator.config.problems import FieldPath

Finding = tuple[FieldPath, str]
NETAPP_COLLECTION = "netapp.ontap"
NETAPP_EXTRA = "pip install 'sitectl[netapp]'"
# Where ansible-core looks for collections when ansible.cfg and the environment say
# nothing, besides the `ansible_collections` of its own Python's sys.path.
_DEFAULT_COLLECTION_PATHS = ("~/.ansible/collections", "/usr/share/ansible/collections")
_COLLECTION_PATH_VARS = ("ANSIBLE_COLLECTIONS_PATH", "ANSIBLE_COLLECTIONS_PATHS")


def check_extras(topo: Topology) -> list[Finding]:
    """One finding per missing extra, at the first volume that needs it."""
    netapp = next(
        (i for i, volume in enumerate(topo.volumes) if isinstance(volume, NetappVolume)), None
    )
    if netapp is None or collection_installed(NETAPP_COLLECTION):
        return []
    return [
        (
            ("volumes", netapp, "driver"),
            f"the netapp driver needs the {NETAPP_COLLECTION} collection, which this "
            f"sitectl cannot find — {NETAPP_EXTRA}",
        )
    ]


def collection_installed(name: str) -> bool:
    """Whether ansible-playbook, run by this Python as sitectl runs it, finds collection
    `name` ("namespace.collection"): in an `ansible_collections` package on sys.path
    (the `ansible` package's), or under a collections path (ansible-galaxy's)."""
    namespace, collection = name.split(".")
    if importlib.util.find_spec("ansible_collections") is not None:
        try:
            if importlib.util.find_spec(f"ansible_collections.{name}") is not None:
                return True
        except ModuleNotFoundError:  # the namespace package is not there
            pass
    for root in map(Path, _collection_paths()):
        # A path names the directory holding `ansible_collections`, or that one itself.
        base = root.expanduser()
        if base.name != "ansible_collections":
            base = base / "ansible_collections"
        if (base / namespace / collection).is_dir():
            return True
    return False


def _collection_paths() -> Iterator[str]:
    for var in _COLLECTION_PATH_VARS:
        value = os.environ.get(var)
        if value:
            yield from (p for p in value.split(os.pathsep) if p)
            return
    yield from _DEFAULT_COLLECTION_PATHS
