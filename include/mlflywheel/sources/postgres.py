"""PostgreSQL source: a day's rows of a source table become the day's landing file.

:func:`extract_partition_to_landing` runs one ``COPY (SELECT ...) TO STDOUT`` for the rows whose
timestamp column lies in the partition's UTC day ``[day 00:00, next day 00:00)`` (the same
window validation checks) and lands the CSV with its ``_SUCCESS`` marker through
:func:`~mlflywheel.datasets.landing.land_bytes`, so ingest reads it exactly like a file an
upstream delivered. Rows never become Python objects: the server writes CSV, which is spooled
to a temporary file (spilling to disk past :data:`SPOOL_MEMORY_BYTES`) and landed from there.

The extract is a consistent snapshot (one ``READ ONLY REPEATABLE READ`` transaction), session
settings that shape the text (time zone, date style, float digits) are pinned inside that
transaction, and every identifier goes through :mod:`psycopg2.sql` while the day's bounds are
bound parameters: a table name is always a name, never SQL.

Time limits (:mod:`mlflywheel.postgres`): the extract and bulk loads run under
``FLYWHEEL_POSTGRES_EXTRACT_TIMEOUT_SECONDS`` (a day of rows may stream for minutes), the count
under ``FLYWHEEL_POSTGRES_STATEMENT_TIMEOUT_SECONDS``. The extract and bulk loads are watched for
liveness: silent for ``FLYWHEEL_POSTGRES_LIVENESS_INTERVAL_SECONDS``, the server is probed on a new
connection, and one that does not answer within ``FLYWHEEL_POSTGRES_LIVENESS_TIMEOUT_SECONDS`` is
hung: the extract is cut off then (15 s by default), not at its 600 s limit.
"""

from __future__ import annotations

import datetime as dt
import io
import tempfile
from typing import TYPE_CHECKING, Any

import psycopg2
import psycopg2.errors
import psycopg2.extensions
from psycopg2 import sql

from mlflywheel.datasets.landing import frame_to_csv_bytes, land_bytes
from mlflywheel.datasets.spec import DatasetSpec
from mlflywheel.lake import Lake, keys
from mlflywheel.postgres import EXTRACT_TIMEOUT_SETTING, redact_uri, table_identifier, transaction
from mlflywheel.settings import Settings

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

SPOOL_MEMORY_BYTES = 64 * 1024 * 1024  # larger extracts spill to a temporary file on disk

# Column types of a table created from a spec by :func:`load_frame_to_table`.
POSTGRES_TYPES = {"string": "text", "int": "bigint", "float": "double precision", "datetime": "timestamptz"}


class SourceError(RuntimeError):
    """The source table cannot be extracted as configured (missing table or column, bad name)."""


def pin_text_settings(cursor: psycopg2.extensions.cursor) -> None:
    """Pin the session settings that shape values as text, for this transaction only."""
    # SET LOCAL: only for this transaction. UTC + ISO make timestamps "2026-11-05 10:00:00.123+00",
    # which ingest parses as ISO-8601 whatever the server's defaults are; extra_float_digits=1
    # gives the shortest text that round-trips a double exactly.
    cursor.execute("SET LOCAL TIME ZONE 'UTC'")
    cursor.execute("SET LOCAL DateStyle = 'ISO, YMD'")
    cursor.execute("SET LOCAL extra_float_digits = 1")


def day_order(spec: DatasetSpec) -> sql.Composed:
    """The day's row order: the id (no id declared: the timestamp), then every other schema column.

    The later columns only break ties (duplicate ids), so a re-run lands the same rows in the same
    order and a row's position (``_row``) is the same in every query of one snapshot; rows equal in
    every column are interchangeable.
    """
    first = spec.id_column or spec.timestamp_column
    names = [first, *(name for name in spec.column_names if name != first)]
    return sql.SQL(", ").join(sql.Identifier(name) for name in names)


def day_select(spec: DatasetSpec, table: str) -> sql.Composed:
    """``SELECT <spec columns> FROM <table> WHERE <ts> >= %s AND <ts> < %s ORDER BY <day order>``."""
    ts = sql.Identifier(spec.timestamp_column)
    return sql.SQL("SELECT {columns} FROM {table} WHERE {ts} >= %s AND {ts} < %s ORDER BY {order}").format(
        columns=sql.SQL(", ").join(sql.Identifier(name) for name in spec.column_names),
        table=table_identifier(table),
        ts=ts,
        order=day_order(spec),
    )


def source_error(exc: psycopg2.Error, table: str, postgres_uri: str) -> SourceError | None:
    """A clear :class:`SourceError` for configuration problems; None for transient errors."""
    where = f"source table {table!r} in {redact_uri(postgres_uri)}"
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, psycopg2.errors.UndefinedTable):
        return SourceError(f"{where} does not exist ({first_line})")
    if isinstance(exc, psycopg2.errors.InvalidSchemaName):
        return SourceError(f"{where}: schema does not exist ({first_line})")
    if isinstance(exc, psycopg2.errors.UndefinedColumn):
        return SourceError(f"{where} lacks a column of the dataset schema ({first_line})")
    if isinstance(exc, psycopg2.errors.InsufficientPrivilege):
        return SourceError(f"{where}: permission denied ({first_line})")
    return None


# --- the extract -------------------------------------------------------------------------------


def extract_partition_to_landing(
    lake: Lake,
    spec: DatasetSpec,
    day: dt.date,
    *,
    postgres_uri: str,
    table: str,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Land exactly the rows of ``table`` whose timestamp is in ``day`` (UTC) as the day's file.

    Returns ``{"rows", "landing_key", "source": "postgres", "table", "partition"}``. Re-running
    re-lands the day (``land_bytes`` withdraws the old marker first), so the step is idempotent.
    Raises :class:`SourceError` for a missing table/column; connection errors and timeouts
    propagate as :class:`psycopg2.Error` so the task retries. Timeouts come from ``settings``
    (default: the environment).
    """
    if spec.landing_format != "csv":
        # COPY writes CSV; a parquet-landing dataset would need a converter first.
        raise SourceError(
            f"dataset {spec.name!r} lands {spec.landing_format}; the postgres source writes csv"
        )
    select = day_select(spec, table)  # validates the table name before connecting
    start, end = keys.day_bounds(day)
    settings = settings if settings is not None else Settings.from_env()
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES, mode="w+b") as spool:
        with extract_transaction(postgres_uri, settings, readonly=True) as cursor:  # a consistent snapshot
            pin_text_settings(cursor)
            # COPY takes no parameters: bind the bounds client-side with mogrify (proper literals).
            copy = sql.SQL("COPY ({select}) TO STDOUT WITH (FORMAT csv, HEADER true)").format(select=select)
            statement = cursor.mogrify(copy, (start, end))
            try:
                cursor.copy_expert(statement, spool)
            except psycopg2.Error as exc:
                clear = source_error(exc, table, postgres_uri)
                if clear is not None:
                    raise clear from exc
                raise
            rows = cursor.rowcount  # from the server's "COPY n" tag: CSV lines can hold newlines
        spool.seek(0)
        # Lake.put_bytes takes bytes: read the spooled CSV once (no per-row Python objects).
        data = spool.read()
    key = land_bytes(lake, spec, day, data)
    return {
        "rows": int(rows),
        "landing_key": key,
        "source": "postgres",
        "table": table,
        "partition": day.isoformat(),
    }


def extract_transaction(postgres_uri: str, settings: Settings, *, readonly: bool = False) -> Any:
    """A :func:`~mlflywheel.postgres.transaction` under the extract's time limit (repeatable read)."""
    return transaction(
        postgres_uri,
        settings=settings,
        statement_timeout_seconds=settings.postgres_extract_timeout_seconds,
        timeout_setting=EXTRACT_TIMEOUT_SETTING,
        readonly=readonly,
        isolation_level=psycopg2.extensions.ISOLATION_LEVEL_REPEATABLE_READ,
        liveness=True,  # minutes of allowed silence: tell a hung server from a slow scan sooner
    )


def count_rows_for_day(
    postgres_uri: str, table: str, spec: DatasetSpec, day: dt.date, *, settings: Settings | None = None
) -> int:
    """Rows of ``table`` in ``day``'s UTC window (the rows an extract of the day would land)."""
    start, end = keys.day_bounds(day)
    query = sql.SQL("SELECT count(*) FROM {table} WHERE {ts} >= %s AND {ts} < %s").format(
        table=table_identifier(table), ts=sql.Identifier(spec.timestamp_column)
    )
    with transaction(postgres_uri, settings=settings, readonly=True) as cursor:
        pin_text_settings(cursor)
        try:
            cursor.execute(query, (start, end))
        except psycopg2.Error as exc:
            clear = source_error(exc, table, postgres_uri)
            if clear is not None:
                raise clear from exc
            raise
        return int(cursor.fetchone()[0])


# --- seeding a source table --------------------------------------------------------------------


def load_frame_to_table(
    postgres_uri: str, table: str, spec: DatasetSpec, df: pd.DataFrame, *, settings: Settings | None = None
) -> int:
    """Append ``df``'s spec columns to ``table`` with COPY, creating the table from the spec if missing.

    The created table has no NOT NULL or key constraints (judging rows is validation's job) and an
    index on the timestamp column (the extract's filter). Returns the number of rows loaded.
    """
    missing = [name for name in spec.column_names if name not in df.columns]
    if missing:
        raise ValueError(f"frame lacks columns of dataset {spec.name!r}: {', '.join(missing)}")
    target = table_identifier(table)
    column_list = sql.SQL(", ").join(sql.Identifier(name) for name in spec.column_names)
    # Same CSV an upstream would land: timestamps ISO-8601 UTC, empty for null.
    payload = frame_to_csv_bytes(df[spec.column_names])
    settings = settings if settings is not None else Settings.from_env()
    with transaction(
        postgres_uri, settings=settings, statement_timeout_seconds=settings.postgres_extract_timeout_seconds,
        timeout_setting=EXTRACT_TIMEOUT_SETTING, liveness=True,
    ) as cursor:  # fmt: skip
        pin_text_settings(cursor)
        cursor.execute("SELECT to_regclass(%s)", (target.as_string(cursor),))
        if cursor.fetchone()[0] is None:
            columns = sql.SQL(", ").join(
                sql.SQL("{} {}").format(sql.Identifier(c.name), sql.SQL(POSTGRES_TYPES[c.dtype]))
                for c in spec.columns
            )
            cursor.execute(sql.SQL("CREATE TABLE {} ({})").format(target, columns))
            cursor.execute(
                sql.SQL("CREATE INDEX ON {} ({})").format(target, sql.Identifier(spec.timestamp_column))
            )
        copy = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT csv, HEADER true)").format(target, column_list)
        cursor.copy_expert(copy, io.BytesIO(payload))
        return int(cursor.rowcount)



__all__ = [
    "SourceError",
    "count_rows_for_day",
    "day_order",
    "day_select",
    "extract_partition_to_landing",
    "extract_transaction",
    "load_frame_to_table",
    "pin_text_settings",
    "source_error",
]
