"""The topology file as frozen, typed objects (pydantic v2).

Only shape and single-field rules live here; rules that relate two parts of the file
(a record names a site that exists, a mirror's destination is a datacenter) live in
`references.py`, and checks that touch the filesystem live in `files.py`, so each can
be tested on its own.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.json_schema import WithJsonSchema

# sitectl's own playbooks, installed with it as package data (orchestrator/playbooks):
# what `ansible.playbook_dir` defaults to, so an installed sitectl needs no checkout.
INSTALLED_PLAYBOOKS = Path(__file__).resolve().parents[1] / "playbooks"

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_NAME = r"^[a-z][a-z0-9-]{0,30}$"


_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


def fill(template: str, **values: str) -> str:
    """Replace {name} placeholders with their value, shell-quoted, and nothing else:
    operators' commands may hold Jinja ({{ var }}) for Ansible or shell braces, which
    str.format would mangle or reject.

    The template is the operator's shell on purpose; the values are sitectl's (a volume,
    a site, a mount point, a zone, an address) and stay one word whatever they hold.
    One pass: a value that looks like a placeholder is not filled in again. A value that
    needs no quoting (as `validate` makes every one) is written as it is, so write
    {mount_point}, not "{mount_point}"."""
    return _PLACEHOLDER.sub(
        lambda m: shlex.quote(values[m[1]]) if m[1] in values else m[0], template
    )


def fill_for_ansible(template: str, variable: str, names: Iterable[str]) -> str:
    """The template with each {name} of `names` replaced by a reference to
    `variable`[name], shell-quoted by Ansible's `quote` filter (one pass).

    For a command Ansible templates (the operator's `{{ host_var }}` are meant for it):
    sitectl passes the values themselves in `variable`, marked unsafe, so a value is
    never templated, however it reads, and stays one shell word."""
    wanted = set(names)
    return _PLACEHOLDER.sub(
        lambda m: f"{{{{ {variable}.{m[1]} | quote }}}}" if m[1] in wanted else m[0], template
    )


# What a name, an address or a path written in the topology may hold. Each reaches
# command lines (the playbooks' shell tasks, the runbook's commands, the dead-man's
# fence commands), Ansible's templating and host patterns: a character a shell or Jinja
# would read ($, `, ;, |, &, <, >, quotes, spaces, braces...) or a control character
# (a newline ends a command, or an nsupdate line) is refused in the topology itself.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_SHELL_META = set(" \t|&;<>()$`\\\"'*?[]#~!{}^")
_KINDS: dict[str, tuple[str, str]] = {
    # kind: (allowed characters as a regex class body, the same in words)
    "name": (r"A-Za-z0-9_.-", "letters, digits, '.', '_' and '-'"),
    "role name": (r"A-Za-z0-9_-", "letters, digits, '_' and '-'"),
    "service name": (r"A-Za-z0-9_.@:-", "letters, digits, '.', '_', '@', ':' and '-'"),
    "address": (r"A-Za-z0-9_.:%-", "letters, digits, '.', ':', '_', '%' and '-'"),
    "path": (r"A-Za-z0-9_.,:@%+=/-", "letters, digits and . _ - / + , : @ % ="),
    "URL": (r"A-Za-z0-9_.,:@%+=/-", "letters, digits and . _ - / + , : @ % ="),
    "zone name": (r"A-Za-z0-9_.-", "letters, digits, '.', '_' and '-'"),
    "record name": (r"A-Za-z0-9_.*@-", "letters, digits, '.', '_' and '-' ('@' alone, '*.' first)"),
    "host name": (r"A-Za-z0-9_.-", "letters, digits, '.', '_' and '-', a letter or digit first"),
    "identifier": (r"A-Za-z0-9_./:-", "letters, digits, '.', '/', ':', '_' and '-'"),
}


def _describe_char(char: str) -> str:
    if char in "{}":
        return f"{char!r}, a template brace"
    if char.isspace():
        return "whitespace"
    if char in _SHELL_META:
        return f"{char!r}, a shell metacharacter"
    return f"{char!r}"


def _no_control(value: str, kind: str) -> str:
    found = _CONTROL.search(value)
    if found:
        raise ValueError(
            f"{kind} {value!r} holds a control character (U+{ord(found[0]):04X}) — remove it"
        )
    return value


def _plain(kind: str) -> AfterValidator:
    """A validator refusing in a value of `kind` what a shell or Ansible would read."""
    body, words = _KINDS[kind]
    bad = re.compile(f"[^{body}]")

    def check(value: str) -> str:
        _no_control(value, kind)
        found = bad.search(value)
        if found:
            article = "an" if kind[0] in "aeiouAEIOU" else "a"
            raise ValueError(
                f"{kind} {value!r} holds {_describe_char(found[0])} — "
                f"{article} {kind} may hold only {words}"
            )
        if value.startswith("-"):
            raise ValueError(
                f"{kind} {value!r} starts with '-', which a command takes for an option — rename it"
            )
        if kind == "host name" and not value[:1].isalnum():
            raise ValueError(f"host name {value!r} must start with a letter or digit — rename it")
        return value

    return AfterValidator(check)


def _record_name(value: str) -> str:
    rest = "" if value in ("@", "*") else value.removeprefix("*.")
    if "@" in rest or "*" in rest:
        raise ValueError(
            f"record name {value!r} puts '@' or '*' elsewhere than alone or as the first "
            "label — write '@' for the apex, '*.name' or '*' for a wildcard"
        )
    return value


def _text(kind: str) -> AfterValidator:
    return AfterValidator(lambda value: _no_control(value, kind))


Name = Annotated[str, _plain("name")]
HostName = Annotated[str, _plain("host name")]
RoleName = Annotated[str, _plain("role name")]
ServiceName = Annotated[str, _plain("service name")]
Address = Annotated[str, _plain("address")]
PathText = Annotated[str, _plain("path")]
Url = Annotated[str, _plain("URL")]
# Quoted wherever a command holds it (DNs hold spaces; a login may hold anything).
Text = Annotated[str, _text("value")]
RecordName = Annotated[str, _plain("record name"), AfterValidator(_record_name)]


def _seconds(value: object) -> object:
    """Accept 30, 30.5, "30s", "5m", "1h": operators write durations both ways."""
    if isinstance(value, str):
        match = _DURATION.match(value)
        if not match:
            raise ValueError(
                f"{value!r} is not a duration — write seconds (30) or a number with "
                "a unit: 500ms, 30s, 5m, 1h, 1d"
            )
        return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    return value


# What an editor is told a duration may be: seconds, or a number with a unit.
_DURATION_SCHEMA = WithJsonSchema(
    {
        "anyOf": [
            {"type": "number", "minimum": 0},
            {"type": "string", "pattern": _DURATION.pattern},
        ],
        "description": "Seconds (30) or a number with a unit: 500ms, 30s, 5m, 1h, 1d.",
    }
)
Seconds = Annotated[float, BeforeValidator(_seconds), Field(ge=0), _DURATION_SCHEMA]
SITE_NAME = re.compile(_NAME)
SiteName = Annotated[str, Field(pattern=_NAME)]


# The default ticket ttl is the ZooKeeper session timeout plus this.
TICKET_TTL_ABOVE_SESSION = 4.0


class Frozen(BaseModel):
    # extra="forbid" turns a misspelt field into an error instead of a silent default.
    # The string under a field is its description, in the JSON Schema editors read and in
    # docs/topology-reference.md: config/reference.py reads those strings when it writes
    # them, not every import (each sitectl command and every application start gate
    # imports this module: reading each class's source here cost ≈ 0.1 s). Nor is a
    # model's validator built before its first use (defer_build).
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


class SecretRef(Frozen):
    """A secret is named, never inlined: a file path (relative to the topology file) or
    an environment variable."""

    file: PathText | None = None
    env: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        if (self.file is None) == (self.env is None):
            raise ValueError(
                "a secret needs exactly one of 'file' or 'env' — "
                "write {file: path/to/secret} or {env: VARIABLE_NAME}"
            )
        if self.env is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.env):
            raise ValueError(f"{self.env!r} is not an environment variable name")
        return self

    def describe(self) -> str:
        return f"file {self.file}" if self.file else f"${self.env}"


class Site(Frozen):
    kind: Literal["datacenter", "witness"]
    """A datacenter can be active; the witness only votes (its
    controller and ZooKeeper node break ties)."""
    description: str = ""


class Host(Frozen):
    name: HostName
    """The host's name, as in the Ansible inventory."""
    site: SiteName
    """The site it is in."""
    roles: tuple[RoleName, ...] = Field(min_length=1)
    """Its roles (keys of roles)."""
    address: Address
    """Its address: what probes and dead-man feeds reach."""
    vars: dict[str, str | int | bool] = Field(default_factory=dict)
    """Extra host vars handed to Ansible as they are (ansible_connection, paths...)."""


class RoleCommands(Frozen):
    """How to control a role's services where there is no init system to ask."""

    start: str
    stop: str
    status: str


# How a mail probe speaks TLS: implicit on connecting (IMAPS, SMTPS) or STARTTLS on the
# protocol's own port. Unset: in clear.
MAIL_TLS = {"imap": ("imaps", "starttls"), "smtp": ("smtps", "starttls")}


class Probe(Frozen):
    kind: Literal["smtp", "imap", "tcp", "http"]
    port: int = Field(ge=1, le=65535)
    tls: Literal["imaps", "smtps", "starttls"] | None = None
    """TLS for smtp and imap probes, the server's certificate always verified: against
    ca_file (relative to the topology file) if given, else this machine's trust store,
    for server_name if given ({host}: the host's name in this file), else the address
    probed (an IP address must then be in the certificate's subjectAltName).
    """
    ca_file: str | None = None
    server_name: Annotated[str, Field(min_length=1)] | None = None
    insecure: bool = False
    """Accepts what validate refuses by default: the probe user's password sent in clear
    (an imap probe without tls, when application.probe_user is set).
    """

    @model_validator(mode="after")
    def _tls_fits_kind(self) -> Probe:
        allowed = MAIL_TLS.get(self.kind, ())
        if self.tls is not None and self.tls not in allowed:
            fix = (
                f"use tls: {' or '.join(allowed)}"
                if allowed
                else "remove it (tls is for smtp and imap probes)"
            )
            raise ValueError(f"tls {self.tls!r} does not fit a {self.kind} probe — {fix}")
        if self.tls is None and (self.ca_file is not None or self.server_name is not None):
            fix = f"add tls: {' or '.join(allowed)}" if allowed else "remove them"
            raise ValueError(
                f"ca_file and server_name verify a TLS certificate, and this {self.kind} "
                f"probe speaks no TLS — {fix}"
            )
        return self

    @property
    def sends_login(self) -> bool:
        """Whether sitectl logs in over this probe when the topology has a probe user
        (the IMAP probes, the canary's read)."""
        return self.kind == "imap"


class Role(Frozen):
    start_order: int = Field(ge=0)
    """Roles with the same start_order start together; lower first. Stop runs in reverse."""
    services: tuple[ServiceName, ...] = Field(min_length=1)
    """Its services (systemd units unless commands says how to run them), started in this
    order."""
    moves: bool = True
    """False for roles that run on both sites at all times (LDAP multi-master): they are
    verified on the new site but never stopped on the old one.
    """
    commands: RoleCommands | None = None
    """start, stop and status shell commands, for roles not run as systemd units (Zimbra's
    zmcontrol)."""
    probes: tuple[Probe, ...] = ()
    """Protocol probes of the role's hosts: what the controllers and health checks see."""


class Mirror(Frozen):
    source: SiteName
    """The site whose array is written: the active one, as set up."""
    destination: SiteName
    """The site whose array receives the copy. sitectl reads the
    real direction before acting; reprotect reverses it."""


class _VolumeBase(Frozen):
    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]*$")]
    """The volume's name, as plans and the runbook name it."""
    role: RoleName
    """the hosts of this role on the active site mount the volume"""
    mount_point: PathText
    """Where its hosts mount it (absolute)."""
    mirror: Mirror
    """Which way it is mirrored now: source (the active site) to destination."""
    hosts: dict[SiteName, HostName] = Field(default_factory=dict)
    """Per site, the one host of `role` there that mounts it (a mailbox server's own
    store): unset, every host of the role at that site mounts it.
    """

    @field_validator("mount_point")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError(f"{value!r} is relative — a mount point must be an absolute path")
        return value

    def mount_point_at(self, site: str) -> str:
        settings = getattr(self, "sites", {}).get(site)
        return getattr(settings, "mount_point", None) or self.mount_point


class BtrfsSite(Frozen):
    pool: PathText
    """The state directory of the lab's btrfs driver for this site (image, loop device,
    snapshots); the driver reads mirror state and lag from it.
    """
    mount_point: PathText | None = None
    """Where this site mounts the volume, when it differs from the volume's mount_point
    (the lab's two "sites" share one machine, so their paths must differ).
    """

    @field_validator("mount_point")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("/"):
            raise ValueError(f"{value!r} is relative — a mount point must be an absolute path")
        return value


class BtrfsVolume(_VolumeBase):
    driver: Literal["btrfs"]
    subvolume: Name = "data"
    mirror_config: PathText | None = None
    """The relationship's config file (what `sitectl lab up` writes): its state file, pools
    and service paths. The driver reads mirror state and lag through it.
    """
    sites: dict[SiteName, BtrfsSite]


class NetappSite(Frozen):
    cluster: Address
    """ONTAP cluster management address"""
    svm: Name
    volume: Name
    export: PathText  # what the hosts mount, e.g. "nfs-dc1:/zstore"
    credentials: SecretRef


class NetappVolume(_VolumeBase):
    driver: Literal["netapp"]
    sites: dict[SiteName, NetappSite]


class CommandVolume(_VolumeBase):
    """Any other storage: the operator supplies one command per action.

    Commands are run through Ansible on the volume's hosts with {volume}, {site} and
    {mount_point} substituted.
    """

    driver: Literal["command"]
    commands: dict[
        Literal["status", "update", "quiesce", "break", "resync", "reverse", "mount", "unmount"],
        str,
    ]

    @field_validator("commands")
    @classmethod
    def _needs_core_actions(cls, value: dict[str, str]) -> dict[str, str]:
        missing = [a for a in ("status", "break", "mount", "unmount") if a not in value]
        if missing:
            raise ValueError(
                f"missing commands for {', '.join(missing)} — a command volume needs at "
                "least status, break, mount and unmount"
            )
        return value


Volume = Annotated[BtrfsVolume | NetappVolume | CommandVolume, Field(discriminator="driver")]
# Each kind's `driver` literal, e.g. "btrfs".
VOLUME_DRIVERS = tuple(
    get_args(kind.model_fields["driver"].annotation)[0]
    for kind in (BtrfsVolume, NetappVolume, CommandVolume)
)


class Tsig(Frozen):
    """Either the file tsig-keygen writes (BIND syntax: it names key and algorithm), or a
    key name with its base64 secret held elsewhere (a vault-fed environment variable)."""

    key_file: PathText | None = None
    name: Name | None = None
    algorithm: Literal[
        "hmac-sha256", "hmac-sha384", "hmac-sha512", "hmac-sha224", "hmac-sha1", "hmac-md5"
    ] = "hmac-sha256"
    secret: SecretRef | None = None
    insecure: bool = False
    """Written explicitly to keep a weak algorithm (hmac-md5, hmac-sha1) while migrating."""

    @model_validator(mode="after")
    def _one_form(self) -> Tsig:
        if (self.key_file is None) == (self.name is None or self.secret is None):
            raise ValueError(
                "tsig needs either key_file, or name and secret — write "
                "{key_file: keys/ddns.key} or {name: ddns-key, secret: {env: DDNS_SECRET}}"
            )
        return self


class DnsServer(Frozen):
    address: Address
    port: int = Field(default=53, ge=1, le=65535)
    site: SiteName | None = None
    """The site the server lives in: a failover stops expecting answers from a lost site."""

    def __str__(self) -> str:
        return f"{self.address}:{self.port}"


def _server(value: object) -> object:
    """Accept "10.0.0.53" and "10.0.0.53:5353" as well as the mapping form."""
    if isinstance(value, str):
        host, sep, port = value.rpartition(":")
        if sep and port.isdigit() and "]" not in port:
            return {"address": host, "port": int(port)}
        return {"address": value}
    return value


# An editor is told of both forms.
Server = Annotated[DnsServer, BeforeValidator(_server, json_schema_input_type=str | DnsServer)]


def parse_server(text: str) -> DnsServer:
    """ "10.0.0.53:5353" → DnsServer, the form plans carry servers in."""
    return DnsServer.model_validate(_server(text))


class DnsRecord(Frozen):
    name: RecordName  # relative to the zone, or "@" for the apex
    type: Literal["A", "AAAA", "CNAME", "TXT"] = "A"
    ttl: int = Field(default=60, ge=0)
    # Written into nsupdate's input line by line: a line break would start another
    # command (Text refuses control characters); TXT values may hold spaces.
    values: dict[SiteName, Text] = Field(min_length=1)
    """The record's value per site: what it holds while that site is active."""


class DnsPromotion(Frozen):
    """How a site's server becomes the zone's primary, or goes back to secondary.

    Commands run through Ansible on `host` (a topology host in that site). In
    `demote_command`, {primary} is replaced by the address of the primary to follow.
    """

    server: Server
    host: HostName
    promote_command: str
    demote_command: str


class Route53(Frozen):
    hosted_zone_id: Annotated[str, _plain("identifier")]
    """Z0EXAMPLE or /hostedzone/Z0EXAMPLE"""
    credentials_profile: Name | None = None
    access_key: SecretRef | None = None
    secret_key: SecretRef | None = None
    endpoint_url: Url | None = None


class DnsZone(Frozen):
    name: Annotated[str, _plain("zone name")]
    """The zone, absolute (ending in a dot)."""
    scope: Literal["internal", "external"]
    """internal (the sites' own DNS) or external (what the world sees)."""
    provider: Literal["rfc2136", "route53"]
    """rfc2136 (dynamic updates signed with TSIG) or route53."""
    update_servers: tuple[Server, ...] = ()
    """The primaries that take the signed updates (rfc2136)."""
    verify_servers: tuple[Server, ...] = Field(min_length=1)
    """The servers asked after an update, each with its site: every one must answer the new
    value."""
    tsig: Tsig | None = None
    route53: Route53 | None = None
    records: tuple[DnsRecord, ...] = Field(min_length=1)
    """The records a move repoints, each with its value per site."""
    promote: dict[SiteName, DnsPromotion] = Field(default_factory=dict)
    """Per datacenter: the server to promote to primary when the primary's site is lost
    (rfc2136 zones whose primary lives in one datacenter).
    """

    @field_validator("name")
    @classmethod
    def _fqdn(cls, value: str) -> str:
        if not value.endswith("."):
            raise ValueError(f"{value!r} is not absolute — end the zone name with a dot")
        return value

    @model_validator(mode="after")
    def _provider_settings(self) -> DnsZone:
        if self.provider == "rfc2136":
            if not self.update_servers:
                raise ValueError(
                    "rfc2136 zone without update_servers — list the primaries that take "
                    "dynamic updates"
                )
            if self.tsig is None:
                raise ValueError(
                    "rfc2136 zone without tsig — updates must be signed: add "
                    "tsig: {key_file: path/to/key}"
                )
        if self.provider == "route53" and self.route53 is None:
            raise ValueError("route53 zone without a route53 section — add hosted_zone_id")
        return self

    def fqdn(self, record: DnsRecord) -> str:
        return self.name if record.name == "@" else f"{record.name}.{self.name}"


class Dns(Frozen):
    zones: tuple[DnsZone, ...] = Field(min_length=1)


class LdapMaster(Frozen):
    uri: Annotated[Url, Field(pattern=r"^ldaps?://")]
    server_id: int = Field(ge=1, le=4095)
    """OpenLDAP serverID range"""
    site: SiteName
    bind_dn: Text | None = None
    """This master's bind DN; unset: the section's."""
    password: SecretRef | None = None
    """This master's bind password; unset: the section's."""
    starttls: bool | None = None
    """Unset: the section's."""
    ca_file: PathText | None = None
    """Unset: the section's."""
    insecure: bool | None = None
    """Unset: the section's."""


class Ldap(Frozen):
    suffix: Text
    """The replicated database's suffix, whose entry holds contextCSN: may be the empty DN
    (Zimbra's main database is olcSuffix "", holding cn=zimbra and the domains).
    """
    bind_dn: Text
    """The DN sitectl binds as to read contextCSN and write its canaries."""
    password: SecretRef
    """Its password."""
    starttls: bool = True
    ca_file: PathText | None = None
    insecure: bool = False
    """Written explicitly to bind in clear (ldap:// without StartTLS)."""
    timeout: Seconds = 3.0
    masters: tuple[LdapMaster, ...] = Field(min_length=2)
    """Every multi-master server, with its serverID and site."""

    def child_dn(self, rdn: str) -> str:
        """The DN of sitectl's own entry `rdn` right under the suffix (under the empty
        suffix, `rdn` alone: "cn=x," is no DN)."""
        return f"{rdn},{self.suffix}" if self.suffix else rdn


class S3Endpoint(Frozen):
    site: SiteName
    """The datacenter this endpoint serves."""
    url: Annotated[Url, Field(pattern=r"^https?://")]
    """The endpoint's URL."""
    region: Name = "us-east-1"
    access_key: SecretRef
    secret_key: SecretRef
    ca_file: PathText | None = None
    insecure: bool = False
    """Written explicitly to sign requests over plain http:// (a lab's moto server)."""


class Bucket(Frozen):
    name: Name
    """The bucket, the same name at each endpoint."""
    versioned: bool = True
    """Whether versioning is (and must stay) on: replication needs it."""
    replicated: bool = True
    """Whether a replication rule carries it to the other site."""


class ObjectStore(Frozen):
    endpoints: tuple[S3Endpoint, ...] = Field(min_length=1)
    buckets: tuple[Bucket, ...] = Field(min_length=1)
    replication_role: Text = "arn:aws:iam::000000000000:role/sitectl-replication"
    """The IAM role the store replicates with (S3 CRR needs one); reprotect puts the
    reversed rule with it.
    """


class ZkHost(Frozen):
    address: Address
    """host:port"""
    site: SiteName


class ZkAuth(Frozen):
    scheme: Literal["digest"] = "digest"
    credentials: SecretRef  # "user:password"


class ZkTls(Frozen):
    """TLS to the ensemble's secureClientPort: the server's certificate is verified
    against `ca_file`; a client certificate is sent when the ensemble asks for one."""

    ca_file: PathText
    cert_file: PathText | None = None
    key_file: PathText | None = None


class ZooKeeper(Frozen):
    hosts: tuple[ZkHost, ...] = Field(min_length=1)
    """The ensemble's nodes: one per site (the witness included), so two sites make a
    quorum."""
    chroot: Annotated[PathText, Field(pattern=r"^/")] = "/sitectl"
    """The znode under which sitectl keeps every cluster's nodes."""
    session_timeout: Seconds = 10.0
    """The client session's timeout: a leader cut off loses its lease after it."""
    auth: ZkAuth | None = None
    """sitectl's own digest identity; every znode it creates carries an ACL for it alone."""
    tls: ZkTls | None = None
    """TLS to the ensemble's secure client port."""
    controller_ids: dict[SiteName, str] = {}
    """Each site's controller identity as ZooKeeper names it,
    "user:base64(sha1(user:password))" (`sitectl controller identity` prints it): only
    that identity may write the site's vantage report. The password stays on that site's
    controller host (--identity).
    """
    insecure: bool = False
    """Written explicitly to run without auth, TLS or controller identities (a private test
    ensemble).
    """

    def connect_string(self) -> str:
        return ",".join(h.address for h in self.hosts)


class RpoLimits(Frozen):
    volume: Seconds = 300.0
    """The most mirror lag a move may lose on a volume."""
    ldap: Seconds = 60.0
    """The most LDAP replication lag (contextCSN) a move may lose."""
    object_store: Seconds = 900.0
    """The most object-store replication lag (the worst replicated
    bucket's) a move may lose."""


class DrillTargets(Frozen):
    """What `sitectl drill` holds each move to; `--targets` overrides either figure and
    a figure named in neither place falls back to the drill's default (RTO 5 min, RPO 0)."""

    # Plain floats (no ge=0) so the validator below explains a bad figure in words.
    rto: Annotated[float, BeforeValidator(_seconds), _DURATION_SCHEMA] | None = None
    """The longest outage (write probe) a drill's move may show, e.g. 2m."""
    rpo: Annotated[float, BeforeValidator(_seconds), _DURATION_SCHEMA] | None = None
    """The span of writes a drill's move may lose (canaries); 0s: none."""

    @field_validator("rto")
    @classmethod
    def _rto_positive(cls, value: float | None) -> float | None:
        if value is not None and value <= 0:
            raise ValueError(
                f"an RTO of {value:g} s cannot be met — give the longest outage a drill may "
                "show, e.g. rto: 5m"
            )
        return value

    @field_validator("rpo")
    @classmethod
    def _rpo_not_negative(cls, value: float | None) -> float | None:
        # 0 is a real target: a switchover promises that no write is lost.
        if value is not None and value < 0:
            raise ValueError(
                f"an RPO of {value:g} s is negative — give the span of writes a drill may "
                "lose, 0s for none"
            )
        return value


class Policy(Frozen):
    rpo_limits: RpoLimits = RpoLimits()
    """The most data (in seconds of writes) the readiness gate lets a move lose, per
    replicator."""
    probe_interval: Seconds = 5.0
    """How often each controller probes the active site."""
    consecutive_failures: int = Field(default=3, ge=1)
    """How many probes in a row a majority of controllers must see fail before the active
    site counts as down."""
    automatic_promotion: bool = False
    """Whether the leading controller fails over on its own once a majority sees the active
    site down."""
    block_period: Seconds = 3600.0
    """After an automatic failover, how long automation stays blocked unless `sitectl ack`."""
    step_timeout: Seconds = 300.0
    """The longest any one step may take."""
    unreachable_timeout: Seconds = 10.0
    """bound on old-site steps in a failover"""
    pre_sync_above: Seconds | None = 30.0
    """A switchover first sends a volume's changes while the application still serves
    when its mirror lags by more than this, so the transfer after the stop, inside the
    downtime, carries only the last seconds; null: never; 0: always."""
    drill_targets: DrillTargets = DrillTargets()
    """The RTO and RPO `sitectl drill` holds each move to."""
    ticket_ttl: Seconds | None = None
    """How long the site ticket lives without a renewal. Unset: zookeeper.session_timeout
    + 4 s. ticket_ttl + clock_drift must exceed fence_after by the fence's own duration.
    """
    # Both cross-checked in references.py.
    fence_after: Seconds | None = None
    """How long the ticket holder's site goes unrenewed before its dead-man agents fence
    it; below ticket_ttl, above probe_interval. Unset: zookeeper.session_timeout."""
    clock_drift: Seconds = 2.0
    """How far apart two machines' clocks may be: added to every wait for a ticket."""
    salvage_snapshots_kept: int = Field(default=3, ge=1)
    """Salvage snapshots (reprotect) kept per volume and site, the newest; older go."""
    artifacts_kept: int = Field(default=20, ge=1)
    """Operations whose Ansible artifacts (<local_state>/artifacts/<operation>) are kept,
    the newest; older ones are removed as each operation starts.
    """
    approve_automatic_failover: bool = False
    """An automatic failover waits for a person's `sitectl approve` before its first
    change.
    """
    automatic_approval_timeout: Seconds | None = None
    """How long an automatic failover's approval waits; unset: until answered."""
    automatic_approval_on_timeout: Literal["reject", "approve"] = "reject"
    """What an automatic failover's approval does once its timeout passed."""
    evaluate_every: Seconds = 1800.0
    """How often the leading controller evaluates the move to the standby (`sitectl
    evaluate`, read-only); also whenever the topology file changes.
    """
    health_every: Seconds = 60.0
    """How often each controller runs `sitectl health`'s read-only checks for its /metrics
    and status page (replication lag, DNS agreement, parity), on a thread the decision
    loop never waits for; every 5 s while someone looks at the status page."""

    @field_validator("evaluate_every", "health_every")
    @classmethod
    def _sometimes(cls, value: float, info: ValidationInfo) -> float:
        if value < 1:
            raise ValueError(
                f"{info.field_name} {value:g} s would {_WITHOUT_PAUSE[info.field_name]} "
                "without a pause — give an interval of at least a second, e.g. "
                f"{_EXAMPLE_EVERY[info.field_name]}"
            )
        return value


# What a loop's interval under a second would do, and a sensible one (Policy._sometimes).
_WITHOUT_PAUSE = {
    "evaluate_every": "run Ansible on every host",
    "health_every": "sweep every server",
}
_EXAMPLE_EVERY = {"evaluate_every": "30m", "health_every": "60s"}


class Deadman(Frozen):
    """The dead-man agents that fence a site its controller can no longer vouch for.

    One agent per host (per site address in the lab) listens on `port` for the signed
    feeds of its site's controller (`key`, shared by both)."""

    port: int = Field(default=9401, ge=1, le=65535)
    """The UDP port each agent listens on for its controller's feeds."""
    key: SecretRef
    """The key feeds are signed with (HMAC), shared by the controllers and the agents."""
    dns_fence_command: str | None = None
    """Run on a fenced site's DNS host for each zone it serves, with {zone} and {primary}
    (the primary to follow once reachable): it must drop the site's copy of the zone.
    """
    dns_restore_command: str | None = None
    """Run on the same DNS host for each zone, with {zone}, when the operator restores a
    fenced lone survivor (`ticket grant --force --no-quorum`): it takes the zone back as
    its primary.
    """


class ControllerHttp(Frozen):
    """The controller's HTTP endpoint (`sitectl controller run --listen ADDR:PORT`).

    /status names hosts and operations, so it is served only to a client that presents
    the bearer token held in `token_file` (relative to the topology file, mode 0600,
    checked each time it is read; `--token-file` overrides it); `token_for` may add
    /metrics and /healthz. Each connection has `read_timeout` to send its whole request
    and at most `max_connections` are open at once: an idle connection holds no thread."""

    token_file: str | None = None
    token_for: tuple[Literal["status", "metrics", "healthz"], ...] = ("status",)
    read_timeout: Seconds = 5.0
    max_connections: int = Field(default=64, ge=4, le=4096)

    @field_validator("token_for")
    @classmethod
    def _status_always(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if "status" not in value:
            raise ValueError(
                "/status names hosts and operations and always needs the token — list "
                "status, e.g. token_for: [status, metrics]"
            )
        return tuple(dict.fromkeys(value))  # each once, in the order written

    @field_validator("read_timeout")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("a read timeout of 0 s would refuse every request — e.g. 5s")
        return value


class ControllerSettings(Frozen):
    http: ControllerHttp = ControllerHttp()


# What a notification target may be sent (orchestrator/notify/payload.py: EVENTS).
NotifyEvent = Literal[
    "started",
    "resumed",
    "step-failed",
    "approval-needed",
    "finished",
    "failed",
    "split-brain",
]


class NotifyTarget(Frozen):
    """Where notifications go: a webhook (`url`, the payload POSTed as JSON) or a command
    (the payload on its stdin and as SITECTL_* variables), for `events` (default: all)."""

    url: Annotated[Url, Field(pattern=r"^https?://")] | None = None
    command: Annotated[str, Field(min_length=1)] | None = None
    events: tuple[NotifyEvent, ...] | None = Field(default=None, min_length=1)
    token_file: PathText | None = None
    """A bearer token for the webhook, in a 0600 file (relative to the topology file), read
    at each send: a rotation needs no restart.
    """
    insecure: bool = False
    """Written explicitly to POST over plain http:// to another host than this one."""

    @model_validator(mode="after")
    def _one_way(self) -> NotifyTarget:
        if (self.url is None) == (self.command is None):
            raise ValueError(
                "a notification target needs exactly one of 'url' or 'command' — write "
                '{url: "https://hooks.example.net/sitectl"} or '
                "{command: /usr/local/bin/page-oncall}"
            )
        if self.token_file is not None and self.url is None:
            raise ValueError(
                "token_file is sent as a webhook's bearer token and this target is a command "
                "— remove it (a command reads its own credentials)"
            )
        if self.command is not None:
            try:
                words = shlex.split(self.command)
            except ValueError as exc:
                raise ValueError(
                    f"command {self.command!r} cannot be split into words ({exc}) — "
                    "close its quotes"
                ) from None
            if not words:
                raise ValueError("command is empty — name the program to run")
        return self

    def wants(self, event: str) -> bool:
        return self.events is None or event in self.events

    def describe(self) -> str:
        return self.url or f"command {self.command!r}"


class Notifications(Frozen):
    """Who is told about every operation (docs/notifications.md). Each send is bounded by
    `timeout`; a target that fails is logged and audited, never fails an operation."""

    timeout: Seconds = 10.0
    targets: tuple[NotifyTarget, ...] = ()

    @field_validator("timeout")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("a timeout of 0 s would fail every notification — e.g. 10s")
        return value


class Ansible(Frozen):
    inventory: PathText
    """relative to the topology file"""
    playbook_dir: PathText | None = None
    """sitectl's playbooks (app.yml, volume.yml, dns-role.yml, custom.yml), relative to the
    topology file; unset, the copy installed with sitectl. Set it only to run a modified
    copy."""


class ProbeUser(Frozen):
    user: Text
    """the IMAP login"""
    password: SecretRef
    address: Text | None = None
    """where the canary is sent; default: the login, if an address"""

    def mail_address(self) -> str:
        if self.address:
            return self.address
        if "@" in self.user:
            return self.user
        raise ValueError(f"probe user {self.user!r} has no mail address — set probe_user.address")


class Application(Frozen):
    name: str = "mail"
    probe_user: ProbeUser | None = None


class ParitySource(Frozen):
    """Where one datacenter's value of a parity setting is read: a file (relative to the
    topology file), or a command run on this machine (no shell; `ssh host zmprov ...`
    reaches a remote one) whose standard output is the value. With `key`, the value is
    the last line `key = value` or `key: value` of that text, as Postfix, Dovecot and
    zmprov write them; without, the whole text, stripped."""

    file: PathText | None = None
    command: Annotated[str, Field(min_length=1)] | None = None
    key: Annotated[str, Field(min_length=1)] | None = None

    @model_validator(mode="after")
    def _one_place(self) -> ParitySource:
        if (self.file is None) == (self.command is None):
            raise ValueError(
                "a parity source needs exactly one of 'file' or 'command' — write "
                "{file: conf/main.cf, key: message_size_limit} or "
                '{command: "ssh zimbra@mbox1 zmprov gcf zimbraMailTrashLifetime"}'
            )
        return self


class ParitySetting(Frozen):
    """A setting both datacenters must hold alike (retention, litigation hold: a mirrored
    archive is only as good as the rules the standby would apply to it)."""

    name: Annotated[str, Field(min_length=1)]
    sites: dict[SiteName, ParitySource] = Field(min_length=2)


# The operation kinds a custom step is scoped by: a drill's operations (its switchovers
# and reprotects) count as "drill", not as the kind they also are.
CUSTOM_STEP_MODES = ("switchover", "failover", "drill", "reprotect")
_DIRECTION = re.compile(r"^\s*([a-z][a-z0-9-]{0,30})\s*(?:->|→)\s*([a-z][a-z0-9-]{0,30})\s*$")


def _direction(value: object) -> object:
    """ "dc1->dc2" or "dc1→dc2", kept as "dc1->dc2"."""
    if isinstance(value, str):
        match = _DIRECTION.match(value)
        if not match:
            raise ValueError(
                f"direction {value!r} is not FROM->TO — write two site names, e.g. dc1->dc2"
            )
        return f"{match[1]}->{match[2]}"
    return value


Direction = Annotated[str, BeforeValidator(_direction)]


class CustomStep(Frozen):
    """An operator's own step, planned, fenced, checkpointed and resumed like ours.

    Exactly one of `command` (a shell command: on the sitectl host, or through Ansible on
    the hosts of `on`'s role), `playbook` (an Ansible playbook, relative to the topology
    file) or `approval: true` (the operation waits until a person runs `sitectl approve`
    or `sitectl reject`). Placed `before` or `after` a phase (its first or last group)
    or a step id of the plan; planned only for the `modes` and `directions` listed."""

    name: Annotated[str, Field(pattern=_NAME)]
    description: Text | None = None
    before: Annotated[str, Field(min_length=1)] | None = None
    after: Annotated[str, Field(min_length=1)] | None = None
    modes: tuple[Literal["switchover", "failover", "drill", "reprotect"], ...] = CUSTOM_STEP_MODES
    directions: tuple[Direction, ...] = ()
    """empty: either way"""
    command: Annotated[str, Field(min_length=1)] | None = None
    playbook: PathText | None = None
    approval: bool = False
    on: Literal["sitectl"] | RoleName = "sitectl"
    """Where it runs: "sitectl" (this machine) or a role, whose hosts at `site` run it."""
    site: Literal["to", "from"] = "to"
    timeout: Seconds | None = None
    """a command or playbook: policy.step_timeout; an approval: none"""
    on_failure: Literal["stop", "continue"] = "stop"
    on_timeout: Literal["reject", "approve"] = "reject"
    """an approval's, once its timeout passed"""
    approvers: tuple[Name, ...] = ()
    """Who may approve (OS user names, as `sitectl approve` records them); empty: anyone
    who can write the cluster's ZooKeeper nodes.
    """

    @model_validator(mode="after")
    def _one_kind_one_place(self) -> CustomStep:
        kinds = [k for k in ("command", "playbook") if getattr(self, k) is not None]
        kinds += ["approval"] if self.approval else []
        if len(kinds) != 1:
            raise ValueError(
                f"custom step {self.name!r} has {' and '.join(kinds) or 'nothing to do'} — give "
                'exactly one of command: "...", playbook: FILE or approval: true'
            )
        if (self.before is None) == (self.after is None):
            raise ValueError(
                f"custom step {self.name!r} needs exactly one of before: or after: — a phase "
                "(e.g. after: start-services) or a step id (e.g. before: dns/lab.internal.)"
            )
        if not self.modes:
            raise ValueError(
                f"custom step {self.name!r} lists no mode — list some of "
                f"{', '.join(CUSTOM_STEP_MODES)}, or leave modes out for all"
            )
        if self.approval and (self.on != "sitectl" or self.on_failure != "stop"):
            raise ValueError(
                f"approval {self.name!r} runs nowhere and cannot fail — remove on: and "
                "on_failure: (a reject stops the operation; on_timeout: says what a timeout does)"
            )
        return self

    @property
    def kind(self) -> Literal["command", "playbook", "approval"]:
        if self.approval:
            return "approval"
        return "command" if self.command is not None else "playbook"

    @property
    def anchor(self) -> str:
        return self.before if self.before is not None else self.after or ""


class Topology(Frozen):
    cluster: Annotated[str, Field(pattern=_NAME)]
    """The cluster's name: its ZooKeeper nodes live under <chroot>/<cluster>."""
    sites: dict[SiteName, Site] = Field(min_length=2)
    """The two datacenters and the witness, by name."""
    active_site: SiteName
    """The datacenter that serves when ZooKeeper records nothing else (a new cluster);
    after a move, ZooKeeper's record wins."""
    ansible: Ansible
    """Where the Ansible inventory and sitectl's playbooks are."""
    hosts: tuple[Host, ...] = Field(min_length=1)
    """Every host sitectl acts on or probes, with its site and roles."""
    roles: dict[RoleName, Role] = Field(min_length=1)
    """The application's roles by name: their services, start order, probes and whether
    they move."""
    application: Application = Application()
    """The application's name and the mailbox the canaries and IMAP probes use."""
    volumes: tuple[Volume, ...] = ()
    """The mirrored volumes, by driver: btrfs (the lab), netapp (SnapMirror over ONTAP
    REST) or command (your own)."""
    dns: Dns
    """The DNS zones a move repoints."""
    ldap: Ldap | None = None
    """The LDAP multi-master servers whose replication (contextCSN) the readiness gate
    checks."""
    object_store: ObjectStore | None = None
    """The S3 endpoints and buckets whose replication a move checks and reprotect reverses."""
    deadman: Deadman | None = None
    """The dead-man agents that fence an active site cut off from the quorum."""
    controller: ControllerSettings = ControllerSettings()
    """The controllers' HTTP endpoint."""
    notifications: Notifications = Notifications()
    """Who is told about every operation (docs/notifications.md)."""
    zookeeper: ZooKeeper
    """The ZooKeeper ensemble: leases, checkpoints, the site ticket and the controllers'
    election."""
    policy: Policy = Policy()
    """RPO limits, timings, automatic promotion and the site ticket's arithmetic."""
    parity: tuple[ParitySetting, ...] = ()
    """Settings compared between the datacenters by the `parity` health check."""
    custom_steps: tuple[CustomStep, ...] = ()
    """The operator's own steps and approvals, placed in every plan they are scoped to."""
    local_state: PathText = "/var/lib/sitectl"
    """This machine's own records: the audit log and per-operation artifacts (Ansible
    runs). Relative to the topology file, like every other path in it.
    """
    base_dir: Path = Field(default=Path("."), exclude=True)
    """Where the file was read from: relative paths inside it are relative to this."""
    source_file: Path | None = Field(default=None, exclude=True)
    """The file itself, when read from one: what a helper process loads it from again."""

    def datacenters(self) -> list[str]:
        return [name for name, site in self.sites.items() if site.kind == "datacenter"]

    def hosts_of(self, site: str, role: str) -> list[Host]:
        return [h for h in self.hosts if h.site == site and role in h.roles]

    def volume_hosts(
        self, volume: BtrfsVolume | NetappVolume | CommandVolume, site: str
    ) -> list[Host]:
        """The hosts that mount `volume` at `site`: the one its `hosts` names there, else
        every host of its role at that site."""
        name = volume.hosts.get(site)
        if name is None:
            return self.hosts_of(site, volume.role)
        return [h for h in self.hosts if h.name == name and h.site == site]

    def resolve(self, relative: str) -> Path:
        return (self.base_dir / relative).resolve()

    @property
    def playbook_dir(self) -> Path:
        """The directory sitectl's own playbooks are run from: `ansible.playbook_dir`
        (relative to the topology file), else the copy installed with sitectl."""
        written = self.ansible.playbook_dir
        return INSTALLED_PLAYBOOKS if written is None else self.resolve(written)

    @property
    def ticket_ttl(self) -> float:
        """How long the site ticket lives without a renewal: the policy's, else a few
        seconds above the ZooKeeper session timeout, so the holder's session expires (and
        its controller knows it is cut off) before its ticket may be granted elsewhere."""
        if self.policy.ticket_ttl is not None:
            return self.policy.ticket_ttl
        return self.zookeeper.session_timeout + TICKET_TTL_ABOVE_SESSION

    @property
    def fence_after(self) -> float:
        """How long the holder's site goes without a renewal before it fences itself: the
        policy's, else the ZooKeeper session timeout: once it has passed unrenewed, the
        holder's session is gone too."""
        if self.policy.fence_after is not None:
            return self.policy.fence_after
        return self.zookeeper.session_timeout
