"""An MLflow server behind MLflow's basic-auth app, for the production-like stack and the tests.

The same accounts as the compose stack (:mod:`mlflywheel.mlflow_accounts`): an admin that
bootstraps the server, the service account the loop writes with, a read-only viewer; their
passwords are generated per stack. The auth app's user store is SQLite beside the server's files.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mlflywheel.mlflow_accounts import Account, ensure_accounts, write_server_config

AUTH_CONFIG_FILE = "basic_auth.ini"
AUTH_DATABASE_FILE = "basic_auth.db"
# One server worker here: a password change reaches it at once. The cache spares a 2-core machine
# a slow password hash on each of the loop's many MLflow requests.
LOGIN_CACHE_SECONDS = 60


@dataclass(frozen=True)
class MlflowBasicAuth:
    """The logins of one basic-auth MLflow server; :meth:`generated` makes fresh ones."""

    admin: Account
    service: Account
    viewer: Account
    flask_secret_key: str = field(repr=False)  # the auth app's CSRF key (MLflow requires one)

    @classmethod
    def generated(cls) -> MlflowBasicAuth:
        return cls(
            admin=Account("admin", secrets.token_hex(16)),
            service=Account("flywheel", secrets.token_hex(16)),
            viewer=Account("viewer", secrets.token_hex(16)),
            flask_secret_key=secrets.token_hex(32),
        )

    def service_settings(self) -> dict[str, str]:
        """Settings overrides that make Flywheel call MLflow as the service account."""
        return {"mlflow_tracking_username": self.service.username,
                "mlflow_tracking_password": self.service.password}  # fmt: skip

    def server_env(self, folder: Path) -> dict[str, str]:
        """Write the auth app's config under ``folder``; the variables the server process needs
        (the admin's password reaches only the server, never Airflow's processes)."""
        config = write_server_config(folder / AUTH_CONFIG_FILE, f"sqlite:///{folder / AUTH_DATABASE_FILE}",
                                     self.admin.username, login_cache_seconds=LOGIN_CACHE_SECONDS)  # fmt: skip
        return {
            "MLFLOW_AUTH_CONFIG_PATH": str(config),
            "MLFLOW_AUTH_ADMIN_USERNAME": self.admin.username,
            "MLFLOW_AUTH_ADMIN_PASSWORD": self.admin.password,
            "MLFLOW_FLASK_SERVER_SECRET_KEY": self.flask_secret_key,
        }

    def ensure_accounts(self, url: str, *, model_name: str, experiments: Sequence[str]) -> dict[str, str]:
        return ensure_accounts(url, self.admin, self.service, [self.viewer],
                               model_name=model_name, experiments=experiments)  # fmt: skip


def server_command(*, port: int, backend_store_uri: str, artifacts_destination: str, basic_auth: bool,
                   workers: int = 1) -> list[str]:  # fmt: skip
    """``mlflow server`` on 127.0.0.1:``port``, serving artifacts, with the basic-auth app when asked."""
    command = [
        str(Path(sys.executable).parent / "mlflow"), "server",
        "--backend-store-uri", backend_store_uri,
        "--artifacts-destination", artifacts_destination,
        "--serve-artifacts",
        "--host", "127.0.0.1", "--port", str(port),
        "--allowed-hosts", f"127.0.0.1:{port},localhost:{port}",
        "--workers", str(workers),
    ]  # fmt: skip
    return command + (["--app-name", "basic-auth"] if basic_auth else [])


def wait_until_healthy(url: str, process: subprocess.Popen, *, timeout: float, log_file: Path) -> None:
    """Wait for ``/health`` (which the auth app leaves open); fail with the log's tail if the process exits."""
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log_file.read_text(errors="replace")[-3000:] if log_file.exists() else ""
            raise RuntimeError(f"mlflow server exited with {process.returncode}; {log_file}:\n{tail}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{url}/health", timeout=5).status_code == 200:
                return
        time.sleep(1)
    raise RuntimeError(f"MLflow did not answer at {url}/health within {timeout:.0f}s")


@contextlib.contextmanager
def running_basic_auth_server(folder: Path, auth: MlflowBasicAuth, *, port: int, model_name: str,
                              experiments: Sequence[str], timeout: float = 300) -> Iterator[str]:  # fmt: skip
    """A basic-auth MLflow server on SQLite under ``folder`` with ``auth``'s accounts; yields its URL.

    Stopped (its whole process group) on exit.
    """
    folder.mkdir(parents=True, exist_ok=True)
    url = f"http://127.0.0.1:{port}"
    command = server_command(port=port, backend_store_uri=f"sqlite:///{folder / 'mlflow.db'}",
                             artifacts_destination=str(folder / "artifacts"), basic_auth=True)  # fmt: skip
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", **auth.server_env(folder)}
    log_file = folder / "mlflow-server.log"
    with log_file.open("ab") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=folder,
                                   start_new_session=True)  # fmt: skip
    try:
        wait_until_healthy(url, process, timeout=timeout, log_file=log_file)
        auth.ensure_accounts(url, model_name=model_name, experiments=experiments)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
