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
5. With `promotion_mode=approval` (default: `FLYWHEEL_PROMOTION_MODE`), a candidate that passed
   the gate is recorded as `awaiting_approval` and **approve_promotion** asks in Airflow's
   *Required Actions*, with the gate's evidence in the request. **Approve** runs
   **promote_approved** (who and when recorded on the version, then the alias moves, if the
   champion is still the one the gate compared against); **Reject**, or no answer within
   `FLYWHEEL_APPROVAL_TIMEOUT_HOURS`, runs **record_refusal** and promotes nothing. The request is
   assigned to the roles in `FLYWHEEL_APPROVER_ROLES` (the compose stack: `approver`): nobody
   else's answer is accepted. In the other
   modes, and when the gate does not pass, these steps are skipped. While a run waits for an
   answer, the next `train` run waits too (one active run).

Rollback is one step: the `rollback` DAG.
"""

from __future__ import annotations

import datetime as dt

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import DAG, CronTriggerTimetable, task
from mlflywheel.orchestration import dag_support
from mlflywheel.orchestration.access import approval_assignees
from mlflywheel.orchestration.train_params import train_params
from mlflywheel.orchestration.training_backends import training_task
from mlflywheel.settings import Settings

settings = Settings.from_env()

PARAMS = train_params(settings)

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
        from mlflywheel import promote
        from mlflywheel.orchestration.training_backends import candidate_version_for_run

        result = promote.evaluate_and_promote(
            settings,
            candidate_version=candidate_version_for_run(settings, run_id),
            snapshot_id=snapshot["snapshot_id"],
            mode=params["promotion_mode"],
            decided_by=f"airflow:train/{run_id}",
        )
        if result["awaiting_approval"]:
            result["approval"] = promote.approval_request(result, cockpit_url=dag_support.COCKPIT_PATH)
        return result

    @task.short_circuit
    def needs_approval(gated: dict) -> bool:
        """Go on only when the gate passed in `approval` mode; otherwise the approval steps are skipped."""
        return bool(gated.get("awaiting_approval"))

    approve_promotion = ApprovalOperator(
        task_id=dag_support.APPROVAL_TASK_ID,
        subject="{{ ti.xcom_pull(task_ids='evaluate_and_promote')['approval']['subject'] }}",
        body="{{ ti.xcom_pull(task_ids='evaluate_and_promote')['approval']['body'] }}",
        defaults="Reject",  # no answer in time: Airflow answers Reject for nobody; nothing is promoted
        response_timeout=dt.timedelta(hours=settings.approval_timeout_hours),
        # FLYWHEEL_APPROVER_ROLES: only members of these roles may answer (FAB auth manager; empty: not assigned)
        assigned_users=approval_assignees(settings.approver_roles),
        doc_md="A person approves or rejects the promotion that passed the gate (Required Actions).",
    )

    @task
    def promote_approved(gated: dict, run_id=None) -> dict:
        """Approved: record who approved on the version, then move the `champion` alias."""
        answer = dag_support.approval_answer(settings, run_id)
        return dag_support.apply_approval_answer(settings, gated, answer, run_id)

    @task(trigger_rule="none_failed")
    def record_refusal(gated: dict, run_id=None) -> dict | None:
        """Rejected or unanswered (the approval skipped `promote_approved`): record it on the version."""
        answer = dag_support.approval_answer(settings, run_id)
        if answer["answer"] == "approved":
            return None  # promote_approved recorded it
        return dag_support.apply_approval_answer(settings, gated, answer, run_id)

    snapshot = build_snapshot()
    wait_for_window() >> snapshot
    gated = evaluate_and_promote(snapshot, training_task(settings, snapshot))
    approved = promote_approved(gated)
    needs_approval(gated) >> approve_promotion >> approved >> record_refusal(gated)
