"""The training step: eager, or the whole step captured once as a CUDA graph and replayed.

Both walk an epoch in the order of a per-epoch ``randperm`` over the training tensors, which stay
resident on the device; a batch is an index gather from them.

* :class:`EagerSteps` (the CPU, and the fallback): forward, loss, backward and optimiser step,
  launched op by op, one slice of the order per batch, the last batch as long as what is left.
* :class:`StaticSteps` (CUDA): on a GPU this small network is launch-bound (about 3 ms a step
  whatever the batch), so the whole step -- index gather, forward under bf16 autocast, loss,
  backward, a fused capturable AdamW update, gradients zeroed -- is captured once as a CUDA graph
  and replayed per batch: one launch a step.

A graph has static shapes, so :class:`StaticSteps` gives every batch ``batch_size`` slots: the
epoch's order is written into a buffer of ``steps x batch_size`` indices, padded with row 0, and a
0/1 weight per slot marks the real rows. The loss is the weighted mean over the real rows
(``sum(w * loss) / sum(w)``), so the padding of the last, partial batch contributes nothing and
its gradients equal the eager tail batch's. The graph reads its batch at a step counter that it
advances itself, so a replay needs nothing from the host. Without capture (``run_epoch`` before
:meth:`StaticSteps.capture`) the same body runs eagerly: that is how the CPU tests check it.

Dropout under the graph draws from PyTorch's graph-safe CUDA generator (a fresh offset per
replay), so each replay gets new masks. :func:`build_steps` falls back to eager training when
capture is impossible or fails, logging the reason once per process.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import torch
from torch import nn
from torch.nn import functional

log = logging.getLogger("mlflywheel.training")

STEP_MODES = ("auto", "graph", "eager")
WARMUP_STEPS = 3  # eager runs on a side stream before capture (allocator, cuBLAS, optimiser state)

Tensors = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # (cat, num, label)

_reported: set[str] = set()  # fallback reasons already logged by this process


def weighted_bce_loss(
    logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor, pos_weight: torch.Tensor
) -> torch.Tensor:
    """Mean of ``BCEWithLogitsLoss(pos_weight)`` over the rows of weight 1; rows of weight 0 add
    nothing (nor any gradient)."""
    per_row = functional.binary_cross_entropy_with_logits(
        logits, labels, pos_weight=pos_weight, reduction="none"
    )
    return (per_row * weights).sum() / weights.sum().clamp_min(1)


def make_optimizer(
    model: nn.Module, lr: float, weight_decay: float, device: torch.device, *, capturable: bool = False
) -> torch.optim.AdamW:
    """AdamW; on CUDA the fused kernel (all parameters in one launch), capturable for a graph."""
    cuda = device.type == "cuda"
    return torch.optim.AdamW(
        model.parameters(), lr=lr, weight_decay=weight_decay, fused=cuda, capturable=cuda and capturable
    )


def graph_unavailable(device: torch.device) -> str | None:
    """Why the step cannot be captured as a CUDA graph on ``device``; None when it can be tried."""
    if device.type != "cuda":
        return f"CUDA graphs need a CUDA device (training on {device})"
    if not torch.cuda.is_available():
        return "CUDA is not available"
    return None


def report_fallback(reason: str) -> None:
    """Log that training falls back to eager steps, once per reason and process."""
    if reason not in _reported:
        _reported.add(reason)
        log.warning("training step not captured as a CUDA graph: %s; training eagerly", reason)


class _Steps:
    """What both kinds of step hold: the model, its optimiser, the resident tensors, the batch size."""

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        pos_weight: torch.Tensor,
        tensors: Tensors,
        batch_size: int,
    ) -> None:
        self.model, self.optimizer, self.pos_weight = model, optimizer, pos_weight
        self.cat, self.num, self.y = tensors
        self.batch_size = batch_size
        self.autocast = self.y.device.type == "cuda"


class EagerSteps(_Steps):
    """One epoch of plain steps over the resident tensors."""

    mode = "eager"

    def run_epoch(self, order: torch.Tensor) -> torch.Tensor:
        """Train on the rows in ``order``; the mean loss as a device tensor (no sync)."""
        total = torch.zeros((), device=self.y.device)
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            with torch.autocast(device_type=self.y.device.type, dtype=torch.bfloat16, enabled=self.autocast):
                logits = self.model(self.cat[idx], self.num[idx])
            loss = functional.binary_cross_entropy_with_logits(  # the loss itself in fp32
                logits.float(), self.y[idx], pos_weight=self.pos_weight
            )
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            total += loss.detach() * len(idx)
        return total / max(len(order), 1)


class StaticSteps(_Steps):
    """Every step on ``batch_size`` slots (the tail padded and weighted out): the shape a CUDA
    graph needs. Runs eagerly until :meth:`capture` succeeds, then replays the graph."""

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        pos_weight: torch.Tensor,
        tensors: Tensors,
        batch_size: int,
    ) -> None:
        super().__init__(model, optimizer, pos_weight, tensors, batch_size)
        device = self.y.device
        self.rows = len(self.y)
        self.steps = max(1, math.ceil(self.rows / batch_size))
        slots = self.steps * batch_size
        self.order_slots = torch.zeros(slots, dtype=torch.long, device=device)  # padding: row 0
        self.slot_weights = (
            (torch.arange(slots, device=device) < self.rows).float().view(self.steps, batch_size)
        )
        self.step = torch.zeros(1, dtype=torch.long, device=device)
        self.loss_sum = torch.zeros((), device=device)
        self.graph: Any = None

    @property
    def mode(self) -> str:
        return "graph" if self.graph is not None else "static"

    def body(self) -> None:
        """One step, graph-safe: no host reads, no allocation whose shape depends on data."""
        idx = self.order_slots.view(self.steps, self.batch_size).index_select(0, self.step).view(-1)
        weights = self.slot_weights.index_select(0, self.step).view(-1)
        self.optimizer.zero_grad(set_to_none=False)
        with torch.autocast(
            device_type=self.y.device.type, dtype=torch.bfloat16, enabled=self.autocast, cache_enabled=False
        ):
            logits = self.model(self.cat[idx], self.num[idx])
        loss = weighted_bce_loss(logits.float(), self.y[idx], weights, self.pos_weight)
        loss.backward()
        self.optimizer.step()
        self.loss_sum += loss.detach() * weights.sum()
        self.step += 1

    def run_epoch(self, order: torch.Tensor) -> torch.Tensor:
        """Train on the rows in ``order`` (a permutation of all rows); the mean loss, on device."""
        if len(order) != self.rows:
            raise ValueError(f"order has {len(order)} rows, the steps were built for {self.rows}")
        self.order_slots[: self.rows].copy_(order)
        self.step.zero_()
        self.loss_sum.zero_()
        for _ in range(self.steps):
            if self.graph is not None:
                self.graph.replay()
            else:
                self.body()
        return self.loss_sum / max(self.rows, 1)

    def capture(self) -> None:
        """Warm up on a side stream, then capture :meth:`body` as a CUDA graph.

        The warm-up steps really update the model and the optimiser: both are put back as they
        were (in place, so the graph's addresses stay valid), whether capture succeeds or not.
        """
        saved = _save_training_state(self.model, self.optimizer)
        try:
            self._warm_up_and_capture()
        finally:
            _restore_training_state(self.model, self.optimizer, saved)
            self.step.zero_()
            self.loss_sum.zero_()

    def _warm_up_and_capture(self) -> None:
        device = self.y.device
        side = torch.cuda.Stream(device=device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            for _ in range(WARMUP_STEPS):
                self.step.zero_()
                self.body()
        torch.cuda.current_stream(device).wait_stream(side)
        self.step.zero_()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self.body()
        torch.cuda.synchronize(device)
        self.graph = graph


def _save_training_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    return {
        "params": [p.detach().clone() for p in model.parameters()],
        "buffers": [b.detach().clone() for b in model.buffers()],
        "state": {
            id(p): {k: v.clone() if torch.is_tensor(v) else v for k, v in state.items()}
            for p, state in optimizer.state.items()
        },
    }


@torch.no_grad()
def _restore_training_state(
    model: nn.Module, optimizer: torch.optim.Optimizer, saved: dict[str, Any]
) -> None:
    for param, value in zip(model.parameters(), saved["params"], strict=True):
        param.copy_(value)
    for buffer, value in zip(model.buffers(), saved["buffers"], strict=True):
        buffer.copy_(value)
    for param, state in optimizer.state.items():
        before = saved["state"].get(id(param), {})
        for key, value in state.items():
            if not torch.is_tensor(value):
                continue
            if key in before:
                value.copy_(before[key])
            else:  # created by the warm-up: a fresh AdamW state is all zeros (step 0)
                value.zero_()
    for param in model.parameters():
        if param.grad is not None:
            param.grad.zero_()


def build_steps(
    requested: str,
    model: nn.Module,
    tensors: Tensors,
    *,
    pos_weight: float,
    lr: float,
    weight_decay: float,
    batch_size: int,
    device: torch.device,
) -> EagerSteps | StaticSteps:
    """The steps to train with: ``graph`` (captured) where ``requested`` allows it and capture
    works, else ``eager``. ``auto`` means graph on CUDA, eager elsewhere without a warning;
    ``graph`` asks for it and logs why it could not be had."""
    if requested not in STEP_MODES:
        raise ValueError(f"step mode must be one of {STEP_MODES}, got {requested!r}")
    pos_weight_tensor = torch.tensor(pos_weight, dtype=torch.float32, device=device)
    reason = graph_unavailable(device) if requested != "eager" else None
    if requested == "eager" or (reason is not None and requested == "auto"):
        return _eager(model, tensors, pos_weight_tensor, lr, weight_decay, batch_size, device)
    if reason is None and len(tensors[2]) == 0:
        reason = "no training rows"
    if reason is None:
        optimizer = make_optimizer(model, lr, weight_decay, device, capturable=True)
        steps = StaticSteps(model, optimizer, pos_weight_tensor, tensors, batch_size)
        try:
            steps.capture()
            return steps
        except Exception as exc:  # noqa: BLE001 - any capture failure: train eagerly instead
            reason = f"capture failed ({type(exc).__name__}: {exc})"
    report_fallback(reason)
    return _eager(model, tensors, pos_weight_tensor, lr, weight_decay, batch_size, device)


def _eager(
    model: nn.Module,
    tensors: Tensors,
    pos_weight: torch.Tensor,
    lr: float,
    weight_decay: float,
    batch_size: int,
    device: torch.device,
) -> EagerSteps:
    optimizer = make_optimizer(model, lr, weight_decay, device)
    return EagerSteps(model, optimizer, pos_weight, tensors, batch_size)
