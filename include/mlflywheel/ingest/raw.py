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

from mlflywheel.datasets.cells import cast_array
from mlflywheel.datasets.raw_layout import (  # the layout, re-exported: ingest writes it
    raw_columns,
    raw_schema,
    split_schemas,
)
from mlflywheel.datasets.spec import DatasetSpec
from mlflywheel.lake.base import PARQUET_WRITER_OPTIONS
from mlflywheel.lake.keys import (
    DUPLICATE_IDS_FILE,
    RAW_META_FILE,
    ROW_ID_COLUMN,
)
from mlflywheel.overlap import read_ahead
from mlflywheel.validation.uniqueness import (  # validation's own
    exact_duplicates,
    hash_column,
    repeated_hashes,
)


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
