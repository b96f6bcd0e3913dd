"""The training loop and evaluation.

The whole training table is moved to the device once; each epoch draws a ``torch.randperm``
on the device and takes batches as index gathers from it. For a few hundred thousand tabular
rows this is much faster than a DataLoader with per-sample ``__getitem__`` (no Python per
row, no host-to-device copy per batch). bf16 autocast is used only on CUDA. The step itself is
:mod:`mlflywheel.training.steps` (a replayed CUDA graph on CUDA, eager elsewhere).

The validation split is resident too: each epoch scores it in large batches and computes its
metrics on the device (:mod:`mlflywheel.training.device_metrics`); the epoch with the best
validation PR-AUC is kept as a device-side copy of the weights.
"""

from __future__ import annotations

import logging
import math
import random
import time
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from mlflywheel.training.device_metrics import binary_metrics_tensor, metrics_as_floats
from mlflywheel.training.model import Preprocessor, pos_weight_for
from mlflywheel.training.steps import EagerSteps, StaticSteps, Tensors, build_steps

log = logging.getLogger("mlflywheel.training")

EVAL_BATCH = 65_536  # rows scored at once on the CPU
EVAL_BATCH_CUDA = 524_288  # and on a GPU (about 256 MiB of activations at the default width)


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
def score_logits(
    model: nn.Module, cat: torch.Tensor, num: torch.Tensor, device: torch.device
) -> torch.Tensor:
    """Float32 logits on ``device``, scored in large batches in eval mode (inputs are moved per
    batch unless they are already there)."""
    was_training = model.training
    model.eval()
    out = []
    cuda = device.type == "cuda"
    batch = EVAL_BATCH_CUDA if cuda else EVAL_BATCH
    for start in range(0, len(cat), batch):
        c = cat[start : start + batch].to(device, non_blocking=True)
        n = num[start : start + batch].to(device, non_blocking=True)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=cuda):
            out.append(model(c, n).float())
    model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, device=device)


def predict_logits(
    model: nn.Module, cat: torch.Tensor, num: torch.Tensor, device: torch.device
) -> torch.Tensor:
    """Logits in float32 on the CPU, scored in large batches in eval mode."""
    return score_logits(model, cat, num, device).cpu()


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
    step: str = "auto",
) -> dict[str, Any]:
    """Train in place; the model ends with the best epoch's weights, on ``device``.

    ``step`` is ``auto`` (a captured CUDA graph on CUDA, eager elsewhere), ``graph`` or ``eager``
    (:mod:`mlflywheel.training.steps`). Returns the history: per-epoch train loss, validation
    metrics and times, the best epoch, the pos_weight, the device, the step mode used, the
    set-up time (upload, warm-up and capture) and the wall time.
    """
    if epochs < 1 or batch_size < 1 or lr <= 0:
        raise ValueError(f"need epochs >= 1, batch_size >= 1, lr > 0 (got {epochs}, {batch_size}, {lr})")
    device = torch.device(device) if device is not None else default_device()
    seed_everything(seed)
    started = time.perf_counter()

    train = tuple(t.to(device) for t in tensors_train)  # resident for the whole run
    val = tuple(t.to(device) for t in tensors_val)  # validation too: scored and measured on device
    if pos_weight is None:
        pos_weight = pos_weight_for(train[2])
    model.to(device)
    steps = build_steps(
        step, model, train, pos_weight=pos_weight, lr=lr, weight_decay=weight_decay,
        batch_size=batch_size, device=device,
    )  # fmt: skip
    generator = torch.Generator(device=device).manual_seed(seed)
    history: dict[str, Any] = {
        "epochs": [], "pos_weight": pos_weight, "device": str(device), "step": steps.mode,
        "setup_seconds": time.perf_counter() - started,
    }  # fmt: skip
    best = BestWeights()
    for epoch in range(1, epochs + 1):
        record = _run_epoch(model, steps, train, val, generator, device)
        record["epoch"] = epoch
        history["epochs"].append(record)
        score = record["val_pr_auc"] if math.isfinite(record["val_pr_auc"]) else -math.inf
        if best.epoch == 0 or score > best.score:
            best.keep(model, epoch, score)
        log.info(
            "epoch %d/%d train_loss=%.4f val_pr_auc=%.4f val_roc_auc=%.4f (%.1fs)%s",
            epoch, epochs, record["train_loss"], record["val_pr_auc"], record["val_roc_auc"],
            record["seconds"], " *best*" if best.epoch == epoch else "",
        )  # fmt: skip

    best.restore(model)
    model.eval()
    history["best_epoch"] = best.epoch
    history["best_val_pr_auc"] = best.score if math.isfinite(best.score) else math.nan
    history["seconds"] = time.perf_counter() - started
    return history


def _run_epoch(
    model: nn.Module,
    steps: EagerSteps | StaticSteps,
    train: Tensors,
    val: Tensors,
    generator: torch.Generator,
    device: torch.device,
) -> dict[str, Any]:
    """One epoch of training, then validation on the device; two reads back to the host."""
    started = time.perf_counter()
    model.train()
    order = torch.randperm(len(train[2]), device=device, generator=generator)
    train_loss = float(steps.run_epoch(order))  # waits for the epoch: the times below are true
    trained = time.perf_counter()
    logits = score_logits(model, val[0], val[1], device)
    values = metrics_as_floats(binary_metrics_tensor(val[2], torch.sigmoid(logits)))
    done = time.perf_counter()
    return {
        "train_loss": train_loss,
        "val_pr_auc": values["pr_auc"],
        "val_roc_auc": values["roc_auc"],
        "val_log_loss": values["log_loss"],
        "train_seconds": trained - started,
        "validation_seconds": done - trained,
        "seconds": done - started,
    }


class BestWeights:
    """The best epoch's weights, kept on the model's device (copies, no host round trip)."""

    def __init__(self) -> None:
        self.state: dict[str, torch.Tensor] | None = None
        self.epoch = 0
        self.score = -math.inf

    @torch.no_grad()
    def keep(self, model: nn.Module, epoch: int, score: float) -> None:
        if self.state is None:
            self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            for key, value in model.state_dict().items():
                self.state[key].copy_(value)
        self.epoch, self.score = epoch, score

    def restore(self, model: nn.Module) -> None:
        if self.state is None:
            raise RuntimeError("no epoch was kept")
        model.load_state_dict(self.state)  # copies into the parameters in place


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
    """``{"pr_auc", "roc_auc", "log_loss", "rows", "positives"}`` of the model on ``df``
    (the values :func:`binary_metrics` gives, computed with torch)."""
    proba = predict_proba(model, preprocessor, df)
    labels = pd.to_numeric(df[target]).astype(int).to_numpy()
    metrics: dict[str, Any] = metrics_as_floats(
        binary_metrics_tensor(torch.from_numpy(labels), torch.from_numpy(np.asarray(proba, dtype=np.float64)))
    )
    metrics["rows"] = len(labels)
    metrics["positives"] = int(labels.sum())
    return metrics
