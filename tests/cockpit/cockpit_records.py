"""Registry records for the cockpit's tests, written through the real promote path.

Versions are registered without model files (the cockpit reads only their tags and runs); the gate
decides on given numbers and :func:`mlflywheel.promote.record_and_move` records the decision and
moves the aliases, exactly as after scoring. Used by tests/cockpit and tests/browser.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from mlflywheel import gate, holdout, promote, registry
from mlflywheel.settings import Settings


class FakeModel:
    def predict_proba(self, df: pd.DataFrame) -> np.ndarray:
        positive = 1 / (1 + np.exp(-(np.log1p(df["amount"].astype(float).fillna(0).to_numpy()) - 4.0)))
        return np.column_stack([1 - positive, positive])


def register_version(settings: Settings, airflow_run_id: str, *, trigger: str = "schedule",
                     drift_event_id: str = "") -> str:  # fmt: skip
    """A registered version whose run and version carry the tags training writes (no model files)."""
    from mlflow.tracking import MlflowClient

    registry.configure_mlflow(settings)
    client = MlflowClient(settings.mlflow_tracking_uri)
    experiment = registry.ensure_experiment(settings, settings.mlflow_experiment)
    tags = {"flywheel.airflow_dag_run_id": airflow_run_id, "flywheel.trigger": trigger,
            "flywheel.reason": "nightly" if trigger == "schedule" else "drift", "flywheel.drift_event_id": drift_event_id}
    tags = {k: v for k, v in tags.items() if v}
    run = client.create_run(experiment, tags=tags)
    client.set_terminated(run.info.run_id)
    if not client.search_registered_models(f"name = '{settings.model_name}'"):
        client.create_registered_model(settings.model_name)
    version = client.create_model_version(
        settings.model_name, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id,
        tags={**tags, "flywheel.run_id": run.info.run_id},
    )  # fmt: skip
    return str(version.version)


def gate_version(settings: Settings, version: str, metrics: dict[str, float], *, airflow_run_id: str,
                 rows: int = 1000, positives: int = 60, interval: tuple[float, float] | None = None,
                 mode: str = "gate") -> dict:  # fmt: skip
    """Score nothing, decide on the given numbers, and record through the real promote path."""
    current = registry.champion(settings)
    champion_version = str(current.version) if current is not None else None
    champion_metrics = None
    if champion_version is not None:
        champion_metrics = json.loads(registry.version_tags(settings, champion_version)["flywheel.gate.candidate_metrics"])
    low, high = interval if interval else (None, None)
    evidence = holdout.Evidence(
        candidate_version=version, champion_version=champion_version,
        candidate_metrics=metrics, champion_metrics=champion_metrics,
        gate_evidence=gate.Evidence(rows=rows, positives=positives, low=low, high=high, confidence=0.9),
        holdout={"rows": rows, "positives": positives, "extra_days": []},
    )  # fmt: skip
    decision = gate.decide(
        metrics, champion_metrics,
        floors=gate.Floors(min_pr_auc=settings.floor_pr_auc, min_roc_auc=settings.floor_roc_auc),
        metric=settings.gate_metric, margin=settings.gate_margin, evidence=evidence.gate_evidence,
        minimum=gate.EvidenceMinimum(rows=settings.gate_min_holdout_rows, positives=settings.gate_min_holdout_positives),
    )  # fmt: skip
    return promote.record_and_move(settings, evidence, decision, snapshot_id=f"snap-{version}", mode=mode,
                                   decided_by=f"airflow:train/{airflow_run_id}")  # fmt: skip
