"""The HTML drift report: verdict, per-feature rows (drift highlighted), prediction drift, extras."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from mlflywheel.drift.backends import get_backend
from mlflywheel.drift.report import render_html


def _report() -> dict:
    rng = np.random.default_rng(0)
    channels = ["pos", "online"]
    reference = pd.DataFrame({"channel": rng.choice(channels, 800), "amount": rng.normal(50, 10, 800)})
    current = pd.DataFrame({"channel": rng.choice(channels, 800), "amount": rng.normal(70, 10, 800)})
    backend = get_backend("scipy")
    data = backend.test(reference, current, categorical=["channel"], numeric=["amount"], p_value=0.05,
                        correction="bonferroni")
    scores = backend.test_scores(rng.beta(2, 8, 500), rng.beta(2, 8, 500), p_value=0.05)
    return {
        "dataset": "transactions",
        "day": "2026-11-05",
        "window": ["2026-11-05", "2026-11-05"],
        "champion_version": "3",
        "backend": "scipy",
        "p_value": 0.05,
        "correction": "bonferroni",
        "data_drift": data.to_dict(),
        "prediction_drift": scores.to_dict(),
        "drifted_features": data.drifted_features,
        "is_drift": True,
        "status": "drift",
        "generated_at": "2026-11-05T04:00:00+00:00",
        "decision": {"action": "retrain", "backfill_days": ["2026-11-04", "2026-11-05"]},
    }


def test_html_has_verdict_feature_rows_and_extras() -> None:
    report = _report()
    page = render_html(report)
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "<script" not in page and "http" not in page  # self-contained
    assert 'class="verdict drift"' in page and "DRIFT" in page
    expected = ("transactions", "2026-11-05", "champion version", "scipy", "bonferroni", "Decision")
    assert all(text in page for text in expected) and "retrain" in page
    rows = re.findall(r'<tr class="(drift|ok)"><td>([^<]+)</td>', page)
    assert ("drift", "amount") in rows  # the shifted feature is highlighted
    assert ("ok", "channel") in rows
    assert ("ok", "prediction_score") in rows


def test_html_for_a_skipped_check_escapes_text() -> None:
    page = render_html(
        {"dataset": "<x>", "day": "2026-11-01", "window": ["2026-11-01", "2026-11-01"], "status": "skipped",
         "reason": "no champion model yet", "data_drift": None, "prediction_drift": None}
    )
    assert "no champion model yet" in page and "&lt;x&gt;" in page and "<x>" not in page
    assert "Data drift per feature" not in page


def test_html_shows_effect_sizes_rule_reference_and_performance() -> None:
    from mlflywheel.datasets.spec import DriftPolicy, PerformancePolicy
    from mlflywheel.drift.performance import judge_performance
    from mlflywheel.drift.policy import judge_data_drift, judge_prediction_drift

    rng = np.random.default_rng(1)
    channels = ["pos", "online"]
    reference = pd.DataFrame({"channel": rng.choice(channels, 800), "amount": rng.normal(50, 10, 800)})
    current = pd.DataFrame({"channel": rng.choice(channels, 800), "amount": rng.normal(70, 10, 800)})
    policy = DriftPolicy(min_drifted_features=1)
    backend = get_backend("scipy")
    data = judge_data_drift(backend, reference, current, categorical=["channel"], numeric=["amount"],
                            policy=policy, p_value=0.01, correction="bonferroni")  # fmt: skip
    scores = judge_prediction_drift(backend, rng.beta(2, 8, 500), rng.beta(2, 8, 500), policy=policy, p_value=0.01)
    labels = (rng.random(400) < 0.2).astype(int)
    performance = judge_performance(labels, rng.random(400), metric="pr_auc", baseline=0.8,
                                    policy=PerformancePolicy())  # fmt: skip
    report = {
        "dataset": "transactions", "day": "2026-11-05", "window": ["2026-11-05", "2026-11-05"],
        "champion_version": "3", "backend": "scipy", "p_value": 0.01, "correction": "bonferroni",
        "policy": {"exclude": ["customer_segment"], "effect_size": "psi", "effect_threshold": 0.2,
                   "prediction_drift": True},
        "reference": {"kind": "training_window", "requested": "training_window", "snapshot_id": "s-1", "rows": 800},
        "seasonal": {"seasonality": "day_of_week", "reference_rows_before": 5600, "reference_rows_after": 800,
                     "unmatched_current_rows": 0, "phases": {"2": {"current_share": 1.0, "reference_rows": 800}}},
        "data_drift": data, "prediction_drift": scores, "performance": {**performance, "window": ["a", "b"]},
        "drifted_features": data["drifted_features"], "triggers": ["data_drift", "performance"],
        "status": "drift", "summary": "data drift: 1 of 2 monitored features (amount)",
    }  # fmt: skip
    page = render_html(report)
    assert "Decision rule" in page and "psi \u2265 0.2000" in page and "excluded: customer_segment" in page
    assert "training_window" in page and "Wed 100%" in page and "5600 \u2192 800 rows" in page
    assert "triggers fired</th><td>data drift, performance" in page
    assert "Performance on labelled rows" in page and performance["status"] in page
    rows = re.findall(r'<tr class="(drift|ok)"><td>([^<]+)</td>', page)
    assert ("drift", "amount") in rows and ("ok", "channel") in rows and ("ok", "prediction_score") in rows
    assert "<td>psi</td>" in page  # the effect size beside the test
