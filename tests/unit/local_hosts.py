"""An Ansible inventory of hosts that are this machine (`ansible_connection: local`), for
the tests that run the real ansible-playbook without the lab."""

from __future__ import annotations

import sys
from pathlib import Path


def local_inventory(directory: Path, hosts: tuple[str, ...] = ("h1",)) -> Path:
    """`directory`/hosts.yml naming `hosts`, each run here with this interpreter."""
    inventory = directory / "hosts.yml"
    inventory.write_text(
        "all:\n  hosts:\n"
        + "".join(
            f"    {h}: {{ansible_connection: local, ansible_python_interpreter: {sys.executable}}}\n"
            for h in hosts
        )
    )
    return inventory
