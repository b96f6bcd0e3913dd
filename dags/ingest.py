"""
### ingest: land -> raw -> validated (or quarantine), one partition per UTC day

Runs daily with catchup; each run owns the partition of its data interval
(`dt=<data_interval_start:%Y-%m-%d>`) of the dataset chosen by `FLYWHEEL_DATASET`.

1. **wait_for_landing** (`FLYWHEEL_SOURCE=landing`) waits (reschedule mode, no worker slot
   held) for the upstream's `_SUCCESS` marker under `landing/<dataset>/dt=…/`; a late
   partition is picked up when it arrives, a missing one fails after
   `FLYWHEEL_LANDING_TIMEOUT_HOURS`. With `FLYWHEEL_SOURCE=postgres`, **extract_from_postgres**
   instead streams exactly the interval's rows of `FLYWHEEL_SOURCE_TABLE` (COPY, one
   consistent snapshot) into the landing zone.
2. **ingest_raw** reads the landed file, normalises it to the dataset schema and publishes
   `raw/<dataset>/dt=…/` atomically. An unreadable file is quarantined whole.
3. **validate** runs the Great Expectations suite built from the dataset spec. Passing rows go
   to `validated/`, failing rows (or the whole partition when the failure is partition-level)
   to `quarantine/` with the validation result and a readable report under `reports/`.
   Rows in = rows validated + rows quarantined, recorded in the partition's ledger summary
   (and, with `FLYWHEEL_LEDGER_URI`, in the PostgreSQL ledger table, in the same step).
   Emits the validated-data asset with the counts in its extra.

With `FLYWHEEL_SOURCE=postgres` and `FLYWHEEL_SOURCE_VALIDATION=postgres` the DAG has one task,
**validate**, which runs the same suite inside PostgreSQL (Great Expectations' SQL datasource, one
consistent snapshot) and extracts only its result: passing rows to `validated/`, failing rows
with their reasons to `quarantine/`, the report and the ledger summary in one commit. Nothing is
landed and `raw/` holds nothing for the day; downstream reads `validated/` as always.

With `FLYWHEEL_KEEP_RAW=false` steps 2 and 3 are one task, **validate**, which parses, casts,
checks and splits the landed file straight into `validated/` and `quarantine/` in one streaming
pass (same results as the two steps); `raw/` holds nothing for the day.

Re-running a day replaces its partitions; it never duplicates rows.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG, Asset, CronDataIntervalTimetable, task
from mlflywheel.orchestration import dag_support
from mlflywheel.settings import Settings

settings = Settings.from_env()
VALIDATED = Asset(
    name=dag_support.validated_asset_name(settings), uri=dag_support.validated_asset_uri(settings)
)

with DAG(
    **dag_support.dag_args(
        settings,
        dag_id="ingest",
        description="Land, normalise and validate one daily partition",
        doc_md=__doc__,
        schedule=CronDataIntervalTimetable(settings.ingest_schedule, timezone="UTC"),
        catchup=True,
        stage="ingest",
        execution_timeout=dt.timedelta(minutes=30),
        max_active_runs=4,
    )
):

    @task.sensor(**dag_support.sensor_args(settings))
    def wait_for_landing(data_interval_start=None) -> bool:
        """Wait for the upstream's `_SUCCESS` marker of this interval's partition."""
        from mlflywheel.datasets.landing import is_landed

        day = dag_support.partition_day(data_interval_start)
        return is_landed(dag_support.lake(settings), dag_support.spec(settings), day)

    @task
    def extract_from_postgres(data_interval_start=None) -> dict:
        """Land exactly the interval's rows of the source table (COPY, consistent snapshot)."""
        from mlflywheel.sources.postgres import extract_partition_to_landing

        return extract_partition_to_landing(
            dag_support.lake(settings),
            dag_support.spec(settings),
            dag_support.partition_day(data_interval_start),
            postgres_uri=settings.source_postgres_uri,
            table=settings.source_table,
        )

    @task
    def ingest_raw(data_interval_start=None, run_id=None) -> dict:
        """Normalise the landed file to the schema and publish the raw partition."""
        from mlflywheel.ingest import ingest_partition
        from mlflywheel.ledger import sink_from_settings

        return ingest_partition(
            dag_support.lake(settings),
            dag_support.spec(settings),
            dag_support.partition_day(data_interval_start),
            run_id=run_id,
            ledger_sink=sink_from_settings(settings),
            chunk_rows=settings.partition_chunk_rows,
        )

    @task(outlets=[VALIDATED])
    def validate(raw: dict, data_interval_start=None, run_id=None, outlet_events=None) -> dict:
        """Validate the raw partition chunk by chunk; publish validated rows, quarantine the rest."""
        from mlflywheel.ledger import sink_from_settings
        from mlflywheel.validation import validate_partition

        summary = validate_partition(
            dag_support.lake(settings),
            dag_support.spec(settings),
            dag_support.partition_day(data_interval_start),
            run_id=run_id,
            max_failed_row_fraction=settings.max_failed_row_fraction,
            ledger_sink=sink_from_settings(settings),
            chunk_rows=settings.partition_chunk_rows,
            engine=settings.validation_engine,
        )
        outlet_events[VALIDATED].extra = dag_support.validated_asset_extra(summary)
        return summary

    @task(task_id="validate", outlets=[VALIDATED])
    def validate_in_postgres(data_interval_start=None, run_id=None, outlet_events=None) -> dict:
        """Validate the interval's rows inside PostgreSQL; publish validated rows, quarantine the rest."""
        from mlflywheel.ledger import sink_from_settings
        from mlflywheel.validation.pushdown import validate_in_postgres

        summary = validate_in_postgres(
            dag_support.lake(settings),
            dag_support.spec(settings),
            dag_support.partition_day(data_interval_start),
            postgres_uri=settings.source_postgres_uri,
            table=settings.source_table,
            run_id=run_id,
            max_failed_row_fraction=settings.max_failed_row_fraction,
            ledger_sink=sink_from_settings(settings),
            settings=settings,
        )
        outlet_events[VALIDATED].extra = dag_support.validated_asset_extra(summary)
        return summary

    @task(task_id="validate", outlets=[VALIDATED])
    def validate_landed(data_interval_start=None, run_id=None, outlet_events=None) -> dict:
        """Ingest and validate the landed file in one streaming pass (no raw); publish, quarantine."""
        from mlflywheel.ledger import sink_from_settings
        from mlflywheel.validation.single_pass import validate_landed

        summary = validate_landed(
            dag_support.lake(settings), dag_support.spec(settings), dag_support.partition_day(data_interval_start),
            run_id=run_id, max_failed_row_fraction=settings.max_failed_row_fraction,
            ledger_sink=sink_from_settings(settings), chunk_rows=settings.partition_chunk_rows,
            engine=settings.validation_engine,
        )  # fmt: skip
        outlet_events[VALIDATED].extra = dag_support.validated_asset_extra(summary)
        return summary

    if settings.source_validation == "postgres":  # the suite runs where the rows live
        validate_in_postgres()
    else:
        arrival = extract_from_postgres() if settings.source == "postgres" else wait_for_landing()
        if settings.keep_raw:
            validate(arrival >> ingest_raw())
        else:  # one pass from the landed file, nothing in raw
            arrival >> validate_landed()
