"""CSN parsing and lag arithmetic: tables of good, hostile and future-dated values."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.checks.csn import (
    Csn,
    CsnError,
    lag_per_sid,
    parse_csn,
    read_context_csn,
)

T0 = datetime(2026, 11, 22, 14, 4, 5, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("20261122140405.000000Z#000000#001#000000", Csn(T0, 0, 1, 0)),
        ("20261122140405.250000Z#00000a#00f#000001", Csn(T0 + 0.25, 10, 15, 1)),
        # sid is hex: serverID 300 is written 12c
        ("20261122140405.000001Z#000000#12c#000000", Csn(T0 + 1e-6, 0, 300, 0)),
        ("  20261122140405.000000Z#000000#001#000000\n", Csn(T0, 0, 1, 0)),
    ],
)
def test_parses(text: str, expected: Csn) -> None:
    assert parse_csn(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "garbage",
        "20261122140405Z#000000#001#000000",  # no microseconds
        "20261122140405.000000#000000#001#000000",  # no Z
        "20261122140405.000000Z#000000#001",  # no mod
        "20261122140405.000000Z#000000#0g1#000000",  # sid not hex
        "20261322140405.000000Z#000000#001#000000",  # month 13
        "20260230140405.000000Z#000000#001#000000",  # 30 February
        "20261122140405.000000Z#000000#001#000000 trailing",
        "\x00\xff" * 30,
    ],
)
def test_garbage_is_a_csn_error_naming_the_value(text: str) -> None:
    with pytest.raises(CsnError, match=r"CSN|impossible date"):
        parse_csn(text)


@given(st.text(max_size=80))
def test_never_raises_anything_but_csn_error(text: str) -> None:
    with contextlib.suppress(CsnError):
        parse_csn(text)


def test_context_csn_keeps_good_values_and_names_bad_ones() -> None:
    reading = read_context_csn(
        [
            "20261122140405.000000Z#000000#001#000000",
            "20261122140400.000000Z#000000#003#000000",
            "not-a-csn",
            "20301122140405.000000Z#000000#002#000000",  # four years ahead
        ],
        now=T0 + 1,
    )
    assert reading.newest == {1: T0, 3: T0 - 5}
    assert len(reading.problems) == 2
    assert "'not-a-csn' is not a CSN" in reading.problems[0]
    assert "sid 2" in reading.problems[1] and "in the future" in reading.problems[1]


def test_a_csn_within_the_clock_tolerance_is_accepted() -> None:
    reading = read_context_csn(["20261122140405.000000Z#000000#001#000000"], now=T0 - 2)
    assert reading.newest == {1: T0} and not reading.problems


@pytest.mark.parametrize(
    ("views", "expected"),
    [
        # all converged
        (
            {"a": {1: 10.0, 3: 5.0}, "b": {1: 10.0, 3: 5.0}},
            {"a": {1: 0.0, 3: 0.0}, "b": {1: 0.0, 3: 0.0}},
        ),
        # b misses 4 s of sid 1's changes
        ({"a": {1: 10.0}, "b": {1: 6.0}}, {"a": {1: 0.0}, "b": {1: 4.0}}),
        # b never received anything from sid 3
        ({"a": {1: 10.0, 3: 2.0}, "b": {1: 10.0}}, {"a": {1: 0.0, 3: 0.0}, "b": {1: 0.0, 3: None}}),
        ({}, {}),
    ],
)
def test_lag_per_sid(views: dict, expected: dict) -> None:
    assert lag_per_sid(views) == expected
