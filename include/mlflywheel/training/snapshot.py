"""Training snapshots: a frozen, time-split copy of the validated window, with lineage.

``build_snapshot`` reads the validated partitions in ``(end_day - window_days, end_day]``,
splits the rows by time (train is the oldest, then validation, then holdout) and writes
``snapshots/<dataset>/<snapshot_id>/{train,validation,holdout}.parquet`` and, last,
``manifest.json``. Readers trust only the manifest, as with partitions.

The snapshot id is derived from the dataset, the window and the versions of the partitions
read, so re-running on unchanged data yields the same id (and the same files), while any
re-published partition yields a new one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mlflywheel.datasets.spec import DatasetSpec
from mlflywheel.lake import Lake, frame_from_parquet, frame_to_parquet

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

SPLITS = ("train", "validation", "holdout")
ZONE = "snapshots"
MANIFEST_NAME = "manifest.json"


class SnapshotError(RuntimeError):
    """A snapshot cannot be built or read (too little data, no positives, missing id)."""


def snapshot_prefix(dataset: str, snapshot_id: str) -> str:
    return f"{ZONE}/{dataset}/{snapshot_id}"


def make_snapshot_id(
    dataset: str,
    end_day: dt.date,
    window_days: int,
    partitions: Sequence[dict[str, Any]],
    fractions: Sequence[float],
) -> str:
    """Deterministic id: same inputs (partition versions included) give the same id."""
    content = json.dumps(
        {
            "partitions": [[p["partition"], p["version"]] for p in partitions],
            "fractions": [round(float(f), 6) for f in fractions],
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
    days = [d for d in lake.list_partitions("validated", spec.name) if start_exclusive < d <= end_day]
    if not days:
        raise SnapshotError(
            f"no validated {spec.name} partitions in ({start_exclusive}, {end_day}]; "
            "has ingest run for this window?"
        )

    frames: list[pd.DataFrame] = []
    partitions: list[dict[str, Any]] = []
    for day in days:
        manifest = lake.manifest("validated", spec.name, day)
        if manifest is None:  # removed between listing and reading
            continue
        frame = lake.read_frame("validated", spec.name, day)
        frames.append(frame)
        partitions.append({"partition": day.isoformat(), "version": manifest["version"], "rows": len(frame)})

    snapshot_id = make_snapshot_id(spec.name, end_day, window_days, partitions, fractions)
    prefix = snapshot_prefix(spec.name, snapshot_id)
    if lake.exists(f"{prefix}/{MANIFEST_NAME}"):
        # Same partition versions, same split: the existing snapshot is this snapshot.
        return lake.get_json(f"{prefix}/{MANIFEST_NAME}")

    data = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    total = len(data)
    if total < min_rows:
        raise SnapshotError(
            f"{spec.name} window ({start_exclusive}, {end_day}] has {total} validated rows; "
            f"at least {min_rows} are needed to train"
        )

    ts_col = spec.timestamp_column
    # Sort by time, then id, so the split is deterministic when timestamps tie.
    data = data.sort_values([ts_col, spec.id_column], kind="mergesort").reset_index(drop=True)
    timestamps = data[ts_col]
    # Boundaries are timestamps at the cumulative-fraction quantiles. Rows equal to a
    # boundary go to the later split, so no later row is older than an earlier one.
    validation_start = timestamps.iloc[min(int(total * fractions[0]), total - 1)]
    holdout_start = timestamps.iloc[min(int(total * (fractions[0] + fractions[1])), total - 1)]
    masks = {
        "train": timestamps < validation_start,
        "validation": (timestamps >= validation_start) & (timestamps < holdout_start),
        "holdout": timestamps >= holdout_start,
    }
    splits = {name: data.loc[mask].reset_index(drop=True) for name, mask in masks.items()}

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
            "start": frame[ts_col].min().isoformat(),
            "end": frame[ts_col].max().isoformat(),
            "file": f"{name}.parquet",
        }

    for name in SPLITS:  # data first, manifest last (the commit point)
        lake.put_bytes(f"{prefix}/{name}.parquet", frame_to_parquet(splits[name]))
    manifest = {
        "snapshot_id": snapshot_id,
        "dataset": spec.name,
        "end_day": end_day.isoformat(),
        "window_days": window_days,
        "window": {"start_exclusive": start_exclusive.isoformat(), "end_inclusive": end_day.isoformat()},
        "fractions": list(fractions),
        "timestamp_column": ts_col,
        "target": spec.target,
        "features": list(spec.features),
        "partitions": partitions,
        "boundaries": {
            "validation_start": validation_start.isoformat(),
            "holdout_start": holdout_start.isoformat(),
        },
        "rows": total,
        "splits": split_info,
        "created_at": dt.datetime.now(dt.UTC).isoformat(),
        "lake_uri": lake.uri,
    }
    lake.put_json(f"{prefix}/{MANIFEST_NAME}", manifest)
    return manifest


def _manifest_key(lake: Lake, snapshot_id: str) -> str:
    # Ids look like <dataset>-<YYYYMMDD>-w<N>-<hash>; the dataset part gives the folder.
    parts = snapshot_id.rsplit("-", 3)
    if len(parts) == 4 and parts[0] and "/" not in snapshot_id and ".." not in snapshot_id:
        key = f"{snapshot_prefix(parts[0], snapshot_id)}/{MANIFEST_NAME}"
        if lake.exists(key):
            return key
    raise SnapshotError(f"no snapshot {snapshot_id!r} in lake {lake.uri}")


def load_snapshot(lake: Lake, snapshot_id: str) -> tuple[dict[str, Any], dict[str, pd.DataFrame]]:
    """The manifest and the three splits of a snapshot written by :func:`build_snapshot`."""
    key = _manifest_key(lake, snapshot_id)
    manifest = lake.get_json(key)
    prefix = key.rsplit("/", 1)[0]
    frames = {name: frame_from_parquet(lake.get_bytes(f"{prefix}/{name}.parquet")) for name in SPLITS}
    return manifest, frames
