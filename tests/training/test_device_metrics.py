"""Validation metrics with torch against scikit-learn and the project's own conventions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from mlflywheel.training.device_metrics import PROBABILITY_CLIP, binary_metrics_tensor, metrics_as_floats
from mlflywheel.training.loop import binary_metrics
from sklearn.metrics import average_precision_score, log_loss, roc_auc_score

TOLERANCE = 1e-6  # the bound; the values agree to about 1e-15


def torch_metrics(labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    return metrics_as_floats(binary_metrics_tensor(torch.from_numpy(labels), torch.from_numpy(scores)))


def sklearn_metrics(labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    clipped = np.clip(scores.astype(np.float64), PROBABILITY_CLIP, 1 - PROBABILITY_CLIP)
    return {
        "pr_auc": average_precision_score(labels, clipped),
        "roc_auc": roc_auc_score(labels, clipped),
        "log_loss": log_loss(labels, clipped, labels=[0, 1]),
    }


@pytest.mark.parametrize("case", range(24))
def test_equal_to_sklearn_with_and_without_ties(case: int) -> None:
    rng = np.random.default_rng(case)
    rows = int(rng.integers(2, 5000))
    labels = (rng.random(rows) < rng.uniform(0.01, 0.6)).astype(np.int64)
    labels[:2] = [0, 1]  # both classes
    scores = (rng.random(rows) * 0.7 + 0.3 * labels).astype(np.float32)
    if case % 3 == 1:
        scores = np.round(scores, 2)  # many ties, across both labels
    if case % 3 == 2:
        scores[: rows // 3] = 0.0  # ties created by the clip: 0 and 1e-9 are both 1e-7
        scores[rows // 3 : rows // 2] = 1e-9
    got, want = torch_metrics(labels, scores), sklearn_metrics(labels, scores)
    for name, value in want.items():
        assert got[name] == pytest.approx(value, abs=TOLERANCE), name


def test_a_large_split_as_on_the_gpu() -> None:
    rng = np.random.default_rng(7)
    labels = (rng.random(428_571) < 0.011).astype(np.int64)
    scores = 1 / (1 + np.exp(-(rng.normal(size=labels.size) + 2.5 * labels - 4)))
    got, want = (
        torch_metrics(labels, scores.astype(np.float32)),
        sklearn_metrics(labels, scores.astype(np.float32)),
    )
    for name, value in want.items():
        assert got[name] == pytest.approx(value, abs=TOLERANCE), name


def test_all_negative_labels() -> None:
    labels, scores = np.zeros(6, dtype=np.int64), np.linspace(0.05, 0.6, 6)
    got = torch_metrics(labels, scores)
    # The project's convention (binary_metrics): no positive, no PR-AUC; one class, no ROC-AUC
    # (scikit-learn warns there, and returns 0 or NaN depending on the metric and its version).
    assert math.isnan(got["pr_auc"]) and math.isnan(got["roc_auc"])
    assert got["log_loss"] == pytest.approx(log_loss(labels, scores, labels=[0, 1]), abs=TOLERANCE)


def test_all_positive_labels() -> None:
    labels, scores = np.ones(5, dtype=np.int64), np.array([0.9, 0.2, 0.2, 0.7, 1.0])
    got = torch_metrics(labels, scores)
    assert got["pr_auc"] == pytest.approx(average_precision_score(labels, scores), abs=TOLERANCE) == 1.0
    assert math.isnan(got["roc_auc"])
    clipped = np.clip(scores, PROBABILITY_CLIP, 1 - PROBABILITY_CLIP)
    assert got["log_loss"] == pytest.approx(log_loss(labels, clipped, labels=[0, 1]), abs=TOLERANCE)


@pytest.mark.parametrize(
    ("labels", "scores"),
    [
        ([], []),
        ([0, 1], [0.1, math.nan]),
        ([0, 1, 1], [0.1, math.inf, 0.4]),
    ],
)
def test_undefined_everywhere_on_no_rows_or_non_finite_scores(labels: list, scores: list) -> None:
    got = torch_metrics(np.array(labels, dtype=np.int64), np.array(scores, dtype=np.float64))
    assert all(math.isnan(value) for value in got.values())


@pytest.mark.parametrize(
    ("labels", "scores"),
    [
        ([0, 0, 0, 0, 0], [0.1] * 5),
        ([1, 1, 1], [0.3, 0.3, 0.8]),
        ([0, 1, 0, 1], [0.1, 0.9, 0.2, 0.8]),
        ([0, 1, 1, 0, 0, 1], [0.5, 0.5, 0.5, 0.2, 0.9, 0.0]),
        ([0, 1], [0.1, math.nan]),
    ],
)
def test_same_values_as_binary_metrics(labels: list, scores: list) -> None:
    """The training loop's metrics and the promotion's (``binary_metrics``) agree, NaNs included."""
    y, p = np.array(labels, dtype=np.int64), np.array(scores, dtype=np.float64)
    got, want = torch_metrics(y, p), binary_metrics(y, p)
    for name in ("pr_auc", "roc_auc", "log_loss"):
        if math.isnan(want[name]):
            assert math.isnan(got[name]), name
        else:
            assert got[name] == pytest.approx(want[name], abs=TOLERANCE), name


def test_label_and_score_counts_must_match() -> None:
    with pytest.raises(ValueError, match="3 labels for 2 scores"):
        binary_metrics_tensor(torch.zeros(3), torch.zeros(2))
