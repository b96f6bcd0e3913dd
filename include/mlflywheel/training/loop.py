"""The training loop and evaluation.

The whole training table is moved to the device once; each epoch draws a ``torch.randperm``
on the device and takes batches as index slices of it. For a few hundred thousand tabular
rows this is much faster than a DataLoader with per-sample ``__getitem__`` (no Python per
row, no host-to-device copy per batch). bf16 autocast is used only on CUDA. The epoch with
the best validation PR-AUC is kept.
"""

from __future__ import annotations

import copy
import logging
import math
import random
import time
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from mlflywheel.training.model import Preprocessor, make_loss, pos_weight_for

log = logging.getLogger("mlflywheel.training")

Tensors = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # (cat, num, label)
EVAL_BATCH = 65_536


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def make_tensors(preprocessor: Preprocessor, df: pd.DataFrame, target: str) -> Tensors:
    """Preprocess a split into ``(cat, num, y)`` CPU tensors."""
    cat, num = preprocessor.transform(df)
    y = torch.from_numpy(pd.to_numeric(df[target]).to_numpy(dtype="float32", copy=True))
    return cat, num, y


@torch.no_grad()
def predict_logits(
    model: nn.Module, cat: torch.Tensor, num: torch.Tensor, device: torch.device
) -> torch.Tensor:
    """Logits in float32 on the CPU, scored in large batches in eval mode."""
    was_training = model.training
    model.eval()
    out = []
    autocast = device.type == "cuda"
    for start in range(0, len(cat), EVAL_BATCH):
        c = cat[start : start + EVAL_BATCH].to(device, non_blocking=True)
        n = num[start : start + EVAL_BATCH].to(device, non_blocking=True)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=autocast):
            out.append(model(c, n).float().cpu())
    model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0)


def binary_metrics(y_true: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """PR-AUC (average precision), ROC-AUC, log loss; NaN where a metric is undefined."""
    from sklearn.metrics import average_precision_score, log_loss, roc_auc_score

    y = np.asarray(y_true).astype(int)
    p = np.clip(np.asarray(proba, dtype=np.float64), 1e-7, 1 - 1e-7)
    positives = int(y.sum())
    out = {"rows": float(len(y)), "positives": float(positives)}
    if len(y) == 0 or not np.all(np.isfinite(np.asarray(proba, dtype=np.float64))):
        return {**out, "pr_auc": math.nan, "roc_auc": math.nan, "log_loss": math.nan}
    both = 0 < positives < len(y)
    out["pr_auc"] = float(average_precision_score(y, p)) if positives else math.nan
    out["roc_auc"] = float(roc_auc_score(y, p)) if both else math.nan
    out["log_loss"] = float(log_loss(y, p, labels=[0, 1]))
    return out


MIN_BATCH_SIZE = 16  # below this a step's gradient is mostly noise, and the per-step overhead dominates


def effective_batch_size(requested: int, train_rows: int, min_steps_per_epoch: int) -> int:
    """The batch size to train with: ``requested`` at most, small enough that an epoch over
    ``train_rows`` takes at least ``min_steps_per_epoch`` optimiser steps, never below 16 (nor
    above ``requested``).

    ``min(requested, max(16, train_rows // min_steps_per_epoch))``: the floor division (rather
    than rounding up) is what guarantees the minimum, e.g. 2,050 rows and 100 steps give batches of
    20 (103 steps), where 21 would give 98. A 940-row split with the defaults (1024, 8) trains with
    batches of 117 (9 steps per epoch) instead of one step of 940.
    """
    if requested < 1 or train_rows < 0 or min_steps_per_epoch < 1:
        raise ValueError(
            f"need requested >= 1, train_rows >= 0, min_steps_per_epoch >= 1 "
            f"(got {requested}, {train_rows}, {min_steps_per_epoch})"
        )
    return min(requested, max(MIN_BATCH_SIZE, train_rows // min_steps_per_epoch))


def train_model(
    model: nn.Module,
    tensors_train: Tensors,
    tensors_val: Tensors,
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    seed: int,
    device: torch.device | str | None = None,
    weight_decay: float = 1e-4,
    pos_weight: float | None = None,
) -> dict[str, Any]:
    """Train in place; the model ends with the best epoch's weights, on ``device``.

    Returns the history: per-epoch train loss and validation metrics, the best epoch,
    the pos_weight used, the device and the wall time.
    """
    if epochs < 1 or batch_size < 1 or lr <= 0:
        raise ValueError(f"need epochs >= 1, batch_size >= 1, lr > 0 (got {epochs}, {batch_size}, {lr})")
    device = torch.device(device) if device is not None else default_device()
    seed_everything(seed)
    started = time.perf_counter()

    cat, num, y = (t.to(device) for t in tensors_train)  # resident for the whole run
    val_cat, val_num, val_y = tensors_val
    val_labels = val_y.numpy()
    if pos_weight is None:
        pos_weight = pos_weight_for(y)
    loss_fn = make_loss(pos_weight, device)
    model.to(device)
    # The fused CUDA kernel updates all parameters in one launch (steps are launch-bound).
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=lr, weight_decay=weight_decay, fused=device.type == "cuda"
    )
    generator = torch.Generator(device=device).manual_seed(seed)
    n = len(y)

    history: dict[str, Any] = {"epochs": [], "pos_weight": pos_weight, "device": str(device)}
    best_score, best_epoch, best_state = -math.inf, 0, None
    for epoch in range(1, epochs + 1):
        epoch_started = time.perf_counter()
        model.train()
        order = torch.randperm(n, device=device, generator=generator)
        train_loss = _train_epoch(model, optimizer, loss_fn, (cat, num, y), order, batch_size, device)
        proba = torch.sigmoid(predict_logits(model, val_cat, val_num, device)).numpy()
        metrics = binary_metrics(val_labels, proba)
        record = {
            "epoch": epoch,
            "train_loss": train_loss,
            "val_pr_auc": metrics["pr_auc"],
            "val_roc_auc": metrics["roc_auc"],
            "val_log_loss": metrics["log_loss"],
            "seconds": time.perf_counter() - epoch_started,
        }
        history["epochs"].append(record)
        score = metrics["pr_auc"] if math.isfinite(metrics["pr_auc"]) else -math.inf
        if best_state is None or score > best_score:
            best_score, best_epoch = score, epoch
            best_state = copy.deepcopy(model.state_dict())
        log.info(
            "epoch %d/%d train_loss=%.4f val_pr_auc=%.4f val_roc_auc=%.4f (%.1fs)%s",
            epoch, epochs, train_loss, metrics["pr_auc"], metrics["roc_auc"], record["seconds"],
            " *best*" if best_epoch == epoch else "",
        )  # fmt: skip

    assert best_state is not None
    model.load_state_dict(best_state)
    model.eval()
    history["best_epoch"] = best_epoch
    history["best_val_pr_auc"] = best_score if math.isfinite(best_score) else math.nan
    history["seconds"] = time.perf_counter() - started
    return history


def _train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: nn.Module,
    tensors: Tensors,
    order: torch.Tensor,
    batch_size: int,
    device: torch.device,
) -> float:
    """One pass over the resident training tensors in ``order``; returns the mean loss."""
    cat, num, y = tensors
    autocast = device.type == "cuda"
    total_loss = torch.zeros((), device=device)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=autocast):
            logits = model(cat[idx], num[idx])
        loss = loss_fn(logits.float(), y[idx])  # the loss itself in fp32
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total_loss += loss.detach() * len(idx)  # no .item(): avoids a sync per batch
    return float(total_loss) / max(len(order), 1)


def predict_proba(model: Any, preprocessor: Preprocessor | None, df: pd.DataFrame) -> np.ndarray:
    """Fraud probabilities for ``df``.

    ``model`` is either a network (then ``preprocessor`` is required) or anything with
    ``predict_proba(df)`` that includes its own preprocessing (a registry-loaded model).
    """
    if preprocessor is None:
        if not hasattr(model, "predict_proba"):
            raise TypeError("a bare network needs its preprocessor")
        return np.asarray(model.predict_proba(df), dtype=np.float64)
    cat, num = preprocessor.transform(df)
    device = next(model.parameters()).device
    return torch.sigmoid(predict_logits(model, cat, num, device)).double().numpy()


def evaluate(
    model: Any, preprocessor: Preprocessor | None, df: pd.DataFrame, target: str
) -> dict[str, float]:
    """``{"pr_auc", "roc_auc", "log_loss", "rows", "positives"}`` of the model on ``df``."""
    proba = predict_proba(model, preprocessor, df)
    labels = pd.to_numeric(df[target]).astype(int).to_numpy()
    metrics = binary_metrics(labels, proba)
    metrics["rows"] = int(metrics["rows"])
    metrics["positives"] = int(metrics["positives"])
    return metrics
