"""The one training entrypoint: ``python -m mlflywheel.training --snapshot-id ID ...``.

Loads a snapshot from the lake (its features and label only), trains, evaluates on validation
and holdout, and records everything in ONE MLflow run: params, metrics, lineage (manifest
artifact + tags + dataset input), the pyfunc model, and a reference sample (train features +
model score) for drift. Registering the model version is the very last step, so a failure
anywhere earlier leaves no version behind. The final stdout line is ``FLYWHEEL_RESULT {json}``
(with ``phases``: the seconds of import, load, prepare, train, validate, evaluate, reference and
the MLflow parts, also logged as one line and, up to the reference, as ``phase_*_seconds``
metrics); logs go to stderr. Exit codes: 0 success, 1 training failed, 2 bad arguments.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from mlflywheel.lake import keys
from mlflywheel.training.command import RESULT_PREFIX

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

log = logging.getLogger("mlflywheel.training")

MANIFEST_ARTIFACT = "snapshot/manifest.json"
HISTORY_ARTIFACT = "training/history.json"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from mlflywheel.settings import Settings

    settings = Settings.from_env()
    parser = argparse.ArgumentParser(
        prog="python -m mlflywheel.training",
        description="Train on a lake snapshot, log one MLflow run, register a model version.",
    )
    parser.add_argument("--snapshot-id", required=True, help="id written by build_snapshot")
    parser.add_argument("--epochs", type=int, default=settings.epochs)
    parser.add_argument("--learning-rate", type=float, default=settings.learning_rate)
    parser.add_argument(
        "--batch-size", type=int, default=settings.batch_size,
        help="rows per optimiser step, at most (smaller on a small training split, see --min-steps-per-epoch)",
    )  # fmt: skip
    parser.add_argument(
        "--min-steps-per-epoch", type=int, default=settings.min_steps_per_epoch,
        help="the batch size is capped so that every epoch takes at least this many optimiser steps",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=settings.seed)
    parser.add_argument("--device", default="", help="cuda or cpu (default: cuda if available)")
    parser.add_argument(
        "--step", choices=("auto", "graph", "eager"), default=settings.training_step,
        help="the training step: auto (a captured CUDA graph on CUDA, eager elsewhere), graph or eager",
    )  # fmt: skip
    parser.add_argument(
        "--tag",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="tag for the MLflow run and the model version (repeatable)",
    )
    args = parser.parse_args(argv)
    tags: dict[str, str] = {}
    for item in args.tag:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            parser.error(f"--tag expects KEY=VALUE, got {item!r}")
        tags[key.strip()] = value
    args.tags = tags
    if args.epochs < 1 or args.batch_size < 1 or args.min_steps_per_epoch < 1 or not args.learning_rate > 0:
        parser.error("--epochs, --batch-size and --min-steps-per-epoch must be >= 1 and --learning-rate > 0")
    return args


@dataclass
class TrainingOutcome:
    """What one training produced: the fitted model, its history and its metrics."""

    preprocessor: Any
    model: Any
    history: dict[str, Any]
    metrics: dict[str, float]
    device: Any
    batch_size: int  # the one trained with (the requested one capped for small splits)
    min_steps_per_epoch: int
    phases: dict[str, float] = field(default_factory=dict)  # seconds of each part, in order


class Phases(dict):
    """Seconds per named part of the run, in the order they ran."""

    @contextmanager
    def timed(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self[name] = self.get(name, 0.0) + time.perf_counter() - started

    def summary(self) -> str:
        mlflow_parts = {k: v for k, v in self.items() if k.startswith("mlflow_")}
        parts = [f"{k} {v:.2f}" for k, v in self.items() if k not in mlflow_parts]
        if mlflow_parts:
            inner = ", ".join(f"{k.removeprefix('mlflow_')} {v:.2f}" for k, v in mlflow_parts.items())
            parts.append(f"mlflow {sum(mlflow_parts.values()):.2f} ({inner})")
        return f"{', '.join(parts)}; total {sum(self.values()):.2f}"


def run_training(args: argparse.Namespace) -> dict[str, Any]:
    """Snapshot -> model -> one MLflow run -> a registered version (the last step)."""
    phases = Phases()
    with phases.timed("import"):
        # Timed here rather than inside the first phase that needs them; the first optimiser
        # imports torch._dynamo (seconds): an import, not training.
        import torch._dynamo  # noqa: F401

        from mlflywheel import registry
        from mlflywheel.datasets import spec_from_manifest
        from mlflywheel.lake import lake_from_settings
        from mlflywheel.settings import Settings
        from mlflywheel.training import loop, pyfunc_model  # noqa: F401 - torch, and MLflow's pyfunc
        from mlflywheel.training.snapshot import load_snapshot

    settings = Settings.from_env()
    with phases.timed("load"):
        lake = lake_from_settings(settings)
        manifest, splits = load_snapshot(lake, args.snapshot_id, training_columns=True)
        spec = spec_from_manifest(manifest)  # the spec the snapshot was built with
    outcome = train_and_evaluate(args, spec, splits)
    phases.update(outcome.phases)
    snapshot_url = lake.url(keys.snapshot_prefix(spec.name, args.snapshot_id))
    with phases.timed("reference"):
        record = training_record(args, settings, spec, manifest, splits, outcome, snapshot_url)
    record.metrics.update({f"phase_{name}_seconds": seconds for name, seconds in phases.items()})
    mlflow_timings: dict[str, float] = {}
    run_id, version = registry.record_training_run(settings, record, mlflow_timings)
    phases.update(mlflow_timings)
    log.info("phases (s): %s", phases.summary())
    return {
        "run_id": run_id,
        "model_name": settings.model_name,
        "version": version,
        "snapshot_id": args.snapshot_id,
        "metrics": {k: _finite(v) for k, v in outcome.metrics.items()},
        "phases": {k: round(v, 3) for k, v in phases.items()},
    }


def train_and_evaluate(args: argparse.Namespace, spec: Any, splits: dict[str, Any]) -> TrainingOutcome:
    """Fit the preprocessor and the network on train, pick the best epoch on validation, score
    validation and holdout. The outcome's phases: ``prepare``, ``train`` (upload, capture and the
    epochs' steps), ``validate`` (the epochs' validation), ``evaluate`` (the final metrics)."""
    import torch

    from mlflywheel.training.loop import (
        default_device,
        effective_batch_size,
        evaluate,
        make_tensors,
        train_model,
    )
    from mlflywheel.training.model import Preprocessor, build_model

    phases = Phases()
    device = torch.device(args.device) if args.device else default_device()
    log.info(
        "snapshot %s: train=%d validation=%d holdout=%d rows; device=%s",
        args.snapshot_id, len(splits["train"]), len(splits["validation"]), len(splits["holdout"]), device,
    )  # fmt: skip
    train_rows = len(splits["train"])
    min_steps = _min_steps_per_epoch(args)
    batch_size = effective_batch_size(args.batch_size, train_rows, min_steps)
    log.info(
        "batch size %d (requested %d; %d training rows, at least %d steps per epoch): %d steps per epoch",
        batch_size, args.batch_size, train_rows, min_steps, -(-train_rows // batch_size),
    )  # fmt: skip
    with phases.timed("prepare"):
        preprocessor = Preprocessor.fit(spec, splits["train"])
        model = build_model(preprocessor, seed=args.seed)
        tensors_train = make_tensors(preprocessor, splits["train"], spec.target)
        tensors_val = make_tensors(preprocessor, splits["validation"], spec.target)
    history = train_model(
        model, tensors_train, tensors_val, epochs=args.epochs, lr=args.learning_rate,
        batch_size=batch_size, seed=args.seed, device=device, step=_training_step(args),
    )  # fmt: skip
    validation_seconds = sum(record["validation_seconds"] for record in history["epochs"])
    phases["train"] = history["seconds"] - validation_seconds
    phases["validate"] = validation_seconds
    with phases.timed("evaluate"):
        model.cpu().eval()
        metrics: dict[str, float] = {}
        for prefix, split in (("val", "validation"), ("holdout", "holdout")):
            values = evaluate(model, preprocessor, splits[split], spec.target)
            for key in ("pr_auc", "roc_auc", "log_loss"):
                metrics[f"{prefix}_{key}"] = values[key]
    metrics["train_seconds"] = history["seconds"]
    metrics["best_epoch"] = history["best_epoch"]
    return TrainingOutcome(preprocessor, model, history, metrics, device, batch_size, min_steps, dict(phases))


def _training_step(args: argparse.Namespace) -> str:
    # Arguments built by hand may predate the option: the setting then.
    value = getattr(args, "step", None)
    if value is None:
        from mlflywheel.settings import Settings

        value = Settings.from_env().training_step
    return str(value)


def _min_steps_per_epoch(args: argparse.Namespace) -> int:
    # Arguments built by hand (benchmarks, notebooks) may predate the option: the setting then.
    value = getattr(args, "min_steps_per_epoch", None)
    if value is None:
        from mlflywheel.settings import Settings

        value = Settings.from_env().min_steps_per_epoch
    return int(value)


def training_record(
    args: argparse.Namespace,
    settings: Any,
    spec: Any,
    manifest: dict[str, Any],
    splits: dict[str, Any],
    outcome: TrainingOutcome,
    snapshot_url: str,
) -> Any:
    """What the run records: params, metrics, lineage, the model and its drift reference."""
    import torch

    from mlflywheel.registry import DatasetInput, TrainingRecord
    from mlflywheel.training.loop import predict_proba
    from mlflywheel.training.pyfunc_model import FlywheelModel, save_artifacts

    model, history = outcome.model, outcome.history
    used = [*spec.features, spec.target]
    lineage = {"flywheel.snapshot_id": args.snapshot_id, "flywheel.dataset": spec.name}
    # Reference sample for drift: train features + the model's score on them.
    train = splits["train"]
    reference = train.sample(n=min(settings.reference_sample_size, len(train)), random_state=args.seed)
    reference = reference.sort_index()[list(spec.features)].reset_index(drop=True)
    reference["score"] = predict_proba(model, outcome.preprocessor, reference)
    return TrainingRecord(
        tags={**args.tags, **lineage, "flywheel.end_day": str(manifest.get("end_day", ""))},
        params={
            "epochs": args.epochs,
            "learning_rate": args.learning_rate,
            "batch_size": outcome.batch_size,  # the one trained with
            "batch_size_requested": args.batch_size,
            "min_steps_per_epoch": outcome.min_steps_per_epoch,
            "steps_per_epoch": -(-len(splits["train"]) // outcome.batch_size),
            "seed": args.seed,
            "device": str(outcome.device),
            "training_step": history.get("step", "eager"),  # graph (captured), eager or static
            "pos_weight": round(history["pos_weight"], 6),
            "hidden": json.dumps(model.hidden),
            "dropout": model.dropout,
            "emb_dims": json.dumps(model.emb_dims),
            "window_days": manifest.get("window_days"),
            "end_day": manifest.get("end_day"),
            "train_rows": len(splits["train"]),
            "validation_rows": len(splits["validation"]),
            "holdout_rows": len(splits["holdout"]),
            "torch_version": torch.__version__,
        },
        metrics=dict(outcome.metrics),
        epoch_metrics=[
            (
                record["epoch"],
                {
                    "epoch_train_loss": record["train_loss"],
                    "epoch_val_pr_auc": record["val_pr_auc"],
                    "epoch_val_roc_auc": record["val_roc_auc"],
                },
            )
            for record in history["epochs"]
        ],
        dicts={MANIFEST_ARTIFACT: manifest, HISTORY_ARTIFACT: history},
        reference=reference,
        write_model_files=lambda folder: save_artifacts(folder, outcome.preprocessor, model),
        python_model=FlywheelModel(),
        version_tags={
            **args.tags,
            **lineage,
            "flywheel.metrics": json.dumps({k: _finite(v) for k, v in outcome.metrics.items()}, sort_keys=True),
        },
        train_input=DatasetInput(
            name=f"{spec.name}-train",
            source=snapshot_url,
            digest=args.snapshot_id.rsplit("-", 1)[-1],  # the id's hash: partition versions and spec
            columns=[(c, spec.column(c).dtype, spec.column(c).nullable) for c in used],
        ),
    )


def _finite(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    args = parse_args(argv)  # exits 2 on bad arguments
    started = time.perf_counter()
    try:
        result = run_training(args)
    except Exception as exc:
        log.exception("training failed")
        print(f"flywheel training failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    log.info(
        "training finished in %.1fs: %s version %s",
        time.perf_counter() - started,
        result["model_name"],
        result["version"],
    )
    sys.stdout.flush()
    print(RESULT_PREFIX + json.dumps(result, sort_keys=True), flush=True)
    return 0
