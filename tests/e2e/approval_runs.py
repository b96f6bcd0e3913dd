"""An embedded stack whose `train` runs ask for approval, with validated data for them.

Shared by the approval API test and the browser test: ``FLYWHEEL_PROMOTION_MODE=approval``,
a short response timeout, 4 days of strongly-labelled synthetic partitions ending yesterday (so
the scheduled run that unpausing `train` starts has its window too) and their ledger summaries.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

import requests
from mlflywheel import ledger
from mlflywheel.datasets import load_spec
from mlflywheel.devstack.stack import EmbeddedStack, free_port
from mlflywheel.devstack.synthetic import write_validated
from mlflywheel.lake import keys, lake_from_settings

APPROVAL_TIMEOUT_HOURS = 0.02  # 72 s: long enough to answer, short enough to wait out in a test
WINDOW_DAYS = 4
ROWS_PER_DAY = 400
APPROVAL_TASK = "approve_promotion"


def approval_stack(home: Path, *, approval_timeout_hours: float = APPROVAL_TIMEOUT_HOURS) -> EmbeddedStack:
    return EmbeddedStack(
        home=home,
        api_port=free_port(),
        mlflow_port=free_port(),
        extra_env={
            "FLYWHEEL_PROMOTION_MODE": "approval",
            "FLYWHEEL_APPROVAL_TIMEOUT_HOURS": str(approval_timeout_hours),
            "FLYWHEEL_WINDOW_DAYS": str(WINDOW_DAYS),
            "FLYWHEEL_EPOCHS": "2",
            "FLYWHEEL_MIN_TRAINING_ROWS": "200",
        },
    )


def land_window(stack: EmbeddedStack, *, end: dt.date | None = None) -> list[dt.date]:
    """Validated partitions and ledger summaries of the ``WINDOW_DAYS`` + 1 days ending with ``end``
    (one more day: the scheduled run's window ends a day earlier before the cron's daily tick)."""
    settings = stack.settings()
    lake, spec = lake_from_settings(settings), load_spec(settings)
    end = end or dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    days = [end - dt.timedelta(days=n) for n in range(WINDOW_DAYS, -1, -1)]
    write_validated(lake, spec, days, ROWS_PER_DAY, seed=11)
    for day in days:
        ledger.write_summary(lake, {
            "dataset": settings.dataset, "partition": day.isoformat(), "status": "validated",
            "rows_in": ROWS_PER_DAY, "rows_validated": ROWS_PER_DAY, "rows_quarantined": 0,
            "reasons": {}, "partition_failures": [], "run_id": f"fixture__{day}",
            "report_key": keys.validation_report_key(settings.dataset, day),
        })  # fmt: skip
    return days


def task_state(stack: EmbeddedStack, run_id: str, task_id: str) -> str | None:
    for ti in stack.api().task_instances("train", run_id):
        if ti["task_id"] == task_id:
            return ti.get("state")
    return None


# An answer given within about a second of the request can be lost in Airflow 3.3: the scheduler
# may process the executor's report of the first (parking) attempt after the answer has already
# re-queued the task, fail that task instance and retry it, which asks again. A person never
# answers that fast; a test waits this long after the request appears.
ANSWER_AFTER_SECONDS = 10


def wait_for_task(
    stack: EmbeddedStack, run_id: str, task_id: str, states: set[str], *, timeout: float = 600
) -> str:
    """Poll until ``task_id`` of the `train` run reaches one of ``states``; fail on a dead run.
    Waiting for input, it also lets the request settle (:data:`ANSWER_AFTER_SECONDS`)."""
    deadline = time.monotonic() + timeout
    state = None
    while time.monotonic() < deadline:
        stack.check_alive()
        state = task_state(stack, run_id, task_id)
        if state in states:
            if state == "awaiting_input":
                time.sleep(ANSWER_AFTER_SECONDS)
            return state
        run = stack.api().request("GET", f"/dags/train/dagRuns/{requests.utils.quote(run_id, safe='')}")
        if run["state"] == "failed":
            tasks = {t["task_id"]: t.get("state") for t in stack.api().task_instances("train", run_id)}
            raise AssertionError(f"train run {run_id} failed before {task_id} reached {states}: {tasks}")
        time.sleep(3)
    raise AssertionError(f"{task_id} of {run_id} still {state!r} after {timeout:.0f}s (wanted {states})")


def wait_for_run(stack: EmbeddedStack, run_id: str, *, timeout: float = 600) -> str:
    deadline = time.monotonic() + timeout
    path = f"/dags/train/dagRuns/{requests.utils.quote(run_id, safe='')}"
    while time.monotonic() < deadline:
        stack.check_alive()
        state = stack.api().request("GET", path)["state"]
        if state in ("success", "failed"):
            return state
        time.sleep(3)
    raise AssertionError(f"train run {run_id} unfinished after {timeout:.0f}s")


def trigger_train(stack: EmbeddedStack, *, seed: int, end: dt.date) -> str:
    run = stack.api().trigger("train", logical_date=None, conf={
        "promotion_mode": "approval", "window_end": end.isoformat(), "window_days": WINDOW_DAYS,
        "seed": seed, "trigger": "manual", "reason": f"approval test, seed {seed}",
    })  # fmt: skip
    return run["dag_run_id"]


def hitl_url(stack: EmbeddedStack, run_id: str) -> str:
    quoted = requests.utils.quote(run_id, safe="")
    return f"{stack.api_url}/api/v2/dags/train/dagRuns/{quoted}/taskInstances/{APPROVAL_TASK}/-1/hitlDetails"


def answer(stack: EmbeddedStack, token: str, run_id: str, option: str) -> dict[str, Any]:
    reply = requests.patch(
        hitl_url(stack, run_id),
        json={"chosen_options": [option], "params_input": {}},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert reply.status_code == 200, reply.text
    return reply.json()
