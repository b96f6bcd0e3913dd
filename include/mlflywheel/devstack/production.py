"""The production-like backends a team runs, for the same loop: used by the integration tests.

Airflow's metadata on PostgreSQL (components as separate processes), MLflow's backend on
PostgreSQL with artifacts on S3 behind MLflow's basic-auth app, the lake on S3, ingest reading a PostgreSQL source table, the
ingestion ledger in a PostgreSQL table. :func:`mlflywheel.demo.run_demo` takes a
:class:`ProductionBackends` to run the demo scenario on them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlflywheel.devstack.celery_executor import DEFAULT_QUEUE, CeleryWorker
from mlflywheel.devstack.mlflow_auth import MlflowBasicAuth


@dataclass(frozen=True)
class ProductionBackends:
    """The parts a team runs in production, for the same loop (integration tests use this).

    Airflow's metadata on PostgreSQL (components as separate processes), MLflow's backend on
    PostgreSQL with artifacts on S3, the lake on S3, ingest reading a PostgreSQL source table,
    the ingestion ledger in a PostgreSQL table. S3 credentials come from the AWS_* environment.
    MLflow runs with its basic-auth app (fresh logins; the loop writes as the service account)
    unless ``mlflow_auth`` is None.
    """

    airflow_db_uri: str
    mlflow_backend_uri: str
    mlflow_artifacts_destination: str
    lake_uri: str
    s3_endpoint_url: str
    source_postgres_uri: str
    source_table: str
    ledger_uri: str
    mlflow_auth: MlflowBasicAuth | None = field(default_factory=MlflowBasicAuth.generated)
    # Airflow's Celery executor with this broker (empty: the LocalExecutor), one general worker and,
    # with a training queue, a second worker that consumes only that queue (as compose's GPU worker).
    celery_broker_url: str = ""
    training_queue: str = ""

    def celery_workers(self) -> tuple[CeleryWorker, ...]:
        general = CeleryWorker("worker", (DEFAULT_QUEUE,), concurrency=2)
        if not self.training_queue:
            return (general,)
        return general, CeleryWorker(f"worker-{self.training_queue}", (self.training_queue,), concurrency=1)

    def env(self) -> dict[str, str]:
        queue = {"FLYWHEEL_TRAINING_QUEUE": self.training_queue} if self.training_queue else {}
        return {
            **queue,
            "FLYWHEEL_LAKE_URI": self.lake_uri,
            "FLYWHEEL_S3_ENDPOINT_URL": self.s3_endpoint_url,
            "MLFLOW_S3_ENDPOINT_URL": self.s3_endpoint_url,
            "FLYWHEEL_SOURCE": "postgres",
            "FLYWHEEL_SOURCE_POSTGRES_URI": self.source_postgres_uri,
            "FLYWHEEL_SOURCE_TABLE": self.source_table,
            "FLYWHEEL_LEDGER_URI": self.ledger_uri,
        }


def seed_postgres_source(backends: ProductionBackends, scenario: Any) -> int:
    """Load the scenario into the source table. Faults that only files can have (a corrupt
    file, a late delivery) do not exist in a table; row faults (nulls) are kept."""
    from mlflywheel.datasets import get_spec
    from mlflywheel.datasets.upstreams.faults import apply_fault
    from mlflywheel.datasets.upstreams.scenario import scenario_frame
    from mlflywheel.sources.postgres import load_frame_to_table

    spec = get_spec(scenario.dataset)
    rows = 0
    for day in scenario.day_list:
        frame = scenario_frame(scenario, day)
        fault = scenario.faults.get(day)
        if fault in ("nulls", "out_of_range", "duplicate_ids"):
            frame = apply_fault(frame, fault, seed=scenario.seed + day.toordinal(), spec=spec)
        load_frame_to_table(backends.source_postgres_uri, backends.source_table, spec, frame)
        rows += len(frame)
    return rows
