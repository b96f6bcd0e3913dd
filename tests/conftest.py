"""Test-wide settings and servers.

Offline, no telemetry, Airflow pointed at a throwaway home; and a real S3-compatible HTTP server
on loopback (moto, in a thread for the whole session) with a fresh bucket per test. Other tests
(the lake contract, MLflow artifacts on S3, the production-backends loop) use these fixture
names: keep them stable.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# Before anything imports mlflow, GX, Airflow or transformers.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("SCARF_ANALYTICS", "false")
os.environ.setdefault("AIRFLOW__USAGE_DATA_COLLECTION__ENABLED", "False")
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="flywheel-airflow-test-"))
os.environ.setdefault("FLYWHEEL_DATA_DIR", tempfile.mkdtemp(prefix="flywheel-test-data-"))

PROJECT_ROOT = Path(__file__).resolve().parents[1]


# Fake credentials for the moto server; real ones in the environment must never be used here.
_TEST_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
# Variables that would mix a real identity or a proxy into calls to the loopback server.
_CLEARED_AWS_ENV = ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL",
                    "AWS_ENDPOINT_URL_S3")


def _no_proxy_value(current: str | None) -> str:
    hosts = [h for h in (current or "").split(",") if h]
    return ",".join(hosts + [h for h in ("127.0.0.1", "localhost") if h not in hosts])


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """Endpoint URL (``http://127.0.0.1:PORT``) of a moto S3 server for the test session."""
    from moto.server import ThreadedMotoServer

    saved = {
        name: os.environ.get(name)
        for name in (*_TEST_AWS_ENV, *_CLEARED_AWS_ENV, "NO_PROXY", "no_proxy")
    }
    os.environ.update(_TEST_AWS_ENV)
    for name in _CLEARED_AWS_ENV:
        os.environ.pop(name, None)
    # A proxy from the environment must not intercept loopback calls.
    os.environ["NO_PROXY"] = _no_proxy_value(saved["NO_PROXY"])
    os.environ["no_proxy"] = _no_proxy_value(saved["no_proxy"])

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)  # port 0: any free port
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture()
def s3_client(s3_server: str) -> Any:
    """A plain boto3 S3 client for the test server (for setup and for looking behind a lake)."""
    import boto3

    return boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")


@pytest.fixture()
def s3_bucket(s3_client: Any) -> str:
    """A fresh, empty bucket on the test server (unique name per test)."""
    name = f"flywheel-test-{uuid.uuid4().hex[:16]}"
    s3_client.create_bucket(Bucket=name)
    return name


@pytest.fixture()
def s3_lake(s3_server: str, s3_bucket: str) -> Any:
    """A lake at ``s3://<fresh bucket>/lake`` on the test server, opened like production does."""
    from mlflywheel.lake import open_lake

    return open_lake(f"s3://{s3_bucket}/lake", s3_endpoint_url=s3_server)
