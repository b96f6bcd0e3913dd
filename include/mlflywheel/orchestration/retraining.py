"""Turn drift reports into at most one retraining backfill per drift event, once the event has data.

A *drift event* starts with a drifting check (``report["status"] == "drift"``: some retraining
trigger fired) against a champion that has no open event. A retrain right then would train on a
window that ends with the first drifting day, so the candidate would have seen almost nothing of
the new regime. So the event waits: the check that opens it records a *pending* retrain in the
drift state, due once ``wait_days`` days of data after the event's first day exist; the first daily
check (drifting or not) whose day is at least ``first_day + wait_days`` asks Airflow for a backfill
of ``train`` (one run, whatever its schedule) whose conf sets the window to end with that check's
day (the last complete day). The drift must persist: if no check after the first drifting day drifted
by the time the wait is over, the event was a transient (or a false alarm) and is closed without
a retrain; a later drift opens a new event, so the retrain does not mix two regimes. The retrain's window (:func:`retrain_window`) never reaches back before the event's
first day, so the candidate learns the new regime only, and the wait also lasts until that window
holds ``min_rows`` validated rows (a small daily volume waits longer). With ``wait_days=0`` the
check that opens the event creates the backfill at once (given the rows).

Once the backfill exists the event is *retraining*: later drifting checks do nothing; a check
without drift closes it. If the checks still drift against the same champion ``wait_days`` (at
least one) days after the retrain's window ended, that retrain was not promoted (rejected, or
undecided on too little evidence): with ``max_attempts`` above 1 the event retrains once more on
the larger window, at most ``max_attempts`` times in all (a gate that keeps refusing cannot
leave the loop retraining for ever). The default, 1, is one retraining per drift event: an
undecided candidate is decided later by ``promote.regate_undecided`` as its holdout grows. A new
champion (the retrain promoted, or any other promotion) closes any
event of the old champion, pending or not; a drifting check against the new champion opens a new
one. Independently of events, no backfill is created while one of ``train`` is still active
(Airflow also answers 409 then) nor within the cooldown after the last one: a due retrain that is
blocked stays pending and is tried again at the next check.

The decision (:func:`decide`) is pure; :func:`request_retraining` does the I/O around it.
State lives in the lake at ``keys.drift_state_key(dataset)``::

    {"open_event": {"event_id", "champion_version", "first_day", "reason", "report_key",
                    "wait_days", "retrain_after", "status": "pending" | "retraining",
                    "backfill_id", "window_end"} | null,
     "last_backfill_at", "last_backfill_id"}
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any

from mlflywheel.lake import Lake, keys
from mlflywheel.ledger import read_summary
from mlflywheel.orchestration.airflow_api import AirflowApi, AirflowApiError

log = logging.getLogger("mlflywheel.orchestration")

TRAIN_DAG_ID = "train"
PENDING, RETRAINING = "pending", "retraining"


@dataclass(frozen=True)
class RetrainDecision:
    create: bool
    reason: str
    event_id: str | None
    event: dict[str, Any] | None = field(default=None)  # the open event after this check (None: none)
    # The retrain window's last day when ``create``: the latest day any check of the event has
    # seen (a catch-up check of an earlier day comes after the latest day's own check).
    window_end: dt.date | None = None


def event_id_for(report: dict[str, Any]) -> str:
    return f"{report['dataset']}:champion-v{report['champion_version']}:{report['day']}"


def retrain_started(event: dict[str, Any]) -> bool:
    """Whether the event's backfill exists (events recorded before the wait have no status: they
    were only ever recorded with their backfill)."""
    return event.get("status", RETRAINING) == RETRAINING


def open_event_for(report: dict[str, Any], wait_days: int) -> dict[str, Any]:
    """A new event opened by the drifting ``report``: its retrain is due ``wait_days`` days later."""
    first_day = dt.date.fromisoformat(report["day"])
    return {
        "event_id": event_id_for(report),
        "champion_version": report.get("champion_version"),
        "first_day": first_day.isoformat(),
        "reason": drift_reason(report),
        "report_key": report.get("report_key"),
        "wait_days": wait_days,
        "retrain_after": (first_day + dt.timedelta(days=wait_days)).isoformat(),
        "status": PENDING,
        "backfill_id": None,
        "window_end": None,
        "drift_days": [first_day.isoformat()],  # the checks that drifted while the retrain waits
    }


def decide(
    report: dict[str, Any],
    state: dict[str, Any],
    *,
    active_backfills: int,
    now: dt.datetime,
    cooldown: dt.timedelta,
    wait_days: int = 0,
    post_event_rows: int | None = None,
    min_rows: int = 0,
    max_attempts: int = 1,
) -> RetrainDecision:
    """Should this check start a retraining backfill, and what is the open event after it? Pure.

    ``create`` means: a backfill of the training interval whose window ends with ``report["day"]``.
    ``event`` is the open event to keep in the state (the caller adds the backfill's id on create).
    ``post_event_rows`` (validated rows of the retrain window, when known) must reach ``min_rows``:
    the wait is over only when there are both enough days and enough rows of the new regime.
    ``max_attempts``: retrains of one event in all, when the earlier ones were not promoted.
    """
    if wait_days < 0:
        raise ValueError(f"wait_days must be >= 0, got {wait_days}")
    if max_attempts < 1:
        raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
    event = state.get("open_event") or None
    champion = report.get("champion_version")
    status = report.get("status")
    if event and champion is not None and event.get("champion_version") != champion:
        log.info("drift event %s closed: v%s is the champion now", event.get("event_id"), champion)
        event = None  # a new champion closes the old champion's event, pending or not

    if event is None:
        if status != "drift" or champion is None:
            return RetrainDecision(False, f"no drift ({status})", None, None)
        event = open_event_for(report, wait_days)
    elif retrain_started(event):
        after = _after_retrain(event, report, wait_days, max_attempts)
        if isinstance(after, RetrainDecision):
            return after
        event = after

    # The event's retrain is pending: is the wait over, and may a backfill start now?
    day = dt.date.fromisoformat(report["day"])
    event = _with_check(event, report, day, wait_days)
    if _is_transient(event, status, day):
        # Only the first day drifted, and the checks through the wait did not: a transient (or a
        # false alarm), not a new regime to learn. Closed; a later drift opens a new event, whose
        # retrain then starts from that day instead of mixing both regimes.
        return RetrainDecision(
            False,
            f"drift event {event['event_id']} closed: only {event['first_day']} drifted, "
            f"the checks through {day} did not (a transient, nothing to retrain)",
            None,
            None,
        )
    latest = max(day, dt.date.fromisoformat(event.get("checked_through") or day.isoformat()))
    waits = _why_pending(
        event, latest, state, active_backfills=active_backfills, now=now, cooldown=cooldown,
        post_event_rows=post_event_rows, min_rows=min_rows,
    )  # fmt: skip
    if waits:
        return RetrainDecision(False, waits, event["event_id"], event)
    reason = retrain_reason(event, latest, max_attempts)
    return RetrainDecision(True, reason, event["event_id"], event, window_end=latest)


def _with_check(event: dict[str, Any], report: dict[str, Any], day: dt.date, wait_days: int) -> dict[str, Any]:
    """The pending event with this check's day counted in (``checked_through``: the latest day
    checked while it waits, whatever the order the checks came in)."""
    seen = [d for d in (event.get("checked_through"), event.get("first_day"), day.isoformat()) if d]
    event = {**event, "checked_through": max(seen)}
    if report.get("status") != "drift":
        return event
    if day < dt.date.fromisoformat(event["first_day"]):
        # Checks can arrive out of day order (a catch-up after the latest run): the event starts
        # on its earliest drifting day, and its wait counts from there.
        event = {**open_event_for(report, wait_days), "event_id": event["event_id"],
                 "drift_days": event.get("drift_days"), "checked_through": event["checked_through"]}  # fmt: skip
    if event.get("drift_days") is not None:
        event = {**event, "drift_days": sorted({*event["drift_days"], day.isoformat()})}
    return event


def _is_transient(event: dict[str, Any], status: Any, day: dt.date) -> bool:
    """The wait is over, this check is not drifting, and no day but the first one drifted."""
    if day < dt.date.fromisoformat(event["retrain_after"]) or status == "drift":
        return False
    # Events recorded before drift days were kept have none: they retrain as before.
    return int(event.get("wait_days") or 0) > 0 and len(event.get("drift_days") or "..") < 2


def _why_pending(
    event: dict[str, Any],
    day: dt.date,
    state: dict[str, Any],
    *,
    active_backfills: int,
    now: dt.datetime,
    cooldown: dt.timedelta,
    post_event_rows: int | None,
    min_rows: int,
) -> str:
    """Why the pending event's retrain cannot start on this check ("" when it can)."""
    event_id = event["event_id"]
    retrain_after = dt.date.fromisoformat(event["retrain_after"])
    if day < retrain_after:
        return (
            f"drift event {event_id}: retrain waits for data up to {retrain_after} "
            f"({(retrain_after - day).days} more day(s))"
        )
    if post_event_rows is not None and post_event_rows < min_rows:
        return (
            f"drift event {event_id}: retrain waits for more post-event data "
            f"({post_event_rows} validated rows since {event['first_day']}, {min_rows} needed)"
        )
    if active_backfills:
        return f"{active_backfills} backfill(s) of {TRAIN_DAG_ID} still active; retrain of {event_id} stays pending"
    last = state.get("last_backfill_at")
    if last and now - dt.datetime.fromisoformat(last) < cooldown:
        return f"cooldown: last retraining backfill at {last}; retrain of {event_id} stays pending"
    return ""


def _after_retrain(
    event: dict[str, Any], report: dict[str, Any], wait_days: int, max_attempts: int
) -> RetrainDecision | dict[str, Any]:
    """A check after the event's backfill: closes it, leaves it, or re-opens it for one more attempt
    (the returned event, pending again)."""
    status = report.get("status")
    if status != "drift":
        return RetrainDecision(False, f"no drift ({status}): drift event {event['event_id']} closed", None, None)
    retry_after = _retry_day(event, wait_days, max_attempts)
    if retry_after is None or dt.date.fromisoformat(report["day"]) < retry_after:
        return RetrainDecision(
            False,
            f"drift event {event['event_id']} already handled by backfill {event.get('backfill_id')}",
            event["event_id"],
            event,
        )
    # Still drifting against the same champion: that retrain was not promoted. Try once more with
    # the data that arrived since (a larger window, a larger holdout).
    return {**event, "status": PENDING, "retrain_after": retry_after.isoformat(),
            "attempt": int(event.get("attempt", 1)) + 1}  # fmt: skip


def _retry_day(event: dict[str, Any], wait_days: int, max_attempts: int) -> dt.date | None:
    """When an event whose retrain was not promoted may retrain again; None after the last attempt."""
    if int(event.get("attempt", 1)) >= max_attempts or not event.get("window_end"):
        return None
    return dt.date.fromisoformat(event["window_end"]) + dt.timedelta(days=max(wait_days, 1))


def retrain_reason(event: dict[str, Any], window_end: dt.date, max_attempts: int = 1) -> str:
    """The event's own reason, and how much post-event data the window holds."""
    reason = event.get("reason") or f"drift event {event['event_id']}"
    waited = (window_end - dt.date.fromisoformat(event["first_day"])).days
    attempt = int(event.get("attempt", 1))
    if attempt > 1:
        reason = f"{reason}; attempt {attempt} of {max_attempts} (the earlier retrain was not promoted)"
    if waited <= 0:
        return reason
    return f"{reason}; retrained after {waited} day(s) of post-event data (window ends {window_end})"


def retrain_window(event: dict[str, Any], window_end: dt.date, max_days: int) -> list[dt.date]:
    """The days a drift retrain trains on: the most recent ``max_days`` up to ``window_end``, never
    before the event's first day, so the candidate learns the new regime only."""
    post_event = (window_end - dt.date.fromisoformat(event["first_day"])).days + 1
    return keys.window_days(window_end, max(1, min(max_days, post_event)))


def drift_reason(report: dict[str, Any]) -> str:
    """One readable line: which features drifted, whether the predictions did, whether performance fell."""
    parts = []
    if report.get("drifted_features"):
        parts.append("data drift in " + ", ".join(report["drifted_features"]))
    prediction = report.get("prediction_drift") or {}
    if prediction.get("is_drift"):
        p_value = prediction.get("p_value")
        parts.append(
            f"prediction drift (p={p_value:.2g})" if isinstance(p_value, float | int) else "prediction drift"
        )
    performance = report.get("performance") or {}
    if performance.get("triggered"):
        parts.append(f"performance: {performance.get('reason') or 'dropped beyond the tolerance'}")
    return f"drift on {report.get('day')} vs champion v{report.get('champion_version')}: " + "; ".join(
        parts or ["thresholds crossed"]
    )


def training_run_range(train_schedule: str, now: dt.datetime) -> tuple[str, str]:
    """The backfill range holding exactly one ``train`` run: the latest tick of its cron schedule
    (UTC) at or before ``now``.

    The run is only the vehicle: the retrain's window travels in its conf (``window_end``,
    ``window_days``), so this works for any schedule (nightly, weekly, ...). Airflow 3.3 selects a
    backfill's runs by logical date, both ends included; a cron-triggered run's logical date is its
    tick. That run has usually happened already (the nightly run of the day), so the backfill
    re-runs it (``reprocess_behavior=completed``) with the drift conf.
    """
    from croniter import croniter

    tick = croniter(train_schedule, now.astimezone(dt.UTC) + dt.timedelta(microseconds=1)).get_prev(dt.datetime)
    return tick.isoformat(), tick.isoformat()


def request_retraining(
    api: AirflowApi,
    lake: Lake,
    report: dict[str, Any],
    *,
    cooldown_hours: float,
    retrain_window_days: int,
    wait_days: int = 0,
    min_rows: int = 0,
    max_attempts: int = 1,
    train_schedule: str = "0 2 * * *",
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Apply :func:`decide` to ``report``, keep the event in the drift state, and create the
    backfill when it says so. Airflow is asked for its active backfills only when one is due.

    The retrain's window (conf ``window_days``) is :func:`retrain_window`; it must hold at least
    ``min_rows`` validated rows (the ingestion ledger's counts), else the retrain keeps waiting.
    The backfill re-runs the latest run of ``train`` (its cron ``train_schedule``, see
    :func:`training_run_range`) with the window in its conf. The outcome (backfill created, or
    why not) is also written into the day's drift report, so the report tells the whole day.
    """
    outcome = _request(
        api, lake, report, cooldown_hours=cooldown_hours, retrain_window_days=retrain_window_days,
        wait_days=wait_days, min_rows=min_rows, max_attempts=max_attempts, train_schedule=train_schedule,
        now=now or dt.datetime.now(dt.UTC),
    )  # fmt: skip
    record_outcome(lake, report, outcome)
    return outcome


def record_outcome(lake: Lake, report: dict[str, Any], outcome: dict[str, Any]) -> None:
    """Put the retraining outcome into the day's drift report JSON (key ``retraining``)."""
    key = report.get("report_key")
    if not key or not lake.exists(key):
        return
    stored = lake.get_json(key)
    if stored.get("day") != report.get("day"):  # not this check's report: leave it alone
        return
    lake.put_json(key, {**stored, "retraining": outcome})


def _request(
    api: AirflowApi,
    lake: Lake,
    report: dict[str, Any],
    *,
    cooldown_hours: float,
    retrain_window_days: int,
    wait_days: int,
    min_rows: int,
    max_attempts: int,
    train_schedule: str,
    now: dt.datetime,
) -> dict[str, Any]:
    key = keys.drift_state_key(report["dataset"])
    state = lake.get_json(key) if lake.exists(key) else {}
    window_end = dt.date.fromisoformat(report["day"])
    options = {"now": now, "cooldown": dt.timedelta(hours=cooldown_hours), "wait_days": wait_days,
               "max_attempts": max_attempts}  # fmt: skip
    decision = decide(report, state, active_backfills=0, **options)
    window: list[dt.date] = []
    if decision.create:
        window_end = decision.window_end or window_end
        window = retrain_window(decision.event or {}, window_end, retrain_window_days)
        rows = _validated_rows(lake, report["dataset"], window)
        options.update(post_event_rows=rows, min_rows=min_rows)
        decision = decide(report, state, active_backfills=0, **options)
    if decision.create:
        active = api.active_backfills(TRAIN_DAG_ID)
        decision = decide(report, state, active_backfills=len(active), **options)
    if not decision.create:
        _keep_event(lake, key, state, decision.event)
        log.info("no retraining backfill: %s", decision.reason)
        return _no_backfill(decision.reason, decision)

    event = dict(decision.event or {})
    from_date, to_date = training_run_range(train_schedule, now)
    conf = {
        "reason": decision.reason,
        "trigger": "drift_check",
        "drift_event_id": decision.event_id,
        "drift_report": event.get("report_key") or report.get("report_key"),
        "window_end": window_end.isoformat(),
        "window_days": len(window),
    }
    try:
        backfill = api.create_backfill(TRAIN_DAG_ID, from_date=from_date, to_date=to_date, conf=conf)
    except AirflowApiError as exc:
        if exc.status == 409:  # another backfill became active between our check and our request
            log.info("Airflow refused the backfill (409, one is active): %s", exc.body)
            _keep_event(lake, key, state, event)  # still pending: the next check tries again
            return _no_backfill("a backfill of train is already active (409)", decision)
        raise
    event.update(status=RETRAINING, backfill_id=backfill.get("id"), window_end=window_end.isoformat())
    lake.put_json(
        key,
        {"open_event": event, "last_backfill_at": now.isoformat(), "last_backfill_id": backfill.get("id")},
    )
    log.info(
        "created backfill %s of %s (%s .. %s): %s", backfill.get("id"), TRAIN_DAG_ID, from_date, to_date, conf
    )
    return {
        "action": "backfill_created",
        "backfill_id": backfill.get("id"),
        "from_date": from_date,
        "to_date": to_date,
        "conf": conf,
        "event_id": decision.event_id,
    }


def _validated_rows(lake: Lake, dataset: str, days: list[dt.date]) -> int:
    """Validated rows of ``days``, from the ingestion ledger (no partition is read)."""
    summaries = (read_summary(lake, dataset, day) for day in days)
    return sum(int(s.get("rows_validated", 0)) for s in summaries if s)


def _keep_event(lake: Lake, key: str, state: dict[str, Any], event: dict[str, Any] | None) -> None:
    """Write the state only when the open event changed (opened, closed)."""
    if event != (state.get("open_event") or None):
        lake.put_json(key, {**state, "open_event": event})


def _no_backfill(reason: str, decision: RetrainDecision) -> dict[str, Any]:
    pending = decision.event is not None and not retrain_started(decision.event)
    out: dict[str, Any] = {"action": "retrain_pending" if pending else "none", "reason": reason}
    if decision.event_id is not None:
        out["event_id"] = decision.event_id
    if pending:
        out["retrain_after"] = decision.event["retrain_after"]  # type: ignore[index]
    return out
