"""Performance monitoring on late labels: the metric, the verdict, the window, a concept shift."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest
from mlflywheel.datasets.spec import PerformancePolicy
from mlflywheel.datasets.upstreams.seasonal import SEASONAL_SPEC, SeasonalStream, StreamModel
from mlflywheel.drift.performance import (
    check_performance,
    holdout_baseline,
    judge_performance,
    label_window,
    metric_value,
    upper_bound,
)
from mlflywheel.lake import LocalLake, frame_to_parquet

POLICY = PerformancePolicy()  # tolerance 0.1, 200 rows, 10 positives, 7 days, 1 day of delay
CONCEPT_DAY = dt.date(2025, 3, 1)
STREAM = SeasonalStream(origin=dt.date(2025, 1, 1), concept_shift_day=CONCEPT_DAY)


def scored(days: list[dt.date], rows: int, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    frame = pd.concat([STREAM.day(d, rows, seed=seed) for d in days], ignore_index=True)
    return frame["label"].to_numpy(), StreamModel().predict_proba(frame)[:, 1]


def days_from(first: dt.date, n: int) -> list[dt.date]:
    return [first + dt.timedelta(days=i) for i in range(n)]


@pytest.mark.parametrize("metric", ["pr_auc", "roc_auc"])
def test_metric_is_scikit_learns_with_ties(metric: str) -> None:
    from sklearn.metrics import average_precision_score, roc_auc_score

    rng = np.random.default_rng(0)
    labels = (rng.random(600) < 0.15).astype(int)
    scores = np.round(rng.random(600) * 0.6 + 0.3 * labels, 2)  # rounded: many tied scores
    expected = (average_precision_score if metric == "pr_auc" else roc_auc_score)(labels, scores)
    assert metric_value(metric, labels, scores) == pytest.approx(expected, abs=1e-12)
    assert upper_bound(metric, labels, scores) > expected  # the one-sided bound lies above
    with pytest.raises(ValueError, match="metric"):
        metric_value("f1", labels, scores)


def test_holdout_baseline_from_the_version_tag() -> None:
    tags = {"flywheel.metrics": json.dumps({"holdout_pr_auc": 0.61, "holdout_roc_auc": 0.9, "val_pr_auc": 0.6})}
    assert holdout_baseline(tags, "pr_auc") == 0.61 and holdout_baseline(tags, "roc_auc") == 0.9
    assert holdout_baseline({}, "pr_auc") is None
    assert holdout_baseline({"flywheel.metrics": json.dumps({"holdout_pr_auc": None})}, "pr_auc") is None
    assert holdout_baseline({"flywheel.metrics": "not json"}, "pr_auc") is None


def test_label_window_ends_label_delay_days_before_the_check() -> None:
    assert label_window(dt.date(2025, 3, 10), POLICY) == (dt.date(2025, 3, 3), dt.date(2025, 3, 9))
    late = PerformancePolicy(window_days=3, label_delay_days=4)
    assert label_window(dt.date(2025, 3, 10), late) == (dt.date(2025, 3, 4), dt.date(2025, 3, 6))


def test_stable_champion_is_ok() -> None:
    baseline_labels, baseline_scores = scored(days_from(dt.date(2025, 2, 1), 3), 300)
    baseline = metric_value("pr_auc", baseline_labels, baseline_scores)
    labels, scores = scored(days_from(dt.date(2025, 2, 8), 7), 300)
    verdict = judge_performance(labels, scores, metric="pr_auc", baseline=baseline, policy=POLICY)
    assert (verdict["status"], verdict["triggered"]) == ("ok", False)
    assert abs(verdict["drop"]) < 0.1 and verdict["rows"] == 2100


def test_concept_shift_triggers_with_enough_labels() -> None:
    baseline_labels, baseline_scores = scored(days_from(CONCEPT_DAY - dt.timedelta(days=3), 3), 300)
    baseline = metric_value("pr_auc", baseline_labels, baseline_scores)
    labels, scores = scored(days_from(CONCEPT_DAY, 7), 300)
    verdict = judge_performance(labels, scores, metric="pr_auc", baseline=baseline, policy=POLICY)
    assert verdict["status"] == "degraded" and verdict["triggered"]
    assert verdict["drop"] > verdict["drop_bound"] > POLICY.tolerance
    assert verdict["positives"] >= POLICY.min_positives and verdict["rows"] >= POLICY.min_rows
    assert "beyond the tolerance" in verdict["reason"]


def test_concept_shift_with_too_few_labels_is_insufficient_never_a_trigger() -> None:
    labels, scores = scored(days_from(CONCEPT_DAY, 2), 50)  # 100 rows
    verdict = judge_performance(labels, scores, metric="pr_auc", baseline=0.9, policy=POLICY)
    assert (verdict["status"], verdict["triggered"], verdict["value"]) == ("insufficient_labels", False, None)
    assert verdict["reason"].startswith("insufficient labels: 100 rows (< 200)")
    few_positives = judge_performance(np.r_[np.ones(5), np.zeros(500)], np.linspace(0, 1, 505),
                                      metric="pr_auc", baseline=0.9, policy=POLICY)  # fmt: skip
    assert few_positives["status"] == "insufficient_labels" and "5 positives (< 10)" in few_positives["reason"]
    only_positives = judge_performance(np.ones(300), np.linspace(0, 1, 300), metric="roc_auc", baseline=0.9,
                                       policy=POLICY)  # fmt: skip
    assert only_positives["status"] == "insufficient_labels" and "no negatives" in only_positives["reason"]


def test_no_baseline_is_reported_not_triggered() -> None:
    labels, scores = scored(days_from(CONCEPT_DAY, 7), 300)
    verdict = judge_performance(labels, scores, metric="pr_auc", baseline=None, policy=POLICY)
    assert (verdict["status"], verdict["triggered"]) == ("no_baseline", False) and verdict["value"] > 0


def test_check_performance_reads_labelled_days_after_the_training_window(tmp_path) -> None:
    lake = LocalLake(tmp_path / "lake")
    for day in days_from(CONCEPT_DAY - dt.timedelta(days=5), 12):
        rows = STREAM.day(day, 300, seed=5)
        rows.loc[rows.index[:10], "label"] = None  # a few labels not in yet: left out
        lake.publish_partition("validated", SEASONAL_SPEC.name, day, {"data.parquet": frame_to_parquet(rows)})
    tags = {"flywheel.metrics": json.dumps({"holdout_pr_auc": 0.55})}
    check_day = CONCEPT_DAY + dt.timedelta(days=6)

    # The champion trained up to the day before the shift: only post-shift days are scored.
    record = check_performance(lake, SEASONAL_SPEC, day=check_day, policy=POLICY, metric="pr_auc",
                               model=StreamModel(), version_tags=tags, trained_until=CONCEPT_DAY - dt.timedelta(days=1))  # fmt: skip
    assert record["window"] == ["2025-02-28", "2025-03-06"]
    assert record["scored_window"] == ["2025-03-01", "2025-03-06"]
    assert record["rows"] == 6 * 290 and record["status"] == "degraded" and record["baseline"] == 0.55

    # A champion trained on the whole window has nothing unseen to be scored on.
    fresh = check_performance(lake, SEASONAL_SPEC, day=check_day, policy=POLICY, metric="pr_auc",
                              model=StreamModel(), version_tags=tags, trained_until=check_day)  # fmt: skip
    assert (fresh["status"], fresh["rows"], fresh["scored_window"]) == ("insufficient_labels", 0, None)

    off = check_performance(lake, SEASONAL_SPEC, day=check_day, policy=PerformancePolicy(enabled=False),
                            metric="pr_auc", model=StreamModel(), version_tags=tags, trained_until=None)  # fmt: skip
    assert (off["status"], off["triggered"]) == ("disabled", False)
