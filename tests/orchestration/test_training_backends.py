"""The one training entrypoint: same command for every backend; local runs stream and fail clearly."""

from __future__ import annotations

import sys

import pytest
from mlflywheel.orchestration.training_backends.local import run_local_training
from mlflywheel.training.command import RUN_TAG, TrainingFailed, training_command

PARAMS = {"epochs": 3, "learning_rate": 0.01, "batch_size": 256, "seed": 1, "reason": "drift", "trigger": "drift_check"}


def test_command_is_the_module_entrypoint_with_tags():
    cmd = training_command("snap-1", PARAMS, "scheduled__2026-11-25")
    assert cmd[:3] == ["python", "-m", "mlflywheel.training"]
    assert cmd[cmd.index("--snapshot-id") + 1] == "snap-1"
    assert f"{RUN_TAG}=scheduled__2026-11-25" in cmd
    assert "flywheel.trigger=drift_check" in cmd
    assert "--epochs" in cmd and cmd[cmd.index("--epochs") + 1] == "3"


def test_local_run_returns_the_result_line():
    script = "print('epoch 1'); print('FLYWHEEL_RESULT {\"run_id\": \"r\", \"version\": \"2\"}')"
    assert run_local_training([sys.executable, "-c", script], timeout_s=60) == {"run_id": "r", "version": "2"}


def test_local_run_failure_is_a_clear_error():
    script = "import sys; print('bad snapshot'); sys.exit(3)"
    with pytest.raises(TrainingFailed, match="(?s)code 3.*bad snapshot"):
        run_local_training([sys.executable, "-c", script], timeout_s=60)


def test_local_run_timeout_kills_the_process():
    with pytest.raises(TrainingFailed, match="exceeded"):
        run_local_training([sys.executable, "-c", "import time; time.sleep(30)"], timeout_s=1)


def test_missing_result_line_is_an_error():
    with pytest.raises(TrainingFailed, match="no FLYWHEEL_RESULT"):
        run_local_training([sys.executable, "-c", "print('done')"], timeout_s=60)


@pytest.mark.parametrize(("queue", "expected"), [("gpu", "gpu"), ("", None)])
def test_local_training_is_routed_to_the_training_queue(queue, expected):
    """FLYWHEEL_TRAINING_QUEUE sends train_model (and only it) to the GPU worker's queue."""
    from airflow.sdk import DAG, task
    from mlflywheel.orchestration.training_backends import training_task
    from mlflywheel.settings import Settings

    settings = Settings.from_env({}, training_queue=queue)
    with DAG(dag_id="routing", schedule=None) as dag:

        @task
        def build_snapshot() -> dict:
            return {"snapshot_id": "s"}

        training_task(settings, build_snapshot())
    default = dag.get_task("build_snapshot").queue
    assert dag.get_task("train_model").queue == (expected or default)
    assert default != "gpu"
