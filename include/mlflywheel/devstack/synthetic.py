"""Small, strongly-labelled validated partitions for any spec: fixtures for tests and smoke runs.

The real feeds (e.g. :mod:`mlflywheel.datasets.upstreams.transactions`) have rare positives, so a
few hundred rows may hold too few to split three ways. These frames have ~25% positives
and a clear signal (the first category of the first categorical feature, and large values of
the first numeric feature, raise the odds), so a 1-2 epoch model learns them. ``signal=0``
gives labels independent of the features (a model trained on them is no better than chance).
Frames are typed like validated partitions: strings object, ints ``Int64``, floats float64,
datetimes UTC.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import numpy as np
import pandas as pd

from mlflywheel.datasets.spec import DatasetSpec
from mlflywheel.lake import Lake, frame_to_parquet

MS_PER_DAY = 86_400_000


def synthetic_frame(
    spec: DatasetSpec, day: dt.date, rows: int, *, seed: int, signal: float = 1.0
) -> pd.DataFrame:
    rng = np.random.default_rng([seed, day.toordinal()])
    data: dict[str, object] = {}
    for col in spec.columns:
        if col.name == spec.target:
            continue
        if col.dtype == "datetime":
            offsets = np.sort(rng.integers(0, MS_PER_DAY, size=rows))
            start = pd.Timestamp(day.isoformat(), tz="UTC")
            data[col.name] = pd.Series(start + pd.to_timedelta(offsets, unit="ms")).astype(
                "datetime64[ns, UTC]"
            )
        elif col.dtype == "string" and col.categories:
            data[col.name] = np.array(col.categories, dtype=object)[
                rng.integers(0, len(col.categories), rows)
            ]
        elif col.dtype == "string":
            data[col.name] = np.array([f"{col.name}-{day:%Y%m%d}-{i:06d}" for i in range(rows)], dtype=object)
        else:
            low = col.min if col.min is not None else 0.0
            high = col.max if col.max is not None else low + 1000.0
            high = min(high, low + 1000.0)  # keep the scale moderate
            values = rng.uniform(low, high, size=rows)
            if col.dtype == "int":
                data[col.name] = pd.array(np.round(values).astype(np.int64), dtype="Int64")
            else:
                values = np.round(values, 2)
                if col.nullable:
                    values[rng.random(rows) < 0.1] = np.nan
                data[col.name] = values
    frame = pd.DataFrame(data)

    logit = np.full(rows, -1.6)
    if spec.categorical_features:
        first = spec.categorical_features[0]
        logit += 3.0 * (frame[first] == spec.column(first).categories[0]).to_numpy()
    if spec.numeric_features:
        values = pd.to_numeric(frame[spec.numeric_features[0]]).astype("float64").to_numpy(na_value=np.nan)
        z = (values - np.nanmean(values)) / (np.nanstd(values) or 1.0)
        logit += 1.5 * np.nan_to_num(z)
    logit = signal * logit + (1 - signal) * -1.1  # signal=0: a constant ~25% rate
    labels = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    frame[spec.target] = pd.array(labels, dtype="Int64")
    return frame[spec.column_names]


def write_validated(
    lake: Lake,
    spec: DatasetSpec,
    days: Iterable[dt.date],
    rows: int,
    *,
    seed: int,
    signal: float = 1.0,
) -> list[dt.date]:
    """Publish a synthetic validated partition for each day; returns the days."""
    written = []
    for day in days:
        frame = synthetic_frame(spec, day, rows, seed=seed, signal=signal)
        lake.publish_partition("validated", spec.name, day, {"data.parquet": frame_to_parquet(frame)})
        written.append(day)
    return written
