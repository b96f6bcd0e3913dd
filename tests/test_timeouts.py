"""Bounded outages (issue 9, item 11): every outside call fails within its budget when the server hangs.

The server is real: a socket on loopback that accepts every connection and never answers a byte
(what a wedged process or a stuck proxy looks like from the client), or, for PostgreSQL mid-query,
a loopback TCP proxy in front of the real server that forwards the handshake and then freezes.
No client library is mocked: boto3, MLflow's REST client, libpq and requests each run their own
timeout and retry code. Budgets are made small through the settings so the tests stay quick; the
defaults' budgets are checked by arithmetic to stay under a minute.
"""

from __future__ import annotations

import datetime as dt
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from mlflywheel.settings import Settings

SLACK_S = 3.0  # start-up of a client library, scheduling on a busy machine
SECRET = "hung-server-secret"


@dataclass
class HungServer:
    host: str
    port: int
    accepted: list[socket.socket] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@pytest.fixture()
def hung_server() -> Iterator[HungServer]:
    """A loopback server that accepts connections, holds them open and never answers."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.settimeout(0.1)
    server = HungServer("127.0.0.1", listener.getsockname()[1])
    stop = threading.Event()

    def accept_forever() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            server.accepted.append(conn)  # held, never read from or written to

    thread = threading.Thread(target=accept_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in server.accepted:
            conn.close()
        listener.close()


def settings_for(tmp_path: Path, **values: object) -> Settings:
    return Settings.from_env({"FLYWHEEL_DATA_DIR": str(tmp_path / "data")}, **values)


# --- the defaults: seconds, not minutes ----------------------------------------------------------


def test_default_budgets_are_under_a_minute(tmp_path: Path) -> None:
    from mlflywheel.lake.s3 import S3Lake
    from mlflywheel.orchestration.airflow_api import AirflowApi
    from mlflywheel.registry import mlflow_call_budget_seconds

    settings = settings_for(tmp_path)
    lake = S3Lake("bucket", "lake", endpoint_url="http://127.0.0.1:9", settings=settings)
    assert lake.call_budget_seconds() < 60
    assert mlflow_call_budget_seconds(settings) < 60
    assert settings.postgres_connect_timeout_seconds < 60
    from mlflywheel.postgres import query_budget_seconds

    assert query_budget_seconds(settings) < 60  # the ledger's and the loop's own queries
    # A day's extract may run longer by design (FLYWHEEL_POSTGRES_EXTRACT_TIMEOUT_SECONDS), but bounded,
    # and a hung server is found out by the liveness probe long before that limit.
    assert query_budget_seconds(settings, settings.postgres_extract_timeout_seconds) <= 660
    from mlflywheel.postgres import liveness_budget_seconds

    assert liveness_budget_seconds(settings) < 60
    assert AirflowApi("http://127.0.0.1:9", "u", "p").budget < 60


# --- S3 --------------------------------------------------------------------------------------------


@pytest.mark.slow  # 3-6 s: waits out the budget against a hung server
def test_s3_call_to_a_hung_endpoint_fails_within_its_budget(
    hung_server: HungServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflywheel.lake import LakeError, lake_from_settings

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    endpoint = f"http://{hung_server.address}"
    settings = settings_for(
        tmp_path,
        lake_uri="s3://flywheel-lake/prod",
        s3_endpoint_url=endpoint,
        s3_connect_timeout_seconds=1.0,
        s3_read_timeout_seconds=1.0,
        s3_max_attempts=2,
    )
    lake = lake_from_settings(settings)
    budget = lake.call_budget_seconds()
    for call in (lambda: lake.exists("state/a.json"), lambda: lake.put_bytes("state/a.json", b"{}")):
        accepted_before = len(hung_server.accepted)
        started = time.monotonic()
        with pytest.raises(LakeError) as info:
            call()
        elapsed = time.monotonic() - started
        assert 1.0 <= elapsed <= budget + SLACK_S, (elapsed, budget)
        message = str(info.value)
        assert hung_server.address in message  # names the endpoint
        assert "FLYWHEEL_S3_READ_TIMEOUT_SECONDS" in message and "2 attempt(s)" in message
        assert len(hung_server.accepted) - accepted_before == 2  # one connection per attempt, then gave up


# --- MLflow ----------------------------------------------------------------------------------------


def test_mlflow_call_to_a_hung_server_fails_within_its_budget(
    hung_server: HungServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.exceptions import MlflowException
    from mlflywheel.registry import MLFLOW_HTTP_ENV, configure_mlflow, mlflow_call_budget_seconds

    for variable in MLFLOW_HTTP_ENV:  # configure_mlflow sets them: restored after the test
        monkeypatch.setenv(variable, "")
    settings = settings_for(
        tmp_path,
        mlflow_tracking_uri=f"http://{hung_server.address}",
        mlflow_http_timeout_seconds=1,
        mlflow_http_max_retries=1,
        mlflow_http_backoff_factor=0,
    )
    client = configure_mlflow(settings)
    budget = mlflow_call_budget_seconds(settings)
    started = time.monotonic()
    with pytest.raises(MlflowException) as info:
        client.get_experiment_by_name("flywheel")
    elapsed = time.monotonic() - started
    assert 1.0 <= elapsed <= budget + SLACK_S, (elapsed, budget)
    assert f"http://{hung_server.address}/api/" in str(info.value)  # names the endpoint
    assert len(hung_server.accepted) == 2  # the first try and one retry


@pytest.mark.slow  # 3-6 s: waits out the budget against a hung server
def test_mlflow_artifact_upload_to_a_hung_s3_endpoint_fails_within_its_budget(
    hung_server: HungServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Runs write artifacts straight to S3 (the compose stack: FLYWHEEL_MLFLOW_ARTIFACT_ROOT=s3://...)
    with MLflow's own S3 client, which MLflow builds with botocore's defaults (60 s to connect, 60 s
    to read, 3 attempts). configure_mlflow bounds it from the FLYWHEEL_S3_* settings."""
    from mlflywheel import registry
    from mlflywheel.lake.s3 import S3Lake

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    for variable in registry.MLFLOW_HTTP_ENV:
        monkeypatch.setenv(variable, "")
    endpoint = f"http://{hung_server.address}"
    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", endpoint)  # how MLflow's client finds the store
    settings = settings_for(
        tmp_path,
        mlflow_tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        mlflow_artifact_root="s3://flywheel-mlflow/experiments",
        s3_endpoint_url=endpoint,
        s3_connect_timeout_seconds=1.0,
        s3_read_timeout_seconds=1.0,
        s3_max_attempts=2,
    )
    budget = S3Lake("b", endpoint_url=endpoint, settings=settings, client=object()).call_budget_seconds()
    # The tracking store (SQLite) set up first: only the artifact upload meets the hung endpoint.
    registry.ensure_experiment(settings, "flywheel-hung-artifacts", own_folder=True)
    assert not hung_server.accepted

    def log_report() -> object:
        return registry.log_report_run(
            settings, experiment="flywheel-hung-artifacts", tags={}, params={}, metrics={},
            texts={"report.md": "# hung"},
        )  # fmt: skip

    error, elapsed, ended = _run_bounded(log_report, budget + 30)
    assert ended, "MLflow's S3 artifact client waited on a hung endpoint with botocore's defaults"
    assert isinstance(error, registry.ArtifactStoreUnavailable), repr(error)
    assert 1.0 <= elapsed <= budget + SLACK_S, (elapsed, budget)
    message = str(error)
    assert f"MLflow's artifact store at endpoint {endpoint}" in message  # names the endpoint
    assert "FLYWHEEL_S3_READ_TIMEOUT_SECONDS" in message and "2 attempt(s)" in message
    assert len(hung_server.accepted) == 2  # one connection per attempt, then gave up


def test_mlflow_proxied_artifact_upload_to_a_hung_server_fails_within_its_budget(
    hung_server: HungServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Behind the server's artifact proxy (``mlflow-artifacts:``, the artifact root the server
    chooses) an upload is an MLflow REST call to the tracking server: the FLYWHEEL_MLFLOW_HTTP_*
    bounds that configure_mlflow sets hold for MLflow's artifact client too."""
    from mlflow.exceptions import MlflowException
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
    from mlflywheel import registry

    for variable in registry.MLFLOW_HTTP_ENV:
        monkeypatch.setenv(variable, "")
    settings = settings_for(
        tmp_path,
        mlflow_tracking_uri=f"http://{hung_server.address}",
        mlflow_http_timeout_seconds=1,
        mlflow_http_max_retries=1,
        mlflow_http_backoff_factor=0,
    )
    registry.configure_mlflow(settings)
    repository = get_artifact_repository("mlflow-artifacts:/1/run/artifacts")  # resolved via the tracking URI
    report = tmp_path / "report.md"
    report.write_text("# hung")
    budget = registry.mlflow_call_budget_seconds(settings)
    error, elapsed, ended = _run_bounded(lambda: repository.log_artifact(str(report)), budget + 30)
    assert ended, "the proxied upload waited on a hung server"
    assert isinstance(error, MlflowException), repr(error)
    assert 1.0 <= elapsed <= budget + SLACK_S, (elapsed, budget)
    assert f"http://{hung_server.address}/api/2.0/mlflow-artifacts/artifacts/" in str(error)  # the endpoint
    assert len(hung_server.accepted) == 2  # the first try and one retry


# --- PostgreSQL ------------------------------------------------------------------------------------


def test_postgres_connect_to_a_hung_server_fails_within_its_budget(
    hung_server: HungServer, tmp_path: Path
) -> None:
    import psycopg2
    from mlflywheel.postgres import connect

    settings = settings_for(tmp_path, postgres_connect_timeout_seconds=2)
    uri = f"postgresql://flywheel:{SECRET}@{hung_server.address}/ledger"
    started = time.monotonic()
    with pytest.raises(psycopg2.OperationalError) as info:
        connect(uri, settings=settings)
    elapsed = time.monotonic() - started
    assert 1.5 <= elapsed <= 2 + SLACK_S, elapsed
    message = str(info.value)
    assert f"postgresql://flywheel:***@{hung_server.address}/ledger" in message
    assert "FLYWHEEL_POSTGRES_CONNECT_TIMEOUT_SECONDS" in message and SECRET not in message


def test_postgres_timeouts_come_from_the_environment_by_default(
    hung_server: HungServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import psycopg2
    from mlflywheel.postgres import connect

    monkeypatch.setenv("FLYWHEEL_POSTGRES_CONNECT_TIMEOUT_SECONDS", "2")
    started = time.monotonic()
    with pytest.raises(psycopg2.OperationalError, match="waiting at most 2 s"):
        connect(f"postgresql://flywheel@{hung_server.address}/source")
    assert time.monotonic() - started <= 2 + SLACK_S


# --- PostgreSQL mid-query: a proxy that forwards the handshake, then freezes ------------------------


@dataclass
class FreezingProxy:
    """Loopback TCP proxy to the real PostgreSQL server. Once the client sends bytes containing
    ``marker`` (a query), and ``reply_bytes`` more bytes of the server's answer have been forwarded
    (0: none, the freeze comes before the first row), nothing more is forwarded either way, on any
    connection, new ones included, and every socket stays open: the client's kernel still gets its
    data and keepalives acknowledged, as from a wedged server or a stuck middlebox, so neither TCP
    keepalives nor ``tcp_user_timeout`` end the wait."""

    host: str
    port: int
    marker: bytes = b""
    reply_bytes: int = 0
    armed: threading.Event = field(default_factory=threading.Event)
    frozen: threading.Event = field(default_factory=threading.Event)
    forwarded_after_marker: int = 0
    sockets: list[socket.socket] = field(default_factory=list)

    def uri(self, database_uri: str, password: str = SECRET) -> str:
        from urllib.parse import urlsplit, urlunsplit

        parts = urlsplit(database_uri)
        user = parts.username or "postgres"
        # trust auth never asks for the password: it is here to be redacted from messages
        return urlunsplit(parts._replace(netloc=f"{user}:{password}@{self.host}:{self.port}"))


def _pump(source: socket.socket, target: socket.socket, proxy: FreezingProxy, stop: threading.Event,
          watch: bool) -> None:  # fmt: skip
    source.settimeout(0.1)
    while not stop.is_set():
        if proxy.frozen.is_set():
            stop.wait(0.1)  # hold the connection open, forward nothing
            continue
        try:
            data = source.recv(65536)
        except TimeoutError:
            continue
        except OSError:
            return
        if not data:
            return
        if watch and proxy.marker and proxy.marker in data:
            proxy.armed.set()  # the query reaches the server; its answer stops after reply_bytes
            if proxy.reply_bytes == 0:
                proxy.frozen.set()
        if proxy.frozen.is_set() and not watch:
            continue
        if proxy.armed.is_set() and not watch:
            data = data[: proxy.reply_bytes - proxy.forwarded_after_marker]
            proxy.forwarded_after_marker += len(data)
        try:
            target.sendall(data)
        except OSError:
            return
        if proxy.armed.is_set() and proxy.forwarded_after_marker >= proxy.reply_bytes:
            proxy.frozen.set()


@pytest.fixture()
def freezing_proxy() -> Iterator[FreezingProxy]:
    from urllib.parse import urlsplit

    sys.path.insert(0, str(Path(__file__).parent / "integration"))
    try:
        from postgres_fixtures import ADMIN_URI
    finally:
        sys.path.pop(0)
    upstream = urlsplit(ADMIN_URI)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.1)
    proxy = FreezingProxy("127.0.0.1", listener.getsockname()[1])
    stop = threading.Event()
    threads: list[threading.Thread] = []

    def accept_forever() -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            server = socket.create_connection((upstream.hostname or "127.0.0.1", upstream.port or 5432))
            proxy.sockets += [client, server]
            for source, target, watch in ((client, server, True), (server, client, False)):
                thread = threading.Thread(target=_pump, args=(source, target, proxy, stop, watch), daemon=True)
                thread.start()
                threads.append(thread)

    acceptor = threading.Thread(target=accept_forever, daemon=True)
    acceptor.start()
    try:
        yield proxy
    finally:
        stop.set()
        acceptor.join(timeout=5)
        for thread in threads:
            thread.join(timeout=5)
        for sock in proxy.sockets:  # a client still blocked (no bound) gets EOF here and ends
            sock.close()
        listener.close()


@pytest.fixture()
def pg_database() -> Iterator[str]:
    sys.path.insert(0, str(Path(__file__).parent / "integration"))
    try:
        from postgres_fixtures import temporary_database
    finally:
        sys.path.pop(0)
    with temporary_database("flywheel_timeouts") as uri:
        yield uri


def _run_bounded(call: Callable[[], object], wait_s: float) -> tuple[BaseException | None, float, bool]:
    """Run ``call`` in a thread; (its exception, seconds it took, whether it ended within ``wait_s``).

    A call with no bound of its own would block forever: the test must fail, not hang."""
    outcome: dict[str, object] = {}

    def target() -> None:
        started = time.monotonic()
        try:
            call()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome["error"] = exc
        outcome["elapsed"] = time.monotonic() - started

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout=wait_s)
    ended = not thread.is_alive()
    return outcome.get("error"), float(outcome.get("elapsed", wait_s)), ended  # type: ignore[arg-type]


@pytest.mark.slow  # 3-6 s: waits out the budget against a hung server
def test_postgres_ledger_query_frozen_mid_query_fails_within_its_budget(
    freezing_proxy: FreezingProxy, pg_database: str, tmp_path: Path
) -> None:
    import psycopg2
    from mlflywheel.ledger_postgres import PostgresLedgerSink
    from mlflywheel.postgres import query_budget_seconds

    settings = settings_for(tmp_path, postgres_connect_timeout_seconds=2, postgres_statement_timeout_seconds=2)
    table = "ledger_frozen_mid_query"
    PostgresLedgerSink(pg_database, table, settings=settings).ensure_table()  # straight, not via the proxy
    freezing_proxy.marker = table.encode()
    sink = PostgresLedgerSink(freezing_proxy.uri(pg_database), table, settings=settings)
    budget = query_budget_seconds(settings)
    assert budget == 4
    error, elapsed, ended = _run_bounded(lambda: sink.read("transactions", dt.date(2026, 11, 5)), budget + 20)
    assert freezing_proxy.frozen.is_set()  # it froze mid-query, after a complete handshake
    assert ended, "the read blocked on a frozen connection with no bound"
    assert isinstance(error, psycopg2.OperationalError), error
    assert 2 <= elapsed <= budget + SLACK_S, elapsed
    message = str(error)
    assert f"postgres:***@{freezing_proxy.host}:{freezing_proxy.port}" in message and SECRET not in message
    assert "no answer within 4 s" in message and "FLYWHEEL_POSTGRES_STATEMENT_TIMEOUT_SECONDS" in message


@pytest.mark.slow  # 3-6 s: waits out the budget against a hung server
def test_postgres_source_extract_frozen_mid_copy_fails_within_its_budget(
    freezing_proxy: FreezingProxy, pg_database: str, tmp_path: Path
) -> None:
    import psycopg2
    from mlflywheel.datasets import get_spec
    from mlflywheel.datasets.upstreams.transactions import generate_day
    from mlflywheel.lake import LocalLake, keys
    from mlflywheel.sources.postgres import extract_partition_to_landing, load_frame_to_table

    day = dt.date(2026, 11, 5)
    spec = get_spec("transactions")
    settings = settings_for(tmp_path, postgres_connect_timeout_seconds=2, postgres_extract_timeout_seconds=3)
    load_frame_to_table(pg_database, "source_rows", spec, generate_day(day, 50, seed=3), settings=settings)
    freezing_proxy.marker = b"COPY"
    lake = LocalLake(tmp_path / "lake")
    uri = freezing_proxy.uri(pg_database)
    def extract() -> object:
        return extract_partition_to_landing(lake, spec, day, postgres_uri=uri, table="source_rows", settings=settings)

    error, elapsed, ended = _run_bounded(extract, 5 + 20)
    assert freezing_proxy.frozen.is_set() and ended, "the extract blocked on a frozen connection"
    assert isinstance(error, psycopg2.OperationalError), error
    assert 3 <= elapsed <= 5 + SLACK_S, elapsed
    assert "no answer within 5 s" in str(error) and "FLYWHEEL_POSTGRES_EXTRACT_TIMEOUT_SECONDS" in str(error)
    assert SECRET not in str(error) and f"{freezing_proxy.host}:{freezing_proxy.port}" in str(error)
    assert not lake.exists(keys.landing_marker_key(spec.name, day))  # nothing landed


@pytest.mark.slow  # 3-6 s: waits out the budget against a hung server
@pytest.mark.parametrize("reply_bytes", [0, 3000], ids=["before-the-first-row", "mid-copy"])
def test_postgres_source_extract_on_a_hung_server_is_cut_off_by_the_liveness_probe(
    freezing_proxy: FreezingProxy, pg_database: str, tmp_path: Path, reply_bytes: int
) -> None:
    """The extract's own limit stays 600 s (a scan may take minutes before its first row); a server
    that goes silent and does not answer a probe on a new connection is cut off within the liveness
    budget, whether it froze before the first row or in the middle of the rows."""
    import psycopg2
    from mlflywheel.datasets import get_spec
    from mlflywheel.datasets.upstreams.transactions import generate_day
    from mlflywheel.lake import LocalLake, keys
    from mlflywheel.postgres import liveness_budget_seconds, query_budget_seconds
    from mlflywheel.sources.postgres import extract_partition_to_landing, load_frame_to_table

    day = dt.date(2026, 11, 5)
    spec = get_spec("transactions")
    settings = settings_for(
        tmp_path, postgres_connect_timeout_seconds=2, postgres_liveness_interval_seconds=1,
        postgres_liveness_timeout_seconds=2,
    )  # fmt: skip
    assert query_budget_seconds(settings, settings.postgres_extract_timeout_seconds) == 602
    budget = liveness_budget_seconds(settings)
    assert budget == 3
    load_frame_to_table(pg_database, "source_rows", spec, generate_day(day, 400, seed=3), settings=settings)
    freezing_proxy.marker, freezing_proxy.reply_bytes = b"COPY", reply_bytes
    lake = LocalLake(tmp_path / "lake")
    uri = freezing_proxy.uri(pg_database)

    def extract() -> object:
        return extract_partition_to_landing(lake, spec, day, postgres_uri=uri, table="source_rows", settings=settings)

    error, elapsed, ended = _run_bounded(extract, budget + 30)
    assert freezing_proxy.frozen.is_set() and freezing_proxy.forwarded_after_marker == reply_bytes
    assert ended, "the extract waited on a hung server for its whole 600 s limit"
    assert isinstance(error, psycopg2.OperationalError), error
    assert elapsed <= budget + SLACK_S, elapsed
    message = str(error)
    assert "the server stopped answering" in message and "liveness probe" in message
    assert "FLYWHEEL_POSTGRES_LIVENESS_TIMEOUT_SECONDS" in message
    assert f"postgres:***@{freezing_proxy.host}:{freezing_proxy.port}" in message and SECRET not in message
    assert not lake.exists(keys.landing_marker_key(spec.name, day))  # nothing landed


@pytest.mark.slow  # 3-6 s: waits out the budget against a hung server
def test_postgres_source_extract_slow_but_alive_is_not_cut_off(
    pg_database: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A scan that sends nothing for longer than the liveness interval (here a view that sleeps 4 s
    before its first row) is probed, found active, and left to finish."""
    import logging

    import psycopg2
    from mlflywheel.datasets import get_spec
    from mlflywheel.datasets.upstreams.transactions import generate_day
    from mlflywheel.lake import LocalLake, keys
    from mlflywheel.sources.postgres import extract_partition_to_landing, load_frame_to_table

    day = dt.date(2026, 11, 5)
    spec = get_spec("transactions")
    settings = settings_for(
        tmp_path, postgres_connect_timeout_seconds=2, postgres_liveness_interval_seconds=1,
        postgres_liveness_timeout_seconds=2,
    )  # fmt: skip
    load_frame_to_table(pg_database, "source_rows", spec, generate_day(day, 50, seed=3), settings=settings)
    with psycopg2.connect(pg_database) as conn, conn.cursor() as cursor:
        # An uncorrelated sub-select runs once, before the first row: 4 s of silence on the wire.
        cursor.execute("CREATE VIEW slow_rows AS SELECT * FROM source_rows WHERE (SELECT pg_sleep(4))::text = ''")
    conn.close()
    lake = LocalLake(tmp_path / "lake")
    caplog.set_level(logging.INFO, logger="mlflywheel.postgres")
    result = extract_partition_to_landing(lake, spec, day, postgres_uri=pg_database, table="slow_rows",
                                          settings=settings)  # fmt: skip
    assert result["rows"] == 50 and lake.exists(keys.landing_marker_key(spec.name, day))
    probes = [r.getMessage() for r in caplog.records if "liveness probe" in r.getMessage()]
    assert any("active (waiting on Timeout/PgSleep)" in m for m in probes), probes


@pytest.mark.slow  # 3-6 s: waits out the budget against a hung server
def test_any_long_statement_under_liveness_is_cut_off_when_the_server_hangs(
    freezing_proxy: FreezingProxy, pg_database: str, tmp_path: Path
) -> None:
    """The watchdog is a mechanism of ``transaction``, not of the extract: a plain query (no rows
    streaming, nothing to report progress) on a server that freezes is cut off the same way."""
    import psycopg2
    from mlflywheel.postgres import liveness_budget_seconds, transaction

    settings = settings_for(
        tmp_path, postgres_connect_timeout_seconds=2, postgres_statement_timeout_seconds=600,
        postgres_liveness_interval_seconds=1, postgres_liveness_timeout_seconds=2,
    )  # fmt: skip
    freezing_proxy.marker = b"long-statement"
    uri = freezing_proxy.uri(pg_database)

    def long_statement() -> None:
        with transaction(uri, settings=settings, liveness=True) as cursor:
            cursor.execute("SELECT 1 /* long-statement */")

    budget = liveness_budget_seconds(settings)
    error, elapsed, ended = _run_bounded(long_statement, budget + 30)
    assert freezing_proxy.frozen.is_set() and ended
    assert isinstance(error, psycopg2.OperationalError), error
    assert elapsed <= budget + SLACK_S, elapsed
    assert "liveness probe" in str(error) and "FLYWHEEL_POSTGRES_LIVENESS_TIMEOUT_SECONDS" in str(error)


def test_postgres_statement_past_its_timeout_fails_clearly(pg_database: str, tmp_path: Path) -> None:
    import psycopg2
    import psycopg2.errors
    from mlflywheel.postgres import transaction

    settings = settings_for(tmp_path, postgres_statement_timeout_seconds=1)
    uri = pg_database.replace("postgres@", f"postgres:{SECRET}@", 1)
    started = time.monotonic()
    with pytest.raises(psycopg2.OperationalError) as info, transaction(uri, settings=settings) as cursor:
        cursor.execute("SELECT pg_sleep(30)")
    assert time.monotonic() - started < 1 + SLACK_S  # the server's own timeout, not the client's cut
    message = str(info.value)
    assert "statement timeout" in message and "1 s" in message
    assert "FLYWHEEL_POSTGRES_STATEMENT_TIMEOUT_SECONDS" in message
    assert "postgres:***@127.0.0.1" in message and SECRET not in message
    assert isinstance(info.value.__cause__, psycopg2.errors.QueryCanceled)


# --- the Airflow REST API --------------------------------------------------------------------------


@pytest.mark.slow  # 3-6 s: waits out the budget against a hung server
def test_airflow_api_call_to_a_hung_server_fails_within_its_budget(hung_server: HungServer) -> None:
    from mlflywheel.orchestration.airflow_api import AirflowApi, AirflowApiError

    api = AirflowApi(
        f"http://{hung_server.address}", "admin", SECRET, timeout=1.0, connect_timeout=1.0, retries=10,
        backoff=0.2, budget=3.0,
    )  # fmt: skip
    started = time.monotonic()
    with pytest.raises(AirflowApiError) as info:
        api.health()
    elapsed = time.monotonic() - started
    assert elapsed <= 3.0 + SLACK_S, elapsed  # the budget stops the retries long before 10
    assert f"http://{hung_server.address}/api/v2/monitor/health" in str(info.value)
    assert "budget 3 s" in str(info.value) and SECRET not in str(info.value)


@pytest.mark.slow  # 3-6 s: waits out the budget against a hung server
def test_postgres_pushdown_on_a_server_that_hangs_during_great_expectations_is_cut_off(
    freezing_proxy: FreezingProxy, pg_database: str, tmp_path: Path
) -> None:
    """Validation inside PostgreSQL runs Great Expectations' statements on connections of its own:
    they carry the same liveness probe, so a server that hangs while GX waits is found out within
    seconds, not at the extract's 600 s limit, and nothing is published."""
    import psycopg2
    from mlflywheel.datasets import get_spec
    from mlflywheel.datasets.upstreams.transactions import generate_day
    from mlflywheel.lake import LocalLake
    from mlflywheel.postgres import liveness_budget_seconds
    from mlflywheel.sources.postgres import load_frame_to_table
    from mlflywheel.validation.pushdown import validate_in_postgres

    day = dt.date(2026, 11, 5)
    spec = get_spec("transactions")
    settings = settings_for(
        tmp_path, postgres_connect_timeout_seconds=2, postgres_liveness_interval_seconds=1,
        postgres_liveness_timeout_seconds=2,
    )  # fmt: skip
    budget = liveness_budget_seconds(settings)
    load_frame_to_table(pg_database, "source_rows", spec, generate_day(day, 200, seed=3), settings=settings)
    freezing_proxy.marker = b"SET TRANSACTION SNAPSHOT"  # the first statement of each of GX's transactions
    lake = LocalLake(tmp_path / "lake")
    uri = freezing_proxy.uri(pg_database)

    def pushdown() -> object:
        return validate_in_postgres(
            lake, spec, day, postgres_uri=uri, table="source_rows", run_id="r", settings=settings
        )

    error, elapsed, ended = _run_bounded(pushdown, 2 * budget + 40)
    assert freezing_proxy.frozen.is_set()
    assert ended, "validation in PostgreSQL waited on a hung server for the extract's whole 600 s limit"
    assert isinstance(error, psycopg2.OperationalError), repr(error)
    # GX's connection, then the extract's own transaction (its rollback), each within the liveness budget
    assert elapsed <= 2 * budget + 2 * SLACK_S, elapsed
    message = str(error)
    assert "the server stopped answering" in message and "FLYWHEEL_POSTGRES_LIVENESS_TIMEOUT_SECONDS" in message
    assert f"postgres:***@{freezing_proxy.host}:{freezing_proxy.port}" in message and SECRET not in message
    assert lake.commit_record(spec.name, day) is None  # nothing published
