"""The lab's WAN cuts as data: which links a partition cuts, healing, the nft rules."""

from __future__ import annotations

import pytest

from orchestrator.lab import wan

OTHERS_OF_DC1 = {"dc2", "witness", "ops"}


@pytest.mark.parametrize(
    ("site", "others", "oneway", "expected"),
    [
        # A full partition: both directions of every link, ops included.
        ("dc1", [], False, {(a, b) for o in OTHERS_OF_DC1 for a, b in (("dc1", o), (o, "dc1"))}),
        # One link, both ways: dc1 and dc2 still see the witness (and ops sees both).
        ("dc1", ["dc2"], False, {("dc1", "dc2"), ("dc2", "dc1")}),
        (
            "dc1",
            ["dc2", "witness"],
            False,
            {("dc1", "dc2"), ("dc2", "dc1"), ("dc1", "witness"), ("witness", "dc1")},
        ),
        # One-way: only what dc1 sends is dropped.
        ("dc1", [], True, {("dc1", o) for o in OTHERS_OF_DC1}),
        ("witness", ["dc2"], True, {("witness", "dc2")}),
        # The operator's network can be cut like a site.
        ("ops", ["dc2"], False, {("ops", "dc2"), ("dc2", "ops")}),
    ],
)
def test_partition_links(site: str, others: list[str], oneway: bool, expected: set) -> None:
    assert wan.partition_links(site, others, oneway) == expected


@pytest.mark.parametrize(
    ("site", "others", "message"),
    [
        ("dc9", [], "unknown site 'dc9'"),
        ("dc1", ["mars"], "unknown site 'mars'"),
        ("dc1", ["dc1"], "--from names dc1 itself"),
    ],
)
def test_partition_refuses_what_is_not_a_link(site: str, others: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        wan.partition_links(site, others)


CUTS = {("dc1", "dc2"), ("dc2", "dc1"), ("dc1", "ops"), ("witness", "dc2")}


@pytest.mark.parametrize(
    ("site", "left"),
    [
        (None, set()),
        ("dc1", {("witness", "dc2")}),
        ("dc2", {("dc1", "ops")}),
        ("ops", {("dc1", "dc2"), ("dc2", "dc1"), ("witness", "dc2")}),
    ],
)
def test_heal_network(site: str | None, left: set) -> None:
    assert wan.healed(CUTS, site) == left


def test_describe_folds_both_directions_of_a_link() -> None:
    assert wan.describe(CUTS) == ["dc1 <-> dc2", "dc1 -> ops", "witness -> dc2"]
    assert wan.describe(set()) == []


def test_link_cut_means_no_connection_either_way() -> None:
    assert wan.link_cut({("dc1", "dc2")}, "dc2", "dc1")
    assert wan.link_cut({("dc1", "dc2")}, "dc1", "dc2")
    assert not wan.link_cut({("dc1", "witness")}, "dc1", "dc2")


def test_the_ruleset_replaces_the_table_with_exactly_the_cuts() -> None:
    text = wan.ruleset({("dc1", "dc2"), ("ops", "dc1")})
    lines = [line.strip() for line in text.splitlines()]
    # Made sure to exist, deleted and rebuilt in one nft transaction.
    assert lines[:3] == [
        "table inet sitectl_wan",
        "delete table inet sitectl_wan",
        "table inet sitectl_wan {",
    ]
    drops = [line for line in lines if line.endswith("drop")]
    assert drops == [
        "ip saddr 198.18.1.0/24 ip daddr 198.18.2.0/24 drop",
        "ip saddr 198.18.0.0/24 ip daddr 198.18.1.0/24 drop",
    ]
    assert "type filter hook forward priority 0; policy accept;" in lines
    assert not [line for line in lines if "drop" in line and line not in drops]
    assert [line for line in wan.ruleset(set()).splitlines() if "drop" in line] == []
