"""Ranking metrics (PR-AUC as average precision, ROC-AUC) for many bootstrap resamples at once.

A resample drawn with replacement is a vector of row counts, so a block of resamples is a matrix of
weights and each metric is computed for all of them at once over the rows sorted by score: no
Python loop per resample. Values equal scikit-learn's ``average_precision_score`` and
``roc_auc_score`` on the rows repeated by their counts (ties form one threshold step). Used by the
gate's paired bootstrap (:mod:`mlflywheel.promote`) and the performance check
(:mod:`mlflywheel.drift.performance`). numpy only.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

METRICS = ("pr_auc", "roc_auc")
BOOTSTRAP_CELLS = 2_000_000  # resamples x rows held in memory at once (~16 MB per float64 array)


def score_order(scores: Any, *, clip: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Row order by descending score and the start of each run of tied scores.

    ``clip`` first clips scores to ``[clip, 1 - clip]`` (as the training metrics do, so that
    probabilities that only differ in float noise near 0 or 1 tie).
    """
    values = np.asarray(scores, dtype=np.float64).ravel()
    if clip is not None:
        values = np.clip(values, clip, 1 - clip)
    order = np.argsort(-values, kind="mergesort")
    ranked = values[order]
    starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])
    return order, starts


def weighted_metrics(
    weights: np.ndarray,
    labels: np.ndarray,
    order: np.ndarray,
    starts: np.ndarray,
    metrics: tuple[str, ...] = METRICS,
) -> dict[str, np.ndarray]:
    """Average precision and/or ROC-AUC for each row of ``weights`` (resamples x rows, counts).

    ``order`` and ``starts`` come from :func:`score_order`. NaN where a resample lacks positives
    (AP) or either class (ROC-AUC).
    """
    unknown = set(metrics) - set(METRICS)
    if unknown:
        raise ValueError(f"unknown metric(s) {sorted(unknown)}; known: {METRICS}")
    labels = np.asarray(labels, dtype=np.float64)
    ranked = weights[:, order]
    tp_step = ranked * labels[order]  # positives at each score
    fp_step = ranked - tp_step
    if len(starts) < len(order):  # ties: one step per distinct score
        tp_step = np.add.reduceat(tp_step, starts, axis=1)
        fp_step = np.add.reduceat(fp_step, starts, axis=1)
    tp, fp = np.cumsum(tp_step, axis=1), np.cumsum(fp_step, axis=1)
    positives, negatives = tp[:, -1], fp[:, -1]
    out: dict[str, np.ndarray] = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        if "pr_auc" in metrics:
            predicted = tp + fp  # zero only before the first positive, where tp_step is zero too
            precision_steps = (tp_step * (tp / np.where(predicted > 0, predicted, 1.0))).sum(axis=1)
            out["pr_auc"] = np.where(positives > 0, precision_steps / positives, np.nan)
        if "roc_auc" in metrics:
            # negatives scored strictly lower than each step, plus half the tied ones
            below = negatives[:, None] - fp + 0.5 * fp_step
            pairs = positives * negatives
            out["roc_auc"] = np.where(pairs > 0, (tp_step * below).sum(axis=1) / pairs, np.nan)
    return out


def bootstrap_counts(rng: np.random.Generator, rows: int, samples: int) -> Iterator[np.ndarray]:
    """``samples`` resamples of ``rows`` rows drawn with replacement, as blocks of count vectors
    (resamples x rows), at most :data:`BOOTSTRAP_CELLS` cells a block (bounded memory)."""
    block = max(1, BOOTSTRAP_CELLS // max(rows, 1))
    for first in range(0, samples, block):
        size = min(block, samples - first)
        draws = rng.integers(0, rows, size=(size, rows)) + (np.arange(size) * rows)[:, None]
        yield np.bincount(draws.ravel(), minlength=size * rows).reshape(size, rows).astype(np.float64)
