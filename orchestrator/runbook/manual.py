"""What a person types to carry out each plan step by hand. Pure: no I/O.

Commands use only standard tools (ansible, nsupdate, dig, ldapsearch, aws, nc, curl,
openssl, the storage vendor's CLI), so the runbook still works when sitectl itself
cannot run. Mail probes with `tls` go through `openssl s_client` (curl for the canary),
the certificate verified as sitectl verifies it, so a person checks what sitectl checks.
Paths are as written in the topology file: the runbook says to run from its directory.

No command holds a secret on its command line, where `ps` shows it to every user of the
machine: nsupdate reads a key file (-k), ldapsearch a password file (-y), curl a netrc
file. Those the topology does not hold as such files are made once, before the first
step, by the commands of `secret_files` (printf, the shell's builtin, writes each into a
private directory: no process's arguments and no history line hold the value).
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass

from orchestrator.config.model import (
    BtrfsVolume,
    CommandVolume,
    DnsZone,
    Host,
    NetappVolume,
    Probe,
    SecretRef,
    Topology,
    fill,
    parse_server,
)
from orchestrator.coordination.paths import ZkPaths
from orchestrator.coordination.ticket import Ticket, clock_text
from orchestrator.inventory import group_name
from orchestrator.plan.model import Action, Plan, Step
from orchestrator.runbook import custom, salvage
from orchestrator.runbook.aws import SECRETS_VAR, make_credentials, s3api
from orchestrator.runbook.aws import made as _made


@dataclass(frozen=True)
class ManualStep:
    commands: tuple[str, ...]
    expect: str  # what the commands print when all is well
    done_when: str  # how to tell the step worked


MAKE_SECRETS_DIR = f'export {SECRETS_VAR}="$(mktemp -d)"'
REMOVE_SECRETS_DIR = f'rm -r "${SECRETS_VAR}"'


CAT_NOTE = "# $(cat FILE) drops the file's trailing newlines, as sitectl does"


def _secret_text(ref: SecretRef) -> str:
    """The secret as one double-quoted shell word, for printf (a builtin: the value is in
    no process's arguments). A file's trailing newlines go, as sitectl drops them."""
    return f'"$(cat {shlex.quote(ref.file)})"' if ref.file else f'"${ref.env}"'


def _private(command: str, name: str) -> str:
    return f"(umask 077 && {command} > {_made(name)})"


def _tsig_key_name(zone: DnsZone) -> str:
    """The file made for the zone's key (named after it, in the characters `validate`
    allows a key's name anyway: the name sits in a double-quoted word)."""
    assert zone.tsig is not None
    return re.sub(r"[^A-Za-z0-9_.-]", "_", zone.tsig.name or "tsig") + ".key"


def _tsig_key(zone: DnsZone) -> str:
    """The key file nsupdate -k reads for the zone: the topology's, or the one made."""
    assert zone.tsig is not None
    if zone.tsig.key_file:
        return shlex.quote(zone.tsig.key_file)
    return _made(_tsig_key_name(zone))


def _make_tsig_key(zone: DnsZone) -> str | None:
    tsig = zone.tsig
    if tsig is None or tsig.key_file or tsig.secret is None:
        return None
    # The statement tsig-keygen writes, which nsupdate -k reads.
    line = 'printf \'key "%s" { algorithm %s; secret "%s"; };\\n\' '
    args = f"{shlex.quote(tsig.name or '')} {tsig.algorithm} {_secret_text(tsig.secret)}"
    return _private(line + args, _tsig_key_name(zone))


def _ldap_passwords(topo: Topology) -> list[SecretRef]:
    """The LDAP bind passwords, each once, the section's first."""
    assert topo.ldap is not None
    found: list[SecretRef] = []
    for ref in (topo.ldap.password, *(m.password for m in topo.ldap.masters)):
        if ref is not None and ref not in found:
            found.append(ref)
    return found


def _ldap_password_file(topo: Topology, ref: SecretRef) -> str:
    index = _ldap_passwords(topo).index(ref)
    return "ldap.pw" if index == 0 else f"ldap-{index + 1}.pw"


PROBE_NETRC = "probe.netrc"
ZK_IDENTITY = "zookeeper.digest"


def secret_files(topo: Topology, plan: Plan) -> tuple[str, ...]:
    """The commands that make the secret files the plan's steps read, the directory's
    first; none when no step reads a secret the topology holds in another form."""
    actions = {step.action for step in plan.steps()}
    made: list[str] = []
    if actions & {Action.CHECK_LDAP, Action.SALVAGE_LDAP} and topo.ldap is not None:
        for ref in _ldap_passwords(topo):
            # ldapsearch -y reads the whole file: no newline after the password.
            made.append(
                _private(f"printf '%s' {_secret_text(ref)}", _ldap_password_file(topo, ref))
            )
    updated = {
        step.target
        for step in plan.steps()
        if step.action in (Action.DNS_UPDATE, Action.DNS_DEMOTE)
    }
    for zone in topo.dns.zones:
        command = _make_tsig_key(zone) if zone.name in updated else None
        if command and command not in made:
            made.append(command)
    user = topo.application.probe_user
    reads_canary = Action.VERIFY_CANARY in actions or (
        plan.mode == "failover"
        and Action.VERIFY_APPLICATION in actions
        and _canary_scripted(topo, plan.to_site)
    )
    if reads_canary and user is not None and _first_probe(topo, plan.to_site, "imap") is not None:
        # curl takes the login and password of the `default` entry for any host.
        made.append("# a .netrc cannot hold a password with a space or a tab")
        made.append(
            _private(
                "printf 'default login %s password %s\\n' "
                f"{shlex.quote(user.user)} {_secret_text(user.password)}",
                PROBE_NETRC,
            )
        )
    zk_steps = {Action.TICKET_RELEASE, Action.FENCE_WAIT, Action.TICKET_GRANT, Action.ACTIVATE}
    if topo.zookeeper.auth is not None and actions & zk_steps:
        # ZooKeeper's client reads it into its `addauth` line, inside a here-document.
        made.append(
            _private(f"printf '%s' {_secret_text(topo.zookeeper.auth.credentials)}", ZK_IDENTITY)
        )
    s3_steps = {Action.CHECK_OBJECT_STORE, Action.OBJECT_STORE_REVERSE, Action.SALVAGE_OBJECTS}
    if topo.object_store is not None and actions & s3_steps:
        made.append(make_credentials(topo.object_store))
    if any("$(cat " in command for command in made):
        made.insert(0, CAT_NOTE)
    return (MAKE_SECRETS_DIR, *made) if made else ()


def manual_step(topo: Topology, plan: Plan, step: Step, ticket: Ticket | None = None) -> ManualStep:
    """`ticket`: the site ticket as read when the runbook was made, if it could be."""
    if step.action is Action.FENCE_WAIT:
        return _fence_wait(topo, step, ticket)
    rendered = _RENDERERS[step.action](topo, plan, step)
    if step.if_unreachable == "skip" and step.hosts and rendered.commands:
        return _unless_unreachable(topo, step, rendered)
    return rendered


def _unless_unreachable(topo: Topology, step: Step, rendered: ManualStep) -> ManualStep:
    """An old-site step of a failover, run only if its hosts answer Ansible within the
    policy's bound: a lost site's step says "skipped" and the operator goes on, as the
    engine records it skipped. Its commands stay as they are (a stop that fails on a site
    that answers still fails)."""
    timeout = int(topo.policy.unreachable_timeout)
    ping = _ansible(topo, ":".join(step.hosts), "ansible.builtin.ping", "").removesuffix(" -a ''")
    return ManualStep(
        (
            f"# Skip if {step.site} is unreachable: the commands run only if its hosts "
            f"answer within {timeout} s",
            f"if {ping} -T {timeout} -o >/dev/null 2>&1; then",
            *rendered.commands,
            "else",
            f'echo "skipped: {step.site} unreachable"',
            "fi",
        ),
        f'{rendered.expect}; or "skipped: {step.site} unreachable"',
        f"{rendered.done_when}; or {step.site} did not answer and the step is skipped",
    )


def _old_site_may_fail(plan: Plan, site: str | None, command: str) -> str:
    """A check aimed at the old site in a failover: that site may be gone, which the
    check then says rather than stopping the operator."""
    if plan.mode != "failover" or site != plan.from_site:
        return command
    return f'{command} || echo "skipped: {site} does not answer (a failover goes on without it)"'


def _ansible(topo: Topology, group: str, module: str, args: str) -> str:
    return (
        f"ansible -i {shlex.quote(topo.ansible.inventory)} {group} "
        f"-m {module} -a {shlex.quote(args)}"
    )


_PROBE_TALK = {
    "smtp": "printf 'EHLO runbook\\r\\nQUIT\\r\\n'",
    "imap": "printf 'a1 CAPABILITY\\r\\na2 LOGOUT\\r\\n'",
}


def _server_name(host: Host, probe: Probe) -> str:
    """The name the certificate must hold, as the probe verifies it."""
    return fill(probe.server_name, host=host.name) if probe.server_name else host.address


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _hostport(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _s_client(host: Host, probe: Probe) -> str:
    """`openssl s_client` that verifies the certificate as the probe does and stops at
    one it does not trust."""
    name = _server_name(host, probe)
    check = (
        f"-verify_ip {name}"
        if _is_ip(name)
        else f"-servername {shlex.quote(name)} -verify_hostname {shlex.quote(name)}"
    )
    starttls = f"-starttls {probe.kind} " if probe.tls == "starttls" else ""
    ca = f" -CAfile {shlex.quote(probe.ca_file)}" if probe.ca_file else ""
    return (
        f"timeout 5 openssl s_client -quiet -verify_return_error {starttls}"
        f"-connect {_hostport(host.address, probe.port)}{ca} {check}"
    )


def _probe_command(host: Host, probe: Probe) -> str:
    address = host.address
    if probe.kind in _PROBE_TALK and probe.tls:
        return f"{_PROBE_TALK[probe.kind]} | {_s_client(host, probe)}"
    if probe.kind in _PROBE_TALK:
        return f"{_PROBE_TALK[probe.kind]} | nc -w 5 {address} {probe.port}"
    if probe.kind == "http":
        return f"curl -fsS -o /dev/null -w '%{{http_code}}\\n' http://{address}:{probe.port}/"
    return f"nc -z -w 3 {address} {probe.port} && echo open"


_PROBE_EXPECT = {
    "smtp": "a 220 banner, then 250 lines answering EHLO",
    "imap": "'* OK' greeting, a CAPABILITY line and 'a1 OK'",
    "http": "200",
    "tcp": "open",
    # Past STARTTLS openssl has already read the greeting: what follows is ours.
    "smtp+starttls": "250 lines answering EHLO, no 'verify error'",
    "imap+starttls": "a CAPABILITY line and 'a1 OK', no 'verify error'",
    "smtp+smtps": "a 220 banner, then 250 lines answering EHLO, no 'verify error'",
    "imap+imaps": "'* OK' greeting, a CAPABILITY line and 'a1 OK', no 'verify error'",
}


def _probe_label(probe: Probe) -> str:
    return f"{probe.kind}+{probe.tls}" if probe.tls else probe.kind


def _probes(topo: Topology, site: str) -> tuple[list[str], set[str]]:
    commands: list[str] = []
    kinds: set[str] = set()
    for name, role in topo.roles.items():
        for host in topo.hosts_of(site, name):
            for probe in role.probes:
                commands.append(_probe_command(host, probe))
                kinds.add(_probe_label(probe))
    return commands, kinds


def _expect_probes(kinds: set[str]) -> str:
    return "; ".join(f"{k}: {_PROBE_EXPECT[k]}" for k in sorted(kinds))


def _check_zookeeper(topo: Topology, plan: Plan, step: Step) -> ManualStep:
    commands = []
    tls = topo.zookeeper.tls
    for host in topo.zookeeper.hosts:
        address, _, port = host.address.rpartition(":")
        if tls is None:
            command = f"echo srvr | nc -w 3 {address} {port} | grep Mode"
        else:
            verify = "-verify_ip" if _is_ip(address) else "-verify_hostname"
            command = (
                f"echo srvr | openssl s_client -quiet -connect {address}:{port} -CAfile "
                f"{shlex.quote(tls.ca_file)} {verify} {address} -verify_return_error "
                "2>/dev/null | grep Mode"
            )
        commands.append(_old_site_may_fail(plan, host.site, command))
    return ManualStep(
        tuple(commands),
        "exactly one 'Mode: leader', the others 'Mode: follower'",
        "a majority of the nodes answer and one of them leads",
    )


def _is_ip(address: str) -> bool:
    try:
        ipaddress.ip_address(address.strip("[]"))
    except ValueError:
        return False
    return True


def _ldapsearch(topo: Topology, index: int, what: str = "-s base contextCSN") -> str:
    ldap = topo.ldap
    assert ldap is not None  # the step exists only when the topology has LDAP
    master = ldap.masters[index]
    starttls = master.starttls if master.starttls is not None else ldap.starttls
    ca_file = master.ca_file or ldap.ca_file
    bind_dn = master.bind_dn or ldap.bind_dn
    password = master.password or ldap.password
    prefix = f"LDAPTLS_CACERT={shlex.quote(ca_file)} " if ca_file else ""
    return (
        f"{prefix}ldapsearch -LLL -o nettimeout={int(ldap.timeout)} -H {shlex.quote(master.uri)}"
        f"{' -ZZ' if starttls else ''} -x -D {shlex.quote(bind_dn)} "
        f"-y {_made(_ldap_password_file(topo, password))} -b {shlex.quote(ldap.suffix)} "
        f"{what}"
    )


def _salvage_ldap(topo: Topology, plan: Plan, step: Step) -> ManualStep:
    """The old site's masters' changes since the takeover, for a person to review. When
    that was only the operator knows (the incident log, `sitectl status`): TAKEOVER."""
    assert topo.ldap is not None
    active = step.params["active"]
    since = '"(entryCSN>=${TAKEOVER}.000000Z#000000#000#000000)" entryCSN'
    return ManualStep(
        (
            f"# TAKEOVER: when {active} took over (UTC, YYYYmmddHHMMSS), e.g. "
            "export TAKEOVER=20261122134500",
            'test -n "$TAKEOVER" || { echo "set TAKEOVER first"; false; }',
            *(
                _ldapsearch(topo, i, since)
                for i, master in enumerate(topo.ldap.masters)
                if master.site == step.site
            ),
        ),
        "the entries changed since the takeover, each with its entryCSN "
        f"(written by {step.site} when its third field is one of its servers' ids)",
        f"a person has compared each with {active}'s masters and kept or redone the change there",
    )


def _check_ldap(topo: Topology, plan: Plan, step: Step) -> ManualStep:
    assert topo.ldap is not None
    limit = int(topo.policy.rpo_limits.ldap)
    return ManualStep(
        tuple(
            _old_site_may_fail(plan, master.site, _ldapsearch(topo, i))
            for i, master in enumerate(topo.ldap.masters)
        ),
        "each master prints contextCSN lines like 20261122134501.123456Z#000000#001#000000; "
        "the third field is the server id that wrote",
        f"for every server id, all masters show the same CSN, or timestamps at most {limit} s "
        f"apart on {plan.to_site}'s masters",
    )


def _check_object_store(topo: Topology, plan: Plan, step: Step) -> ManualStep:
    store = topo.object_store
    assert store is not None
    commands = []
    for endpoint in store.endpoints:
        for bucket in store.buckets:
            asks = [f"get-bucket-versioning --bucket {bucket.name}"]
            if bucket.replicated and endpoint.site == plan.from_site:
                asks.append(f"get-bucket-replication --bucket {bucket.name}")
            commands += [_old_site_may_fail(plan, endpoint.site, s3api(endpoint, a)) for a in asks]
    return ManualStep(
        tuple(commands),
        '"Status": "Enabled" for versioning; a replication rule with "Status": "Enabled" '
        f"towards {plan.to_site}",
        "every endpoint answers with its own keys and replicated buckets carry their rule",
    )


def _netapp(vol: NetappVolume, site: str, command: str) -> str:
    settings = vol.sites[site]
    return f"ssh admin@{settings.cluster} {command}"


def _netapp_path(vol: NetappVolume, site: str) -> str:
    settings = vol.sites[site]
    return f"{settings.svm}:{settings.volume}"


def _volume(topo: Topology, name: str) -> BtrfsVolume | NetappVolume | CommandVolume:
    return next(v for v in topo.volumes if v.name == name)


def _volume_pattern(vol: BtrfsVolume | NetappVolume | CommandVolume, site: str) -> str:
    """Where Ansible runs a volume's commands at `site`: the one host its `hosts` names
    there, else the group of its role (as the engine does)."""
    return vol.hosts.get(site) or group_name(site, vol.role)


def _btrfs_driver(
    topo: Topology, vol: BtrfsVolume, site: str, action: str, argument: str = ""
) -> str:
    """The btrfs mirror's own command, as the engine's playbook runs it on a host of the
    volume's role: the driver keeps the mirror's state file, which raw btrfs commands
    would leave behind (and a later sitectl run would then refuse)."""
    host = topo.volume_hosts(vol, site)[0].name
    config = topo.resolve(vol.mirror_config or "")
    args = f"{{{{ ansible_playbook_python }}}} -m orchestrator.storage --config {config} {action}"
    return _ansible(topo, host, "ansible.builtin.command", f"{args} {argument}".rstrip())


def _command_volume(topo: Topology, vol: CommandVolume, site: str, action: str) -> str:
    command = fill(vol.commands[action], volume=vol.name, site=site, mount_point=vol.mount_point)
    return _ansible(topo, _volume_pattern(vol, site), "ansible.builtin.shell", command)


def _check_mirrors(topo: Topology, plan: Plan, step: Step) -> ManualStep:
    commands = []
    for vol in topo.volumes:
        if isinstance(vol, NetappVolume):
            commands.append(
                _netapp(
                    vol,
                    plan.to_site,
                    f"snapmirror show -destination-path {_netapp_path(vol, plan.to_site)} "
                    "-fields state,status,healthy,lag-time",
                )
            )
        elif isinstance(vol, BtrfsVolume):
            pool = vol.sites[plan.to_site].pool
            commands.append(f"btrfs subvolume list -r -s {shlex.quote(pool)}")
        else:
            commands.append(_command_volume(topo, vol, plan.to_site, "status"))
    limit = int(topo.policy.rpo_limits.volume)
    return ManualStep(
        tuple(commands),
        "NetApp: state Snapmirrored, status Idle, healthy true; btrfs: the newest received "
        "read-only snapshot and its time",
        f"every volume is mirrored towards {plan.to_site} with a lag under {limit} s",
    )


def _check_dns(topo: Topology, plan: Plan, step: Step) -> ManualStep:
    commands = [
        _old_site_may_fail(
            plan,
            server.site,
            # dig exits 0 on an answer, 9 when no server answered.
            f"dig @{server.address} -p {server.port} +norec +short {zone.name} SOA",
        )
        for zone in topo.dns.zones
        for server in zone.verify_servers
    ]
    return ManualStep(
        tuple(commands),
        "one SOA line per server; the serial (third field) is the same on every server of a zone",
        "every server answers and, per zone, the serials agree",
    )


def _check_application(topo: Topology, plan: Plan, step: Step) -> ManualStep:
    commands, kinds = _probes(topo, plan.from_site)
    return ManualStep(
        tuple(_old_site_may_fail(plan, plan.from_site, c) for c in commands),
        _expect_probes(kinds),
        f"{topo.application.name} answers on {plan.from_site} (in a failover it may not)",
    )


def _gate(topo: Topology, plan: Plan, step: Step) -> ManualStep:
    limits = topo.policy.rpo_limits
    return ManualStep(
        (),
        f"from the pre-flight figures: mirror lag ≤ {int(limits.volume)} s, LDAP contextCSN lag "
        f"≤ {int(limits.ldap)} s, object-store replication backlog ≤ {int(limits.object_store)} s",
        "all three are within their limits; otherwise stop here, or go on only with a written "
        "decision to accept the data loss (who, why, when)",
    )


def _services(topo: Topology, step: Step, state: str, verb: str) -> ManualStep:
    role = topo.roles[step.target]
    group = group_name(step.site or "", step.target)
    if role.commands is not None:
        command = role.commands.stop if state == "stopped" else role.commands.start
        commands = [_ansible(topo, group, "ansible.builtin.shell", command)]
        check = _ansible(topo, group, "ansible.builtin.shell", role.commands.status)
    else:
        services = role.services[::-1] if state == "stopped" else role.services
        commands = [
            _ansible(topo, group, "ansible.builtin.service", f"name={svc} state={state}")
            for svc in services
        ]
        check = ""
    probes = [
        _probe_command(host, probe)
        for host in topo.hosts_of(step.site or "", step.target)
        for probe in role.probes
    ]
    if state == "started" and not role.moves and probes:
        # As the engine does: a role that runs on both sites is started only if it does
        # not answer already (its service name may also be the machine's own instance's).
        answering = " && ".join(f"{{ {probe}; }}" for probe in probes)
        commands = [f"{{ {answering}; }} || {{ {' && '.join(commands)}; }}"]
        return ManualStep(
            (*commands, check) if check else tuple(commands),
            "its probes answer (nothing is started), or every host reports CHANGED or SUCCESS",
            f"{step.target} answers its probes on {step.site}",
        )
    return ManualStep(
        (*commands, check) if check else tuple(commands),
        "every host reports CHANGED or SUCCESS; none FAILED or UNREACHABLE",
        f"{', '.join(role.services)} {verb} on {len(step.hosts)} host(s): {', '.join(step.hosts)}",
    )


def _app_stop(topo: Topology, plan: Plan, step: Step) -> ManualStep:
    return _services(topo, step, "stopped", "stopped")


def _app_start(topo: Topology, plan: Plan, step: Step) -> ManualStep:
    return _services(topo, step, "started", "running")


def _mirror_update(topo: Topology, plan: Plan, step: Step) -> ManualStep:
    vol = _volume(topo, step.target)
    early = step.params.get("lag_above")
    snapshot = "final" if early is None else "presync"
    if isinstance(vol, NetappVolume):
        path = _netapp_path(vol, plan.to_site)
        commands: tuple[str, ...] = (
            _netapp(vol, plan.to_site, f"snapmirror update -destination-path {path}"),
            _netapp(vol, plan.to_site, f"snapmirror show -destination-path {path} -fields status"),
        )
        expect = "the update is queued, then status goes Transferring → Idle"
    elif isinstance(vol, BtrfsVolume) and vol.mirror_config:
        commands = (_btrfs_driver(topo, vol, plan.to_site, "update"),)
        expect = 'a JSON line with "changed": true and the new snapshot as last_snapshot'
    elif isinstance(vol, BtrfsVolume):
        src, dst = vol.sites[plan.from_site].pool, vol.sites[plan.to_site].pool
        commands = (
            f"btrfs subvolume snapshot -r {src}/{vol.subvolume} {src}/snaps/{snapshot}",
            f"btrfs send -p $(ls -d {src}/snaps/*@* | tail -1) {src}/snaps/{snapshot}"
            f" | btrfs receive {dst}/snaps/",
        )
        expect = f"'At subvol {snapshot}' on the receiving side"
    else:
        commands = (_command_volume(topo, vol, plan.to_site, "update"),)
        expect = "the operator's update command exits 0"
    if early is not None:
        return ManualStep(
            commands,
            expect,
            "the transfer finished while the application still serves (skip this step "
            f"when the mirror lags {float(early):g} s or less)",
        )
    return ManualStep(commands, expect, "the transfer finished after the application stopped")


def _mirror_break(topo: Topology, plan: Plan, step: Step) -> ManualStep:
    vol = _volume(topo, step.target)
    if isinstance(vol, NetappVolume):
        path = _netapp_path(vol, plan.to_site)
        commands: tuple[str, ...] = (
            _netapp(vol, plan.to_site, f"snapmirror quiesce -destination-path {path}"),
            _netapp(vol, plan.to_site, f"snapmirror break -destination-path {path}"),
            _netapp(vol, plan.to_site, f"snapmirror show -destination-path {path} -fields state"),
        )
        done = "state is Broken-off and the destination volume is read-write"
    elif isinstance(vol, BtrfsVolume) and vol.mirror_config:
        commands = (_btrfs_driver(topo, vol, plan.to_site, "break"),)
        done = f'a JSON line with "state": "broken": {plan.to_site}\'s copy is writable'
    elif isinstance(vol, BtrfsVolume):
        dst = vol.sites[plan.to_site].pool
        commands = (
            f"btrfs subvolume snapshot $(ls -d {dst}/snaps/* | tail -1) {dst}/{vol.subvolume}",
        )
        done = f"{dst}/{vol.subvolume} exists and is writable (btrfs property get ro: false)"
    else:
        commands = (_command_volume(topo, vol, plan.to_site, "break"),)
        done = "the operator's break command exits 0"
    return ManualStep(commands, "no error", done)


def _mirror_reverse(topo: Topology, plan: Plan, step: Step) -> ManualStep:
    vol = _volume(topo, step.target)
    if isinstance(vol, NetappVolume):
        old, new = plan.to_site, plan.from_site
        commands: tuple[str, ...] = (
            _netapp(
                vol,
                old,
                f"snapmirror resync -source-path {_netapp_path(vol, new)} "
                f"-destination-path {_netapp_path(vol, old)}",
            ),
        )
    elif isinstance(vol, BtrfsVolume) and vol.mirror_config:
        commands = (_btrfs_driver(topo, vol, plan.from_site, "reverse", plan.from_site),)
    elif isinstance(vol, BtrfsVolume):
        src, dst = vol.sites[plan.from_site].pool, vol.sites[plan.to_site].pool
        commands = (
            f"btrfs subvolume snapshot -r {src}/{vol.subvolume} {src}/snaps/reprotect",
            f"btrfs send -p $(ls -d {src}/snaps/*@* | tail -1) {src}/snaps/reprotect"
            f" | btrfs receive {dst}/snaps/",
        )
    else:
        commands = (_command_volume(topo, vol, plan.from_site, "reverse"),)
    return ManualStep(
        commands,
        "the transfer completes",
        f"the mirror runs {plan.from_site}→{plan.to_site} and its lag is small",
    )


def _object_store_reverse(topo: Topology, plan: Plan, step: Step) -> ManualStep:
    store = topo.object_store
    assert store is not None  # the plan has this step only with an object store
    endpoints = {e.site: e for e in store.endpoints}
    active, standby = plan.from_site, plan.to_site
    rule = {
        "Role": store.replication_role,
        "Rules": [
            {
                "ID": f"sitectl-{active}-to-{standby}",
                "Priority": 1,
                "Status": "Enabled",
                "Filter": {},
                "Destination": {"Bucket": f"arn:aws:s3:::{step.target}"},
                "DeleteMarkerReplication": {"Status": "Disabled"},
            }
        ],
    }
    return ManualStep(
        (
            s3api(endpoints[standby], f"delete-bucket-replication --bucket {step.target}"),
            s3api(
                endpoints[active],
                f"put-bucket-replication --bucket {step.target} --replication-configuration "
                + shlex.quote(json.dumps(rule)),
            ),
        ),
        "no output from either command",
        f"`get-bucket-replication` on {active} shows the rule; on {standby} it finds none",
    )


def _mount_command(vol: BtrfsVolume | NetappVolume | CommandVolume, site: str) -> str:
    target = shlex.quote(vol.mount_point_at(site))
    if isinstance(vol, NetappVolume):
        return f"mount -t nfs {shlex.quote(vol.sites[site].export)} {target}"
    if isinstance(vol, BtrfsVolume):
        pool, subvol = shlex.quote(vol.sites[site].pool), shlex.quote(vol.subvolume)
        return f'mount -o subvol={subvol} "$(findmnt -no SOURCE {pool})" {target}'
    return fill(vol.commands["mount"], volume=vol.name, site=site, mount_point=vol.mount_point)


def _unmount(topo: Topology, plan: Plan, step: Step) -> ManualStep:
    vol = _volume(topo, step.target)
    site = step.site or plan.from_site
    return ManualStep(
        (
            _ansible(
                topo,
                _volume_pattern(vol, site),
                "ansible.builtin.shell",
                f"mountpoint -q {shlex.quote(vol.mount_point_at(site))} && "
                f"umount {shlex.quote(vol.mount_point_at(site))} || true",
            ),
        ),
        "every host reports CHANGED or SUCCESS",
        f"`findmnt {vol.mount_point_at(site)}` prints nothing on {site}'s hosts",
    )


def _mount(topo: Topology, plan: Plan, step: Step) -> ManualStep:
    vol = _volume(topo, step.target)
    site = step.site or plan.to_site
    return ManualStep(
        (
            _ansible(
                topo,
                _volume_pattern(vol, site),
                "ansible.builtin.shell",
                # The mount point may not exist yet on a site that never mounted it.
                f"mountpoint -q {shlex.quote(vol.mount_point_at(site))} || "
                f"{{ mkdir -p {shlex.quote(vol.mount_point_at(site))} && "
                f"{_mount_command(vol, site)}; }}",
            ),
        ),
        "every host reports CHANGED or SUCCESS",
        f"`findmnt {vol.mount_point_at(site)}` shows the volume read-write on {site}'s hosts",
    )


def _zone(topo: Topology, name: str) -> DnsZone:
    return next(z for z in topo.dns.zones if z.name == name)


def _nsupdate(zone: DnsZone, step: Step) -> str:
    auth = f"-k {_tsig_key(zone)}"
    server = parse_server(step.params.get("servers", [str(zone.update_servers[0])])[0])
    lines = [f"server {server.address} {server.port}", f"zone {zone.name}"]
    for record in step.params["records"]:
        lines.append(f"update delete {record['name']} {record['type']}")
        lines.append(
            f"update add {record['name']} {record['ttl']} {record['type']} {record['value']}"
        )
    lines.append("send")
    body = "\n".join(lines)
    return f"nsupdate {auth} <<'EOF'\n{body}\nEOF"


def _route53(zone: DnsZone, step: Step) -> str:
    assert zone.route53 is not None
    batch = {
        "Comment": f"sitectl runbook: {step.id}",
        "Changes": [
            {
                "Action": "UPSERT",
                "ResourceRecordSet": {
                    "Name": r["name"],
                    "Type": r["type"],
                    "TTL": r["ttl"],
                    "ResourceRecords": [{"Value": r["value"]}],
                },
            }
            for r in step.params["records"]
        ],
    }
    profile = (
        f" --profile {zone.route53.credentials_profile}" if zone.route53.credentials_profile else ""
    )
    return (
        f"aws{profile} route53 change-resource-record-sets --hosted-zone-id "
        f"{zone.route53.hosted_zone_id} --change-batch {shlex.quote(json.dumps(batch))}"
    )


def _dns_update(topo: Topology, plan: Plan, step: Step) -> ManualStep:
    zone = _zone(topo, step.target)
    command = _nsupdate(zone, step) if zone.provider == "rfc2136" else _route53(zone, step)
    expect = (
        "no output from nsupdate (an error prints NOTAUTH, REFUSED or a TSIG error)"
        if zone.provider == "rfc2136"
        else '"Status": "PENDING", then INSYNC'
    )
    return ManualStep((command,), expect, "verified in the verify step on every server")


def _dns_promote(topo: Topology, plan: Plan, step: Step) -> ManualStep:
    zone = _zone(topo, step.target)
    promotion = zone.promote[step.site or ""]
    host = next(h for h in topo.hosts if h.name == promotion.host)
    return ManualStep(
        (_ansible(topo, host.name, "ansible.builtin.shell", promotion.promote_command),),
        f"{host.name} reports CHANGED",
        f"{promotion.server} accepts a signed update for {zone.name} "
        f"(the nsupdate of the zone's update step succeeds against it)",
    )


def _dns_demote(topo: Topology, plan: Plan, step: Step) -> ManualStep:
    zone = _zone(topo, step.target)
    promotion = zone.promote[step.site or ""]
    primary = zone.promote.get(plan.from_site)
    command = (
        fill(promotion.demote_command, primary=primary.server.address)
        if primary
        else promotion.demote_command.replace("{primary}", "<the current primary>")
    )
    # As the engine: demote only while two servers take signed updates (a secondary
    # answers a prerequisite-only update NOTAUTH); one primary is left as it is.
    accepts = [
        f"printf 'server {s.address} {s.port}\\nzone {zone.name}\\nprereq yxdomain "
        f"{zone.name}\\nsend\\n' | nsupdate -k {_tsig_key(zone)} 2>/dev/null"
        for s in (promotion.server, *([primary.server] if primary else []))
    ]
    if len(accepts) < 2:
        return ManualStep(
            (_ansible(topo, promotion.host, "ansible.builtin.shell", command),),
            f"{promotion.host} reports CHANGED (or nothing to do if it is already a secondary)",
            f"only one server takes updates for {zone.name}; {promotion.server} answers the "
            "primary's serial",
        )
    return ManualStep(
        (
            f"# Two primaries of {zone.name} (both accept a signed update that changes "
            f"nothing)? Then demote {plan.to_site}'s",
            f"if {' && '.join(accepts)}; then",
            _ansible(topo, promotion.host, "ansible.builtin.shell", command),
            "else",
            f'echo "one primary of {zone.name}: nothing to demote"',
            "fi",
        ),
        f"{promotion.host} reports CHANGED, or 'one primary of {zone.name}: nothing to demote'",
        f"only one server takes updates for {zone.name}; {promotion.server} answers the "
        "primary's serial",
    )


def _verify_dns(topo: Topology, plan: Plan, step: Step) -> ManualStep:
    commands = []
    expected = []
    # The plan's servers: a failover expects no answer from the lost site's.
    servers = step.params.get("zones", {})
    for zone in topo.dns.zones:
        for record in zone.records:
            name = zone.fqdn(record)
            expected.append(f"{name} → {record.values[plan.to_site]}")
            for text in servers.get(zone.name, [str(s) for s in zone.verify_servers]):
                server = parse_server(text)
                commands.append(
                    f"dig @{server.address} -p {server.port} +norec +short {name} {record.type}"
                )
    return ManualStep(
        tuple(commands),
        "; ".join(expected),
        "every server answers the new value (secondaries may take a few seconds)",
    )


def _verify_application(topo: Topology, plan: Plan, step: Step) -> ManualStep:
    commands, kinds = _probes(topo, plan.to_site)
    probes = ManualStep(
        tuple(commands), _expect_probes(kinds), f"every probe answers on {plan.to_site}"
    )
    if plan.mode != "failover" or not _canary_scripted(topo, plan.to_site):
        return probes
    # A failover has no canary from the lost site to look for: one sent on the new
    # site and read back there shows mail is accepted, delivered and readable.
    write, read = _canary_write(topo, plan.to_site), _canary_search(topo, plan.to_site)
    return ManualStep(
        (
            *probes.commands,
            *write,
            "# delivery takes a moment: look for it for up to 10 s, then once more to be sure",
            f"for try in 1 2 3 4 5 6 7 8 9 10; do {read} | grep '^\\* SEARCH [0-9]' && break; "
            "sleep 1; done",
            f"{read} | grep '^\\* SEARCH [0-9]'",
        ),
        f"{probes.expect}; then '* SEARCH' followed by the canary's message number",
        f"every probe answers on {plan.to_site}, and the canary ($CANARY) sent there is "
        "readable there",
    )


def _canary_scripted(topo: Topology, site: str) -> bool:
    return (
        topo.application.probe_user is not None
        and _first_probe(topo, site, "smtp") is not None
        and _first_probe(topo, site, "imap") is not None
    )


def _canary_write(topo: Topology, site: str) -> tuple[str, str]:
    user = topo.application.probe_user
    smtp = _first_probe(topo, site, "smtp")
    assert user is not None and smtp is not None
    url, tls = _curl_url(*smtp, "")
    return (
        'export CANARY="sitectl-canary manual-$(date -u +%Y%m%dT%H%M%SZ)"',
        f"printf 'Subject: %s\\n\\ncanary\\n' \"$CANARY\" | "
        f"curl -s{tls} {url} --mail-from sitectl@localhost "
        f"--mail-rcpt {shlex.quote(user.address or user.user)} -T -",
    )


def _canary_search(topo: Topology, site: str) -> str:
    imap = _first_probe(topo, site, "imap")
    assert imap is not None
    url, tls = _curl_url(*imap, "INBOX")
    return f'curl -s{tls} --netrc-file {_made(PROBE_NETRC)} {url} -X "SEARCH SUBJECT \\"$CANARY\\""'


def _verify_canary(topo: Topology, plan: Plan, step: Step) -> ManualStep:
    user = topo.application.probe_user
    imap = _first_probe(topo, plan.to_site, "imap")
    if user is None or imap is None:
        return ManualStep(
            (),
            "",
            "read the last message written before the cutover at the new site (no IMAP probe "
            "user or IMAP probe in the topology to script it)",
        )
    return ManualStep(
        (f"{_canary_search(topo, plan.to_site)} | grep '^\\* SEARCH [0-9]'",),
        "'* SEARCH' followed by message numbers",
        "the canary ($CANARY, from the canary step) is found: the last write reached here",
    )


def _write_canary(topo: Topology, plan: Plan, step: Step) -> ManualStep:
    user = topo.application.probe_user
    smtp = _first_probe(topo, plan.from_site, "smtp")
    if user is None or smtp is None:
        return ManualStep((), "", "send yourself a message on the old site and note its subject")
    return ManualStep(
        _canary_write(topo, plan.from_site),
        "no output; the message is delivered within seconds",
        "the canary is readable over IMAP on the old site (same search as the verify step)",
    )


def _first_probe(topo: Topology, site: str, kind: str) -> tuple[Host, Probe] | None:
    return next(
        (
            (h, p)
            for name, role in topo.roles.items()
            for h in topo.hosts_of(site, name)
            for p in role.probes
            if p.kind == kind
        ),
        None,
    )


def _curl_url(host: Host, probe: Probe, path: str) -> tuple[str, str]:
    """curl's URL for a mail probe and its TLS options (each with a leading space):
    imaps:// or smtps://, or --ssl-reqd for STARTTLS (curl must not go on in clear), the
    probe's CA, and the name to verify reached at the host's address."""
    hostport = _hostport(host.address, probe.port)
    if not probe.tls:
        return shlex.quote(f"{probe.kind}://{hostport}/{path}"), ""
    scheme = probe.tls if probe.tls != "starttls" else probe.kind
    options = " --ssl-reqd" if probe.tls == "starttls" else ""
    if probe.ca_file:
        options += f" --cacert {shlex.quote(probe.ca_file)}"
    name = _server_name(host, probe)
    if name != host.address:
        options += f" --connect-to {shlex.quote(f'{name}:{probe.port}:{hostport}')}"
        hostport = _hostport(name, probe.port)
    return shlex.quote(f"{scheme}://{hostport}/{path}"), options


def _activate(topo: Topology, plan: Plan, step: Step) -> ManualStep:
    znode = ZkPaths.for_cluster(topo.zookeeper.chroot, topo.cluster).active_site
    return ManualStep(
        (
            _zk_cli(
                topo,
                *_zk_put(topo, znode, plan.to_site),
                f"get {znode}",
                then=f"tail -n 1 | grep -Fx -- {plan.to_site}",
                lost=_lost(plan),
            ),
        ),
        f"no error, and the last line printed is {plan.to_site}",
        f"`get {znode}` prints {plan.to_site}; tell the on-call channel the service runs there",
    )


# zookeeper.jar's manifest names the other Netty jars; TLS needs these besides.
_ZK_CLIENT_JARS = (
    "zookeeper",
    "netty-codec",
    "netty-resolver",
    "netty-transport-native-unix-common",
)


def _zk_put(topo: Topology, znode: str, value: str) -> list[str]:
    """Client lines that leave `value` at `znode`, made (parents too) if absent, with
    the ACL sitectl gives its own nodes (the identity authenticated as: `auth::`). On an
    existing node `create` only says so, and `set` does the work."""
    acl = " auth::cdrwa" if topo.zookeeper.auth else ""
    parts = znode.strip("/").split("/")
    parents = ["/" + "/".join(parts[:n]) for n in range(1, len(parts))]
    return [
        *(f"create {parent} '' {acl.strip()}".rstrip() for parent in parents),
        f"create {znode} '{value}'{acl}",
        f"set {znode} '{value}'",
    ]


def _lost(plan: Plan) -> str | None:
    """The site a failover leaves behind, whose servers a client should not try."""
    return plan.from_site if plan.mode == "failover" else None


def _zk_cli(topo: Topology, *commands: str, then: str = "", lost: str | None = None) -> str:
    """ZooKeeper's own client running `commands`, one per line on its input: as sitectl
    connects (TLS verified against zookeeper.tls.ca_file, authenticated as
    zookeeper.auth), and without the credentials on any command line (the shell reads
    them into the here-document)."""
    zk = topo.zookeeper
    if zk.tls is None:
        client = "/usr/share/zookeeper/bin/zkCli.sh"
    else:
        classpath = ":".join(f"/usr/share/java/{jar}.jar" for jar in _ZK_CLIENT_JARS)
        flags = {
            "zookeeper.clientCnxnSocket": "org.apache.zookeeper.ClientCnxnSocketNetty",
            "zookeeper.client.secure": "true",
            "zookeeper.ssl.trustStore.location": zk.tls.ca_file,
            "zookeeper.ssl.trustStore.type": "PEM",
        }
        if zk.tls.cert_file and zk.tls.key_file:
            # ZooKeeper reads a PEM key store as one file: the key, then the certificate.
            bundle = f"<(cat {shlex.quote(zk.tls.key_file)} {shlex.quote(zk.tls.cert_file)})"
            flags["zookeeper.ssl.keyStore.location"] = bundle
            flags["zookeeper.ssl.keyStore.type"] = "PEM"
        defines = " ".join(
            f"-D{k}={v if v.startswith('<(') else shlex.quote(v)}" for k, v in flags.items()
        )
        client = f"java -cp {classpath} {defines} org.apache.zookeeper.ZooKeeperMain"
    lines = [f"addauth digest $(cat {_made(ZK_IDENTITY)})"] if zk.auth else []
    # The client sends its input as soon as it starts: a request queued while it tries a
    # server that refuses (a lost site's) fails with ConnectionLoss, so only the
    # survivors are named. The rest are a quorum, or nothing could be written anyway.
    servers = ",".join(h.address for h in zk.hosts if h.site != lost)
    body = "\n".join([*lines, *commands])
    # `then`: a pipeline the client's output goes on to (its own exit status does not
    # tell a refused `set`: the last line read back does).
    pipe = f" | {then}" if then else ""
    return f"{client} -server {servers} <<EOF{pipe}\n{body}\nEOF"


def _ticket_znode(topo: Topology) -> str:
    return ZkPaths.for_cluster(topo.zookeeper.chroot, topo.cluster).ticket


def _fence_wait(topo: Topology, step: Step, ticket: Ticket | None) -> ManualStep:
    old, drift = step.params["old_site"], float(step.params["clock_drift"])
    stops = ", ".join(step.params["stop_steps"]) or "none"
    if ticket is not None and ticket.holder == old:
        until = ticket.passes_at(drift)
        arithmetic = (
            f"last renewal {clock_text(ticket.renewed_at)} + ttl {ticket.ttl:g} s + clock drift "
            f"{drift:g} s = {clock_text(until)} ({math.ceil(until)} s since the epoch), as read "
            "when this runbook was made: read it again now, a renewal since moves it later"
        )
    else:
        arithmetic = (
            f"renewed_at + ttl + {drift:g} s (clock drift), both as `get` prints them "
            "(seconds since the epoch)"
        )
    return ManualStep(
        (
            f"# If every stop step on {old} above succeeded, there is nothing to wait for. "
            "Otherwise read the ticket and",
            f"# wait until its last renewal + ttl + {drift:g} s has passed: at once when "
            f"{old} does not hold it (or none is recorded)",
            'TICKET="$('
            + _zk_cli(
                topo,
                f"get {_ticket_znode(topo)}",
                then="grep -E '^[{]|^Node does not exist'",
                lost=old,
            ).replace(" <<EOF | ", " <<EOF 2>&1 | ", 1)
            # The client exits 1 after "Node does not exist": the lines read decide.
            + '\n)" || true',
            'echo "ticket: ${TICKET:-none read}"',
            'test -n "$TICKET"  # nothing read: ZooKeeper did not answer, do not go on',
            f'case "$TICKET" in *\'"holder": "{old}"\'*) ;; *) TICKET=\'{{}}\' ;; esac',
            # Seconds since the epoch, rounded up; nothing to wait for without old's ticket.
            "UNTIL=$(printf '%s' \"$TICKET\" | awk -v drift="
            + f"{drift:g}"
            + ' \'{ r = t = 0; if (match($0, /"renewed_at": [0-9.]+/)) '
            'r = substr($0, RSTART + 14, RLENGTH - 14); if (match($0, /"ttl": [0-9.]+/)) '
            "t = substr($0, RSTART + 7, RLENGTH - 7); u = r + t + drift; "
            "if (r == 0) u = 0; else if (u > int(u)) u = int(u) + 1; print u }')",
            'if [ "$UNTIL" -gt "$(date -u +%s)" ]; then '
            'echo "waiting until $(date -u -d "@$UNTIL" +%H:%M:%SZ)"; '
            f'else echo "nothing to wait for: {old} holds no ticket, or it has passed"; fi',
            'while [ "$(date -u +%s)" -lt "$UNTIL" ]; do sleep 1; done',
        ),
        f'the ticket (with "holder": "{old}", "renewed_at" and "ttl"), or "Node does not '
        'exist"; then the time waited until, and the prompt back once it has passed',
        f"every stop step on {old} above succeeded ({stops}): nothing to wait for; "
        f"otherwise `date -u +%s` has passed {arithmetic}. Until then {old} may still be "
        f"serving: make nothing at {step.site} writable",
    )


def _ticket_release(topo: Topology, plan: Plan, step: Step) -> ManualStep:
    znode = _ticket_znode(topo)
    released = (
        '{"holder": null, "epoch": 0, "granted_at": 0, "renewed_at": $(date +%s), '
        f'"released_at": $(date +%s), "ttl": {topo.ticket_ttl:g}}}'
    )
    return ManualStep(
        (
            _zk_cli(
                topo,
                *_zk_put(topo, znode, released),
                f"get {znode}",
                then="tail -n 1 | grep -F '\"holder\": null'",
            ),
        ),
        'the last line printed is the ticket with "holder": null',
        f'`get {znode}` prints "holder": null',
    )


def _ticket_grant(topo: Topology, plan: Plan, step: Step) -> ManualStep:
    znode = _ticket_znode(topo)
    granted = (
        f'{{"holder": "{step.site}", "epoch": 0, "granted_at": $(date +%s), '
        f'"renewed_at": $(date +%s), "ttl": {topo.ticket_ttl:g}}}'
    )
    return ManualStep(
        (
            _zk_cli(
                topo,
                *_zk_put(topo, znode, granted),
                f"get {znode}",
                then=f'tail -n 1 | grep -F \'"holder": "{step.site}"\'',
                lost=_lost(plan),
            ),
        ),
        "no error",
        f'`get {znode}` prints "holder": "{step.site}"; {step.site}\'s controllers renew it '
        "from now on (start them if they do not run)",
    )


_RENDERERS: dict[Action, Callable[[Topology, Plan, Step], ManualStep]] = {
    Action.CHECK_ZOOKEEPER: _check_zookeeper,
    Action.CHECK_LDAP: _check_ldap,
    Action.CHECK_OBJECT_STORE: _check_object_store,
    Action.CHECK_MIRRORS: _check_mirrors,
    Action.CHECK_DNS: _check_dns,
    Action.CHECK_APPLICATION: _check_application,
    Action.GATE_READINESS: _gate,
    Action.WRITE_CANARY: _write_canary,
    Action.APP_STOP: _app_stop,
    Action.MIRROR_UPDATE: _mirror_update,
    Action.MIRROR_BREAK: _mirror_break,
    Action.MIRROR_REVERSE: _mirror_reverse,
    Action.OBJECT_STORE_REVERSE: _object_store_reverse,
    Action.VOLUME_UNMOUNT: _unmount,
    Action.VOLUME_MOUNT: _mount,
    Action.DNS_PROMOTE: _dns_promote,
    Action.DNS_DEMOTE: _dns_demote,
    Action.DNS_UPDATE: _dns_update,
    Action.APP_START: _app_start,
    Action.TICKET_RELEASE: _ticket_release,
    Action.TICKET_GRANT: _ticket_grant,
    Action.VERIFY_DNS: _verify_dns,
    Action.VERIFY_APPLICATION: _verify_application,
    Action.VERIFY_CANARY: _verify_canary,
    Action.ACTIVATE: _activate,
    Action.SALVAGE_SNAPSHOT: lambda t, p, s: ManualStep(*salvage.snapshot(t, p, s)),
    Action.SALVAGE_MAIL: lambda t, p, s: ManualStep(*salvage.mail(t, p, s)),
    Action.SALVAGE_OBJECTS: lambda t, p, s: ManualStep(*salvage.objects(t, p, s)),
    Action.SALVAGE_LDAP: _salvage_ldap,
    Action.SALVAGE_DECIDE: lambda t, p, s: ManualStep(*salvage.decide(t, p, s)),
    Action.CUSTOM_COMMAND: lambda t, p, s: ManualStep(*custom.command(t, p, s)),
    Action.CUSTOM_PLAYBOOK: lambda t, p, s: ManualStep(*custom.playbook(t, p, s)),
    Action.APPROVAL: lambda t, p, s: ManualStep(*custom.approval(t, p, s)),
}
