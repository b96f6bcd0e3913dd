"""Ranking metrics for many bootstrap resamples at once, against scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pytest
from mlflywheel import metrics
from sklearn.metrics import average_precision_score, roc_auc_score


def test_weighted_metrics_equal_sklearn_on_repeated_rows() -> None:
    rng = np.random.default_rng(3)
    labels = (rng.random(400) < 0.15).astype(int)
    scores = np.round(rng.random(400) * 0.6 + 0.35 * labels, 2)  # rounded: many ties
    order, starts = metrics.score_order(scores)
    weights = rng.integers(0, 3, size=(12, 400)).astype(float)
    weights[0] = 1.0  # the data itself
    got = metrics.weighted_metrics(weights, labels.astype(float), order, starts)
    for row in range(len(weights)):
        rows = np.repeat(np.arange(400), weights[row].astype(int))
        assert got["pr_auc"][row] == pytest.approx(
            average_precision_score(labels[rows], scores[rows]), abs=1e-12
        )
        assert got["roc_auc"][row] == pytest.approx(roc_auc_score(labels[rows], scores[rows]), abs=1e-12)


def test_weighted_metrics_nan_without_both_classes() -> None:
    order, starts = metrics.score_order(np.array([0.9, 0.2, 0.5]))
    got = metrics.weighted_metrics(np.array([[0.0, 2.0, 1.0]]), np.array([1.0, 0.0, 0.0]), order, starts)
    assert math.isnan(got["pr_auc"][0]) and math.isnan(got["roc_auc"][0])
