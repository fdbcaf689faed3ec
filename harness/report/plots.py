"""matplotlib figures shared by ``harness report`` and the leaderboard (no pyplot: no global state).

Tasks have different scales (MME sums to 2000), so each task gets its own panel.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from matplotlib.figure import Figure

COLORS = ("#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860")
REGRESSION = "#C0392B"


@dataclass(frozen=True)
class Bar:
    """One bar: a run's value of a task's headline metric with its 95% interval (None: unknown)."""

    label: str
    value: float
    low: float | None = None
    high: float | None = None


def _grid(n: int, per_row: int = 4) -> tuple[int, int]:
    cols = max(1, min(per_row, n))
    return math.ceil(n / cols), cols


def interval_bars(panels: Sequence[tuple[str, Sequence[Bar]]], title: str = "") -> Figure:
    """One panel per task (its title), one bar per run with the interval as an error bar."""
    rows, cols = _grid(len(panels))
    fig = Figure(figsize=(3.2 * cols, 2.9 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, (name, bars) in zip(axes, panels):
        xs = range(len(bars))
        values = [b.value for b in bars]
        below = [b.value - b.low if b.low is not None else 0.0 for b in bars]
        above = [b.high - b.value if b.high is not None else 0.0 for b in bars]
        ax.bar(xs, values, color=[COLORS[i % len(COLORS)] for i in xs], yerr=[below, above], capsize=4)
        ax.set_xticks(list(xs), [b.label for b in bars], fontsize=8)
        ax.set_title(name, fontsize=10)
        for x, v in zip(xs, values):  # the value inside the bar's foot, clear of the error bar
            ax.annotate(f"{v:.1f}", (x, 0), ha="center", va="bottom", fontsize=8, color="white",
                        fontweight="bold", xytext=(0, 3), textcoords="offset points")  # fmt: skip
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


@dataclass(frozen=True)
class Point:
    """One run in a history: x (training step or time), value, interval, and whether it regressed."""

    x: float | object
    value: float
    low: float | None = None
    high: float | None = None
    regression: bool = False


def _x_key(x: object) -> object:
    return x.isoformat() if hasattr(x, "isoformat") else x


def _window(x: object) -> tuple[object, object]:
    """A small x range centred on a lone point: a day either side of a time, one unit of a step."""
    if hasattr(x, "isoformat"):
        from datetime import timedelta

        return x - timedelta(days=1), x + timedelta(days=1)  # type: ignore[operator]
    value = float(x)  # type: ignore[arg-type]
    half = max(1.0, abs(value) * 0.05)
    return value - half, value + half


def history_lines(panels: Sequence[tuple[str, Sequence[Point]]], x_label: str) -> Figure:
    """One panel per task: the value over x with its interval band; regressions as red down-triangles."""
    rows, cols = _grid(len(panels), per_row=2)
    fig = Figure(figsize=(5.0 * cols, 3.0 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, (name, points) in zip(axes, panels):
        xs = [p.x for p in points]
        ax.plot(xs, [p.value for p in points], marker="o", color=COLORS[0], linewidth=1.5, markersize=4)
        banded = [p for p in points if p.low is not None and p.high is not None]
        if len(banded) > 1:
            ax.fill_between([p.x for p in banded], [p.low for p in banded], [p.high for p in banded],
                            color=COLORS[0], alpha=0.2, linewidth=0)  # fmt: skip
        if len({_x_key(x) for x in xs}) == 1:  # one run: a window around it, not matplotlib's default years
            ax.set_xlim(*_window(xs[0]))
            ax.annotate("one run", (xs[0], points[0].value), xytext=(6, 6), textcoords="offset points", fontsize=7)
        bad = [p for p in points if p.regression]
        if bad:
            ax.scatter([p.x for p in bad], [p.value for p in bad], marker="v", s=80, color=REGRESSION, zorder=3,
                       label="significant drop")  # fmt: skip
            ax.legend(fontsize=7, loc="best")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel(x_label, fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    return fig
