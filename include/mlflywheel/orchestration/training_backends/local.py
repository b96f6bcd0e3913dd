"""The local training backend: the entrypoint as a child process of the Airflow worker (the default)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from typing import Any

from mlflywheel.settings import Settings
from mlflywheel.training.command import TrainingFailed, parse_result_line, training_command

log = logging.getLogger("mlflywheel.orchestration")

OUTPUT_TAIL_LINES = 40  # lines of the child's output kept for the error message


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
            del tail[:-OUTPUT_TAIL_LINES]
            parsed = parse_result_line(line)
            if parsed is not None:
                result.update(parsed)
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


def local_training_task(settings: Settings, snapshot: Any) -> Any:
    """``train_model`` as a TaskFlow task that runs the entrypoint locally, after ``snapshot``."""
    from airflow.sdk import task

    # With the Celery executor a queue routes training to the workers that have the GPU.
    queue = {"queue": settings.training_queue} if settings.training_queue else {}

    @task(task_id="train_model", **queue)
    def train_model(snapshot: dict, params=None, run_id=None) -> dict:
        """Run `python -m mlflywheel.training` as a local process (the embedded default)."""
        cmd = training_command(snapshot["snapshot_id"], params, run_id)
        return run_local_training(cmd, timeout_s=settings.training_timeout_minutes * 60)

    return train_model(snapshot)
