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
4. Two ``COPY (SELECT ...) TO STDOUT`` in the snapshot's transaction extract the failing rows and,
   separately, the passing rows, as the text the extract writes; they are read with the casts of
   ingest (:mod:`mlflywheel.datasets.cells`), so every value, ``_row`` and ``_coercion_errors``
   is what the lake path would hold.
5. The verdict and the split are the lake path's own (:func:`.verdict.judge`,
   :func:`.verdict.split_rows`): reasons per row, partition-level failures and
   ``max_failed_row_fraction`` quarantining the whole day, rows in = validated + quarantined
   (checked, and checked against the SQL's split and GX's row count). Validated rows (schema
   types), quarantined rows with ``_quarantine_reasons``, the report and the ledger summary are
   published in one commit (:func:`.publication.publish`). The summary adds
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
import datetime as dt
import io
import json
import logging
import os
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg2
from psycopg2 import sql

from mlflywheel import ledger
from mlflywheel.datasets.cells import NA_WORDS, cast_column
from mlflywheel.datasets.spec import DatasetSpec
from mlflywheel.lake import Lake, keys
from mlflywheel.postgres import connect, cut_off_after, query_budget_seconds, redact_uri, table_identifier
from mlflywheel.settings import Settings
from mlflywheel.sources.postgres import SourceError, extract_transaction, pin_text_settings, source_error
from mlflywheel.validation import partition_summary
from mlflywheel.validation.errors import ValidationError
from mlflywheel.validation.publication import publish
from mlflywheel.validation.pushdown_sql import (
    ACCEPTED_TYPES,
    day_relation,
    day_rows,
    failing_rows_query,
    row_predicate,
)
from mlflywheel.validation.report import REPORT_SAMPLE_ROWS, render_report
from mlflywheel.validation.suite import build_suite, partition_expectations
from mlflywheel.validation.verdict import ExpectationOutcome, judge, log_failures, outcomes, split_rows

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from great_expectations.core import ExpectationSuite, ExpectationSuiteValidationResult

log = logging.getLogger("mlflywheel.validation")

# SUMMARY without the sample lists: the counts are the verdict; the rows come from SQL (step 3).
SUMMARY_FORMAT = {"result_format": "SUMMARY", "partial_unexpected_count": 0}
ROWS_FORMAT = {"result_format": "COMPLETE", "unexpected_index_column_names": [keys.ROW_COLUMN]}
# GX builds its engine from a URL; the connections come from the creator (mlflywheel.postgres.connect),
# so this URL only names the dialect and driver, and no credential reaches GX's configuration or results.
GX_ENGINE_URL = "postgresql+psycopg2://flywheel@source/pushdown"
SPOOL_MEMORY_BYTES = 64 * 1024 * 1024  # larger extracts spill to a temporary file on disk


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
    checked = _check_in_postgres(
        spec, day, table, suite, postgres_uri=postgres_uri, settings=settings, where=where
    )

    import pandas as pd

    failed, passed = _read_rows(checked.failed_csv, spec, day), _read_rows(checked.passed_csv, spec, day)
    frame = pd.concat([passed, failed], ignore_index=True).sort_values(keys.ROW_COLUMN, kind="stable")
    frame = frame.reset_index(drop=True)
    _check_counts(where, frame, failed, checked)

    # From here on, the lake path's own steps: verdict, split, summary, report, one commit.
    verdict = judge(spec, frame, checked.outcomes, max_failed_row_fraction)
    log_failures(where, verdict, len(frame))
    split = split_rows(spec, frame, verdict, where=where)
    if split.validated is not None and split.rows_validated != len(passed):  # SQL and Python split alike
        raise PushdownError(f"{where}: {split.rows_validated} rows validated, but SQL passed {len(passed)}")
    commit_id = keys.new_version()
    summary = partition_summary(
        spec, day, split, verdict, rows_in=len(frame), run_id=run_id, commit_id=commit_id
    )
    summary.update(validated_in="postgres", source_table=table)
    report_html = render_report(
        spec, summary, verdict.outcomes, split.failing_sample.head(REPORT_SAMPLE_ROWS)
    )
    lake.clear_partition(keys.RAW, spec.name, day)  # raw holds nothing for this day (module docstring)
    summary = publish(
        lake, day, split, summary, report_html=report_html, verdict=verdict, suite=suite, result=checked.result,
        ledger_sink=ledger_sink, commit_id=commit_id,
    )  # fmt: skip
    log.info(
        "%s: %s in PostgreSQL (rows_in=%d validated=%d quarantined=%d) report %s",
        where, split.status, len(frame), split.rows_validated, len(split.quarantined),
        lake.url(summary["report_key"]),
    )  # fmt: skip
    return summary


@dataclass
class _Checked:
    """What PostgreSQL said about the day: GX's result and outcomes (with their failing rows), the
    failing rows' ids, and the failing and passing rows as CSV text."""

    result: ExpectationSuiteValidationResult
    outcomes: list[ExpectationOutcome]
    failing_ids: list[int]
    failed_csv: bytes
    passed_csv: bytes


def _check_in_postgres(
    spec: DatasetSpec,
    day: dt.date,
    table: str,
    suite: ExpectationSuite,
    *,
    postgres_uri: str,
    settings: Settings,
    where: str,
) -> _Checked:
    """Steps 1 to 4 of the module docstring, in one snapshot."""
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
        failed_csv = _copy_text(cursor, day_rows(spec, table, day, failing_ids, listed=True))
        passed_csv = _copy_text(cursor, day_rows(spec, table, day, failing_ids, listed=False))
    return _Checked(result, found, failing_ids, failed_csv, passed_csv)


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


def _copy_text(cursor: Any, select: sql.Composed) -> bytes:
    """The rows of ``select`` as CSV (header first), streamed by the server with COPY."""
    # COPY takes no parameters: every value in ``select`` is already a Literal.
    statement = sql.SQL("COPY ({select}) TO STDOUT WITH (FORMAT csv, HEADER true)").format(select=select)
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES, mode="w+b") as spool:
        cursor.copy_expert(statement.as_string(cursor), spool)
        spool.seek(0)
        return spool.read()


def _read_rows(data: bytes, spec: DatasetSpec, day: dt.date) -> pd.DataFrame:
    """Extracted rows as the raw zone would hold them: schema columns cast as ingest casts them
    (:func:`mlflywheel.datasets.cells.cast_column`), ``_row``, ``_row_id`` (no id column) and
    ``_coercion_errors`` (``{"column": "original text"}`` as JSON, null for clean rows)."""
    import numpy as np
    import pandas as pd

    # pandas' reader, not ingest's: a line break inside a stored value is a value here.
    text = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False, na_values=[""])
    out: dict[str, Any] = {}
    errors: dict[int, dict[str, str]] = {}
    for column in spec.columns:
        cells = text[column.name].astype(object)
        cells = cells.where(cells.notna(), None)
        values = cast_column(cells, column.dtype)
        present = cells.notna().to_numpy()
        if column.dtype != "string":  # NA words are empty cells in typed columns, not errors
            present &= ~cells.str.strip().isin(NA_WORDS).to_numpy(dtype=bool)
        failed = np.flatnonzero(present & values.isna().to_numpy())
        for position, original in zip(failed, cells.to_numpy()[failed], strict=True):
            errors.setdefault(int(position), {})[column.name] = original
        out[column.name] = values
    frame = pd.DataFrame(out, index=text.index)
    frame[keys.ROW_COLUMN] = text[keys.ROW_COLUMN].astype("int64")
    if spec.id_column is None:
        frame[keys.ROW_ID_COLUMN] = np.array(
            [keys.derived_row_id(day, row) for row in frame[keys.ROW_COLUMN]], dtype=object
        )
    error_json = np.full(len(frame), None, dtype=object)
    for position, bad in errors.items():
        error_json[position] = json.dumps(bad)
    frame[keys.COERCION_ERRORS_COLUMN] = error_json
    return frame.reset_index(drop=True)


def _no_rows() -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame({keys.ROW_COLUMN: pd.Series([], dtype="int64")})


def _check_counts(where: str, frame: pd.DataFrame, failed: pd.DataFrame, checked: _Checked) -> None:
    """The extracted rows are the rows GX judged, and the failing ones those SQL found."""
    if failed[keys.ROW_COLUMN].tolist() != checked.failing_ids:
        raise PushdownError(
            f"{where}: extracted {len(failed)} failing rows, SQL found {len(checked.failing_ids)}"
        )
    if not frame[keys.ROW_COLUMN].is_unique:
        raise ValidationError(f"{where}: duplicate {keys.ROW_COLUMN} values in the extract")
    counted = [o.observed_value for o in checked.outcomes if o.type == "expect_table_row_count_to_be_between"]
    if counted and counted[0] is not None and int(counted[0]) != len(frame):
        raise PushdownError(
            f"{where}: Great Expectations counted {counted[0]} rows, the extract holds {len(frame)}"
        )
