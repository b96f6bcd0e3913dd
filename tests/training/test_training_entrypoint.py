"""``python -m mlflywheel.training`` end to end, in a subprocess, on a tiny snapshot."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from mlflywheel import registry
from mlflywheel.datasets import get_spec
from mlflywheel.devstack.synthetic import write_validated
from mlflywheel.lake import LocalLake
from mlflywheel.settings import Settings
from mlflywheel.training.command import RESULT_PREFIX
from mlflywheel.training.snapshot import build_snapshot, load_snapshot

SPEC = get_spec("transactions")
END = dt.date(2026, 11, 10)
INCLUDE = Path(__file__).resolve().parents[2] / "include"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    values = {
        "FLYWHEEL_DATA_DIR": str(tmp_path),
        "FLYWHEEL_LAKE_URI": (tmp_path / "lake").as_uri(),
        "FLYWHEEL_MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "FLYWHEEL_MLFLOW_ARTIFACT_ROOT": str(tmp_path / "artifacts"),
        "FLYWHEEL_REFERENCE_SAMPLE_SIZE": "100",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    lake = LocalLake(tmp_path / "lake")
    write_validated(lake, SPEC, [END - dt.timedelta(days=i) for i in range(3)], 150, seed=11)
    values["SNAPSHOT_ID"] = build_snapshot(lake, SPEC, end_day=END, window_days=3, min_rows=100)[
        "snapshot_id"
    ]
    return values


def run_training(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **env, "PYTHONPATH": f"{INCLUDE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.run(
        [sys.executable, "-m", "mlflywheel.training", *args],
        check=False,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_trains_logs_and_registers(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    proc = run_training(
        env,
        "--snapshot-id",
        env["SNAPSHOT_ID"],
        "--epochs",
        "2",
        "--batch-size",
        "64",
        "--tag",
        "flywheel.airflow_dag_run_id=scheduled__2026-11-10",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith(RESULT_PREFIX)
    result = json.loads(last[len(RESULT_PREFIX) :])
    assert result["model_name"] == "flywheel-transactions" and result["version"] == "1"
    assert result["snapshot_id"] == env["SNAPSHOT_ID"]
    for key in ("val_pr_auc", "val_roc_auc", "val_log_loss", "holdout_pr_auc", "holdout_roc_auc"):
        assert 0.0 <= result["metrics"][key] <= 10.0

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings.from_env()
    client = registry.configure_mlflow(settings)

    version = client.get_model_version(settings.model_name, "1")
    assert version.run_id == result["run_id"]
    assert version.tags["flywheel.snapshot_id"] == env["SNAPSHOT_ID"]
    assert version.tags["flywheel.run_id"] == result["run_id"]
    assert version.tags["flywheel.airflow_dag_run_id"] == "scheduled__2026-11-10"
    found = registry.find_version_by_run_tag(settings, "flywheel.airflow_dag_run_id", "scheduled__2026-11-10")
    assert found is not None and str(found.version) == "1"
    assert registry.find_version_by_run_tag(settings, "flywheel.airflow_dag_run_id", "other") is None

    run = client.get_run(result["run_id"])
    assert run.data.tags["flywheel.snapshot_id"] == env["SNAPSHOT_ID"]
    assert run.data.tags["flywheel.dataset"] == "transactions"
    assert run.data.params["epochs"] == "2"
    # The batch adapts to the small split: 315 training rows, at least 8 steps an epoch.
    train_rows = int(run.data.params["train_rows"])
    assert train_rows == 315
    assert run.data.params["batch_size_requested"] == "64"
    assert run.data.params["batch_size"] == str(train_rows // 8) == "39"
    assert run.data.params["min_steps_per_epoch"] == "8" and run.data.params["steps_per_epoch"] == "9"
    assert "batch size 39 (requested 64; 315 training rows, at least 8 steps per epoch)" in proc.stderr
    assert run.data.metrics["holdout_pr_auc"] == pytest.approx(result["metrics"]["holdout_pr_auc"])
    # Where the time went, in the result, the log and (up to the MLflow parts) the run.
    assert set(result["phases"]) == {
        "import", "load", "prepare", "train", "validate", "evaluate", "reference",
        "mlflow_setup", "mlflow_log", "mlflow_model", "mlflow_register",
    }  # fmt: skip
    assert all(seconds >= 0 for seconds in result["phases"].values())
    (line,) = [line for line in proc.stderr.splitlines() if "phases (s): " in line]
    assert re.search(
        r"phases \(s\): import [\d.]+, load [\d.]+, prepare [\d.]+, train [\d.]+, validate [\d.]+, "
        r"evaluate [\d.]+, reference [\d.]+, mlflow [\d.]+ \(setup [\d.]+, log [\d.]+, model [\d.]+, "
        r"register [\d.]+\); total [\d.]+$",
        line,
    ), line
    assert run.data.metrics["phase_train_seconds"] == pytest.approx(result["phases"]["train"], abs=1e-3)
    assert "phase_mlflow_model_seconds" not in run.data.metrics  # not known before it is logged
    assert run.data.params["training_step"] == "eager"  # the CPU trains eagerly
    # The dataset input describes the columns trained on, from the spec, without reading them.
    (dataset_input,) = run.inputs.dataset_inputs
    assert dataset_input.dataset.name == "transactions-train"
    assert dataset_input.dataset.digest == env["SNAPSHOT_ID"].rsplit("-", 1)[-1]
    columns = json.loads(dataset_input.dataset.schema)["mlflow_colspec"]
    assert [c["name"] for c in columns] == [*SPEC.features, SPEC.target]
    assert {"type": "double", "name": "distance_from_home_km", "required": False} in columns
    artifacts = {a.path for a in client.list_artifacts(result["run_id"], "snapshot")}
    assert "snapshot/manifest.json" in artifacts
    assert client.get_experiment(run.info.experiment_id).artifact_location.startswith(
        Path(env["FLYWHEEL_MLFLOW_ARTIFACT_ROOT"]).as_uri()
    )

    # The registered version loads back with its preprocessing and predicts probabilities.
    _, splits = load_snapshot(LocalLake(Path(env["FLYWHEEL_DATA_DIR"]) / "lake"), env["SNAPSHOT_ID"])
    model = registry.load_model(settings, "1")
    proba = model.predict_proba(splits["holdout"])
    assert proba.shape == (len(splits["holdout"]),)
    assert np.all((proba >= 0) & (proba <= 1))
    import mlflow.pyfunc

    pyfunc_proba = mlflow.pyfunc.load_model("models:/flywheel-transactions/1").predict(splits["holdout"])
    np.testing.assert_allclose(pyfunc_proba, proba, rtol=1e-6)

    reference = registry.load_reference(settings, "1")
    assert list(reference.columns) == [*SPEC.features, "score"]
    assert len(reference) == 100  # FLYWHEEL_REFERENCE_SAMPLE_SIZE
    assert reference["score"].between(0, 1).all()


def test_failed_training_registers_nothing(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    proc = run_training(env, "--snapshot-id", "transactions-20991231-w3-000000000000", "--epochs", "1")
    assert proc.returncode != 0
    assert "flywheel training failed" in proc.stderr and "no snapshot" in proc.stderr
    assert RESULT_PREFIX not in proc.stdout

    bad_args = run_training(env, "--snapshot-id", env["SNAPSHOT_ID"], "--tag", "no-equals-sign")
    assert bad_args.returncode == 2 and "KEY=VALUE" in bad_args.stderr

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings.from_env()
    assert registry.list_versions(settings) == []
    assert registry.champion(settings) is None
