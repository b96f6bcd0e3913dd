"""
### train: snapshot -> train -> gated promotion

Nightly (`FLYWHEEL_TRAIN_SCHEDULE`, no catchup), on manual trigger with the Params below, and
as a backfill created by `drift_check` when drift crosses its thresholds.

1. **wait_for_window** waits until `ingest` has recorded every day of the window.
2. **build_snapshot** reads the validated partitions of the `window_days` days ending with
   `window_end` (by default the last complete day before the run) and splits them by time into train / validation /
   holdout, written to `snapshots/` with their lineage (partitions and versions).
3. **train_model** runs the one training entrypoint, `python -m mlflywheel.training`: as a
   local process (`FLYWHEEL_TRAINING_BACKEND=local`) or in a Kubernetes pod. The run is
   tracked in MLflow and a model version registered; results travel through MLflow, tagged
   with this DAG run's id.
4. **evaluate_and_promote** scores the candidate and the current champion on the same
   holdout: the snapshot's holdout plus the validated days after the window that exist
   (`FLYWHEEL_GATE_HOLDOUT_EXTRA_DAYS`), rows the candidate never trained on. The candidate
   becomes `champion` only if it passes the absolute floors and beats the champion by the
   margin with a paired-bootstrap interval of the difference above 0; a holdout with too few
   rows or positives, or a difference within the noise, is recorded as `undecided` and moves
   nothing (`promotion_mode=shadow` never promotes and records the gate's verdict). The
   decision, its reasons and the evidence are written on the model version, promoted or not.

Rollback is one step: the `rollback` DAG.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG, CronTriggerTimetable, Param, task
from mlflywheel.orchestration import dag_support
from mlflywheel.orchestration.training_backends import training_task
from mlflywheel.settings import Settings

settings = Settings.from_env()

PARAMS = {
    "window_days": Param(
        settings.window_days, type="integer", minimum=1, maximum=365, title="Window (days)",
        description="Validated days used, ending with the window's last day.",
    ),
    "window_end": Param(
        None, type=["null", "string"], format="date", title="Window end",
        description="Last day of the window (YYYY-MM-DD), a day that has ended; "
        "empty: the last complete day before the run. drift_check sets it on its backfills.",
    ),
    "epochs": Param(
        settings.epochs, type="integer", minimum=1, maximum=500, title="Epochs",
        description="Passes over the training split; the epoch with the best validation PR-AUC is kept.",
    ),
    "learning_rate": Param(
        settings.learning_rate, type="number", exclusiveMinimum=0, maximum=1, title="Learning rate",
        description="AdamW step size.",
    ),
    "batch_size": Param(
        settings.batch_size, type="integer", minimum=16, maximum=1_048_576, title="Batch size",
        description="Rows per optimiser step, at most: a small training split gets smaller batches so that "
        "every epoch has at least FLYWHEEL_MIN_STEPS_PER_EPOCH steps (never below 16).",
    ),
    "seed": Param(settings.seed, type="integer", minimum=0, title="Seed", description="Makes training repeatable."),
    "promotion_mode": Param(
        "gate", type="string", enum=["gate", "shadow"], title="Promotion mode",
        description="gate: promote when the gate passes; shadow: evaluate and record, never promote.",
    ),
    "reason": Param(
        "scheduled", type="string", title="Reason", description="Why this run trains (recorded in MLflow)."
    ),
    "trigger": Param(
        "schedule", type="string", enum=["schedule", "manual", "drift_check"], title="Trigger",
        description="What started this run (recorded in MLflow); drift_check sets it on its backfills.",
    ),
    "drift_event_id": Param(None, type=["null", "string"], title="Drift event", description="Set by drift_check."),
    "drift_report": Param(None, type=["null", "string"], title="Drift report", description="Set by drift_check."),
}  # fmt: skip

with DAG(
    **dag_support.dag_args(
        settings,
        dag_id="train",
        description="Train a candidate on a validated snapshot and pass it through the promotion gate",
        doc_md=__doc__,
        schedule=CronTriggerTimetable(settings.train_schedule, timezone="UTC", interval=dt.timedelta(days=1)),
        catchup=False,
        stage="train",
        execution_timeout=dt.timedelta(minutes=settings.training_timeout_minutes),
        max_active_runs=1,
        params=PARAMS,
    )
):

    @task.sensor(**dag_support.sensor_args(settings))
    def wait_for_window(params=None, data_interval_end=None) -> bool:
        """Wait until `ingest` has finished every day of the window (validated or quarantined)."""
        import logging

        from mlflywheel.lake.keys import window_days
        from mlflywheel.ledger import days_without_summary

        days = window_days(dag_support.window_end(params, data_interval_end), params["window_days"])
        missing = days_without_summary(dag_support.lake(settings), settings.dataset, days)
        if missing:
            logging.getLogger("mlflywheel").info("waiting for ingest of %s", ", ".join(map(str, missing)))
        return not missing

    @task
    def build_snapshot(params=None, data_interval_end=None) -> dict:
        """Select the validated partitions of the window and split them by time."""
        from mlflywheel.training.snapshot import build_snapshot as build

        manifest = build(
            dag_support.lake(settings),
            dag_support.spec(settings),
            end_day=dag_support.window_end(params, data_interval_end),
            window_days=params["window_days"],
            fractions=settings.split_fraction_values,
            min_rows=settings.min_training_rows,
        )
        return {"snapshot_id": manifest["snapshot_id"], "rows": manifest.get("rows")}

    @task
    def evaluate_and_promote(snapshot: dict, trained: dict | None = None, params=None, run_id=None) -> dict:
        """Score candidate and champion on the same holdout; promote only through the gate."""
        from mlflywheel.orchestration.training_backends import candidate_version_for_run
        from mlflywheel.promote import evaluate_and_promote as gate

        return gate(
            settings,
            candidate_version=candidate_version_for_run(settings, run_id),
            snapshot_id=snapshot["snapshot_id"],
            mode=params["promotion_mode"],
            decided_by=f"airflow:train/{run_id}",
        )

    snapshot = build_snapshot()
    wait_for_window() >> snapshot
    evaluate_and_promote(snapshot, training_task(settings, snapshot))
