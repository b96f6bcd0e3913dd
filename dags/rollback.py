"""
### rollback: put the previous champion back, in one step

Manual only. Moves the `champion` alias back to the version held by `previous_champion` and
records the rollback, with its reason and this run's id, as tags on both versions.
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
        },
    )
):

    @task
    def rollback_champion(params=None, run_id=None) -> dict:
        """Move `champion` back to `previous_champion` and record why."""
        from mlflywheel.promote import rollback

        return rollback(settings, reason=params["reason"], decided_by=f"airflow:rollback/{run_id}")

    rollback_champion()
