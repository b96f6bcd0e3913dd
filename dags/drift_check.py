"""
### drift_check: recent validated data vs the champion's reference; retrain on drift

Daily (`FLYWHEEL_DRIFT_SCHEDULE`, no catchup), after the day's partition went through `ingest`.

1. **wait_for_partition** waits for the day's ledger summary (the partition was validated or
   quarantined), so the check never runs on half-ingested data.
2. **check_drift** tests the validated rows of the recent window (the spec's `drift.window_days`,
   else `FLYWHEEL_DRIFT_WINDOW_DAYS`) against the champion's own training rows, matched to the
   window's weekday (or hour) mix when the spec declares a seasonality: per-feature KS (numeric)
   and chi-square (categorical) tests, and a feature drifts only when its test is significant and
   its effect size (PSI by default) reaches the spec's threshold; the dataset drifts by the spec's
   rule (how many or what share of the monitored features), plus prediction drift (switchable).
   It also scores the champion on the newly labelled rows it did not train on: a drop of the gate
   metric beyond the spec's `performance.tolerance` is a trigger of its own. Backend:
   `FLYWHEEL_DRIFT_BACKEND` = `alibi` (alibi-detect, Business Source License: non-production use)
   or `scipy` (BSD). Writes a JSON and an HTML report (with the triggers that fired) to
   `reports/drift/` in the lake and to MLflow. Skips when there is no champion yet.
3. **request_retraining** handles drift events, once per event. The check that opens an event
   records a pending retrain in `state/drift/`; once `FLYWHEEL_DRIFT_RETRAIN_WAIT_DAYS` days of
   data after the event's first day exist (and the drift persisted: a check after the first day
   drifted too, else the event closes as a transient), the day's check (drifting or not) creates, through
   Airflow's REST API (credentials from the connection `FLYWHEEL_AIRFLOW_CONN_ID`), a backfill of
   `train`'s latest scheduled run (any `FLYWHEEL_TRAIN_SCHEDULE`) whose conf sets the window to end
   with that day and never reach before the event, so the candidate
   learns the new regime (it also waits for `FLYWHEEL_MIN_TRAINING_ROWS` rows of it; wait 0: at
   once, ending with the drifting day). Never while a backfill of `train` is active, never within
   `FLYWHEEL_DRIFT_COOLDOWN_HOURS` of the last one (a due retrain then waits for the next check);
   a new champion closes the event; a retrain that was not promoted is tried again only when
   `FLYWHEEL_DRIFT_RETRAIN_MAX_ATTEMPTS` is above 1 (default 1: one retraining per drift event;
   an undecided candidate is decided by `regate_undecided` instead). The run's conf carries the reason and the report; the
   retrained candidate passes the same gate.
4. **regate_undecided** gates again the newest candidate the gate left `undecided` (too little
   evidence, or a difference within noise) once validated days that arrived after it extend its
   holdout (up to `FLYWHEEL_GATE_HOLDOUT_EXTRA_DAYS`): small datasets get their decision later
   instead of never.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG, CronTriggerTimetable, task
from mlflywheel.orchestration import dag_support
from mlflywheel.settings import Settings

settings = Settings.from_env()

with DAG(
    **dag_support.dag_args(
        settings,
        dag_id="drift_check",
        description="Detect drift against the champion's reference and request one retraining per drift event",
        doc_md=__doc__,
        schedule=CronTriggerTimetable(settings.drift_schedule, timezone="UTC", interval=dt.timedelta(days=1)),
        catchup=False,
        stage="drift",
        execution_timeout=dt.timedelta(minutes=30),
        max_active_runs=1,
    )
):

    @task.sensor(**dag_support.sensor_args(settings))
    def wait_for_partition(data_interval_end=None) -> bool:
        """Wait until `ingest` has recorded the day's partition in the ledger."""
        from mlflywheel.ledger import read_summary

        day = dag_support.last_complete_day(data_interval_end)
        return read_summary(dag_support.lake(settings), settings.dataset, day) is not None

    @task
    def check_drift(data_interval_end=None) -> dict:
        """Run the drift tests and write the report (lake + MLflow)."""
        from mlflywheel.drift.check import run_drift_check

        day = dag_support.last_complete_day(data_interval_end)
        return run_drift_check(settings, dag_support.lake(settings), dag_support.spec(settings), day=day)

    @task
    def request_retraining(report: dict) -> dict:
        """One backfill of `train` per drift event, once the event's post-event days exist."""
        from mlflywheel.orchestration.airflow_api import api_from_connection
        from mlflywheel.orchestration.retraining import request_retraining as request

        return request(
            api_from_connection(settings.airflow_conn_id),
            dag_support.lake(settings),
            report,
            cooldown_hours=settings.drift_cooldown_hours,
            retrain_window_days=settings.drift_retrain_window_days,
            wait_days=settings.drift_retrain_wait_days,
            max_attempts=settings.drift_retrain_max_attempts,
            train_schedule=settings.train_schedule,
            min_rows=settings.min_training_rows,
        )

    @task
    def regate_undecided(run_id=None) -> dict | None:
        """Gate again the newest `undecided` candidate once later validated days extend its holdout."""
        from mlflywheel.promote import regate_undecided as regate

        return regate(settings, decided_by=f"airflow:drift_check/{run_id}")

    arrived = wait_for_partition()
    arrived >> regate_undecided()
    request_retraining(arrived >> check_drift())
