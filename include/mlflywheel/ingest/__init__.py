"""Ingest: a landed file becomes the day's ``raw`` partition, normalised to the dataset schema.

Contract of a raw partition, which validation reads as is: two Parquet files, row for row (the
same rows in the same row groups), ``data.parquet`` with the schema's columns (and ``_row_id``),
typed exactly as a validated partition types them, and ``meta.parquet`` with the rest (``_row``,
``_coercion_errors``, the columns the schema does not know). So an all-good day's data file *is*
its validated file: validation publishes it as such instead of writing it again. Read together
(:func:`read_raw`), they are:

* each schema column present in the file, cast to its dtype: ``string`` -> object (str),
  ``int`` -> ``Int64``, ``float`` -> float64, ``datetime`` -> ``datetime64[ns, UTC]`` (Arrow:
  string, int64, float64, timestamp[ns, UTC], with pandas metadata for those dtypes);
* a value that is present but does not cast becomes null, and its original text is kept in
  ``_coercion_errors`` (a JSON object ``{"column": "text", ...}``, null for clean rows);
* columns the schema does not know are kept, as strings (the schema check must see them);
  schema columns missing from the file are simply absent;
* ``_row``: the record's 0-based position in the landing file (0 = first line after the header);
* ``_row_id``, only when the spec declares no id column: ``<YYYY-MM-DD>:<_row>``, the row's id
  (stable for a delivery; validation keeps it in the validated partition, snapshots sort by it).

The id column (``spec.id_column``) is hashed as it is cast; the raw manifest says what that found:
``unique_ids`` names it when no hash repeats, ``duplicate_ids`` when some ids truly occur twice,
their values then in ``duplicate_ids.parquet`` beside the data (up to
:data:`.raw.MAX_RECORDED_DUPLICATES`; more, or only colliding hashes: neither). Validation takes
that instead of a pass over the ids of its own.

Columns whose name starts with ``_`` are meta columns. A file that cannot be read at all goes
to ``quarantine/`` whole, with a ledger summary; nothing of it reaches ``raw``. Re-running
replaces the partition, so ingest is idempotent.

Memory stays bounded whatever the partition's size: the landed file is streamed (sha256 in
blocks, by a thread that reads it alongside the parse), a CSV file is read by pyarrow block by
block (:mod:`.stream`; other encodings are transcoded to a UTF-8 spool file first), cast batch by
batch of ``chunk_rows`` rows (:func:`mlflywheel.datasets.cells.cast_array`) and written to a spool
Parquet file one row group per batch, which the lake then streams. Chunk boundaries do not change the result. A file the
streaming reader declines (NUL bytes, a quote left open, a ragged record, a refused header, ...)
is read by the exact reader (:mod:`.exact`, in memory, the messages of every odd case) if it is
at most :data:`EXACT_READER_MAX_BYTES`; a larger one is quarantined whole with the streaming
reader's reason and its records counted streaming (non-blank lines after the header). Parquet
landings are read whole.
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

from mlflywheel import ledger
from mlflywheel.datasets import raw_layout
from mlflywheel.datasets.landing import landing_key, landing_marker_key
from mlflywheel.datasets.spec import DatasetSpec
from mlflywheel.ingest import exact, raw, stream
from mlflywheel.ingest.exact import (
    EXACT_READER_MAX_BYTES,
    GZIP_MAGIC,
    PARQUET_MAGIC,
    PIPELINE_COLUMNS,
    UNREADABLE_KIND,
    LandingTable,
    UnreadableFileError,
    read_landing,
    read_landing_table,
)
from mlflywheel.lake import Lake, frame_from_parquet, keys
from mlflywheel.lake.keys import COERCION_ERRORS_COLUMN, ROW_COLUMN, ROW_ID_COLUMN
from mlflywheel.settings import Settings

__all__ = [
    "COERCION_ERRORS_COLUMN", "DEFAULT_CHUNK_ROWS", "EXACT_READER_MAX_BYTES", "GZIP_MAGIC", "PARQUET_MAGIC",
    "PIPELINE_COLUMNS", "ROW_COLUMN", "ROW_ID_COLUMN", "UNREADABLE_KIND", "IngestError", "LandingTable",
    "UnreadableFileError", "ingest_partition", "normalise", "read_landing", "read_landing_table", "read_raw",
]  # fmt: skip

T = TypeVar("T")
DEFAULT_CHUNK_ROWS = Settings.partition_chunk_rows  # its default; callers with settings pass theirs


class IngestError(RuntimeError):
    """The partition cannot be ingested (e.g. it has not landed); a retry may succeed."""


def ingest_partition(
    lake: Lake,
    spec: DatasetSpec,
    day: dt.date,
    *,
    run_id: str,
    ledger_sink: ledger.LedgerSink | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> dict[str, Any]:
    """Normalise the day's landed file into ``raw`` (or quarantine it if unreadable), reading and
    writing ``chunk_rows`` rows at a time.

    ``ledger_sink`` also records the summary of a whole-file quarantine (the only outcome for
    which ingest writes the ledger; validation writes it otherwise).
    """
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, not {chunk_rows}")
    source_key = landed_file_key(lake, spec, day)
    with (
        lake.local_file(source_key) as path,
        tempfile.TemporaryDirectory(prefix="flywheel-ingest-") as spool,
        stream.survey(path) as surveyed,  # its exit stops and joins the hashing thread
    ):
        # The digest (a thread reading the file) is asked for only once the file has been read.
        try:
            written = _write_raw(path, surveyed, spec, day, Path(spool), chunk_rows)
        except UnreadableFileError as exc:
            base = delivery(spec, day, source_key, surveyed, run_id=run_id)
            return quarantine_unreadable(
                lake, spec, day, path, str(exc), base, ledger_sink=ledger_sink, records=exc.records
            )
        base = delivery(spec, day, source_key, surveyed, run_id=run_id)
        lake.publish_partition(
            keys.RAW,
            spec.name,
            day,
            {keys.DATA_FILE: written.path}
            | ({keys.RAW_META_FILE: written.meta_path} if written.meta_path is not None else {})
            | ({keys.DUPLICATE_IDS_FILE: written.duplicate_ids} if written.duplicate_ids is not None else {}),
            meta={
                "rows_in": written.rows, "notes": written.notes, "unique_ids": written.unique_ids,
                "duplicate_ids": [spec.id_column] if written.duplicate_ids is not None else [], **base,
            },
        )
    # An earlier whole-file quarantine of the day stays with its ledger summary (one commit) until
    # validation commits this delivery's result over it.
    return {
        **base,
        "status": "raw",
        "rows_in": written.rows,
        "notes": written.notes,
        "coercion_errors": written.coercion_errors,
        "extra_columns": [c for c in written.header if c not in spec.column_names],
        "missing_columns": [c for c in spec.column_names if c not in written.header],
    }


def landed_file_key(lake: Lake, spec: DatasetSpec, day: dt.date) -> str:
    """The key of the day's landed file; IngestError while it has not (completely) landed."""
    source_key = landing_key(spec, day)
    marker_key = landing_marker_key(spec, day)
    if not lake.exists(marker_key):
        raise IngestError(f"{spec.name} {day}: not landed yet (no marker {lake.url(marker_key)})")
    if not lake.exists(source_key):
        raise IngestError(f"{spec.name} {day}: marker present but no file {lake.url(source_key)}")
    return source_key


def delivery(spec: DatasetSpec, day: dt.date, source_key: str, surveyed: stream.Survey, *, run_id: str) -> dict[str, Any]:
    """The fields naming a delivery in ingest's summaries."""
    return {
        "dataset": spec.name,
        "partition": day.isoformat(),
        "source_key": source_key,
        "source_sha256": surveyed.sha256,
        "run_id": run_id,
    }


def _write_raw(
    path: Path, surveyed: stream.Survey, spec: DatasetSpec, day: dt.date, spool: Path, chunk_rows: int
) -> raw.Written:
    """The raw partition file in ``spool`` (see :func:`read_landed`); raises UnreadableFileError."""
    out = spool / keys.DATA_FILE

    def write(header: list[str], batches: Callable[[], Iterator[Any]], notes: list[str]) -> raw.Written:
        return raw.write_raw(out, header, batches(), spec, day, notes)

    return read_landed(path, surveyed, spec, spool, chunk_rows, write)


def read_landed(
    path: Path,
    surveyed: stream.Survey,
    spec: DatasetSpec,
    spool: Path,
    chunk_rows: int,
    consume: Callable[[list[str], Callable[[], Iterator[Any]], list[str]], T],
) -> T:
    """``consume(header, batches, notes)`` of the landed file's text: ``batches()`` gives a fresh
    iterator of Arrow string batches of ``chunk_rows`` rows each time it is called. Streamed when
    the streaming reader takes the file, else by the exact reader (up to
    :data:`EXACT_READER_MAX_BYTES`): when the streaming reader declines midway, ``consume`` is
    called again from the start. Raises UnreadableFileError."""
    if spec.landing_format == "parquet":
        try:
            return _read_parquet_landing(path, chunk_rows, consume)
        except stream.Declined as declined:
            if surveyed.size > EXACT_READER_MAX_BYTES:
                raise UnreadableFileError(
                    f"not a Parquet file: {declined}", records=stream.count_records(path, surveyed.head)
                ) from None
    else:
        multiline = [c.name for c in spec.columns if c.multiline]
        try:
            source = stream.csv_source(path, surveyed, spool)
            for block_bytes in stream.csv_block_sizes():  # a record too long for a block: larger blocks
                try:
                    return consume(
                        source.header,
                        # tables of pyarrow's own blocks, sliced without a copy
                        lambda block_bytes=block_bytes: stream.rechunk(
                            stream.read_batches(source, multiline, block_bytes), chunk_rows
                        ),
                        source.notes,
                    )
                except stream.RecordTooLong:
                    continue
            raise AssertionError("the last block size is never too small")  # pragma: no cover
        except stream.Declined as declined:
            if surveyed.size > EXACT_READER_MAX_BYTES:
                raise UnreadableFileError(
                    f"{declined} (read streaming: at {surveyed.size} bytes the file is too large to read "
                    "record by record)",
                    records=stream.count_records(path, surveyed.head),
                ) from None
    landed = read_landing(path.read_bytes(), spec)  # raises UnreadableFileError for most
    header = [str(name) for name in landed.table.columns]
    return consume(header, lambda: raw.text_batches(landed.table, chunk_rows), landed.notes)


def _read_parquet_landing(
    path: Path, chunk_rows: int, consume: Callable[[list[str], Callable[[], Iterator[Any]], list[str]], T]
) -> T:
    """A Parquet landing read ``chunk_rows`` rows at a time, each batch rendered as text (as the
    exact reader renders the whole file); :class:`stream.Declined` if pyarrow cannot read it."""
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
        header = [str(c) for c in parquet.schema_arrow.empty_table().to_pandas().columns]
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a broken file
        raise stream.Declined(str(exc)) from None
    reserved = [c for c in header if c in PIPELINE_COLUMNS]
    if reserved:
        raise UnreadableFileError(
            f"the file has a column named {reserved[0]!r}, a name reserved for the pipeline's meta columns",
            records=parquet.metadata.num_rows,
        )

    def text_batches() -> Any:
        try:
            for batch in parquet.iter_batches(batch_size=chunk_rows):
                yield from raw.text_batches(exact.frame_as_text(batch.to_pandas()), chunk_rows)
        except (OSError, ValueError) as exc:  # a broken page or row group (pyarrow's errors are both)
            raise stream.Declined(str(exc)) from None

    return consume(header, text_batches, [])


def read_raw(lake: Lake, spec: DatasetSpec, day: dt.date) -> pd.DataFrame:
    """The day's raw partition as written by :func:`ingest_partition`: its data and meta files'
    columns side by side, in the order of the contract above."""
    import io

    import pyarrow.parquet as pq

    manifest = lake.manifest(keys.RAW, spec.name, day) or {}
    if keys.RAW_META_FILE not in manifest.get("files", ()):  # a partition from before the meta file
        return frame_from_parquet(lake.partition_file(keys.RAW, spec.name, day, keys.DATA_FILE))
    data, meta = (
        pq.read_table(io.BytesIO(lake.partition_file(keys.RAW, spec.name, day, name)))
        for name in (keys.DATA_FILE, keys.RAW_META_FILE)
    )
    return raw_layout.read_raw_table(data, meta, spec).to_pandas()


def normalise(
    text_table: pd.DataFrame, spec: DatasetSpec, *, day: dt.date | None = None
) -> tuple[pd.DataFrame, int]:
    """A table of landed text as the raw contract's frame (``_row_id`` too when the spec has no id
    column and ``day`` is given), in memory; and the number of rows with a coercion error."""
    import pyarrow as pa

    header = [str(name) for name in text_table.columns]
    schema = raw.raw_schema(header, spec, row_ids=spec.id_column is None and day is not None)
    batches = list(raw.text_batches(text_table, max(len(text_table), 1)))
    cast, errors = raw.cast_batch(batches[0], spec, first_row=0, day=day, schema=schema) if batches else (None, 0)
    table = pa.Table.from_batches([cast] if cast is not None else [], schema=schema)
    return table.to_pandas(), errors


def quarantine_unreadable(
    lake: Lake,
    spec: DatasetSpec,
    day: dt.date,
    path: Path,
    error: str,
    base: dict[str, Any],
    *,
    ledger_sink: ledger.LedgerSink | None = None,
    records: int | None = None,
) -> dict[str, Any]:
    rows_in = records if records is not None else _records_in(path)
    reason = f"unreadable file: {error}"
    # Nothing of an unreadable delivery may stay downstream: raw goes first, so no later
    # validation can publish an earlier delivery's rows again (a kill right after leaves readers
    # on the previous commit, and the retry repeats this).
    lake.clear_partition(keys.RAW, spec.name, day)
    reasons = {reason: rows_in}
    commit_id = keys.new_version()
    summary = {
        **base,
        "status": "quarantined",
        "rows_in": rows_in,
        "rows_validated": 0,
        "rows_quarantined": rows_in,
        "reasons": reasons,
        "partition_failures": [reason],
        "report_key": keys.validation_report_key(spec.name, day, version=commit_id),
        "validated_at": dt.datetime.now(dt.UTC).isoformat(),
    }
    quarantine = (
        {
            f"landing.{spec.landing_format}": path,
            "reasons.json": json.dumps(reasons, indent=2, sort_keys=True).encode(),
        },
        {"kind": UNREADABLE_KIND, "rows_in": rows_in, **base},
    )
    # One commit: the quarantine, no validated rows, this report and the ledger summary together.
    return ledger.commit(
        lake,
        summary,
        zones={keys.QUARANTINE: quarantine, keys.VALIDATED: None},
        report={keys.REPORT_HTML: _unreadable_report(spec, summary).encode()},
        commit_id=commit_id,
        sink=ledger_sink,
    )


def _unreadable_report(spec: DatasetSpec, summary: dict[str, Any]) -> str:
    """The validation report of a delivery that could not be read (nothing was validated)."""
    from mlflywheel import reports

    overview = reports.key_values(
        [(name.replace("_", " "), summary[name])
         for name in ("dataset", "partition", "status", "rows_in", "rows_validated", "rows_quarantined",
                      "run_id", "source_key", "source_sha256", "validated_at")]
    )  # fmt: skip
    return reports.page(
        f"Validation of {summary['dataset']} {summary['partition']}: {summary['status']}",
        [("Overview", overview), ("Partition failures", reports.bullet_list(summary["partition_failures"]))],
        subtitle=f"{spec.description} The delivered file is kept whole in quarantine. "
        f"Report key: {summary['report_key']}",
    )


def _records_in(path: Path) -> int:
    """The records of a file no reader takes: counted exactly if it is small enough to hold."""
    if path.stat().st_size <= EXACT_READER_MAX_BYTES:
        return exact._records_in(path.read_bytes())
    with open(path, "rb") as fh:
        head = fh.read(65536)
    return stream.count_records(path, head)
