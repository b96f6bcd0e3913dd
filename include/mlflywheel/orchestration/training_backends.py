"""One training entrypoint, two backends: a local process or a Kubernetes pod.

Both run ``python -m mlflywheel.training`` with the same arguments (:func:`training_command`);
both hand their result to the gate through MLflow: the run and its model version carry the
tag ``flywheel.airflow_dag_run_id``, which :func:`candidate_version_for_run` looks up. Nothing
the gate needs travels only through XCom.

Light at import time: the DAG file calls :func:`training_task` while it is parsed.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from typing import Any

from mlflywheel.settings import Settings

log = logging.getLogger("mlflywheel.orchestration")

RUN_TAG = "flywheel.airflow_dag_run_id"
RESULT_PREFIX = "FLYWHEEL_RESULT "


class TrainingFailed(RuntimeError):
    """The training process failed; nothing was registered."""


def training_command(snapshot_id: str, params: dict[str, Any], run_id: str) -> list[str]:
    """The entrypoint's command line, identical for every backend."""
    tags = {
        RUN_TAG: run_id,
        "flywheel.reason": params.get("reason") or "",
        "flywheel.trigger": params.get("trigger") or "",
        "flywheel.drift_event_id": params.get("drift_event_id") or "",
    }
    cmd = [
        "python", "-m", "mlflywheel.training",
        "--snapshot-id", snapshot_id,
        "--epochs", str(params["epochs"]),
        "--learning-rate", str(params["learning_rate"]),
        "--batch-size", str(params["batch_size"]),
        "--seed", str(params["seed"]),
    ]  # fmt: skip
    for key, value in tags.items():
        if value:
            cmd += ["--tag", f"{key}={value}"]
    return cmd


def run_local_training(cmd: list[str], *, timeout_s: float, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run the entrypoint as a child process, streaming its output into the task log."""
    cmd = [sys.executable, *cmd[1:]] if cmd and cmd[0] == "python" else cmd
    log.info("training: %s", " ".join(cmd))
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
    )
    result: dict[str, Any] = {}
    tail: list[str] = []

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip("\n")
            tail.append(line)
            del tail[:-40]
            if line.startswith(RESULT_PREFIX):
                result.update(json.loads(line[len(RESULT_PREFIX) :]))
            log.info("[training] %s", line)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        code = proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise TrainingFailed(f"training exceeded {timeout_s:.0f}s and was killed; nothing was registered") from None
    reader.join(timeout=10)
    if code != 0:
        raise TrainingFailed(f"training exited with code {code}; last output:\n" + "\n".join(tail[-15:]))
    if not result:
        raise TrainingFailed("training exited 0 but printed no FLYWHEEL_RESULT line")
    return result


def training_task(settings: Settings, snapshot: Any) -> Any:
    """The ``train_model`` task for the configured backend, wired after ``snapshot``."""
    if settings.training_backend == "kubernetes":
        from mlflywheel.orchestration.kubernetes import kubernetes_training_task

        return kubernetes_training_task(settings, snapshot)

    from airflow.sdk import task

    @task(task_id="train_model")
    def train_model(snapshot: dict, params=None, run_id=None) -> dict:
        """Run `python -m mlflywheel.training` as a local process (the embedded default)."""
        cmd = training_command(snapshot["snapshot_id"], params, run_id)
        return run_local_training(cmd, timeout_s=settings.training_timeout_minutes * 60)

    return train_model(snapshot)


def candidate_version_for_run(settings: Settings, run_id: str) -> str:
    """The model version that the training of DAG run ``run_id`` registered."""
    from mlflywheel.registry import find_version_by_run_tag

    version = find_version_by_run_tag(settings, RUN_TAG, run_id)
    if version is None:
        raise TrainingFailed(f"no model version carries {RUN_TAG}={run_id}: training registered nothing")
    return str(version.version)
