"""
### rollback: put the previous champion back, in one step

Manual only. Moves the `champion` alias back to the version held by `previous_champion` (or
to `target_version`, a version that passed the gate before) and records the rollback, with its
reason and this run's id, as tags on both versions. A target that never passed the gate, is the
champion already, or does not exist is refused with a clear error, and nothing moves.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG, Param, task
from mlflywheel.orchestration import dag_support
from mlflywheel.settings import Settings

settings = Settings.from_env()

with DAG(
    **dag_support.dag_args(
        settings,
        dag_id="rollback",
        description="Restore the previous champion model",
        doc_md=__doc__,
        schedule=None,
        catchup=False,
        stage="promote",
        execution_timeout=dt.timedelta(minutes=10),
        params={
            "reason": Param(
                type="string", minLength=3, title="Reason",
                description="Why the champion is rolled back (recorded on both versions).",
            ),
            "target_version": Param(
                None, type=["null", "integer"], minimum=1, title="Target version",
                description="Back to this model version instead of `previous_champion`; it must have "
                "passed the gate before. Empty: the previous champion.",
            ),
        },
    )
):

    @task
    def rollback_champion(params=None, run_id=None) -> dict:
        """Move `champion` back to `previous_champion` and record why."""
        from mlflywheel.promote import rollback

        target = params.get("target_version")
        return rollback(settings, reason=params["reason"], decided_by=f"airflow:rollback/{run_id}",
                        to_version=None if target is None else str(target))  # fmt: skip

    rollback_champion()
