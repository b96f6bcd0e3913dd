"""Training throughput: the project's training step against a bare loop with the same model.

A benchmark, not a test: it prints a report and always exits 0. On synthetic rows shaped like
the ``transactions`` features (the real :class:`~mlflywheel.training.model.Preprocessor` and
:class:`~mlflywheel.training.model.TabularNet`, the project's hyperparameters) it measures
samples per second of:

* ``project+val``  -- :func:`mlflywheel.training.loop.train_model` as the entrypoint runs it:
  every epoch ends with validation (scoring the validation split, sklearn metrics, keeping the
  best weights). Timed: the sum of its per-epoch wall times (the initial host-to-device copy
  of the table is excluded).
* ``project``      -- the same function with a 64-row validation set, i.e. its training step
  with the validation cost made negligible.
* ``bare``         -- the bound: the same model, loss, fused AdamW and bf16 autocast (CUDA),
  tensors resident on the device, ``randperm`` index slices, nothing else in the loop.
* ``dataloader``   -- a common baseline: ``DataLoader`` over a CPU ``TensorDataset`` (per-row
  ``__getitem__``, collate, host-to-device copy per batch), one epoch on at most
  ``--dataloader-rows`` rows.

Each method is warmed up first (CUDA context, kernels, cuBLAS); timings are bracketed by
``torch.cuda.synchronize()``. Target: ``project`` >= 0.80 x ``bare``.

Imports only torch, numpy, pandas and ``mlflywheel.training.{model,loop}`` (no MLflow, no
Airflow), so it runs on a bare GPU machine with ``PYTHONPATH=include``::

    PYTHONPATH=include python benchmarks/training_throughput.py --rows 2000000 --batch-size 8192 --epochs 3
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from mlflywheel.datasets.upstreams.transactions import (
    CHANNELS,
    COUNTRIES,
    CURRENCIES,
    MERCHANT_CATEGORIES,
    TRANSACTIONS,
)
from mlflywheel.settings import Settings
from mlflywheel.training.loop import Tensors, make_tensors, train_model
from mlflywheel.training.model import Preprocessor, build_model, make_loss, pos_weight_for

TARGET_RATIO = 0.80
WEIGHT_DECAY = 1e-4  # train_model's default
VALIDATION_PER_TRAIN = 0.15 / 0.70  # the default split fractions
SMALL_VALIDATION_ROWS = 64


@dataclass
class Measurement:
    method: str
    rows: int  # rows per epoch
    epochs: int
    seconds: float
    peak_mib: float | None

    @property
    def samples_per_second(self) -> float:
        return self.rows * self.epochs / self.seconds if self.seconds > 0 else float("nan")


# --- data --------------------------------------------------------------------------------------


def synthetic_transactions(rows: int, seed: int) -> pd.DataFrame:
    """Feature columns and label of the ``transactions`` spec, with a learnable ~2% fraud rate."""
    rng = np.random.default_rng(seed)

    def categorical(values: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
        codes = rng.integers(0, len(values), size=rows)
        return codes, np.asarray(values, dtype=object)[codes]

    _, currency = categorical(CURRENCIES)
    merchant_codes, merchant = categorical(MERCHANT_CATEGORIES)
    _, country = categorical(COUNTRIES)
    channel_codes, channel = categorical(CHANNELS)
    amount = np.clip(rng.lognormal(3.5, 1.2, rows), 0.0, 50_000.0)
    account_age = rng.integers(0, 20_000, rows)
    txn_count = rng.poisson(3.0, rows)
    distance = rng.exponential(30.0, rows)
    distance[rng.random(rows) < 0.2] = np.nan  # nullable column: unknown for some rows
    logit = (
        -4.6
        + 0.9 * (np.log1p(amount) > 5.5)
        + 0.6 * (txn_count > 6)
        + 0.8 * (merchant_codes == MERCHANT_CATEGORIES.index("gambling"))
        + 0.5 * (channel_codes == CHANNELS.index("online"))
        - 0.3 * (account_age > 2_000)
    )
    label = (rng.random(rows) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)
    return pd.DataFrame(
        {
            "amount": amount,
            "currency": currency,
            "merchant_category": merchant,
            "country": country,
            "channel": channel,
            "account_age_days": account_age,
            "txn_count_24h": txn_count,
            "distance_from_home_km": distance,
            "is_fraud": label,
        }
    )


def prepare(rows: int, seed: int) -> tuple[Preprocessor, Tensors, Tensors]:
    train = synthetic_transactions(rows, seed)
    validation_rows = max(SMALL_VALIDATION_ROWS, int(rows * VALIDATION_PER_TRAIN))
    validation = synthetic_transactions(validation_rows, seed + 1)
    preprocessor = Preprocessor.fit(TRANSACTIONS, train)
    target = TRANSACTIONS.target
    train_tensors = make_tensors(preprocessor, train, target)
    return preprocessor, train_tensors, make_tensors(preprocessor, validation, target)


def head(tensors: Tensors, rows: int) -> Tensors:
    return tuple(t[:rows] for t in tensors)  # type: ignore[return-value]


def small_validation(tensors: Tensors) -> Tensors:
    cat, num, y = head(tensors, SMALL_VALIDATION_ROWS)
    y = y.clone()
    y[:2] = torch.tensor([0.0, 1.0])  # both classes, so the metrics stay defined
    return cat, num, y


# --- timing helpers ------------------------------------------------------------------------------


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_mib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def timed(device: torch.device, fn: Callable[[], object]) -> float:
    synchronize(device)
    started = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - started


# --- the three loops -----------------------------------------------------------------------------


def run_project(
    preprocessor: Preprocessor, train: Tensors, val: Tensors, args: argparse.Namespace, device: torch.device
) -> float:
    """Seconds of ``train_model``'s epochs (validation included, the initial upload not)."""
    model = build_model(preprocessor, seed=args.seed)
    history = train_model(
        model,
        train,
        val,
        epochs=args.epochs,
        lr=args.learning_rate,
        batch_size=args.batch_size,
        seed=args.seed,
        device=device,
    )
    # train_model ends each epoch with float(loss) and a CPU-side metric: its clock is synchronous.
    return sum(record["seconds"] for record in history["epochs"])


def run_bare(
    preprocessor: Preprocessor, train: Tensors, args: argparse.Namespace, device: torch.device, epochs: int
) -> float:
    """Seconds of the bare loop's epochs: resident tensors, randperm slices, one fused step."""
    torch.manual_seed(args.seed)
    model = build_model(preprocessor, seed=args.seed).to(device).train()
    cat, num, y = (t.to(device) for t in train)
    loss_fn = make_loss(pos_weight_for(y), device)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=args.learning_rate, weight_decay=WEIGHT_DECAY, fused=device.type == "cuda"
    )
    generator = torch.Generator(device=device).manual_seed(args.seed)
    autocast = device.type == "cuda"
    n = len(y)

    def epochs_loop() -> None:
        for _ in range(epochs):
            order = torch.randperm(n, device=device, generator=generator)
            for start in range(0, n, args.batch_size):
                idx = order[start : start + args.batch_size]
                with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=autocast):
                    logits = model(cat[idx], num[idx])
                loss = loss_fn(logits.float(), y[idx])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()

    return timed(device, epochs_loop)


def run_dataloader(
    preprocessor: Preprocessor, train: Tensors, args: argparse.Namespace, device: torch.device
) -> float:
    """Seconds of one epoch through ``DataLoader(TensorDataset)`` on the CPU, copied per batch."""
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(args.seed)
    model = build_model(preprocessor, seed=args.seed).to(device).train()
    loss_fn = make_loss(pos_weight_for(train[2]), device)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=args.learning_rate, weight_decay=WEIGHT_DECAY, fused=device.type == "cuda"
    )
    loader = DataLoader(
        TensorDataset(*train), batch_size=args.batch_size, shuffle=True, pin_memory=device.type == "cuda"
    )
    autocast = device.type == "cuda"

    def epoch() -> None:
        for cat, num, y in loader:
            cat, num, y = (t.to(device, non_blocking=True) for t in (cat, num, y))
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=autocast):
                logits = model(cat, num)
            loss = loss_fn(logits.float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    return timed(device, epoch)


# --- report --------------------------------------------------------------------------------------


def measure(args: argparse.Namespace) -> list[Measurement]:
    device = torch.device(args.device)
    started = time.perf_counter()
    preprocessor, train, val = prepare(args.rows, args.seed)
    print(
        f"data: {args.rows} train rows, {len(val[2])} validation rows, "
        f"{train[0].shape[1]} categorical + {train[1].shape[1]} numeric inputs, "
        f"fraud rate {float(train[2].mean()):.3%}, prepared in {time.perf_counter() - started:.1f}s",
        flush=True,
    )

    # Warm-up on a slice: CUDA context, cuBLAS handles, autocast and fused-AdamW kernels, sklearn.
    warm_rows = min(args.rows, 8 * args.batch_size)
    warm_args = argparse.Namespace(**{**vars(args), "epochs": 1})
    run_project(preprocessor, head(train, warm_rows), small_validation(val), warm_args, device)
    run_bare(preprocessor, head(train, warm_rows), args, device, epochs=1)

    results = []
    for method, validation in (("project+val", val), ("project", small_validation(val))):
        reset_peak(device)
        seconds = run_project(preprocessor, train, validation, args, device)
        results.append(Measurement(method, args.rows, args.epochs, seconds, peak_mib(device)))
    reset_peak(device)
    seconds = run_bare(preprocessor, train, args, device, epochs=args.epochs)
    results.append(Measurement("bare", args.rows, args.epochs, seconds, peak_mib(device)))
    if args.dataloader_rows > 0:
        rows = min(args.rows, args.dataloader_rows)
        reset_peak(device)
        seconds = run_dataloader(preprocessor, head(train, rows), args, device)
        results.append(Measurement("dataloader", rows, 1, seconds, peak_mib(device)))
    return results


def report(args: argparse.Namespace, results: list[Measurement]) -> None:
    device = torch.device(args.device)
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "-"
    print(
        f"torch {torch.__version__}, python {platform.python_version()}, device {device}, GPU {gpu}, "
        f"CPU threads {torch.get_num_threads()}"
    )
    bare = next(r for r in results if r.method == "bare").samples_per_second
    header = f"{'method':<12} {'rows':>9} {'batch':>6} {'epochs':>6} {'seconds':>8} {'samples/s':>12} "
    header += f"{'vs bare':>7} {'peak MiB':>9}"
    print(header)
    print("-" * len(header))
    for r in results:
        peak = f"{r.peak_mib:9.0f}" if r.peak_mib is not None else f"{'-':>9}"
        print(
            f"{r.method:<12} {r.rows:>9} {args.batch_size:>6} {r.epochs:>6} {r.seconds:>8.3f} "
            f"{r.samples_per_second:>12,.0f} {r.samples_per_second / bare:>7.2f} {peak}"
        )
    project = next(r for r in results if r.method == "project").samples_per_second
    ratio = project / bare
    verdict = "meets" if ratio >= TARGET_RATIO else "BELOW"
    print(f"project/bare = {ratio:.2f} ({verdict} the {TARGET_RATIO:.2f} target)")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=300_000, help="train rows (validation: 0.15/0.70 of it)")
    parser.add_argument("--batch-size", type=int, default=Settings.batch_size)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--learning-rate", type=float, default=Settings.learning_rate)
    parser.add_argument("--seed", type=int, default=Settings.seed)
    parser.add_argument(
        "--dataloader-rows", type=int, default=200_000, help="rows for the DataLoader baseline (0: skip it)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(f"== training throughput: rows={args.rows} batch={args.batch_size} epochs={args.epochs}")
    try:
        report(args, measure(args))
    except Exception:  # noqa: BLE001 - a report, not a gate: say what failed and exit 0
        traceback.print_exc()
        print("benchmark failed (see the traceback above)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
