"""Render a drift report (the dict from :func:`mlflywheel.drift.check.run_drift_check`) as HTML.

The page is self-contained (inline CSS, no scripts, no external assets) so it can be opened
straight from the lake or from MLflow's artifact viewer.
"""

from __future__ import annotations

import html
import json
from typing import Any

_CSS = """
body { font-family: system-ui, -apple-system, Segoe UI, sans-serif; margin: 2rem; color: #1f2328; }
h1 { font-size: 1.4rem; margin-bottom: .25rem; }
h2 { font-size: 1.1rem; margin-top: 1.75rem; }
table { border-collapse: collapse; margin-top: .5rem; }
th, td { border: 1px solid #d0d7de; padding: .35rem .7rem; text-align: left; font-size: .92rem; }
th { background: #f6f8fa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.drift td { background: #ffebe9; }
tr.drift td.flag { color: #cf222e; font-weight: 600; }
.verdict { display: inline-block; padding: .3rem .8rem; border-radius: 1rem; font-weight: 600; }
.verdict.drift { background: #ffebe9; color: #cf222e; }
.verdict.no_drift { background: #dafbe1; color: #1a7f37; }
.verdict.skipped { background: #eaeef2; color: #57606a; }
.muted { color: #57606a; }
pre { background: #f6f8fa; padding: .75rem; overflow-x: auto; font-size: .85rem; }
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _num(value: Any, digits: int = 4) -> str:
    if value is None:
        return "&ndash;"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return _e(value)
    # Tiny p-values matter (they are the evidence), so switch to scientific notation.
    return f"{number:.{digits}g}" if abs(number) < 1e-3 and number != 0 else f"{number:.{digits}f}"


def _key_values(rows: list[tuple[str, Any]]) -> str:
    body = "".join(f"<tr><th>{_e(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def _feature_row(feature: dict[str, Any]) -> str:
    drifted = bool(feature.get("is_drift"))
    missing = ""
    if feature.get("missing_reference") or feature.get("missing_current"):
        before, after = feature.get("missing_reference", 0), feature.get("missing_current", 0)
        missing = f"{100 * before:.1f}% &rarr; {100 * after:.1f}%"
    return (
        f'<tr class="{"drift" if drifted else "ok"}">'
        f"<td>{_e(feature.get('name'))}</td>"
        f"<td>{_e(feature.get('kind'))}</td>"
        f"<td>{_e(feature.get('test'))}</td>"
        f'<td class="num">{_num(feature.get("statistic"))}</td>'
        f'<td class="num">{_num(feature.get("p_value"))}</td>'
        f'<td class="num">{missing}</td>'
        f'<td class="flag">{"yes" if drifted else "no"}</td>'
        "</tr>"
    )


def _feature_table(features: list[dict[str, Any]]) -> str:
    head = (
        "<tr><th>feature</th><th>kind</th><th>test</th><th>statistic</th><th>p-value</th>"
        "<th>missing (ref &rarr; cur)</th><th>drift</th></tr>"
    )
    return f"<table>{head}{''.join(_feature_row(f) for f in features)}</table>"


def _extra_section(title: str, value: Any) -> str:
    # Decision / backfill details are written by later stages; show whatever they hold.
    if isinstance(value, dict):
        rows = [
            (key, _e(json.dumps(item, default=str) if isinstance(item, dict | list) else item))
            for key, item in value.items()
        ]
        return f"<h2>{_e(title)}</h2>{_key_values(rows)}"
    return f"<h2>{_e(title)}</h2><pre>{_e(json.dumps(value, indent=2, default=str))}</pre>"


def render_html(report: dict[str, Any]) -> str:
    """A readable, self-contained HTML page for one drift report."""
    status = str(report.get("status", "skipped"))
    verdict = {"drift": "DRIFT", "no_drift": "no drift", "skipped": "skipped"}.get(status, status)
    window = report.get("window") or []
    window_text = f"{window[0]} &rarr; {window[1]}" if len(window) == 2 else "&ndash;"
    data_drift = report.get("data_drift") or {}
    prediction = report.get("prediction_drift")

    summary = _key_values(
        [
            ("dataset", _e(report.get("dataset"))),
            ("day", _e(report.get("day"))),
            ("window", window_text),
            ("champion version", _e(report.get("champion_version") or "none")),
            ("backend", _e(report.get("backend"))),
            ("correction", _e(report.get("correction"))),
            ("p-value", _num(report.get("p_value"))),
            ("threshold (after correction)", _num(data_drift.get("threshold"))),
            ("rows (reference / current)", f"{_e(data_drift.get('n_reference', '–'))} / "
             f"{_e(data_drift.get('n_current', report.get('n_current', '–')))}"),
            ("drifted features", _e(", ".join(report.get("drifted_features") or []) or "none")),
            ("generated at", _e(report.get("generated_at"))),
        ]
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Drift report: {_e(report.get('dataset'))} {_e(report.get('day'))}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Drift report: {_e(report.get('dataset'))}, {_e(report.get('day'))}</h1>",
        f'<p><span class="verdict {_e(status)}">{_e(verdict)}</span>',
    ]
    if report.get("reason"):
        parts.append(f' <span class="muted">{_e(report["reason"])}</span>')
    parts.append("</p>")
    parts.append(summary)
    if data_drift.get("features"):
        parts.append("<h2>Data drift per feature</h2>")
        parts.append(_feature_table(data_drift["features"]))
    if prediction:
        parts.append("<h2>Prediction drift</h2>")
        parts.append(
            f'<p class="muted">Champion scores on the current rows vs the reference scores; '
            f"drift when p &lt; {_num(report.get('p_value'))}.</p>"
        )
        parts.append(_feature_table([prediction]))
    for key, title in (("decision", "Decision"), ("backfill", "Backfill")):
        if report.get(key) is not None:
            parts.append(_extra_section(title, report[key]))
    parts.append("</body></html>")
    return "\n".join(parts)
