"""The raw partition's Arrow schema, the cast of a batch of landed text to it, and the writer of
the partition's two Parquet files, one row group per batch (the contract: :mod:`mlflywheel.ingest`):
``data.parquet``, the schema's columns typed exactly as a validated partition types them, and
``meta.parquet`` beside it, row for row, with what a validated partition does not keep (``_row``,
``_coercion_errors``, the columns the schema does not know)."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlflywheel.datasets.cells import cast_array, typed_schema
from mlflywheel.datasets.spec import DatasetSpec
from mlflywheel.lake.base import PARQUET_WRITER_OPTIONS
from mlflywheel.lake.keys import (
    COERCION_ERRORS_COLUMN,
    DUPLICATE_IDS_FILE,
    RAW_META_FILE,
    ROW_COLUMN,
    ROW_ID_COLUMN,
)
from mlflywheel.overlap import read_ahead
from mlflywheel.validation.uniqueness import (  # validation's own
    exact_duplicates,
    hash_column,
    repeated_hashes,
)


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


def cast_batch(
    batch: Any, spec: DatasetSpec, *, first_row: int, day: dt.date | None, schema: Any, row_ids: Any = None
) -> tuple[Any, int]:
    """A batch of landed text (columns named by the header) as a batch of ``schema``, and the
    number of its rows with at least one coercion error. ``first_row``: the batch's first record's
    position in the file; ``row_ids``: the rows' ``_row`` (int64) where they are not consecutive."""
    import pyarrow as pa
    import pyarrow.compute as pc

    header = batch.schema.names
    arrays = []
    errors: dict[int, dict[str, str]] = {}
    for name, dtype in raw_columns(header, spec):
        text = batch.column(header.index(name))
        values, failed = cast_array(text, dtype)
        arrays.append(values)
        where = np.flatnonzero(failed)
        if where.size:  # schema order within a row's errors, as the columns are cast
            for position, original in zip(where, text.take(pa.array(where)).to_pylist(), strict=True):
                errors.setdefault(int(position), {})[name] = original
    count = batch.num_rows
    rows = pa.array(np.arange(first_row, first_row + count, dtype=np.int64)) if row_ids is None else row_ids
    arrays.append(rows)
    if ROW_ID_COLUMN in schema.names:  # derived_row_id, in bulk
        arrays.append(pc.binary_join_element_wise(f"{day.isoformat()}:", rows.cast(pa.string()), ""))
    if errors:
        error_json = np.full(count, None, dtype=object)
        for position, bad in errors.items():
            error_json[position] = json.dumps(bad)
        arrays.append(pa.array(error_json, type=pa.string()))
    else:
        arrays.append(pa.nulls(count, pa.string()))
    # a table in (chunked columns, as stream.rechunk gives them, not copied): a table out
    build = pa.Table.from_arrays if isinstance(batch, pa.Table) else pa.RecordBatch.from_arrays
    return build(arrays, schema=schema), len(errors)


@dataclass
class Written:
    """A raw partition written to the spool: its data and meta files, its landed header, rows and notes."""

    path: Path
    header: list[str]
    rows: int
    coercion_errors: int
    notes: list[str]
    unique_ids: list[str] = field(default_factory=list)  # id columns found without a repeated value
    duplicate_ids: Path | None = None  # the id column's values that occur twice (a Parquet file), when few
    meta_path: Path | None = None  # the meta file (``_row``, ``_coercion_errors``, unknown columns)


def write_raw(
    path: Path, header: list[str], batches: Iterable[Any], spec: DatasetSpec, day: dt.date, notes: list[str]
) -> Written:
    """Cast ``batches`` of landed text (record batches or tables) and write them to ``path`` (the
    data file) and to :data:`~mlflywheel.lake.keys.RAW_META_FILE` beside it, one row group per
    batch in both. Three stages overlap, one chunk apart: reading the next chunk, casting this
    one, writing the previous one (pyarrow releases the GIL in all three).

    The id column's values are hashed as they are cast; when no hash repeats, the id column is
    named in :attr:`Written.unique_ids` (validation then needs no pass of its own over the ids)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    row_ids = spec.id_column is None
    schema = raw_schema(header, spec, row_ids=row_ids)
    data_schema, meta_schema = split_schemas(header, spec, row_ids=row_ids)
    if not data_schema.names:  # none of the schema's columns: one file (a Parquet file without columns counts no rows)
        data_schema, meta_schema = schema, None
    ids = _IdHashes() if spec.id_column is not None and spec.id_column in header else None

    def cast_batches() -> Iterator[tuple[Any, int]]:
        first_row = 0
        for batch in read_ahead(batches):
            cast, bad = cast_batch(batch, spec, first_row=first_row, day=day, schema=schema)
            if ids is not None:
                ids.add(cast.column(schema.get_field_index(spec.id_column)))
            yield cast, bad
            first_row += batch.num_rows
        if ids is not None:  # here, in the casting thread, while the last chunk is written
            ids.settle()

    def part(cast: Any, target: Any) -> Any:
        return pa.Table.from_arrays([cast.column(name) for name in target.names], schema=target)

    rows = errors = 0
    meta_path = None if meta_schema is None else path.with_name(RAW_META_FILE)
    with contextlib.ExitStack() as files:
        writers = [
            (files.enter_context(pq.ParquetWriter(out, target, **PARQUET_WRITER_OPTIONS)), target)
            for out, target in ((path, data_schema), (meta_path, meta_schema))
            if out is not None
        ]
        for cast, bad in read_ahead(cast_batches()):
            for writer, target in writers:
                writer.write_table(part(cast, target), row_group_size=max(cast.num_rows, 1))
            rows += cast.num_rows
            errors += bad
    unique = ids is not None and ids.unique is True
    duplicates = None
    if ids is not None and ids.unique is False:  # repeated hashes: the exact values, read back once
        duplicates = _duplicate_ids_file(path, str(spec.id_column), ids.repeated)
    return Written(path, header, rows, errors, notes, unique_ids=[str(spec.id_column)] if unique else [],
                   duplicate_ids=duplicates, meta_path=meta_path)  # fmt: skip


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


MAX_RECORDED_DUPLICATES = 100_000  # more duplicated ids than this: validation finds them itself


def _duplicate_ids_file(path: Path, column: str, repeated: np.ndarray) -> Path | None:
    """The values of ``column`` that occur at least twice in the raw file at ``path`` (among the
    rows whose hash is ``repeated``), written beside it as a one-column Parquet file; None when
    there are none (a collision) or more than :data:`MAX_RECORDED_DUPLICATES`."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if len(repeated) > MAX_RECORDED_DUPLICATES:
        return None
    reader = pq.ParquetFile(path, pre_buffer=False)
    found = exact_duplicates(repeated, lambda: (b.column(0) for b in reader.iter_batches(columns=[column])))
    if not found.values:
        return None
    out = path.with_name(DUPLICATE_IDS_FILE)
    kind = reader.schema_arrow.field(column).type
    pq.write_table(pa.table({column: pa.array(sorted(found.values), type=kind)}), out)
    return out


class _IdHashes:
    """64-bit hashes of an id column's non-null values, chunk by chunk (8 bytes a row); ``unique``
    once settled: True when no hash repeats (then no value does). A repeated hash (a repeated
    value, or a collision) leaves it False: validation then finds the exact duplicates itself."""

    def __init__(self) -> None:
        self.parts: list[np.ndarray] = []
        self.unique: bool | None = None
        self.repeated = np.empty(0, dtype=np.uint64)  # sorted unique hashes that occur twice

    def add(self, column: Any) -> None:
        self.parts.append(hash_column(column))

    def settle(self) -> None:
        hashes = np.concatenate(self.parts) if self.parts else np.empty(0, dtype=np.uint64)
        self.parts = []
        self.repeated = repeated_hashes(hashes)
        self.unique = not len(self.repeated)


def text_batches(table: Any, chunk_rows: int) -> Iterator[Any]:
    """A pandas table of text (str or None per cell) as Arrow string batches of ``chunk_rows``."""
    import pyarrow as pa

    names = [str(name) for name in table.columns]
    for start in range(0, len(table), chunk_rows):
        part = table.iloc[start : start + chunk_rows]
        arrays = [pa.array(part.iloc[:, i].to_numpy(dtype=object), type=pa.string()) for i in range(len(names))]
        yield pa.RecordBatch.from_arrays(arrays, names=names)
