"""The ingestion ledger as a PostgreSQL table, beside the lake's ``summary.json`` files.

One row per ``(dataset, partition)`` with the counts, the status, the run and the whole
summary as ``jsonb``, so the ledger can be queried (and joined, and alerted on) with SQL. The
table itself enforces ``rows_in = rows_validated + rows_quarantined`` with a CHECK constraint, so
even a writer that skips :func:`mlflywheel.ledger.write_summary` cannot record a partition that
lost rows. Writes are upserts: re-running a partition updates its row, never adds one.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING, Any

from psycopg2 import sql
from psycopg2.extras import Json

from mlflywheel.postgres import table_identifier, transaction

if TYPE_CHECKING:  # pragma: no cover
    from mlflywheel.settings import Settings

_COLUMNS = ("dataset", "partition", "rows_in", "rows_validated", "rows_quarantined", "status", "run_id")


class PostgresLedgerSink:
    """Records partition summaries in ``table`` of the database at ``postgres_uri``.

    A connection is opened per call: ledger writes are one per partition and task, so pooling
    would only hold connections open between Airflow tasks. Every call is bounded
    (:func:`mlflywheel.postgres.transaction`; timeouts from ``settings``, default the environment).
    """

    def __init__(
        self, postgres_uri: str, table: str = "flywheel_ingest_ledger", *, settings: Settings | None = None
    ):
        self.postgres_uri = postgres_uri
        self.table = table
        self.settings = settings
        self._identifier = table_identifier(table)  # rejects an empty name up front
        self._ensured = False

    def __repr__(self) -> str:
        return f"PostgresLedgerSink(table={self.table!r})"  # no URI: it may hold a password

    def ensure_table(self) -> None:
        """Create the ledger table if it does not exist (safe to call from parallel tasks)."""
        ddl = sql.SQL(
            """
            CREATE TABLE IF NOT EXISTS {table} (
                dataset text NOT NULL,
                partition date NOT NULL,
                rows_in bigint NOT NULL,
                rows_validated bigint NOT NULL,
                rows_quarantined bigint NOT NULL,
                status text NOT NULL,
                validation_summary jsonb NOT NULL,
                run_id text NOT NULL,
                updated_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (dataset, partition),
                CONSTRAINT ledger_rows_balance CHECK (rows_in = rows_validated + rows_quarantined),
                CONSTRAINT ledger_rows_non_negative CHECK (rows_validated >= 0 AND rows_quarantined >= 0)
            )
            """
        ).format(table=self._identifier)
        with transaction(self.postgres_uri, settings=self.settings) as cursor:
            # Two first-time creators racing on CREATE TABLE IF NOT EXISTS can still collide
            # in the catalog; a transaction-scoped advisory lock on the name serialises them.
            lock_name = f"flywheel-ledger:{self.table}"
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (lock_name,))
            cursor.execute(ddl)
        self._ensured = True

    def record(self, summary: dict[str, Any]) -> None:
        """Upsert ``summary`` as the row of its partition, in one transaction.

        The caller (:func:`mlflywheel.ledger.write_summary`) validates first; the table's CHECK
        constraint is the last line of defence and raises :class:`psycopg2.errors.CheckViolation`.
        """
        if not self._ensured:
            self.ensure_table()
        values = [
            summary["dataset"],
            dt.date.fromisoformat(str(summary["partition"])),
            int(summary["rows_in"]),
            int(summary["rows_validated"]),
            int(summary["rows_quarantined"]),
            summary["status"],
            str(summary["run_id"]),
            Json(summary, dumps=_dumps),
        ]
        columns = [*_COLUMNS, "validation_summary"]
        updated = [c for c in columns if c not in ("dataset", "partition")]
        statement = sql.SQL(
            "INSERT INTO {table} ({columns}) VALUES ({values}) "
            "ON CONFLICT (dataset, partition) DO UPDATE SET {updates}, updated_at = now()"
        ).format(
            table=self._identifier,
            columns=sql.SQL(", ").join(map(sql.Identifier, columns)),
            values=sql.SQL(", ").join(sql.Placeholder() * len(columns)),
            updates=sql.SQL(", ").join(
                sql.SQL("{col} = EXCLUDED.{col}").format(col=sql.Identifier(c)) for c in updated
            ),
        )
        with transaction(self.postgres_uri, settings=self.settings) as cursor:
            cursor.execute(statement, values)

    def read(self, dataset: str, day: dt.date) -> dict[str, Any] | None:
        """The ledger row of ``dataset``'s partition ``day``, or None."""
        rows = self._select(sql.SQL("WHERE dataset = %s AND partition = %s"), (dataset, day))
        return rows[0] if rows else None

    def list(self, dataset: str) -> list[dict[str, Any]]:
        """All ledger rows of ``dataset``, oldest partition first."""
        return self._select(sql.SQL("WHERE dataset = %s ORDER BY partition"), (dataset,))

    def _select(self, where: sql.Composable, params: tuple[Any, ...]) -> list[dict[str, Any]]:
        columns = [*_COLUMNS, "validation_summary", "updated_at"]
        query = sql.SQL("SELECT {columns} FROM {table} {where}").format(
            columns=sql.SQL(", ").join(map(sql.Identifier, columns)), table=self._identifier, where=where
        )
        with transaction(self.postgres_uri, settings=self.settings, readonly=True) as cursor:
            if not self._table_exists(cursor):
                return []  # nothing recorded yet: reading must not create the table
            cursor.execute(query, params)
            fetched = cursor.fetchall()
        out = []
        for row in fetched:
            record = dict(zip(columns, row, strict=True))
            # Same shapes as the lake's summary.json: ISO strings, not date/datetime objects.
            record["partition"] = record["partition"].isoformat()
            record["updated_at"] = record["updated_at"].isoformat()
            out.append(record)
        return out

    def _table_exists(self, cursor: Any) -> bool:
        cursor.execute("SELECT to_regclass(%s)", (self._identifier.as_string(cursor),))
        return cursor.fetchone()[0] is not None


def _dumps(obj: Any) -> str:
    # Same serialisation as the lake's summary.json (Lake.put_json): anything odd becomes a string.
    return json.dumps(obj, sort_keys=True, default=str)
