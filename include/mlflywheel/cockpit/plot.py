"""Per-feature drift p-values over time as one inline SVG (no JavaScript, renders offline).

The y axis is ``-log10(p)`` (p-values span many orders of magnitude), capped at :data:`Y_CAP`;
the dashed line is the per-feature threshold after the correction; red ticks under the axis mark
the days whose check found drift. A long history is bucketed to at most :data:`MAX_POINTS`
x positions, keeping each bucket's smallest p-value (the most significant), so two years draw as
cheaply as two months.
"""

from __future__ import annotations

import math
from html import escape
from typing import Any

WIDTH, HEIGHT = 960, 300
LEFT, RIGHT, TOP, BOTTOM = 48, 170, 12, 36
MAX_POINTS = 240
Y_CAP = 12.0
DOTS_UP_TO = 31  # x positions up to which each point is also drawn as a dot
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf", "#393b79", "#637939", "#8c6d31")  # fmt: skip


def _y(p: float) -> float:
    if p <= 0:
        return Y_CAP
    return min(Y_CAP, -math.log10(p))


def buckets(points: list[dict[str, Any]], limit: int = MAX_POINTS) -> list[dict[str, Any]]:
    """At most ``limit`` points: each bucket keeps its smallest p per feature, its largest threshold
    and whether any of its days drifted."""
    if len(points) <= limit:
        return points
    size = math.ceil(len(points) / limit)
    out = []
    for start in range(0, len(points), size):
        group = points[start : start + size]
        features: dict[str, float] = {}
        for point in group:
            for name, p in point["features"].items():
                features[name] = min(p, features.get(name, 1.0))
        thresholds = [p["threshold"] for p in group if p.get("threshold") is not None]
        out.append({
            "day": group[0]["day"],
            "last_day": group[-1]["day"],
            "status": "drift" if any(p["status"] == "drift" for p in group) else group[-1]["status"],
            "threshold": max(thresholds) if thresholds else None,
            "features": features,
        })  # fmt: skip
    return out


def svg(points: list[dict[str, Any]], *, title: str = "Per-feature drift p-values") -> str:
    """The plot of ``points`` (oldest first, as :func:`mlflywheel.cockpit.readmodel.plot_points`)."""
    shown = buckets(points)
    names = sorted({n for p in shown for n in p["features"]})
    if not shown or not names:
        return ""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    n = len(shown)

    def x(i: int) -> float:
        return LEFT + (plot_w * i / (n - 1) if n > 1 else plot_w / 2)

    def y(value: float) -> float:
        return TOP + plot_h * (1 - value / Y_CAP)

    parts = [
        (
            f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{WIDTH}" height="{HEIGHT}" '
            f'viewBox="0 0 {WIDTH} {HEIGHT}" class="pvalues"><title>{escape(title)}</title>'
        ),
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="#fafafa" stroke="#ccc"/>',
    ]
    for tick in range(0, int(Y_CAP) + 1, 2):
        ty = y(tick)
        parts.append(f'<line x1="{LEFT}" y1="{ty:.1f}" x2="{LEFT + plot_w}" y2="{ty:.1f}" stroke="#eee"/>')
        label = "1" if tick == 0 else f"1e-{tick}"
        parts.append(f'<text x="{LEFT - 4}" y="{ty + 4:.1f}" font-size="10" text-anchor="end">{label}</text>')
    parts.append(
        f'<text x="12" y="{TOP + plot_h / 2:.0f}" font-size="10" transform="rotate(-90 12 {TOP + plot_h / 2:.0f})" '
        'text-anchor="middle">p-value (log scale)</text>'
    )
    for index, name in enumerate(names):
        color = PALETTE[index % len(PALETTE)]
        coords = " ".join(
            f"{x(i):.1f},{y(_y(p['features'][name])):.1f}" for i, p in enumerate(shown) if name in p["features"]
        )
        parts.append(
            f'<polyline fill="none" stroke="{color}" stroke-width="1.2" points="{coords}">'
            f"<title>{escape(name)}</title></polyline>"
        )
        if n <= DOTS_UP_TO:  # a short history: mark each check
            parts.extend(
                f'<circle cx="{x(i):.1f}" cy="{y(_y(p["features"][name])):.1f}" r="2.5" fill="{color}"/>'
                for i, p in enumerate(shown)
                if name in p["features"]
            )
        ly = TOP + 12 + index * 14
        parts.append(f'<rect x="{WIDTH - RIGHT + 10}" y="{ly - 8}" width="10" height="10" fill="{color}"/>')
        parts.append(f'<text x="{WIDTH - RIGHT + 24}" y="{ly + 1}" font-size="11">{escape(name)}</text>')
    threshold = [
        f"{x(i):.1f},{y(_y(p['threshold'])):.1f}" for i, p in enumerate(shown) if p.get("threshold")
    ]
    if n == 1 and threshold:  # one check: the threshold across the plot
        level = y(_y(shown[0]["threshold"]))
        threshold = [f"{LEFT:.1f},{level:.1f}", f"{LEFT + plot_w:.1f},{level:.1f}"]
    if threshold:
        parts.append(
            f'<polyline fill="none" stroke="#d62728" stroke-width="1.5" stroke-dasharray="5,3" '
            f'points="{" ".join(threshold)}"><title>threshold</title></polyline>'
        )
        ly = TOP + 12 + len(names) * 14
        parts.append(f'<line x1="{WIDTH - RIGHT + 10}" y1="{ly - 3}" x2="{WIDTH - RIGHT + 20}" y2="{ly - 3}" '
                     'stroke="#d62728" stroke-dasharray="3,2" stroke-width="2"/>')  # fmt: skip
        parts.append(f'<text x="{WIDTH - RIGHT + 24}" y="{ly + 1}" font-size="11">threshold</text>')
    base = TOP + plot_h
    for i, p in enumerate(shown):
        if p["status"] == "drift":
            parts.append(
                f'<line class="drift-day" x1="{x(i):.1f}" y1="{base + 2}" x2="{x(i):.1f}" y2="{base + 9}" '
                f'stroke="#d62728" stroke-width="2"><title>drift {escape(p["day"])}</title></line>'
            )
    parts.append(f'<text x="{LEFT}" y="{HEIGHT - 6}" font-size="10">{escape(shown[0]["day"])}</text>')
    last = shown[-1].get("last_day", shown[-1]["day"])
    parts.append(
        f'<text x="{LEFT + plot_w}" y="{HEIGHT - 6}" font-size="10" text-anchor="end">{escape(last)}</text>'
    )
    parts.append("</svg>")
    return "".join(parts)
