"""Registry helpers against a file-based MLflow (SQLite + local artifacts)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
from mlflywheel import registry
from mlflywheel.datasets import get_spec
from mlflywheel.devstack.synthetic import write_validated
from mlflywheel.lake import LocalLake
from mlflywheel.settings import Settings
from mlflywheel.training.entrypoint import parse_args, run_training
from mlflywheel.training.snapshot import build_snapshot, load_snapshot

SPEC = get_spec("transactions")
END = dt.date(2026, 11, 10)


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("FLYWHEEL_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("FLYWHEEL_MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'db' / 'mlflow.db'}")
    monkeypatch.setenv("FLYWHEEL_REFERENCE_SAMPLE_SIZE", "40")
    return Settings.from_env()


def test_empty_registry(settings: Settings) -> None:
    client = registry.configure_mlflow(settings)
    assert (Path(settings.data_dir) / "db").is_dir()  # SQLite's folder is created
    assert client.tracking_uri == settings.mlflow_tracking_uri
    assert registry.champion(settings) is None
    assert registry.previous_champion(settings) is None
    assert registry.list_versions(settings) == []
    assert registry.find_version_by_run_tag(settings, "flywheel.airflow_dag_run_id", "x") is None
    with pytest.raises(registry.RegistryError, match="no version 3"):
        registry.load_model(settings, "3")


def test_versions_aliases_tags_and_reference(settings: Settings) -> None:
    lake = LocalLake(Path(settings.data_dir) / "lake")
    write_validated(lake, SPEC, [END - dt.timedelta(days=i) for i in range(2)], 150, seed=4)
    snapshot_id = build_snapshot(lake, SPEC, end_day=END, window_days=2, min_rows=100)["snapshot_id"]
    versions = []
    for run_tag in ("dag-run-a", "dag-run-b"):
        args = parse_args(
            [
                "--snapshot-id",
                snapshot_id,
                "--epochs",
                "1",
                "--batch-size",
                "64",
                "--tag",
                f"flywheel.airflow_dag_run_id={run_tag}",
            ]
        )
        versions.append(run_training(args)["version"])
    assert versions == ["1", "2"]
    assert [str(v.version) for v in registry.list_versions(settings)] == ["1", "2"]
    assert (
        str(registry.find_version_by_run_tag(settings, "flywheel.airflow_dag_run_id", "dag-run-b").version)
        == "2"
    )

    assert registry.set_champion(settings, "1", reason="first") == {
        "champion": "1",
        "previous_champion": None,
    }
    assert registry.set_champion(settings, "2", reason="better") == {
        "champion": "2",
        "previous_champion": "1",
    }
    assert registry.set_champion(settings, "2", reason="again") == {
        "champion": "2",
        "previous_champion": None,
    }
    assert str(registry.champion(settings).version) == "2"
    assert str(registry.previous_champion(settings).version) == "1"  # unchanged by the no-op
    assert registry.get_version(settings, "2").tags["flywheel.champion.reason"] == "again"
    with pytest.raises(registry.RegistryError):
        registry.set_champion(settings, "9", reason="missing")

    registry.tag_version(
        settings, "1", {"flywheel.note": "x" * 6000, "flywheel.count": 3, "flywheel.none": None}
    )
    tags = registry.get_version(settings, "1").tags
    assert len(tags["flywheel.note"]) == registry.TAG_VALUE_LIMIT and tags["flywheel.count"] == "3"

    model = registry.load_model(settings, "2")
    _, splits = load_snapshot(lake, snapshot_id)
    proba = model.predict_proba(splits["validation"])
    assert proba.dtype == np.float64 and np.all((proba >= 0) & (proba <= 1))
    reference = registry.load_reference(settings, "2")
    assert len(reference) == 40 and "score" in reference.columns
    assert set(SPEC.features) <= set(reference.columns)
