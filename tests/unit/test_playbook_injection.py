"""Issue 19, finding 3: names from the topology never become code on a host.

A name, a path or a zone from the topology travels plan → the step's PlaybookCall →
the extra vars sitectl hands ansible-playbook → a shell task of a shipped playbook. Each
test here sends hostile values down that road (shell metacharacters, $(...), backquotes,
;, line breaks, Jinja's {{ lookup('pipe', ...) }} and {% %}) into the real playbooks
(volume.yml's command driver, app.yml's commands, dns-role.yml's promote and demote),
run by the real ansible-playbook against this machine (`ansible_connection: local`).
Anything that executes creates the canary file; each value must instead reach the
operator's command as one word, verbatim. `validate` refuses such names (see
test_config_validation.py); these topologies skip it, as a topology that slipped past
validation would.

The operator's own command lines stay a shell and stay templated on purpose: the ones
here use `{{ inventory_hostname }}`, which Ansible must still fill in.
"""

from __future__ import annotations

import json
import re
import shlex
import sys
import tempfile
from functools import cache
from pathlib import Path
from unittest import mock

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from orchestrator.adapters.ansible import PlaybookCall, run_batch
from orchestrator.config import Topology, load_topology
from orchestrator.config.model import (
    INSTALLED_PLAYBOOKS,
    Ansible,
    CommandVolume,
    Dns,
    Mirror,
    Role,
    RoleCommands,
    fill,
    fill_for_ansible,
)
from orchestrator.deadman.actions import fence_actions
from orchestrator.engine.handlers import StepContext
from orchestrator.engine.steps import dns as dns_steps
from orchestrator.engine.steps.app import AppHandler
from orchestrator.engine.steps.common import run_call
from orchestrator.engine.steps.dns import DnsDemoteHandler, DnsPromoteHandler
from orchestrator.engine.steps.volumes import MountHandler
from orchestrator.gates import BatchItem, GateAnswer
from orchestrator.plan import (
    Action,
    ObservedState,
    Plan,
    assumed_state,
    build_plan,
    build_reprotect_plan,
)
from orchestrator.plan.model import Step
from tests.unit.engine_fakes import FakeFence, operation_record

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "inventories/example-zimbra/topology.yaml"
CANARY = "CANARY"  # replaced by the test's canary file's path

# Each would run `touch CANARY` if a shell or Jinja read it as code.
PAYLOADS = [
    "$(touch CANARY)",
    "`touch CANARY`",
    ";touch CANARY;",
    "\ntouch CANARY\n",
    "' ; touch CANARY ; '",
    '" ; touch CANARY ; "',
    "|touch CANARY",
    "&&touch CANARY",
    "{{ lookup('pipe', 'touch CANARY') }}",
    "{% set x = lookup('pipe', 'touch CANARY') %}",
    "{{ query('pipe', 'touch CANARY') }}",
    "{#",
    "{volume}",
    "{mount_point}",
    "{site}",
    "${IFS}",
    "\\",
    "%s",
    "-rf",
]
# Any text but NUL (no argv or environment can hold it) and lone surrogates.
TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=6,
)
HOSTILE = st.lists(st.one_of(st.sampled_from(PAYLOADS), TEXT), min_size=1, max_size=4).map("".join)
# Hosts the steps below run on; all of them are this machine.
HOSTS = ("mbox1.dc2", "mbox2.dc2", "mta1.dc2", "mta2.dc2", "ns1.dc1", "ns1.dc2")


# --- pure: what sitectl fills into an operator's command ------------------------------


@given(value=HOSTILE, other=HOSTILE)
def test_a_filled_in_value_is_one_shell_word_as_written(value: str, other: str) -> None:
    line = fill("mount -o ro {mount_point} /x/{volume}/y {site}", mount_point=value, volume=other)
    assert shlex.split(line) == ["mount", "-o", "ro", value, f"/x/{other}/y", "{site}"]


def test_ansible_fills_in_its_own_values_quoted() -> None:
    assert fill_for_ansible(
        "{{ tool }} --at {mount_point} {site} {other}", "v", ["mount_point", "site"]
    ) == ("{{ tool }} --at {{ v.mount_point | quote }} {{ v.site | quote }} {other}")


# No per-example deadline: its first example imports and builds what the rest reuse
# (0.9 s on a loaded CI machine, 1 ms after); what it tests is quoting, not speed.
@settings(deadline=None)
@given(zone=HOSTILE)
def test_the_dead_man_fence_command_gets_the_zone_as_one_word(zone: str) -> None:
    topo = example_topology()
    corp = topo.dns.zones[0]
    topo = topo.model_copy(
        update={"dns": Dns.model_construct(zones=(corp.model_copy(update={"name": zone}),))}
    )
    hosts = [h for h in topo.hosts if h.site == "dc1"]
    drops = [a for a in fence_actions(topo, "dc1", hosts, {}) if a.what.startswith("drop zone")]
    assert [shlex.split(a.shell or "") for a in drops] == [
        ["/usr/local/sbin/zone-fence", zone, "198.51.100.53"]
    ]


# --- the playbooks, run -----------------------------------------------------------------


def _printed(out: Path, name: str, *words: str) -> str:
    """An operator's command line: print `words` NUL-separated into out/NAME-<host>."""
    return f"printf '%s\\0' {' '.join(words)} > {out}/{name}-{{{{ inventory_hostname }}}}"


def hostile_topology(
    base: Topology, home: Path, out: Path, *, volume: str, mount_point: str, role: str, zone: str
) -> Topology:
    """The example with a command volume, a role and a zone named as given, past
    validation (model_construct/model_copy do not validate); the operator's commands
    print what sitectl fills in."""
    vol = CommandVolume.model_construct(
        name=volume,
        driver="command",
        role="mailbox",
        mount_point=mount_point,
        mirror=Mirror(source="dc1", destination="dc2"),
        commands={
            "status": "true",
            "update": "true",
            "break": "true",
            "reverse": "true",
            "unmount": "true",
            "mount": _printed(out, "mount", "{volume}", "{site}", "{mount_point}"),
        },
    )
    roles = {
        **base.roles,
        role: Role(
            start_order=3,
            services=("svc",),
            commands=RoleCommands(
                start=_printed(out, "app", '"$SITECTL_STEP"'),
                stop=_printed(out, "app", '"$SITECTL_STEP"'),
                status="true",
            ),
        ),
    }
    hosts = tuple(
        h.model_copy(update={"roles": (*h.roles, role)}) if "mta" in h.roles else h
        for h in base.hosts
    )
    corp = base.dns.zones[0]
    promote = {
        site: p.model_copy(
            update={
                "promote_command": _printed(out, "promote", '"$SITECTL_STEP"'),
                "demote_command": _printed(out, "demote", "{primary}"),
            }
        )
        for site, p in corp.promote.items()
    }
    zones = (corp.model_copy(update={"name": zone, "promote": promote}), *base.dns.zones[1:])
    return base.model_copy(
        update={
            "volumes": (vol,),
            "roles": roles,
            "hosts": hosts,
            "dns": Dns.model_construct(zones=zones),
            "ansible": Ansible(
                inventory=str(home / "hosts.yml"), playbook_dir=str(INSTALLED_PLAYBOOKS)
            ),
        }
    )


def _inventory(home: Path) -> None:
    python = sys.executable
    lines = ["all:", "  hosts:"]
    for host in HOSTS:
        lines.append(
            f"    {host}: {{ansible_connection: local, ansible_python_interpreter: {python}, "
            f"sitectl_epoch_dir: {home / 'epochs'}}}"
        )
    (home / "hosts.yml").write_text("\n".join(lines) + "\n")


def _step(plan: Plan, action: Action, target: str, site: str) -> Step:
    return next(
        s for s in plan.steps() if s.action is action and s.target == target and s.site == site
    )


def _context(topo: Topology, plan: Plan, home: Path) -> StepContext:
    return StepContext(topo, plan, operation_record(plan), FakeFence(), home / "artifacts", print)


def calls(
    topo: Topology, home: Path, volume: str, role: str, zone: str
) -> list[tuple[Step, PlaybookCall]]:
    """The PlaybookCalls sitectl makes for the hostile topology's steps, as the engine
    would: mount the volume on dc2, start the role there, promote dc2's DNS server (a
    failover from dc1), demote dc1's once it is back (a reprotect)."""
    failover = build_plan(topo, assumed_state(topo, frozenset({"dc1"})), "failover", "dc2")
    ctx = _context(topo, failover, home)
    items = []
    for handler, action, target in (
        (MountHandler("mount"), Action.VOLUME_MOUNT, volume),
        (AppHandler("start"), Action.APP_START, role),
        (DnsPromoteHandler(), Action.DNS_PROMOTE, zone),
    ):
        step = _step(failover, action, target, "dc2")
        items.append((step, handler.call(step, ctx)))

    reprotect = build_reprotect_plan(topo, ObservedState(active_site="dc2"))
    ctx = _context(topo, reprotect, home)
    step = _step(reprotect, Action.DNS_DEMOTE, zone, "dc1")
    corp = next(z for z in topo.dns.zones if z.name == zone)
    both = [str(corp.promote["dc1"].server), str(corp.promote["dc2"].server)]
    made: list[PlaybookCall] = []
    # Which servers take updates is asked over DNS; the call is what is looked at here.
    with (
        mock.patch.object(dns_steps, "accepting_now", lambda *_: both),
        mock.patch.object(dns_steps, "run_call", lambda _ctx, _step, call: made.append(call)),
    ):
        DnsDemoteHandler().apply(step, ctx)
    items.append((step, made[0]))
    return items


def _words(out: Path, name: str, host: str) -> list[str]:
    # Bytes, not text: reading text would turn a value's "\r" into "\n" on the way in.
    return (out / f"{name}-{host}").read_bytes().decode("utf-8").split("\0")[:-1]


def check_arrived(
    out: Path,
    home: Path,
    steps: list[Step],
    *,
    volume: str,
    mount_point: str,
    role: str,
    zone: str,
) -> None:
    """Each value reached the operator's command as one word, as written."""
    _, start, promote, _ = steps
    assert (start.target, promote.target) == (role, zone)
    for host in ("mbox1.dc2", "mbox2.dc2"):
        assert _words(out, "mount", host) == [volume, "dc2", mount_point]
    for host in ("mta1.dc2", "mta2.dc2"):
        assert _words(out, "app", host) == [start.id]
        ledger = next((home / "epochs").glob(f"{host}-app-*.jsonl"))
        assert [json.loads(line)["action"] for line in ledger.read_text().splitlines()] == [
            f"role {role}"
        ]
        ledger.unlink()
    assert _words(out, "promote", "ns1.dc2") == [promote.id]
    assert _words(out, "demote", "ns1.dc1") == ["198.51.100.53"]


def _go(step: str, after: str | None, hosts: tuple[str, ...]) -> GateAnswer:
    return GateAnswer("go")


def _fill(value: str, canary: Path) -> str:
    return value.replace(CANARY, str(canary))


@cache
def example_topology() -> Topology:
    # Not a fixture: hypothesis would print all of it with each falsifying example.
    return load_topology(EXAMPLE)


@settings(
    max_examples=4,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(volume=HOSTILE, mount_point=HOSTILE, role=HOSTILE, zone=HOSTILE)
@example(
    volume="$(touch CANARY)",
    mount_point="/srv/`touch CANARY`;touch CANARY\ntouch CANARY",
    role="{{ lookup('pipe', 'touch CANARY') }}",
    zone="{% set x = lookup('pipe', 'touch CANARY') %}' ; touch CANARY ; '.",
)
@example(
    volume="{mount_point}",
    mount_point="{{ query('pipe', 'touch CANARY') }}",
    role="a/../../b|touch CANARY",
    zone='" && touch CANARY; "{#',
)
def test_hostile_names_reach_the_playbooks_as_text_in_a_shared_run(
    tmp_path: Path, volume: str, mount_point: str, role: str, zone: str
) -> None:
    """The engine's way: every step's playbook in one ansible-playbook run, behind gates
    (the composite play file carries the vars)."""
    canary = tmp_path / "canary"
    volume, mount_point, role, zone = (_fill(v, canary) for v in (volume, mount_point, role, zone))
    if len({role, "mta", "mailbox", "ldap", "dns", "proxy"}) < 6 or zone == "example.com.":
        return  # a name the example already uses for something else
    home = Path(tempfile.mkdtemp(dir=tmp_path))
    out = home / "out"
    out.mkdir()
    _inventory(home)
    topo = hostile_topology(
        example_topology(), home, out, volume=volume, mount_point=mount_point, role=role, zone=zone
    )
    made = calls(topo, home, volume, role, zone)

    run_batch(
        [BatchItem(step.id, call) for step, call in made],
        home / "hosts.yml",
        home / "artifacts" / "batch",
        _go,
        timeout=120,
        gate_timeout=60,
    )

    assert not canary.exists(), "a value from the topology ran as code"
    steps = [step for step, _ in made]
    check_arrived(out, home, steps, volume=volume, mount_point=mount_point, role=role, zone=zone)


def test_hostile_names_reach_the_playbooks_as_text_in_runs_of_their_own(tmp_path: Path) -> None:
    """One step, one run (a step retried alone): the vars go through ansible-runner's
    extra-vars file."""
    canary = tmp_path / "canary"
    volume = _fill("v`touch CANARY`$(touch CANARY)", canary)
    mount_point = _fill("/srv/{{ lookup('pipe', 'touch CANARY') }};touch CANARY", canary)
    role = _fill("r{% set x = lookup('pipe', 'touch CANARY') %}\n;touch CANARY", canary)
    zone = _fill("z{{ query('pipe', 'touch CANARY') }}'&&touch CANARY'.", canary)
    home = tmp_path / "home"
    out = home / "out"
    out.mkdir(parents=True)
    _inventory(home)
    topo = hostile_topology(
        example_topology(), home, out, volume=volume, mount_point=mount_point, role=role, zone=zone
    )
    made = calls(topo, home, volume, role, zone)
    plan = build_plan(topo, assumed_state(topo, frozenset({"dc1"})), "failover", "dc2")
    ctx = _context(topo, plan, home)
    for step, call in made:
        run_call(ctx, step, call)

    assert not canary.exists(), "a value from the topology ran as code"
    steps = [step for step, _ in made]
    check_arrived(out, home, steps, volume=volume, mount_point=mount_point, role=role, zone=zone)
    # What ansible-runner was handed: each value as unsafe text, never a template.
    extravars = json.loads(next((home / "artifacts").glob("*/env/extravars")).read_text())
    for key, value in extravars.items():
        if key not in {"volume_command", "app_commands", "dns_command", "sitectl_epoch"}:
            assert re.search(r'"__ansible_unsafe"', json.dumps(value)), key
