"""Turn a drift report into at most one retraining backfill per drift event.

A *drift event* is a run of consecutive drifting checks against the same champion. The first
drifting check of an event asks Airflow for a backfill of the ``train`` DAG covering exactly
one training interval (the one that ends with the drifting day), with the reason and the
report in the run's conf. Later checks of the same event do nothing; a check without drift
closes the event. Independently of events, no backfill is created while one of ``train`` is
still active (Airflow also answers 409 then), nor within the cooldown after the last one.

The decision (:func:`decide`) is pure; :func:`request_retraining` does the I/O around it.
State lives in the lake at ``state/drift/<dataset>.json``.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from mlflywheel.lake import Lake, keys
from mlflywheel.orchestration.airflow_api import AirflowApi, AirflowApiError

log = logging.getLogger("mlflywheel.orchestration")

TRAIN_DAG_ID = "train"


@dataclass(frozen=True)
class RetrainDecision:
    create: bool
    reason: str
    event_id: str | None


def event_id_for(report: dict[str, Any]) -> str:
    return f"{report['dataset']}:champion-v{report['champion_version']}:{report['day']}"


def decide(
    report: dict[str, Any],
    state: dict[str, Any],
    *,
    active_backfills: int,
    now: dt.datetime,
    cooldown: dt.timedelta,
) -> RetrainDecision:
    """Should this drift report start a retraining backfill? Pure function."""
    if report.get("status") != "drift":
        return RetrainDecision(False, f"no drift ({report.get('status')})", None)
    open_event = state.get("open_event")
    if open_event and open_event.get("champion_version") == report.get("champion_version"):
        return RetrainDecision(
            False,
            f"drift event {open_event['event_id']} already handled by backfill {open_event.get('backfill_id')}",
            open_event["event_id"],
        )
    event_id = event_id_for(report)
    if active_backfills:
        return RetrainDecision(False, f"{active_backfills} backfill(s) of {TRAIN_DAG_ID} still active", event_id)
    last = state.get("last_backfill_at")
    if last and now - dt.datetime.fromisoformat(last) < cooldown:
        return RetrainDecision(False, f"cooldown: last retraining backfill at {last}", event_id)
    return RetrainDecision(True, drift_reason(report), event_id)


def drift_reason(report: dict[str, Any]) -> str:
    """One readable line: which features drifted, and whether the predictions did."""
    parts = []
    if report.get("drifted_features"):
        parts.append("data drift in " + ", ".join(report["drifted_features"]))
    prediction = report.get("prediction_drift") or {}
    if prediction.get("is_drift"):
        parts.append(f"prediction drift (p={prediction.get('p_value'):.2g})")
    return f"drift on {report.get('day')} vs champion v{report.get('champion_version')}: " + "; ".join(
        parts or ["thresholds crossed"]
    )


def training_interval_for(day: dt.date) -> tuple[str, str]:
    """The backfill range holding the one daily ``train`` run whose window ends with ``day``.

    ``train`` fires once a day on a cron trigger with a one-day data interval: the run that
    fires on day ``day + 1`` trains on data up to and including ``day``. Airflow 3.3 picks the
    runs of a backfill of such a DAG by the time they fire (checked against a real scheduler:
    the range of day ``day + 1`` yields exactly that run), so the range is that whole day. In
    steady state the nightly run exists already, so the backfill re-runs it
    (``reprocess_behavior=completed``) with the drift conf.
    """
    start = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0, 0), tzinfo=dt.UTC)
    end = start + dt.timedelta(days=1) - dt.timedelta(seconds=1)
    return start.isoformat(), end.isoformat()


def request_retraining(
    api: AirflowApi,
    lake: Lake,
    report: dict[str, Any],
    *,
    cooldown_hours: float,
    retrain_window_days: int,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Apply :func:`decide` to ``report`` and create the backfill when it says so."""
    now = now or dt.datetime.now(dt.UTC)
    key = keys.drift_state_key(report["dataset"])
    state = lake.get_json(key) if lake.exists(key) else {}

    if report.get("status") != "drift":
        if state.get("open_event"):
            log.info("drift event %s closed: today's check shows no drift", state["open_event"]["event_id"])
            state = {**state, "open_event": None}
            lake.put_json(key, state)
        return {"action": "none", "reason": f"no drift ({report.get('status')})"}

    active = api.active_backfills(TRAIN_DAG_ID)
    decision = decide(
        report, state, active_backfills=len(active), now=now, cooldown=dt.timedelta(hours=cooldown_hours)
    )
    if not decision.create:
        log.info("no retraining backfill: %s", decision.reason)
        return {"action": "none", "reason": decision.reason, "event_id": decision.event_id}

    from_date, to_date = training_interval_for(dt.date.fromisoformat(report["day"]))
    conf = {
        "reason": decision.reason,
        "trigger": "drift_check",
        "drift_event_id": decision.event_id,
        "drift_report": report.get("report_key"),
        "window_days": retrain_window_days,
    }
    try:
        backfill = api.create_backfill(TRAIN_DAG_ID, from_date=from_date, to_date=to_date, conf=conf)
    except AirflowApiError as exc:
        if exc.status == 409:  # another backfill became active between our check and our request
            log.info("Airflow refused the backfill (409, one is active): %s", exc.body)
            return {"action": "none", "reason": "a backfill of train is already active (409)"}
        raise
    state = {
        "open_event": {
            "event_id": decision.event_id,
            "champion_version": report.get("champion_version"),
            "first_day": report["day"],
            "backfill_id": backfill.get("id"),
            "report_key": report.get("report_key"),
        },
        "last_backfill_at": now.isoformat(),
        "last_backfill_id": backfill.get("id"),
    }
    lake.put_json(key, state)
    log.info("created backfill %s of %s (%s .. %s): %s", backfill.get("id"), TRAIN_DAG_ID, from_date, to_date, conf)
    return {
        "action": "backfill_created",
        "backfill_id": backfill.get("id"),
        "from_date": from_date,
        "to_date": to_date,
        "conf": conf,
        "event_id": decision.event_id,
    }
