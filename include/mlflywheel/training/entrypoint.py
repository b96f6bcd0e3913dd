"""The one training entrypoint: ``python -m mlflywheel.training --snapshot-id ID ...``.

Loads a snapshot from the lake, trains, evaluates on validation and holdout, and records
everything in ONE MLflow run: params, metrics, lineage (manifest artifact + tags + dataset
input), the pyfunc model, and a reference sample (train features + model score) for drift.
Registering the model version is the very last step, so a failure anywhere earlier leaves
no version behind. The final stdout line is ``FLYWHEEL_RESULT {json}``; logs go to stderr.
Exit codes: 0 success, 1 training failed, 2 bad arguments.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path
from urllib.parse import urlparse
from typing import Any

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

log = logging.getLogger("mlflywheel.training")

RESULT_PREFIX = "FLYWHEEL_RESULT "
MODEL_ARTIFACT = "model"
REFERENCE_ARTIFACT_DIR = "reference"
REFERENCE_FILE = "reference.parquet"
MANIFEST_ARTIFACT = "snapshot/manifest.json"
HISTORY_ARTIFACT = "training/history.json"


class TrainingError(RuntimeError):
    """Training could not produce a registered model."""


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
    parser.add_argument("--batch-size", type=int, default=settings.batch_size)
    parser.add_argument("--seed", type=int, default=settings.seed)
    parser.add_argument("--device", default="", help="cuda or cpu (default: cuda if available)")
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
    if args.epochs < 1 or args.batch_size < 1 or not args.learning_rate > 0:
        parser.error("--epochs and --batch-size must be >= 1 and --learning-rate > 0")
    return args


def ensure_experiment(client: Any, name: str, artifact_root: str) -> str:
    """The experiment id, creating it with our artifact location if it does not exist."""
    existing = client.get_experiment_by_name(name)
    if existing is not None:
        return existing.experiment_id
    # A URI (s3://, mlflow-artifacts:/ for a proxying server, file://) is kept as is; a plain
    # path becomes a file URI.
    location = (
        artifact_root if urlparse(artifact_root).scheme else Path(artifact_root).expanduser().resolve().as_uri()
    )
    try:
        return client.create_experiment(name, artifact_location=location)
    except Exception:
        # Another trainer may have created it between our lookup and create.
        existing = client.get_experiment_by_name(name)
        if existing is None:
            raise
        return existing.experiment_id


def _pip_requirements() -> list[str]:
    # Explicit pins: MLflow's requirement inference would re-import the model (slow).
    import mlflow
    import numpy
    import pandas
    import torch

    return [
        f"mlflow=={mlflow.__version__}",
        f"torch=={torch.__version__.split('+')[0]}",
        f"pandas=={pandas.__version__}",
        f"numpy=={numpy.__version__}",
        "pyarrow",
        "scikit-learn",
    ]


def run_training(args: argparse.Namespace) -> dict[str, Any]:
    import mlflow
    import torch

    from mlflywheel.datasets import get_spec
    from mlflywheel.lake import lake_from_settings
    from mlflywheel.registry import configure_mlflow
    from mlflywheel.settings import Settings
    from mlflywheel.training.loop import default_device, evaluate, make_tensors, predict_proba, train_model
    from mlflywheel.training.model import Preprocessor, build_model
    from mlflywheel.training.pyfunc_model import FraudModel, save_artifacts
    from mlflywheel.training.snapshot import load_snapshot

    settings = Settings.from_env()
    lake = lake_from_settings(settings)
    manifest, splits = load_snapshot(lake, args.snapshot_id)
    spec = get_spec(manifest["dataset"])
    target = spec.target
    device = torch.device(args.device) if args.device else default_device()
    log.info(
        "snapshot %s: train=%d validation=%d holdout=%d rows; device=%s",
        args.snapshot_id,
        len(splits["train"]),
        len(splits["validation"]),
        len(splits["holdout"]),
        device,
    )

    preprocessor = Preprocessor.fit(spec, splits["train"])
    model = build_model(preprocessor, seed=args.seed)
    train_t = make_tensors(preprocessor, splits["train"], target)
    val_t = make_tensors(preprocessor, splits["validation"], target)
    history = train_model(
        model,
        train_t,
        val_t,
        epochs=args.epochs,
        lr=args.learning_rate,
        batch_size=args.batch_size,
        seed=args.seed,
        device=device,
    )
    model.cpu().eval()
    metrics_val = evaluate(model, preprocessor, splits["validation"], target)
    metrics_holdout = evaluate(model, preprocessor, splits["holdout"], target)
    metrics: dict[str, float] = {}
    for prefix, values in (("val", metrics_val), ("holdout", metrics_holdout)):
        for key in ("pr_auc", "roc_auc", "log_loss"):
            metrics[f"{prefix}_{key}"] = values[key]
    metrics["train_seconds"] = history["seconds"]
    metrics["best_epoch"] = history["best_epoch"]

    client = configure_mlflow(settings)
    experiment_id = ensure_experiment(client, settings.mlflow_experiment, settings.mlflow_artifact_root)
    run_tags = {
        **args.tags,
        "flywheel.snapshot_id": args.snapshot_id,
        "flywheel.dataset": spec.name,
        "flywheel.end_day": str(manifest.get("end_day", "")),
    }
    with mlflow.start_run(experiment_id=experiment_id, tags=run_tags) as run:
        run_id = run.info.run_id
        mlflow.log_params(
            {
                "epochs": args.epochs,
                "learning_rate": args.learning_rate,
                "batch_size": args.batch_size,
                "seed": args.seed,
                "device": str(device),
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
            }
        )
        # An undefined metric (NaN) is left out rather than stored as NaN.
        mlflow.log_metrics({k: float(v) for k, v in metrics.items() if math.isfinite(float(v))})
        for record in history["epochs"]:
            step_metrics = {
                "epoch_train_loss": record["train_loss"],
                "epoch_val_pr_auc": record["val_pr_auc"],
                "epoch_val_roc_auc": record["val_roc_auc"],
            }
            mlflow.log_metrics(
                {k: v for k, v in step_metrics.items() if math.isfinite(v)}, step=record["epoch"]
            )
        mlflow.log_dict(manifest, MANIFEST_ARTIFACT)
        mlflow.log_dict(history, HISTORY_ARTIFACT)
        _log_dataset_input(spec, splits["train"], lake.url(f"snapshots/{spec.name}/{args.snapshot_id}"))

        with tempfile.TemporaryDirectory(prefix="flywheel-train-") as tmp:
            tmp_dir = Path(tmp)
            artifacts = save_artifacts(tmp_dir / "model_files", preprocessor, model)

            # Reference sample for drift: train features + the model's score on them.
            train = splits["train"]
            n_ref = min(settings.reference_sample_size, len(train))
            reference = train.sample(n=n_ref, random_state=args.seed).sort_index()
            reference = reference[list(spec.features)].reset_index(drop=True)
            reference["score"] = predict_proba(model, preprocessor, reference)
            ref_path = tmp_dir / REFERENCE_FILE
            reference.to_parquet(ref_path, index=False)
            mlflow.log_artifact(str(ref_path), artifact_path=REFERENCE_ARTIFACT_DIR)

            # No signature on purpose: MLflow's schema enforcement rejects the validated
            # frames' nullable Int64 columns; FraudModel preprocesses any frame itself.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "no input example" nag
                model_info = mlflow.pyfunc.log_model(
                    name=MODEL_ARTIFACT,
                    python_model=FraudModel(),
                    artifacts=artifacts,
                    pip_requirements=_pip_requirements(),
                )

        # Register last (tags in the same call): any earlier failure leaves no version behind.
        version_tags = {
            **args.tags,
            "flywheel.snapshot_id": args.snapshot_id,
            "flywheel.dataset": spec.name,
            "flywheel.run_id": run_id,
            "flywheel.metrics": json.dumps({k: _finite(v) for k, v in metrics.items()}, sort_keys=True),
        }
        version = mlflow.register_model(
            model_info.model_uri,
            settings.model_name,
            tags={k: str(v)[:5000] for k, v in version_tags.items()},
        )

    return {
        "run_id": run_id,
        "model_name": settings.model_name,
        "version": str(version.version),
        "snapshot_id": args.snapshot_id,
        "metrics": {k: _finite(v) for k, v in metrics.items()},
    }


def _finite(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _log_dataset_input(spec: Any, train: Any, source: str) -> None:
    """Record the train split as the run's dataset input (best effort: lineage is also in tags)."""
    import mlflow

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # source ambiguity / Int64 schema hints
            dataset = mlflow.data.from_pandas(
                train, source=source, targets=spec.target, name=f"{spec.name}-train"
            )
            mlflow.log_input(dataset, context="training")
    except Exception as exc:  # pragma: no cover - depends on MLflow internals
        log.warning("could not log the dataset input: %s", exc)


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
        log.error("training failed", exc_info=True)
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
