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
