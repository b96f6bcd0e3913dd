"""Injectable upstream faults, so the pipeline's defences can be shown and tested.

:func:`apply_fault` takes a clean day's frame and returns what a broken upstream would have
delivered: a frame with bad content, or (``corrupt_file``) bytes that are not a CSV at all.
Row-level faults touch a ``fraction`` of the rows, chosen reproducibly by ``seed``; the input
frame is never modified. A late partition is not a fault of content: scenarios handle it by
timing (see :mod:`mlflywheel.datasets.upstreams.scenario`).
"""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd

from mlflywheel.datasets.spec import DatasetSpec

FAULTS = (
    "corrupt_file",
    "missing_column",
    "extra_column",
    "wrong_types",
    "out_of_range",
    "duplicate_ids",
    "nulls",
    "empty",
)

EXTRA_COLUMN = "merchant_note"  # any column the schema does not know fails the column check
BAD_NUMBER_TEXTS = ("abc", "twelve", "1.2.3", "#REF!", "12,50 EUR")  # none is a pandas NA token


def apply_fault(
    df: pd.DataFrame,
    fault: str,
    *,
    seed: int,
    fraction: float = 0.05,
    spec: DatasetSpec | None = None,
) -> pd.DataFrame | bytes:
    """Return ``df`` as the faulty upstream would deliver it.

    ``spec`` says which columns are ids, numeric, bounded or required; without it the spec is
    looked up by matching ``df``'s columns against the built-in datasets, or guessed.
    """
    if fault not in FAULTS:
        raise ValueError(f"unknown fault {fault!r}; faults are {', '.join(FAULTS)}")
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    spec = spec or _infer_spec(df)
    rng = np.random.default_rng([seed, FAULTS.index(fault)])
    out = df.copy()

    if fault == "corrupt_file":
        return _corrupt_bytes(out)
    if fault == "empty":
        return out.iloc[0:0].reset_index(drop=True)
    if fault == "missing_column":
        return out.drop(columns=[rng.choice(_required_columns(out, spec))])
    if fault == "extra_column":
        out[EXTRA_COLUMN] = rng.choice(
            np.array(["", "promo", "refund?", "manual entry"], dtype=object), len(out)
        )
        return out

    rows = _pick_rows(len(out), fraction, rng)
    if fault == "wrong_types":
        column = _numeric_columns(out, spec)[0]
        out[column] = out[column].astype(object)
        out.loc[out.index[rows], column] = rng.choice(np.array(BAD_NUMBER_TEXTS, dtype=object), len(rows))
    elif fault == "out_of_range":
        _put_out_of_range(out, rows, spec, rng)
    elif fault == "duplicate_ids":
        id_column = spec.id_column if spec else _guess_id_column(out)
        if id_column is None:
            raise ValueError(f"dataset {spec.name!r} declares no id column: there are no ids to duplicate")
        # Copy ids from other rows onto the chosen ones: each copied id now appears twice.
        others = np.setdiff1d(np.arange(len(out)), rows)
        if len(others):
            sources = rng.choice(others, size=len(rows), replace=len(others) < len(rows))
            out.loc[out.index[rows], id_column] = out[id_column].to_numpy()[sources]
    elif fault == "nulls":
        column = rng.choice(_required_columns(out, spec))
        if pd.api.types.is_integer_dtype(out[column]) or pd.api.types.is_bool_dtype(out[column]):
            out[column] = out[column].astype(object)  # int64 cannot hold a null
        out.loc[out.index[rows], column] = None
    return out


def _pick_rows(n: int, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Positions of the rows to damage: at least one when there are rows at all."""
    if n == 0:
        return np.array([], dtype=np.int64)
    count = min(n, max(1, round(fraction * n)))
    return np.sort(rng.choice(n, size=count, replace=False))


def _corrupt_bytes(df: pd.DataFrame) -> bytes:
    """A gzip stream cut off half way, delivered as if it were the CSV.

    The gzip magic (0x1f 0x8b) is invalid UTF-8 and the stream is truncated, so neither a
    CSV reader nor a decompressor can make sense of it.
    """
    blob = gzip.compress(df.to_csv(index=False).encode(), mtime=0)  # mtime=0: reproducible bytes
    return blob[: max(16, len(blob) // 2)]


def _required_columns(df: pd.DataFrame, spec: DatasetSpec | None) -> list[str]:
    """Non-nullable columns present in ``df`` other than the id and timestamp."""
    if spec:
        roles = {spec.id_column, spec.timestamp_column}
        cols = [c.name for c in spec.columns if not c.nullable and c.name not in roles and c.name in df]
    else:
        cols = [c for c in df.columns if df[c].notna().all() and c != _guess_id_column(df)]
    if not cols:
        raise ValueError("the frame has no required column to damage")
    return cols


def _numeric_columns(df: pd.DataFrame, spec: DatasetSpec | None) -> list[str]:
    """Numeric feature columns present in ``df``, the most prominent (first) first."""
    if spec:
        cols = [c for c in spec.numeric_features if c in df]
    else:
        cols = [c for c in df.select_dtypes("number").columns]
    if not cols:
        raise ValueError("the frame has no numeric column to damage")
    return cols


def _put_out_of_range(
    df: pd.DataFrame, rows: np.ndarray, spec: DatasetSpec | None, rng: np.random.Generator
) -> None:
    """Half the rows get a below-minimum value in one bounded column (a negative amount),
    the other half an absurdly large one in another (an account older than 500 years)."""
    if spec:
        bounded = [spec.column(c) for c in spec.numeric_features if c in df]
        low = [c.name for c in bounded if c.min is not None]
        high = [c.name for c in bounded if c.max is not None]
        bounds = {c.name: (c.min, c.max) for c in bounded}
    else:
        low = high = _numeric_columns(df, None)
        bounds = {c: (0.0, float(df[c].max()) if len(df) else 1.0) for c in low}
    half = len(rows) // 2 if len(rows) > 1 else len(rows)
    below, above = rows[:half], rows[half:]
    if low:
        column = low[0]
        current = df[column].to_numpy()[below].astype(float)
        values = bounds[column][0] - 1.0 - np.abs(np.nan_to_num(current))
        _assign(df, below, column, values)
    if high:
        column = high[1] if len(high) > 1 else high[0]
        top = bounds[column][1]
        values = np.full(len(above), 10.0 * (top if top else 1.0) + 1.0) * rng.uniform(1.0, 2.0, len(above))
        _assign(df, above, column, values)


def _assign(df: pd.DataFrame, rows: np.ndarray, column: str, values: np.ndarray) -> None:
    if pd.api.types.is_integer_dtype(df[column]):
        values = np.floor(values).astype(np.int64)
    df.loc[df.index[rows], column] = values


def _guess_id_column(df: pd.DataFrame) -> str:
    for c in df.columns:
        if c.endswith("_id") or c == "id":
            return c
    return df.columns[0]


def _infer_spec(df: pd.DataFrame) -> DatasetSpec | None:
    """The built-in spec whose columns best cover ``df``'s columns, if any does."""
    from mlflywheel.datasets import built_in_names, get_spec

    best, best_overlap = None, 0
    for name in built_in_names():
        spec = get_spec(name)
        overlap = len(set(spec.column_names) & set(df.columns))
        if overlap > best_overlap:
            best, best_overlap = spec, overlap
    return best if best and best_overlap >= len(df.columns) / 2 else None
