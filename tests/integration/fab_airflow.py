"""Airflow's API server on the FAB auth manager, on a fresh PostgreSQL database, with Flywheel's
roles applied and one user per role: what the access tests (REST and browser) run against.

Only the API server runs (the DAGs are parsed once into the database, no scheduler): every door
of the role table is a request to it. Requests of the loop that need a task's state (an approval
request) get it written into the metadata database the way the task would have.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import requests
from mlflywheel.devstack.stack import ADMIN_USER, EmbeddedStack, free_port
from mlflywheel.orchestration import access
from postgres_fixtures import temporary_database

FIRST_BACKFILL_DAY = dt.date(2026, 11, 1)  # the settings' default start date: the DAGs' first day
#: One person per role (the admin and the service account come with the stack).
PEOPLE = {access.VIEWER: "vera", access.OPERATOR: "otto", access.APPROVER: "april"}


@contextlib.contextmanager
def fab_stack(home: Path) -> Iterator[tuple[EmbeddedStack, str]]:
    """The running stack and its database's URI (libpq form); everything stopped and dropped after."""
    with temporary_database("flywheel_access") as uri:
        stack = EmbeddedStack(
            home=home,
            api_port=free_port(),
            airflow_db_uri=uri.replace("postgresql://", "postgresql+psycopg2://"),
            auth_manager="fab",
            users=[access.UserSpec(name, role, secrets.token_hex(12)) for role, name in PEOPLE.items()],
            components=("api-server",),
            with_mlflow=False,
            password=secrets.token_hex(12),
        )
        stack.start()
        try:
            stack.serialize_dags()
            yield stack, uri
        finally:
            stack.stop()


def login(stack: EmbeddedStack, role: str) -> tuple[str, str]:
    """(username, password) of the stack's account with ``role``."""
    for user in stack.accounts():
        if user.role == role:
            return user.username, user.password
    raise KeyError(role)


def token(stack: EmbeddedStack, role: str) -> str:
    username, password = login(stack, role)
    reply = requests.post(f"{stack.api_url}/auth/token", json={"username": username, "password": password},
                          timeout=30)  # fmt: skip
    assert reply.status_code in (200, 201), reply.text
    return reply.json()["access_token"]


def call(stack: EmbeddedStack, bearer: str, method: str, path: str, body: Any = None) -> requests.Response:
    return requests.request(method, stack.api_url + path, json=body, headers={"Authorization": f"Bearer {bearer}"},
                            timeout=60)  # fmt: skip


def quoted(run_id: str) -> str:
    return requests.utils.quote(run_id, safe="")


def trigger(stack: EmbeddedStack, bearer: str, dag_id: str, **body: Any) -> str:
    reply = call(stack, bearer, "POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, **body})
    assert reply.status_code == 200, reply.text
    return reply.json()["dag_run_id"]


def ask_for_approval(uri: str, run_id: str, assignees: list[dict] | None) -> None:
    """The approval request of `train` run ``run_id``, as ``approve_promotion`` writes it when it
    starts waiting (``hitl_detail`` row of the task instance)."""
    conn = psycopg2.connect(uri, connect_timeout=5)
    try:
        with conn, conn.cursor() as cursor:
            cursor.execute(
                "SELECT id FROM task_instance WHERE dag_id = 'train' AND run_id = %s AND task_id = %s",
                (run_id, "approve_promotion"),
            )
            (ti_id,) = cursor.fetchone()
            cursor.execute(
                "INSERT INTO hitl_detail (ti_id, options, subject, body, defaults, multiple, params, assignees,"
                " created_at, params_input) VALUES (%s, %s, %s, %s, %s, false, '{}', %s, %s, '{}')",
                (ti_id, json.dumps(["Approve", "Reject"]), "Promote?", "access test", json.dumps(["Reject"]),
                 json.dumps(assignees) if assignees is not None else None, dt.datetime.now(dt.UTC)),
            )  # fmt: skip
    finally:
        conn.close()


def answer_of(uri: str, run_id: str) -> tuple[Any, Any]:
    """(chosen_options, responded_by) of the run's approval request, straight from the database."""
    conn = psycopg2.connect(uri, connect_timeout=5)
    try:
        with conn, conn.cursor() as cursor:
            cursor.execute(
                "SELECT h.chosen_options, h.responded_by FROM hitl_detail h JOIN task_instance t ON t.id = h.ti_id"
                " WHERE t.dag_id = 'train' AND t.run_id = %s",
                (run_id,),
            )
            return cursor.fetchone()
    finally:
        conn.close()


def unique_day(counter: list[int]) -> str:
    """A day no earlier backfill of this module used (a backfill over days that have runs creates none)."""
    counter[0] += 1
    return (FIRST_BACKFILL_DAY + dt.timedelta(days=counter[0])).isoformat()


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


__all__ = ["ADMIN_USER", "PEOPLE", "answer_of", "ask_for_approval", "call", "fab_stack", "login", "new_id",
           "quoted", "token", "trigger", "unique_day"]  # fmt: skip
