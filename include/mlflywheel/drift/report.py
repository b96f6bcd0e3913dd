"""Render a drift report (the dict from :func:`mlflywheel.drift.check.run_drift_check`) as HTML.

The page is self-contained (inline CSS, no scripts, no external assets) so it can be opened
straight from the lake or from MLflow's artifact viewer; it is built with :mod:`mlflywheel.reports`.
"""

from __future__ import annotations

import json
from typing import Any

from mlflywheel import reports
from mlflywheel.reports import esc, number, raw

DASH = "\u2013"
_VERDICT = {"drift": "DRIFT", "no_drift": "no drift", "skipped": "skipped"}
_FEATURE_HEADERS = ["feature", "kind", "test", "statistic", "p-value", "missing (ref \u2192 cur)", "drift"]


def _missing(feature: dict[str, Any]) -> str:
    if not (feature.get("missing_reference") or feature.get("missing_current")):
        return ""
    before, after = feature.get("missing_reference", 0), feature.get("missing_current", 0)
    return f"{100 * before:.1f}% \u2192 {100 * after:.1f}%"


def _feature_table(features: list[dict[str, Any]]) -> str:
    rows = [
        (
            f.get("name"),
            f.get("kind"),
            f.get("test"),
            number(f.get("statistic")),
            number(f.get("p_value")),
            _missing(f),
            "yes" if f.get("is_drift") else "no",
        )
        for f in features
    ]
    return reports.table(
        _FEATURE_HEADERS,
        rows,
        numeric_columns=(3, 4, 5),
        cell_classes={6: "flag"},
        row_classes=["drift" if f.get("is_drift") else "ok" for f in features],
    )


def _extra_section(value: Any) -> str:
    # Decision / backfill details are written by later stages; show whatever they hold.
    if isinstance(value, dict):
        return reports.key_values(
            (key, json.dumps(item, default=str) if isinstance(item, dict | list) else item)
            for key, item in value.items()
        )
    return f"<pre>{esc(json.dumps(value, indent=2, default=str))}</pre>"


def render_html(report: dict[str, Any]) -> str:
    """A readable, self-contained HTML page for one drift report."""
    status = str(report.get("status", "skipped"))
    window = report.get("window") or []
    data_drift = report.get("data_drift") or {}
    n_current = data_drift.get("n_current", report.get("n_current", DASH))
    overview = reports.key_values(
        [
            ("dataset", report.get("dataset")),
            ("day", report.get("day")),
            ("window", f"{window[0]} \u2192 {window[1]}" if len(window) == 2 else DASH),
            ("champion version", report.get("champion_version") or "none"),
            ("backend", report.get("backend")),
            ("correction", report.get("correction")),
            ("p-value", number(report.get("p_value"))),
            ("threshold (after correction)", number(data_drift.get("threshold"))),
            ("rows (reference / current)", f"{data_drift.get('n_reference', DASH)} / {n_current}"),
            ("drifted features", ", ".join(report.get("drifted_features") or []) or "none"),
            ("generated at", report.get("generated_at")),
        ]
    )
    verdict = f'<span class="verdict {esc(status)}">{esc(_VERDICT.get(status, status))}</span>'
    if report.get("reason"):
        verdict += f' <span class="muted">{esc(report["reason"])}</span>'
    sections = [("", f"<p>{verdict}</p>"), ("", overview)]
    if data_drift.get("features"):
        sections.append(("Data drift per feature", _feature_table(data_drift["features"])))
    prediction = report.get("prediction_drift")
    if prediction:
        note = (
            '<p class="muted">Champion scores on the current rows vs the reference scores; '
            f"drift when p &lt; {esc(number(report.get('p_value')))}.</p>"
        )
        sections.append(("Prediction drift", note + _feature_table([prediction])))
    for key, title in (("decision", "Decision"), ("backfill", "Backfill")):
        if report.get(key) is not None:
            sections.append((title, _extra_section(report[key])))
    return reports.page(
        f"Drift report: {report.get('dataset')}, {report.get('day')}", [(h, raw(inner)) for h, inner in sections]
    )
