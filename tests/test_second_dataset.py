"""Datasets plug in without code: the built-in ``loans`` (a spec file in the package, a CSV replayed
by its timestamp) and a dataset defined only by a spec file outside the package, without an id
column, with an int-coded categorical feature.

The same stage functions the DAGs call run on them: ingest, validation, snapshot, training (the
real entrypoint in a subprocess, as in a training pod), registration.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from mlflywheel import ledger
from mlflywheel.datasets import get_spec, load_spec, spec_from_manifest, spec_to_dict
from mlflywheel.datasets.upstreams.csv_replay import LOANS_CSV, replay_csv
from mlflywheel.ingest import ingest_partition, read_raw
from mlflywheel.lake import LocalLake, keys, lake_from_settings
from mlflywheel.settings import Settings
from mlflywheel.training.snapshot import build_snapshot, load_snapshot
from mlflywheel.validation import validate_partition


def run_training(settings: Settings, snapshot_id: str) -> dict:
    env = {**os.environ, **settings.to_env()}
    out = subprocess.run(
        [sys.executable, "-m", "mlflywheel.training", "--snapshot-id", snapshot_id, "--epochs", "2"],
        capture_output=True, text=True, env=env, timeout=600, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    return json.loads(out.stdout.split("FLYWHEEL_RESULT ", 1)[1].splitlines()[0])


def test_loans_flow_through_the_pipeline(tmp_path: Path) -> None:
    spec = get_spec("loans")
    settings = Settings(data_dir=tmp_path, dataset="loans")
    lake = LocalLake(tmp_path / "lake")
    replayed = replay_csv(lake, spec, LOANS_CSV)
    days = sorted(replayed.rows_per_day)
    assert len(days) >= 10

    for day in days:
        ingest_partition(lake, spec, day, run_id="t")
        summary = validate_partition(lake, spec, day, run_id="t")
        assert summary["rows_in"] == replayed.rows_per_day[day]
    summaries = ledger.list_summaries(lake, "loans")
    assert len(summaries) == len(days)
    assert sum(s["rows_validated"] for s in summaries) > 0.9 * sum(s["rows_in"] for s in summaries)

    manifest = build_snapshot(lake, spec, end_day=days[-1], window_days=len(days), min_rows=200)
    result = run_training(settings, manifest["snapshot_id"])
    assert result["model_name"] == "flywheel-loans"
    assert result["version"] == "1" or result["version"] == 1


SENSORS_SPEC = """\
# A dataset the package does not know: no id column, an int-coded categorical feature.
name: sensors
description: alarms raised by a few sensors
columns:
  - {name: when, dtype: datetime}
  - {name: site, dtype: string, categories: [north, south, east]}
  - {name: weekday, dtype: int, categories: [0, 1, 2, 3, 4, 5, 6]}
  - {name: temp, dtype: float, nullable: true, min: -50.0, max: 60.0}
  - {name: reading, dtype: int, min: 0, max: 1000}
  - {name: alarm, dtype: int, min: 0, max: 1}
timestamp_column: when
target: alarm
categorical_features: [site, weekday]
numeric_features: [temp, reading]
drift:
  exclude: [weekday]
"""
SENSOR_DAYS = [dt.date(2026, 3, 1) + dt.timedelta(days=i) for i in range(8)]
BAD_VOCAB_DAY = SENSOR_DAYS[2]


def write_sensor_csv(path: Path, rows_per_day: int = 120, seed: int = 5) -> Path:
    """Readings in shuffled order, times with several UTC offsets, some temperatures missing,
    one row on one day with a weekday outside the vocabulary."""
    rng = np.random.default_rng(seed)
    frames = []
    for day in SENSOR_DAYS:
        seconds = rng.integers(0, 86_400, rows_per_day)
        utc = pd.Timestamp(day.isoformat(), tz="UTC") + pd.to_timedelta(seconds, unit="s")
        offsets = rng.choice([-5, 0, 2], rows_per_day)
        when = [t.tz_convert(dt.timezone(dt.timedelta(hours=int(h)))).isoformat() for t, h in zip(utc, offsets)]
        site = rng.choice(["north", "south", "east"], rows_per_day)
        temp = np.round(rng.normal(15, 8, rows_per_day), 1)
        alarm = (rng.random(rows_per_day) < 1 / (1 + np.exp(-(0.25 * (temp - 20) + 1.5 * (site == "north"))))).astype(int)
        weekday = np.full(rows_per_day, day.weekday())
        if day == BAD_VOCAB_DAY:
            weekday[0] = 9
        frames.append(pd.DataFrame({
            "when": when, "site": site, "weekday": weekday,
            "temp": np.where(rng.random(rows_per_day) < 0.05, np.nan, temp),
            "reading": rng.integers(0, 1000, rows_per_day), "alarm": alarm,
        }))  # fmt: skip
    pd.concat(frames).sample(frac=1.0, random_state=seed).to_csv(path, index=False)
    return path


def test_a_spec_file_only_dataset_without_id_from_csv_to_a_trained_model(tmp_path: Path) -> None:
    spec_path = tmp_path / "outside" / "sensors.yaml"
    spec_path.parent.mkdir()
    spec_path.write_text(SENSORS_SPEC)
    settings = Settings(data_dir=tmp_path / "data", dataset="sensors", dataset_spec=str(spec_path))
    spec = load_spec(settings)
    assert spec.id_column is None and spec.row_id_column == keys.ROW_ID_COLUMN
    lake = lake_from_settings(settings)

    replayed = replay_csv(lake, spec, write_sensor_csv(tmp_path / "sensors.csv"), chunk_rows=250)
    assert replayed.rows_per_day == {day: 120 for day in SENSOR_DAYS}
    for day in SENSOR_DAYS:
        ingest_partition(lake, spec, day, run_id="t")
        summary = validate_partition(lake, spec, day, run_id="t")
        bad = 1 if day == BAD_VOCAB_DAY else 0
        assert (summary["rows_in"], summary["rows_validated"], summary["rows_quarantined"]) == (120, 120 - bad, bad)
        if bad:
            assert summary["reasons"] == {"weekday not in its vocabulary": 1}

    # ingest -> raw: a stable id from the day and the row's position in the landed file
    raw = read_raw(lake, spec, SENSOR_DAYS[0])
    assert raw[keys.ROW_ID_COLUMN].tolist() == [f"2026-03-01:{i}" for i in range(120)]
    bad_row = read_raw(lake, spec, BAD_VOCAB_DAY)["weekday"].tolist().index(9)
    bad_id = f"2026-03-03:{bad_row}"
    validated = lake.read_frame(keys.VALIDATED, "sensors", BAD_VOCAB_DAY)
    assert validated.columns.tolist() == [*spec.column_names, keys.ROW_ID_COLUMN]
    assert validated[keys.ROW_ID_COLUMN].is_unique and bad_id not in set(validated[keys.ROW_ID_COLUMN])
    quarantined = lake.read_frame(keys.QUARANTINE, "sensors", BAD_VOCAB_DAY)
    assert quarantined[keys.ROW_ID_COLUMN].tolist() == [bad_id]

    # -> snapshot: deterministic order (time, then derived id), the spec embedded
    manifest = build_snapshot(lake, spec, end_day=SENSOR_DAYS[-1], window_days=len(SENSOR_DAYS), min_rows=200)
    assert manifest["spec"] == spec_to_dict(spec) and spec_from_manifest(manifest) == spec
    _, splits = load_snapshot(lake, manifest["snapshot_id"])
    train = splits["train"]
    assert train[keys.ROW_ID_COLUMN].notna().all()
    assert train.sort_values(["when", keys.ROW_ID_COLUMN]).index.tolist() == list(range(len(train)))
    assert sum(len(s) for s in splits.values()) == 8 * 120 - 1

    # -> the training entrypoint in a fresh process, with the spec file gone (as in a pod): the
    # manifest's spec is the one used (this was "KeyError: unknown dataset" before).
    spec_path.unlink()
    result = run_training(settings, manifest["snapshot_id"])
    assert result["model_name"] == "flywheel-sensors"
    assert str(result["version"]) == "1"
