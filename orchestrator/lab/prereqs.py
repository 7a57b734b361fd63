"""What the lab needs from the machine, and the exact apt-get line when it is missing.

`lab up` installs nothing itself; it looks every program up on PATH (so a missing one
can be simulated in tests) and resolves it to an absolute path once, so a restart by
`heal-site` runs the very same binary.
"""

from __future__ import annotations

import shutil
from pathlib import Path

# program (or file) → Debian package providing it
PROGRAMS: dict[str, str] = {
    "java": "zookeeper",  # zookeeper depends on a JRE
    "named": "bind9",
    "rndc": "bind9",
    "tsig-keygen": "bind9",
    "named-checkconf": "bind9-utils",
    "slapd": "slapd",
    "slapadd": "slapd",
    "postfix": "postfix",
    "postconf": "postfix",
    "dovecot": "dovecot-core",
    "openssl": "openssl",
    "ip": "iproute2",
    "nsenter": "util-linux",
    "nft": "nftables",
    "sshd": "openssh-server",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
    "losetup": "mount",
    "mkfs.btrfs": "btrfs-progs",
    "btrfs": "btrfs-progs",
}
FILES: dict[str, str] = {
    "/usr/share/java/zookeeper.jar": "zookeeper",
    "/usr/share/java/slf4j-simple.jar": "libslf4j-java",
    "/usr/lib/ldap/back_mdb.so": "slapd",
    "/usr/lib/ldap/syncprov.so": "slapd",
    "/usr/lib/dovecot/imap": "dovecot-imapd",
}


class MissingPrerequisites(Exception):
    pass


def resolve() -> dict[str, str]:
    """Absolute path of every program; raise MissingPrerequisites with the fix if any lack."""
    found: dict[str, str] = {}
    missing: dict[str, str] = {}
    for program, package in PROGRAMS.items():
        path = shutil.which(program)
        if path:
            found[program] = path
        else:
            missing[program] = package
    for path, package in FILES.items():
        if not Path(path).exists():
            missing[path] = package
    if missing:
        packages = " ".join(sorted(set(missing.values())))
        raise MissingPrerequisites(
            f"missing {', '.join(missing)}: run `apt-get install -y {packages}`"
        )
    return found
