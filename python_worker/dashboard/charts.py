"""Line charts as inline SVG, drawn on the server from ``queue.get_stats_history`` rows.

No chart library and no script: a chart is a few polylines with axes, so it renders in any
browser, under a strict Content-Security-Policy, and in the page that the live refresh swaps in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777",
           "#4b5563"]
WIDTH, HEIGHT = 560, 190
LEFT, RIGHT, TOP, BOTTOM = 52, 10, 12, 26


@dataclass(frozen=True)
class Series:
    name: str
    color: str
    points: list[tuple[datetime, float]]


@dataclass(frozen=True)
class Chart:
    title: str
    unit: str
    series: list[Series]
    svg: str  # markup, already escaped where it carries text

    @property
    def empty(self) -> bool:
        return not any(s.points for s in self.series)


def _fmt_value(v: float, unit: str) -> str:
    if unit == "%":
        return f"{v:.0f}%" if v >= 10 or v == 0 else f"{v:.1f}%"
    if unit == "s" and v >= 120:
        return f"{v / 60:.0f}m"
    if v >= 1000:
        return f"{v / 1000:.1f}k"
    return f"{v:.0f}" if v >= 10 or v == int(v) else f"{v:.1f}"


def _esc(text: str) -> str:
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


def line_chart(title: str, unit: str, rows: Sequence[dict[str, Any]],
               value: Callable[[dict[str, Any]], float | None],
               colors: dict[str, str]) -> Chart:
    """One line per queue of value(row) over captured_at."""
    by_queue: dict[str, list[tuple[datetime, float]]] = {}
    for r in rows:
        v = value(r)
        if v is not None:
            by_queue.setdefault(r["queue_name"], []).append((r["captured_at"], float(v)))
    series = [Series(q, colors.get(q, PALETTE[0]), pts) for q, pts in sorted(by_queue.items())]
    times = [t for s in series for t, _ in s.points]
    values = [v for s in series for _, v in s.points]
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    parts = [f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
             f'aria-label="{_esc(title)}" xmlns="http://www.w3.org/2000/svg">']
    if not times:
        parts.append(f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle" '
                     'class="chart-empty">nothing to plot in this window</text></svg>')
        return Chart(title, unit, series, "".join(parts))
    t0, t1 = min(times), max(times)
    span = max((t1 - t0).total_seconds(), 60.0)
    top = max(values) * 1.1 or 1.0

    def x(t: datetime) -> float:
        return LEFT + (t - t0).total_seconds() / span * plot_w

    def y(v: float) -> float:
        return TOP + plot_h - v / top * plot_h

    for frac in (0.0, 0.5, 1.0):  # grid and y labels
        gy = TOP + plot_h - frac * plot_h
        parts.append(f'<line x1="{LEFT}" y1="{gy:.1f}" x2="{WIDTH - RIGHT}" y2="{gy:.1f}" '
                     'class="grid"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{gy + 4:.1f}" text-anchor="end" class="axis">'
                     f'{_esc(_fmt_value(top * frac, unit))}</text>')
    parts.append(f'<text x="{LEFT}" y="{HEIGHT - 6}" class="axis">'
                 f'{t0:%H:%M}</text>')
    parts.append(f'<text x="{WIDTH - RIGHT}" y="{HEIGHT - 6}" text-anchor="end" class="axis">'
                 f'{t1:%H:%M} UTC</text>')
    for s in series:
        pts = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in s.points)
        if len(s.points) == 1:
            (t, v), = s.points
            parts.append(f'<circle cx="{x(t):.1f}" cy="{y(v):.1f}" r="3" fill="{s.color}">'
                         f'<title>{_esc(s.name)}</title></circle>')
        else:
            parts.append(f'<polyline points="{pts}" fill="none" stroke="{s.color}" '
                         f'stroke-width="2" stroke-linejoin="round">'
                         f'<title>{_esc(s.name)}</title></polyline>')
    parts.append("</svg>")
    return Chart(title, unit, series, "".join(parts))


def overview_charts(rows: Sequence[dict[str, Any]], queues: Sequence[str]) -> list[Chart]:
    colors = {q: PALETTE[i % len(PALETTE)] for i, q in enumerate(sorted(queues))}
    return [
        line_chart("Throughput (jobs finished per minute)", "/min", rows,
                   lambda r: r["jobs_per_minute"], colors),
        line_chart("Failure rate (dead / finished, last hour)", "%", rows,
                   lambda r: None if r["failure_rate"] is None else float(r["failure_rate"]) * 100,
                   colors),
        line_chart("Backlog (waiting + retrying)", "", rows,
                   lambda r: r["waiting"] + r["retrying"], colors),
        line_chart("Wait p95 (seconds from due to start)", "s", rows,
                   lambda r: r["wait_p95_seconds"], colors),
    ]
