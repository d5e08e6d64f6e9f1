"""Developments per day by topic as a stacked bar chart: the geometry here, the SVG in
the template (so every label is escaped like the rest of the page)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

# Colours a reader can tell apart (Okabe–Ito), one per topic in the order topics sort.
PALETTE = ("#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#f0e442", "#000000")
WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 720, 180, 32, 22, 8
MAX_DAYS = 366


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    colour: str
    label: str  # "2026-11-30 · russia-israel: 3"


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    bars: list[Bar]
    legend: list[tuple[str, str]]  # (colour, topic)
    ticks: list[tuple[float, str]]  # y, count
    days: list[tuple[float, str]]  # x, date shown under the axis
    empty: bool


def chart(counts: dict[date, dict[str, int]]) -> Chart:
    """The chart of `counts` (day → topic → developments), every day between the first
    and the last drawn, at most MAX_DAYS (the latest)."""
    if not counts:
        return Chart(WIDTH, HEIGHT, [], [], [], [], True)
    first, last = min(counts), max(counts)
    first = max(first, last - timedelta(days=MAX_DAYS - 1))
    days = [first + timedelta(days=k) for k in range((last - first).days + 1)]
    topics = sorted({t for c in counts.values() for t in c})
    colour = {t: PALETTE[i % len(PALETTE)] for i, t in enumerate(topics)}
    top = max(sum(counts.get(d, {}).values()) for d in days) or 1
    y: float
    plot_w, plot_h = WIDTH - LEFT, HEIGHT - BOTTOM - TOP
    step = plot_w / len(days)
    bars = []
    for i, day in enumerate(days):
        y = TOP + plot_h
        for topic in topics:
            n = counts.get(day, {}).get(topic, 0)
            if not n:
                continue
            h = plot_h * n / top
            y -= h
            bars.append(
                Bar(
                    LEFT + i * step + step * 0.1,
                    y,
                    max(step * 0.8, 1.0),
                    h,
                    colour[topic],
                    f"{day.isoformat()} · {topic}: {n}",
                )
            )
    ticks = [(TOP + plot_h * (1 - v / top), str(v)) for v in sorted({0, top // 2, top})]
    every = max(1, len(days) // 6)
    labels = [(LEFT + i * step + step / 2, d.isoformat()) for i, d in enumerate(days)][::every]
    return Chart(WIDTH, HEIGHT, bars, [(colour[t], t) for t in topics], ticks, labels, False)
