"""OpenSSH in each site: how Ansible reaches the lab's hosts, as it reaches real ones.

`lab up` makes one client key pair and one host key per site (all 0600 under
`<state>/secrets/ssh/`), an `authorized_keys` holding the client key, and a `known_hosts`
naming every address of each site with that site's host key. The lab's inventory points
Ansible at these with `StrictHostKeyChecking=yes`: a host whose key changed is refused,
never learnt. Host keys are kept across restarts, as a real host's are.

Each sshd listens on its site's addresses only, inside the site's namespace; a session
runs in that namespace (so a step on a cut-off site cannot run) and in the mount
namespace `lab up` ran in (so the volumes it mounts are the ones everyone sees).
"""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

from orchestrator.lab import layout, shape
from orchestrator.lab.state import Component, LabState

KEY_TYPE = "ed25519"


def ssh_dir(state: LabState) -> Path:
    return state.secrets / "ssh"


def client_key(state: LabState) -> Path:
    return ssh_dir(state) / f"id_{KEY_TYPE}"


def host_key(state: LabState, site: str) -> Path:
    return ssh_dir(state) / f"{site}_host_{KEY_TYPE}"


def known_hosts(state: LabState) -> Path:
    return ssh_dir(state) / "known_hosts"


def authorized_keys(state: LabState) -> Path:
    return ssh_dir(state) / "authorized_keys"


def _keygen(path: Path, comment: str, ssh_keygen: str) -> None:
    if not path.exists():
        subprocess.run(
            [ssh_keygen, "-q", "-t", KEY_TYPE, "-N", "", "-C", comment, "-f", str(path)],
            check=True,
            capture_output=True,
        )


def ensure_keys(state: LabState, ssh_keygen: str) -> None:
    ssh_dir(state).mkdir(mode=0o700, parents=True, exist_ok=True)
    _keygen(client_key(state), "sitectl-lab", ssh_keygen)
    lines = []
    for site in layout.SITES:
        _keygen(host_key(state, site), f"sitectl-lab-{site}", ssh_keygen)
        public = host_key(state, site).with_suffix(".pub").read_text().split()
        addresses = layout.site_addresses(site, shape.extra_octets(state.resources))
        lines.append(f"{','.join(addresses)} {public[0]} {public[1]}\n")
    known_hosts(state).write_text("".join(lines))
    authorized_keys(state).write_text(client_key(state).with_suffix(".pub").read_text())
    # Every file under secrets/ is 0600, public halves and known_hosts too: one rule an
    # operator can check, and nothing here is for anyone but root.
    for path in ssh_dir(state).iterdir():
        path.chmod(0o600)


def _config(state: LabState, site: str, home: Path) -> Path:
    # One sshd per site answers for every host there, as it does today: a wide lab's
    # mailbox servers are reached at addresses of their own.
    addresses = layout.site_addresses(site, shape.extra_octets(state.resources))
    listen = "".join(f"ListenAddress {address}:{layout.SSH_PORT}\n" for address in addresses)
    path = home / "sshd_config"
    path.write_text(
        f"# sshd for the sitectl lab's {site}; written by `sitectl lab up`.\n"
        f"{listen}"
        f"HostKey {host_key(state, site)}\n"
        f"PidFile {home / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {authorized_keys(state)}\n"
        "PermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "UsePAM no\n"
        # The lab's keys live under the state dir, which need not be root-only all the way
        # up (pytest's temporary dirs are not): the files themselves are 0600.
        "StrictModes no\n"
        # Ansible multiplexes its tasks over one connection per host (ControlPersist).
        "MaxSessions 50\n"
        "MaxStartups 50:30:100\n"
        "LogLevel VERBOSE\n"
    )
    return path


def prepare(state: LabState, programs: dict[str, str]) -> list[Component]:
    ensure_keys(state, programs["ssh-keygen"])
    # Privilege separation needs it; Debian's package makes it only when its service starts.
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    comps = []
    for site in layout.SITES:
        home = state.site_dir(site, "sshd")
        home.mkdir(parents=True, exist_ok=True)
        config = _config(state, site, home)
        comps.append(
            Component(
                name=f"{site}-sshd",
                site=site,
                kind="sshd",
                address=f"{layout.service_ip(site)}:{layout.SSH_PORT}",
                # -D: stay in the foreground (our PID is sshd's); -e: log to our log.
                argv=[programs["sshd"], "-D", "-e", "-f", str(config)],
                cwd=str(home),
                log=str(home / "sshd.log"),
            )
        )
    return comps


def ready(comp: Component) -> bool:
    """The server sends its SSH banner."""
    ip, port = comp.address.rsplit(":", 1)
    with socket.create_connection((ip, int(port)), timeout=1) as sock:
        sock.settimeout(1)
        return sock.recv(64).startswith(b"SSH-")


def client_options(state: LabState) -> list[str]:
    """What every lab SSH client passes: the lab's key, its known hosts, strict checking."""
    return [
        "-o",
        f"IdentityFile={client_key(state)}",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        f"UserKnownHostsFile={known_hosts(state)}",
        "-o",
        "GlobalKnownHostsFile=/dev/null",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        "ConnectTimeout=5",
    ]
