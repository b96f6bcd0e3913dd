"""The upstream's side of delivery: write a day's file to the landing zone, then ``_SUCCESS``.

The marker is written last and is what sensors wait for: a file without a marker is still
being delivered. Re-landing a day first withdraws the marker, so a consumer never pairs a
new file with an old "complete" signal.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import pandas as pd

from mlflywheel.datasets.spec import DatasetSpec
from mlflywheel.lake import Lake, frame_to_parquet, keys


def landing_key(spec: DatasetSpec, day: dt.date) -> str:
    """Where the upstream delivers the day's file (in the spec's landing format)."""
    return keys.landing_key(spec.name, day, spec.landing_format)


def landing_marker_key(spec: DatasetSpec, day: dt.date) -> str:
    """The marker the upstream writes after the file: the partition is complete."""
    return keys.landing_marker_key(spec.name, day)


def land_frame(lake: Lake, spec: DatasetSpec, day: dt.date, df: pd.DataFrame) -> str:
    """Deliver ``df`` as the day's file in the spec's landing format; returns the file key."""
    if spec.landing_format == "csv":
        data = frame_to_csv_bytes(df)
    elif spec.landing_format == "parquet":
        data = frame_to_parquet(df)
    else:  # pragma: no cover - DatasetSpec's type allows only the two
        raise ValueError(f"unsupported landing format {spec.landing_format!r}")
    return land_bytes(lake, spec, day, data)


def land_bytes(lake: Lake, spec: DatasetSpec, day: dt.date, data: bytes) -> str:
    """Deliver raw bytes as the day's file (e.g. a corrupt one); returns the file key."""
    key = landing_key(spec, day)
    marker = landing_marker_key(spec, day)
    lake.delete_prefix(marker)
    lake.put_bytes(key, data)
    marker_doc = {
        "file": key.rsplit("/", 1)[1],
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "landed_at": dt.datetime.now(dt.UTC).isoformat(),
    }
    lake.put_bytes(marker, json.dumps(marker_doc, sort_keys=True).encode())
    return key


def is_landed(lake: Lake, spec: DatasetSpec, day: dt.date) -> bool:
    """True once the day's delivery is complete (its marker is present)."""
    return lake.exists(landing_marker_key(spec, day))


def frame_to_csv_bytes(df: pd.DataFrame) -> bytes:
    """CSV as upstreams write it: no index, empty for null, datetimes ISO-8601 UTC with ``Z``."""
    out = df.copy()
    for column in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[column]):
            out[column] = _iso_utc(out[column])
    return out.to_csv(index=False, lineterminator="\n").encode("utf-8")


def _iso_utc(values: pd.Series) -> pd.Series:
    if values.dt.tz is None:
        values = values.dt.tz_localize("UTC")  # naive times are taken to be UTC
    values = values.dt.tz_convert("UTC")
    text = values.dt.strftime("%Y-%m-%dT%H:%M:%S.%f")
    # Millisecond precision when nothing finer is there (the usual case), else microseconds.
    sub_ms = values.dropna().dt.microsecond % 1000 != 0
    if not sub_ms.any():
        text = text.str[:-3]
    return (text + "Z").where(values.notna(), None)
