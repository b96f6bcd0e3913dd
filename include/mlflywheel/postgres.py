"""PostgreSQL connection helpers shared by the source connector and the ledger table.

Connections have a bounded connect time and statement time; identifiers always go through
:mod:`psycopg2.sql`; URIs are redacted before they reach a message or a log.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import psycopg2
import psycopg2.extensions
from psycopg2 import sql

CONNECT_TIMEOUT_SECONDS = 10
STATEMENT_TIMEOUT = "10min"  # a runaway statement fails the task (and Airflow retries) instead of hanging
APPLICATION_NAME = "flywheel"



def table_identifier(table: str) -> sql.Composable:
    """``table`` as a safely quoted SQL identifier; ``"schema.table"`` splits on the first dot.

    The name is never parsed as SQL: ``'x; DROP TABLE y'`` is one (odd) table name.
    """
    if not isinstance(table, str) or not table.strip():
        raise ValueError("a PostgreSQL table name must be a non-empty string")
    if "." in table:
        schema, name = table.split(".", 1)
        if not schema or not name:
            raise ValueError(f"table name {table!r}: expected 'table' or 'schema.table'")
        return sql.SQL(".").join([sql.Identifier(schema), sql.Identifier(name)])
    return sql.Identifier(table)


def redact_uri(uri: str) -> str:
    """``uri`` without its password, for error messages and logs."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return "<unparseable postgres uri>"
    if parts.password is None:
        return uri
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def connect(postgres_uri: str) -> psycopg2.extensions.connection:
    """A connection with a bounded connect time and statement time (a stuck server fails the task)."""
    if not postgres_uri:
        raise ValueError("no PostgreSQL URI given")
    return psycopg2.connect(
        postgres_uri,
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        application_name=APPLICATION_NAME,
        options=f"-c statement_timeout={STATEMENT_TIMEOUT}",
    )
