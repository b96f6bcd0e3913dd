"""What Flywheel's DAG files share: the DAG header, sensor arguments, dates, the asset, and the
lake and spec a task works on.

Imported by the DAG files at parse time, so: standard library and settings only at the top;
:func:`lake` and :func:`spec` import their modules when a task calls them.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from mlflywheel.settings import Settings

if TYPE_CHECKING:  # pragma: no cover
    from mlflywheel.datasets.spec import DatasetSpec
    from mlflywheel.lake import Lake

OWNER = "flywheel"


def default_args(settings: Settings, *, execution_timeout: dt.timedelta) -> dict[str, Any]:
    """Retries with exponential backoff and a timeout on every task."""
    return {
        "owner": OWNER,
        "retries": settings.task_retries,
        "retry_delay": dt.timedelta(seconds=settings.retry_delay_seconds),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": dt.timedelta(minutes=15),
        "execution_timeout": execution_timeout,
    }


def start_date(settings: Settings) -> dt.datetime:
    return dt.datetime.combine(dt.date.fromisoformat(settings.start_date), dt.time(0, 0), tzinfo=dt.UTC)


def partition_day(data_interval_start: dt.datetime) -> dt.date:
    """``ingest`` runs once per UTC day; its data interval *is* the partition."""
    return data_interval_start.date()


def last_complete_day(data_interval_end: dt.datetime) -> dt.date:
    """``train`` and ``drift_check`` look at days that ended before they run."""
    return data_interval_end.date() - dt.timedelta(days=1)


def window_end(params: dict[str, Any], data_interval_end: dt.datetime, *, now: dt.datetime | None = None) -> dt.date:
    """The last day of ``train``'s window: the ``window_end`` Param when set, else the last complete
    day before the run. A drift retrain sets it on a backfill of the latest scheduled run, whose
    own interval may be older (a weekly schedule), so the Param is bounded by the clock: any day
    that has ended, never today or later."""
    chosen = params.get("window_end")
    if not chosen:
        return last_complete_day(data_interval_end)
    try:
        day = dt.date.fromisoformat(str(chosen))
    except ValueError as exc:
        raise ValueError(f"window_end must be a date (YYYY-MM-DD), got {chosen!r}") from exc
    today = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).date()
    if day >= today:
        raise ValueError(f"window_end {day} has not ended yet (today is {today} UTC)")
    return day


def validated_asset_name(settings: Settings) -> str:
    return f"flywheel_validated_{settings.dataset}"


def validated_asset_uri(settings: Settings) -> str:
    return f"{settings.lake_uri.rstrip('/')}/validated/{settings.dataset}"


def dag_args(
    settings: Settings,
    *,
    dag_id: str,
    description: str,
    doc_md: str | None,
    schedule: Any,
    catchup: bool,
    stage: str,
    execution_timeout: dt.timedelta,
    **extra: Any,
) -> dict[str, Any]:
    """The ``DAG(...)`` arguments every Flywheel DAG has; ``extra`` adds what is particular to one."""
    return {
        "dag_id": dag_id,
        "description": description,
        "doc_md": doc_md,
        "schedule": schedule,
        "start_date": start_date(settings),
        "catchup": catchup,
        "tags": ["flywheel", stage, settings.dataset],
        "default_args": default_args(settings, execution_timeout=execution_timeout),
        **extra,
    }


def sensor_args(settings: Settings) -> dict[str, Any]:
    """Arguments of the sensors that wait for data: poke interval, timeout, no worker slot held."""
    return {
        "poke_interval": settings.landing_poke_seconds,
        "timeout": settings.landing_timeout_hours * 3600,
        "mode": "reschedule",
    }


def lake(settings: Settings) -> Lake:
    """The lake the settings name (imported when a task runs, not when the DAG is parsed)."""
    from mlflywheel.lake import lake_from_settings

    return lake_from_settings(settings)


def spec(settings: Settings) -> DatasetSpec:
    """The spec of the configured dataset: ``FLYWHEEL_DATASET_SPEC``'s file, else the built-in
    ``FLYWHEEL_DATASET`` (:func:`mlflywheel.datasets.load_spec`, as every process loads it)."""
    from mlflywheel.datasets import load_spec

    return load_spec(settings)
