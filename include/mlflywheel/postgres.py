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
* a long statement (``transaction(..., liveness=True)``: the source extract, bulk loads) cannot wait
  for that deadline, which is minutes: a liveness watchdog (:class:`_LivenessWatchdog`) probes the
  server on a separate short connection whenever no bytes have moved for
  ``FLYWHEEL_POSTGRES_LIVENESS_INTERVAL_SECONDS``. A server that does not answer that probe within
  ``FLYWHEEL_POSTGRES_LIVENESS_TIMEOUT_SECONDS`` is hung: the statement's socket is shut down and
  the error says so. A server that answers keeps the statement going (a scan may legitimately take
  minutes before its first row), up to the statement's own limit;
* a dead host or a cut network is noticed sooner by TCP keepalives and ``tcp_user_timeout``.

Identifiers always go through :mod:`psycopg2.sql`; URIs are redacted before they reach a message
or a log.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

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
LIVENESS_INTERVAL_SETTING = "FLYWHEEL_POSTGRES_LIVENESS_INTERVAL_SECONDS"
LIVENESS_TIMEOUT_SETTING = "FLYWHEEL_POSTGRES_LIVENESS_TIMEOUT_SECONDS"
# What the probe asks about the watched statement's backend (the server's view of it).
LIVENESS_QUERY = "SELECT state, wait_event_type, wait_event FROM pg_stat_activity WHERE pid = %s"

log = logging.getLogger(__name__)


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


def _shut_down_socket(conn: psycopg2.extensions.connection) -> None:
    """Shut the connection's socket down: a libpq read blocked on it returns with an error."""
    # A duplicate of the socket: shutdown acts on the connection both descriptors share.
    with contextlib.suppress(OSError, psycopg2.Error), socket.socket(fileno=os.dup(conn.fileno())) as sock:
        sock.shutdown(socket.SHUT_RDWR)


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
            _shut_down_socket(self._conn)

    def finish(self) -> None:
        with self._lock:  # after this, _expire never touches the (soon closed) descriptor
            self._done = True
        self._timer.cancel()


class ConnectionGuard:
    """:func:`transaction`'s client-side bounds for a connection another library drives (Great
    Expectations' engine): the deadline, and the liveness watchdog when one is asked for.
    :meth:`finish` stops both before the connection is closed."""

    def __init__(self, deadline: _Deadline, watchdog: _LivenessWatchdog | None) -> None:
        self._deadline, self._watchdog = deadline, watchdog

    @property
    def fired(self) -> bool:
        return self._deadline.fired or (self._watchdog is not None and self._watchdog.fired)

    def failure(self, where: str) -> str | None:
        """Why the guard cut the connection off (a message naming the setting), or None."""
        if self._watchdog is not None and self._watchdog.fired:
            return (
                f"{where}: the server stopped answering: nothing arrived for {self._watchdog.silent_seconds:.0f} s "
                f"({LIVENESS_INTERVAL_SETTING}={self._watchdog.interval:g}) and a liveness probe on a new "
                f"connection got no answer within {self._watchdog.timeout} s ({LIVENESS_TIMEOUT_SETTING}); "
                "the connection was closed"
            )
        if self._deadline.fired:
            return f"{where}: no answer within the statement's limit; the connection was closed"
        return None

    def finish(self) -> None:
        if self._watchdog is not None:
            self._watchdog.finish()
        self._deadline.finish()


def cut_off_after(
    conn: psycopg2.extensions.connection,
    seconds: float,
    *,
    liveness: tuple[str, Settings] | None = None,
) -> ConnectionGuard:
    """Shut ``conn``'s socket down once ``seconds`` have passed, or, with ``liveness``
    (``(postgres_uri, settings)``), as soon as the server stops answering a liveness probe
    (:class:`_LivenessWatchdog`; a statement silent for minutes on a live server is left alone),
    unless the returned guard's ``finish()`` is called first (then before closing the connection)."""
    watchdog = _LivenessWatchdog(conn, liveness[0], liveness[1]) if liveness is not None else None
    return ConnectionGuard(_Deadline(conn, seconds), watchdog)


def liveness_budget_seconds(settings: Settings) -> float:
    """The longest a hung server holds a watched statement: silence before a probe + the probe's wait."""
    return settings.postgres_liveness_interval_seconds + settings.postgres_liveness_timeout_seconds


def probe_backend(postgres_uri: str, backend_pid: int, timeout_seconds: int) -> tuple[str, str] | None:
    """Ask the server, on a new connection, what backend ``backend_pid`` is doing.

    Returns ``(state, wait)`` (e.g. ``("active", "IO/DataFileRead")``; ``wait`` is empty when the
    backend waits for nothing) or None when the server has no such backend (a pooler in between may
    hide it). Connecting and the query are each bounded by ``timeout_seconds`` (libpq's connect
    timeout, the server's statement timeout, and a client-side cut for a server that accepted and
    went silent); past them it raises :class:`TimeoutError`. Any other failure (refused, too many
    connections, bad login) raises :class:`psycopg2.Error`: the server did answer.
    """
    try:
        conn = psycopg2.connect(
            postgres_uri,
            connect_timeout=max(2, math.ceil(timeout_seconds)),  # libpq takes 1 as 2
            application_name=f"{APPLICATION_NAME}-liveness",
            options=f"-c statement_timeout={int(timeout_seconds * 1000)}",
            tcp_user_timeout=TCP_USER_TIMEOUT_MS,
            **KEEPALIVES,
        )
    except psycopg2.OperationalError as exc:
        if "timeout expired" in str(exc):  # libpq's words when connect_timeout passes
            raise TimeoutError(_first_line(exc)) from exc
        raise
    deadline = _Deadline(conn, timeout_seconds)
    try:
        conn.autocommit = True  # no transaction left open on the server if the probe is cut
        with conn.cursor() as cursor:
            cursor.execute(LIVENESS_QUERY, (backend_pid,))
            row = cursor.fetchone()
    except psycopg2.Error as exc:
        if deadline.fired or isinstance(exc, psycopg2.errors.QueryCanceled):
            raise TimeoutError(_first_line(exc)) from exc
        raise
    finally:
        deadline.finish()
        conn.close()
    if row is None:
        return None
    state, wait_type, wait_event = row
    return str(state), "/".join(str(part) for part in (wait_type, wait_event) if part)


class _ProgressFile:
    """A file for ``COPY``: every chunk read or written counts as the connection moving."""

    def __init__(self, file: Any, moved: Any) -> None:
        self._file = file
        self._moved = moved
        if hasattr(file, "read"):
            self.read = self._read
        if hasattr(file, "readline"):
            self.readline = self._readline
        if hasattr(file, "write"):
            self.write = self._write

    def _read(self, *args: Any) -> Any:
        data = self._file.read(*args)
        self._moved()
        return data

    def _readline(self, *args: Any) -> Any:
        data = self._file.readline(*args)
        self._moved()
        return data

    def _write(self, data: Any) -> Any:
        self._moved()
        return self._file.write(data)


class WatchedCursor(psycopg2.extensions.cursor):
    """The cursor of a ``transaction(..., liveness=True)``: a ``COPY`` reports each chunk that moves
    to the watchdog, so that a long stream of rows is never probed; any other statement is probed
    after each silent interval."""

    watchdog: _LivenessWatchdog | None = None

    def copy_expert(self, sql: Any, file: Any, size: int = 8192) -> Any:
        if self.watchdog is not None:
            file = _ProgressFile(file, self.watchdog.moved)
        return super().copy_expert(sql, file, size)


class _LivenessWatchdog:
    """While a long statement runs on ``conn``, tells a hung server from a slow one.

    After ``interval`` seconds without bytes moving (:meth:`moved`), it runs :func:`probe_backend`
    on a new connection. An answer, whatever it says, means the server is alive: it waits another
    interval (the statement's own deadline still bounds the whole). No answer within ``timeout``
    seconds means the server is hung: the statement's socket is shut down (as :class:`_Deadline`
    does) and :attr:`fired` is set. A probe that fails at once (refused, too many connections) is an
    answer too: a server that says no is not hung, and cutting a long extract there would waste it.
    :meth:`finish` stops it before the connection is closed.
    """

    def __init__(self, conn: psycopg2.extensions.connection, postgres_uri: str, settings: Settings) -> None:
        self.fired = False
        self.silent_seconds = 0.0
        self.probes = 0
        self.interval = settings.postgres_liveness_interval_seconds
        self.timeout = settings.postgres_liveness_timeout_seconds
        self._conn = conn
        self._uri = postgres_uri
        self._pid = conn.get_backend_pid()  # known to the client since the handshake: no round trip
        self._last_moved = time.monotonic()
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="postgres-liveness", daemon=True)
        self._thread.start()

    def moved(self) -> None:
        self._last_moved = time.monotonic()

    def _watch(self) -> None:
        next_probe = self._last_moved + self.interval
        while not self._done.wait(max(0.0, next_probe - time.monotonic())):
            silent_since = self._last_moved
            if time.monotonic() - silent_since < self.interval:
                next_probe = silent_since + self.interval  # bytes moved meanwhile: no probe needed
                continue
            answer = self._probe()
            if self._done.is_set():
                return
            if answer is None and self._last_moved == silent_since:
                self._fire(time.monotonic() - silent_since)
                return  # (bytes that moved while the probe waited prove the statement alive)
            next_probe = time.monotonic() + self.interval

    def _probe(self) -> tuple[str, str] | str | None:
        """The probe's answer (a description of the backend, or the error the server gave), or None
        when the server gave none within :attr:`timeout`."""
        outcome: dict[str, Any] = {}
        answered = threading.Event()

        def ask() -> None:
            try:
                outcome["answer"] = probe_backend(self._uri, self._pid, self.timeout)
            except TimeoutError:
                outcome["timed_out"] = True
            except Exception as exc:  # noqa: BLE001 - any answer, even an error, is a sign of life
                outcome["error"] = exc
            answered.set()

        self.probes += 1
        threading.Thread(target=ask, name="postgres-liveness-probe", daemon=True).start()
        deadline = time.monotonic() + self.timeout
        while not answered.wait(0.1):
            if self._done.is_set():
                return "statement ended"
            if time.monotonic() >= deadline:
                return None
        if outcome.get("timed_out"):
            return None
        where = f"PostgreSQL {redact_uri(self._uri)}"
        if "error" in outcome:
            error = outcome["error"]
            log.info("%s: liveness probe of backend %s failed (%s): still waiting", where, self._pid,
                     _first_line(error))  # fmt: skip
            return _first_line(error)
        answer = outcome["answer"]
        if answer is None:
            log.info("%s: liveness probe: no backend %s on the server (a pooler?): still waiting", where, self._pid)
            return "no such backend"
        log.info("%s: liveness probe: backend %s %s%s: still waiting", where, self._pid, answer[0],
                 f" (waiting on {answer[1]})" if answer[1] else "")  # fmt: skip
        return answer

    def _fire(self, silent_seconds: float) -> None:
        with self._lock:
            if self._done.is_set():
                return
            self.fired = True
            self.silent_seconds = silent_seconds
            _shut_down_socket(self._conn)

    def finish(self) -> None:
        with self._lock:  # after this, _fire never touches the (soon closed) descriptor
            self._done.set()


@contextlib.contextmanager
def transaction(
    postgres_uri: str,
    *,
    settings: Settings | None = None,
    statement_timeout_seconds: int | None = None,
    timeout_setting: str = STATEMENT_TIMEOUT_SETTING,
    readonly: bool = False,
    isolation_level: int | None = None,
    liveness: bool = False,
) -> Iterator[psycopg2.extensions.cursor]:
    """A cursor in one transaction on a fresh connection, committed on success, and bounded:

    a statement past its timeout is cancelled by the server; a server (or network) that stops
    answering is cut off by the client after :func:`query_budget_seconds`. Both raise
    :class:`psycopg2.OperationalError` naming the server (password redacted), the time and
    ``timeout_setting``, the variable that sets it. The connection is always closed.

    ``liveness``: for statements allowed to run long (minutes) before they answer. A server that
    goes silent is then found out within :func:`liveness_budget_seconds` rather than at the
    statement's deadline (:class:`_LivenessWatchdog`); the cursor is a :class:`WatchedCursor`.
    """
    settings = settings if settings is not None else Settings.from_env()
    statement_timeout = statement_timeout_seconds or settings.postgres_statement_timeout_seconds
    budget = query_budget_seconds(settings, statement_timeout)
    where = f"PostgreSQL {redact_uri(postgres_uri)}"
    conn = connect(postgres_uri, settings=settings, statement_timeout_seconds=statement_timeout)
    deadline = _Deadline(conn, budget)
    watchdog = _LivenessWatchdog(conn, postgres_uri, settings) if liveness else None
    try:
        session = {"readonly": True} if readonly else {}
        if isolation_level is not None:
            session["isolation_level"] = isolation_level
        if session:
            conn.set_session(**session)
        with conn, conn.cursor(cursor_factory=WatchedCursor if watchdog else None) as cursor:
            if watchdog is not None:
                cursor.watchdog = watchdog
            yield cursor
    except psycopg2.Error as exc:
        if watchdog is not None and watchdog.fired and not deadline.fired:
            raise psycopg2.OperationalError(
                f"{where}: the server stopped answering: nothing arrived for {watchdog.silent_seconds:.0f} s "
                f"mid-query ({LIVENESS_INTERVAL_SETTING}={watchdog.interval:g}) and a liveness probe on a new "
                f"connection got no answer within {watchdog.timeout} s ({LIVENESS_TIMEOUT_SETTING}); the "
                f"connection was closed ({_first_line(exc)})"
            ) from exc
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
        if watchdog is not None:
            watchdog.finish()
        deadline.finish()
        conn.close()
