"""The raw partition's layout, shared by ingest (which writes it) and validation (which reads it):
its Arrow schema, and its two files, row for row, ``data.parquet`` (the schema's columns, typed
exactly as a validated partition types them: :func:`mlflywheel.datasets.cells.typed_schema`) and
``meta.parquet`` (``_row``, ``_coercion_errors``, the columns the schema does not know). The
contract in full: :mod:`mlflywheel.ingest`."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from mlflywheel.datasets.cells import typed_schema
from mlflywheel.datasets.spec import DatasetSpec
from mlflywheel.lake.keys import COERCION_ERRORS_COLUMN, ROW_COLUMN, ROW_ID_COLUMN


def raw_columns(header: list[str], spec: DatasetSpec) -> list[tuple[str, str]]:
    """(name, dtype) of the raw partition's data columns: the schema's columns the file has, in
    schema order, then the columns the schema does not know, as text, in the file's order."""
    known = [(c.name, c.dtype) for c in spec.columns if c.name in header]
    return known + [(name, "string") for name in header if name not in spec.column_names]


def raw_schema(header: list[str], spec: DatasetSpec, *, row_ids: bool) -> Any:
    """The Arrow schema, with the pandas metadata that makes ``read_frame`` give the contract's
    dtypes (object, Int64, float64, datetime64[ns, UTC]) whatever the values."""
    import pandas as pd
    import pyarrow as pa

    sample = {
        "string": pd.Series(["x"], dtype=object),
        "int": pd.array([1], dtype="Int64"),
        "float": np.array([1.0]),
        "datetime": pd.Series(pd.to_datetime(["2026-01-01"], utc=True)).astype("datetime64[ns, UTC]"),
    }
    frame = pd.DataFrame({name: sample[dtype] for name, dtype in raw_columns(header, spec)}, index=[0])
    frame[ROW_COLUMN] = np.array([0], dtype=np.int64)
    if row_ids:
        frame[ROW_ID_COLUMN] = "x"
    frame[COERCION_ERRORS_COLUMN] = "x"
    return pa.Schema.from_pandas(frame, preserve_index=False)


def split_schemas(header: list[str], spec: DatasetSpec, *, row_ids: bool) -> tuple[Any, Any]:
    """The raw data file's schema (the schema's columns the file has, typed as a validated
    partition's, then ``_row_id`` when ``row_ids``) and the meta file's (the columns the schema
    does not know, ``_row``, ``_coercion_errors``), from :func:`raw_schema`."""
    import pyarrow as pa

    full = raw_schema(header, spec, row_ids=row_ids)
    known = [(c.name, c.dtype) for c in spec.columns if c.name in header]
    data = typed_schema(known, row_ids=row_ids)
    meta_fields = [f for f in full if f.name not in data.names]
    # the meta file's pandas metadata: the full schema's, less the data columns
    meta = pa.schema(meta_fields, metadata=_pandas_metadata_of(full, [f.name for f in meta_fields]))
    return data, meta


def _pandas_metadata_of(schema: Any, names: list[str]) -> dict[bytes, bytes]:
    """``schema``'s pandas metadata restricted to ``names`` (so a reader of the file alone gets
    the contract's dtypes too)."""
    pandas = json.loads(schema.metadata[b"pandas"])
    pandas["columns"] = [c for c in pandas["columns"] if c["name"] in names]
    pandas["column_indexes"] = []
    pandas["index_columns"] = []
    return {**schema.metadata, b"pandas": json.dumps(pandas).encode()}


def combined_names(data: list[str], meta: list[str]) -> list[str]:
    """The raw partition's columns in the order of its schema (:func:`raw_schema`), given those
    of its data and meta files: the schema's columns, unknown columns, ``_row``, ``_row_id``,
    ``_coercion_errors``."""
    tail = [ROW_ID_COLUMN] if ROW_ID_COLUMN in data else []
    tail += [COERCION_ERRORS_COLUMN] if COERCION_ERRORS_COLUMN in meta else []
    return [n for n in data if n != ROW_ID_COLUMN] + [n for n in meta if n != COERCION_ERRORS_COLUMN] + tail


def read_raw_table(data: Any, meta: Any | None, spec: DatasetSpec) -> Any:
    """A raw partition as one Arrow table in the order and with the pandas metadata of
    :func:`raw_schema`, from its data file's table and its meta file's (None: a partition from
    before the meta file, whose data file held every column)."""
    import pyarrow as pa

    if meta is None:
        return data
    if meta.num_rows != data.num_rows:
        raise ValueError(f"the raw meta file has {meta.num_rows} rows, its data file {data.num_rows}")
    names = combined_names(data.column_names, meta.column_names)
    header = [n for n in names if n not in (ROW_COLUMN, ROW_ID_COLUMN, COERCION_ERRORS_COLUMN)]
    columns = [data.column(n) if n in data.column_names else meta.column(n) for n in names]
    schema = raw_schema(header, spec, row_ids=ROW_ID_COLUMN in data.column_names)
    if schema.names != names or any(c.type != f.type for c, f in zip(columns, schema, strict=True)):
        return pa.table(dict(zip(names, columns, strict=True)))  # not ingest's layout: the files' own types
    return pa.Table.from_arrays(columns, schema=schema)
