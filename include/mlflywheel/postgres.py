"""PostgreSQL connection helpers shared by the source connector and the ledger table.

Connections have a bounded connect time (``FLYWHEEL_POSTGRES_CONNECT_TIMEOUT_SECONDS``) and
statement time (``FLYWHEEL_POSTGRES_STATEMENT_TIMEOUT_SECONDS``), and TCP keepalives that notice a
peer gone silent; identifiers always go through :mod:`psycopg2.sql`; URIs are redacted before they
reach a message or a log.

Not bounded here: a server that accepts a query and then stops answering while its host stays up
(the statement timeout runs on the server, keepalives only catch a dead host or network).
"""

from __future__ import annotations

import psycopg2
import psycopg2.extensions
from psycopg2 import sql

from mlflywheel.settings import Settings, redact

APPLICATION_NAME = "flywheel"
# A dead peer (host down, network cut) is noticed after ~10 s idle + 3 probes 5 s apart, and
# unacknowledged data is given up after 30 s, instead of the kernel's two hours.
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3}
TCP_USER_TIMEOUT_MS = 30_000



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
    """``uri`` (or a libpq ``key=value`` string) without its password or tokens, for messages and logs."""
    return redact(uri)


def connect(postgres_uri: str, *, settings: Settings | None = None) -> psycopg2.extensions.connection:
    """A connection with a bounded connect time and statement time (a stuck server fails the task).

    Timeouts come from ``settings`` (default: the ``FLYWHEEL_POSTGRES_*`` variables). A server that
    does not complete the connection in time raises :class:`psycopg2.OperationalError` naming it
    (password redacted) and the setting that bounds the wait.
    """
    if not postgres_uri:
        raise ValueError("no PostgreSQL URI given")
    settings = settings if settings is not None else Settings.from_env()
    connect_timeout = settings.postgres_connect_timeout_seconds
    try:
        return psycopg2.connect(
            postgres_uri,
            connect_timeout=connect_timeout,
            application_name=APPLICATION_NAME,
            options=f"-c statement_timeout={settings.postgres_statement_timeout_seconds * 1000}",
            tcp_user_timeout=TCP_USER_TIMEOUT_MS,
            **KEEPALIVES,
        )
    except psycopg2.OperationalError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise psycopg2.OperationalError(
            f"PostgreSQL {redact_uri(postgres_uri)}: could not connect (waiting at most {connect_timeout} s, "
            f"FLYWHEEL_POSTGRES_CONNECT_TIMEOUT_SECONDS): {redact(first_line)}"
        ) from exc
