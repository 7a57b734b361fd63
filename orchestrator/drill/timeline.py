"""The geometry of the report's timeline (pure): one row per drill phase and per group
of engine steps, write-probe answers as ticks, all on one time axis from the drill's start.

Kept apart from the template so it can be table-tested: the SVG only draws these numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from orchestrator.drill.model import DrillRecord, OperationRun

WIDTH = 960  # the SVG's user units; it scales to the page
LABEL_W = 250
ROW_H = 18
TOP = 34  # room for the axis labels


@dataclass(frozen=True)
class Bar:
    row: int
    label: str
    x: float
    w: float
    kind: str  # "drill" | "engine"
    status: str  # "ok" | "failed" | "running"
    title: str  # the hover text: exact times


@dataclass(frozen=True)
class Tick:
    x: float
    status: str  # "old" (accepted at the old site) | "new" | "refused"
    title: str


@dataclass(frozen=True)
class Timeline:
    bars: tuple[Bar, ...]
    ticks: tuple[Tick, ...]
    axis: tuple[tuple[float, str], ...]  # (x, label)
    rows: int
    height: int
    seconds: float

    @property
    def plot_w(self) -> float:
        return WIDTH - LABEL_W - 10


def build(record: DrillRecord) -> Timeline:
    t0 = record.started
    end = max([record.finished or t0, *_ends(record)])
    span = max(end - t0, 1.0)
    plot = WIDTH - LABEL_W - 10

    def x(t: float) -> float:
        return LABEL_W + (t - t0) / span * plot

    bars: list[Bar] = []
    for phase in record.phases:
        stop = phase.finished or end
        status = "running" if phase.ok is None else ("ok" if phase.ok else "failed")
        bars.append(
            Bar(
                len(bars),
                phase.name,
                x(phase.started),
                max(x(stop) - x(phase.started), 1.5),
                "drill",
                status,
                f"{phase.name}: {stop - phase.started:.1f} s",
            )
        )
    for leg in record.legs:
        for op in leg.operations:
            for group, (start, stop, failed) in _groups(op).items():
                label = f"{op.mode} {op.from_site}→{op.to_site} · {group}"
                bars.append(
                    Bar(
                        len(bars),
                        label,
                        x(start),
                        max(x(stop) - x(start), 1.5),
                        "engine",
                        "failed" if failed else "ok",
                        f"{label}: {stop - start:.1f} s",
                    )
                )
    ticks = [
        Tick(
            x(a.at),
            _tick_status(a.accepted, a.site, leg.from_site),
            f"{a.at - t0:.1f} s: {'accepted' if a.accepted else 'refused'} at "
            f"{a.site or '?'} {a.address} {a.detail}".strip(),
        )
        for leg in record.legs
        for a in leg.attempts
    ]
    rows = len(bars) + 1  # the write-probe lane sits under the bars
    return Timeline(
        tuple(bars), tuple(ticks), _axis(span, x, t0), rows, TOP + rows * ROW_H + 8, span
    )


def _ends(record: DrillRecord) -> list[float]:
    out = [p.finished for p in record.phases if p.finished]
    out += [a.at for leg in record.legs for a in leg.attempts]
    return [t for t in out if t is not None]


def _groups(op: OperationRun) -> dict[str, tuple[float, float, bool]]:
    """Plan groups by step-id prefix ("preflight", "final-sync", …), in plan order."""
    out: dict[str, tuple[float, float, bool]] = {}
    for step in op.steps:
        if step.started is None:
            continue
        stop = step.finished or step.started
        name = step.step_id.split("/")[0]
        failed = step.status == "failed"
        if name in out:
            a, b, f = out[name]
            out[name] = (min(a, step.started), max(b, stop), f or failed)
        else:
            out[name] = (step.started, stop, failed)
    return out


def _tick_status(accepted: bool, site: str | None, old: str) -> str:
    if not accepted:
        return "refused"
    return "old" if site == old else "new"


def _axis(span: float, x: Callable[[float], float], t0: float) -> tuple[tuple[float, str], ...]:
    step = next(
        s for s in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600, 1e9) if span / s <= 10
    )
    marks = []
    t = 0.0
    while t <= span + 1e-9:
        label = f"{t:g} s" if step < 60 else f"{t / 60:g} min"
        marks.append((x(t0 + t), label))
        t += step
    return tuple(marks)
