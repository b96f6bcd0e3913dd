"""Shared DAG wiring: default arguments, dates, the validated-data asset name.

Imported by the DAG files at parse time, so: standard library and settings only.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from mlflywheel.settings import Settings

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


def validated_asset_name(settings: Settings) -> str:
    return f"flywheel_validated_{settings.dataset}"


def validated_asset_uri(settings: Settings) -> str:
    return f"{settings.lake_uri.rstrip('/')}/validated/{settings.dataset}"
