"""Promotion by approval, through Airflow's real scheduler and its human-in-the-loop REST API.

An embedded stack with ``FLYWHEEL_PROMOTION_MODE=approval`` and a 72 s response timeout; three
`train` runs on the same validated window, each passing the gate (no champion yet, the floors
met) and so each asking in Required Actions:

1. the scheduled run that unpausing `train` starts: **Reject** through ``PATCH .../hitlDetails``
   -> recorded as rejected by the admin, no champion;
2. a manual run left unanswered -> Airflow answers its default for nobody at the timeout ->
   recorded as timed out, no champion;
3. a manual run: **Approve** -> recorded as approved by the admin, and that version is champion.

The request's body carries the gate's evidence. About 8 minutes.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from mlflywheel import registry
from mlflywheel.devstack.stack import ADMIN_USER, EmbeddedStack
from mlflywheel.orchestration.training_backends import candidate_version_for_run

sys.path.insert(0, str(Path(__file__).resolve().parent))
from approval_runs import (
    APPROVAL_TASK,
    answer,
    approval_stack,
    hitl_url,
    land_window,
    trigger_train,
    wait_for_run,
    wait_for_task,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1500)]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
    running = approval_stack(tmp_path_factory.mktemp("flywheel-approval"))
    running.start()
    try:
        land_window(running)
        running.wait_for_dags(["train"])
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def token(stack: EmbeddedStack) -> str:
    return stack.api().token()


def version_tags(stack: EmbeddedStack, run_id: str) -> tuple[str, dict[str, str]]:
    settings = stack.settings()
    version = candidate_version_for_run(settings, run_id)
    return version, dict(registry.get_version(settings, version).tags or {})


def champion(stack: EmbeddedStack) -> str | None:
    current = registry.champion(stack.settings())
    return str(current.version) if current is not None else None


@pytest.fixture(scope="module")
def scheduled_run(stack: EmbeddedStack) -> str:
    stack.api().set_paused("train", False)  # catchup off: the latest tick runs at once
    deadline = dt.datetime.now() + dt.timedelta(minutes=3)
    while dt.datetime.now() < deadline:
        runs = stack.api().dag_runs("train")
        if runs:
            return runs[0]["dag_run_id"]
        time.sleep(2)
    raise AssertionError("unpausing train started no run")


def test_a_rejection_promotes_nothing_and_is_recorded(stack: EmbeddedStack, token: str, scheduled_run: str) -> None:
    assert wait_for_task(stack, scheduled_run, APPROVAL_TASK, {"awaiting_input"}) == "awaiting_input"
    detail = requests.get(hitl_url(stack, scheduled_run), headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert detail.status_code == 200, detail.text
    request = detail.json()
    assert request["options"] == ["Approve", "Reject"] and request["defaults"] == ["Reject"]
    assert request["subject"].startswith("Promote flywheel-transactions v") and request["subject"].endswith("?")
    assert "passed the promotion gate" in request["body"] and "| pr_auc |" in request["body"]
    _, tags = version_tags(stack, scheduled_run)
    assert tags["flywheel.gate.decision"] == "awaiting_approval" and tags["flywheel.gate.gate_passed"] == "true"

    answer(stack, token, scheduled_run, "Reject")
    assert wait_for_run(stack, scheduled_run) == "success"
    states = {t["task_id"]: t["state"] for t in stack.api().task_instances("train", scheduled_run)}
    assert states["promote_approved"] == "skipped" and states["record_refusal"] == "success", states
    _, tags = version_tags(stack, scheduled_run)
    assert tags["flywheel.gate.decision"] == "rejected"
    assert tags["flywheel.approval.answer"] == "rejected" and ADMIN_USER in tags["flywheel.approval.by"]
    assert f"rejected by {tags['flywheel.approval.by']}" in tags["flywheel.gate.reasons"]
    assert champion(stack) is None


def test_no_answer_before_the_timeout_promotes_nothing(stack: EmbeddedStack, scheduled_run: str) -> None:
    assert wait_for_run(stack, scheduled_run) == "success"  # one train run at a time
    end = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    run_id = trigger_train(stack, seed=2, end=end)
    assert wait_for_task(stack, run_id, APPROVAL_TASK, {"awaiting_input"}) == "awaiting_input"
    # Nobody answers: the scheduler's sweep applies the default (Reject) with no user.
    assert wait_for_run(stack, run_id, timeout=600) == "success"
    _, tags = version_tags(stack, run_id)
    assert tags["flywheel.gate.decision"] == "rejected"
    assert tags["flywheel.approval.answer"] == "timed_out"
    assert "no answer before the approval timeout" in tags["flywheel.gate.reasons"]
    assert champion(stack) is None


def test_an_approval_promotes_and_records_who(stack: EmbeddedStack, token: str) -> None:
    end = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    run_id = trigger_train(stack, seed=3, end=end)
    assert wait_for_task(stack, run_id, APPROVAL_TASK, {"awaiting_input"}) == "awaiting_input"
    assert champion(stack) is None  # awaiting: nothing moved yet
    answer(stack, token, run_id, "Approve")
    assert wait_for_run(stack, run_id) == "success"
    states = {t["task_id"]: t["state"] for t in stack.api().task_instances("train", run_id)}
    assert states["promote_approved"] == "success", states
    version, tags = version_tags(stack, run_id)
    assert champion(stack) == version
    assert tags["flywheel.gate.decision"] == "promoted" and tags["flywheel.approval.answer"] == "approved"
    assert ADMIN_USER in tags["flywheel.approval.by"] and tags["flywheel.approval.at"]
    # A second answer is refused by Airflow (already answered).
    again = requests.patch(hitl_url(stack, run_id), json={"chosen_options": ["Reject"], "params_input": {}},
                           headers={"Authorization": f"Bearer {token}"}, timeout=30)  # fmt: skip
    assert again.status_code == 409, again.text
