"""The monitoring kit's files (contrib/prometheus, contrib/grafana) as tests read them:
every PromQL expression they hold, the metric names an expression reads, the names an
exposition exports, and `promtool`, Debian's (scripts/install installs `prometheus`)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[1]
RULES = REPO / "contrib" / "prometheus" / "sitectl-rules.yml"
RULES_TEST = REPO / "contrib" / "prometheus" / "sitectl-rules.test.yml"
DASHBOARD = REPO / "contrib" / "grafana" / "sitectl.json"

# Words of PromQL that are not metric names: aggregations (followed by `by`/`without`,
# not always by a parenthesis), binary operators and modifiers.
_NOT_NAMES = {
    *("sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk"),
    *("quantile", "count_values", "group", "limitk", "limit_ratio"),
    *("by", "without", "on", "ignoring", "group_left", "group_right"),
    *("and", "or", "unless", "bool", "offset", "atan2", "inf", "nan"),
}
_WORD = re.compile(r"(?<![\w.$])[A-Za-z_:][A-Za-z0-9_:]*")


def metric_names(expr: str) -> set[str]:
    """The metric names `expr` reads: what is left once strings, label matchers, ranges,
    label lists and function calls are set aside."""
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", r"\1", text)
    names = set()
    for match in _WORD.finditer(text):
        word = match.group()
        if word.lower() in _NOT_NAMES or text[match.end() :].lstrip().startswith("("):
            continue
        names.add(word)
    return names


def rule_expressions() -> dict[str, str]:
    """Each rule of sitectl-rules.yml by its alert's name."""
    doc = yaml.safe_load(RULES.read_text())
    return {rule["alert"]: rule["expr"] for group in doc["groups"] for rule in group["rules"]}


def dashboard_expressions() -> dict[str, str]:
    """Each target's expression in the dashboard, by "panel title/refId", and the
    template variables' queries."""
    doc = json.loads(DASHBOARD.read_text())
    found = {
        f"{panel['title']}/{target['refId']}": target["expr"]
        for panel in _panels(doc["panels"])
        for target in panel.get("targets", [])
    }
    for variable in doc.get("templating", {}).get("list", []):
        query = variable.get("query")
        if isinstance(query, dict):
            query = query.get("query")
        match = re.fullmatch(r"label_values\((\w+),\s*\w+\)", str(query or ""))
        if match:  # Grafana's own function, not PromQL: the metric it reads
            found[f"${variable['name']}"] = match[1]
    return found


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))  # a collapsed row holds its own


def exported_names(exposition: str) -> set[str]:
    """Every family and sample name an exposition holds (a counter's family and its
    _total and _created samples)."""
    names = set()
    for family in text_string_to_metric_families(exposition):
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
    return names


def promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    found = shutil.which("promtool")
    assert found, "promtool is missing: run scripts/install (Debian's prometheus package)"
    return subprocess.run(
        [found, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=RULES.parent,
    )
