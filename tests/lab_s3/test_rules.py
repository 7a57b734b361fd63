"""Pure table tests: how the lab's S3 replication reads a bucket's replication rules."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.lab.s3store import Rule, bucket_from_arn, parse_rules, rule_for


@pytest.mark.parametrize(
    ("arn", "bucket"),
    [
        ("arn:aws:s3:::mail-blobs", "mail-blobs"),
        ("arn:aws:s3:::mail-blobs/some/prefix", "mail-blobs"),
        ("mail-blobs", "mail-blobs"),
    ],
)
def test_bucket_from_arn(arn: str, bucket: str) -> None:
    assert bucket_from_arn(arn) == bucket


@pytest.mark.parametrize("arn", ["arn:aws:iam::123:role/x", "arn:aws:s3:::", "arn:aws"])
def test_bucket_from_arn_rejects_other_arns(arn: str) -> None:
    with pytest.raises(ValueError):
        bucket_from_arn(arn)


def _rule(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "ID": "r",
        "Status": "Enabled",
        "Priority": "1",
        "Destination": {"Bucket": "arn:aws:s3:::dst"},
    }
    base.update(kw)
    return base


# Shapes as moto stores them: xmltodict output, a single rule is a dict, empty <Prefix/> is None.
CASES: list[tuple[str, dict[str, Any] | None, list[Rule]]] = [
    ("no configuration", None, []),
    (
        "single rule as dict, empty filter prefix",
        {"Rule": _rule(Filter={"Prefix": None})},
        [Rule("r", 1, "", "dst")],
    ),
    ("legacy top-level prefix", {"Rule": _rule(Prefix="mail/")}, [Rule("r", 1, "mail/", "dst")]),
    (
        "And filter",
        {"Rule": _rule(Filter={"And": {"Prefix": "a/", "Tag": {}}})},
        [Rule("r", 1, "a/", "dst")],
    ),
    ("disabled rules are ignored", {"Rule": [_rule(Status="Disabled")]}, []),
    (
        "highest priority first",
        {
            "Rule": [
                _rule(ID="low", Priority="1", Filter={"Prefix": ""}),
                _rule(
                    ID="high",
                    Priority="5",
                    Filter={"Prefix": "x/"},
                    Destination={"Bucket": "arn:aws:s3:::other"},
                ),
            ]
        },
        [Rule("high", 5, "x/", "other"), Rule("low", 1, "", "dst")],
    ),
]


@pytest.mark.parametrize(("name", "config", "expected"), CASES, ids=[c[0] for c in CASES])
def test_parse_rules(name: str, config: dict[str, Any] | None, expected: list[Rule]) -> None:
    assert parse_rules(config) == expected


@pytest.mark.parametrize(
    ("key", "expected_id"),
    [("x/1", "high"), ("y/1", "low"), ("x", "low")],
)
def test_rule_for_picks_highest_priority_match(key: str, expected_id: str) -> None:
    rules = [Rule("high", 5, "x/", "other"), Rule("low", 1, "", "dst")]
    match = rule_for(rules, key)
    assert match is not None and match.rule_id == expected_id


def test_rule_for_no_match() -> None:
    assert rule_for([Rule("r", 1, "mail/", "dst")], "other/key") is None
