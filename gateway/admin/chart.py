"""The first-response histogram as SVG geometry: the template only draws rectangles.

Two series (today, last 7 days) side by side per bucket. Each bar is the *share* of its
series in that bucket, so a quiet today and a busy week compare by shape; the counts
are in each bar's tooltip and in the table under the chart.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.admin.events import FIRST_RESPONSE_BUCKETS

WIDTH, HEIGHT = 640, 220
TOP, BOTTOM, LEFT = 10, 40, 36
"""Margins: room for the axis labels under the bars and the percentages on the left."""


@dataclass(frozen=True, slots=True)
class Bar:
    series: int
    """0: today, 1: the last 7 days (its CSS class)."""
    x: float
    y: float
    width: float
    height: float
    count: int
    share: float


@dataclass(frozen=True, slots=True)
class Group:
    label: str
    x: float
    """The centre of the group (where its label goes)."""
    bars: tuple[Bar, ...]


@dataclass(frozen=True, slots=True)
class Chart:
    width: int
    height: int
    baseline: float
    groups: tuple[Group, ...]
    ticks: tuple[tuple[float, str], ...]
    """(y, label) of the horizontal grid lines."""
    empty: bool


def duration_label(seconds: int) -> str:
    """``30 s``, ``5 min``, ``2 h``, ``1 d``: the short form of a bucket bound."""
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} d"


def bucket_labels() -> list[str]:
    """``≤30 s`` … ``≤1 d``, ``>1 d``: one per bucket, in order."""
    bounds = FIRST_RESPONSE_BUCKETS
    return [f"≤{duration_label(b)}" for b in bounds] + [f">{duration_label(bounds[-1])}"]


def histogram(*series: list[int]) -> Chart:
    """The chart of ``series`` (each a count per bucket, as ``bucket_labels``)."""
    labels = bucket_labels()
    plot_w, plot_h = WIDTH - LEFT, HEIGHT - TOP - BOTTOM
    baseline = TOP + plot_h
    slot = plot_w / len(labels)
    bar_w = slot * 0.8 / max(1, len(series))
    totals = [sum(s) for s in series]
    shares = [[c / t if t else 0.0 for c in s] for s, t in zip(series, totals, strict=True)]
    top_share = max((v for s in shares for v in s), default=0.0) or 1.0
    groups = []
    for i, label in enumerate(labels):
        start = LEFT + i * slot + slot * 0.1
        bars = []
        for n, values in enumerate(series):
            height = plot_h * shares[n][i] / top_share
            bars.append(
                Bar(
                    series=n,
                    x=round(start + n * bar_w, 1),
                    y=round(baseline - height, 1),
                    width=round(bar_w - 1, 1),
                    height=round(height, 1),
                    count=values[i],
                    share=shares[n][i],
                )
            )
        groups.append(Group(label, round(LEFT + i * slot + slot / 2, 1), tuple(bars)))
    ticks = tuple(
        (round(baseline - plot_h * f, 1), f"{round(top_share * f * 100)}%") for f in (0.5, 1.0)
    )
    return Chart(WIDTH, HEIGHT, baseline, tuple(groups), ticks, empty=not any(totals))
