"""The lab's shapes (orchestrator/lab/shape.py) and what a wide lab's topology and
inventory say, built as data without starting anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.lab import hosts, layout, shape, topology, volumes
from orchestrator.lab.state import LabState


def _state(tmp_path: Path, lab_shape: str | None) -> LabState:
    state = LabState(root=tmp_path)
    if lab_shape is not None:
        state.resources["shape"] = lab_shape
    return state


def test_a_lab_recorded_before_shapes_existed_is_single() -> None:
    assert shape.recorded({}) == shape.SINGLE
    assert shape.extra_octets({}) == ()
    assert shape.extra_octets({"shape": shape.WIDE}) == (31, 32)


def test_an_unknown_shape_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(ValueError, match="single or wide"):
        shape.check("tall")


@pytest.mark.parametrize(
    ("component", "server"),
    [
        ("dc1-mailbox1-dovecot", "mailbox1"),
        ("dc2-mailbox2-dovecot", "mailbox2"),
        ("dc1-dovecot", None),
    ],
)
def test_a_component_names_its_mailbox_server(component: str, server: str | None) -> None:
    found = shape.server_of(component)
    assert (found.name if found else None) == server


def test_the_probe_user_can_log_in_on_every_wide_server() -> None:
    assert [shape.logins(s) for s in shape.WIDE_SERVERS] == [("alice", "probe"), ("bob", "probe")]


def test_the_single_shape_keeps_its_one_mirror(tmp_path: Path) -> None:
    (rel,) = volumes.relationships(_state(tmp_path, None))
    assert (rel.name, rel.subvolume) == (volumes.MIRROR, volumes.SUBVOLUME)
    assert rel.mount_point(_state(tmp_path, None), "dc2") == tmp_path / "dc2" / "volume"


def test_a_wide_topology_gives_each_server_its_own_two_volumes(tmp_path: Path) -> None:
    built = topology.build(_state(tmp_path, shape.WIDE))
    mailbox_hosts = {h["name"]: h["address"] for h in built["hosts"] if "mailbox" in h["roles"]}
    assert mailbox_hosts == {
        f"{site}-mailbox{n}": layout.site_ip(site, 30 + n)
        for site in ("dc1", "dc2")
        for n in (1, 2)
    }
    by_name = {v["name"]: v for v in built["volumes"]}
    assert set(by_name) == {"mailbox1-store", "mailbox1-index", "mailbox2-store", "mailbox2-index"}
    store2 = by_name["mailbox2-store"]
    assert store2["hosts"] == {"dc1": "dc1-mailbox2", "dc2": "dc2-mailbox2"}
    assert store2["sites"]["dc2"]["mount_point"] == str(tmp_path / "dc2" / "mailbox2" / "store")
    assert built["application"]["probe_user"]["user"] == shape.PROBE_USER


def test_a_wide_inventory_starts_and_stops_each_server_alone(tmp_path: Path) -> None:
    children = hosts.build(_state(tmp_path, shape.WIDE))["all"]["children"]
    assert set(children["dc2_mailbox"]["hosts"]) == {"dc2-mailbox1", "dc2-mailbox2"}
    server = children["dc2"]["hosts"]["dc2-mailbox2"]
    assert server["ansible_host"] == "198.18.2.32"
    assert "--site dc2 --server mailbox2 " in server["lab_app"]
