"""PostgreSQL connection helpers shared by the source connector and the ledger table.

Every call is bounded end to end:

* connecting: ``FLYWHEEL_POSTGRES_CONNECT_TIMEOUT_SECONDS`` (libpq's ``connect_timeout``);
* each statement, on the server: ``statement_timeout``, from
  ``FLYWHEEL_POSTGRES_STATEMENT_TIMEOUT_SECONDS`` (30 s: the ledger's and the loop's own short
  queries) or ``FLYWHEEL_POSTGRES_EXTRACT_TIMEOUT_SECONDS`` (600 s: a day's source extract and bulk
  loads, which may legitimately stream for minutes);
* each transaction, on the client (:func:`transaction`): a server, proxy or network that stops
  answering mid-query while the TCP connection stays up (the kernel acknowledges, so neither TCP
  keepalives nor ``tcp_user_timeout`` notice) would otherwise block on the socket for ever. Past
  the statement timeout plus the connect timeout (time for the server's own cancellation to
  arrive) the client shuts the socket down and raises an error naming the server;
* a dead host or a cut network is noticed sooner by TCP keepalives and ``tcp_user_timeout``.

Identifiers always go through :mod:`psycopg2.sql`; URIs are redacted before they reach a message
or a log.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Iterator

import psycopg2
import psycopg2.errors
import psycopg2.extensions
from psycopg2 import sql

from mlflywheel.settings import Settings, redact

APPLICATION_NAME = "flywheel"
# A dead peer (host down, network cut) is noticed after ~10 s idle + 3 probes 5 s apart, and
# unacknowledged data is given up after 30 s, instead of the kernel's two hours.
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3}
TCP_USER_TIMEOUT_MS = 30_000
STATEMENT_TIMEOUT_SETTING = "FLYWHEEL_POSTGRES_STATEMENT_TIMEOUT_SECONDS"
EXTRACT_TIMEOUT_SETTING = "FLYWHEEL_POSTGRES_EXTRACT_TIMEOUT_SECONDS"
CONNECT_TIMEOUT_SETTING = "FLYWHEEL_POSTGRES_CONNECT_TIMEOUT_SECONDS"


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


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return redact(text.splitlines()[0]) if text else type(exc).__name__


def connect(
    postgres_uri: str, *, settings: Settings | None = None, statement_timeout_seconds: int | None = None
) -> psycopg2.extensions.connection:
    """A connection with a bounded connect time and statement time (a stuck server fails the task).

    Timeouts come from ``settings`` (default: the ``FLYWHEEL_POSTGRES_*`` variables);
    ``statement_timeout_seconds`` overrides the statement timeout (the source extract's). A server
    that does not complete the connection in time raises :class:`psycopg2.OperationalError` naming
    it (password redacted) and the setting that bounds the wait. Use :func:`transaction` to bound
    the queries on the client too.
    """
    if not postgres_uri:
        raise ValueError("no PostgreSQL URI given")
    settings = settings if settings is not None else Settings.from_env()
    connect_timeout = settings.postgres_connect_timeout_seconds
    statement_timeout = statement_timeout_seconds or settings.postgres_statement_timeout_seconds
    try:
        return psycopg2.connect(
            postgres_uri,
            connect_timeout=connect_timeout,
            application_name=APPLICATION_NAME,
            options=f"-c statement_timeout={statement_timeout * 1000}",
            tcp_user_timeout=TCP_USER_TIMEOUT_MS,
            **KEEPALIVES,
        )
    except psycopg2.OperationalError as exc:
        raise psycopg2.OperationalError(
            f"PostgreSQL {redact_uri(postgres_uri)}: could not connect (waiting at most {connect_timeout} s, "
            f"{CONNECT_TIMEOUT_SETTING}): {_first_line(exc)}"
        ) from exc


def query_budget_seconds(settings: Settings, statement_timeout_seconds: int | None = None) -> int:
    """The longest a :func:`transaction` waits for answers: the statement timeout, plus the connect
    timeout for the server's own cancellation to arrive."""
    statement = statement_timeout_seconds or settings.postgres_statement_timeout_seconds
    return statement + settings.postgres_connect_timeout_seconds


class _Deadline:
    """Shuts a connection's socket down once ``seconds`` have passed (a blocked libpq read then
    returns with an error); :meth:`finish` stops it before the connection is closed."""

    def __init__(self, conn: psycopg2.extensions.connection, seconds: float) -> None:
        self.fired = False
        self._conn = conn
        self._lock = threading.Lock()
        self._done = False
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def _expire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.fired = True
            # A duplicate of the socket: shutdown acts on the connection both descriptors share.
            with contextlib.suppress(OSError, psycopg2.Error), socket.socket(fileno=os.dup(self._conn.fileno())) as sock:
                sock.shutdown(socket.SHUT_RDWR)

    def finish(self) -> None:
        with self._lock:  # after this, _expire never touches the (soon closed) descriptor
            self._done = True
        self._timer.cancel()


def cut_off_after(conn: psycopg2.extensions.connection, seconds: float) -> _Deadline:
    """Shut ``conn``'s socket down once ``seconds`` have passed, unless the returned guard's
    ``finish()`` is called first (then before closing the connection): :func:`transaction`'s
    client-side limit, for a connection another library drives (Great Expectations' engine)."""
    return _Deadline(conn, seconds)


@contextlib.contextmanager
def transaction(
    postgres_uri: str,
    *,
    settings: Settings | None = None,
    statement_timeout_seconds: int | None = None,
    timeout_setting: str = STATEMENT_TIMEOUT_SETTING,
    readonly: bool = False,
    isolation_level: int | None = None,
) -> Iterator[psycopg2.extensions.cursor]:
    """A cursor in one transaction on a fresh connection, committed on success, and bounded:

    a statement past its timeout is cancelled by the server; a server (or network) that stops
    answering is cut off by the client after :func:`query_budget_seconds`. Both raise
    :class:`psycopg2.OperationalError` naming the server (password redacted), the time and
    ``timeout_setting``, the variable that sets it. The connection is always closed.
    """
    settings = settings if settings is not None else Settings.from_env()
    statement_timeout = statement_timeout_seconds or settings.postgres_statement_timeout_seconds
    budget = query_budget_seconds(settings, statement_timeout)
    where = f"PostgreSQL {redact_uri(postgres_uri)}"
    conn = connect(postgres_uri, settings=settings, statement_timeout_seconds=statement_timeout)
    deadline = _Deadline(conn, budget)
    try:
        session = {"readonly": True} if readonly else {}
        if isolation_level is not None:
            session["isolation_level"] = isolation_level
        if session:
            conn.set_session(**session)
        with conn, conn.cursor() as cursor:
            yield cursor
    except psycopg2.Error as exc:
        if deadline.fired:
            raise psycopg2.OperationalError(
                f"{where}: no answer within {budget} s ({statement_timeout} s {timeout_setting} + "
                f"{settings.postgres_connect_timeout_seconds} s {CONNECT_TIMEOUT_SETTING}): the server or the "
                f"network stopped answering mid-query; the connection was closed ({_first_line(exc)})"
            ) from exc
        if isinstance(exc, psycopg2.errors.QueryCanceled) and "statement timeout" in str(exc):
            raise psycopg2.OperationalError(
                f"{where}: a statement ran past its {statement_timeout} s limit ({timeout_setting}) and the "
                f"server cancelled it: {_first_line(exc)}"
            ) from exc
        raise
    finally:
        deadline.finish()
        conn.close()
