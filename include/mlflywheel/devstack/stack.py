"""The embedded stack: Airflow (SQLite + LocalExecutor) and an MLflow server.

Airflow's components (api-server, scheduler, dag-processor, triggerer) run as processes of
their own, each under :mod:`.supervise`, which starts it again when it exits (what
``airflow standalone`` does not do). The same class runs the production-like variant used by
the integration tests: Airflow's metadata on PostgreSQL, MLflow's backend store on PostgreSQL
with artifacts on S3, the lake on S3.

Started and stopped as process groups so that nothing is left behind. Used by ``make demo``,
``make up`` / ``make down`` and the end-to-end test. Everything lives under one home folder:

  <home>/airflow/   AIRFLOW_HOME (SQLite metadata DB, logs, generated config)
  <home>/mlflow/    MLflow's SQLite store and artifacts
  <home>/lake/      the lake
  <home>/logs/      stdout/stderr of the processes this module starts

Authentication: Airflow's simple auth manager (one ``admin``, the laptop default), or with
``auth_manager="fab"`` the FAB auth manager of the compose stack: Flywheel's roles applied at start
(:mod:`mlflywheel.orchestration.access`), the admin, the service account whose connection
drift_check uses, and ``users``; approval requests assigned to the ``approver`` role.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from mlflywheel.devstack import celery_executor
from mlflywheel.devstack.mlflow_auth import MlflowBasicAuth, server_command
from mlflywheel.orchestration import access
from mlflywheel.orchestration.airflow_api import AirflowApi, AirflowApiError
from mlflywheel.settings import Settings

log = logging.getLogger("mlflywheel.stack")

PROJECT_ROOT = Path(__file__).resolve().parents[3]
ADMIN_USER = "admin"
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
FAB_AUTH_MANAGER = "mlflywheel.orchestration.auth_manager.FlywheelFabAuthManager"

# Offline and quiet: no telemetry, no hub downloads, no usage reporting.
OFFLINE_ENV = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "GX_ANALYTICS_ENABLED": "false",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "DO_NOT_TRACK": "1",
    "SCARF_ANALYTICS": "false",
    "AIRFLOW__USAGE_DATA_COLLECTION__ENABLED": "False",
    "TQDM_DISABLE": "1",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}


class StackError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class EmbeddedStack:
    home: Path
    api_port: int = 8080
    mlflow_port: int = 5000
    password: str = "admin"
    extra_env: dict[str, str] = field(default_factory=dict)
    airflow_db_uri: str = ""  # empty: SQLite under home; else this database
    mlflow_backend_uri: str = ""  # empty: SQLite under home
    mlflow_artifacts_destination: str = ""  # empty: a folder under home; or s3://bucket/prefix
    lake_uri: str = ""  # empty: a folder under home
    # Empty: the LocalExecutor. A redis:// URL: the Celery executor with ``celery_workers``
    # (needs ``airflow_db_uri``, which also holds Celery's results).
    celery_broker_url: str = ""
    celery_workers: tuple[celery_executor.CeleryWorker, ...] = (celery_executor.CeleryWorker("worker"),)
    mlflow_auth: MlflowBasicAuth | None = None  # None: MLflow without authentication (the embedded default)
    auth_manager: str = "simple"  # simple | fab (Flywheel's roles; users below, the admin and the service)
    users: list[access.UserSpec] = field(default_factory=list)  # more FAB accounts (people)
    service_password: str = field(default_factory=lambda: secrets.token_hex(16), repr=False)
    components: tuple[str, ...] = COMPONENTS  # Airflow components to run
    with_mlflow: bool = True
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.auth_manager not in ("simple", "fab"):
            raise ValueError(f"auth_manager must be simple or fab, got {self.auth_manager!r}")

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def mlflow_url(self) -> str:
        return f"http://127.0.0.1:{self.mlflow_port}"

    @property
    def celery_key_prefix(self) -> str:
        return f"flywheel-{self.api_port}:"

    @property
    def pid_file(self) -> Path:
        return self.home / "stack.json"

    def settings(self) -> Settings:
        """The settings the DAGs see: the embedded default, rooted in ``home``."""
        env = {k: v for k, v in os.environ.items() if k.startswith("FLYWHEEL_")}
        env.update({k: v for k, v in self.extra_env.items() if k.startswith("FLYWHEEL_")})
        # Without an MLflow server (a stack of the API server alone) the settings' own default
        # applies: a SQLite store under home.
        mlflow = {"mlflow_tracking_uri": self.mlflow_url, "mlflow_artifact_root": "mlflow-artifacts:/"}
        return Settings.from_env(
            env,
            data_dir=self.home,
            lake_uri=self.lake_uri or (self.home / "lake").as_uri(),
            airflow_api_url=self.api_url,
            **(mlflow if self.with_mlflow else {}),
            # the loop writes as the service account
            **(self.mlflow_auth.service_settings() if self.mlflow_auth and self.with_mlflow else {}),
        )

    def environment(self) -> dict[str, str]:
        settings = self.settings()
        airflow_home = self.home / "airflow"
        # drift_check's REST client: on FAB the service account, never a person's login
        login, password = (access.DEFAULT_SERVICE_USER, self.service_password) if self.fab else (ADMIN_USER, self.password)
        conn = {"conn_type": "http", "host": "127.0.0.1", "port": self.api_port, "login": login,
                "password": password, "schema": "http"}  # fmt: skip
        # The caller's own Airflow settings (a test run's unit-test mode, another AIRFLOW_HOME)
        # must not leak into the stack: it is configured from scratch here.
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        env = {
            **inherited,
            **OFFLINE_ENV,
            **settings.to_env(),
            "AIRFLOW_HOME": str(airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api_url}/execution/",
            "AIRFLOW__API__PORT": str(self.api_port),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__BASE_URL": self.api_url,
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "20",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "30",
            "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "1200",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "AIRFLOW_CONN_" + settings.airflow_conn_id.upper(): json.dumps(conn),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT / "include"), os.environ.get("PYTHONPATH")])),
            "PYTHONUNBUFFERED": "1",
            "AIRFLOW__API_AUTH__JWT_SECRET": "flywheel-local-" + str(self.api_port),  # shared by components
            # Airflow starts its task processes as `airflow ...`: the venv's bin must come first
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        }
        if self.airflow_db_uri:
            env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = self.airflow_db_uri
        else:
            # SQLite: wait up to a minute for a lock instead of failing after the driver's 5 s
            # (Airflow answers 503 to a backfill request that meets one).
            env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS"] = "mlflywheel.devstack.sqlite.CONNECT_ARGS"
        if self.celery_broker_url:
            if not self.airflow_db_uri:
                raise StackError("the Celery executor needs a metadata database server (airflow_db_uri)")
            env.update(celery_executor.executor_env(self.celery_broker_url, self.airflow_db_uri, self.celery_key_prefix))
        if self.fab:
            env["AIRFLOW__CORE__AUTH_MANAGER"] = FAB_AUTH_MANAGER
            env["AIRFLOW__API__SECRET_KEY"] = env["AIRFLOW__API_AUTH__JWT_SECRET"]
            env["FLYWHEEL_APPROVER_ROLES"] = access.APPROVER
        env.update(self.extra_env)
        return env

    @property
    def fab(self) -> bool:
        return self.auth_manager == "fab"

    def accounts(self) -> list[access.UserSpec]:
        """The FAB accounts :meth:`start` creates: the admin, the service account, ``users``."""
        return [
            access.UserSpec(ADMIN_USER, access.ADMIN, self.password),
            access.UserSpec(access.DEFAULT_SERVICE_USER, access.SERVICE, self.service_password, machine=True),
            *self.users,
        ]

    def _apply_access(self, env: dict[str, str]) -> None:
        """Flywheel's roles and the accounts, as compose's airflow-init applies them."""
        users = " ".join(f"{u.username}:{u.role}:{u.password}" for u in self.users)
        account_env = {**env, "AIRFLOW_ADMIN_USER": ADMIN_USER, "AIRFLOW_ADMIN_PASSWORD": self.password,
                       "AIRFLOW_SERVICE_PASSWORD": self.service_password, "AIRFLOW_USERS": users}  # fmt: skip
        done = subprocess.run([sys.executable, "-m", "mlflywheel.orchestration.access", "apply"], env=account_env,
                              capture_output=True, text=True, timeout=600, check=False)  # fmt: skip
        if done.returncode != 0:
            raise StackError(f"applying the roles failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")

    def serialize_dags(self) -> None:
        """Parse the DAG files into the metadata DB once (``airflow dags reserialize``): the DAGs
        without a DAG processor running."""
        airflow = str(Path(sys.executable).parent / "airflow")
        done = subprocess.run([airflow, "dags", "reserialize"], env=self.environment(), capture_output=True,
                              text=True, timeout=600, check=False)  # fmt: skip
        if done.returncode != 0:
            raise StackError(f"airflow dags reserialize failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")

    # --- lifecycle ---------------------------------------------------------------------
    def start(self, *, timeout: float = 300) -> None:
        for port in (self.api_port, self.mlflow_port) if self.with_mlflow else (self.api_port,):
            if _port_open(port):
                raise StackError(f"port {port} is already in use on 127.0.0.1: stop what runs there (make down?)")
        (self.home / "logs").mkdir(parents=True, exist_ok=True)
        (self.home / "mlflow" / "artifacts").mkdir(parents=True, exist_ok=True)
        airflow_home = self.home / "airflow"
        airflow_home.mkdir(parents=True, exist_ok=True)
        # A passwords file written beforehand fixes the admin password of the simple auth manager.
        (airflow_home / "simple_auth_manager_passwords.json.generated").write_text(
            json.dumps({ADMIN_USER: self.password})
        )
        env = self.environment()
        bin_dir = Path(sys.executable).parent
        if self.with_mlflow:
            self._spawn_mlflow(env)
        airflow = str(bin_dir / "airflow")
        if not self.airflow_db_uri:
            prepare_sqlite(airflow_home / "airflow.db")
        # Migrate the metadata database, then one process per component, each restarted when it
        # exits (devstack.supervise), as a production deployment's supervisor would.
        migrate = subprocess.run(
            [airflow, "db", "migrate"], env=env, capture_output=True, text=True, timeout=600, check=False
        )
        if migrate.returncode != 0:
            self.stop()
            raise StackError(f"airflow db migrate failed:\n{migrate.stdout[-2000:]}{migrate.stderr[-2000:]}")
        if self.fab:
            try:
                self._apply_access(env)
            except BaseException:
                self.stop()
                raise
        for component in self.components:
            self._spawn(f"airflow-{component}", [sys.executable, "-m", "mlflywheel.devstack.supervise",
                                                 component, "--", airflow, component], env)  # fmt: skip
        if self.celery_broker_url:
            for worker in self.celery_workers:
                worker_env = {**env, **celery_executor.worker_env(worker, free_port())}
                self._spawn(f"airflow-worker-{worker.name}", [sys.executable, "-m", "mlflywheel.devstack.supervise",
                            worker.name, "--", *celery_executor.worker_command(airflow, worker)], worker_env)  # fmt: skip
        self._write_pid_file()
        try:
            if self.with_mlflow:
                self._wait_http(f"{self.mlflow_url}/health", "MLflow", timeout)
            if self.with_mlflow and self.mlflow_auth:
                settings = self.settings()
                accounts = self.mlflow_auth.ensure_accounts(
                    self.mlflow_url, model_name=settings.model_name, experiments=settings.mlflow_experiments
                )
                log.info("MLflow accounts: %s", accounts)
            self._wait_http(f"{self.api_url}/api/v2/monitor/health", "Airflow API", timeout)
        except BaseException:
            self.stop()
            raise
        log.info("embedded stack up: Airflow %s (user %s), MLflow %s", self.api_url, ADMIN_USER, self.mlflow_url)

    def _spawn_mlflow(self, env: dict[str, str]) -> None:
        command = server_command(
            port=self.mlflow_port,
            backend_store_uri=self.mlflow_backend_uri or f"sqlite:///{self.home / 'mlflow' / 'mlflow.db'}",
            artifacts_destination=self.mlflow_artifacts_destination or str(self.home / "mlflow" / "artifacts"),
            basic_auth=self.mlflow_auth is not None,
        )
        auth_env = self.mlflow_auth.server_env(self.home / "mlflow") if self.mlflow_auth else {}
        self._spawn("mlflow", command, {**env, **auth_env})

    def _spawn(self, name: str, cmd: list[str], env: dict[str, str]) -> None:
        out = open(self.home / "logs" / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child
        self.processes[name] = subprocess.Popen(
            cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=self.home, start_new_session=True
        )

    def _write_pid_file(self) -> None:
        self.pid_file.write_text(
            json.dumps(
                {
                    "pids": {k: p.pid for k, p in self.processes.items()},
                    "api_url": self.api_url,
                    "mlflow_url": self.mlflow_url,
                }
            )
        )

    def _wait_http(self, url: str, what: str, timeout: float) -> None:
        import requests

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                if requests.get(url, timeout=5).status_code < 500:
                    return
            except requests.RequestException:
                pass
            time.sleep(2)
        raise StackError(f"{what} did not answer at {url} within {timeout:.0f}s")

    def check_alive(self) -> None:
        """Raise :class:`StackError` when a process of the stack has exited (with its log's tail)."""
        for name, proc in self.processes.items():
            if proc.poll() is not None:
                log_file = self.home / "logs" / f"{name}.log"
                tail = "\n".join(log_tail(log_file, 20))
                raise StackError(f"{name} exited with {proc.returncode}; see {log_file}:\n{tail}")

    def problems(self, limit: int = 30) -> list[str]:
        """The last ``limit`` error lines of the stack's logs: what to read when the loop stalls."""
        found: list[str] = []
        for log_file in sorted((self.home / "logs").glob("*.log")):
            found += [line for line in log_tail(log_file, 20_000) if PROBLEM_LINE.search(line)]
        return found[-limit:]

    def stop(self) -> None:
        stop_pids({name: p.pid for name, p in self.processes.items()})
        for p in self.processes.values():
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self.processes.clear()
        self.pid_file.unlink(missing_ok=True)
        if self.celery_broker_url:
            celery_executor.forget_queues(self.celery_broker_url, self.celery_key_prefix)

    def api(self) -> AirflowApi:
        return AirflowApi(self.api_url, ADMIN_USER, self.password)

    def wait_for_dags(self, dag_ids: list[str], *, timeout: float = 300) -> None:
        """Wait until the DAG processor has parsed ``dag_ids``; fail on import errors."""
        api = self.api()
        deadline = time.monotonic() + timeout
        missing = list(dag_ids)
        while time.monotonic() < deadline:
            errors = api.import_errors()
            if errors:
                raise StackError("DAG import errors:\n" + "\n".join(f"{e['filename']}: {e['stack_trace']}" for e in errors))
            missing = []
            for dag_id in dag_ids:
                try:
                    api.get_dag(dag_id)
                except AirflowApiError as exc:
                    if exc.status != 404:
                        raise
                    missing.append(dag_id)
            if not missing:
                return
            time.sleep(3)
        raise StackError(f"DAGs not parsed within {timeout:.0f}s: {', '.join(missing)}")


PROBLEM_LINE = re.compile(
    r"\[(error|critical)\s*\]|Traceback|database is locked|OperationalError|supervise: restarting", re.IGNORECASE
)


def log_tail(path: Path, lines: int) -> list[str]:
    """The last ``lines`` lines of a text file (empty when it does not exist)."""
    if not path.exists():
        return []
    with path.open("rb") as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - lines * 400))
        return f.read().decode("utf-8", "replace").splitlines()[-lines:]


def prepare_sqlite(path: Path) -> None:
    """Put a new SQLite metadata database in WAL mode (it stays so): readers no longer block the
    writer, so the scheduler, the API server and the DAG processor rarely meet a lock."""
    import sqlite3

    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA journal_mode=WAL")


def stop_pids(pids: dict[str, int], *, grace: float = 20) -> None:
    """Stop process groups: SIGTERM, then SIGKILL after ``grace`` seconds."""
    for pid in pids.values():
        _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_alive(pid) for pid in pids.values()):
        time.sleep(0.5)
    for pid in pids.values():
        _signal_group(pid, signal.SIGKILL)


def stop_from_pid_file(home: Path) -> bool:
    """``make down``: stop a stack left running by ``make up``."""
    pid_file = home / "stack.json"
    if not pid_file.exists():
        return False
    stop_pids(json.loads(pid_file.read_text())["pids"])
    pid_file.unlink(missing_ok=True)
    return True


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _alive(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0
