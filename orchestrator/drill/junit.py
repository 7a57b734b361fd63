"""The drill as JUnit XML, so CI systems list it: one test case per health check (before
and after), per engine step, per verification, and one per figure against its target."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from orchestrator.drill.measure import Verdict
from orchestrator.drill.model import DrillRecord


def render(record: DrillRecord, result: Verdict) -> str:
    root = ET.Element("testsuites", name=f"DR drill {record.id}")
    for snap in record.snapshots:
        suite = _suite(root, f"checks {snap.label}")
        for row in snap.checks:
            where = f"{row.site} " if row.site else ""
            case = _case(suite, f"checks.{snap.label}", f"{row.system} {where}{row.target}")
            if row.status == "down":
                ET.SubElement(case, "failure", message=row.reason or "down", type="down")
            elif row.status == "degraded":
                # Degraded is worth reading but not a failed drill: CI shows it as output.
                ET.SubElement(case, "system-out").text = f"degraded: {row.reason}"
    for leg in record.legs:
        for op in leg.operations:
            suite = _suite(root, f"{op.mode} {op.from_site}→{op.to_site} ({op.id})")
            for step in op.steps:
                case = _case(
                    suite,
                    f"{op.mode}.{op.id}",
                    step.step_id,
                    (step.finished or 0) - (step.started or 0) if step.started else 0,
                )
                if step.status == "failed":
                    ET.SubElement(case, "failure", message=step.detail or "failed", type="step")
                elif step.status not in ("done", "skipped"):
                    ET.SubElement(case, "skipped", message=step.status)
                elif step.status == "skipped":
                    ET.SubElement(case, "skipped", message=step.detail or "skipped")
        suite = _suite(root, f"verification at {leg.to_site} ({leg.name})")
        for v in leg.verifications:
            case = _case(
                suite, f"verify.{leg.name}", f"{v.name} on {v.site}", v.finished - v.started
            )
            if not v.ok:
                ET.SubElement(case, "failure", message=v.detail, type="verification")
            else:
                ET.SubElement(case, "system-out").text = v.detail
    suite = _suite(root, "figures against targets")
    for figures in result.legs:
        where = f"{figures.from_site}→{figures.to_site}"
        rto = _case(suite, "figures", f"RTO {where} ≤ {record.targets.rto_s:g} s")
        if not figures.rto_ok:
            got = figures.rto.seconds
            ET.SubElement(
                rto,
                "failure",
                type="target",
                message=(
                    f"RTO {got:.1f} s"
                    if got is not None
                    else f"RTO not measured: {figures.rto.why}"
                ),
            )
        rpo = _case(suite, "figures", f"RPO {where} ≤ {record.targets.rpo_s:g} s")
        if not figures.rpo_ok:
            p = figures.rpo
            ET.SubElement(
                rpo,
                "failure",
                type="target",
                message=(
                    f"{p.lost} of {p.checked} writes lost; RPO "
                    f"{'unknown' if p.seconds is None else f'{p.seconds:.1f} s'}"
                ),
            )
    if record.stopped:
        case = _case(_suite(root, "drill"), "drill", "ran to the end")
        ET.SubElement(case, "failure", type="stopped", message=record.stopped)
    for suite in root:
        cases = suite.findall("testcase")
        suite.set("tests", str(len(cases)))
        suite.set("failures", str(sum(1 for c in cases if c.find("failure") is not None)))
        suite.set("skipped", str(sum(1 for c in cases if c.find("skipped") is not None)))
        suite.set("errors", "0")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _suite(root: ET.Element, name: str) -> ET.Element:
    return ET.SubElement(root, "testsuite", name=name)


def _case(suite: ET.Element, classname: str, name: str, seconds: float = 0.0) -> ET.Element:
    return ET.SubElement(
        suite, "testcase", classname=classname, name=name, time=f"{max(seconds, 0.0):.3f}"
    )
