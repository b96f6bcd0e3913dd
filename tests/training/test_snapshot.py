"""Snapshots: time-ordered splits, lineage in the manifest, deterministic ids, clear errors."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
from mlflywheel.datasets import get_spec, spec_from_manifest, spec_to_dict
from mlflywheel.datasets.spec import DriftPolicy
from mlflywheel.devstack.synthetic import synthetic_frame, write_validated
from mlflywheel.lake import LocalLake, frame_to_parquet
from mlflywheel.lake.keys import ROW_ID_COLUMN
from mlflywheel.training.snapshot import SPLITS, SnapshotError, build_snapshot, load_snapshot

SPEC = get_spec("transactions")
END = dt.date(2026, 11, 10)


def days_back(n: int) -> list[dt.date]:
    return [END - dt.timedelta(days=i) for i in range(n)]


@pytest.fixture
def lake(tmp_path: Path) -> LocalLake:
    lake = LocalLake(tmp_path / "lake")
    # Four days in the window, one day outside on each side (must be ignored).
    write_validated(lake, SPEC, days_back(5) + [END + dt.timedelta(days=1)], 120, seed=3)
    return lake


def test_split_order_rows_and_lineage(lake: LocalLake) -> None:
    manifest = build_snapshot(lake, SPEC, end_day=END, window_days=4, min_rows=100)
    assert [p["partition"] for p in manifest["partitions"]] == [d.isoformat() for d in sorted(days_back(4))]
    for p in manifest["partitions"]:
        assert p["rows"] == 120
        assert (
            p["version"]
            == lake.manifest("validated", SPEC.name, dt.date.fromisoformat(p["partition"]))["version"]
        )
    assert manifest["dataset"] == "transactions" and manifest["window_days"] == 4
    assert manifest["end_day"] == END.isoformat()

    loaded_manifest, splits = load_snapshot(lake, manifest["snapshot_id"])
    assert loaded_manifest == manifest
    assert sum(len(splits[s]) for s in SPLITS) == 480 == manifest["rows"]
    ts = SPEC.timestamp_column
    # No row of a later split is older than any row of an earlier split.
    assert splits["train"][ts].max() < splits["validation"][ts].min()
    assert splits["validation"][ts].max() < splits["holdout"][ts].min()
    assert splits["validation"][ts].min() == pd.Timestamp(manifest["boundaries"]["validation_start"])
    assert splits["holdout"][ts].min() == pd.Timestamp(manifest["boundaries"]["holdout_start"])
    for name in SPLITS:
        info = manifest["splits"][name]
        assert info["rows"] == len(splits[name])
        assert info["positives"] == int(splits[name][SPEC.target].sum()) > 0
    assert abs(manifest["splits"]["train"]["rows"] / 480 - 0.7) < 0.02
    # Types survive the round trip.
    assert str(splits["train"]["account_age_days"].dtype) == "Int64"
    assert str(splits["train"][ts].dtype) == "datetime64[ns, UTC]"
    # Files: parquet first, manifest last, under snapshots/<dataset>/<id>/.
    keys = lake.list_keys(f"snapshots/transactions/{manifest['snapshot_id']}/")
    assert sorted(k.rsplit("/", 1)[1] for k in keys) == [
        "holdout.parquet",
        "manifest.json",
        "train.parquet",
        "validation.parquet",
    ]


def test_ties_stay_in_one_split(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path / "lake")
    frame = synthetic_frame(SPEC, END, 300, seed=1)
    # Only 10 distinct timestamps: every tie group must land in a single split.
    frame[SPEC.timestamp_column] = frame[SPEC.timestamp_column].dt.floor("D") + pd.to_timedelta(
        (frame.index % 10) * 3600, unit="s"
    )
    frame[SPEC.target] = pd.array((frame.index % 3 == 0).astype(int), dtype="Int64")
    lake.publish_partition("validated", SPEC.name, END, {"data.parquet": frame_to_parquet(frame)})
    manifest = build_snapshot(lake, SPEC, end_day=END, window_days=1, min_rows=100)
    _, splits = load_snapshot(lake, manifest["snapshot_id"])
    sets = [set(splits[s][SPEC.timestamp_column]) for s in SPLITS]
    assert not (sets[0] & sets[1]) and not (sets[1] & sets[2]) and not (sets[0] & sets[2])
    assert splits["train"][SPEC.timestamp_column].max() < splits["validation"][SPEC.timestamp_column].min()


def test_id_is_deterministic_and_tracks_partition_versions(lake: LocalLake) -> None:
    first = build_snapshot(lake, SPEC, end_day=END, window_days=4, min_rows=100)
    again = build_snapshot(lake, SPEC, end_day=END, window_days=4, min_rows=100)
    assert again["snapshot_id"] == first["snapshot_id"]
    assert again["created_at"] == first["created_at"]  # found, not rebuilt
    other_window = build_snapshot(lake, SPEC, end_day=END, window_days=3, min_rows=100)
    assert other_window["snapshot_id"] != first["snapshot_id"]
    write_validated(lake, SPEC, [END], 120, seed=99)  # re-published partition: new version
    republished = build_snapshot(lake, SPEC, end_day=END, window_days=4, min_rows=100)
    assert republished["snapshot_id"] != first["snapshot_id"]


def test_too_few_rows(lake: LocalLake) -> None:
    with pytest.raises(SnapshotError, match="480 validated rows; at least 500"):
        build_snapshot(lake, SPEC, end_day=END, window_days=4, min_rows=500)


def test_no_partitions_in_window(lake: LocalLake) -> None:
    with pytest.raises(SnapshotError, match="no validated transactions partitions"):
        build_snapshot(lake, SPEC, end_day=END - dt.timedelta(days=30), window_days=3)


def test_split_without_positives(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path / "lake")
    frame = synthetic_frame(SPEC, END, 300, seed=1)
    labels = [1 if i < 100 else 0 for i in range(300)]  # positives only in the earliest rows
    frame[SPEC.target] = pd.array(labels, dtype="Int64")
    lake.publish_partition("validated", SPEC.name, END, {"data.parquet": frame_to_parquet(frame)})
    with pytest.raises(SnapshotError, match="validation split has .* 0 positive"):
        build_snapshot(lake, SPEC, end_day=END, window_days=1, min_rows=100)
    assert lake.list_keys("snapshots/") == []  # nothing half-written


def test_load_unknown_snapshot(lake: LocalLake) -> None:
    with pytest.raises(SnapshotError, match="no snapshot"):
        load_snapshot(lake, "transactions-20261110-w4-000000000000")
    with pytest.raises(SnapshotError, match="no snapshot"):
        load_snapshot(lake, "../etc")


# --- the spec travels with the snapshot; datasets without an id column -----------------------


def test_manifest_embeds_the_spec_and_the_id_follows_it(lake: LocalLake) -> None:
    manifest = build_snapshot(lake, SPEC, end_day=END, window_days=4, min_rows=100)
    assert manifest["spec"] == spec_to_dict(SPEC)
    assert spec_from_manifest(manifest) == SPEC
    edited = dataclasses.replace(SPEC, drift=DriftPolicy(exclude=("channel",)))
    other = build_snapshot(lake, edited, end_day=END, window_days=4, min_rows=100)
    assert other["snapshot_id"] != manifest["snapshot_id"]  # same data, edited spec: a new snapshot
    assert spec_from_manifest(other).drift.exclude == ("channel",)


def test_without_an_id_column_the_order_is_by_time_then_derived_id(tmp_path: Path) -> None:
    spec = dataclasses.replace(SPEC, id_column=None)
    lake = LocalLake(tmp_path / "lake")
    frame = synthetic_frame(spec, END, 300, seed=1)
    # Ten distinct timestamps: ties everywhere; the derived id decides within a tie.
    frame[spec.timestamp_column] = frame[spec.timestamp_column].dt.floor("D") + pd.to_timedelta(
        (frame.index % 10) * 3600, unit="s"
    )
    frame[spec.target] = pd.array((frame.index % 3 == 0).astype(int), dtype="Int64")
    frame[ROW_ID_COLUMN] = [f"{END.isoformat()}:{i}" for i in range(len(frame))]
    lake.publish_partition("validated", spec.name, END, {"data.parquet": frame_to_parquet(frame)})
    manifest = build_snapshot(lake, spec, end_day=END, window_days=1, min_rows=100)
    _, splits = load_snapshot(lake, manifest["snapshot_id"])
    whole = pd.concat([splits[s] for s in SPLITS], ignore_index=True)
    expected = frame.sort_values([spec.timestamp_column, ROW_ID_COLUMN], kind="mergesort")
    assert whole[ROW_ID_COLUMN].tolist() == expected[ROW_ID_COLUMN].tolist()


def test_validated_rows_without_a_derived_id_are_numbered_as_stored(tmp_path: Path) -> None:
    spec = dataclasses.replace(SPEC, id_column=None)
    lake = LocalLake(tmp_path / "lake")
    write_validated(lake, spec, days_back(2), 150, seed=4)  # a writer that leaves _row_id out
    first = build_snapshot(lake, spec, end_day=END, window_days=2, min_rows=100)
    _, splits = load_snapshot(lake, first["snapshot_id"])
    ids = pd.concat([splits[s][ROW_ID_COLUMN] for s in SPLITS])
    assert ids.is_unique and len(ids) == 300
    assert set(ids) == {f"{day.isoformat()}:{i}" for day in days_back(2) for i in range(150)}
