"""Validating a raw partition chunk by chunk, in memory that follows the chunk, not the partition.

The raw Parquet file is read ``chunk_rows`` rows at a time (``ParquetFile.iter_batches``). Per
chunk an engine (:mod:`.engines`) evaluates the row-level expectations; failing rows get their
reasons and go to the quarantine spool file, the others, cast to the schema types, to the
validated spool file (two ``ParquetWriter``\\ s). Alongside, in a thread, projected passes over
single columns find duplicated ids across the whole partition (:mod:`.uniqueness`); the first
chunk's uniqueness waits for them. The first pass checks that ``_row`` tells rows apart. Vocabulary columns are read
dictionary-encoded (the arrow engine checks each distinct value once). Ingest's raw partition is
two files row for row (the schema's columns; ``_row``, ``_coercion_errors`` and unknown columns),
read side by side. When the data file's schema is the validated partition's, validated rows are
not written while every row so far passes: if all do, the data file itself is the validated file;
at the first failing row the chunks before it are written, then the pass goes on as usual.

Some outcomes are known only at the end: more than ``max_failed_row_fraction`` of rows failing,
an expectation that could not run, or one with ``mostly`` that passes overall. Then the partition
is streamed again: with a partition failure every row goes to quarantine, the partition's reasons
before its own (exactly as a whole-frame split writes them), and nothing is validated. A failure
known up front (no rows, columns not the schema's) goes straight to that pass after one counting
pass. ``rows in = validated + quarantined`` is checked before anything is published.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlflywheel.datasets.spec import DatasetSpec
from mlflywheel.lake import PARQUET_WRITER_OPTIONS, keys
from mlflywheel.lake.base import LakeObject
from mlflywheel.validation.engines import (
    NULL_TYPES,
    TABLE_TYPES,
    UNIQUE_TYPE,
    Check,
    ChunkContext,
    ChunkResult,
    chunk_checks,
    dictionary_columns,
    evaluate_chunk,
    missing_column_error,
    partition_checks,
    suite_columns,
    table_outcome,
)
from mlflywheel.validation.errors import ValidationError
from mlflywheel.validation.report import REPORT_SAMPLE_ROWS
from mlflywheel.validation.uniqueness import DuplicateIds, find_duplicate_ids
from mlflywheel.validation.verdict import ExpectationOutcome, coercion_row_reason, partition_failures

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq


VALIDATED_SPOOL, QUARANTINE_SPOOL = "validated.parquet", "quarantined.parquet"  # file names in the spool


@dataclass
class Streamed:
    """The outcome of validating one partition file, with the spool files to publish."""

    status: str  # validated | partially_quarantined | quarantined
    rows_in: int
    rows_validated: int
    rows_quarantined: int
    reason_counts: dict[str, int]  # reason -> rows, most frequent first
    partition_failures: list[str]
    outcomes: list[ExpectationOutcome]
    failing_sample: pd.DataFrame  # up to REPORT_SAMPLE_ROWS quarantined rows, own failures first
    # None: the whole partition is quarantined; a LakeObject: the raw data file, already in the lake
    validated_path: Path | LakeObject | None
    quarantined_path: Path | None  # None: nothing quarantined (status validated)
    engine: str = "arrow"


@dataclass
class _Totals:
    """One per-chunk expectation, summed over the chunks."""

    unexpected_count: int = 0
    element_count: int = 0
    missing_count: int | None = None
    error: str | None = None
    success: bool = True
    observed_value: Any = None
    names_rows: bool = True

    def add(self, r: ChunkResult) -> None:
        self.unexpected_count += r.unexpected_count
        self.element_count += r.element_count
        if r.missing_count is not None:
            self.missing_count = (self.missing_count or 0) + int(r.missing_count)
        self.error = self.error or r.error
        if self.success and not r.success or self.success:
            self.observed_value = r.observed_value
        self.success = self.success and r.success
        self.names_rows = self.names_rows and r.names_rows


@dataclass
class _Pass:
    """What one pass over the chunks adds up."""

    totals: dict[int, _Totals] = field(default_factory=dict)
    reason_counts: Counter[str] = field(default_factory=Counter)
    failed_rows: int = 0
    rows_validated: int = 0
    rows_quarantined: int = 0
    own_sample: list[pd.DataFrame] = field(default_factory=list)  # rows failing on their own
    any_sample: list[pd.DataFrame] = field(default_factory=list)  # any quarantined rows
    validated_is_raw: bool = False  # every row validated, none written: the raw data file is the validated file


# --- the partition file -------------------------------------------------------------------------


@dataclass
class _Raw:
    """A raw partition's files: its data file and, written by ingest since the meta file exists,
    its meta file row for row beside it (see :mod:`mlflywheel.ingest`); read as one table."""

    path: Path
    file: pq.ParquetFile  # the schema and row count (each pass opens its own reader)
    chunk_rows: int
    dictionary: list[str] = field(default_factory=list)  # columns read dictionary-encoded
    meta_path: Path | None = None
    meta_file: pq.ParquetFile | None = None
    spec: DatasetSpec | None = None  # for the pandas metadata of the two files' schema together

    @property
    def columns(self) -> list[str]:
        return list(self.schema.names)

    @property
    def rows(self) -> int:
        return int(self.file.metadata.num_rows)

    @functools.cached_property
    def schema(self) -> pa.Schema:
        if self.meta_file is None:
            return self.file.schema_arrow
        from mlflywheel.datasets.raw_layout import read_raw_table

        assert self.spec is not None
        data, meta = self.file.schema_arrow.empty_table(), self.meta_file.schema_arrow.empty_table()
        return read_raw_table(data, meta, self.spec).schema

    def chunks(self, columns: list[str] | None = None) -> Iterator[pa.Table]:
        import pyarrow as pa

        wanted = self.columns if columns is None else columns
        in_meta = [] if self.meta_file is None else [c for c in wanted if c in self.meta_file.schema_arrow.names]
        in_data = [c for c in wanted if c not in in_meta]
        if not in_meta:
            yield from self._file_chunks(self.path, in_data if columns is not None else None)
            return
        metas = self._file_chunks(self.meta_path, in_meta)
        if not in_data:
            yield from metas
            return
        for data, meta in _aligned(self._file_chunks(self.path, in_data), metas):
            parts = {**dict(zip(data.column_names, data.columns)), **dict(zip(meta.column_names, meta.columns))}
            yield pa.table({name: parts[name] for name in wanted})

    def _file_chunks(self, path: Path | None, columns: list[str] | None) -> Iterator[pa.Table]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        from mlflywheel.overlap import read_ahead

        # A reader of its own: passes may run in two threads at once (the ids' in the background).
        # pre_buffer off: with it, iter_batches keeps every row group's buffers read so far (memory
        # then grows with the partition, ~25 bytes a row measured on pyarrow 25).
        names = (self.file if path == self.path else self.meta_file).schema_arrow.names
        dictionary = [c for c in self.dictionary if c in names]
        reader = pq.ParquetFile(path, pre_buffer=False, read_dictionary=dictionary or None)
        # the next row group is decoded while this chunk is checked and written
        for batch in read_ahead(reader.iter_batches(batch_size=self.chunk_rows, columns=columns)):
            yield pa.Table.from_batches([batch])


def _aligned(left: Iterator[pa.Table], right: Iterator[pa.Table]) -> Iterator[tuple[pa.Table, pa.Table]]:
    """Pairs of tables with the same rows from two streams of the same rows in chunks that may
    end in different places (a dictionary-read column's batches end at row groups): each pair
    is cut at the nearer end. Raises ValidationError if one stream has rows the other lacks."""
    a = b = None
    while True:
        if a is None or not a.num_rows:
            a = next(left, None)
        if b is None or not b.num_rows:
            b = next(right, None)
        if a is None or b is None:
            rest = (a, b, next(left, None), next(right, None))
            if any(t is not None and t.num_rows for t in rest):
                raise ValidationError("raw partition's meta file and data file do not have the same rows")
            return
        size = min(a.num_rows, b.num_rows)
        if size:
            yield a.slice(0, size), b.slice(0, size)
        a, b = a.slice(size), b.slice(size)


def _row_ids(raw: _Raw) -> Iterator[np.ndarray]:
    """Each chunk's ``_row`` column (the file has one)."""
    import numpy as np

    for chunk in raw.chunks(columns=[keys.ROW_COLUMN]):
        column = chunk.column(0)
        if column.null_count:
            raise ValidationError(f"raw partition has null {keys.ROW_COLUMN} values: rows cannot be told apart")
        yield np.asarray(column.to_numpy(zero_copy_only=False)).astype(np.int64)


def _chunk_row_ids(chunk: pa.Table, start: int) -> np.ndarray:
    """The chunk's ``_row`` ids: the file's column, else the rows' positions in the file."""
    import numpy as np

    if keys.ROW_COLUMN in chunk.column_names:
        column = chunk.column(keys.ROW_COLUMN)
        if column.null_count:
            raise ValidationError(f"raw partition has null {keys.ROW_COLUMN} values: rows cannot be told apart")
        return np.asarray(column.to_numpy()).astype(np.int64)
    return np.arange(start, start + chunk.num_rows, dtype=np.int64)


@dataclass
class _RowIdOrder:
    """Whether the ``_row`` ids a pass reads are strictly increasing (as ingest writes them: then
    they are unique without a sort); checked on the chunks the pass reads anyway."""

    increasing: bool = True
    last: int | None = None

    def add(self, rows: np.ndarray) -> None:
        if not self.increasing or not len(rows):
            return
        self.increasing = bool((rows[1:] > rows[:-1]).all()) and (self.last is None or int(rows[0]) > self.last)
        self.last = int(rows[-1])


def _check_row_ids_unique(raw: _Raw) -> None:
    import numpy as np

    if keys.ROW_COLUMN not in raw.columns or raw.rows == 0:
        return
    ids, filled = np.empty(raw.rows, dtype=np.int64), 0  # 8 bytes a row, filled in place
    increasing = True  # ingest writes _row 0, 1, 2, ...: strictly increasing ids are unique, unsorted
    for part in _row_ids(raw):
        ids[filled : filled + len(part)] = part
        if increasing and len(part):
            increasing = bool((part[1:] > part[:-1]).all()) and (not filled or part[0] > ids[filled - 1])
        filled += len(part)
    if increasing:
        return
    ids.sort()
    if (ids[1:] == ids[:-1]).any():
        raise ValidationError(f"raw partition has duplicate {keys.ROW_COLUMN} values: rows cannot be told apart")


# --- schemas of the spool files -------------------------------------------------------------------


def _with_types(frame: pd.DataFrame, types: dict[str, pa.DataType]) -> pa.Schema:
    """The schema pandas would write for ``frame`` (its pandas metadata: Int64 stays Int64 on
    reading), with the given Arrow types (an empty object column would otherwise be ``null``)."""
    import pyarrow as pa

    schema = pa.Schema.from_pandas(frame, preserve_index=False)
    for i, name in enumerate(schema.names):
        schema = schema.set(i, pa.field(name, types[name]))
    return schema


def validated_schema(spec: DatasetSpec, raw_columns: list[str]) -> pa.Schema:
    """The validated partition's schema: :func:`.verdict.to_schema_types`' columns and dtypes."""
    from mlflywheel.datasets.cells import typed_schema

    row_ids = spec.id_column is None and keys.ROW_ID_COLUMN in raw_columns
    return typed_schema([(c.name, c.dtype) for c in spec.columns], row_ids=row_ids)


def quarantine_schema(raw_schema: pa.Schema) -> pa.Schema:
    """The raw columns (``_row`` and ``_coercion_errors`` added if a writer left them out) and
    ``_quarantine_reasons``."""
    import pandas as pd
    import pyarrow as pa

    frame = raw_schema.empty_table().to_pandas()
    types = {f.name: (pa.string() if pa.types.is_null(f.type) else f.type) for f in raw_schema}
    for name, dtype, arrow_type in (
        (keys.ROW_COLUMN, "int64", pa.int64()),
        (keys.COERCION_ERRORS_COLUMN, object, pa.string()),
    ):
        if name not in frame.columns:
            frame[name] = pd.Series([], dtype=dtype)
        types[name] = arrow_type
    frame[keys.QUARANTINE_REASONS_COLUMN] = pd.Series([], dtype=object)
    types[keys.QUARANTINE_REASONS_COLUMN] = pa.string()
    return _with_types(frame, types)


def _column_or_nulls(chunk: pa.Table, name: str, arrow_type: pa.DataType) -> pa.Array:
    import pyarrow as pa

    if name in chunk.column_names:
        return chunk.column(name).combine_chunks().cast(arrow_type)
    return pa.nulls(chunk.num_rows, type=arrow_type)


def _validated_table(chunk: pa.Table, keep: np.ndarray, schema: pa.Schema) -> pa.Table:
    import pyarrow as pa

    rows = chunk if keep.all() else chunk.filter(pa.array(keep))  # all good: no copy
    columns = [rows.column(f.name) for f in schema]
    return pa.Table.from_arrays([c if c.type == f.type else c.cast(f.type) for c, f in zip(columns, schema)], schema=schema)


def _quarantine_table(
    chunk: pa.Table, rows: np.ndarray, mask: np.ndarray, texts: list[str], schema: pa.Schema
) -> pa.Table:
    import pyarrow as pa

    picked = chunk.filter(pa.array(mask))
    arrays = []
    for f in schema:
        if f.name == keys.ROW_COLUMN:
            arrays.append(pa.array(rows[mask], type=pa.int64()))
        elif f.name == keys.QUARANTINE_REASONS_COLUMN:
            arrays.append(pa.array(texts, type=pa.string()))
        else:
            arrays.append(_column_or_nulls(picked, f.name, f.type))
    return pa.Table.from_arrays(arrays, schema=schema)


validated_table, quarantine_table = _validated_table, _quarantine_table  # also used by .pushdown


# --- per chunk: the rows' reasons ------------------------------------------------------------------


def _row_reasons(
    spec: DatasetSpec, chunk: pa.Table, checks: list[Check], results: dict[int, ChunkResult], counts: Counter[str]
) -> dict[int, list[str]]:
    """Chunk position -> reasons, in suite order, from the checks that fail the partition's rows."""
    import numpy as np

    reasons: dict[int, list[str]] = {}
    for check in checks:
        mask = results[check.position].unexpected
        if mask is None or not mask.any():
            continue
        positions = np.flatnonzero(mask)
        counts[check.expectation.reason] += len(positions)
        if check.type == "expect_column_values_to_be_null" and check.column == keys.COERCION_ERRORS_COLUMN:
            texts = chunk.column(check.column).take(positions).to_pylist()
            for position, text in zip(positions.tolist(), texts, strict=True):
                reasons.setdefault(position, []).append(coercion_row_reason(spec, text))
            continue
        for position in positions.tolist():
            row = reasons.setdefault(position, [])
            if check.expectation.reason not in row:
                row.append(check.expectation.reason)
    return reasons


# --- the passes ----------------------------------------------------------------------------------------


@dataclass
class _Plan:
    spec: DatasetSpec
    engine: str
    raw: _Raw
    context: ChunkContext
    checks: list[Check]  # evaluated per chunk
    silenced: set[int] = field(default_factory=set)  # positions whose rows do not fail (see module doc)
    row_order: _RowIdOrder | None = None  # ``_row`` still to be checked by the next pass
    # The raw data file when its schema is the validated partition's: a split pass that validates
    # every row writes none of them, and this file is published as the validated file.
    validated_file: Path | None = None


def _run_pass(
    plan: _Plan,
    *,
    validated: pq.ParquetWriter | None = None,
    quarantined: pq.ParquetWriter | None = None,
    partition_text: str | None = None,
) -> _Pass:
    """Evaluate every chunk; write its rows when writers are given: split (both writers) or whole
    (quarantine only, every row, ``partition_text`` before the row's own reasons)."""
    import numpy as np
    import pyarrow as pa

    from mlflywheel.overlap import write_behind

    out = _Pass()
    contributing = [c for c in plan.checks if c.row_level and c.position not in plan.silenced]
    # rows None: not counted yet (a single pass, see :mod:`.single_pass`)
    chunks = plan.raw.chunks() if plan.raw.rows != 0 else iter([plan.raw.schema.empty_table()])
    start = 0
    # Rows are validated without being written while every row so far passes (the raw data file
    # is then the validated file); at the first failing row the rows before it are written.
    unwritten = 0 if validated is not None and partition_text is None and plan.validated_file is not None else None
    with contextlib.ExitStack() as behind:  # a chunk's rows are written while the next one is checked
        write_quarantined = write_validated = None
        if quarantined is not None:
            write_quarantined = behind.enter_context(write_behind(quarantined.write_table))
        if validated is not None:
            write_validated = behind.enter_context(write_behind(validated.write_table))
        order, plan.row_order = plan.row_order, None
        for chunk in chunks:
            rows = _chunk_row_ids(chunk, start)
            start += chunk.num_rows
            if order is not None:
                order.add(rows)
            results = evaluate_chunk(plan.engine, chunk, rows, plan.context)
            for position, r in results.items():
                out.totals.setdefault(position, _Totals()).add(r)
            reasons = _row_reasons(plan.spec, chunk, contributing, results, out.reason_counts)
            out.failed_rows += len(reasons)
            if partition_text is not None:
                failed = np.ones(chunk.num_rows, dtype=bool)
                texts = [partition_text] * chunk.num_rows
                for position, own in reasons.items():
                    texts[position] = f"{partition_text}; {'; '.join(own)}"
            else:
                failed = np.zeros(chunk.num_rows, dtype=bool)
                failed[list(reasons)] = True
                texts = ["; ".join(reasons[p]) for p in sorted(reasons)]
            if quarantined is not None and failed.any():
                table = _quarantine_table(chunk, rows, failed, texts, quarantined.schema)
                write_quarantined(table)
                out.rows_quarantined += table.num_rows
                _keep_sample(out, table, reasons, failed)
            if validated is not None and partition_text is None:
                if unwritten is not None and not failed.any():
                    unwritten += chunk.num_rows
                    out.rows_validated += chunk.num_rows
                    continue
                if unwritten is not None:
                    _write_unwritten(plan, unwritten, validated.schema, write_validated)
                    unwritten = None
                table = _validated_table(chunk, ~failed, validated.schema)
                write_validated(table)
                out.rows_validated += table.num_rows
        out.validated_is_raw = unwritten is not None
    if quarantined is not None and not out.rows_quarantined:
        quarantined.write_table(pa.Table.from_pylist([], schema=quarantined.schema))
    if order is not None and not order.increasing:  # unordered ids: sorted to tell (rare)
        _check_row_ids_unique(plan.raw)
    return out


def _write_unwritten(plan: _Plan, rows: int, schema: pa.Schema, write: Any) -> None:
    """Write the first ``rows`` rows of the raw partition, every one validated (a pass that
    validated them without writing has met a failing row). Counted in rows: a read of fewer
    columns may cut its chunks elsewhere."""
    import numpy as np

    if not rows:
        return
    with contextlib.closing(plan.raw.chunks(columns=list(schema.names))) as chunks:
        for chunk in chunks:
            part = chunk.slice(0, rows)
            write(_validated_table(part, np.ones(part.num_rows, dtype=bool), schema))
            rows -= part.num_rows
            if rows <= 0:
                return
    raise ValidationError(f"the raw data file ended {rows} rows before the rows validated so far")


def _keep_sample(out: _Pass, table: pa.Table, reasons: dict[int, list[str]], failed: np.ndarray) -> None:
    """Keep up to REPORT_SAMPLE_ROWS rows (today's order: own failures first in a whole quarantine)."""
    import numpy as np

    if sum(len(f) for f in out.any_sample) < REPORT_SAMPLE_ROWS:
        out.any_sample.append(table.slice(0, REPORT_SAMPLE_ROWS).to_pandas())
    if reasons and sum(len(f) for f in out.own_sample) < REPORT_SAMPLE_ROWS:
        # quarantined rows are the chunk's failed rows in order: find the own failures among them
        order = np.flatnonzero(failed)
        own = np.flatnonzero(np.isin(order, np.fromiter(reasons, dtype=np.int64)))[:REPORT_SAMPLE_ROWS]
        out.own_sample.append(table.take(own).to_pandas())


def _percent(check: Check, t: _Totals) -> float | None:
    denominator = t.element_count if check.type in NULL_TYPES else t.element_count - (t.missing_count or 0)
    return None if denominator == 0 else 100.0 * t.unexpected_count / denominator


def _success(check: Check, t: _Totals) -> bool:
    if t.error is not None or not t.names_rows:
        return False
    if not check.row_level:
        return t.success
    mostly = check.expectation.kwargs.get("mostly")
    if mostly is None:
        return t.unexpected_count == 0
    denominator = t.element_count if check.type in NULL_TYPES else t.element_count - (t.missing_count or 0)
    return denominator == 0 or (denominator - t.unexpected_count) / denominator >= float(mostly)


def _outcomes(
    context: ChunkContext, rows_in: int, totals: dict[int, _Totals]
) -> list[ExpectationOutcome]:
    out = []
    for check in context.checks:
        e = check.expectation
        o = ExpectationOutcome(check.position, e.type, check.column, e.row_level, e.reason, success=True)
        if check.type in TABLE_TYPES:
            r = table_outcome(check, context.columns, rows_in)
            o.success, o.observed_value = r.success, r.observed_value
        elif check.position not in totals:  # its column is missing: GX cannot run it
            o.success, o.error = False, missing_column_error(str(check.column))
        else:
            t = totals[check.position]
            o.success, o.error = _success(check, t), t.error
            if check.row_level and t.error is None:
                o.unexpected_count, o.unexpected_percent = t.unexpected_count, _percent(check, t)
            elif not check.row_level:
                o.observed_value = t.observed_value
        o.names_rows = check.position not in totals or totals[check.position].names_rows
        out.append(o)
    return out


def validate_file(
    path: Path,
    spec: DatasetSpec,
    day: dt.date,
    spool: Path,
    *,
    chunk_rows: int,
    engine: str,
    max_failed_row_fraction: float,
    where: str,
    declared_rows: int | None = None,
    known_duplicates: dict[str, DuplicateIds] | None = None,
    meta_path: Path | None = None,
) -> Streamed:
    """Validate the raw partition file at ``path`` (with its meta file at ``meta_path``, None for
    a partition from before the meta file); the zones' files are written under ``spool``.
    ``known_duplicates``: the duplicated ids of unique columns, as the raw partition's writer
    recorded them (none for a column found unique): those need no pass over the ids.

    When every row is validated and the data file's schema is the validated partition's (as
    ingest writes it), the returned ``validated_path`` is ``path`` itself: nothing was rewritten."""
    import pyarrow.parquet as pq

    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
    raw = _Raw(Path(path), pq.ParquetFile(path, pre_buffer=False), chunk_rows, spec=spec)
    if meta_path is not None:
        raw.meta_path, raw.meta_file = Path(meta_path), pq.ParquetFile(meta_path, pre_buffer=False)
        if raw.meta_file.metadata.num_rows != raw.rows:
            raise ValidationError(
                f"{where}: the raw meta file has {raw.meta_file.metadata.num_rows} rows, the data file {raw.rows}"
            )
    if declared_rows is not None and int(declared_rows) != raw.rows:
        raise ValidationError(f"{where}: raw manifest says rows_in={declared_rows} but the raw data has {raw.rows} rows")
    if engine == "arrow":
        raw.dictionary = dictionary_columns(partition_checks(spec, day), raw.schema)
    # The ids are checked in a thread while the first pass reads and checks its first chunks;
    # leaving the block waits for it (no thread outlives the call, whatever is raised).
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="flywheel-ids") as background:
        plan = partition_plan(raw, spec, day, engine, duplicates=known_duplicates, background=background)
        if keys.ROW_COLUMN in raw.columns:
            plan.row_order = _RowIdOrder()  # the first pass checks ``_row`` as it reads
        if raw.file.schema_arrow.equals(validated_schema(spec, raw.columns), check_metadata=True):
            plan.validated_file = raw.path
        return judge_and_split(plan, spool, max_failed_row_fraction, where=where)


def partition_plan(
    raw: Any,
    spec: DatasetSpec,
    day: dt.date,
    engine: str,
    *,
    duplicates: dict[str, DuplicateIds] | None = None,
    background: Executor | None = None,
) -> _Plan:
    """The passes' plan over ``raw`` (a :class:`_Raw`, or anything with its ``columns``, ``rows``,
    ``schema`` and ``chunks``); ``duplicates``: the unique columns' duplicates when known, else
    found here, or by ``background`` while the first pass begins."""
    context = ChunkContext(spec, day, partition_checks(spec, day), suite_columns(raw.columns))
    checks = chunk_checks(context)
    context.duplicates.update(duplicates or {})
    wanted = [str(c.column) for c in checks if c.type == UNIQUE_TYPE and c.column not in context.duplicates]

    def search() -> dict[str, DuplicateIds]:
        return {
            column: find_duplicate_ids(
                lambda column=column: (c.column(0) for c in raw.chunks(columns=[column])), rows=raw.rows
            )
            for column in dict.fromkeys(wanted)
        }

    if background is None:
        context.duplicates.update(search())
    else:
        context.pending = background.submit(search)
    return _Plan(spec, engine, raw, context, checks)


def split_pass(plan: _Plan, spool: Path) -> _Pass:
    """Evaluate every chunk and write its rows to the validated or the quarantine spool file."""
    import pyarrow.parquet as pq

    v_schema, q_schema = validated_schema(plan.spec, plan.raw.columns), quarantine_schema(plan.raw.schema)
    with (
        pq.ParquetWriter(spool / VALIDATED_SPOOL, v_schema, **PARQUET_WRITER_OPTIONS) as v,
        pq.ParquetWriter(spool / QUARANTINE_SPOOL, q_schema, **PARQUET_WRITER_OPTIONS) as q,
    ):
        return _run_pass(plan, validated=v, quarantined=q)


def judge_and_split(
    plan: _Plan, spool: Path, max_failed_row_fraction: float, *, where: str, first: _Pass | None = None
) -> Streamed:
    """The verdict over the plan's partition and its spool files; ``first``: a split pass already
    written to ``spool`` (with the partition's duplicates known), so none is needed to begin."""
    import pandas as pd
    import pyarrow.parquet as pq

    spec, raw, context, checks = plan.spec, plan.raw, plan.context, plan.checks
    up_front = [table_outcome(c, context.columns, raw.rows) for c in context.checks if c.type in TABLE_TYPES]
    needs_count = any(not r.success for r in up_front) or any(
        c.row_level and "mostly" in c.expectation.kwargs for c in checks
    )
    validated_path, quarantined_path = spool / VALIDATED_SPOOL, spool / QUARANTINE_SPOOL
    q_schema = quarantine_schema(raw.schema)

    wrote = first is not None or not needs_count
    if first is None:
        first = split_pass(plan, spool) if wrote else _run_pass(plan)
    plan.context.settle()  # what the background search found wrong stops here, used or not
    outcomes = _outcomes(context, raw.rows, first.totals)
    # Rows of an expectation that passes overall (``mostly``), could not run, or named no rows do
    # not fail on their own (the whole-frame verdict gives them no row reasons either).
    plan.silenced = {o.position for o in outcomes if o.row_level and (o.success or o.error or not o.names_rows)}
    stale = any(first.totals[p].unexpected_count for p in plan.silenced if p in first.totals)
    counted = _run_pass(plan) if stale else first
    failures = partition_failures(
        spec, outcomes, context.columns,
        failed_rows=counted.failed_rows, rows_in=raw.rows, max_failed_row_fraction=max_failed_row_fraction,
    )  # fmt: skip
    if failures:
        with pq.ParquetWriter(quarantined_path, q_schema, **PARQUET_WRITER_OPTIONS) as q:
            done = _run_pass(plan, quarantined=q, partition_text="; ".join(failures))
        status, validated_out = "quarantined", None
        reason_counts = Counter(done.reason_counts)
        for failure in failures:
            reason_counts[failure] = raw.rows
        sample = done.own_sample if done.failed_rows else done.any_sample
    else:
        done = counted if wrote and not stale else split_pass(plan, spool)
        status = "partially_quarantined" if done.rows_quarantined else "validated"
        validated_out, reason_counts, sample = validated_path, done.reason_counts, done.any_sample
        if done.validated_is_raw:
            validated_out = plan.validated_file
    rows_validated = done.rows_validated if validated_out is not None else 0
    if raw.rows != rows_validated + done.rows_quarantined:  # nothing may be lost or doubled
        raise ValidationError(
            f"{where}: rows_in={raw.rows} but validated={rows_validated} + quarantined={done.rows_quarantined}"
        )
    frames = [f for f in sample if len(f)]
    failing_sample = pd.concat(frames, ignore_index=True).head(REPORT_SAMPLE_ROWS) if frames else pd.DataFrame()
    return Streamed(
        status=status,
        rows_in=raw.rows,
        rows_validated=rows_validated,
        rows_quarantined=done.rows_quarantined,
        reason_counts=dict(sorted(reason_counts.items(), key=lambda kv: (-kv[1], kv[0]))),
        partition_failures=failures,
        outcomes=outcomes,
        failing_sample=failing_sample,
        validated_path=validated_out,
        quarantined_path=quarantined_path if status != "validated" else None,
        engine=plan.engine,
    )


def result_document(streamed: Streamed) -> dict[str, Any]:
    """The run's result as JSON-ready data (the quarantine's ``validation_result.json``), in the
    shape of a GX suite result: success, statistics and one entry per expectation."""
    results = [
        {
            "expectation_config": {"type": o.type, "kwargs": {"column": o.column} if o.column else {},
                                   "meta": {"flywheel_position": o.position, "reason": o.reason,
                                            "row_level": o.row_level}},
            "success": o.success,
            "result": {
                "unexpected_count": o.unexpected_count,
                "unexpected_percent": o.unexpected_percent,
                "observed_value": o.observed_value,
            },
            "exception_info": {"raised_exception": o.error is not None, "exception_message": o.error},
        }
        for o in streamed.outcomes
    ]  # fmt: skip
    passed = sum(o.success for o in streamed.outcomes)
    return {
        "success": passed == len(streamed.outcomes),
        "engine": streamed.engine,
        "statistics": {
            "evaluated_expectations": len(streamed.outcomes),
            "successful_expectations": passed,
            "unsuccessful_expectations": len(streamed.outcomes) - passed,
        },
        "results": results,
    }


