"""run_drift_check end to end on a tiny lake; only the model-registry boundary is faked.

``mlflywheel.registry.champion`` / ``load_reference`` / ``load_model`` are substituted with a
fixed champion whose model scores rows by a simple formula; the lake, the backends and the
MLflow tracking store (a temporary SQLite database) are real.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib
import json
import logging
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from mlflywheel.datasets.spec import DriftPolicy
from mlflywheel.datasets.upstreams.transactions import (
    CHANNELS,
    COUNTRIES,
    CURRENCIES,
    MERCHANT_CATEGORIES,
    TRANSACTIONS,
)
from mlflywheel.drift.check import run_drift_check
from mlflywheel.lake import frame_to_parquet, lake_from_settings
from mlflywheel.settings import Settings

SPEC = TRANSACTIONS
DAY = dt.date(2026, 11, 10)


def make_rows(seed: int, n: int, *, shifted: bool = False) -> pd.DataFrame:
    """Validated transactions; ``shifted`` raises amounts and moves the channel mix."""
    rng = np.random.default_rng(seed)
    seconds = pd.to_timedelta(rng.integers(0, 86_400, n), unit="s")
    channel_mix = [0.2, 0.6, 0.1, 0.1] if shifted else [0.5, 0.3, 0.1, 0.1]
    distance = rng.exponential(30.0, n)
    distance[rng.random(n) < 0.1] = np.nan
    return pd.DataFrame(
        {
            "transaction_id": [f"t{seed}-{i}" for i in range(n)],
            "event_time": pd.Timestamp("2026-11-01", tz="UTC") + seconds,
            "customer_id": [f"c{i % 97}" for i in range(n)],
            "amount": rng.lognormal(3.5, 1.0, n) * (2.0 if shifted else 1.0),
            "currency": rng.choice(CURRENCIES, n, p=[0.6, 0.3, 0.1]),
            "merchant_category": rng.choice(MERCHANT_CATEGORIES, n),
            "country": rng.choice(COUNTRIES, n),
            "channel": rng.choice(CHANNELS, n, p=channel_mix),
            "account_age_days": rng.integers(0, 3000, n),
            "txn_count_24h": rng.poisson(3, n),
            "distance_from_home_km": distance,
            "is_fraud": rng.integers(0, 2, n),
        }
    )


class FakeModel:
    """Scores rise with the amount, like a fraud model's might."""

    def predict_proba(self, df: pd.DataFrame) -> np.ndarray:
        positive = 1 / (1 + np.exp(-(np.log1p(df["amount"].to_numpy(dtype=float)) - 4.0)))
        return np.column_stack([1 - positive, positive])


REFERENCE = make_rows(100, 1500)
REFERENCE_SAMPLE = REFERENCE[list(SPEC.features)].assign(score=FakeModel().predict_proba(REFERENCE)[:, 1])


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # One MLflow database for the module: creating its schema is the slow part.
    return tmp_path_factory.mktemp("flywheel")


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """The real registry module (or a stand-in until it exists) with a fake champion."""
    try:
        module = importlib.import_module("mlflywheel.registry")
    except ImportError:
        module = types.ModuleType("mlflywheel.registry")
        monkeypatch.setitem(sys.modules, "mlflywheel.registry", module)
    calls: list[str] = []
    champion = types.SimpleNamespace(version="7")  # what the code reads of an MLflow ModelVersion
    monkeypatch.setattr(module, "champion", lambda settings: champion, raising=False)

    def load_reference(settings: Settings, version: str) -> pd.DataFrame:
        calls.append(version)
        return REFERENCE_SAMPLE.copy()

    monkeypatch.setattr(module, "load_reference", load_reference, raising=False)
    monkeypatch.setattr(module, "load_model", lambda settings, version: FakeModel(), raising=False)
    # No snapshot tag: the training-window reference falls back to the registered sample.
    monkeypatch.setattr(module, "version_tags", lambda settings, version: {}, raising=False)
    module.calls = calls  # type: ignore[attr-defined]
    return module


def settings_for(data_dir: Path, **overrides: Any) -> Settings:
    return Settings(data_dir=data_dir, **overrides)


def publish(settings: Settings, day: dt.date, rows: pd.DataFrame) -> None:
    lake_from_settings(settings).publish_partition(
        "validated", SPEC.name, day, {"data.parquet": frame_to_parquet(rows)}
    )


def test_skips_without_champion(
    data_dir: Path, registry: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(registry, "champion", lambda settings: None)
    settings = settings_for(data_dir)
    lake = lake_from_settings(settings)
    report = run_drift_check(settings, lake, SPEC, day=dt.date(2026, 11, 1))
    assert (report["status"], report["reason"]) == ("skipped", "no champion model yet")
    assert report["is_drift"] is False
    assert report["report_key"] == "reports/drift/transactions/dt=2026-11-01/report.json"
    assert lake.get_json(report["report_key"])["status"] == "skipped"
    assert "no champion model yet" in lake.get_bytes(report["html_key"]).decode()


def test_skips_without_data_in_window(data_dir: Path, registry: types.ModuleType) -> None:
    settings = settings_for(data_dir)
    report = run_drift_check(settings, lake_from_settings(settings), SPEC, day=dt.date(2026, 12, 1))
    assert report["status"] == "skipped"
    assert "no validated data" in report["reason"]
    assert report["champion_version"] == "7"


@pytest.mark.parametrize("backend", ["alibi", "scipy"])
def test_no_drift_on_same_distribution(data_dir: Path, registry: types.ModuleType, backend: str) -> None:
    # Two days in the window (and one before it, which must be ignored), capped at 1500 rows.
    settings = settings_for(data_dir, drift_backend=backend, drift_window_days=2, drift_max_rows=1500)
    publish(settings, DAY - dt.timedelta(days=2), make_rows(1, 500, shifted=True))
    publish(settings, DAY - dt.timedelta(days=1), make_rows(2, 1000))
    publish(settings, DAY, make_rows(3, 1000))
    lake = lake_from_settings(settings)

    report = run_drift_check(settings, lake, SPEC, day=DAY)

    assert report["status"] == "no_drift", report["drifted_features"]
    assert report["window"] == ["2026-11-09", "2026-11-10"]
    assert report["n_current"] == 1500
    assert report["backend"] == backend and registry.calls == ["7"]
    assert report["prediction_drift"]["is_drift"] is False
    assert {f["name"] for f in report["data_drift"]["features"]} == set(SPEC.features)
    stored = lake.get_json("reports/drift/transactions/dt=2026-11-10/report.json")
    assert stored["status"] == "no_drift" and stored["mlflow_run_id"] == report["mlflow_run_id"]
    page = lake.get_bytes("reports/drift/transactions/dt=2026-11-10/report.html").decode()
    assert all(f"<td>{name}</td>" in page for name in SPEC.features)


def test_drift_on_shifted_data_is_reported_to_mlflow(data_dir: Path, registry: types.ModuleType) -> None:
    settings = settings_for(data_dir, drift_backend="scipy", drift_correction="fdr")
    day = DAY + dt.timedelta(days=1)
    publish(settings, day, make_rows(4, 1200, shifted=True))

    report = run_drift_check(settings, lake_from_settings(settings), SPEC, day=day)

    assert report["status"] == "drift" and report["is_drift"] is True
    assert set(report["drifted_features"]) == {"amount", "channel"}
    assert report["prediction_drift"]["is_drift"] is True
    assert report["triggers"] == ["data_drift", "prediction_drift"]
    amount = next(f for f in report["data_drift"]["features"] if f["name"] == "amount")
    assert amount["significant"] and amount["drifted"] and amount["effect_size"] == "psi" and amount["effect"] >= 0.2

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
    experiment = client.get_experiment_by_name("flywheel-drift")
    assert experiment is not None and experiment.artifact_location.startswith(Path(data_dir).as_uri())
    run = client.get_run(report["mlflow_run_id"])
    assert run.data.tags["status"] == "drift" and run.data.tags["day"] == day.isoformat()
    assert run.data.tags["champion_version"] == "7"
    assert run.data.metrics["n_drifted_features"] == 2
    assert run.data.metrics["prediction_drift_p_value"] < 0.05
    assert run.data.tags["triggers"] == "data_drift,prediction_drift"
    assert run.data.metrics["trigger_data_drift"] == 1 and run.data.metrics["trigger_performance"] == 0
    assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {"report.json", "report.html"}


# --- the drift policy: the champion's training window, performance, prediction drift off ----------

EPOCH = dt.date(2027, 3, 1)  # days of these tests, apart from the ones above


def day_rows(day: dt.date, seed: int, n: int = 300, *, reversed_labels: bool = False) -> pd.DataFrame:
    """Transactions inside ``day`` whose label follows the fake model's score (or its reverse)."""
    rows = make_rows(seed, n)
    rng = np.random.default_rng(seed + 1)
    rows["event_time"] = pd.Timestamp(day.isoformat(), tz="UTC") + pd.to_timedelta(
        np.sort(rng.integers(0, 86_400, n)), unit="s"
    )
    score = FakeModel().predict_proba(rows)[:, 1] + rng.normal(0, 0.1, n)
    rows["is_fraud"] = ((score < 0.35) if reversed_labels else (score > 0.65)).astype(int)
    return rows


def champion_snapshot(settings: Settings, first: dt.date, days: int) -> dict[str, Any]:
    """Publish ``days`` pre-shift days from ``first`` and build the champion's snapshot of them."""
    from mlflywheel.training.snapshot import build_snapshot

    for i in range(days):
        publish(settings, first + dt.timedelta(days=i), day_rows(first + dt.timedelta(days=i), 100 + i))
    end = first + dt.timedelta(days=days - 1)
    return build_snapshot(lake_from_settings(settings), SPEC, end_day=end, window_days=days, min_rows=500)


def test_training_window_reference_and_a_performance_trigger(
    data_dir: Path, registry: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_for(data_dir, drift_backend="scipy")
    manifest = champion_snapshot(settings, EPOCH, 14)
    tags = {"flywheel.snapshot_id": manifest["snapshot_id"],
            "flywheel.metrics": json.dumps({"holdout_pr_auc": 0.9, "holdout_roc_auc": 0.95})}  # fmt: skip
    monkeypatch.setattr(registry, "version_tags", lambda settings, version: tags)
    trained_until = EPOCH + dt.timedelta(days=13)
    # After the champion's window the features stay as they were, the labels turn around.
    for i in range(1, 8):
        day = trained_until + dt.timedelta(days=i)
        publish(settings, day, day_rows(day, 200 + i, reversed_labels=True))
    check_day = trained_until + dt.timedelta(days=7)
    lake = lake_from_settings(settings)

    report = run_drift_check(settings, lake, SPEC, day=check_day)

    assert report["reference"]["kind"] == "training_window" and registry.calls == []  # no sample loaded
    assert report["reference"]["snapshot_id"] == manifest["snapshot_id"]
    seasonal = report["seasonal"]
    assert seasonal["seasonality"] == "day_of_week" and list(seasonal["phases"]) == [str(check_day.weekday())]
    assert report["data_drift"]["n_reference"] == seasonal["reference_rows_after"] < manifest["splits"]["train"]["rows"]
    assert report["data_drift"]["is_drift"] is False and report["prediction_drift"]["drifted"] is False
    performance = report["performance"]
    assert performance["scored_window"] == [(trained_until + dt.timedelta(days=1)).isoformat(),
                                            (check_day - dt.timedelta(days=1)).isoformat()]  # fmt: skip
    assert (performance["status"], performance["rows"], performance["baseline"]) == ("degraded", 1800, 0.9)
    assert report["triggers"] == ["performance"] and report["status"] == "drift" and report["is_drift"]
    assert "performance:" in report["summary"]
    json.dumps(report, allow_nan=False)  # plain JSON types all through (the report travels as XCom)

    from mlflow.tracking import MlflowClient

    run = MlflowClient(tracking_uri=settings.mlflow_tracking_uri).get_run(report["mlflow_run_id"])
    assert run.data.metrics["performance_pr_auc"] == pytest.approx(performance["value"])
    assert run.data.metrics["trigger_performance"] == 1 and run.data.tags["triggers"] == "performance"
    page = lake.get_bytes(report["html_key"]).decode()
    assert "Performance on labelled rows" in page and "degraded" in page and "training_window" in page


def test_missing_snapshot_falls_back_to_the_registered_sample(
    data_dir: Path, registry: types.ModuleType, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_for(data_dir, drift_backend="scipy")
    gone = "transactions-20270401-w14-0123456789ab"
    monkeypatch.setattr(registry, "version_tags", lambda settings, version: {"flywheel.snapshot_id": gone})
    day = EPOCH + dt.timedelta(days=40)
    publish(settings, day, day_rows(day, 300))

    with caplog.at_level(logging.WARNING, logger="mlflywheel.drift.check"):
        report = run_drift_check(settings, lake_from_settings(settings), SPEC, day=day)

    assert report["reference"]["kind"] == "sample" and registry.calls == ["7"]
    assert gone in report["reference"]["fallback_reason"]
    assert any("using the registered reference sample" in r.getMessage() for r in caplog.records)
    # The sample has no timestamps: compared unmatched, and the report says so.
    assert "no 'event_time' column" in report["seasonal"]["skipped"]
    # No holdout figure recorded and the snapshot's end day taken from its id: nothing labelled after it.
    assert report["performance"]["trained_until"] == "2027-04-01"
    assert report["performance"]["status"] == "insufficient_labels"


def test_prediction_drift_off_and_excluded_features(data_dir: Path, registry: types.ModuleType) -> None:
    settings = settings_for(data_dir, drift_backend="scipy")
    spec = dataclasses.replace(SPEC, drift=DriftPolicy(prediction_drift=False, exclude=("channel",)))
    day = EPOCH + dt.timedelta(days=50)
    publish(settings, day, make_rows(9, 1200, shifted=True))

    report = run_drift_check(settings, lake_from_settings(settings), spec, day=day)

    assert report["prediction_drift"] is None and report["triggers"] == ["data_drift"]
    assert report["drifted_features"] == ["amount"]  # channel moved too, but is not monitored
    assert "channel" not in {f["name"] for f in report["data_drift"]["features"]}
    assert report["policy"]["exclude"] == ["channel"] and report["policy"]["p_value"] == 0.01
    assert "off (the dataset" in lake_from_settings(settings).get_bytes(report["html_key"]).decode()


def test_version_tags_reads_the_registered_versions_tags(data_dir: Path) -> None:
    # The real registry function the check reads its champion's snapshot and holdout figures with.
    from mlflywheel import registry as real_registry

    settings = settings_for(data_dir, model_name="flywheel-drift-tags-test")
    client = real_registry.configure_mlflow(settings)
    client.create_registered_model(settings.model_name)
    version = client.create_model_version(
        settings.model_name, source=(data_dir / "nowhere").as_uri(),
        tags={"flywheel.snapshot_id": "transactions-20270301-w14-0123456789ab", "flywheel.metrics": "{}"},
    )  # fmt: skip
    tags = real_registry.version_tags(settings, version.version)
    assert tags["flywheel.snapshot_id"] == "transactions-20270301-w14-0123456789ab"
    with pytest.raises(real_registry.RegistryError, match="no version 99"):
        real_registry.version_tags(settings, "99")
