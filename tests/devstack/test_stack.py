"""The embedded stack's own parts that run without starting Airflow: the SQLite preparation,
the environment it gives each component, liveness and the error lines it reports."""

from __future__ import annotations

import importlib
import json
import sqlite3
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from mlflywheel.demo import DemoFailed, _wait
from mlflywheel.devstack.stack import EmbeddedStack, StackError, log_tail, prepare_sqlite


def test_prepare_sqlite_leaves_the_database_in_wal_mode(tmp_path: Path):
    db = tmp_path / "airflow" / "airflow.db"
    prepare_sqlite(db)
    with sqlite3.connect(db) as conn:  # a later connection sees the mode: it is kept in the file
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_sqlite_components_get_a_long_busy_timeout_and_postgres_none(tmp_path: Path):
    env = EmbeddedStack(home=tmp_path).environment()
    path = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS"]
    module, name = path.rsplit(".", 1)
    assert getattr(importlib.import_module(module), name)["timeout"] >= 30  # as Airflow imports it
    on_postgres = EmbeddedStack(home=tmp_path, airflow_db_uri="postgresql://postgres@127.0.0.1/x").environment()
    assert "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS" not in on_postgres  # psycopg2 has no "timeout"


def test_log_tail_reads_the_last_lines_only(tmp_path: Path):
    path = tmp_path / "x.log"
    path.write_text("".join(f"line {i}\n" for i in range(10_000)))
    assert log_tail(path, 3) == ["line 9997", "line 9998", "line 9999"]
    assert log_tail(tmp_path / "missing.log", 3) == []


def _stack_with_exited_process(tmp_path: Path) -> EmbeddedStack:
    stack = EmbeddedStack(home=tmp_path)
    (tmp_path / "logs").mkdir()
    stack._spawn("scheduler", [sys.executable, "-c", "print('scheduler: database is locked'); raise SystemExit(3)"], {})
    stack.processes["scheduler"].wait(timeout=30)
    return stack


def test_check_alive_names_the_exited_process_with_its_log(tmp_path: Path):
    stack = _stack_with_exited_process(tmp_path)
    with pytest.raises(StackError, match=r"scheduler exited with 3(.|\n)*database is locked"):
        stack.check_alive()


def test_problems_are_the_error_lines_of_the_logs(tmp_path: Path):
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "airflow.log").write_text(
        "scheduler | [info     ] all good\n"
        "api-server | [error    ] POST /backfills failed\n"
        "scheduler | sqlalchemy.exc.OperationalError: (sqlite3.OperationalError) database is locked\n"
        "scheduler | [info     ] still fine\n"
    )
    problems = EmbeddedStack(home=tmp_path).problems()
    assert problems == [
        "api-server | [error    ] POST /backfills failed",
        "scheduler | sqlalchemy.exc.OperationalError: (sqlite3.OperationalError) database is locked",
    ]


def test_a_wait_fails_at_once_when_a_process_of_the_stack_exits(tmp_path: Path):
    stack = _stack_with_exited_process(tmp_path)
    started = time.monotonic()
    with pytest.raises(StackError, match="scheduler exited"):
        _wait("the drift checks", lambda: (None, "0/7 finished"), timeout=600, stack=stack, every=0.1)
    assert time.monotonic() - started < 60  # not the 600 s timeout


def test_a_wait_returns_the_value_once_the_check_holds(tmp_path: Path):
    stack = EmbeddedStack(home=tmp_path)
    answers = iter([(None, "1/2"), (None, "1/2"), ("done", "2/2")])
    assert _wait("x", lambda: next(answers), timeout=60, stack=stack, every=0.01) == "done"


class _AirflowAnswers(BaseHTTPRequestHandler):
    """Just enough of Airflow's REST API for a timed-out wait to list what is stuck."""

    RUNS: ClassVar[dict] = {"drift_check": [{"dag_run_id": "scheduled__2026-11-27T04:00:00+00:00", "state": "success"},
                            {"dag_run_id": "backfill__2026-11-22T04:00:00+00:00", "state": "running"}]}  # fmt: skip
    TASKS: ClassVar[list] = [{"task_id": "wait_for_partition", "state": "success"}, {"task_id": "check_drift", "state": "queued"},
             {"task_id": "request_retraining", "state": None}]  # fmt: skip

    def _answer(self, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self._answer({"access_token": "t"})

    def do_GET(self) -> None:
        parts = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path).split("/")
        if parts[-1] == "taskInstances":
            assert parts[-2] == "backfill__2026-11-22T04:00:00+00:00"  # the run id arrived whole
            self._answer({"task_instances": self.TASKS})
        else:
            self._answer({"dag_runs": self.RUNS.get(parts[4], [])})

    def log_message(self, *args) -> None:
        pass


def test_a_timed_out_wait_names_the_unfinished_runs_and_their_tasks(tmp_path: Path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _AirflowAnswers)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        stack = EmbeddedStack(home=tmp_path, api_port=server.server_address[1])
        with pytest.raises(DemoFailed) as failed:
            _wait("the drift checks", lambda: (None, "1/2 drift_check runs finished"), timeout=0.2, stack=stack,
                  every=0.05)  # fmt: skip
    finally:
        server.shutdown()
    assert "1/2 drift_check runs finished" in str(failed.value)
    assert "drift_check/backfill__2026-11-22T04:00:00+00:00 running [check_drift=queued, request_retraining=None]" \
        in str(failed.value)


def test_fab_stack_uses_flywheels_auth_manager_and_the_service_account(tmp_path: Path):
    from mlflywheel.devstack.stack import ADMIN_USER, FAB_AUTH_MANAGER
    from mlflywheel.orchestration import access

    simple = EmbeddedStack(home=tmp_path).environment()
    assert "AIRFLOW__CORE__AUTH_MANAGER" not in simple  # Airflow's default: the simple auth manager
    assert not simple.get("FLYWHEEL_APPROVER_ROLES", "").strip()  # approvals not assigned
    conn_var = "AIRFLOW_CONN_" + EmbeddedStack(home=tmp_path).settings().airflow_conn_id.upper()
    assert json.loads(simple[conn_var])["login"] == ADMIN_USER  # the laptop's one user

    stack = EmbeddedStack(home=tmp_path, auth_manager="fab")
    env = stack.environment()
    assert env["AIRFLOW__CORE__AUTH_MANAGER"] == FAB_AUTH_MANAGER
    assert env["FLYWHEEL_APPROVER_ROLES"] == access.APPROVER
    conn = json.loads(env[conn_var])
    assert (conn["login"], conn["password"]) == (access.DEFAULT_SERVICE_USER, stack.service_password)
    assert [(u.username, u.role) for u in stack.accounts()] == [
        (ADMIN_USER, access.ADMIN), (access.DEFAULT_SERVICE_USER, access.SERVICE)]
    assert stack.service_password not in repr(stack)
    with pytest.raises(ValueError, match="simple or fab"):
        EmbeddedStack(home=tmp_path, auth_manager="ldap")
