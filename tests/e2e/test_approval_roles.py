"""Promotion by approval on the FAB auth manager: only the approver role's answer counts.

The compose stack's access model on a real loop: Airflow on PostgreSQL with
``FlywheelFabAuthManager``, Flywheel's roles applied at start, ``FLYWHEEL_APPROVER_ROLES=approver``,
drift_check's connection on the service account; an MLflow server; Airflow's real scheduler. The
`train` run that unpausing it starts passes the gate and asks for approval: the request is assigned to the approver role
(written so by the real ``ApprovalOperator`` from the DAG file); an operator's and an admin's
answers are refused and change nothing; the approver's approval promotes, and the run (whose
tasks read the answer through the service account's connection) records who approved. About 5
minutes.
"""

from __future__ import annotations

import secrets
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from mlflywheel import registry
from mlflywheel.devstack.stack import EmbeddedStack, free_port
from mlflywheel.orchestration import access
from mlflywheel.orchestration.training_backends import candidate_version_for_run

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS / "e2e"))
sys.path.insert(0, str(TESTS / "integration"))
from approval_runs import APPROVAL_TASK, hitl_url, land_window, wait_for_run, wait_for_task
from postgres_fixtures import temporary_database

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1500)]

PEOPLE = {access.OPERATOR: "otto", access.APPROVER: "april"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
    with temporary_database("flywheel_approval_roles") as uri:
        running = EmbeddedStack(
            home=tmp_path_factory.mktemp("flywheel-approval-roles"),
            api_port=free_port(),
            mlflow_port=free_port(),
            airflow_db_uri=uri.replace("postgresql://", "postgresql+psycopg2://"),
            auth_manager="fab",
            users=[access.UserSpec(name, role, secrets.token_hex(12)) for role, name in PEOPLE.items()],
            password=secrets.token_hex(12),
            extra_env={
                "FLYWHEEL_PROMOTION_MODE": "approval",
                "FLYWHEEL_APPROVAL_TIMEOUT_HOURS": "1",
                "FLYWHEEL_WINDOW_DAYS": "4",
                "FLYWHEEL_EPOCHS": "2",
                "FLYWHEEL_MIN_TRAINING_ROWS": "200",
            },
        )
        running.start()
        try:
            land_window(running)
            running.wait_for_dags(["train"])
            yield running
        finally:
            running.stop()


def bearer(stack: EmbeddedStack, role: str) -> str:
    user = next(u for u in stack.accounts() if u.role == role)
    reply = requests.post(f"{stack.api_url}/auth/token", json={"username": user.username, "password": user.password},
                          timeout=30)  # fmt: skip
    assert reply.status_code in (200, 201), reply.text
    return reply.json()["access_token"]


def patch_answer(stack: EmbeddedStack, role: str, run_id: str, option: str) -> requests.Response:
    return requests.patch(hitl_url(stack, run_id), json={"chosen_options": [option], "params_input": {}},
                          headers={"Authorization": f"Bearer {bearer(stack, role)}"}, timeout=30)  # fmt: skip


def first_run(stack: EmbeddedStack) -> str:
    """The run that unpausing `train` starts (catchup off: the latest tick runs at once)."""
    stack.api().set_paused("train", False)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        runs = stack.api().dag_runs("train")
        if runs:
            return runs[0]["dag_run_id"]
        time.sleep(2)
    raise AssertionError("unpausing train started no run")


def test_only_the_approver_role_answers(stack: EmbeddedStack) -> None:
    run_id = first_run(stack)
    assert wait_for_task(stack, run_id, APPROVAL_TASK, {"awaiting_input"}) == "awaiting_input"
    request = stack.api().hitl_detail("train", run_id, APPROVAL_TASK)
    assert request["assigned_users"] == [{"id": "role:approver", "name": "approver (role)"}]

    for role in (access.OPERATOR, access.ADMIN, access.SERVICE):
        refused = patch_answer(stack, role, run_id, "Approve")
        assert refused.status_code == 403, (role, refused.status_code, refused.text)
    request = stack.api().hitl_detail("train", run_id, APPROVAL_TASK)
    assert not request.get("chosen_options") and request.get("responded_by_user") is None
    assert registry.champion(stack.settings()) is None  # nothing moved

    approved = patch_answer(stack, access.APPROVER, run_id, "Approve")
    assert approved.status_code == 200, approved.text
    assert wait_for_run(stack, run_id) == "success"
    states = {t["task_id"]: t["state"] for t in stack.api().task_instances("train", run_id)}
    assert states["promote_approved"] == "success", states
    version = candidate_version_for_run(stack.settings(), run_id)
    tags = dict(registry.get_version(stack.settings(), version).tags or {})
    assert str(registry.champion(stack.settings()).version) == version
    assert tags["flywheel.approval.answer"] == "approved" and "april" in tags["flywheel.approval.by"]
