"""Training throughput against the hardware's bound: the whole step captured as one CUDA graph.

A benchmark, not a test: it prints a report and always exits 0. On synthetic rows shaped like
the ``transactions`` features (the real :class:`~mlflywheel.training.model.Preprocessor` and
:class:`~mlflywheel.training.model.TabularNet`, the project's hyperparameters), for each
combination of ``--rows`` and ``--batch-size``, samples per second of:

* ``graph``        -- the bound (CUDA only; ``n/a (no CUDA)`` elsewhere): the index gather from
  resident tensors, forward under bf16 autocast (cache off), loss, backward and a fused,
  capturable AdamW with the gradients zeroed inside, captured once as a CUDA graph after a
  warm-up on a side stream and replayed per batch; full batches only.
* ``eager``        -- the same step launched op by op (the previous bound).
* ``project``      -- :func:`mlflywheel.training.loop.train_model` as the entrypoint runs it
  (``--step``, default ``auto``: a captured graph on CUDA), with a 64-row validation set: its
  training step, validation made negligible.
* ``project+val``  -- the same with the full validation split (0.15/0.70 of the rows), scored
  and measured on the device each epoch, the best epoch's weights kept.
* ``dataloader``   -- a baseline: ``DataLoader`` over a CPU ``TensorDataset``, one epoch on at
  most ``--dataloader-rows`` rows (0: skipped).

samples/s count the timed epochs only; ``setup s`` is each method's one-off cost (upload,
warm-up, capture), printed beside it. ``vs bound`` divides by ``graph`` on CUDA and by ``eager``
elsewhere. ``--compare-with PATH`` runs the project rows with another checkout's package too
(``PATH`` is its ``include/``, e.g. main's), both in child processes, alternated ``--repeat``
times, medians side by side. ``--entrypoint-days N`` runs the entrypoint as well
(``entrypoint_run.py``, with MLflow) and prints its phases.

Imports only torch, numpy, pandas and ``mlflywheel`` (MLflow only for the entrypoint run)::

    PYTHONPATH=include python benchmarks/training_throughput.py --device cuda \\
        --rows 2000000,10000000 --batch-size 8192,65536 --epochs 2
    PYTHONPATH=include python benchmarks/training_throughput.py --device cpu --rows 40000 \\
        --batch-size 1024 --epochs 2 --compare-with /path/to/main/include --repeat 3
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

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
from mlflywheel.training.loop import make_tensors, train_model
from mlflywheel.training.model import Preprocessor, build_model, pos_weight_for
from torch.nn import functional

Tensors = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
WEIGHT_DECAY = 1e-4  # train_model's default
VALIDATION_PER_TRAIN = 0.15 / 0.70  # the default split fractions
SMALL_VALIDATION_ROWS = 64
WARMUP_STEPS = 3
NO_CUDA = "n/a (no CUDA)"


@dataclass
class Measurement:
    method: str
    rows: int  # rows per epoch
    batch: int
    epochs: int
    seconds: float | None  # None: not measured (no CUDA)
    setup_seconds: float | None = None
    peak_mib: float | None = None
    note: str = ""
    cpu_seconds: float | None = None  # process CPU time of the timed part (all threads)

    @property
    def samples_per_second(self) -> float | None:
        if self.seconds is None or self.seconds <= 0:
            return None
        return self.rows * self.epochs / self.seconds

    @property
    def samples_per_cpu_second(self) -> float | None:
        """Less disturbed than wall time by other processes on a shared machine (not by all)."""
        if not self.cpu_seconds or self.cpu_seconds <= 0:
            return None
        return self.rows * self.epochs / self.cpu_seconds


# --- data --------------------------------------------------------------------------------------


def synthetic_transactions(rows: int, seed: int) -> pd.DataFrame:
    """Feature columns and label of the ``transactions`` spec, with a learnable ~1% fraud rate."""
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
    validation = synthetic_transactions(
        max(SMALL_VALIDATION_ROWS, int(rows * VALIDATION_PER_TRAIN)), seed + 1
    )
    preprocessor = Preprocessor.fit(TRANSACTIONS, train)
    target = TRANSACTIONS.target
    return (
        preprocessor,
        make_tensors(preprocessor, train, target),
        make_tensors(preprocessor, validation, target),
    )


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


# --- the loops -----------------------------------------------------------------------------------


def run_project(
    preprocessor: Preprocessor, train: Tensors, val: Tensors, args: argparse.Namespace, batch: int,
    device: torch.device, epochs: int,
) -> tuple[float, float | None, str]:  # fmt: skip
    """``train_model``'s epochs (seconds, validation included), its one-off set-up and step mode."""
    model = build_model(preprocessor, seed=args.seed)
    options = {"step": args.step} if "step" in inspect.signature(train_model).parameters else {}
    history = train_model(
        model, train, val, epochs=epochs, lr=args.learning_rate, batch_size=batch, seed=args.seed,
        device=device, **options,
    )  # fmt: skip
    # Each epoch ends by reading its loss and metrics back: its clock is synchronous.
    seconds = sum(record["seconds"] for record in history["epochs"])
    return seconds, history.get("setup_seconds"), history.get("step", "eager")


def _bare_model(preprocessor: Preprocessor, train: Tensors, args: argparse.Namespace, device: torch.device):
    torch.manual_seed(args.seed)
    model = build_model(preprocessor, seed=args.seed).to(device).train()
    cat, num, y = (t.to(device) for t in train)
    pos_weight = torch.tensor(pos_weight_for(y), dtype=torch.float32, device=device)
    return model, (cat, num, y), pos_weight


def run_eager(
    preprocessor: Preprocessor, train: Tensors, args: argparse.Namespace, batch: int, device: torch.device,
    epochs: int,
) -> float:  # fmt: skip
    """Seconds of the bare eager loop's epochs: resident tensors, randperm slices, one fused step."""
    model, (cat, num, y), pos_weight = _bare_model(preprocessor, train, args, device)
    cuda = device.type == "cuda"
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=args.learning_rate, weight_decay=WEIGHT_DECAY, fused=cuda
    )
    generator = torch.Generator(device=device).manual_seed(args.seed)

    def epochs_loop() -> None:
        for _ in range(epochs):
            order = torch.randperm(len(y), device=device, generator=generator)
            for start in range(0, len(y), batch):
                idx = order[start : start + batch]
                with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=cuda):
                    logits = model(cat[idx], num[idx])
                loss = functional.binary_cross_entropy_with_logits(
                    logits.float(), y[idx], pos_weight=pos_weight
                )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()

    return timed(device, epochs_loop)


def run_graph(
    preprocessor: Preprocessor, train: Tensors, args: argparse.Namespace, batch: int, device: torch.device,
    epochs: int,
) -> tuple[float, float, int]:  # fmt: skip
    """The bound: (seconds of the epochs, seconds of warm-up + capture, rows per epoch)."""
    model, (cat, num, y), pos_weight = _bare_model(preprocessor, train, args, device)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=args.learning_rate, weight_decay=WEIGHT_DECAY, fused=True, capturable=True
    )
    steps = max(1, len(y) // batch)  # full batches only
    order = torch.zeros(steps * batch, dtype=torch.long, device=device)
    step = torch.zeros(1, dtype=torch.long, device=device)

    def body() -> None:
        idx = order.view(steps, batch).index_select(0, step).view(-1)
        optimizer.zero_grad(set_to_none=False)
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, cache_enabled=False):
            logits = model(cat[idx], num[idx])
        loss = functional.binary_cross_entropy_with_logits(logits.float(), y[idx], pos_weight=pos_weight)
        loss.backward()
        optimizer.step()
        step.add_(1)

    graph = torch.cuda.CUDAGraph()

    def capture() -> None:
        side = torch.cuda.Stream(device=device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            for _ in range(WARMUP_STEPS):
                step.zero_()
                body()
        torch.cuda.current_stream(device).wait_stream(side)
        step.zero_()
        with torch.cuda.graph(graph):
            body()

    setup = timed(device, capture)
    generator = torch.Generator(device=device).manual_seed(args.seed)

    def epochs_loop() -> None:
        for _ in range(epochs):
            order.copy_(torch.randperm(len(y), device=device, generator=generator)[: steps * batch])
            step.zero_()
            for _ in range(steps):
                graph.replay()

    return timed(device, epochs_loop), setup, steps * batch


def run_dataloader(
    preprocessor: Preprocessor, train: Tensors, args: argparse.Namespace, batch: int, device: torch.device
) -> float:
    """Seconds of one epoch through ``DataLoader(TensorDataset)`` on the CPU, copied per batch."""
    from torch.utils.data import DataLoader, TensorDataset

    model, _, pos_weight = _bare_model(preprocessor, head(train, 1), args, device)
    cuda = device.type == "cuda"
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=args.learning_rate, weight_decay=WEIGHT_DECAY, fused=cuda
    )
    loader = DataLoader(TensorDataset(*train), batch_size=batch, shuffle=True, pin_memory=cuda)

    def epoch() -> None:
        for cat, num, y in loader:
            cat, num, y = (t.to(device, non_blocking=True) for t in (cat, num, y))
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=cuda):
                logits = model(cat, num)
            loss = functional.binary_cross_entropy_with_logits(logits.float(), y, pos_weight=pos_weight)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    return timed(device, epoch)


# --- measuring -----------------------------------------------------------------------------------


def warm_up(
    prepared: tuple[Preprocessor, Tensors, Tensors], args: argparse.Namespace, device: torch.device
) -> None:
    """CUDA context, cuBLAS handles, autocast and fused-AdamW kernels, graph capture, first imports."""
    preprocessor, train, val = prepared
    batch = min(args.batch_sizes)
    rows = min(len(train[2]), 8 * batch)
    run_project(preprocessor, head(train, rows), small_validation(val), args, batch, device, epochs=1)
    if not args.project_only:
        run_eager(preprocessor, head(train, rows), args, batch, device, epochs=1)
        if device.type == "cuda":
            run_graph(preprocessor, head(train, rows), args, batch, device, epochs=1)


def measure_config(
    prepared: tuple[Preprocessor, Tensors, Tensors], rows: int, batch: int, args: argparse.Namespace,
    device: torch.device,
) -> list[Measurement]:  # fmt: skip
    """Every method on the first ``rows`` rows at ``batch``."""
    preprocessor, train_all, val_all = prepared
    train = head(train_all, rows)
    val = head(val_all, max(SMALL_VALIDATION_ROWS, int(rows * VALIDATION_PER_TRAIN)))
    epochs = args.epochs
    out: list[Measurement] = []

    def add(method: str, run: Callable[[], tuple[float, float | None, int, str]], runs: int = epochs) -> None:
        reset_peak(device)
        cpu_started = time.process_time()
        seconds, setup, epoch_rows, note = run()
        # CPU time of the whole call: the timed epochs plus the set-up, which is small on the CPU.
        cpu = time.process_time() - cpu_started
        out.append(Measurement(method, epoch_rows, batch, runs, seconds, setup, peak_mib(device), note, cpu))

    def graph() -> tuple[float, float | None, int, str]:
        seconds, setup, epoch_rows = run_graph(preprocessor, train, args, batch, device, epochs)
        return seconds, setup, epoch_rows, "full batches"

    def project(validation: Tensors) -> tuple[float, float | None, int, str]:
        seconds, setup, step = run_project(preprocessor, train, validation, args, batch, device, epochs)
        return seconds, setup, rows, f"step={step}"

    if not args.project_only:
        if device.type == "cuda":
            add("graph", graph)
        else:
            out.append(Measurement("graph", rows, batch, epochs, None, note=NO_CUDA))
        add("eager", lambda: (run_eager(preprocessor, train, args, batch, device, epochs), None, rows, ""))
    add("project+val", lambda: project(val))
    add("project", lambda: project(small_validation(val)))
    if not args.project_only and args.dataloader_rows > 0:
        dl_rows = min(rows, args.dataloader_rows)
        add(
            "dataloader",
            lambda: (
                run_dataloader(preprocessor, head(train, dl_rows), args, batch, device),
                None,
                dl_rows,
                "",
            ),
            runs=1,
        )
    return out


def measure_all(args: argparse.Namespace) -> list[Measurement]:
    """Every configuration, reported as it is measured (unless ``--json``)."""
    device = torch.device(args.device)
    started = time.perf_counter()
    prepared = prepare(max(args.rows_list), args.seed)
    train = prepared[1]
    print(
        f"data: {len(train[2])} train rows (+0.15/0.70 validation), {train[0].shape[1]} categorical + "
        f"{train[1].shape[1]} numeric inputs, fraud rate {float(train[2].mean()):.3%}, prepared in "
        f"{time.perf_counter() - started:.1f}s",
        file=sys.stderr if args.json else sys.stdout,
        flush=True,
    )
    warm_up(prepared, args, device)
    results = []
    for rows in args.rows_list:
        for batch in args.batch_sizes:
            measured = measure_config(prepared, rows, batch, args, device)
            if not args.json:
                report_config(measured, rows, batch)
            results += measured
    return results


# --- report --------------------------------------------------------------------------------------


def _cell(value: float | None, fmt: str, width: int) -> str:
    return f"{value:{width}{fmt}}" if value is not None else f"{'-':>{width}}"


def report_config(results: list[Measurement], rows: int, batch: int) -> None:
    by_method = {r.method: r for r in results}
    bound = by_method.get("graph")
    if bound is None or bound.samples_per_second is None:
        bound = by_method.get("eager")
    bound_name = bound.method if bound else "-"
    print(f"\n-- {rows} rows, batch {batch}: bound = {bound_name}")
    header = f"{'method':<12} {'rows':>9} {'batch':>6} {'epochs':>6} {'seconds':>8} {'samples/s':>13} "
    header += f"{'vs bound':>8} {'setup s':>8} {'peak MiB':>9}  note"
    print(header)
    print("-" * len(header))
    for r in results:
        sps = r.samples_per_second
        if sps is None:
            print(f"{r.method:<12} {r.rows:>9} {r.batch:>6} {r.epochs:>6} {r.note}")
            continue
        ratio = sps / bound.samples_per_second if bound and bound.samples_per_second else None
        print(
            f"{r.method:<12} {r.rows:>9} {r.batch:>6} {r.epochs:>6} {r.seconds:>8.3f} {sps:>13,.0f} "
            f"{_cell(ratio, '.2f', 8)} {_cell(r.setup_seconds, '.2f', 8)} {_cell(r.peak_mib, '.0f', 9)}  {r.note}"
        )
    for method in ("project", "project+val"):
        r = by_method.get(method)
        if r and bound and r.samples_per_second and bound.samples_per_second:
            print(f"{method}/{bound_name} = {r.samples_per_second / bound.samples_per_second:.2f}")


# --- before / after (--compare-with) -------------------------------------------------------------


def child_measurements(include: Path, args: argparse.Namespace) -> list[Measurement]:
    """This script's project rows, run with ``include`` first on the path, in a child process."""
    cmd = [
        sys.executable, str(Path(__file__).resolve()), "--project-only", "--json", "--device", args.device,
        "--rows", ",".join(map(str, args.rows_list)), "--batch-size", ",".join(map(str, args.batch_sizes)),
        "--epochs", str(args.epochs), "--learning-rate", str(args.learning_rate), "--seed", str(args.seed),
        "--step", args.step,
    ]  # fmt: skip
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(include), os.environ.get("PYTHONPATH")])),
    }
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not proc.stdout.strip():
        raise RuntimeError(f"child run with {include} failed:\n{proc.stderr[-3000:]}")
    return [Measurement(**row) for row in json.loads(proc.stdout.strip().splitlines()[-1])]


def compare(args: argparse.Namespace) -> None:
    """Project rows of ``--compare-with`` (before) and this checkout (after), alternated, medians."""
    checkouts = {
        "before": args.compare_with.resolve(),
        "after": Path(__file__).resolve().parents[1] / "include",
    }
    runs: dict[str, list[list[Measurement]]] = {label: [] for label in checkouts}
    for repeat in range(args.repeat):
        order = list(checkouts) if repeat % 2 == 0 else list(reversed(checkouts))  # neither always first
        for label in order:
            runs[label].append(child_measurements(checkouts[label], args))
            print(f"  repeat {repeat + 1}/{args.repeat}: {label} measured", flush=True)
    print(
        f"\n-- before ({checkouts['before']}) and after ({checkouts['after']}): samples/s over "
        f"{args.repeat} alternated runs each: the best (the least disturbed by other load) and the median"
    )
    print(f"{'method':<12} {'rows':>9} {'batch':>6} {'best before':>12} {'best after':>12} {'ratio':>6} "
          f"{'median before':>14} {'median after':>13} {'ratio':>6}")  # fmt: skip
    for index, first in enumerate(runs["before"][0]):
        values = {label: [run[index].samples_per_second or 0.0 for run in runs[label]] for label in checkouts}
        best = {label: max(values[label]) for label in checkouts}
        median = {label: statistics.median(values[label]) for label in checkouts}
        print(
            f"{first.method:<12} {first.rows:>9} {first.batch:>6} {best['before']:>12,.0f} {best['after']:>12,.0f} "
            f"{best['after'] / best['before']:>6.2f} {median['before']:>14,.0f} {median['after']:>13,.0f} "
            f"{median['after'] / median['before']:>6.2f}"
        )
        for label in checkouts:
            print(f"{'':<12} {label}: {', '.join(f'{v:,.0f}' for v in values[label])}")
        per_cpu = {
            label: statistics.median(run[index].samples_per_cpu_second or 0.0 for run in runs[label])
            for label in checkouts
        }
        if per_cpu["before"]:
            print(
                f"{'':<12} samples per CPU-second (median): before {per_cpu['before']:,.0f}, after "
                f"{per_cpu['after']:,.0f}, ratio {per_cpu['after'] / per_cpu['before']:.2f}"
            )


# --- the entrypoint (--entrypoint-days) ------------------------------------------------------------


def entrypoint_phases(args: argparse.Namespace) -> None:
    """The entrypoint on a generated snapshot, broken into phases (with --compare-with: both)."""
    import importlib.util
    import shutil

    try:
        import mlflow  # noqa: F401 - the entrypoint logs to MLflow
    except ImportError:
        print("\n-- entrypoint: n/a (mlflow is not installed here; see benchmarks/gpu_check.sh)")
        return
    spec = importlib.util.spec_from_file_location(
        "entrypoint_run", Path(__file__).with_name("entrypoint_run.py")
    )
    runner = importlib.util.module_from_spec(spec)
    sys.modules["entrypoint_run"] = runner  # dataclasses resolve their module by name
    spec.loader.exec_module(runner)
    work = Path(args.entrypoint_dir)
    print(f"\n-- entrypoint: {args.entrypoint_days} days x {args.entrypoint_rows_per_day} rows, "
          f"{args.entrypoint_epochs} epochs, batch {args.entrypoint_batch_size}", flush=True)  # fmt: skip
    snapshot_id = runner.prepare_snapshot(
        work / "template", args.entrypoint_days, args.entrypoint_rows_per_day
    )
    checkouts = [("after", runner.INCLUDE)]
    if args.compare_with:
        checkouts.insert(0, ("before", args.compare_with.resolve()))
    runs = []
    for label, include in checkouts:
        run_dir = work / label
        shutil.rmtree(run_dir, ignore_errors=True)
        shutil.copytree(work / "template", run_dir)  # the same data, a fresh MLflow database each
        # The second run finds MLflow's database made, as every run after a deployment's first does.
        for run_label in (label, f"{label} 2nd"):
            runs.append(runner.run_entrypoint(
                run_dir, snapshot_id, epochs=args.entrypoint_epochs, batch_size=args.entrypoint_batch_size,
                device=args.device, include=include, label=run_label, echo=False,
            ))  # fmt: skip
    print(runner.phase_table(runs))
    for run in runs:
        metrics = run.result.get("metrics", {})
        print(f"{run.label}: exit {run.exit_code}, holdout PR-AUC {metrics.get('holdout_pr_auc')}, "
              f"ROC-AUC {metrics.get('holdout_roc_auc')}, best epoch {metrics.get('best_epoch')}")  # fmt: skip


# --- main ----------------------------------------------------------------------------------------


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    cuda = torch.cuda.is_available()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if cuda else "cpu")
    parser.add_argument("--rows", default="2000000,10000000" if cuda else "40000",
                        help="train rows, comma-separated (validation: 0.15/0.70 of each)")  # fmt: skip
    parser.add_argument("--batch-size", default="8192,65536" if cuda else str(Settings.batch_size),
                        help="batch sizes, comma-separated")  # fmt: skip
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument(
        "--step", default="auto", choices=("auto", "graph", "eager"), help="train_model's step"
    )
    parser.add_argument("--learning-rate", type=float, default=Settings.learning_rate)
    parser.add_argument("--seed", type=int, default=Settings.seed)
    parser.add_argument(
        "--dataloader-rows", type=int, default=0, help="rows for the DataLoader baseline (0: skip)"
    )
    parser.add_argument(
        "--compare-with", type=Path, help="another checkout's include/ (e.g. main's): before/after"
    )
    parser.add_argument("--repeat", type=int, default=3, help="alternated runs per side with --compare-with")
    parser.add_argument("--entrypoint-days", type=int, default=0, help="also run the entrypoint (0: skip)")
    parser.add_argument("--entrypoint-rows-per-day", type=int, default=20_000)
    parser.add_argument("--entrypoint-epochs", type=int, default=8)
    parser.add_argument("--entrypoint-batch-size", type=int, default=8192)
    parser.add_argument("--entrypoint-dir", default="/tmp/flywheel-throughput-entrypoint")
    parser.add_argument("--project-only", action="store_true", help=argparse.SUPPRESS)  # child runs
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.rows_list, args.batch_sizes = _ints(args.rows), _ints(args.batch_size)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.json:  # a child run: one JSON line, nothing else on stdout
        print(json.dumps([asdict(m) for m in measure_all(args)]))
        return 0
    device = torch.device(args.device)
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else NO_CUDA
    print(f"== training throughput: rows={args.rows} batch={args.batch_size} epochs={args.epochs} "
          f"device={device} step={args.step}")  # fmt: skip
    print(f"torch {torch.__version__}, python {platform.python_version()}, GPU {gpu}, "
          f"CPU threads {torch.get_num_threads()}", flush=True)  # fmt: skip
    for part in (measure_all, compare, entrypoint_phases):
        if part is compare and not args.compare_with:
            continue
        if part is entrypoint_phases and not args.entrypoint_days:
            continue
        try:
            part(args)
        except Exception:  # noqa: BLE001 - a report, not a gate: say what failed and go on
            traceback.print_exc()
            print(f"{part.__name__} failed (see the traceback above)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
