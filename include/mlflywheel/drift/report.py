"""Render a drift report (the dict from :func:`mlflywheel.drift.check.run_drift_check`) as HTML.

The page is self-contained (inline CSS, no scripts, no external assets) so it can be opened
straight from the lake or from MLflow's artifact viewer; it is built with :mod:`mlflywheel.reports`.
It shows the verdict and the triggers that fired, the decision rule, where the reference came
from (and how it was matched to the current window's rhythm), per feature the test beside the
effect size, prediction drift, and the champion's performance on late-labelled rows.
"""

from __future__ import annotations

import json
from typing import Any

from mlflywheel import reports
from mlflywheel.reports import esc, number, raw

DASH = "\u2013"
_VERDICT = {"drift": "DRIFT", "no_drift": "no drift", "skipped": "skipped"}
_FEATURE_HEADERS = [
    "feature", "kind", "test", "statistic", "p-value", "significant", "effect size", "effect",
    "missing (ref \u2192 cur)", "drift",
]  # fmt: skip
_TRIGGER_NAMES = {"data_drift": "data drift", "prediction_drift": "prediction drift", "performance": "performance"}
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _missing(feature: dict[str, Any]) -> str:
    if not (feature.get("missing_reference") or feature.get("missing_current")):
        return ""
    before, after = feature.get("missing_reference", 0), feature.get("missing_current", 0)
    return f"{100 * before:.1f}% \u2192 {100 * after:.1f}%"


def _drifted(feature: dict[str, Any]) -> bool:
    # Reports written before effect sizes only have ``is_drift`` (the test alone).
    return bool(feature.get("drifted", feature.get("is_drift")))


def _yes_no(value: Any) -> str:
    return DASH if value is None else ("yes" if value else "no")


def _feature_table(features: list[dict[str, Any]]) -> str:
    rows = [
        (
            f.get("name"),
            f.get("kind"),
            f.get("test"),
            number(f.get("statistic")),
            number(f.get("p_value")),
            _yes_no(f.get("significant", f.get("is_drift"))),
            f.get("effect_size") or DASH,
            number(f.get("effect")),
            _missing(f),
            "yes" if _drifted(f) else "no",
        )
        for f in features
    ]
    return reports.table(
        _FEATURE_HEADERS,
        rows,
        numeric_columns=(3, 4, 7, 8),
        cell_classes={9: "flag"},
        row_classes=["drift" if _drifted(f) else "ok" for f in features],
    )


def _extra_section(value: Any) -> str:
    # Decision / backfill details are written by later stages; show whatever they hold.
    if isinstance(value, dict):
        return reports.key_values(
            (key, json.dumps(item, default=str) if isinstance(item, dict | list) else item)
            for key, item in value.items()
        )
    return f"<pre>{esc(json.dumps(value, indent=2, default=str))}</pre>"


def _percent(share: Any) -> str:
    return DASH if share is None else f"{100 * float(share):.0f}%"


def _rule_section(report: dict[str, Any], data_drift: dict[str, Any]) -> str:
    policy = report.get("policy") or {}
    rule = data_drift.get("rule") or {}
    excluded = ", ".join(policy.get("exclude") or []) or "none"
    effect = data_drift.get("effect_size", policy.get("effect_size"))
    effect_threshold = number(data_drift.get("effect_threshold", policy.get("effect_threshold")))
    feature_rule = (
        f"p < {number(data_drift.get('threshold'))} (after {report.get('correction')}) "
        f"and {effect} \u2265 {effect_threshold}"
    )
    dataset_rule = (
        f"\u2265 {rule.get('min_drifted_features', DASH)} features and "
        f"\u2265 {_percent(rule.get('min_drifted_share'))} of the monitored ones drift"
    )
    outcome = "fired" if rule.get("fired") else "did not fire"
    return reports.key_values(
        [
            ("a feature drifts when", feature_rule),
            ("the dataset drifts when", dataset_rule),
            ("monitored / excluded", f"{rule.get('monitored', DASH)} features / excluded: {excluded}"),
            ("outcome", f"{rule.get('drifted', DASH)} drifted ({_percent(rule.get('share'))}): {outcome}"),
        ]
    )


def _phase_name(seasonality: str, phase: Any) -> str:
    if seasonality == "day_of_week" and str(phase).isdigit() and int(phase) < 7:
        return _WEEKDAYS[int(phase)]
    return f"{int(phase):02d}h" if str(phase).isdigit() else str(phase)


def _reference_section(report: dict[str, Any]) -> str:
    reference = report.get("reference") or {}
    seasonal = report.get("seasonal") or {}
    pairs: list[tuple[str, Any]] = [
        ("kind", reference.get("kind") or DASH),
        ("requested by the policy", reference.get("requested") or DASH),
        ("champion's snapshot", reference.get("snapshot_id") or DASH),
        ("rows available", reference.get("rows", DASH)),
    ]
    if reference.get("fallback_reason"):
        pairs.append(("fallback because", reference["fallback_reason"]))
    if seasonal.get("skipped"):
        pairs.append((f"{seasonal.get('seasonality')} matching", f"skipped: {seasonal['skipped']}"))
    elif seasonal:
        mix = ", ".join(
            f"{_phase_name(seasonal['seasonality'], p)} {100 * v['current_share']:.0f}%"
            for p, v in (seasonal.get("phases") or {}).items()
        )
        resampled = (
            f"reference resampled {seasonal.get('reference_rows_before')} \u2192 "
            f"{seasonal.get('reference_rows_after')} rows to the current mix ({mix or 'none'}); "
            f"{seasonal.get('unmatched_current_rows', 0)} current rows of unseen phases left out"
        )
        pairs.append((f"{seasonal['seasonality']} matching", resampled))
    return reports.key_values(pairs)


def _performance_section(performance: dict[str, Any]) -> str:
    window = performance.get("window") or []
    scored = performance.get("scored_window")
    get = performance.get
    counts = f"{get('rows', DASH)} / {get('positives', DASH)} (need {get('min_rows', DASH)} / {get('min_positives', DASH)})"
    return reports.key_values(
        [
            ("status", reports.badge(get("status"))),
            ("why", get("reason") or DASH),
            ("labelled window", f"{window[0]} \u2192 {window[1]}" if len(window) == 2 else DASH),
            ("scored (after the champion's training data)", f"{scored[0]} \u2192 {scored[1]}" if scored else "none"),
            (f"{get('metric', 'metric')} (current / holdout)", f"{number(get('value'))} / {number(get('baseline'))}"),
            ("drop / at least (tolerance)",
             f"{number(get('drop'))} / {number(get('drop_bound'))} ({number(get('tolerance'))})"),
            ("rows / positives", counts),
            ("trigger", "yes" if get("triggered") else "no"),
        ]
    )


def _overview(report: dict[str, Any], data_drift: dict[str, Any]) -> str:
    window = report.get("window") or []
    n_current = data_drift.get("n_current", report.get("n_current", DASH))
    triggers = [_TRIGGER_NAMES.get(t, t) for t in report.get("triggers") or []]
    return reports.key_values(
        [
            ("dataset", report.get("dataset")),
            ("day", report.get("day")),
            ("window", f"{window[0]} \u2192 {window[1]}" if len(window) == 2 else DASH),
            ("champion version", report.get("champion_version") or "none"),
            ("triggers fired", ", ".join(triggers) or "none"),
            ("backend", report.get("backend")),
            ("correction", report.get("correction")),
            ("p-value", number(report.get("p_value"))),
            ("threshold (after correction)", number(data_drift.get("threshold"))),
            ("rows (reference / current)", f"{data_drift.get('n_reference', DASH)} / {n_current}"),
            ("drifted features", ", ".join(report.get("drifted_features") or []) or "none"),
            ("generated at", report.get("generated_at")),
        ]
    )


def render_html(report: dict[str, Any]) -> str:
    """A readable, self-contained HTML page for one drift report."""
    status = str(report.get("status", "skipped"))
    data_drift = report.get("data_drift") or {}
    verdict = f'<span class="verdict {esc(status)}">{esc(_VERDICT.get(status, status))}</span>'
    if report.get("reason"):
        verdict += f' <span class="muted">{esc(report["reason"])}</span>'
    if report.get("summary") and report.get("summary") != report.get("reason"):
        verdict += f'<p class="muted">{esc(report["summary"])}</p>'
    sections = [("", f"<p>{verdict}</p>"), ("", _overview(report, data_drift))]
    if data_drift.get("rule"):
        sections.append(("Decision rule", _rule_section(report, data_drift)))
    if report.get("reference"):
        sections.append(("Reference", _reference_section(report)))
    if data_drift.get("features"):
        sections.append(("Data drift per feature", _feature_table(data_drift["features"])))
    prediction = report.get("prediction_drift")
    if prediction:
        note = (
            '<p class="muted">Champion scores on the current rows vs on the reference rows; drift when '
            f"p &lt; {esc(number(prediction.get('threshold', report.get('p_value'))))} (its share of the "
            "p-value) and the effect size reaches the policy's threshold.</p>"
        )
        sections.append(("Prediction drift", note + _feature_table([prediction])))
    elif (report.get("policy") or {}).get("prediction_drift") is False:
        sections.append(("Prediction drift", '<p class="muted">off (the dataset\'s drift policy)</p>'))
    if report.get("performance"):
        sections.append(("Performance on labelled rows", _performance_section(report["performance"])))
    for key, title in (("decision", "Decision"), ("backfill", "Backfill")):
        if report.get(key) is not None:
            sections.append((title, _extra_section(report[key])))
    return reports.page(
        f"Drift report: {report.get('dataset')}, {report.get('day')}", [(h, raw(inner)) for h, inner in sections]
    )
