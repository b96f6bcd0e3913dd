"""Self-check of the CUDA-graph training step on a GPU (part of ``benchmarks/gpu_check.sh``).

The checks that the CPU test suite cannot make, each printed PASS / FAIL / SKIP (SKIP: no CUDA):

1. ``capture``:   ``train_model(step="graph")`` really trains with a captured graph (no fallback).
2. ``tail``:      the captured step on padded batches gives the eager loop's weights after an epoch
                  whose last batch is partial (no dropout; same bf16 autocast on both).
3. ``dropout``:   dropout inside a replayed graph draws new masks on every replay.
4. ``same results``: with one seed, eager and graph training give the same validation metrics
                  within the stated tolerance (|PR-AUC| <= 0.02, |ROC-AUC| <= 0.01 per epoch: the
                  paths draw different dropout masks, so they agree like two runs, not bit for bit).
5. ``metrics``:   PR-AUC, ROC-AUC and log loss on the device equal scikit-learn's within 1e-6 on
                  428,571 rows, and the time of each (device vs copy to host + scikit-learn).

Exit status 1 when a check fails. ``PYTHONPATH=include python benchmarks/gpu_selfcheck.py``
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import training_throughput as bench  # the benchmark's data, beside this file
from mlflywheel.training.device_metrics import binary_metrics_tensor, metrics_as_floats
from mlflywheel.training.loop import train_model
from mlflywheel.training.model import TabularNet, build_model
from mlflywheel.training.steps import EagerSteps, StaticSteps, make_optimizer

PR_AUC_TOLERANCE, ROC_AUC_TOLERANCE = 0.02, 0.01
CUDA = torch.cuda.is_available()
DEVICE = torch.device("cuda" if CUDA else "cpu")
results: dict[str, str] = {}


def check(name: str, needs_cuda: bool = True) -> Callable[[Callable[[], bool]], Callable[[], None]]:
    def wrap(fn: Callable[[], bool]) -> Callable[[], None]:
        def run() -> None:
            if needs_cuda and not CUDA:
                results[name] = "SKIP (no CUDA)"
            else:
                try:
                    results[name] = "PASS" if fn() else "FAIL"
                except Exception as exc:  # noqa: BLE001 - a failed check, reported
                    results[name] = f"FAIL ({type(exc).__name__}: {exc})"
            print(f"[{results[name]}] {name}", flush=True)

        return run

    return wrap


@check("capture")
def capture() -> bool:
    preprocessor, train, val = bench.prepare(50_000, 1)
    history = train_model(
        build_model(preprocessor, seed=1), train, val, epochs=1, lr=2e-3, batch_size=4096, seed=1,
        device=DEVICE, step="graph",
    )  # fmt: skip
    print(f"  step={history['step']}, set-up {history['setup_seconds']:.2f}s (upload, warm-up, capture)")
    return history["step"] == "graph"


@check("tail")
def tail() -> bool:
    preprocessor, (cat, num, y), _ = bench.prepare(10_000, 2)  # batch 384: 26 full batches + 16 rows
    tensors = (cat.to(DEVICE), num.to(DEVICE), y.to(DEVICE))
    order = torch.randperm(len(y), device=DEVICE, generator=torch.Generator(device=DEVICE).manual_seed(3))
    pos_weight = torch.tensor(20.0, device=DEVICE)

    def trained(kind: type) -> TabularNet:
        torch.manual_seed(4)
        model = TabularNet(preprocessor.cardinalities, preprocessor.n_numeric, dropout=0.0).to(DEVICE)
        optimizer = make_optimizer(model, 2e-3, 1e-4, DEVICE, capturable=kind is StaticSteps)
        steps = kind(model, optimizer, pos_weight, tensors, 384)
        if isinstance(steps, StaticSteps):
            steps.capture()
            assert steps.mode == "graph"
        steps.run_epoch(order)
        return model

    eager, graph = trained(EagerSteps), trained(StaticSteps)
    worst = max(
        (a - b).abs().max().item() for a, b in zip(eager.parameters(), graph.parameters(), strict=True)
    )
    print(f"  largest weight difference after one epoch: {worst:.2e} (bf16 autocast on both; bound 2e-3)")
    return worst <= 2e-3


@check("dropout")
def dropout() -> bool:
    layer = torch.nn.Dropout(0.5).train()
    x = torch.ones(1 << 16, device=DEVICE)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        layer(x)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = layer(x)
    graph.replay()
    first = out.clone()
    graph.replay()
    kept = float((first != 0).float().mean())
    print(f"  two replays differ: {not torch.equal(first, out)}; kept fraction {kept:.3f} (p = 0.5)")
    return not torch.equal(first, out) and abs(kept - 0.5) < 0.02


@check("same results")
def same_results() -> bool:
    preprocessor, train, val = bench.prepare(500_000, 5)  # 500,000 % 8192 = 288 rows in the tail batch

    def run(step: str) -> dict:
        return train_model(
            build_model(preprocessor, seed=6), train, val, epochs=3, lr=2e-3, batch_size=8192, seed=6,
            device=DEVICE, step=step,
        )  # fmt: skip

    eager, graph = run("eager"), run("graph")
    ok = graph["step"] == "graph"
    for e, g in zip(eager["epochs"], graph["epochs"], strict=True):
        d_pr, d_roc = g["val_pr_auc"] - e["val_pr_auc"], g["val_roc_auc"] - e["val_roc_auc"]
        ok = ok and abs(d_pr) <= PR_AUC_TOLERANCE and abs(d_roc) <= ROC_AUC_TOLERANCE
        print(
            f"  epoch {e['epoch']}: PR-AUC eager {e['val_pr_auc']:.4f} graph {g['val_pr_auc']:.4f} ({d_pr:+.4f}); "
            f"ROC-AUC eager {e['val_roc_auc']:.4f} graph {g['val_roc_auc']:.4f} ({d_roc:+.4f}); "
            f"train s eager {e['train_seconds']:.3f} graph {g['train_seconds']:.3f}"
        )
    return ok


@check("metrics", needs_cuda=False)
def metrics() -> bool:
    from sklearn.metrics import average_precision_score, log_loss, roc_auc_score

    rng = np.random.default_rng(7)
    labels = (rng.random(428_571) < 0.011).astype(np.int64)
    scores = (1 / (1 + np.exp(-(rng.normal(size=labels.size) + 2.5 * labels - 4)))).astype(np.float32)
    y, p = torch.from_numpy(labels).to(DEVICE), torch.from_numpy(scores).to(DEVICE)
    metrics_as_floats(binary_metrics_tensor(y, p))  # warm-up
    started = time.perf_counter()
    got = metrics_as_floats(binary_metrics_tensor(y, p))
    device_ms = (time.perf_counter() - started) * 1e3
    started = time.perf_counter()
    host = np.clip(p.cpu().numpy().astype(np.float64), 1e-7, 1 - 1e-7)
    want = {
        "pr_auc": average_precision_score(labels, host),
        "roc_auc": roc_auc_score(labels, host),
        "log_loss": log_loss(labels, host, labels=[0, 1]),
    }
    host_ms = (time.perf_counter() - started) * 1e3
    worst = max(abs(got[k] - want[k]) for k in want)
    print(f"  428,571 rows on {DEVICE}: {device_ms:.1f} ms; copy + scikit-learn {host_ms:.0f} ms; "
          f"largest difference {worst:.1e}")  # fmt: skip
    return worst <= 1e-6


def main() -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    name = torch.cuda.get_device_name(0) if CUDA else "no CUDA"
    print(f"== GPU self-check: torch {torch.__version__}, {name}", flush=True)
    for run in (capture, tail, dropout, same_results, metrics):
        run()
    failed = [name for name, verdict in results.items() if verdict.startswith("FAIL")]
    print(
        f"self-check: {len(results) - len(failed)} of {len(results)} passed or skipped; failed: {failed or 'none'}"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
