"""Bounded outages (issue 9, item 11): every outside call fails within its budget when the server hangs.

The server is real: a socket on loopback that accepts every connection and never answers a byte
(what a wedged process or a stuck proxy looks like from the client). No client library is mocked:
boto3, MLflow's REST client, libpq and requests each run their own timeout and retry code.
Budgets are made small through the settings so the tests stay quick; the defaults' budgets are
checked by arithmetic to stay under a minute.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
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
    assert AirflowApi("http://127.0.0.1:9", "u", "p").budget < 60


# --- S3 --------------------------------------------------------------------------------------------


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


# --- the Airflow REST API --------------------------------------------------------------------------


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
