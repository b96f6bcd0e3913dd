"""The training entrypoint's contract with whoever runs it: its command line and its result line.

Every backend (a local process, a Kubernetes pod) runs exactly :func:`training_command`; the
entrypoint prints its result as the last stdout line, ``FLYWHEEL_RESULT {json}``. The model
version it registers carries the tag :data:`RUN_TAG` (the orchestrator's run id), which is how
the gate finds the candidate: nothing the gate needs travels only through a backend's output.
Standard library only: DAG files import this at parse time.
"""

from __future__ import annotations

import json
from typing import Any

RESULT_PREFIX = "FLYWHEEL_RESULT "
RUN_TAG = "flywheel.airflow_dag_run_id"


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


def parse_result_line(line: str) -> dict[str, Any] | None:
    """The result of a ``FLYWHEEL_RESULT {json}`` line; None for any other line."""
    if not line.startswith(RESULT_PREFIX):
        return None
    return json.loads(line[len(RESULT_PREFIX) :])
