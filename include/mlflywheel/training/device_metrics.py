"""Validation metrics computed with torch where the scores already are (the GPU while training).

PR-AUC (average precision), ROC-AUC and log loss of 0/1 labels against probabilities, equal to
scikit-learn's ``average_precision_score``, ``roc_auc_score`` and ``log_loss`` on the same scores
(float64 throughout; tied scores form one threshold step, as in scikit-learn and
:mod:`mlflywheel.metrics`), with the conventions of
:func:`mlflywheel.training.loop.binary_metrics`: probabilities are clipped to
``[1e-7, 1 - 1e-7]`` first; PR-AUC is NaN without a positive label, ROC-AUC is NaN unless both
labels occur, log loss is defined for any labels; all three are NaN for no rows or a non-finite
probability (where scikit-learn warns, returns 0 or raises, the project reports "undefined").

Only fixed shapes (a sort, cumulative sums, scatter-adds into one slot per row): nothing is read
back to the host and nothing waits for the device, so an epoch validates without a round trip.
"""

from __future__ import annotations

import math

import torch

PROBABILITY_CLIP = 1e-7  # as binary_metrics clips
METRIC_NAMES = ("pr_auc", "roc_auc", "log_loss")


def binary_metrics_tensor(labels: torch.Tensor, proba: torch.Tensor) -> dict[str, torch.Tensor]:
    """``{"pr_auc", "roc_auc", "log_loss"}`` as float64 0-d tensors on the scores' device."""
    y = labels.reshape(-1).to(device=proba.device, dtype=torch.float64)
    raw = proba.reshape(-1).to(torch.float64)
    if y.numel() != raw.numel():
        raise ValueError(f"{y.numel()} labels for {raw.numel()} scores")
    nan = torch.full((), math.nan, dtype=torch.float64, device=raw.device)
    if raw.numel() == 0:
        return dict.fromkeys(METRIC_NAMES, nan)
    p = raw.clamp(PROBABILITY_CLIP, 1 - PROBABILITY_CLIP)
    positives = y.sum()
    negatives = y.numel() - positives

    ranked, order = torch.sort(p, descending=True, stable=True)
    y_ranked = y[order]
    # One group per distinct score (ties are one threshold); group g's counts land in slot g.
    new_score = torch.ones_like(ranked, dtype=torch.bool)
    new_score[1:] = ranked[1:] != ranked[:-1]
    group = torch.cumsum(new_score, 0) - 1
    tp_step = torch.zeros_like(ranked).index_add_(0, group, y_ranked)
    fp_step = torch.zeros_like(ranked).index_add_(0, group, 1 - y_ranked)
    tp, fp = torch.cumsum(tp_step, 0), torch.cumsum(fp_step, 0)
    # Slots after the last group hold zeros: they add nothing (tp_step is 0 there).
    precision = tp / (tp + fp).clamp_min(1)
    average_precision = (tp_step * precision).sum() / positives
    # Each positive beats the negatives scored strictly lower, and half of those tied with it.
    roc_auc = (tp_step * (negatives - fp + 0.5 * fp_step)).sum() / (positives * negatives)
    log_loss = -(y * torch.log(p) + (1 - y) * torch.log1p(-p)).mean()

    finite = torch.isfinite(raw).all()
    return {
        "pr_auc": torch.where(finite & (positives > 0), average_precision, nan),
        "roc_auc": torch.where(finite & (positives > 0) & (negatives > 0), roc_auc, nan),
        "log_loss": torch.where(finite, log_loss, nan),
    }


def metrics_as_floats(values: dict[str, torch.Tensor]) -> dict[str, float]:
    """The metrics as Python floats, read back in one transfer."""
    names = list(values)
    numbers = torch.stack([values[name] for name in names]).tolist() if names else []
    return dict(zip(names, (float(v) for v in numbers), strict=True))
