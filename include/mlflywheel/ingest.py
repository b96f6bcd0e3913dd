"""Ingest: a landed file becomes the day's ``raw`` partition, normalised to the dataset schema.

Contract of a raw partition (``raw/<dataset>/dt=YYYY-MM-DD/data.parquet``), which validation
reads as is:

* each schema column present in the file, cast to its dtype: ``string`` -> object (str),
  ``int`` -> ``Int64``, ``float`` -> float64, ``datetime`` -> ``datetime64[ns, UTC]``;
* a value that is present but does not cast becomes null, and its original text is kept in
  ``_coercion_errors`` (a JSON object ``{"column": "text", ...}``, null for clean rows);
* columns the schema does not know are kept, as strings (the schema check must see them);
  schema columns missing from the file are simply absent;
* ``_row``: the record's 0-based position in the landing file (0 = first line after the header);
* ``_row_id``, only when the spec declares no id column: ``<YYYY-MM-DD>:<_row>``, the row's id
  (stable for a delivery; validation keeps it in the validated partition, snapshots sort by it).

Columns whose name starts with ``_`` are meta columns. A file that cannot be read at all goes
to ``quarantine/`` whole, with a ledger summary; nothing of it reaches ``raw``. Re-running
replaces the partition, so ingest is idempotent.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import zlib
from typing import Any

import numpy as np
import pandas as pd

from mlflywheel import ledger
from mlflywheel.datasets.landing import landing_key, landing_marker_key
from mlflywheel.datasets.spec import Column, DatasetSpec
from mlflywheel.lake import Lake, frame_from_parquet, frame_to_parquet, keys
from mlflywheel.lake.keys import COERCION_ERRORS_COLUMN, ROW_COLUMN, ROW_ID_COLUMN, derived_row_id

GZIP_MAGIC = b"\x1f\x8b"
UNREADABLE_KIND = "unreadable_file"  # quarantine manifest "kind" of a whole-file quarantine


class IngestError(RuntimeError):
    """The partition cannot be ingested (e.g. it has not landed); a retry may succeed."""


class UnreadableFileError(ValueError):
    """The landed file is not a readable table: it is quarantined, not retried."""


def ingest_partition(
    lake: Lake,
    spec: DatasetSpec,
    day: dt.date,
    *,
    run_id: str,
    ledger_sink: ledger.LedgerSink | None = None,
) -> dict[str, Any]:
    """Normalise the day's landed file into ``raw`` (or quarantine it if unreadable).

    ``ledger_sink`` also records the summary of a whole-file quarantine (the only outcome for
    which ingest writes the ledger; validation writes it otherwise).
    """
    source_key = landing_key(spec, day)
    marker_key = landing_marker_key(spec, day)
    if not lake.exists(marker_key):
        raise IngestError(f"{spec.name} {day}: not landed yet (no marker {lake.url(marker_key)})")
    if not lake.exists(source_key):
        raise IngestError(f"{spec.name} {day}: marker present but no file {lake.url(source_key)}")
    data = lake.get_bytes(source_key)
    source_sha256 = hashlib.sha256(data).hexdigest()
    base = {
        "dataset": spec.name,
        "partition": day.isoformat(),
        "source_key": source_key,
        "source_sha256": source_sha256,
        "run_id": run_id,
    }

    try:
        text_table = read_landing_table(data, spec.landing_format)
    except UnreadableFileError as exc:
        return _quarantine_unreadable(lake, spec, day, data, str(exc), base, ledger_sink=ledger_sink)

    raw, coercion_errors = normalise(text_table, spec, day=day)
    rows_in = len(raw)
    lake.publish_partition(
        keys.RAW, spec.name, day, {keys.DATA_FILE: frame_to_parquet(raw)}, meta={"rows_in": rows_in, **base}
    )
    # An earlier whole-file quarantine of the day stays with its ledger summary (one commit) until
    # validation commits this delivery's result over it.
    return {
        **base,
        "status": "raw",
        "rows_in": rows_in,
        "coercion_errors": coercion_errors,
        "extra_columns": [c for c in text_table.columns if c not in spec.column_names],
        "missing_columns": [c for c in spec.column_names if c not in text_table.columns],
    }


def read_raw(lake: Lake, spec: DatasetSpec, day: dt.date) -> pd.DataFrame:
    """The day's raw partition as written by :func:`ingest_partition`."""
    return frame_from_parquet(lake.partition_file(keys.RAW, spec.name, day, keys.DATA_FILE))


def read_landing_table(data: bytes, landing_format: str = "csv") -> pd.DataFrame:
    """The landed file as a table of text (null where a cell is empty); raises
    :class:`UnreadableFileError` if it is not a readable table."""
    if landing_format == "parquet":
        return _parquet_as_text(data)
    if data.startswith(GZIP_MAGIC):
        raise UnreadableFileError("gzip-compressed data where plain CSV text was expected")
    try:
        text = data.decode("utf-8-sig")  # strict: binary garbage fails here
    except UnicodeDecodeError as exc:
        raise UnreadableFileError(f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if "\x00" in text:
        raise UnreadableFileError("binary content (NUL bytes) in a text file")
    try:
        return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, csv.Error, ValueError) as exc:
        raise UnreadableFileError(" ".join(str(exc).split())) from None


def normalise(
    text_table: pd.DataFrame, spec: DatasetSpec, *, day: dt.date | None = None
) -> tuple[pd.DataFrame, int]:
    """Cast schema columns to their dtypes, keep unknown columns as text, add meta columns
    (``_row_id`` too when the spec has no id column and ``day`` is given).

    Returns the frame and the number of rows with at least one coercion error.
    """
    out: dict[str, Any] = {}
    errors: dict[int, dict[str, str]] = {}
    for column in spec.columns:
        if column.name not in text_table:
            continue
        text = text_table[column.name]
        values = _cast(text, column)
        failed = np.flatnonzero((text.notna() & values.isna()).to_numpy())
        for position, original in zip(failed, text.to_numpy()[failed], strict=True):
            errors.setdefault(int(position), {})[column.name] = original
        out[column.name] = values
    for name in text_table.columns:
        if name not in out:
            out[name] = text_table[name].astype(object)  # unknown columns stay text
    frame = pd.DataFrame(out, index=text_table.index)
    frame[ROW_COLUMN] = np.arange(len(frame), dtype=np.int64)
    if spec.id_column is None and day is not None:
        frame[ROW_ID_COLUMN] = np.array([derived_row_id(day, row) for row in range(len(frame))], dtype=object)
    error_json = np.full(len(frame), None, dtype=object)
    for position, bad in errors.items():
        error_json[position] = json.dumps(bad)
    frame[COERCION_ERRORS_COLUMN] = error_json
    return frame.reset_index(drop=True), len(errors)


def _cast(text: pd.Series, column: Column) -> pd.Series:
    """``text`` cast to ``column``'s dtype; values that do not cast become null."""
    if column.dtype == "string":
        return text.astype(object)
    if column.dtype == "datetime":
        parsed = pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601")
        return parsed.astype("datetime64[ns, UTC]")
    numbers = pd.to_numeric(text, errors="coerce").astype("float64")
    if column.dtype == "float":
        return numbers
    # int: only finite whole numbers ("12" or "12.0"); "12.5" or "inf" is a coercion error.
    whole = np.isfinite(numbers) & (numbers == np.round(numbers))
    return numbers.where(whole).astype("Int64")


def _parquet_as_text(data: bytes) -> pd.DataFrame:
    try:
        frame = frame_from_parquet(data)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a broken file
        raise UnreadableFileError(f"not a Parquet file: {exc}") from None
    # Same path as CSV from here on: every column as text, nulls kept.
    text = {}
    for name in frame.columns:
        values = frame[name]
        if pd.api.types.is_datetime64_any_dtype(values):
            rendered = values.map(lambda t: t.isoformat() if not pd.isna(t) else None)
        else:
            rendered = values.astype(object).map(lambda v: None if pd.isna(v) else str(v))
        text[name] = rendered.astype(object)
    return pd.DataFrame(text)


def _count_records(data: bytes) -> int:
    """Best-effort record count of an unreadable file: text lines minus the header, else 0.

    For (possibly truncated) gzip data, the lines that can still be decompressed: a lower bound.
    """
    if data.startswith(GZIP_MAGIC):
        try:
            data = zlib.decompressobj(wbits=31).decompress(data)  # takes a truncated stream
        except zlib.error:
            return 0
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return 0
    if "\x00" in text:
        return 0
    lines = [line for line in text.splitlines() if line.strip()]
    return max(len(lines) - 1, 0)


def _quarantine_unreadable(
    lake: Lake,
    spec: DatasetSpec,
    day: dt.date,
    data: bytes,
    error: str,
    base: dict[str, Any],
    *,
    ledger_sink: ledger.LedgerSink | None = None,
) -> dict[str, Any]:
    rows_in = _count_records(data)
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
            f"landing.{spec.landing_format}": data,
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
