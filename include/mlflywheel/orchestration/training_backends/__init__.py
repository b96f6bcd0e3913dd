"""One training entrypoint, two backends: a local process or a Kubernetes pod.

Both run ``python -m mlflywheel.training`` with the same arguments
(:func:`mlflywheel.training.command.training_command`); both hand their result to the gate
through MLflow: the run and its model version carry the tag ``flywheel.airflow_dag_run_id``,
which :func:`candidate_version_for_run` looks up. Nothing the gate needs travels only through XCom.

Backends are registered by name in :data:`BACKENDS` (``FLYWHEEL_TRAINING_BACKEND``) and imported
only when chosen. Light at import time: the DAG file calls :func:`training_task` while it is parsed.
"""

from __future__ import annotations

import importlib
from typing import Any

from mlflywheel.settings import Settings
from mlflywheel.training.command import RUN_TAG, TrainingFailed

# backend name -> "module:function(settings, snapshot) -> the train_model task's output"
BACKENDS: dict[str, str] = {
    "local": "mlflywheel.orchestration.training_backends.local:local_training_task",
    "kubernetes": "mlflywheel.orchestration.training_backends.kubernetes:kubernetes_training_task",
}


def training_task(settings: Settings, snapshot: Any) -> Any:
    """The ``train_model`` task for the configured backend, wired after ``snapshot``."""
    module, _, name = BACKENDS[settings.training_backend].partition(":")
    return getattr(importlib.import_module(module), name)(settings, snapshot)


def candidate_version_for_run(settings: Settings, run_id: str) -> str:
    """The model version that the training of DAG run ``run_id`` registered."""
    from mlflywheel.registry import find_version_by_run_tag

    version = find_version_by_run_tag(settings, RUN_TAG, run_id)
    if version is None:
        raise TrainingFailed(f"no model version carries {RUN_TAG}={run_id}: training registered nothing")
    return str(version.version)
