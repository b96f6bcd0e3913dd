"""Training snapshots: a frozen, time-split copy of the validated window, with lineage.

``build_snapshot`` reads the validated partitions in ``(end_day - window_days, end_day]``,
splits the rows by time (train is the oldest, then validation, then holdout) and writes
``snapshots/<dataset>/<snapshot_id>/{train,validation,holdout}.parquet`` and, last,
``manifest.json``. Readers trust only the manifest, as with partitions.

The snapshot id is derived from the dataset, the window, the versions of the partitions read
and the spec, so re-running on unchanged data yields the same id (and the same files), while any
re-published partition or edited spec yields a new one. The manifest embeds the spec (as a plain
dict): training and promotion read it back with
:func:`mlflywheel.datasets.spec_from_manifest`, so they use exactly the spec the snapshot was
built with, also where the spec file is not at hand (a training pod).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mlflywheel.datasets import MANIFEST_SPEC_KEY
from mlflywheel.datasets.spec import DatasetSpec
from mlflywheel.datasets.spec_file import spec_digest, spec_to_dict
from mlflywheel.lake import Lake, frame_from_parquet, frame_to_parquet, keys

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

SPLITS = ("train", "validation", "holdout")


class SnapshotError(RuntimeError):
    """A snapshot cannot be built or read (too little data, no positives, missing id)."""


def make_snapshot_id(
    dataset: str,
    end_day: dt.date,
    window_days: int,
    partitions: Sequence[dict[str, Any]],
    fractions: Sequence[float],
    *,
    spec: DatasetSpec | None = None,
) -> str:
    """Deterministic id: same inputs (partition versions and spec included) give the same id."""
    content = json.dumps(
        {
            "partitions": [[p["partition"], p["version"]] for p in partitions],
            "fractions": [round(float(f), 6) for f in fractions],
            **({"spec": spec_digest(spec)} if spec is not None else {}),
        },
        sort_keys=True,
    )
    digest = hashlib.sha256(content.encode()).hexdigest()[:12]
    return f"{dataset}-{end_day:%Y%m%d}-w{window_days}-{digest}"


def build_snapshot(
    lake: Lake,
    spec: DatasetSpec,
    *,
    end_day: dt.date,
    window_days: int,
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    min_rows: int = 500,
) -> dict[str, Any]:
    """Build (or find, if it already exists) the snapshot of the window; return its manifest."""
    import pandas as pd

    if window_days < 1:
        raise SnapshotError(f"window_days must be >= 1, got {window_days}")
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != 3 or any(f <= 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise SnapshotError(f"fractions must be three positive numbers summing to 1, got {fractions}")

    start_exclusive = end_day - dt.timedelta(days=window_days)
    frames, partitions = _read_window(lake, spec, start_exclusive, end_day)
    snapshot_id = make_snapshot_id(spec.name, end_day, window_days, partitions, fractions, spec=spec)
    manifest_key = keys.snapshot_key(spec.name, snapshot_id)
    if lake.exists(manifest_key):
        # Same partition versions, same split: the existing snapshot is this snapshot.
        return lake.get_json(manifest_key)

    data = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if len(data) < min_rows:
        raise SnapshotError(
            f"{spec.name} window ({start_exclusive}, {end_day}] has {len(data)} validated rows; "
            f"at least {min_rows} are needed to train"
        )
    splits, boundaries = split_by_time(data, spec, fractions)
    split_info = _describe_splits(splits, spec, end_day)
    manifest = {
        "snapshot_id": snapshot_id,
        "dataset": spec.name,
        "end_day": end_day.isoformat(),
        "window_days": window_days,
        "window": {"start_exclusive": start_exclusive.isoformat(), "end_inclusive": end_day.isoformat()},
        "fractions": list(fractions),
        "timestamp_column": spec.timestamp_column,
        "target": spec.target,
        "features": list(spec.features),
        "partitions": partitions,
        "boundaries": boundaries,
        "rows": len(data),
        "splits": split_info,
        "created_at": dt.datetime.now(dt.UTC).isoformat(),
        "lake_uri": lake.uri,
        MANIFEST_SPEC_KEY: spec_to_dict(spec),
    }
    for name in SPLITS:  # data first, manifest last (the commit point)
        lake.put_bytes(keys.snapshot_key(spec.name, snapshot_id, f"{name}.parquet"), frame_to_parquet(splits[name]))
    lake.put_json(manifest_key, manifest)
    return manifest


def _read_window(
    lake: Lake, spec: DatasetSpec, start_exclusive: dt.date, end_day: dt.date
) -> tuple[list[pd.DataFrame], list[dict[str, Any]]]:
    """The validated partitions in ``(start_exclusive, end_day]`` and their versions."""
    days = [d for d in lake.list_partitions(keys.VALIDATED, spec.name) if start_exclusive < d <= end_day]
    if not days:
        raise SnapshotError(
            f"no validated {spec.name} partitions in ({start_exclusive}, {end_day}]; "
            "has ingest run for this window?"
        )
    frames: list[pd.DataFrame] = []
    partitions: list[dict[str, Any]] = []
    for day in days:
        manifest = lake.manifest(keys.VALIDATED, spec.name, day)
        if manifest is None:  # removed between listing and reading
            continue
        frame = lake.read_frame(keys.VALIDATED, spec.name, day)
        if spec.id_column is None and keys.ROW_ID_COLUMN not in frame.columns:
            # Written by a writer that left the derived id out: number the rows as stored.
            frame[keys.ROW_ID_COLUMN] = [keys.derived_row_id(day, row) for row in range(len(frame))]
        frames.append(frame)
        partitions.append({"partition": day.isoformat(), "version": manifest["version"], "rows": len(frame)})
    return frames, partitions


def split_by_time(
    data: pd.DataFrame, spec: DatasetSpec, fractions: Sequence[float]
) -> tuple[dict[str, pd.DataFrame], dict[str, str]]:
    """Train (oldest), validation, holdout (newest), cut at the cumulative-fraction quantiles of time."""
    total = len(data)
    ts_col = spec.timestamp_column
    # Sort by time, then id (declared or derived), so the split is deterministic when timestamps tie.
    data = data.sort_values([ts_col, spec.row_id_column], kind="mergesort").reset_index(drop=True)
    timestamps = data[ts_col]
    # Rows equal to a boundary go to the later split, so no later row is older than an earlier one.
    validation_start = timestamps.iloc[min(int(total * fractions[0]), total - 1)]
    holdout_start = timestamps.iloc[min(int(total * (fractions[0] + fractions[1])), total - 1)]
    masks = {
        "train": timestamps < validation_start,
        "validation": (timestamps >= validation_start) & (timestamps < holdout_start),
        "holdout": timestamps >= holdout_start,
    }
    splits = {name: data.loc[mask].reset_index(drop=True) for name, mask in masks.items()}
    boundaries = {"validation_start": validation_start.isoformat(), "holdout_start": holdout_start.isoformat()}
    return splits, boundaries


def _describe_splits(
    splits: dict[str, pd.DataFrame], spec: DatasetSpec, end_day: dt.date
) -> dict[str, dict[str, Any]]:
    """Rows, positives and time range of each split; every split needs positives."""
    split_info: dict[str, dict[str, Any]] = {}
    for name in SPLITS:
        frame = splits[name]
        positives = int((frame[spec.target] == 1).sum()) if len(frame) else 0
        if len(frame) == 0 or positives == 0:
            raise SnapshotError(
                f"{spec.name} snapshot ending {end_day}: the {name} split has {len(frame)} rows and "
                f"{positives} positive {spec.target} labels; every split needs positives "
                "(widen the window or check the labels)"
            )
        split_info[name] = {
            "rows": len(frame),
            "positives": positives,
            "start": frame[spec.timestamp_column].min().isoformat(),
            "end": frame[spec.timestamp_column].max().isoformat(),
            "file": f"{name}.parquet",
        }
    return split_info


def _manifest_key(lake: Lake, snapshot_id: str) -> str:
    # Ids look like <dataset>-<YYYYMMDD>-w<N>-<hash>; the dataset part gives the folder.
    parts = snapshot_id.rsplit("-", 3)
    if len(parts) == 4 and parts[0] and "/" not in snapshot_id and ".." not in snapshot_id:
        key = keys.snapshot_key(parts[0], snapshot_id)
        if lake.exists(key):
            return key
    raise SnapshotError(f"no snapshot {snapshot_id!r} in lake {lake.uri}")


def load_snapshot(
    lake: Lake, snapshot_id: str, *, training_columns: bool = False
) -> tuple[dict[str, Any], dict[str, pd.DataFrame]]:
    """The manifest and the three splits of a snapshot written by :func:`build_snapshot`.

    ``training_columns`` reads only the features and the target of each split (the columns
    training uses; ids and timestamps are the costliest to turn into a frame).
    """
    key = _manifest_key(lake, snapshot_id)
    manifest = lake.get_json(key)
    prefix = key.rsplit("/", 1)[0]
    columns = [*manifest["features"], manifest["target"]] if training_columns else None
    frames = {
        name: frame_from_parquet(lake.get_bytes(f"{prefix}/{name}.parquet"), columns) for name in SPLITS
    }
    return manifest, frames
