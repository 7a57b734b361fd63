"""`sitectl validate` on broken topology files: one line per problem, FILE:LINE: field:
what — fix, exit 2. Each case breaks the example topology in one way and names the line
the operator must edit."""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestrator.cli.main import app
from orchestrator.config import load_topology
from orchestrator.config.yamlsource import parse
from tests.unit.cli_tree import verbs

EXAMPLE = Path(__file__).resolve().parents[2] / "inventories" / "example-zimbra"
LINE = re.compile(
    r"^(?P<file>\S+):(?P<line>\d+): (?P<field>\(top level\)|\S+): (?P<message>.+ — .+)$"
)


@dataclass(frozen=True)
class Broken:
    name: str
    old: str  # text of the example to replace (must occur once)
    new: str
    field: str  # the dotted field the error must name
    says: str  # a fragment of the message
    line_of: str | None = None  # text on the line the error must point at (default: new)


# The MTA's first probe (two lines in the file).
SMTP_25 = (
    "{kind: smtp, port: 25, tls: starttls, ca_file: pki/zimbra-ca.pem,\n"
    '         server_name: "{host}.example.net"}'
)
CASES = [
    Broken(
        "DNS promotion on a host of the other site",
        "host: ns1.dc2,\n              promote_command",
        "host: ns1.dc1,\n              promote_command",
        "dns.zones.0.promote.dc2.host",
        "host 'ns1.dc1' is in dc1, not dc2",
        line_of="dc2: {server: {address: 198.51.100.53, site: dc2}, host: ns1.dc1",
    ),
    Broken(
        "record value for an unknown site",
        "values: {dc1: 192.0.2.11, dc2: 198.51.100.11}",
        "values: {dc1: 192.0.2.11, dc3: 198.51.100.11}",
        "dns.zones.0.records.1.values.dc3",
        "site 'dc3' is not defined",
    ),
    Broken(
        "parity setting read at the witness",
        '      dc2: {command: "ssh zimbra@mbox1.dc2.example.net zmprov gc default zimbraMailTrashLifetime",',
        '      witness: {command: "ssh zimbra@mbox1.dc2.example.net zmprov gc default zimbraMailTrashLifetime",',
        "parity.0.sites.witness",
        "a parity site is the witness site 'witness', which only votes",
        line_of="witness: {command:",
    ),
    Broken(
        "volume mirrored to the witness",
        "    mirror: {source: dc1, destination: dc2}\n    sites:\n      dc1: {cluster: ontap.dc1.example.net, svm: svm_mail_dc1, volume: zstore1,",
        "    mirror: {source: dc1, destination: witness}\n    sites:\n      dc1: {cluster: ontap.dc1.example.net, svm: svm_mail_dc1, volume: zstore1,",
        "volumes.0.mirror.destination",
        "witness site 'witness', which only votes",
        line_of="destination: witness",
    ),
    Broken(
        "TSIG key file missing",
        "tsig: {name: ddns-corp, secret: {env: DDNS_CORP_SECRET}}",
        "tsig: {key_file: keys/ddns-corp.key}",
        "dns.zones.0.tsig.key_file",
        "does not exist",
    ),
    Broken(
        "misspelt field",
        "    mirror: {source: dc1, destination: dc2}\n    sites:\n      dc1: {cluster: ontap.dc1.example.net, svm: svm_mail_dc1, volume: zdb1,",
        "    mirror: {source: dc1, destinaton: dc2}\n    sites:\n      dc1: {cluster: ontap.dc1.example.net, svm: svm_mail_dc1, volume: zdb1,",
        "volumes.1.mirror.destinaton",
        "did you mean 'destination'?",
        line_of="destinaton: dc2",
    ),
    Broken(
        "site kind not allowed",
        'dc2: {kind: datacenter, description: "Standby',
        'dc2: {kind: datacentre, description: "Standby',
        "sites.dc2.kind",
        "'datacentre' is not allowed",
    ),
    Broken(
        "YAML syntax error",
        "  probe_interval: 5s",
        "  probe_interval: [5s",
        "(top level)",  # a syntax error has no field
        "not valid YAML",
        line_of="consecutive_failures",
    ),
    Broken(
        "duplicate key",
        "  consecutive_failures: 3",
        "  consecutive_failures: 3\n  probe_interval: 10s",
        "policy.probe_interval",
        "duplicate key 'probe_interval'",
        line_of="probe_interval: 10s",
    ),
    Broken(
        "required field missing",
        "cluster: zimbra-example\n",
        "",
        "cluster",
        "required field 'cluster' is missing",
        line_of="active_site: dc1",  # the top-level mapping starts there once cluster is gone
    ),
    Broken(
        "two LDAP masters share a server id",
        "server_id: 4, site: dc2",
        "server_id: 3, site: dc2",
        "ldap.masters.3.server_id",
        "server_id 3 is used twice",
        line_of='ldap2.dc2.example.net:389", server_id: 3',
    ),
    Broken(
        "duration without a unit we know",
        "  probe_interval: 5s",
        "  probe_interval: 5 minutes",
        "policy.probe_interval",
        "is not a duration",
    ),
    Broken(
        "drill RTO of zero",
        "drill_targets: {rto: 15m, rpo: 0s}",
        "drill_targets: {rto: 0s, rpo: 0s}",
        "policy.drill_targets.rto",
        "an RTO of 0 s cannot be met — give the longest outage a drill may show",
    ),
    Broken(
        "negative drill RPO",
        "drill_targets: {rto: 15m, rpo: 0s}",
        "drill_targets: {rto: 15m, rpo: -5}",
        "policy.drill_targets.rpo",
        "an RPO of -5 s is negative — give the span of writes a drill may lose, 0s for none",
    ),
    Broken(
        "health sweep without a pause",
        "  unreachable_timeout: 15s",
        "  unreachable_timeout: 15s\n  health_every: 0s",
        "policy.health_every",
        "health_every 0 s would sweep every server without a pause — give an interval",
        line_of="health_every: 0s",
    ),
    Broken(
        "ticket ttl not above the ZooKeeper session",
        "  unreachable_timeout: 15s",
        "  unreachable_timeout: 15s\n  ticket_ttl: 8s",
        "policy.ticket_ttl",
        "8 s is not above zookeeper.session_timeout (10 s) — the ticket must outlive",
        line_of="ticket_ttl: 8s",
    ),
    Broken(
        "fence_after not below the ticket ttl",
        "  unreachable_timeout: 15s",
        "  unreachable_timeout: 15s\n  fence_after: 14s",
        "policy.fence_after",
        "14 s is not below the ticket's ttl (14 s) — a site must fence itself before",
        line_of="fence_after: 14s",
    ),
    Broken(
        "fence_after not above the probe interval",
        "  unreachable_timeout: 15s",
        "  unreachable_timeout: 15s\n  fence_after: 4s",
        "policy.fence_after",
        "fence_after (4 s) is not above probe_interval (5 s)",
        line_of="fence_after: 4s",
    ),
    Broken(
        "unknown volume driver",
        "    driver: netapp\n    role: mailbox\n    hosts: {dc1: mbox1.dc1, dc2: mbox1.dc2}\n    mount_point: /opt/zimbra/db",
        "    driver: emc\n    role: mailbox\n    hosts: {dc1: mbox1.dc1, dc2: mbox1.dc2}\n    mount_point: /opt/zimbra/db",
        "volumes.1.driver",
        "driver 'emc' is unknown",
        line_of="driver: emc",
    ),
    Broken(
        "host with an undefined role",
        "{name: mta2.dc2, site: dc2, roles: [mta]",
        "{name: mta2.dc2, site: dc2, roles: [mta, webmail]",
        "hosts.9.roles.1",
        "role 'webmail' is not defined",
    ),
    Broken(
        "zone name not absolute",
        "- name: corp.example.net.",
        "- name: corp.example.net",
        "dns.zones.0.name",
        "end the zone name with a dot",
    ),
    Broken(
        "secret given two ways",
        "password: {env: ZIMBRA_LDAP_PASSWORD}",
        "password: {env: ZIMBRA_LDAP_PASSWORD, file: ldap.pw}",
        "ldap.password",
        "exactly one of 'file' or 'env'",
    ),
    Broken(
        "even ZooKeeper ensemble",
        '    - {address: "zk.witness.example.net:2281", site: witness}\n',
        "",
        "zookeeper.hosts",
        "even ensemble",
        line_of='  hosts:\n    - {address: "zk.dc1',
    ),
    Broken(
        "ZooKeeper without auth",
        '  auth: {credentials: {env: SITECTL_ZK_CREDENTIALS}}  # "user:password"\n',
        "",
        "zookeeper",
        "no auth: anyone who reaches the ensemble could forge vantage reports",
        line_of="zookeeper:",
    ),
    Broken(
        "ZooKeeper without TLS",
        "  tls: {ca_file: pki/ca.pem}",
        "  # no tls",
        "zookeeper",
        "no tls: the digest credentials and every record would cross the network in clear",
        line_of="zookeeper:",
    ),
    Broken(
        "ZooKeeper client certificate without its key",
        "  tls: {ca_file: pki/ca.pem}",
        "  tls: {ca_file: pki/ca.pem, cert_file: pki/ca.pem}",
        "zookeeper.tls",
        "cert_file and key_file go together",
        line_of="  tls: {ca_file",
    ),
    Broken(
        "a weak TSIG algorithm",
        "tsig: {name: ddns-corp, secret: {env: DDNS_CORP_SECRET}}",
        "tsig: {name: ddns-corp, algorithm: hmac-sha1, secret: {env: DDNS_CORP_SECRET}}",
        "dns.zones.0.tsig.algorithm",
        "TSIG algorithm hmac-sha1 is weak",
    ),
    Broken(
        "an LDAP bind in clear",
        "  starttls: true",
        "  starttls: false",
        "ldap.masters.0.uri",
        "without StartTLS would send the bind password in clear",
        line_of='    - {uri: "ldap://ldap1.dc1',
    ),
    Broken(
        "a plain-http object store",
        "      url: https://s3.dc1.example.net",
        "      url: http://s3.dc1.example.net",
        "object_store.endpoints.0.url",
        "is plain http",
    ),
    Broken(
        "a site without a controller identity",
        '    dc2: "sitectl-controller-dc2:C2QXhv2yZzFYghZ+pAn7h9fv+Lo="  # replace\n',
        "",
        "zookeeper.controller_ids",
        "no controller identity for dc2",
        line_of="  controller_ids:",
    ),
    Broken(
        "a controller identity that is not a digest id",
        '    dc2: "sitectl-controller-dc2:C2QXhv2yZzFYghZ+pAn7h9fv+Lo="  # replace',
        '    dc2: "sitectl-controller-dc2:password"',
        "zookeeper.controller_ids.dc2",
        "is not a digest id",
    ),
    Broken(
        "witness as the active site",
        "active_site: dc1",
        "active_site: witness",
        "active_site",
        "only votes",
    ),
    Broken(
        "relative mount point",
        "    hosts: {dc1: mbox1.dc1, dc2: mbox1.dc2}\n    mount_point: /opt/zimbra/store",
        "    hosts: {dc1: mbox1.dc1, dc2: mbox1.dc2}\n    mount_point: opt/zimbra/store",
        "volumes.0.mount_point",
        "must be an absolute path",
        line_of="mount_point: opt/zimbra/store",
    ),
    Broken(
        "IMAP probe logging in over clear text",
        "{kind: imap, port: 143, tls: starttls, server_name: mail.example.com}",
        "{kind: imap, port: 143}",
        "roles.proxy.probes.0.tls",
        "this imap probe logs in as 'sitectl-probe@example.com' over clear text: the probe "
        "user's password would cross the network readable by anyone on the path — use tls: "
        "imaps/starttls with a ca_file, or set insecure: true on this probe if you accept "
        "sending it in clear",
    ),
    Broken(
        "plain IMAP to the IMAPS port",
        "{kind: imap, port: 993, tls: imaps, server_name: mail.example.com}",
        "{kind: imap, port: 993, insecure: true}",
        "roles.proxy.probes.1.tls",
        "port 993 is IMAPS, TLS from the first byte, and this imap probe speaks plain text to "
        "it (it can never pass) — set tls: imaps",
    ),
    Broken(
        "STARTTLS to the IMAPS port",
        "{kind: imap, port: 993, tls: imaps, server_name: mail.example.com}",
        "{kind: imap, port: 993, tls: starttls, server_name: mail.example.com}",
        "roles.proxy.probes.1.tls",
        "this imap probe speaks STARTTLS to it (it can never pass) — set tls: imaps",
    ),
    Broken(
        "TLS mode of another protocol",
        SMTP_25,
        "{kind: smtp, port: 25, tls: imaps}",
        "roles.mta.probes.0",
        "tls 'imaps' does not fit a smtp probe — use tls: smtps or starttls",
    ),
    Broken(
        "CA file of a probe without TLS",
        SMTP_25,
        "{kind: smtp, port: 25, ca_file: pki/ca.pem}",
        "roles.mta.probes.0",
        "ca_file and server_name verify a TLS certificate, and this smtp probe speaks no TLS "
        "— add tls: smtps or starttls",
    ),
    Broken(
        "probe CA file missing",
        "{kind: imap, port: 993, tls: imaps, server_name: mail.example.com}",
        "{kind: imap, port: 993, tls: imaps, ca_file: pki/missing-ca.pem}",
        "roles.proxy.probes.1.ca_file",
        "file pki/missing-ca.pem does not exist (relative to the topology file) — fix the path",
    ),
    Broken(
        "role without a host in the standby",
        "  - {name: proxy1.dc2, site: dc2, roles: [proxy], address: 198.51.100.21}\n"
        "  - {name: proxy2.dc2, site: dc2, roles: [proxy], address: 198.51.100.22}\n",
        "",
        "roles.proxy",
        "no host in datacenter 'dc2'",
        line_of="  proxy:\n    start_order",
    ),
]

# Names, addresses and paths reach command lines (playbooks' shell tasks, the runbook,
# the dead-man's fence commands) and Ansible's templating: what a shell or Jinja would
# read there, or a control character, is refused where it is written.
HOSTILE = [
    Broken(
        "command substitution in a mount point",
        "    hosts: {dc1: mbox1.dc1, dc2: mbox1.dc2}\n    mount_point: /opt/zimbra/store",
        '    hosts: {dc1: mbox1.dc1, dc2: mbox1.dc2}\n    mount_point: "/opt/zimbra/store$(reboot)"',
        "volumes.0.mount_point",
        "path '/opt/zimbra/store$(reboot)' holds '$', a shell metacharacter — a path may "
        "hold only letters, digits and . _ - / + , : @ % =",
        line_of='mount_point: "/opt/zimbra/store$(reboot)"',
    ),
    Broken(
        "semicolon in a host name",
        "{name: mta2.dc2, site: dc2, roles: [mta]",
        '{name: "mta2.dc2;id", site: dc2, roles: [mta]',
        "hosts.9.name",
        "host name 'mta2.dc2;id' holds ';', a shell metacharacter — a host name may hold only",
    ),
    Broken(
        "backquote in a role's name",
        "  mta:\n    start_order: 2",
        '  "mta`id`":\n    start_order: 2',
        "roles.mta`id`",
        "role name 'mta`id`' holds '`', a shell metacharacter — a role name may hold only "
        "letters, digits, '_' and '-'",
    ),
    Broken(
        "pipe in a host's role",
        "{name: mta1.dc2, site: dc2, roles: [mta]",
        '{name: mta1.dc2, site: dc2, roles: ["mta|id"]',
        "hosts.8.roles.0",
        "role name 'mta|id' holds '|', a shell metacharacter",
    ),
    Broken(
        "two commands in a service's name",
        "services: [zimbra-mta]",
        'services: ["zimbra-mta && reboot"]',
        "roles.mta.services.0",
        "service name 'zimbra-mta && reboot' holds whitespace — a service name may hold only",
    ),
    Broken(
        "volume host not in hosts",
        "hosts: {dc1: mbox1.dc1, dc2: mbox1.dc2}\n    mount_point: /opt/zimbra/store",
        "hosts: {dc1: mbox9.dc1, dc2: mbox1.dc2}\n    mount_point: /opt/zimbra/store",
        "volumes.0.hosts.dc1",
        "host 'mbox9.dc1' is not in hosts — name the dc1 host that mounts it",
        line_of="hosts: {dc1: mbox9.dc1",
    ),
    Broken(
        "volume host at the other site",
        "hosts: {dc1: mbox1.dc1, dc2: mbox1.dc2}\n    mount_point: /opt/zimbra/store",
        "hosts: {dc1: mbox1.dc2, dc2: mbox1.dc2}\n    mount_point: /opt/zimbra/store",
        "volumes.0.hosts.dc1",
        "host 'mbox1.dc2' is in site 'dc2', not 'dc1' — name a host of dc1",
        line_of="hosts: {dc1: mbox1.dc2",
    ),
    Broken(
        "volume host without the volume's role",
        "hosts: {dc1: mbox1.dc1, dc2: mbox1.dc2}\n    mount_point: /opt/zimbra/store",
        "hosts: {dc1: mta1.dc1, dc2: mbox1.dc2}\n    mount_point: /opt/zimbra/store",
        "volumes.0.hosts.dc1",
        "host 'mta1.dc1' does not have the volume's role 'mailbox' — add the role to the host "
        "or name a mailbox host of dc1",
        line_of="hosts: {dc1: mta1.dc1",
    ),
    Broken(
        "volume hosts missing a mirror site",
        "hosts: {dc1: mbox1.dc1, dc2: mbox1.dc2}\n    mount_point: /opt/zimbra/store",
        "hosts: {dc1: mbox1.dc1}\n    mount_point: /opt/zimbra/store",
        "volumes.0.hosts",
        "no host for site 'dc2' — add hosts.dc2: the host that mounts it there",
        line_of="hosts: {dc1: mbox1.dc1}",
    ),
    Broken(
        "volume host at an unknown site",
        "hosts: {dc1: mbox1.dc1, dc2: mbox1.dc2}\n    mount_point: /opt/zimbra/store",
        "hosts: {dc1: mbox1.dc1, dc2: mbox1.dc2, dc3: mbox1.dc2}\n    mount_point: /opt/zimbra/store",
        "volumes.0.hosts.dc3",
        "site 'dc3' is not defined",
        line_of="hosts: {dc1: mbox1.dc1, dc2: mbox1.dc2, dc3",
    ),
    Broken(
        "semicolon in a volume's name",
        "  - name: mailstore1",
        '  - name: "mailstore1;id"',
        "volumes.0.name",
        "'mailstore1;id' has characters that are not allowed",
    ),
    Broken(
        "Jinja in a zone's name",
        "- name: corp.example.net.",
        "- name: \"{{ lookup('pipe', 'id') }}.\"",
        "dns.zones.0.name",
        "zone name \"{{ lookup('pipe', 'id') }}.\" holds '{', a template brace — a zone name "
        "may hold only letters, digits, '.', '_' and '-'",
    ),
    Broken(
        "line break in a record's name",
        "{name: smtp, type: A",
        '{name: "smtp\\nupdate delete corp.example.net. ANY", type: A',
        "dns.zones.0.records.1.name",
        "record name 'smtp\\nupdate delete corp.example.net. ANY' holds a control character "
        "(U+000A) — remove it",
    ),
    Broken(
        "a wildcard inside a record's name",
        "{name: smtp, type: A",
        "{name: 'mail*', type: A",
        "dns.zones.0.records.1.name",
        "record name 'mail*' puts '@' or '*' elsewhere than alone or as the first label",
    ),
    Broken(
        "line break in a record's value",
        "values: {dc1: 192.0.2.11, dc2: 198.51.100.11}",
        'values: {dc1: 192.0.2.11, dc2: "198.51.100.11\\nsend"}',
        "dns.zones.0.records.1.values.dc2",
        "holds a control character (U+000A) — remove it",
    ),
    Broken(
        "semicolon in a DNS server's address",
        "update_servers: [{address: 192.0.2.53, site: dc1}]",
        'update_servers: [{address: "192.0.2.53;id", site: dc1}]',
        "dns.zones.0.update_servers.0.address",
        "address '192.0.2.53;id' holds ';', a shell metacharacter — an address may hold only",
    ),
    Broken(
        "whitespace in a secret file's path",
        "password: {env: ZIMBRA_LDAP_PASSWORD}",
        'password: {file: "secrets/ldap pw"}',
        "ldap.password.file",
        "path 'secrets/ldap pw' holds whitespace — a path may hold only",
    ),
    Broken(
        "an option for a path",
        "  inventory: hosts.yml",
        "  inventory: -oProxyCommand=id",
        "ansible.inventory",
        "path '-oProxyCommand=id' starts with '-', which a command takes for an option — rename it",
    ),
    Broken(
        "command in a NetApp export",
        'export: "nfs.dc1.example.net:/zstore1",',
        'export: "nfs.dc1.example.net:/zstore1;reboot",',
        "volumes.0.sites.dc1.export",
        "holds ';', a shell metacharacter",
    ),
    Broken(
        "command substitution in an LDAP master's URI",
        '{uri: "ldap://ldap1.dc1.example.net:389", server_id: 1',
        '{uri: "ldap://ldap1.dc1.example.net:389/$(id)", server_id: 1',
        "ldap.masters.0.uri",
        "URL 'ldap://ldap1.dc1.example.net:389/$(id)' holds '$', a shell metacharacter",
    ),
    Broken(
        "a notification target that is both a webhook and a command",
        '{url: "https://hooks.example.net/sitectl", events',
        '{url: "https://hooks.example.net/sitectl", command: /bin/true, events',
        "notifications.targets.0",
        "a notification target needs exactly one of 'url' or 'command'",
    ),
    Broken(
        "a webhook over plain http to another host",
        '{url: "https://hooks.example.net/sitectl"',
        '{url: "http://hooks.example.net/sitectl"',
        "notifications.targets.0.url",
        "http://hooks.example.net/sitectl is plain http to another host: the payload (and a "
        "bearer token) would cross the network in clear — use https://, or set insecure: true",
    ),
    Broken(
        "a notification event that does not exist",
        "events: [step-failed, failed, split-brain]",
        "events: [step-failed, failure, split-brain]",
        "notifications.targets.1.events.1",
        "'failure' is not allowed — use 'started', 'resumed', 'step-failed'",
    ),
    Broken(
        "a bearer token for a command",
        "{command: /usr/local/bin/page-oncall,",
        "{command: /usr/local/bin/page-oncall, token_file: keys/hooks.token,",
        "notifications.targets.1",
        "token_file is sent as a webhook's bearer token and this target is a command — remove it",
    ),
    Broken(
        "a notification command with an open quote",
        "{command: /usr/local/bin/page-oncall,",
        '{command: "/usr/local/bin/page-oncall \'sitectl",',
        "notifications.targets.1",
        "cannot be split into words (No closing quotation) — close its quotes",
    ),
    Broken(
        "backquote in a TSIG key's name",
        "tsig: {name: ddns-corp,",
        'tsig: {name: "ddns-corp`id`",',
        "dns.zones.0.tsig.name",
        "name 'ddns-corp`id`' holds '`', a shell metacharacter",
    ),
]


def _line_number(text: str, fragment: str) -> int:
    index = text.index(fragment)
    return (
        text.count("\n", 0, index)
        + 1
        + fragment[: len(fragment) - len(fragment.lstrip("\n"))].count("\n")
    )


def _write(tmp_path: Path, text: str) -> Path:
    shutil.copy(EXAMPLE / "hosts.yml", tmp_path / "hosts.yml")
    shutil.copytree(EXAMPLE / "pki", tmp_path / "pki", dirs_exist_ok=True)  # zookeeper.tls.ca_file
    # custom_steps.0.playbook
    shutil.copytree(EXAMPLE / "playbooks", tmp_path / "playbooks", dirs_exist_ok=True)
    topo = tmp_path / "topology.yaml"
    topo.write_text(text, encoding="utf-8")
    return topo


@pytest.mark.parametrize("case", CASES + HOSTILE, ids=[c.name for c in CASES + HOSTILE])
def test_broken_file_gives_one_line_naming_file_line_field_and_fix(
    case: Broken, tmp_path: Path
) -> None:
    original = (EXAMPLE / "topology.yaml").read_text(encoding="utf-8")
    assert original.count(case.old) == 1, "the case must change exactly one place"
    broken = original.replace(case.old, case.new)
    topo = _write(tmp_path, broken)

    result = CliRunner().invoke(app, ["validate", "-c", str(topo)])

    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    matching = [
        m
        for m in map(LINE.match, lines)
        if m and case.says in m["message"] and m["field"].startswith(case.field)
    ]
    assert matching, f"no line names {case.field} and says {case.says!r}:\n{result.output}"
    problem = matching[0]
    assert problem["file"] == str(topo)
    expected_line = _line_number(broken, case.line_of or case.new)
    assert int(problem["line"]) == expected_line, result.output
    for line in lines:
        assert LINE.match(line), f"not of the form FILE:LINE: field: what — fix: {line!r}"


def test_inventory_missing_a_host_names_the_group(tmp_path: Path) -> None:
    topo = _write(tmp_path, (EXAMPLE / "topology.yaml").read_text(encoding="utf-8"))
    inventory = (tmp_path / "hosts.yml").read_text().replace("        mbox2.dc2: null\n", "")
    (tmp_path / "hosts.yml").write_text(inventory)

    result = CliRunner().invoke(app, ["validate", "-c", str(topo)])

    assert result.exit_code == 2
    assert "host 'mbox2.dc2' is not in group 'dc2_mailbox' of hosts.yml" in result.output


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    original = (EXAMPLE / "topology.yaml").read_text(encoding="utf-8")
    broken = original.replace("server_id: 4, site: dc2", "server_id: 3, site: dc2").replace(
        "active_site: dc1", "active_site: witness"
    )
    result = CliRunner().invoke(app, ["validate", "-c", str(_write(tmp_path, broken))])
    assert result.exit_code == 2
    assert "server_id 3 is used twice" in result.output
    assert "active_site: the active site is the witness" in result.output


def test_an_insecure_zookeeper_is_accepted_only_when_written(tmp_path: Path) -> None:
    original = (EXAMPLE / "topology.yaml").read_text(encoding="utf-8")
    bare = original.replace(
        '  auth: {credentials: {env: SITECTL_ZK_CREDENTIALS}}  # "user:password"\n', ""
    ).replace("  tls: {ca_file: pki/ca.pem}", "  insecure: true")
    assert CliRunner().invoke(app, ["validate", "-c", str(_write(tmp_path, bare))]).exit_code == 0


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (
            "tsig: {name: ddns-corp, secret: {env: DDNS_CORP_SECRET}}",
            "tsig: {name: ddns-corp, algorithm: hmac-md5, insecure: true, "
            "secret: {env: DDNS_CORP_SECRET}}",
        ),
        ("  starttls: true", "  starttls: false\n  insecure: true"),
        (
            "      url: https://s3.dc1.example.net",
            "      url: http://s3.dc1.example.net\n      insecure: true",
        ),
        (
            '{url: "https://hooks.example.net/sitectl"',
            '{url: "http://hooks.example.net/sitectl", insecure: true',
        ),
        # Loopback crosses no network: plain http is fine there without a word.
        ('{url: "https://hooks.example.net/sitectl"', '{url: "http://127.0.0.1:9999/sitectl"'),
    ],
    ids=["tsig", "ldap", "s3", "webhook", "webhook-loopback"],
)
def test_a_weak_option_is_accepted_only_when_marked_insecure(
    tmp_path: Path, old: str, new: str
) -> None:
    original = (EXAMPLE / "topology.yaml").read_text(encoding="utf-8")
    assert original.count(old) == 1
    marked = _write(tmp_path, original.replace(old, new))
    result = CliRunner().invoke(app, ["validate", "-c", str(marked)])
    assert result.exit_code == 0, result.output


def test_a_tsig_key_file_with_a_weak_algorithm_is_refused(tmp_path: Path) -> None:
    original = (EXAMPLE / "topology.yaml").read_text(encoding="utf-8")
    broken = original.replace(
        "tsig: {name: ddns-corp, secret: {env: DDNS_CORP_SECRET}}", "tsig: {key_file: ddns.key}"
    )
    key = tmp_path / "ddns.key"
    key.write_text('key "ddns-corp" { algorithm hmac-md5; secret "c2VjcmV0"; };\n')
    key.chmod(0o600)
    topo = _write(tmp_path, broken)
    result = CliRunner().invoke(app, ["validate", "-c", str(topo)])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"{topo}:{_line_number(broken, 'key_file: ddns.key')}: dns.zones.0.tsig.key_file: "
        "ddns.key: TSIG algorithm hmac-md5 is weak (RFC 8945 says not to use it) — generate "
        "a new key with `tsig-keygen -a hmac-sha256 NAME`, or set insecure: true on this "
        "tsig while you migrate"
    ], result.output
    allowed = _write(
        tmp_path, broken.replace("{key_file: ddns.key}", "{key_file: ddns.key, insecure: true}")
    )
    assert CliRunner().invoke(app, ["validate", "-c", str(allowed)]).exit_code == 0


def test_example_topology_is_valid() -> None:
    result = CliRunner().invoke(app, ["validate", "-c", str(EXAMPLE / "topology.yaml")])
    assert result.exit_code == 0, result.output
    assert "valid — cluster zimbra-example" in result.output


@pytest.mark.parametrize(
    ("old", "new"),
    [
        # The operator accepts the password in clear on this one probe.
        (
            "{kind: imap, port: 143, tls: starttls, server_name: mail.example.com}",
            "{kind: imap, port: 143, insecure: true}",
        ),
        # No probe user: IMAP probes only ask for CAPABILITY, no credential is sent.
        (
            "  probe_user: {user: sitectl-probe@example.com, password: {env: ZIMBRA_PROBE_PASSWORD}}\n",
            "",
        ),
        # SMTP probes and canaries send no credentials: clear text is allowed.
        (SMTP_25, "{kind: smtp, port: 25}"),
    ],
    ids=["insecure-accepted", "no-probe-user", "smtp-sends-no-login"],
)
def test_clear_text_probes_that_send_no_password_or_say_so_are_valid(
    tmp_path: Path, old: str, new: str
) -> None:
    original = (EXAMPLE / "topology.yaml").read_text(encoding="utf-8")
    assert original.count(old) == 1
    result = CliRunner().invoke(
        app, ["validate", "-c", str(_write(tmp_path, original.replace(old, new)))]
    )
    assert result.exit_code == 0, result.output


def test_config_comes_from_the_environment_when_not_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SITECTL_CONFIG", str(EXAMPLE / "topology.yaml"))
    assert CliRunner().invoke(app, ["validate"]).exit_code == 0
    monkeypatch.delenv("SITECTL_CONFIG")
    result = CliRunner().invoke(app, ["validate"])
    assert result.exit_code == 2
    assert "no topology file given — pass -c FILE or set SITECTL_CONFIG" in result.output


def test_missing_file_is_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["validate", "-c", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert (
        result.output.strip()
        == f"{tmp_path / 'nope.yaml'}:0: (top level): file not found — check the path or $SITECTL_CONFIG"
    )


def test_invalid_file_changes_nothing(tmp_path: Path) -> None:
    topo = _write(tmp_path, "cluster: x\n")
    out = tmp_path / "runbook.md"
    result = CliRunner().invoke(app, ["runbook", "--to", "dc2", "-c", str(topo), "-o", str(out)])
    assert result.exit_code == 2
    assert not out.exists()


@pytest.mark.parametrize(
    ("mode", "who"),
    [(0o644, "everyone"), (0o640, "its group")],
)
def test_a_key_file_others_can_read_is_refused_with_the_chmod_to_run(
    tmp_path: Path, mode: int, who: str
) -> None:
    original = (EXAMPLE / "topology.yaml").read_text(encoding="utf-8")
    broken = original.replace(
        "tsig: {name: ddns-corp, secret: {env: DDNS_CORP_SECRET}}",
        "tsig: {key_file: ddns.key}",
    )
    key = tmp_path / "ddns.key"
    key.write_text('key "ddns-corp" { algorithm hmac-sha256; secret "c2VjcmV0"; };\n')
    key.chmod(mode)
    topo = _write(tmp_path, broken)

    result = CliRunner().invoke(app, ["validate", "-c", str(topo)])

    assert result.exit_code == 2
    problems = [line for line in result.output.splitlines() if "ddns.key" in line]
    assert problems == [
        f"{topo}:{_line_number(broken, 'key_file: ddns.key')}: dns.zones.0.tsig.key_file: "
        f"secret file ddns.key is readable or writable by {who} (mode {mode:04o}) "
        "— chmod 600 ddns.key"
    ], result.output

    key.chmod(0o600)
    assert CliRunner().invoke(app, ["validate", "-c", str(topo)]).exit_code == 0


# What each verb that reads the topology needs besides -c to get as far as reading it. A
# verb added later without an entry here fails the coverage test below.
VERB_ARGS: dict[str, list[str]] = {
    "validate": [],
    "plan": ["--to", "dc2"],
    "runbook": ["--to", "dc2", "-o", "runbook.md"],
    "inventory": ["-o", "hosts-out.yml"],
    "switchover": ["--to", "dc2", "--yes"],
    "failover": ["--to", "dc2", "--yes"],
    "reprotect": ["--yes"],
    "resume": [],
    "attach": [],
    "abort": [],
    "approve": ["-r", "test"],
    "reject": ["-r", "test"],
    "skip": ["20261206T220000Z-ab12", "custom/x", "-r", "test", "--yes"],
    "escalate": ["-r", "test", "--yes"],
    "status": [],
    "history": [],
    "health": [],
    "readiness": ["--to", "dc2"],
    "evaluate": ["--to", "dc2"],
    "pause": ["--reason", "test"],
    "unpause": [],
    "ack": [],
    "drill": ["--to", "dc2", "--yes", "--report-dir", "drills"],
    "drill history": [],
    "controller run": ["--site", "dc1"],
    "ticket show": [],
    "ticket check": ["dc1"],
    "ticket grant": ["dc1", "--force", "test"],
    "deadman run": [
        "--site",
        "dc1",
        "--address",
        "10.1.0.5",
        "--state-file",
        "/nonexistent/memory.json",
    ],
}
TOPOLOGY_VERBS = [v for v in verbs() if v.runs_something and "--config" in v.options()]

# Invalid in two ways: a secret every reader could take (found only by the file checks),
# and a cross-reference (found before any file is looked at).
INVALID = {
    "world-readable key": (
        "tsig: {name: ddns-corp, secret: {env: DDNS_CORP_SECRET}}",
        "tsig: {key_file: ddns.key}",
    ),
    "active site is the witness": ("active_site: dc1", "active_site: witness"),
    "shell in a mount point": (
        "mbox1.dc2}\n    mount_point: /opt/zimbra/store",
        'mbox1.dc2}\n    mount_point: "/opt/zimbra/store;touch /tmp/sitectl-hostile"',
    ),
}


def test_every_verb_that_reads_the_topology_is_covered() -> None:
    assert {v.name for v in TOPOLOGY_VERBS} == set(VERB_ARGS)


def _tree(root: Path) -> dict[str, tuple[int, bytes]]:
    return {
        str(p.relative_to(root)): (p.stat().st_mode, p.read_bytes() if p.is_file() else b"")
        for p in sorted(root.rglob("*"))
    }


@pytest.mark.parametrize("broken", INVALID, ids=list(INVALID))
@pytest.mark.parametrize("verb", sorted(VERB_ARGS))
def test_every_verb_refuses_an_invalid_topology_as_validate_does(
    verb: str, broken: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, new = INVALID[broken]
    original = (EXAMPLE / "topology.yaml").read_text(encoding="utf-8")
    assert original.count(old) == 1
    key = tmp_path / "ddns.key"
    key.write_text('key "ddns-corp" { algorithm hmac-sha256; secret "c2VjcmV0"; };\n')
    key.chmod(0o644)
    topo = _write(tmp_path, original.replace(old, new))
    monkeypatch.chdir(tmp_path)  # relative outputs (-o, --report-dir) land in tmp_path
    expected = CliRunner().invoke(app, ["validate", "-c", str(topo)])
    assert expected.exit_code == 2 and expected.stderr.strip(), expected.output
    before = _tree(tmp_path)

    result = CliRunner().invoke(app, [*verb.split(), "-c", str(topo), *VERB_ARGS[verb]])

    assert result.exit_code == 2, result.output
    assert result.stderr == expected.stderr
    assert result.stdout == ""
    assert _tree(tmp_path) == before, "an invalid topology must change nothing"


def test_a_topology_anyone_may_write_is_refused_in_one_line(tmp_path: Path) -> None:
    topo = _write(tmp_path, (EXAMPLE / "topology.yaml").read_text(encoding="utf-8"))
    topo.chmod(0o666)

    result = CliRunner().invoke(app, ["validate", "-c", str(topo)])

    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"{topo}:0: (top level): the topology file is writable by everyone (mode 0666) "
        f"— chmod o-w {topo}"
    )
    topo.chmod(0o664)  # a group may write it: its members are trusted as the owner is
    assert CliRunner().invoke(app, ["validate", "-c", str(topo)]).exit_code == 0


@pytest.mark.parametrize("verb", sorted(VERB_ARGS))
def test_every_verb_refuses_a_world_writable_topology(
    verb: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    topo = _write(tmp_path, (EXAMPLE / "topology.yaml").read_text(encoding="utf-8"))
    topo.chmod(0o646)
    monkeypatch.chdir(tmp_path)
    before = _tree(tmp_path)

    result = CliRunner().invoke(app, [*verb.split(), "-c", str(topo), *VERB_ARGS[verb]])

    assert result.exit_code == 2, result.output
    assert result.stderr.strip().endswith(f"— chmod o-w {topo}"), result.output
    assert len(result.stderr.strip().splitlines()) == 1
    assert _tree(tmp_path) == before


@pytest.mark.parametrize(
    ("text", "data"),
    [
        # YAML 1.1 would read the key `on` as true: a custom step's `on: proxy` must stay.
        ("on: proxy", {"on": "proxy"}),
        ("moves: false", {"moves": False}),
        ("insecure: True", {"insecure": True}),
        # Not booleans in YAML 1.2; pydantic still takes them for a boolean field.
        ("a: yes\nb: off", {"a": "yes", "b": "off"}),
    ],
)
def test_yaml_reads_only_true_and_false_as_booleans(text: str, data: dict[str, object]) -> None:
    assert parse(text).data == data


@pytest.mark.parametrize(
    ("suffix", "dn"),
    [
        ("dc=example,dc=com", "cn=sitectl-canary,dc=example,dc=com"),
        # Zimbra's main database: the empty DN, whose children are top-level entries.
        ("", "cn=sitectl-canary"),
    ],
)
def test_sitectl_entries_sit_right_under_the_suffix(suffix: str, dn: str) -> None:
    ldap = load_topology(EXAMPLE / "topology.yaml").ldap
    assert ldap is not None
    assert ldap.model_copy(update={"suffix": suffix}).child_dn("cn=sitectl-canary") == dn
