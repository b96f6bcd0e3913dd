"""Every door of the role table, for every role, against Airflow's API server on the FAB auth manager.

Airflow 3.3 with ``FlywheelFabAuthManager`` on a fresh PostgreSQL database, the roles applied by
``python -m mlflywheel.orchestration.access apply`` and one account per role (viewer, operator,
approver, admin, the service account). For each door of ``access.DOORS`` and each role the request
is made for real: a role the table allows gets a 2xx, any other a 403. The table is the README's,
so the documentation cannot promise a door that Airflow does not open, nor hide one it does.

Also: an approval answered by anyone outside the approver role is refused and recorded nowhere
(the request stays unanswered, so nothing is promoted); the service account's connection is what
drift_check's client reads; the roles are applied idempotently.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fab_airflow import (
    answer_of,
    ask_for_approval,
    call,
    fab_stack,
    new_id,
    quoted,
    token,
    trigger,
    unique_day,
)
from mlflywheel import ledger
from mlflywheel.devstack.stack import EmbeddedStack
from mlflywheel.lake import keys, lake_from_settings
from mlflywheel.orchestration import access

# A real API server (about a minute to start on a 2-core machine): with the end-to-end tests.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


@dataclass
class World:
    stack: EmbeddedStack
    db_uri: str
    tokens: dict[str, str]
    ingest_run: str
    train_run: str
    connection_id: str
    days: list[int]

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        reply = call(self.stack, self.tokens[access.ADMIN], method, path, body)
        assert reply.status_code < 300, f"{method} {path} as admin: {reply.status_code} {reply.text}"
        return reply.json() if reply.content else None


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with fab_stack(tmp_path_factory.mktemp("flywheel-access")) as (stack, uri):
        tokens = {role: token(stack, role) for role in access.TABLE_ROLES}
        ingest_run = trigger(stack, tokens[access.ADMIN], "ingest", logical_date="2026-11-20T00:00:00Z")
        # The ingest run's partition summary, so that its Flywheel tab has something to show.
        settings = stack.settings()
        ledger.write_summary(lake_from_settings(settings), {
            "dataset": settings.dataset, "partition": "2026-11-20", "status": "validated", "rows_in": 10,
            "rows_validated": 10, "rows_quarantined": 0, "reasons": {}, "partition_failures": [],
            "run_id": ingest_run, "report_key": keys.validation_report_key(settings.dataset, dt.date(2026, 11, 20)),
        })  # fmt: skip
        world = World(stack, uri, tokens, ingest_run, trigger(stack, tokens[access.ADMIN], "train"),
                      new_id("access_test"), [0])  # fmt: skip
        world.admin("POST", "/api/v2/connections", {"connection_id": world.connection_id, "conn_type": "http"})
        yield world


# --- what each door needs: its path filled in, its body, and what to undo afterwards ----------
Prepared = tuple[str, Any, Callable[[Any], None]]  # path, body, cleanup(reply json)


def _no_cleanup(_: Any) -> None:
    return None


def _backfill_body(world: World, dag_id: str) -> dict[str, Any]:
    day = unique_day(world.days)
    return {"dag_id": dag_id, "from_date": f"{day}T00:00:00Z", "to_date": f"{day}T23:00:00Z",
            "reprocess_behavior": "none", "max_active_runs": 1, "run_backwards": False, "dag_run_conf": {}}  # fmt: skip


def _cancel(world: World) -> Callable[[Any], None]:
    """Cancel the backfill the reply created, if it did and it is still active: the next door's
    backfill of the same DAG would meet a 409 otherwise."""

    def cancel(created: Any) -> None:
        active = isinstance(created, dict) and created.get("id") is not None and \
            world.admin("GET", f"/api/v2/backfills/{created['id']}").get("completed_at") is None
        if active:
            world.admin("PUT", f"/api/v2/backfills/{created['id']}/cancel")

    return cancel


def prepare(world: World, door: access.Door, role: str) -> Prepared:
    """The request of ``door`` for ``role``: fresh objects where the door consumes one."""
    # try 0: the task never ran (no scheduler), and Airflow answers its log with "no logs" then
    path = door.path.replace("{run}", quoted(world.ingest_run)).replace("{try}", "0")
    name = door.name
    if name.startswith("create a backfill of"):
        dag_id = name.rsplit(" ", 1)[-1]
        return path, _backfill_body(world, dag_id), _cancel(world)
    if name == "cancel a backfill of train":
        created = world.admin("POST", "/api/v2/backfills", _backfill_body(world, "train"))
        return path.replace("{backfill}", str(created["id"])), None, lambda _: _cancel(world)(created)  # refused too
    if name == "answer a promotion approval":
        run_id = trigger(world.stack, world.tokens[access.ADMIN], "train")
        ask_for_approval(world.db_uri, run_id, access.approval_assignees(access.APPROVER))
        return door.path.replace("{run}", quoted(run_id)), {"chosen_options": ["Reject"], "params_input": {}}, \
            _no_cleanup  # fmt: skip
    if name == "read approval requests":
        return door.path.replace("{run}", quoted(world.train_run)), None, _no_cleanup
    if name == "trigger rollback (roll back)":
        return path, {"logical_date": None, "conf": {"reason": f"access test as {role}"}}, _no_cleanup
    if name.startswith("trigger "):
        return path, {"logical_date": None}, _no_cleanup
    if name == "clear a task (re-run it)":
        return path, {"dry_run": False, "dag_run_id": world.ingest_run, "task_ids": ["wait_for_landing"]}, \
            _no_cleanup  # fmt: skip
    if name == "mark a run failed":
        return path, {"state": "failed"}, _no_cleanup
    if name.startswith("pause / unpause"):
        return path, {"is_paused": True}, _no_cleanup
    if name == "edit a connection":
        path = f"/api/v2/connections/{world.connection_id}"
        return path, {"connection_id": world.connection_id, "conn_type": "http", "host": f"{role}.invalid"}, \
            _no_cleanup  # fmt: skip
    if name == "create a variable":
        return path, {"key": new_id(f"access_{role}"), "value": "x"}, _no_cleanup
    return path, None, _no_cleanup


CASES = [(door, role) for door in access.DOORS for role in access.TABLE_ROLES]


@pytest.mark.parametrize(("door", "role"), CASES, ids=[f"{d.name}-{r}" for d, r in CASES])
def test_door(world: World, door: access.Door, role: str):
    path, body, cleanup = prepare(world, door, role)
    reply = call(world.stack, world.tokens[role], door.method, path, body)
    cleanup(reply.json() if reply.content and "json" in reply.headers.get("content-type", "") else None)
    if role in door.allowed:
        assert 200 <= reply.status_code < 300, f"{role} should pass {door.name}: {reply.status_code} {reply.text[:300]}"
    else:
        assert reply.status_code == 403, f"{role} should be refused {door.name}: {reply.status_code} {reply.text[:300]}"


def test_every_door_is_tested_for_every_role():
    assert len(CASES) == len(access.DOORS) * len(access.TABLE_ROLES)
    assert set(access.TABLE_ROLES) == set(access.ROLES)


def test_anonymous_requests_are_refused(world: World):
    for door in access.DOORS:
        path = door.path.replace("{run}", quoted(world.ingest_run)).replace("{backfill}", "1").replace("{try}", "0")
        reply = call(world.stack, "not-a-token", door.method, path, None)
        assert reply.status_code in (401, 403), f"{door.name}: {reply.status_code}"


# --- approvals ---------------------------------------------------------------------------------
def test_approval_by_a_non_approver_is_refused_and_not_recorded(world: World):
    run_id = trigger(world.stack, world.tokens[access.ADMIN], "train")
    ask_for_approval(world.db_uri, run_id, access.approval_assignees(access.APPROVER))
    path = f"/api/v2/dags/train/dagRuns/{quoted(run_id)}/taskInstances/approve_promotion/-1/hitlDetails"
    for role in (access.VIEWER, access.OPERATOR, access.ADMIN, access.SERVICE):
        reply = call(world.stack, world.tokens[role], "PATCH", path, {"chosen_options": ["Approve"], "params_input": {}})
        assert reply.status_code == 403, (role, reply.status_code, reply.text)
        assert answer_of(world.db_uri, run_id) == (None, None)  # unanswered: promote_approved never runs
    reply = call(world.stack, world.tokens[access.APPROVER], "PATCH", path,
                 {"chosen_options": ["Approve"], "params_input": {}})  # fmt: skip
    assert reply.status_code == 200, reply.text
    chosen, by = answer_of(world.db_uri, run_id)
    assert chosen == ["Approve"] and by["name"] == "april"


def test_admin_answers_once_given_the_approver_role(world: World):
    """The assignment is by role: a user added to the role later may answer, nobody is hard-coded."""
    run_id = trigger(world.stack, world.tokens[access.ADMIN], "train")
    ask_for_approval(world.db_uri, run_id, access.approval_assignees(access.APPROVER))
    name = new_id("ada")
    password = secrets.token_hex(12)
    world.admin("POST", "/auth/fab/v1/users", {
        "username": name, "password": password, "email": f"{name}@flywheel.invalid", "first_name": name,
        "last_name": "admin", "roles": [{"name": access.FAB_ADMIN_ROLE}, {"name": access.APPROVER}],
    })  # fmt: skip
    import requests

    bearer = requests.post(f"{world.stack.api_url}/auth/token", json={"username": name, "password": password},
                           timeout=30).json()["access_token"]  # fmt: skip
    path = f"/api/v2/dags/train/dagRuns/{quoted(run_id)}/taskInstances/approve_promotion/-1/hitlDetails"
    reply = call(world.stack, bearer, "PATCH", path, {"chosen_options": ["Reject"], "params_input": {}})
    assert reply.status_code == 200, reply.text
    assert answer_of(world.db_uri, run_id)[0] == ["Reject"]


def test_an_unassigned_request_follows_permissions_alone(world: World):
    """Without assignees (the embedded stack's setting) the HITL permissions still keep viewers out."""
    run_id = trigger(world.stack, world.tokens[access.ADMIN], "train")
    ask_for_approval(world.db_uri, run_id, None)
    path = f"/api/v2/dags/train/dagRuns/{quoted(run_id)}/taskInstances/approve_promotion/-1/hitlDetails"
    body = {"chosen_options": ["Reject"], "params_input": {}}
    assert call(world.stack, world.tokens[access.VIEWER], "PATCH", path, body).status_code == 403
    assert call(world.stack, world.tokens[access.OPERATOR], "PATCH", path, body).status_code == 403
    assert call(world.stack, world.tokens[access.APPROVER], "PATCH", path, body).status_code == 200


# --- the service account -----------------------------------------------------------------------
def test_drift_checks_client_is_the_service_account(world: World):
    """The connection drift_check reads names the service account, and with it the client's calls
    (list train's backfills, create one, read the approval answer) pass."""
    import json

    from mlflywheel.orchestration.airflow_api import AirflowApi

    env = world.stack.environment()
    conn = json.loads(env["AIRFLOW_CONN_" + world.stack.settings().airflow_conn_id.upper()])
    assert conn["login"] == access.DEFAULT_SERVICE_USER and conn["login"] != "admin"
    api = AirflowApi(f"http://{conn['host']}:{conn['port']}", conn["login"], conn["password"])
    api.active_backfills("train")
    day = unique_day(world.days)
    created = api.create_backfill("train", from_date=f"{day}T00:00:00Z", to_date=f"{day}T23:00:00Z")
    world.admin("PUT", f"/api/v2/backfills/{created['id']}/cancel")
    run_id = trigger(world.stack, world.tokens[access.ADMIN], "train")
    ask_for_approval(world.db_uri, run_id, access.approval_assignees(access.APPROVER))
    assert api.hitl_detail("train", run_id, "approve_promotion")["chosen_options"] is None
    with pytest.raises(Exception, match="403"):
        api.create_backfill("ingest", from_date=f"{day}T00:00:00Z", to_date=f"{day}T23:00:00Z")


def test_roles_apply_is_idempotent(world: World):
    import subprocess
    import sys

    env = {**world.stack.environment(), "AIRFLOW_SERVICE_PASSWORD": world.stack.service_password}
    done = subprocess.run([sys.executable, "-m", "mlflywheel.orchestration.access", "apply"], env=env,
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "access: nothing to change" in done.stdout, done.stdout


# --- the cockpit's one action ----------------------------------------------------------------------
def test_the_cockpit_offers_the_answer_link_only_to_who_may_answer(world: World):
    """A version awaits approval: the Flywheel page and the version's page link to its request for
    the approver only; the others (the admin too: not assigned) see that it waits."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cockpit"))
    from cockpit_records import gate_version, register_version

    settings = world.stack.settings()  # the API server's registry: a SQLite store under the stack's home
    run_id = "manual__awaits_access"
    version = register_version(settings, run_id)
    gate_version(settings, version, {"pr_auc": 0.6, "roc_auc": 0.9}, airflow_run_id=run_id, mode="approval")
    link = f'href="/dags/train/runs/{run_id}/tasks/approve_promotion/required_actions"'
    for role in (access.VIEWER, access.OPERATOR, access.APPROVER, access.ADMIN):
        for path in ("/flywheel/", f"/flywheel/version/{version}", "/flywheel/dag/train"):
            reply = call(world.stack, world.tokens[role], "GET", path)
            assert reply.status_code == 200, (role, path, reply.status_code)
            assert (link in reply.text) == (role == access.APPROVER), (role, path)
            assert f"v{version}" in reply.text or f"version {version}" in reply.text, (role, path)


def test_each_cockpit_page_also_needs_read_access_to_its_dag(world: World):
    """A role that may open plugins but read no DAG gets none of the cockpit's pages: each checks
    read access to the DAG its records belong to, with Airflow's own check."""
    import requests

    role = new_id("plugins_only")
    world.admin("POST", "/auth/fab/v1/roles", {"name": role, "actions": [
        {"action": {"name": "can_read"}, "resource": {"name": "Plugins"}},
        {"action": {"name": "can_read"}, "resource": {"name": "Website"}},
    ]})  # fmt: skip
    name, password = new_id("pia"), secrets.token_hex(12)
    world.admin("POST", "/auth/fab/v1/users", {"username": name, "password": password, "email": f"{name}@x.invalid",
                                              "first_name": name, "last_name": "p", "roles": [{"name": role}]})  # fmt: skip
    bearer = requests.post(f"{world.stack.api_url}/auth/token", json={"username": name, "password": password},
                           timeout=30).json()["access_token"]  # fmt: skip
    assert call(world.stack, bearer, "GET", "/api/v2/plugins").status_code == 200  # the app-wide check passes
    for path in ("/flywheel/", "/flywheel/dag/train", "/flywheel/dag/ingest", f"/flywheel/dag/ingest/run/{quoted(world.ingest_run)}",
                 "/flywheel/version/1", "/flywheel/drift/2026-11-20", "/flywheel/partition/2026-11-20",
                 "/flywheel/report/validation/2026-11-20", "/flywheel/report/drift/2026-11-20"):  # fmt: skip
        assert call(world.stack, bearer, "GET", path).status_code == 403, path
