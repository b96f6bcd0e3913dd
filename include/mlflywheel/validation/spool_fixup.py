"""Adding the day's duplicated ids to a split made without them, from the spool files alone.

The single pass (:mod:`.single_pass`) splits the landed rows as if no id occurred twice. When an
exact id does, the rows carrying it fail the unique check, and the split must become the one a
pass with the duplicates known writes. Parsing and casting the landed file again is the costly
way; :func:`add_duplicates` gets the same files from the two spool files instead:

* a validated row whose id is duplicated moves to quarantine. Its ``_row`` is its position in the
  file: the single pass numbers rows 0, 1, 2, ... and a row is in exactly one spool file, so the
  validated rows are the positions missing from the quarantine's ``_row``, in order. Its raw
  columns are its validated ones (the raw contract's Arrow types are the validated schema's);
  ``_coercion_errors`` is null (the coercion check passed it).
* a quarantined row whose id is duplicated gets the unique check's reason among its own.

The reasons of those rows (few: they carry a duplicated id) are not spliced into the text: the
rows are checked again with the duplicates known and worded by :func:`.streaming._row_reasons`
(suite order, as a pass writes them), and the same words without the unique checks must give
back the text the first pass wrote (else :class:`NotFixable`). Counts and per-expectation totals
move by the rows added. The result is handed to :func:`.streaming.judge_and_split` as the split
pass it would have written, so the verdict (the failed-row limit included) is the usual one.

Whatever it cannot vouch for raises :class:`NotFixable` before the spool files are replaced; the
caller then splits the landed file again, as before.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from mlflywheel.lake import PARQUET_WRITER_OPTIONS, keys
from mlflywheel.validation.engines import UNIQUE_TYPE, Check, evaluate_chunk
from mlflywheel.validation.report import REPORT_SAMPLE_ROWS
from mlflywheel.validation.streaming import QUARANTINE_SPOOL, VALIDATED_SPOOL, _Pass, _Plan, _row_reasons
from mlflywheel.validation.uniqueness import DuplicateIds

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pandas as pd
    import pyarrow as pa

log = logging.getLogger("mlflywheel.validation")

SPOOL_BATCH_ROWS = 250_000  # rows of a spool file read at a time (a pass's default chunk)


class NotFixable(Exception):
    """The spool files cannot be vouched to become the split with the duplicates known."""


def why_not_fixable(plan: _Plan) -> str | None:
    """Why the split cannot be fixed up for this suite (None: it can), known before any reading."""
    row_checks = [c for c in plan.checks if c.row_level]
    if plan.engine != "arrow":
        return f"engine {plan.engine} checks uniqueness within each chunk itself"
    if any("mostly" in c.expectation.kwargs for c in row_checks):
        return "an expectation with mostly: the verdict needs another pass anyway"
    if any(c.type == UNIQUE_TYPE and not c.arrow_native for c in plan.checks):
        return "a unique check evaluated by Great Expectations"
    if not any(c.type == "expect_column_values_to_be_null" and c.column == keys.COERCION_ERRORS_COLUMN for c in row_checks):
        return f"no check on {keys.COERCION_ERRORS_COLUMN}: a validated row's value of it is not known"
    return None


def add_duplicates(plan: _Plan, spool: Path, first: _Pass, rows_in: int, *, where: str) -> _Pass:
    """Rewrite the spool files of ``first`` (a split pass made without duplicates) as the split
    with ``plan.context.duplicates`` known, and return that pass's sums (see the module doc)."""
    import numpy as np
    import pyarrow.parquet as pq

    why = why_not_fixable(plan)
    if why is not None:
        raise NotFixable(why)
    duplicates = plan.context.duplicates
    unique = [c for c in plan.checks if c.type == UNIQUE_TYPE and duplicates.get(str(c.column))]
    if any(first.totals[c.position].unexpected_count for c in unique if c.position in first.totals):
        raise NotFixable("the first pass already failed rows on uniqueness")
    validated_path, quarantined_path = spool / VALIDATED_SPOOL, spool / QUARANTINE_SPOOL
    quarantined_rows = _row_column(quarantined_path)
    if len(quarantined_rows) != first.rows_quarantined or first.rows_validated + len(quarantined_rows) != rows_in:
        raise NotFixable("the spool files do not hold the day's rows once each")
    if len(quarantined_rows) and not (
        (np.diff(quarantined_rows) > 0).all() and quarantined_rows[0] >= 0 and quarantined_rows[-1] < rows_in
    ):
        raise NotFixable(f"the quarantine's {keys.ROW_COLUMN} is not the rows' positions in order")
    v_schema = pq.ParquetFile(validated_path).schema_arrow
    q_schema = pq.ParquetFile(quarantined_path).schema_arrow
    for f in q_schema:
        if f.name in (keys.ROW_COLUMN, keys.COERCION_ERRORS_COLUMN, keys.QUARANTINE_REASONS_COLUMN):
            continue
        if f.name not in v_schema.names or v_schema.field(f.name).type != f.type:
            raise NotFixable(f"raw column {f.name} is not a validated column of the same type")

    words = _Words(plan)
    flagged: Counter[int] = Counter()  # unique check position -> rows whose id is duplicated
    new_validated, moved_path, new_quarantined = (
        spool / f"fixup-{name}" for name in (VALIDATED_SPOOL, "moved.parquet", QUARANTINE_SPOOL)
    )
    try:
        moved = _split_validated(
            validated_path, new_validated, moved_path, v_schema, q_schema, quarantined_rows, unique, duplicates,
            words, flagged,
        )  # fmt: skip
        fixed = _fixed_quarantine(quarantined_path, unique, duplicates, words, flagged)
        moved_tables = _tables(moved_path)
        with pq.ParquetWriter(new_quarantined, q_schema, **PARQUET_WRITER_OPTIONS) as out:
            written = 0
            for table in _merged_by_row(fixed, moved_tables):
                out.write_table(table)
                written += table.num_rows
            if not written:
                out.write_table(q_schema.empty_table())
        new_validated.replace(validated_path)
        new_quarantined.replace(quarantined_path)
    finally:
        for path in (new_validated, moved_path, new_quarantined):
            path.unlink(missing_ok=True)

    totals = dict(first.totals)
    reason_counts = Counter(first.reason_counts)
    for check in unique:
        if flagged[check.position]:
            totals[check.position] = dataclasses.replace(
                totals[check.position], unexpected_count=totals[check.position].unexpected_count + flagged[check.position]
            )
            reason_counts[check.expectation.reason] += flagged[check.position]
    sample = _head(quarantined_path)
    log.info(
        "%s: ids occur twice; fixed up the split from the spool files (%d validated rows moved to quarantine, "
        "%d rows flagged), the landed file not read again",
        where, moved, sum(flagged.values()),
    )  # fmt: skip
    return _Pass(
        totals=totals,
        reason_counts=reason_counts,
        failed_rows=first.failed_rows + moved,
        rows_validated=first.rows_validated - moved,
        rows_quarantined=first.rows_quarantined + moved,
        own_sample=[sample],  # in a split every quarantined row fails on its own
        any_sample=[sample],
    )


@dataclasses.dataclass
class _Words:
    """The reasons of rows checked again with the duplicates known, vouched against the first pass's."""

    plan: _Plan

    def reasons(self, table: pa.Table, before: list[str]) -> list[str]:
        """Each row's ``_quarantine_reasons`` with the duplicates known; ``before``: the first pass's."""
        import numpy as np

        rows = np.asarray(table.column(keys.ROW_COLUMN).to_numpy()).astype(np.int64)
        results = evaluate_chunk(self.plan.engine, table, rows, self.plan.context)
        contributing = [c for c in self.plan.checks if c.row_level]  # nothing is silenced in a split pass
        others = [c for c in contributing if c.type != UNIQUE_TYPE]
        spec = self.plan.spec
        now = _texts(_row_reasons(spec, table, contributing, results, Counter()), table.num_rows)
        without = _texts(_row_reasons(spec, table, others, results, Counter()), table.num_rows)
        if without != before:
            raise NotFixable("rows checked again do not give the first pass's reasons")
        if any(not text for text in now):
            raise NotFixable("a row with a duplicated id does not fail the unique check")
        return now


def _texts(reasons: dict[int, list[str]], count: int) -> list[str]:
    return ["; ".join(reasons.get(position, [])) for position in range(count)]


def _row_column(path: Path) -> np.ndarray:
    import numpy as np
    import pyarrow.parquet as pq

    column = pq.read_table(path, columns=[keys.ROW_COLUMN]).column(0)
    if column.null_count:
        raise NotFixable(f"null {keys.ROW_COLUMN} in the quarantine spool")
    return np.asarray(column.to_numpy()).astype(np.int64)


def _tables(path: Path, batch_rows: int | None = None) -> Iterator[pa.Table]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    reader = pq.ParquetFile(path, pre_buffer=False)
    for batch in reader.iter_batches(batch_size=batch_rows or SPOOL_BATCH_ROWS):
        yield pa.Table.from_batches([batch], schema=reader.schema_arrow)


def _duplicated(table: pa.Table, unique: list[Check], duplicates: dict[str, DuplicateIds], flagged: Counter[int]) -> np.ndarray:
    """Rows of ``table`` whose id is duplicated in any unique column (counted per check in ``flagged``)."""
    import numpy as np

    out = np.zeros(table.num_rows, dtype=bool)
    for check in unique:
        mask = duplicates[str(check.column)].mask(table.column(str(check.column)))
        flagged[check.position] += int(mask.sum())
        out |= mask
    return out


def _split_validated(
    path: Path,
    kept_path: Path,
    moved_path: Path,
    v_schema: pa.Schema,
    q_schema: pa.Schema,
    quarantined_rows: np.ndarray,
    unique: list[Check],
    duplicates: dict[str, DuplicateIds],
    words: _Words,
    flagged: Counter[int],
) -> int:
    """Write the validated rows without a duplicated id to ``kept_path``, the others as quarantine
    rows to ``moved_path``; return how many moved."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mlflywheel.overlap import read_ahead, write_behind

    # The k-th validated row is the k-th position missing from the quarantine's sorted _row:
    # k plus the quarantined positions q_j with q_j - j <= k (the rows missing before q_j).
    missing_before = quarantined_rows - np.arange(len(quarantined_rows), dtype=np.int64)
    moved = kept = seen = 0
    with (
        pq.ParquetWriter(kept_path, v_schema, **PARQUET_WRITER_OPTIONS) as keep_writer,
        pq.ParquetWriter(moved_path, q_schema, **PARQUET_WRITER_OPTIONS) as moved_out,
        write_behind(keep_writer.write_table) as write_kept,  # encoding overlaps the next batch's decoding
    ):
        for table in read_ahead(_tables(path)):
            duplicated = _duplicated(table, unique, duplicates, flagged)
            ordinals = np.arange(seen, seen + table.num_rows, dtype=np.int64)
            seen += table.num_rows
            if not duplicated.any():
                write_kept(table)
                kept += table.num_rows
                continue
            rest = table.filter(pa.array(~duplicated))
            write_kept(rest)
            kept += rest.num_rows
            picked = ordinals[duplicated]
            positions = picked + np.searchsorted(missing_before, picked, side="right")
            rows = _as_quarantined(table.filter(pa.array(duplicated)), positions, q_schema)
            texts = words.reasons(rows, before=[""] * rows.num_rows)
            moved_out.write_table(_with_reasons(rows, texts))
            moved += rows.num_rows
        if not kept:
            write_kept(v_schema.empty_table())
        if not moved:
            moved_out.write_table(q_schema.empty_table())
    return moved


def _as_quarantined(rows: pa.Table, positions: np.ndarray, q_schema: pa.Schema) -> pa.Table:
    """Validated rows as quarantine rows (reasons still empty)."""
    import pyarrow as pa

    arrays = []
    for f in q_schema:
        if f.name == keys.ROW_COLUMN:
            arrays.append(pa.array(positions, type=pa.int64()))
        elif f.name == keys.COERCION_ERRORS_COLUMN:
            arrays.append(pa.nulls(rows.num_rows, type=f.type))
        elif f.name == keys.QUARANTINE_REASONS_COLUMN:
            arrays.append(pa.array([""] * rows.num_rows, type=f.type))
        else:
            arrays.append(rows.column(f.name).combine_chunks())
    return pa.Table.from_arrays(arrays, schema=q_schema)


def _with_reasons(table: pa.Table, texts: list[str]) -> pa.Table:
    import pyarrow as pa

    index = table.schema.get_field_index(keys.QUARANTINE_REASONS_COLUMN)
    return table.set_column(index, table.schema.field(index), pa.array(texts, type=pa.string()))


def _fixed_quarantine(
    path: Path, unique: list[Check], duplicates: dict[str, DuplicateIds], words: _Words, flagged: Counter[int]
) -> Iterator[pa.Table]:
    """The quarantine spool's rows, those with a duplicated id with the unique check's reason added."""
    import pyarrow as pa
    import pyarrow.compute as pc

    for table in _tables(path):
        duplicated = _duplicated(table, unique, duplicates, flagged)
        if not duplicated.any():
            yield table
            continue
        picked = table.filter(pa.array(duplicated))
        before = picked.column(keys.QUARANTINE_REASONS_COLUMN).to_pylist()
        texts = words.reasons(picked, before=before)
        index = table.schema.get_field_index(keys.QUARANTINE_REASONS_COLUMN)
        column = pc.replace_with_mask(
            table.column(index).combine_chunks(), pa.array(duplicated), pa.array(texts, type=pa.string())
        )
        yield table.set_column(index, table.schema.field(index), column)


def _merged_by_row(a: Iterator[pa.Table], b: Iterator[pa.Table]) -> Iterator[pa.Table]:
    """The rows of ``a`` and ``b`` (each ordered by ``_row``, no ``_row`` in both) ordered by ``_row``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    sources, buffers, done = [a, b], [None, None], [False, False]
    while True:
        for i in (0, 1):
            while not done[i] and (buffers[i] is None or buffers[i].num_rows == 0):
                try:
                    buffers[i] = next(sources[i])
                except StopIteration:
                    done[i] = True
        live = [t for t in buffers if t is not None and t.num_rows]
        if not live:
            return
        if len(live) == 1:  # the other source is spent
            yield live[0]
            buffers = [None, None]
            continue
        bound = min(t.column(keys.ROW_COLUMN)[-1].as_py() for t in live)
        parts = []
        for i, table in enumerate(buffers):
            upto = pc.less_equal(table.column(keys.ROW_COLUMN), bound)
            parts.append(table.filter(upto))
            buffers[i] = table.filter(pc.invert(upto))
        yield pa.concat_tables(parts).sort_by(keys.ROW_COLUMN)


def _head(path: Path) -> pd.DataFrame:
    """The first REPORT_SAMPLE_ROWS rows of a spool file as a frame (the report's sample)."""
    import pyarrow.parquet as pq

    for table in _tables(path, batch_rows=REPORT_SAMPLE_ROWS):
        return table.to_pandas()
    return pq.ParquetFile(path).schema_arrow.empty_table().to_pandas()
