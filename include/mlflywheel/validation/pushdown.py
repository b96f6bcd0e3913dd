"""Validation where the data lives: a PostgreSQL source's day judged inside PostgreSQL.

With ``FLYWHEEL_SOURCE=postgres`` and ``FLYWHEEL_SOURCE_VALIDATION=postgres`` the ``ingest`` DAG's
one task runs :func:`validate_in_postgres` instead of extract + ingest + validate:

1. One ``READ ONLY REPEATABLE READ`` transaction on the source (the extract's: same time limit,
   same ``SET LOCAL`` text settings) checks the table's column types and exports its snapshot
   (``pg_export_snapshot``). Every other connection of the run imports that snapshot, so every
   query below sees the same rows.
2. Great Expectations' SQL datasource (``add_postgres``, a query asset for the day's window, see
   :func:`.pushdown_sql.day_relation`) runs the partition's suite, :func:`.suite.build_suite`:
   the same expectations, reasons and meta as on the lake path, in SQL, with the ``SUMMARY``
   result format (counts, no row lists). Its connections come from
   :func:`mlflywheel.postgres.connect` (connect and statement timeouts, keepalives) and are cut off
   by the client past the extract's limit, as :func:`mlflywheel.postgres.transaction` cuts off its
   own; each of GX's transactions imports the snapshot and pins the text settings. An expectation that cannot be evaluated raises :class:`PushdownError` (the task
   retries) instead of quarantining the day: in SQL that is the server or the network failing.
3. The failing rows' ids (``_row``) come from SQL, from predicates compiled from the same
   expectations (:func:`.pushdown_sql.row_predicate`), evaluated in one query, not from GX's
   ``COMPLETE`` format: that fetches every unexpected row (value and id) to the client, one query
   per expectation, and is many times slower than ``SUMMARY``. The predicates are only trusted
   where they agree with GX: each failed expectation's row count must equal GX's
   ``unexpected_count``. An expectation without a compiled predicate (a spec's extra of another
   type), or whose count differs, gets its rows from GX itself (``COMPLETE`` with
   ``unexpected_index_column_names=["_row"]``, for that expectation only), with a warning.
4. The verdict's partition-level failures are known from the outcomes, the failing rows' ids and
   the day's row count (:func:`.verdict.partition_failures`, worded as the lake path words them).
   Then ``COPY (SELECT ...) TO STDOUT`` in the snapshot's transaction writes the rows, as the text
   the extract writes, to local spool files: the failing rows and, separately, the passing rows;
   or, when the day is quarantined whole, every row. No extract is held in memory.
5. Each file is read back ``settings.partition_chunk_rows`` rows at a time by ingest's streaming
   reader and casts (:mod:`mlflywheel.ingest.stream`, :func:`mlflywheel.ingest.raw.cast_batch`),
   so every value, ``_row`` and ``_coercion_errors`` is what the lake path's raw zone would hold.
   A chunk's rows get their reasons from the lake path's :func:`.verdict.judge` over the failing
   rows that fall in it; they go to the quarantine spool file with ``_quarantine_reasons`` (the
   partition's reasons first when the day is quarantined whole), the passing rows, schema-typed,
   to the validated spool file (:mod:`.streaming`'s schemas and tables). Rows in = validated +
   quarantined is checked, and the extracts against the SQL's split and GX's row count. Both
   files, the report and the ledger summary are published in one commit
   (:func:`.publication.publish_streamed`, with GX's own suite and result). The summary adds
   ``validated_in: "postgres"`` and ``source_table``.

The raw zone holds nothing for a day validated this way: its rows never leave PostgreSQL before
they are judged, and the validated and quarantine zones together hold every row of the day. A raw
partition an earlier lake-path run left for the day is cleared before the commit, so no later
lake-path ``validate`` can publish that older delivery over this result. The landing zone is not
touched. Downstream (snapshots, drift) reads the validated zone exactly as before.

One difference with the lake path: a text value holding a line break in a column not declared
``multiline`` makes the lake path's extracted CSV unreadable (the whole day quarantined as an
unreadable file); here the value is validated like any other.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import os
import tempfile
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import psycopg2
from psycopg2 import sql

from mlflywheel import ledger
from mlflywheel.datasets.spec import DatasetSpec
from mlflywheel.ingest import raw, stream
from mlflywheel.lake import PARQUET_WRITER_OPTIONS, Lake, keys
from mlflywheel.postgres import connect, cut_off_after, query_budget_seconds, redact_uri, table_identifier
from mlflywheel.settings import Settings
from mlflywheel.sources.postgres import SourceError, extract_transaction, pin_text_settings, source_error
from mlflywheel.validation import streamed_summary
from mlflywheel.validation.errors import ValidationError
from mlflywheel.validation.publication import publish_streamed
from mlflywheel.validation.pushdown_sql import (
    ACCEPTED_TYPES,
    day_relation,
    day_rows,
    failing_rows_query,
    row_predicate,
)
from mlflywheel.validation.report import REPORT_SAMPLE_ROWS, render_report
from mlflywheel.validation.streaming import (
    Streamed,
    quarantine_schema,
    quarantine_table,
    validated_schema,
    validated_table,
)
from mlflywheel.validation.suite import build_suite, partition_expectations
from mlflywheel.validation.verdict import (
    ExpectationOutcome,
    Verdict,
    judge,
    log_failures,
    outcomes,
    partition_failures,
)

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq
    from great_expectations.core import ExpectationSuite, ExpectationSuiteValidationResult

log = logging.getLogger("mlflywheel.validation")

# SUMMARY without the sample lists: the counts are the verdict; the rows come from SQL (step 3).
SUMMARY_FORMAT = {"result_format": "SUMMARY", "partial_unexpected_count": 0}
ROWS_FORMAT = {"result_format": "COMPLETE", "unexpected_index_column_names": [keys.ROW_COLUMN]}
# GX builds its engine from a URL; the connections come from the creator (mlflywheel.postgres.connect),
# so this URL only names the dialect and driver, and no credential reaches GX's configuration or results.
GX_ENGINE_URL = "postgresql+psycopg2://flywheel@source/pushdown"


class PushdownError(RuntimeError):
    """Validation inside PostgreSQL could not complete (an expectation could not be evaluated, or
    the queries disagree); nothing was published, and a retry may succeed."""


def validate_in_postgres(
    lake: Lake,
    spec: DatasetSpec,
    day: dt.date,
    *,
    postgres_uri: str,
    table: str,
    run_id: str,
    max_failed_row_fraction: float = 0.2,
    ledger_sink: ledger.LedgerSink | None = None,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Validate ``day``'s rows of ``table`` inside PostgreSQL and publish the result; return the
    ledger summary (as :func:`mlflywheel.validation.validate_partition` does, plus
    ``validated_in`` and ``source_table``).

    Raises :class:`~mlflywheel.sources.postgres.SourceError` for a missing table or column or a
    column type that does not read back exactly; connection errors and timeouts propagate as
    :class:`psycopg2.Error`, and :class:`PushdownError` when an expectation cannot be evaluated,
    so the task retries.
    """
    if not 0.0 <= max_failed_row_fraction <= 1.0:
        raise ValueError(f"max_failed_row_fraction must be in [0, 1], got {max_failed_row_fraction}")
    settings = settings if settings is not None else Settings.from_env()
    where = f"{spec.name} {day.isoformat()}"
    suite = build_suite(spec, day)  # a bad spec fails before any connection
    table_identifier(table)  # so does a bad table name
    with tempfile.TemporaryDirectory(prefix="flywheel-pushdown-") as spool:
        checked = _check_in_postgres(
            spec, day, table, suite, Path(spool),
            postgres_uri=postgres_uri, settings=settings, where=where, max_failed_row_fraction=max_failed_row_fraction,
        )  # fmt: skip
        log_failures(where, checked.outcomes, checked.rows_in)
        # From here on, the lake path's own steps: the zones' spool files, summary, report, one commit.
        streamed = _write_zones(spec, day, checked, Path(spool), chunk_rows=settings.partition_chunk_rows, where=where)
        commit_id = keys.new_version()
        summary = streamed_summary(spec, day, streamed, run_id=run_id, commit_id=commit_id)
        summary.update(validated_in="postgres", source_table=table)
        report_html = render_report(spec, summary, streamed.outcomes, streamed.failing_sample.head(REPORT_SAMPLE_ROWS))
        lake.clear_partition(keys.RAW, spec.name, day)  # raw holds nothing for this day (module docstring)
        summary = publish_streamed(
            lake, spec, day, streamed, summary, report_html=report_html, ledger_sink=ledger_sink, commit_id=commit_id,
            suite=suite.to_json_dict(), result=checked.result.to_json_dict(),
        )  # fmt: skip
    log.info(
        "%s: %s in PostgreSQL (rows_in=%d validated=%d quarantined=%d, chunks of %d rows) report %s",
        where, streamed.status, streamed.rows_in, streamed.rows_validated, streamed.rows_quarantined,
        settings.partition_chunk_rows, lake.url(summary["report_key"]),
    )  # fmt: skip
    return summary


@dataclass
class _Checked:
    """What PostgreSQL said about the day: GX's result and outcomes (with their failing rows), the
    failing rows' ids, the day's row count and partition-level failures, and the extracted rows
    as CSV spool files (name -> path): ``failed`` and ``passed``, or the whole ``day`` when it is
    quarantined whole."""

    result: ExpectationSuiteValidationResult
    outcomes: list[ExpectationOutcome]
    failing_ids: np.ndarray  # sorted int64
    rows_in: int
    partition_failures: list[str]
    files: dict[str, Path]


def _check_in_postgres(
    spec: DatasetSpec,
    day: dt.date,
    table: str,
    suite: ExpectationSuite,
    spool: Path,
    *,
    postgres_uri: str,
    settings: Settings,
    where: str,
    max_failed_row_fraction: float,
) -> _Checked:
    """Steps 1 to 4 of the module docstring, in one snapshot; the rows are copied to ``spool``."""
    with extract_transaction(postgres_uri, settings, readonly=True) as cursor:
        pin_text_settings(cursor)
        _check_column_types(cursor, spec, table, postgres_uri)  # the first query takes the snapshot
        relation = day_relation(spec, table, day).as_string(cursor)
        cursor.execute("SELECT pg_export_snapshot()")
        snapshot = cursor.fetchone()[0]
        with _gx_day(relation, snapshot, postgres_uri, settings) as run_gx:
            result = run_gx(suite, SUMMARY_FORMAT)
            _raise_on_errors(where, result)
            found = outcomes(result, _no_rows())
            failing = _find_failing_rows(cursor, spec, day, relation, found)
            unexplained = [o for o in found if o.row_level and not o.success and o.position not in failing]
            if unexplained:
                failing.update(_failing_rows_from_gx(where, run_gx, suite, unexplained))
        for o in found:
            o.failing_rows = failing.get(o.position, [])
        failing_ids = sorted({row for rows in failing.values() for row in rows})
        rows_in = _count_rows(where, cursor, relation, found)
        failures = _partition_failures(spec, found, failed_rows=len(failing_ids), rows_in=rows_in,
                                       max_failed_row_fraction=max_failed_row_fraction)  # fmt: skip
        if failures:  # every row goes to quarantine: one extract, in _row order
            selects = {"day": day_rows(spec, table, day, [], listed=False)}
        else:
            selects = {
                "failed": day_rows(spec, table, day, failing_ids, listed=True),
                "passed": day_rows(spec, table, day, failing_ids, listed=False),
            }
        files, copied = {}, {}
        for name, select in selects.items():
            files[name] = spool / f"{name}.csv"
            copied[name] = _copy_to_file(cursor, select, files[name])
    if sum(copied.values()) != rows_in or copied.get("failed", len(failing_ids)) != len(failing_ids):
        raise PushdownError(f"{where}: extracted {copied} rows, but the day has {rows_in} ({len(failing_ids)} failing)")
    ids = np.array(failing_ids, dtype=np.int64)
    return _Checked(result, found, ids, rows_in, failures, files)


# --- the source table --------------------------------------------------------------------------


def _check_column_types(cursor: Any, spec: DatasetSpec, table: str, postgres_uri: str) -> None:
    """Every schema column exists with a type whose text reads back exactly (else SourceError)."""
    probe = sql.SQL("SELECT {columns} FROM {table} LIMIT 0").format(
        columns=sql.SQL(", ").join(sql.Identifier(name) for name in spec.column_names),
        table=table_identifier(table),
    )
    try:
        cursor.execute(probe)
    except psycopg2.Error as exc:
        clear = source_error(exc, table, postgres_uri)
        if clear is not None:
            raise clear from exc
        raise
    wrong = []
    for column, described in zip(spec.columns, cursor.description, strict=True):
        accepted = ACCEPTED_TYPES[column.dtype]
        if described.type_code not in accepted:
            cursor.execute("SELECT %s::regtype::text", (described.type_code,))
            wrong.append(
                f"{column.name} is {cursor.fetchone()[0]} ({column.dtype} needs {' or '.join(accepted.values())})"
            )
    if wrong:
        raise SourceError(
            f"source table {table!r} in {redact_uri(postgres_uri)} cannot be validated in PostgreSQL: "
            f"{'; '.join(wrong)}. Use FLYWHEEL_SOURCE_VALIDATION=lake for this table"
        )


# --- Great Expectations on the day -------------------------------------------------------------


@contextlib.contextmanager
def _gx_day(
    relation: str, snapshot: str, postgres_uri: str, settings: Settings
) -> Iterator[Callable[[ExpectationSuite, dict[str, Any]], ExpectationSuiteValidationResult]]:
    """A function that validates a suite on the day (query asset ``relation``) in ``snapshot``."""
    import sqlalchemy as sa

    statement_timeout = settings.postgres_extract_timeout_seconds
    budget = query_budget_seconds(settings, statement_timeout)
    guards = []

    def new_connection() -> Any:
        for guard in guards:  # a server found hung: GX's next statements fail at once, not one connect each
            if reason := guard.failure(f"PostgreSQL {redact_uri(postgres_uri)}"):
                raise psycopg2.OperationalError(reason)
        conn = connect(postgres_uri, settings=settings, statement_timeout_seconds=statement_timeout)
        # The client-side bounds of the extract's own transaction: its limit, and the liveness probe
        # that finds a hung server within seconds, however long GX's statements may run.
        guards.append(cut_off_after(conn, budget, liveness=(postgres_uri, settings)))
        return conn

    def in_snapshot(connection: Any) -> None:
        # First statements of each of GX's transactions: the run's snapshot, the extract's text settings.
        with connection.connection.dbapi_connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            cursor.execute("SET TRANSACTION SNAPSHOT %s", (snapshot,))
            pin_text_settings(cursor)

    def columns_only(connection, cursor, statement, parameters, context, executemany):
        # GX learns a query asset's columns by running the query itself and fetching every row to
        # the client; LIMIT 0 has the same columns. Any other statement passes unchanged.
        if statement.strip() == relation.strip():
            statement = f"SELECT * FROM ({relation}) AS flywheel_day LIMIT 0"
        return statement, parameters

    context = _gx_context()
    name = f"flywheel_pushdown_{uuid.uuid4().hex[:8]}"
    datasource = context.data_sources.add_postgres(
        name, connection_string=GX_ENGINE_URL, kwargs={"creator": new_connection}
    )
    batch_definition = datasource.add_query_asset("day", query=relation).add_batch_definition_whole_table(
        "day"
    )
    engine = datasource.get_execution_engine().engine
    sa.event.listen(engine, "begin", in_snapshot)
    sa.event.listen(engine, "before_cursor_execute", columns_only, retval=True)
    try:
        batch = batch_definition.get_batch()
        yield lambda suite, result_format: batch.validate(suite, result_format=result_format)
    except Exception as exc:
        # GX wraps (or reports) the driver's error: say plainly that the server was cut off.
        where = f"PostgreSQL {redact_uri(postgres_uri)}"
        reasons = [reason for guard in guards if (reason := guard.failure(where))]
        if reasons:
            raise psycopg2.OperationalError(f"{reasons[0]} ({type(exc).__name__})") from exc
        raise
    finally:
        for guard in guards:
            guard.finish()
        engine.dispose()
        context.data_sources.delete(name)


_gx_lock = threading.Lock()
_gx_context_of_process: Any = None


def _gx_context() -> Any:
    """One ephemeral GX context per process (each one makes a temporary folder); runs add and
    delete their own datasource in it."""
    global _gx_context_of_process
    with _gx_lock:
        if _gx_context_of_process is None:
            os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")  # before the first GX import: no network
            import great_expectations as gx
            from great_expectations.data_context.types.base import ProgressBarsConfig

            _gx_context_of_process = gx.get_context(mode="ephemeral")
            _gx_context_of_process.variables.progress_bars = ProgressBarsConfig(globally=False)
        return _gx_context_of_process


def _raise_on_errors(where: str, result: ExpectationSuiteValidationResult) -> None:
    errors = [o for o in outcomes(result, _no_rows()) if o.error is not None]
    if errors:
        details = "; ".join(f"{o.label}: {o.error}" for o in errors)
        raise PushdownError(
            f"{where}: {len(errors)} expectations could not be evaluated in PostgreSQL: {details}"
        )


def _failing_rows_from_gx(
    where: str,
    run_gx: Callable[[ExpectationSuite, dict[str, Any]], ExpectationSuiteValidationResult],
    suite: ExpectationSuite,
    unexplained: list[ExpectationOutcome],
) -> dict[int, list[int]]:
    """The failing rows of ``unexplained`` expectations, listed by GX (COMPLETE, ids only)."""
    import great_expectations as gx

    positions = {o.position for o in unexplained}
    log.warning(
        "%s: failing rows of %s listed by Great Expectations (no SQL predicate, or its count differed)",
        where, ", ".join(o.label for o in unexplained),
    )  # fmt: skip
    chosen = [e.copy() for e in suite.expectations if e.meta["flywheel_position"] in positions]
    # On SQL, GX cuts every row list at partial_unexpected_count: ask for as many as it counted.
    most = max(int(o.unexpected_count or 0) for o in unexplained)
    result_format = {**ROWS_FORMAT, "partial_unexpected_count": max(most, 1)}
    result = run_gx(gx.ExpectationSuite(name=f"{suite.name}.rows", expectations=chosen), result_format)
    _raise_on_errors(where, result)
    listed = {o.position: o.failing_rows for o in outcomes(result, _no_rows())}
    for o in unexplained:
        if len(listed.get(o.position, [])) != int(o.unexpected_count or 0):
            raise PushdownError(
                f"{where}: {o.label}: Great Expectations counted {o.unexpected_count} unexpected rows "
                f"but listed {len(listed.get(o.position, []))}"
            )
    return listed


# --- the failing rows, from SQL ----------------------------------------------------------------


def _find_failing_rows(
    cursor: Any, spec: DatasetSpec, day: dt.date, relation: str, found: list[ExpectationOutcome]
) -> dict[int, list[int]]:
    """``position -> failing _row ids`` for the failed row-level expectations whose compiled
    predicate finds as many rows as GX counted; the others are left out (GX lists them)."""
    checks = partition_expectations(spec, day)
    predicates, unique_columns = {}, {}
    for o in found:
        if not o.row_level or o.success or o.error is not None:
            continue
        predicate = row_predicate(checks[o.position], o.position)
        if predicate is not None:
            predicates[o.position] = predicate
            if checks[o.position].type == "expect_column_values_to_be_unique":
                unique_columns[o.position] = checks[o.position].kwargs["column"]
    if not predicates:
        return {}
    cursor.execute(failing_rows_query(sql.SQL(relation), predicates, unique_columns))
    failing: dict[int, list[int]] = {position: [] for position in predicates}
    positions = list(predicates)
    for row, *flags in cursor.fetchall():
        for position, flag in zip(positions, flags, strict=True):
            if flag:
                failing[position].append(int(row))
    by_position = {o.position: o for o in found}
    agreed = {}
    for position, rows in failing.items():
        counted = by_position[position].unexpected_count
        if counted is not None and int(counted) == len(rows):
            agreed[position] = rows
        else:
            log.warning(
                "%s %s: SQL predicate found %d rows, Great Expectations %s; using GX's list",
                spec.name, by_position[position].label, len(rows), counted,
            )  # fmt: skip
    return agreed


# --- extracting rows ----------------------------------------------------------------------------


def _count_rows(where: str, cursor: Any, relation: str, found: list[ExpectationOutcome]) -> int:
    """The day's rows in the snapshot (the extracts are checked against it), checked against GX's count."""
    cursor.execute(sql.SQL("SELECT count(*) FROM ({relation}) AS day").format(relation=sql.SQL(relation)))
    rows_in = int(cursor.fetchone()[0])
    counted = [o.observed_value for o in found if o.type == "expect_table_row_count_to_be_between"]
    if counted and counted[0] is not None and int(counted[0]) != rows_in:
        raise PushdownError(f"{where}: Great Expectations counted {counted[0]} rows, the day holds {rows_in}")
    return rows_in


def _partition_failures(
    spec: DatasetSpec,
    found: list[ExpectationOutcome],
    *,
    failed_rows: int,
    rows_in: int,
    max_failed_row_fraction: float,
) -> list[str]:
    """:func:`.verdict.judge`'s partition-level failures, known before any row is extracted (the
    failing rows are those SQL or GX listed; the day's columns are the schema's and meta's)."""
    judged = [
        dataclasses.replace(o, names_rows=bool(o.failing_rows)) if o.row_level and not o.success and o.error is None
        else o
        for o in found
    ]  # fmt: skip
    columns = [*spec.column_names, keys.ROW_COLUMN, keys.COERCION_ERRORS_COLUMN]
    return partition_failures(
        spec, judged, columns,
        failed_rows=failed_rows, rows_in=rows_in, max_failed_row_fraction=max_failed_row_fraction,
    )  # fmt: skip


def _copy_to_file(cursor: Any, select: sql.Composed, path: Path) -> int:
    """The rows of ``select`` written to ``path`` as CSV (no header), streamed by the server with
    COPY; returns the number of rows."""
    # COPY takes no parameters: every value in ``select`` is already a Literal.
    statement = sql.SQL("COPY ({select}) TO STDOUT WITH (FORMAT csv)").format(select=select)
    with open(path, "wb") as out:
        cursor.copy_expert(statement.as_string(cursor), out)
    return int(cursor.rowcount)


def _typed_chunks(
    path: Path, spec: DatasetSpec, day: dt.date, schema: pa.Schema, chunk_rows: int, where: str
) -> Iterator[tuple[pa.Table, np.ndarray]]:
    """An extract read back ``chunk_rows`` rows at a time as the raw zone would hold them (ingest's
    streaming reader and casts: :func:`mlflywheel.ingest.raw.cast_batch`), with its ``_row`` ids,
    which must increase."""
    import pyarrow as pa

    header = [*spec.column_names, keys.ROW_COLUMN]
    if path.stat().st_size == 0:
        return
    # Every column is "multiline": a line break inside a stored value is a value here (module docstring).
    source = stream.CsvSource(path, header, ",", skip_rows=0)
    last = -1
    try:
        for batch in stream.rebatch(stream.read_batches(source, multiline=header), chunk_rows):
            ids = batch.column(len(header) - 1).cast(pa.int64())
            rows = ids.to_numpy(zero_copy_only=False)
            if rows[0] <= last or (rows[1:] <= rows[:-1]).any():
                raise ValidationError(f"{where}: {keys.ROW_COLUMN} values out of order or repeated in the extract")
            last = int(rows[-1])
            text = pa.RecordBatch.from_arrays(batch.columns[:-1], names=header[:-1])
            cast, _ = raw.cast_batch(text, spec, first_row=0, day=day, schema=schema, row_ids=ids)
            yield pa.Table.from_batches([cast]), rows
    except stream.Declined as exc:
        raise PushdownError(f"{where}: the extracted rows cannot be read back: {exc}") from None


def _own_reasons(
    spec: DatasetSpec, found: list[tuple[ExpectationOutcome, np.ndarray]], chunk: pa.Table, rows: np.ndarray
) -> Verdict:
    """The verdict's reasons for the chunk's rows (``row_reasons``, ``reason_counts``): the lake
    path's :func:`.verdict.judge` over the outcomes' failing rows (``found``: each outcome with its
    failing rows, sorted) that fall in the chunk (its rows are every failing row between its first
    and last ``_row``)."""
    import pandas as pd

    low, high = rows[0], rows[-1]
    within = []
    for o, listed in found:
        if listed.size:
            part = listed[np.searchsorted(listed, low, "left") : np.searchsorted(listed, high, "right")]
            o = dataclasses.replace(o, failing_rows=part.tolist())
        within.append(o)
    frame = pd.DataFrame(
        {keys.ROW_COLUMN: rows, keys.COERCION_ERRORS_COLUMN: chunk.column(keys.COERCION_ERRORS_COLUMN).to_pylist()}
    )
    # Only the rows' reasons are used: the partition's failures were decided before the extract.
    return judge(spec, frame, within, max_failed_row_fraction=1.0)


def _write_zones(
    spec: DatasetSpec, day: dt.date, checked: _Checked, spool: Path, *, chunk_rows: int, where: str
) -> Streamed:
    """The extracts read back chunk by chunk into the validated and quarantine spool files, as the
    lake path writes them (:mod:`.streaming`'s schemas and tables)."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
    schema = raw.raw_schema(spec.column_names, spec, row_ids=spec.id_column is None)
    q_schema, v_schema = quarantine_schema(schema), validated_schema(spec, schema.names)
    validated_path, quarantined_path = spool / "validated.parquet", spool / "quarantined.parquet"
    failures = checked.partition_failures
    reason_counts: Counter[str] = Counter()
    samples: list[pd.DataFrame] = []
    rows_validated = rows_quarantined = 0
    found = [(o, np.sort(np.asarray(o.failing_rows, dtype=np.int64))) for o in checked.outcomes]

    def chunks(name: str) -> Iterator[tuple[pa.Table, np.ndarray]]:
        return _typed_chunks(checked.files[name], spec, day, schema, chunk_rows, where)

    def quarantine(writer: pq.ParquetWriter, chunk: pa.Table, rows: np.ndarray, texts: list[str], own: Any) -> int:
        table = quarantine_table(chunk, rows, np.ones(len(rows), dtype=bool), texts, q_schema)
        writer.write_table(table)
        # The report's sample: rows that failed on their own first (all fail a partition-level check).
        if sum(len(f) for f in samples) < REPORT_SAMPLE_ROWS:
            picked = table if not checked.failing_ids.size else table.filter(pa.array(own))
            samples.append(picked.slice(0, REPORT_SAMPLE_ROWS).to_pandas())
        return table.num_rows

    with pq.ParquetWriter(quarantined_path, q_schema, **PARQUET_WRITER_OPTIONS) as q:
        if failures:
            partition_text = "; ".join(failures)
            for chunk, rows in chunks("day"):
                verdict = _own_reasons(spec, found, chunk, rows)
                reason_counts.update(verdict.reason_counts)
                own = [verdict.row_reasons.get(r) for r in rows.tolist()]
                texts = [f"{partition_text}; {'; '.join(r)}" if r else partition_text for r in own]
                rows_quarantined += quarantine(q, chunk, rows, texts, [bool(r) for r in own])
            for failure in failures:
                reason_counts[failure] = checked.rows_in
        else:
            for chunk, rows in chunks("failed"):
                verdict = _own_reasons(spec, found, chunk, rows)
                reason_counts.update(verdict.reason_counts)
                expected = checked.failing_ids[rows_quarantined : rows_quarantined + len(rows)]
                if not np.array_equal(rows, expected) or len(verdict.row_reasons) != len(rows):
                    raise PushdownError(f"{where}: the extracted failing rows are not the rows SQL found")
                texts = ["; ".join(verdict.row_reasons[r]) for r in rows.tolist()]
                rows_quarantined += quarantine(q, chunk, rows, texts, np.ones(len(rows), dtype=bool))
            with pq.ParquetWriter(validated_path, v_schema, **PARQUET_WRITER_OPTIONS) as v:
                for chunk, rows in chunks("passed"):
                    v.write_table(validated_table(chunk, np.ones(len(rows), dtype=bool), v_schema))
                    rows_validated += len(rows)
                if not rows_validated:
                    v.write_table(v_schema.empty_table())
        if not rows_quarantined:
            q.write_table(q_schema.empty_table())
    if checked.rows_in != rows_validated + rows_quarantined:  # nothing may be lost or doubled
        raise ValidationError(
            f"{where}: rows_in={checked.rows_in} but validated={rows_validated} + quarantined={rows_quarantined}"
        )
    status = "quarantined" if failures else "partially_quarantined" if rows_quarantined else "validated"
    frames = [f for f in samples if len(f)]
    return Streamed(
        status=status,
        rows_in=checked.rows_in,
        rows_validated=rows_validated,
        rows_quarantined=rows_quarantined,
        reason_counts=dict(sorted(reason_counts.items(), key=lambda kv: (-kv[1], kv[0]))),
        partition_failures=failures,
        outcomes=checked.outcomes,
        failing_sample=pd.concat(frames, ignore_index=True).head(REPORT_SAMPLE_ROWS) if frames else pd.DataFrame(),
        validated_path=None if failures else validated_path,
        quarantined_path=quarantined_path if status != "validated" else None,
        engine="postgres",
    )


def _no_rows() -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame({keys.ROW_COLUMN: pd.Series([], dtype="int64")})
