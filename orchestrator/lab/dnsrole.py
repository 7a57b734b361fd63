"""Promote a lab site's BIND server to primary of a zone, or demote it to a secondary.

What the project's `orchestrator/playbooks/dns-role.yml` runs on the lab when a failover loses the
zone's primary site (the lab's stand-in for an operator's own zone-role script):

    python -m orchestrator.lab.dnsrole promote --site dc2 --zone lab.internal. [--state-dir DIR]
    python -m orchestrator.lab.dnsrole demote  --site dc1 --zone lab.internal. --primary 198.18.2.1
    python -m orchestrator.lab.dnsrole fence   --site dc1 --zone lab.internal. --primary 198.18.2.1
    python -m orchestrator.lab.dnsrole restore --site dc1 --zone lab.internal.

Both rewrite only that zone's stanza in the site's named.conf and `rndc reconfig`, and
are idempotent. Promotion keeps the data the secondary transferred (BIND stores it in
raw format) and starts taking signed updates; demotion drops the site's own copy, whose
serial may be ahead of the new primary's after a failover, so a full transfer brings it
back in line. Exit status: 0 done, 1 failed, 2 bad input.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

from orchestrator.lab import bind, layout
from orchestrator.lab import state as lab_state
from orchestrator.lab.state import default_state_dir


class RoleError(Exception):
    pass


def _stanza(zone: str, body: str) -> str:
    return f'zone "{zone}" {{\n{body}}};\n'


def primary_body(zone: bind.Zone, site: str, data_file: str, raw: bool = True) -> str:
    peers = " ".join(
        f"{layout.service_ip(s)} port {layout.DNS_PORT} key {bind.XFER_KEY};"
        for s in zone.sites()
        if s != site
    )
    return (
        "    type primary;\n"
        f'    file "{data_file}";\n'
        # A transferred copy is in raw format, as BIND writes secondaries; the site's own
        # rendered zone file is text.
        + ("    masterfile-format raw;\n" if raw else "")
        + f"    update-policy {{ grant {zone.ddns_key} zonesub ANY; }};\n"
        f"    allow-transfer {{ key {bind.XFER_KEY}; }};\n"
        "    notify explicit;\n"
        f"    also-notify {{ {peers} }};\n"
    )


def secondary_body(primary_ip: str, data_file: str) -> str:
    return (
        "    type secondary;\n"
        f'    file "{data_file}";\n'
        f"    primaries {{ {primary_ip} port {layout.DNS_PORT} key {bind.XFER_KEY}; }};\n"
        f"    allow-notify {{ key {bind.XFER_KEY}; }};\n"
        f"    allow-transfer {{ key {bind.XFER_KEY}; }};\n"
    )


def zone_block(conf: str, zone: str) -> re.Match[str]:
    found = re.search(rf'zone "{re.escape(zone)}" \{{\n(.*?)\n\}};\n', conf, re.DOTALL)
    if found is None:
        raise RoleError(f"zone {zone} is not in this named.conf")
    return found


def rewrite(conf: str, zone: str, body: str) -> str:
    block = zone_block(conf, zone)
    return conf[: block.start()] + _stanza(zone, body) + conf[block.end() :]


def current_type(conf: str, zone: str) -> str:
    found = re.search(r"type (\w+);", zone_block(conf, zone).group(1))
    return found.group(1) if found else "?"


def data_file(conf: str, zone: str) -> str:
    found = re.search(r'file "([^"]+)";', zone_block(conf, zone).group(1))
    if found is None:
        raise RoleError(f"zone {zone} has no file")
    return found.group(1)


def _reconfig(root: Path, site: str) -> None:
    key = bind.key_path(lab_state.load(root), bind.rndc_key_name(site))
    done = subprocess.run(
        [
            "rndc",
            "-s",
            layout.service_ip(site),
            "-p",
            str(layout.RNDC_PORT),
            "-k",
            str(key),
            "reconfig",
        ],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    if done.returncode != 0:
        raise RoleError(f"rndc reconfig on {site}: {(done.stderr or done.stdout).strip()}")


def _zone(name: str) -> bind.Zone:
    for zone in bind.ZONES:
        if zone.name == name:
            return zone
    raise RoleError(f"the lab has no zone {name}: {', '.join(z.name for z in bind.ZONES)}")


def promote(root: Path, site: str, zone_name: str) -> bool:
    zone = _zone(zone_name)
    conf_path = lab_state.load(root).site_dir(site, "named") / "named.conf"
    conf = conf_path.read_text()
    if current_type(conf, zone.name) == "primary":
        return False
    conf_path.write_text(
        rewrite(conf, zone.name, primary_body(zone, site, data_file(conf, zone.name)))
    )
    _reconfig(root, site)
    return True


def demote(root: Path, site: str, zone_name: str, primary_ip: str) -> bool:
    zone = _zone(zone_name)
    conf = _conf_path(root, site).read_text()
    block = zone_block(conf, zone.name).group(1)
    if current_type(conf, zone.name) == "secondary" and primary_ip in block:
        return False
    _follow(root, site, zone, primary_ip, f"{zone.label}.secondary.db")
    return True


def fence(root: Path, site: str, zone_name: str, primary_ip: str) -> bool:
    """Drop the site's copy of the zone, whatever its role: the site's server answers
    nothing for it until a transfer from `primary_ip` brings the current data. A
    secondary keeps the zone it last transferred in memory through a reconfig, so the
    copy moves to a new file name, which makes BIND load the zone afresh (empty)."""
    zone = _zone(zone_name)
    current = data_file(_conf_path(root, site).read_text(), zone.name)
    kind = "secondary" if ".fenced." in current else "fenced"
    _follow(root, site, zone, primary_ip, f"{zone.label}.{kind}.db")
    return True


def restore(root: Path, site: str, zone_name: str) -> bool:
    """Undo a fence with nobody to follow (the lone survivor's override): primary again,
    from the newest copy the site had before the fence, which the fence left in place."""
    zone = _zone(zone_name)
    conf_path = _conf_path(root, site)
    conf = conf_path.read_text()
    if current_type(conf, zone.name) == "primary":
        return False
    copies = [
        path
        for path in conf_path.parent.glob(f"{zone.label}.*db")
        if ".fenced." not in path.name and path.name.endswith(".db")
    ]
    if not copies:
        raise RoleError(f"{site} kept no copy of {zone.name} to serve from")
    newest = max(copies, key=lambda path: path.stat().st_mtime)
    own = newest.name == f"{zone.label}.db"  # rendered by the lab, text (bind._zone_file)
    body = primary_body(zone, site, newest.name, raw=not own)
    conf_path.write_text(rewrite(conf, zone.name, body))
    _reconfig(root, site)
    return True


def _conf_path(root: Path, site: str) -> Path:
    return lab_state.load(root).site_dir(site, "named") / "named.conf"


def _follow(root: Path, site: str, zone: bind.Zone, primary_ip: str, new_file: str) -> None:
    """Make the site's server a secondary of `primary_ip` for `zone`, from an empty copy
    in `new_file`."""
    conf_path = _conf_path(root, site)
    for stale in (conf_path.parent / new_file, conf_path.parent / f"{new_file}.jnl"):
        stale.unlink(missing_ok=True)
    conf = conf_path.read_text()
    conf_path.write_text(rewrite(conf, zone.name, secondary_body(primary_ip, new_file)))
    _reconfig(root, site)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestrator.lab.dnsrole")
    parser.add_argument("action", choices=["promote", "demote", "fence", "restore"])
    parser.add_argument("--site", required=True)
    parser.add_argument("--zone", required=True)
    parser.add_argument("--primary", help="demote: the address of the primary to follow")
    parser.add_argument("--state-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    root = (args.state_dir or default_state_dir()).absolute()
    try:
        layout.check_site(args.site)
        if args.action in ("demote", "fence") and not args.primary:
            raise RoleError(f"{args.action} needs --primary ADDRESS")
        if args.action == "promote":
            changed = promote(root, args.site, args.zone)
        elif args.action == "restore":
            changed = restore(root, args.site, args.zone)
        elif args.action == "demote":
            changed = demote(root, args.site, args.zone, args.primary)
        else:
            changed = fence(root, args.site, args.zone, args.primary)
    except (RoleError, ValueError, OSError) as exc:
        print(f"dnsrole: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ValueError) else 1
    print("changed" if changed else "unchanged")
    return 0


if __name__ == "__main__":
    os.umask(0o077)
    sys.exit(main())
