"""The self-contained HTML report: inline SVG plots and the JSON report, nothing fetched.

Three plots: decisions over simulated time by outcome (stacked bars), the distribution of
time to containment, and the blast-radius histogram. Every bar carries its numbers as
``data-`` attributes (``data-series``, ``data-count``, ...) and a ``<title>`` tooltip, so a
reader (or a test) can check a plot against the report it was drawn from; the full JSON
report is inlined as ``<script type="application/json" id="report">``.
"""

from __future__ import annotations

import html
import json
from collections import Counter
from typing import Any

from ._report import OUTCOMES, SimulationReport

__all__ = ["render_html"]

_COLOURS = {
    "allow": "#2e7d32",
    "modify": "#66bb6a",
    "ask": "#f9a825",
    "respond": "#8e24aa",
    "deny": "#c62828",
}
_W, _H, _PAD = 720, 240, 40


def _e(x: object) -> str:
    return html.escape(str(x), quote=True)


def _bars(
    series: str,
    bins: list[tuple[str, dict[str, int]]],
    keys: tuple[str, ...],
    colours: dict[str, str],
    xlabel: str,
    ylabel: str,
) -> str:
    """A stacked bar chart: one bar per bin, one segment per key."""
    top = max((sum(v.values()) for _, v in bins), default=0) or 1
    inner_w, inner_h = _W - 2 * _PAD, _H - 2 * _PAD
    step = inner_w / max(1, len(bins))
    width = max(1.0, step * 0.85)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" data-plot="{_e(series)}" '
        f'data-max="{top}" width="{_W}" height="{_H}" viewBox="0 0 {_W} {_H}" role="img">',
        f'<line x1="{_PAD}" y1="{_H - _PAD}" x2="{_W - _PAD}" y2="{_H - _PAD}" stroke="#555"/>',
        f'<line x1="{_PAD}" y1="{_PAD}" x2="{_PAD}" y2="{_H - _PAD}" stroke="#555"/>',
        f'<text x="{_PAD - 4}" y="{_PAD + 4}" text-anchor="end" font-size="10">{top}</text>',
        f'<text x="{_PAD - 4}" y="{_H - _PAD}" text-anchor="end" font-size="10">0</text>',
        f'<text x="{_W / 2}" y="{_H - 8}" text-anchor="middle" font-size="11">{_e(xlabel)}</text>',
        f'<text x="12" y="{_H / 2}" font-size="11" transform="rotate(-90 12 {_H / 2})" '
        f'text-anchor="middle">{_e(ylabel)}</text>',
    ]
    for i, (label, values) in enumerate(bins):
        x = _PAD + i * step + (step - width) / 2
        y: float = _H - _PAD
        for k in keys:
            n = values.get(k, 0)
            if n <= 0:
                continue
            h = inner_h * n / top
            y -= h
            out.append(
                f'<rect x="{x:.2f}" y="{y:.2f}" width="{width:.2f}" height="{h:.4f}" '
                f'fill="{colours.get(k, "#1565c0")}" data-series="{_e(series)}" '
                f'data-bin="{_e(label)}" data-key="{_e(k)}" data-count="{n}">'
                f"<title>{_e(label)}: {n:,} {_e(k)}</title></rect>"
            )
        if len(bins) <= 24 or i % max(1, len(bins) // 12) == 0:
            out.append(
                f'<text x="{x + width / 2:.2f}" y="{_H - _PAD + 12}" text-anchor="middle" '
                f'font-size="9">{_e(label)}</text>'
            )
    out.append("</svg>")
    return "\n".join(out)


def _histogram(values: list[float], bins: int = 12) -> list[tuple[str, dict[str, int]]]:
    if not values:
        return []
    lo, hi = min(values), max(values)
    if hi <= lo:
        return [(f"{lo:g}", {"agents": len(values)})]
    width = (hi - lo) / bins
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, int((v - lo) / width))] += 1
    return [
        (f"{lo + i * width:.3g}-{lo + (i + 1) * width:.3g}", {"agents": n})
        for i, n in enumerate(counts)
    ]


def render_html(report: SimulationReport) -> str:
    """The report as one self-contained HTML page (no script, style or data fetched)."""
    data = report.to_dict(timing=report.seconds > 0)
    width, points = report.timeline_points()
    timeline = [(f"{i * width:g}s", p) for i, p in enumerate(points)]
    times = [
        c.time_to_containment
        for c in report.containment
        if c.contained and c.time_to_containment is not None
    ]
    acted = [c for c in report.containment if c.first_act is not None]
    blast = Counter(len(c.blast_agents) for c in acted)
    blast_bins = [(str(k), {"agents": blast[k]}) for k in range(0, max(blast, default=-1) + 1)]
    calls = data["calls"]
    cont = data["containment"]
    rows = [
        ("interactions", f"{report.interactions:,}"),
        ("runs", f"{report.runs:,}"),
        ("simulated time", f"{report.simulated_seconds:,.1f} s"),
        (
            "tool calls",
            f"{calls['total']:,} ({calls['honest']:,} honest, {calls['harmful']:,} harmful)",
        ),
        ("honest calls stopped", f"{calls['honest_stopped']:,}"),
        ("harmful calls let through", f"{calls['harmful_allowed']:,}"),
        ("messages", f"{data['messages']['sent']:,} sent, {data['messages']['held']:,} held"),
        (
            "compromised agents",
            f"{cont['compromised']} ({cont['acted']} acted, {cont['contained']} contained)",
        ),
        ("blast side effects", f"{cont['blast_side_effects']:,}"),
    ]
    if report.seconds > 0:
        rows.append(("throughput", f"{report.throughput:,.0f} interactions/s ({report.workers})"))
    table = "\n".join(
        f'<tr data-field="{_e(k)}"><th>{_e(k)}</th><td>{_e(v)}</td></tr>' for k, v in rows
    )
    legend = " ".join(f'<span style="color:{_COLOURS[o]}">&#9632; {o}</span>' for o in OUTCOMES)
    payload = json.dumps(data, ensure_ascii=False, sort_keys=True).replace("</", "<\\/")
    agents = "\n".join(
        "<tr>"
        + "".join(
            f"<td>{_e('-' if c[k] is None else c[k])}</td>"
            for k in (
                "agent",
                "role",
                "first_act",
                "contained",
                "signal",
                "response",
                "time_to_containment",
                "messages_to_containment",
                "harmful_calls",
                "harmful_allowed",
                "blast_agents",
                "blast_side_effects",
            )
        )
        + "</tr>"
        for c in data["compromised_agents"]
    )
    parts: list[Any] = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Simulation: {_e(report.scenario)}</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:60em}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px;"
        "text-align:left;font-size:13px}svg{background:#fafafa;margin:.5em 0}</style>",
        "</head><body>",
        f"<h1>Simulation: {_e(report.scenario)}</h1>",
        f"<p>seed {report.seed}, {report.shards} shards, policy {_e(report.policy)}</p>",
        f'<table id="summary">{table}</table>',
        "<h2>Decisions over time, by outcome</h2>",
        f"<p>{legend}</p>",
        _bars("decisions", timeline, OUTCOMES, _COLOURS, "simulated time", "decisions"),
        "<h2>Time to containment</h2>",
        f"<p>{len(times)} contained of {cont['acted']} compromised agents that acted "
        f"(simulated seconds from its first step after turning to the breaker's action)</p>",
        _bars(
            "containment",
            _histogram(times),
            ("agents",),
            {"agents": "#1565c0"},
            "seconds to containment",
            "agents",
        ),
        "<h2>Blast radius</h2>",
        "<p>agents reached downstream of each compromised agent before containment</p>",
        _bars(
            "blast",
            blast_bins,
            ("agents",),
            {"agents": "#6d4c41"},
            "agents reached",
            "compromised agents",
        ),
        "<h2>Compromised agents</h2>",
        '<table id="agents"><tr><th>agent</th><th>role</th><th>first act</th>'
        "<th>contained</th><th>signal</th><th>response</th><th>time</th><th>messages</th>"
        "<th>harmful</th><th>let through</th><th>blast agents</th><th>side effects</th></tr>",
        agents,
        "</table>",
        f'<script type="application/json" id="report">{payload}</script>',
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"
