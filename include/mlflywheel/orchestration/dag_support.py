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


def validated_asset_extra(summary: dict[str, Any]) -> dict[str, Any]:
    """What the validated-data asset event carries: the partition's counts."""
    return {k: summary[k] for k in ("partition", "status", "rows_in", "rows_validated", "rows_quarantined")}


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


def hitl_answer(detail: dict[str, Any] | None) -> dict[str, str]:
    """A human-in-the-loop request's answer (``GET .../hitlDetails`` of the approval task) as
    Flywheel records it: ``answer`` approved | rejected | timed_out, ``by`` who answered, ``at`` when.

    At the response timeout Airflow answers the request's defaults ("Reject") for no user.
    """
    detail = detail or {}
    chosen = list(detail.get("chosen_options") or [])
    if not chosen:
        raise ValueError(f"the approval request has no answer yet: {detail!r}")
    user = detail.get("responded_by_user") or None
    at = detail.get("responded_at")
    at_text = at.isoformat() if isinstance(at, dt.datetime) else str(at or "")
    if user is None:
        return {"answer": "timed_out", "by": "", "at": at_text}
    name, ident = str(user.get("name") or ""), str(user.get("id") or "")
    by = f"{name} ({ident})" if name and ident and name != ident else (name or ident)
    return {"answer": "approved" if chosen == ["Approve"] else "rejected", "by": by, "at": at_text}


APPROVAL_TASK_ID = "approve_promotion"


def approval_answer(settings: Settings, run_id: str) -> dict[str, str]:
    """The answer to `train` run ``run_id``'s approval request, read from Airflow's REST API.

    (The approval task pushes no XCom when it resumes from waiting for input, so the request's
    own record is the source.)"""
    from mlflywheel.orchestration.airflow_api import api_from_connection

    detail = api_from_connection(settings.airflow_conn_id).hitl_detail("train", run_id, APPROVAL_TASK_ID)
    return hitl_answer(detail)


def apply_approval_answer(
    settings: Settings, gated: dict[str, Any], answer: dict[str, str], run_id: str
) -> dict[str, Any]:
    """Record ``answer`` on the gated candidate (and promote it if approved)."""
    import logging

    from mlflywheel.promote import apply_approval

    logging.getLogger("mlflywheel").info("approval of v%s: %s", gated["candidate_version"], answer)
    return apply_approval(
        settings,
        candidate_version=gated["candidate_version"],
        answer=answer["answer"],
        responded_by=answer["by"],
        responded_at=answer["at"],
        decided_by=f"airflow:train/{run_id}",
    )


COCKPIT_PATH = "/flywheel"  # where the API server mounts the cockpit's pages (plugins/flywheel_plugin.py)

