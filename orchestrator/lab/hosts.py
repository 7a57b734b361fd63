"""The lab's Ansible inventory, written by `lab up` into the state dir (`hosts.yml`).

Self-contained: every path (the state dir, the key, known_hosts, the Python with
sitectl) and address is written into the file, so the lab's topology works with nothing
but `-c <state>/topology.yaml` — no environment variable, no working directory.

Every host is reached over SSH at its site's address, with host-key checking on and the
lab's own `known_hosts`; one multiplexed connection per address (ControlPersist) under a
control directory of this lab's own, so two labs on one machine (in separate caller
namespaces, on the same addresses) never share a connection.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from orchestrator.lab import deadman, layout, netns, shape, sshd
from orchestrator.lab.state import LabState, topology_path

# Role of each application host → (lab component, port) — `lab_app --role` takes the role.
APP_HOSTS = {"mta": ("postfix", layout.SMTP_PORT), "mailbox": ("dovecot", layout.IMAP_PORT)}


def path(root: Path) -> Path:
    return root / "hosts.yml"


def control_dir(root: Path) -> Path:
    # Short and outside the state dir: a UNIX socket path has ~100 bytes at most.
    return Path("/tmp") / f"sitectl-ssh-{netns.prefix(root)}"


def ssh_vars(state: LabState) -> dict[str, Any]:
    """How Ansible reaches a lab host: over SSH, the key checked, the lab's key used."""
    options = [
        *sshd.client_options(state),
        "-o",
        f"ControlPath={control_dir(state.root)}/%C",
    ]
    return {
        "ansible_connection": "ssh",
        "ansible_user": "root",
        "ansible_ssh_common_args": shlex.join(options),
        "ansible_pipelining": True,
        # The same machine: the Python that has sitectl is at the same path there.
        "ansible_python_interpreter": sys.executable,
    }


# The code this lab runs, which its hosts' commands must run too: an SSH session starts
# without the caller's environment, so a checkout's lab (a git worktree beside another
# installed sitectl) would otherwise run the interpreter's installed copy on its hosts.
CODE = Path(__file__).resolve().parents[2]


def _site_vars(state: LabState, site: str) -> dict[str, Any]:
    root = state.root
    python = f"env PYTHONPATH={shlex.quote(str(CODE))} {sys.executable}"
    return {
        "lab_site": site,
        "lab_dir": str(root),
        # The hosts' epoch ledgers (orchestrator/playbooks/library/sitectl_epoch.py).
        "sitectl_epoch_dir": str(root / site / "epochs"),
        "lab_site_dir": str(root / site),
        "lab_volume": str(root / site / "volume"),
        # start|stop|status of the site's application, e.g. "{{ lab_app }} stop".
        "lab_app": f"{python} -m orchestrator.lab.app --site {site} --state-dir {root}",
        # The application's start gate: `sitectl ticket check SITE`'s decision, without the
        # CLI's start-up (orchestrator/startgate.py).
        "lab_start_gate": f"{python} -m orchestrator.startgate {site} -c "
        f"{topology_path(root)} --agent-state {deadman.memory_file(root, site)}",
        # promote|demote the site's named for a zone, e.g. "{{ lab_dnsrole }} promote …".
        "lab_dnsrole": f"{python} -m orchestrator.lab.dnsrole --site {site} --state-dir {root}",
    }


def _mailbox_servers(state: LabState, site: str) -> dict[str, dict[str, Any]]:
    """A wide lab's mailbox servers, each at its own address (reached over its site's
    sshd, as every lab host is) and starting and stopping its own Dovecot only."""
    python = f"env PYTHONPATH={shlex.quote(str(CODE))} {sys.executable}"
    hosts = {}
    for server in shape.servers(shape.recorded(state.resources)):
        ip = layout.site_ip(site, server.octet)
        hosts[f"{site}-{server.name}"] = {
            "ansible_host": ip,
            "lab_component": "dovecot",
            "lab_address": f"{ip}:{layout.IMAP_PORT}",
            "lab_server": server.name,
            "lab_app": f"{python} -m orchestrator.lab.app --site {site} --server "
            f"{server.name} --state-dir {state.root}",
        }
    return hosts


def _hosts_of(state: LabState, site: str) -> dict[str, dict[str, Any]]:
    ip = layout.service_ip(site)
    hosts: dict[str, dict[str, Any]] = {}
    wide = shape.recorded(state.resources) == shape.WIDE
    if site in layout.DATACENTERS:
        for role, (component, port) in APP_HOSTS.items():
            if role == "mailbox" and wide:
                hosts |= _mailbox_servers(state, site)
                continue
            hosts[f"{site}-{role}"] = {"lab_component": component, "lab_address": f"{ip}:{port}"}
        for node in (n for n in layout.ldap_nodes() if n.site == site):
            hosts[node.name] = {
                "ansible_host": node.ip,
                "lab_component": "slapd",
                "lab_address": f"{node.ip}:{layout.LDAP_PORT}",
            }
    hosts[f"{site}-dns"] = {
        "lab_component": "named",
        "lab_address": f"{ip}:{layout.DNS_PORT}",
        "lab_rndc_key": f"rndc-{site}",
    }
    hosts[f"{site}-zookeeper"] = {
        "lab_component": "zookeeper",
        "lab_address": f"{ip}:{layout.ZK_CLIENT_PORT}",
    }
    if site in layout.DATACENTERS:
        s3_ip = layout.site_ip(site, layout.S3_HOST)
        hosts[f"{site}-s3"] = {
            "ansible_host": s3_ip,
            "lab_component": "s3store",
            "lab_address": f"{s3_ip}:{layout.S3_PORT}",
        }
        hosts[f"{site}-storage"] = {"lab_component": "volume"}
    for body in hosts.values():
        body.setdefault("ansible_host", ip)
    return hosts


# Host name within its site → the role group it belongs to (ZooKeeper and S3 hosts are
# for playbooks that touch those servers directly, in no role group).
_GROUPS = {
    "mta": "mta",
    "mailbox": "mailbox",
    **{server.name: "mailbox" for server in shape.WIDE_SERVERS},
    "ldap1": "ldap",
    "ldap2": "ldap",
    "dns": "dns",
    "storage": "storage",
}


def build(state: LabState) -> dict[str, Any]:
    children: dict[str, Any] = {}
    for site in layout.SITES:
        children[site] = {"vars": _site_vars(state, site), "hosts": _hosts_of(state, site)}
    # sitectl targets the <site>_<role> groups (dc1_mta, dc2_mailbox, …).
    for site in layout.SITES:
        for host in children[site]["hosts"]:
            group = _GROUPS.get(host.removeprefix(f"{site}-"))
            if group:
                children.setdefault(f"{site}_{group}", {"hosts": {}})["hosts"][host] = None
    return {"all": {"vars": ssh_vars(state), "children": children}}


HEADER = (
    "# Ansible inventory of the sitectl lab, written by `sitectl lab up` (do not edit: the\n"
    "# next `up` rewrites it). Every host is reached over SSH in its site's namespace,\n"
    "# host keys checked against the lab's known_hosts.\n"
)


def write(state: LabState) -> Path:
    control_dir(state.root).mkdir(mode=0o700, exist_ok=True)
    target = path(state.root)
    text = HEADER + yaml.safe_dump(build(state), sort_keys=False)
    if not target.exists() or target.read_text() != text:
        target.write_text(text)
    return target


def close_connections(root: Path) -> None:
    """End this lab's multiplexed SSH connections (`ssh -O exit`).

    The master of each lives on after Ansible's run (ControlPersist); it is a process this
    lab made, so `down` ends it rather than leave it to its idle timeout.
    """
    directory = control_dir(root)
    if not directory.is_dir():
        return
    for socket_path in directory.iterdir():
        subprocess.run(
            ["ssh", "-O", "exit", "-o", f"ControlPath={socket_path}", "lab"],
            capture_output=True,
            timeout=10,
        )


def remove_connections(root: Path) -> None:
    """End the connections and remove their directory (`lab down`)."""
    close_connections(root)
    shutil.rmtree(control_dir(root), ignore_errors=True)
