"""Ingest and validation in one streaming pass: the landed file straight to validated and quarantine.

With ``FLYWHEEL_KEEP_RAW=false`` the ingest DAG's one task ``validate`` runs
:func:`validate_landed` instead of ``ingest_raw`` + ``validate``. The landed file is read by
ingest's readers (:func:`mlflywheel.ingest.read_landed`: the streaming reader, the exact reader
when it declines, the whole-file quarantine of a file no reader takes, with ingest's summary),
each batch cast to the raw contract (:func:`mlflywheel.ingest.raw.cast_batch`) and handed to
validation's chunk machinery (:mod:`.streaming`: engines, reasons, spool writers, the verdict)
as if it came from a raw partition file; the result is committed by :mod:`.publication` (zones,
report, ledger summary in one commit). Nothing is written to or read from ``raw/``: a raw
partition an earlier run left for the day is cleared before the commit, so no later two-stage
``validate`` can publish that older delivery over this result.

One pass suffices when the day turns out clean enough: the rows are split optimistically, as if
no id were duplicated, while the pass keeps each unique column's id hashes (8 bytes a row, as
:mod:`.uniqueness` does). At the end:

* no hash repeats (or the repeats are collisions of different ids, told apart by one projected
  read of the id column of the two spool files): the optimistic split is the split;
* an exact id occurs twice: duplicates may sit in any chunk already written. The two spool
  files are rewritten as the split with the duplicates known (:mod:`.spool_fixup`: validated
  rows with such an id move to quarantine, quarantined ones get the unique check's reason), the
  landed file not read again; where that cannot be vouched for (another engine, ``mostly``, ...)
  the split is redone from the landed file (read again) by the two-stage path's own passes;
* columns that are not the schema's (known from the header): the day is quarantined whole, so
  the rows are only counted before the two-stage path's passes;
* the verdict needs another pass anyway (the whole day quarantined above
  ``max_failed_row_fraction`` or for a partition-level failure, an expectation with ``mostly``
  that passes overall): :func:`.streaming.judge_and_split` makes it, reading the landed file again.

Every outcome is therefore the two-stage path's (same rows, dtypes, reasons, counts, report;
tested); an all-good or row-level-bad day is read once, duplicated ids or not.
"""

from __future__ import annotations

import datetime as dt
import logging
import tempfile
from collections.abc import Callable, Iterator
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlflywheel import ledger
from mlflywheel.datasets.spec import DatasetSpec
from mlflywheel.ingest import (
    UnreadableFileError,
    delivery,
    landed_file_key,
    quarantine_unreadable,
    read_landed,
    stream,
)
from mlflywheel.ingest.raw import cast_batch, raw_schema
from mlflywheel.lake import Lake, keys
from mlflywheel.validation import DEFAULT_CHUNK_ROWS, commit_streamed
from mlflywheel.validation.engines import (
    ENGINES,
    TABLE_TYPES,
    UNIQUE_TYPE,
    ChunkContext,
    chunk_checks,
    partition_checks,
    suite_columns,
    table_outcome,
)
from mlflywheel.validation.spool_fixup import NotFixable, add_duplicates
from mlflywheel.validation.streaming import (
    QUARANTINE_SPOOL,
    VALIDATED_SPOOL,
    Streamed,
    judge_and_split,
    partition_plan,
    split_pass,
)
from mlflywheel.validation.uniqueness import DuplicateIds, exact_duplicates, hash_column, repeated_hashes

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pyarrow as pa

log = logging.getLogger("mlflywheel.validation")


class _Landed:
    """The landed file's records as chunks of the raw partition's schema, read afresh on each pass
    (what :class:`.streaming._Raw` gives from a raw partition file)."""

    def __init__(
        self, header: list[str], batches: Callable[[], Iterator[Any]], spec: DatasetSpec, day: dt.date
    ):
        self._batches, self._spec, self._day = batches, spec, day
        self.schema = raw_schema(header, spec, row_ids=spec.id_column is None)
        self.columns = list(self.schema.names)
        self.rows: int | None = None  # known after the first pass
        self.hashes: dict[str, list[np.ndarray]] = {}  # column -> its chunks' id hashes, while collecting

    def chunks(self, columns: list[str] | None = None) -> Iterator[pa.Table]:
        import pyarrow as pa

        count = 0
        for text in self._batches():
            cast, _ = cast_batch(text, self._spec, first_row=count, day=self._day, schema=self.schema)
            count += text.num_rows
            table = pa.Table.from_batches([cast]) if isinstance(cast, pa.RecordBatch) else cast  # a table of blocks
            for column, parts in self.hashes.items():
                parts.append(hash_column(table.column(column)))
            yield table if columns is None else table.select(columns)
        if not count:  # as an empty raw file is read: one empty chunk, so every check has a result
            yield self.schema.empty_table() if columns is None else self.schema.empty_table().select(columns)
        self.rows = count


def validate_file_once(
    source: _Landed,
    spec: DatasetSpec,
    day: dt.date,
    spool: Path,
    *,
    engine: str,
    max_failed_row_fraction: float,
    where: str,
) -> Streamed:
    """Validate the landed records of ``source`` into the spool files (see the module doc)."""
    import numpy as np
    import pyarrow.parquet as pq

    context = ChunkContext(spec, day, partition_checks(spec, day), suite_columns(source.columns))
    if any(not table_outcome(c, context.columns, 1).success for c in context.checks if c.type in TABLE_TYPES):
        # Columns not the schema's: the whole day goes to quarantine whatever its rows (and the
        # validated schema may not even apply). Count the rows, then the two-stage path's passes.
        for _ in source.chunks(columns=[]):
            pass
        return judge_and_split(partition_plan(source, spec, day, engine), spool, max_failed_row_fraction, where=where)
    unique = sorted({str(c.column) for c in chunk_checks(context) if c.type == UNIQUE_TYPE})
    # optimistic: no id duplicated, until the hashes say otherwise
    none = {column: DuplicateIds(np.empty(0, dtype=np.uint64), set()) for column in unique}
    plan = partition_plan(source, spec, day, engine, duplicates=none)
    source.hashes = {column: [] for column in unique}
    first = split_pass(plan, spool)
    collected, source.hashes = source.hashes, {}

    duplicates = {}
    for column, parts in collected.items():
        repeated = repeated_hashes(np.concatenate(parts) if parts else np.empty(0, dtype=np.uint64))
        parts.clear()

        def id_chunks(column: str = column) -> Iterator[Any]:
            files = (pq.ParquetFile(spool / name) for name in (VALIDATED_SPOOL, QUARANTINE_SPOOL))
            return (b.column(0) for b in chain.from_iterable(f.iter_batches(columns=[column]) for f in files))

        duplicates[column] = exact_duplicates(repeated, id_chunks)
    plan.context.duplicates.update(duplicates)
    if any(d.values for d in duplicates.values()):
        try:
            first = add_duplicates(plan, spool, first, int(source.rows or 0), where=where)
        except NotFixable as why:
            log.info("%s: ids occur twice; splitting the landed file again with them known (%s)", where, why)
            plan = partition_plan(source, spec, day, engine, duplicates=duplicates)
            return judge_and_split(plan, spool, max_failed_row_fraction, where=where)
    return judge_and_split(plan, spool, max_failed_row_fraction, where=where, first=first)


def validate_landed(
    lake: Lake,
    spec: DatasetSpec,
    day: dt.date,
    *,
    run_id: str,
    max_failed_row_fraction: float = 0.2,
    ledger_sink: ledger.LedgerSink | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    engine: str = "arrow",
) -> dict[str, Any]:
    """Ingest and validate the day's landed file in one streaming pass and publish the result;
    return the ledger summary, as :func:`mlflywheel.validation.validate_partition` returns it after
    :func:`mlflywheel.ingest.ingest_partition` (or ingest's summary of an unreadable file).

    Raises :class:`mlflywheel.ingest.IngestError` while the day has not landed.
    """
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, not {chunk_rows}")
    if not 0.0 <= max_failed_row_fraction <= 1.0:
        raise ValueError(f"max_failed_row_fraction must be in [0, 1], got {max_failed_row_fraction}")
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    where = f"{spec.name} {day.isoformat()}"
    source_key = landed_file_key(lake, spec, day)
    with (
        lake.local_file(source_key) as path,
        tempfile.TemporaryDirectory(prefix="flywheel-single-pass-") as spool,
        stream.survey(path) as surveyed,  # its exit stops and joins the hashing thread
    ):
        def validate(header: list[str], batches: Callable[[], Iterator[Any]], notes: list[str]) -> Streamed:
            return validate_file_once(
                _Landed(header, batches, spec, day), spec, day, Path(spool),
                engine=engine, max_failed_row_fraction=max_failed_row_fraction, where=where,
            )  # fmt: skip

        try:
            streamed = read_landed(path, surveyed, spec, Path(spool), chunk_rows, validate)
        except UnreadableFileError as exc:  # ingest's own whole-file quarantine (it clears raw too)
            base = delivery(spec, day, source_key, surveyed, run_id=run_id)  # waits for the digest
            return quarantine_unreadable(
                lake, spec, day, path, str(exc), base, ledger_sink=ledger_sink, records=exc.records
            )
        # Only a quarantine's summary names the digest: stop hashing (a failure of it shows before publishing).
        surveyed.close()
        lake.clear_partition(keys.RAW, spec.name, day)  # raw holds nothing for this day (module doc)
        summary = commit_streamed(lake, spec, day, streamed, run_id=run_id, ledger_sink=ledger_sink)
    log.info(
        "%s: %s in one pass from %s (rows_in=%d validated=%d quarantined=%d, engine %s, chunks of %d rows) report %s",
        where, streamed.status, lake.url(source_key), streamed.rows_in, streamed.rows_validated,
        streamed.rows_quarantined, engine, chunk_rows, lake.url(summary["report_key"]),
    )  # fmt: skip
    return summary
