"""What the cockpit pages show, read from the loop's records: plain functions, plain dicts.

Sources, all of them summaries (a page never opens a partition's data file, except the ingest-run
view's first quarantined rows of its one partition):

* the ingestion ledger: ``summary.json`` per partition (:mod:`mlflywheel.ledger`'s format);
* the drift reports: ``report.json`` per checked day, and the drift state (the open event);
* the registry: aliases ``champion`` / ``previous_champion``, model-version tags written by
  :mod:`mlflywheel.promote` (``flywheel.gate.*``, ``flywheel.rollback.*``, ``flywheel.champion.*``).

Long histories stay cheap: one listing of a prefix gives the days; only the days shown (the last
``days``, 60 by default) are read. The p-value plot needs every drift report; its compact points are
read concurrently and kept in memory for a while (:data:`POINT_TTL_SECONDS`), so a page view reads
only reports it has not seen recently.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from mlflywheel.lake import keys

if TYPE_CHECKING:  # pragma: no cover
    from mlflywheel.lake import Lake
    from mlflywheel.settings import Settings

DEFAULT_DAYS = 60
MAX_DAYS = 3700  # ten years of daily partitions
DEFAULT_VERSIONS = 30
TOP_REASONS = 3
QUARANTINE_SAMPLE_ROWS = 20
POINT_TTL_SECONDS = 600.0
_POINT_CACHE_LIMIT = 20_000
_READERS = 8

GATE = "flywheel.gate."
ROLLBACK = "flywheel.rollback."
CHAMPION_TAG = "flywheel.champion."
TRAIN_RUN_TAG = "flywheel.airflow_dag_run_id"  # mlflywheel.training.command.RUN_TAG
REFUSED = ("rejected", "undecided", "superseded")
AWAITING = "awaiting_approval"
APPROVAL = "flywheel.approval."
_DAY_IN_TEXT = re.compile(r"(\d{4}-\d{2}-\d{2})")


class NotFound(LookupError):
    """Nothing recorded for what was asked (a day, a run, a version): the page answers 404."""


class BadRequest(ValueError):
    """A query parameter that cannot be used (the page answers 400)."""


# --- input ---------------------------------------------------------------------------------
def parse_day(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(str(text))
    except ValueError:
        raise NotFound(f"{text!r} is not a day: expected YYYY-MM-DD") from None


def parse_count(text: str | None, *, default: int, name: str, maximum: int = MAX_DAYS) -> int:
    if text in (None, ""):
        return default
    try:
        value = int(str(text))
    except ValueError:
        raise BadRequest(f"{name} must be a whole number, got {text!r}") from None
    if not 1 <= value <= maximum:
        raise BadRequest(f"{name} must be between 1 and {maximum}, got {value}")
    return value


# --- MLflow links --------------------------------------------------------------------------
def mlflow_ui_url(settings: Settings) -> str | None:
    """The MLflow UI's address when the tracking URI is an MLflow server (http/https), else None."""
    from urllib.parse import urlsplit, urlunsplit

    uri = settings.mlflow_tracking_uri or ""
    if not uri.startswith(("http://", "https://")):
        return None
    # A browser link: never the credentials, query or fragment a tracking URI may carry.
    parts = urlsplit(uri)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def version_link(settings: Settings, version: str | None) -> str | None:
    base = mlflow_ui_url(settings)
    if not base or not version or version == "none":
        return None
    return f"{base}/#/models/{settings.model_name}/versions/{version}"


def run_link(settings: Settings, run_id: str | None) -> str | None:
    base = mlflow_ui_url(settings)
    return f"{base}/#/runs/{run_id}" if base and run_id else None


# --- listings ------------------------------------------------------------------------------
def listed_days(lake: Lake, prefix: str, filename: str) -> dict[dt.date, str]:
    """``{day: key}`` of every ``<prefix><dt=day>/<filename>`` under ``prefix`` (one listing)."""
    found: dict[dt.date, str] = {}
    for key in lake.list_keys(prefix):
        parts = key[len(prefix) :].split("/")
        if len(parts) == 2 and parts[1] == filename and parts[0].startswith(keys.DAY_PREFIX):
            try:
                found[dt.date.fromisoformat(parts[0][len(keys.DAY_PREFIX) :])] = key
            except ValueError:
                continue
    return found


def _last(days: Iterable[dt.date], count: int) -> list[dt.date]:
    """The days within ``count`` days of the newest (a calendar window), newest first."""
    ordered = sorted(days, reverse=True)
    if not ordered:
        return []
    first = ordered[0] - dt.timedelta(days=count - 1)
    return [d for d in ordered if d >= first]


def _read_all(lake: Lake, found: list[str]) -> list[Any]:
    if len(found) <= 2:
        return [lake.get_json(k) for k in found]
    with ThreadPoolExecutor(max_workers=min(_READERS, len(found))) as pool:
        return list(pool.map(lake.get_json, found))


# --- ingestion ledger ----------------------------------------------------------------------
def _top_reasons(reasons: Any, limit: int = TOP_REASONS) -> list[tuple[str, int]]:
    if isinstance(reasons, dict):
        pairs = [(str(k), int(v)) for k, v in reasons.items()]
    elif isinstance(reasons, list):
        pairs = [(str(r), 0) for r in reasons]
    else:
        pairs = []
    return sorted(pairs, key=lambda p: (-p[1], p[0]))[:limit]


def ledger_row(summary: dict[str, Any]) -> dict[str, Any]:
    reasons = summary.get("reasons") or {}
    return {
        "day": summary["partition"],
        "status": summary.get("status", "?"),
        "rows_in": int(summary.get("rows_in", 0)),
        "rows_validated": int(summary.get("rows_validated", 0)),
        "rows_quarantined": int(summary.get("rows_quarantined", 0)),
        "top_reasons": _top_reasons(reasons),
        "more_reasons": max(0, len(reasons) - TOP_REASONS),
        "partition_failures": list(summary.get("partition_failures") or []),
        "run_id": summary.get("run_id", ""),
        "validated_at": summary.get("validated_at", ""),
    }


def ledger(lake: Lake, dataset: str, *, days: int = DEFAULT_DAYS) -> dict[str, Any]:
    """The ledger's partitions of the last ``days`` days (newest first), and the totals shown."""
    found = listed_days(lake, keys.ledger_prefix(dataset), keys.SUMMARY_JSON)
    shown = _last(found, days)
    rows = [ledger_row(s) for s in _read_all(lake, [found[d] for d in shown])]
    out: dict[str, Any] = {
        "rows": rows,
        "days": days,
        "partitions_total": len(found),
        "first_day": min(found).isoformat() if found else None,
        "last_day": max(found).isoformat() if found else None,
        "totals": {
            "partitions": len(rows),
            "rows_in": sum(r["rows_in"] for r in rows),
            "rows_validated": sum(r["rows_validated"] for r in rows),
            "rows_quarantined": sum(r["rows_quarantined"] for r in rows),
            "quarantined": sum(r["status"] == "quarantined" for r in rows),
            "partially_quarantined": sum(r["status"] == "partially_quarantined" for r in rows),
        },
        "empty_reason": None,
    }
    if not found:
        out["empty_reason"] = (
            f"no partition of {dataset} has been ingested yet: the ledger gets one summary per partition "
            "when the ingest DAG validates (or quarantines) it"
        )
    return out


def partition_summary(lake: Lake, dataset: str, day: dt.date) -> dict[str, Any]:
    key = keys.ledger_summary_key(dataset, day)
    if not lake.exists(key):
        raise NotFound(f"no ledger summary for {dataset} {day.isoformat()}: that partition was not ingested")
    return lake.get_json(key)


def validation_report_html(lake: Lake, dataset: str, day: dt.date) -> str:
    summary = partition_summary(lake, dataset, day)
    key = summary.get("report_key") or keys.validation_report_key(dataset, day)
    if not lake.exists(key):
        raise NotFound(f"the partition {dataset} {day.isoformat()} has no validation report")
    return lake.get_bytes(key).decode("utf-8", errors="replace")


def drift_report_html(lake: Lake, dataset: str, day: dt.date) -> str:
    key = keys.drift_report_key(dataset, day, keys.REPORT_HTML)
    if not lake.exists(key):
        raise NotFound(f"no drift report for {dataset} {day.isoformat()}: no drift check ran for that day")
    return lake.get_bytes(key).decode("utf-8", errors="replace")


def ingest_run(lake: Lake, dataset: str, run_id: str, *, limit: int = QUARANTINE_SAMPLE_ROWS) -> dict[str, Any]:
    """An ingest run's partition summary and its first ``limit`` quarantined rows with reasons.

    The run is found by the ``run_id`` its summary records; the day in a scheduled run's id is
    tried first, then every summary, newest first.
    """
    found = listed_days(lake, keys.ledger_prefix(dataset), keys.SUMMARY_JSON)
    hinted: list[dt.date] = []
    match = _DAY_IN_TEXT.search(run_id)
    if match:
        try:
            day = dt.date.fromisoformat(match.group(1))
            hinted = [day, day - dt.timedelta(days=1), day + dt.timedelta(days=1)]
        except ValueError:
            pass
    order = [d for d in hinted if d in found] + [d for d in sorted(found, reverse=True) if d not in hinted]
    summary = None
    for day in order:
        candidate = lake.get_json(found[day])
        if candidate.get("run_id") == run_id:
            summary = candidate
            break
    if summary is None:
        raise NotFound(f"no partition of {dataset} was ingested by run {run_id!r} (yet)")
    return partition_with_quarantine(lake, dataset, summary, limit=limit)


def partition_with_quarantine(
    lake: Lake, dataset: str, summary: dict[str, Any], *, limit: int = QUARANTINE_SAMPLE_ROWS
) -> dict[str, Any]:
    """A partition's summary, ledger row and its first ``limit`` quarantined rows with reasons."""
    day = dt.date.fromisoformat(summary["partition"])
    out = {"summary": summary, "row": ledger_row(summary), "quarantined_rows": [], "columns": [],
           "quarantine_note": None}  # fmt: skip
    manifest = lake.manifest(keys.QUARANTINE, dataset, day)
    if manifest is None:
        out["quarantine_note"] = "nothing was quarantined"
    elif keys.DATA_FILE not in manifest.get("files", []):
        out["quarantine_note"] = "the whole file was quarantined as it was delivered (no rows could be read)"
    else:
        frame = lake.read_frame(keys.QUARANTINE, dataset, day).head(limit)
        reasons = keys.QUARANTINE_REASONS_COLUMN
        columns = [reasons] + [c for c in frame.columns if c != reasons and not keys.is_meta_column(c)]
        columns = [c for c in columns if c in frame.columns]
        out["columns"] = columns
        out["quarantined_rows"] = [
            ["" if _is_missing(v) else str(v) for v in row] for row in frame[columns].itertuples(index=False)
        ]
        out["quarantine_note"] = f"first {len(frame)} of {summary.get('rows_quarantined', '?')} quarantined rows"
    return out


def _is_missing(value: Any) -> bool:
    import pandas as pd

    try:
        return bool(pd.isna(value))  # None, NaN, NA, NaT
    except (TypeError, ValueError):  # not a scalar
        return False


# --- drift ---------------------------------------------------------------------------------
def drift_state(lake: Lake, dataset: str) -> dict[str, Any]:
    key = keys.drift_state_key(dataset)
    return lake.get_json(key) if lake.exists(key) else {}


def _retraining_note(report: dict[str, Any], state: dict[str, Any]) -> str:
    """The backfill a day's check created, or why not: recorded in the report by drift_check's
    request_retraining (``retraining``); for older reports, as far as the drift state tells."""
    recorded = report.get("retraining") or {}
    if recorded.get("action") == "backfill_created":
        conf = recorded.get("conf") or {}
        return (f"backfill {recorded.get('backfill_id', '?')} of train created (drift event "
                f"{recorded.get('event_id', '?')}; window of {conf.get('window_days', '?')} day(s) "
                f"ending {conf.get('window_end', '?')})")  # fmt: skip
    if recorded.get("action") == "retrain_pending":
        return f"retrain pending until {recorded.get('retrain_after', '?')}: {recorded.get('reason', '')}"
    if recorded:
        return f"no backfill: {recorded.get('reason', '')}"
    day = report.get("day", "")
    event = state.get("open_event") or {}
    if report.get("status") == "skipped":
        return "no check, no retraining"
    if event and event.get("backfill_id") and event.get("window_end") == day:
        return f"backfill {event['backfill_id']} of train created (drift event {event.get('event_id', '?')})"
    if event and event.get("first_day", "9999") <= day:
        if event.get("status") == "pending":
            return f"drift event open: retrain pending until {event.get('retrain_after', '?')} (post-event data)"
        if event.get("status") == "retraining":
            return f"retraining in progress (backfill {event.get('backfill_id', '?')}): no second backfill"
    if report.get("status") == "no_drift":
        return "no drift: nothing to retrain"
    if state.get("last_backfill_id") and str(state.get("last_backfill_at", "")).startswith(day):
        return f"backfill {state['last_backfill_id']} of train created"
    return "not recorded (the drift state keeps only the open event and the last backfill)"


def drift_row(report: dict[str, Any], state: dict[str, Any],
              retrains: dict[tuple[str, str], list[dict[str, Any]]] | None = None) -> dict[str, Any]:  # fmt: skip
    """One checked day; ``retrains`` (:func:`retrains_by_event`) names the versions trained for the
    drift event this day's check opened."""
    prediction = report.get("prediction_drift") or {}
    performance = report.get("performance") or {}
    return {
        "day": report.get("day", ""),
        "status": report.get("status", "?"),
        "triggers": list(report.get("triggers") or []),
        "drifted_features": list(report.get("drifted_features") or []),
        "prediction_p_value": prediction.get("p_value"),
        "prediction_drifted": bool(prediction.get("drifted")),
        "performance_status": performance.get("status"),
        "performance_drop": performance.get("drop"),
        "performance_reason": performance.get("reason"),
        "champion_version": report.get("champion_version"),
        "summary": report.get("summary") or report.get("reason") or "",
        "retraining": _retraining_note(report, state),
        "retrained_versions": [
            {"version": r["version"], "decision": r.get("decision") or "not gated"}
            for r in (retrains or {}).get((str(report.get("champion_version")), report.get("day", "")), [])
        ],
        "mlflow_run_id": report.get("mlflow_run_id"),
    }


def plot_point(report: dict[str, Any]) -> dict[str, Any]:
    """The compact part of a report the p-value plot needs."""
    data = report.get("data_drift") or {}
    features = {
        str(f["name"]): float(f["p_value"])
        for f in data.get("features") or []
        if f.get("p_value") is not None
    }
    return {
        "day": report.get("day", ""),
        "status": report.get("status", "?"),
        "threshold": data.get("threshold"),
        "features": features,
        "drifted": list(report.get("drifted_features") or []),
    }


_point_cache: dict[str, tuple[float, dict[str, Any]]] = {}
_point_lock = threading.Lock()


def clear_cache() -> None:
    with _point_lock:
        _point_cache.clear()


def plot_points(lake: Lake, found: dict[dt.date, str], *, fresh_days: int = 2) -> list[dict[str, Any]]:
    """Compact plot points of every report in ``found`` (oldest first).

    Points are kept for :data:`POINT_TTL_SECONDS`; the newest ``fresh_days`` reports are always read
    again (a day's check may still be re-run).
    """
    now = time.monotonic()
    ordered = sorted(found)
    fresh = set(ordered[-fresh_days:]) if fresh_days else set()
    points: dict[dt.date, dict[str, Any]] = {}
    missing: list[dt.date] = []
    with _point_lock:
        for day in ordered:
            cached = _point_cache.get(lake.url(found[day]))
            if day not in fresh and cached and now - cached[0] < POINT_TTL_SECONDS:
                points[day] = cached[1]
            else:
                missing.append(day)
    for day, report in zip(missing, _read_all(lake, [found[d] for d in missing]), strict=True):
        points[day] = plot_point(report)
    with _point_lock:
        if len(_point_cache) > _POINT_CACHE_LIMIT:
            _point_cache.clear()
        for day in missing:
            _point_cache[lake.url(found[day])] = (now, points[day])
    return [points[d] for d in ordered]


def drift_history(lake: Lake, dataset: str, *, days: int = DEFAULT_DAYS,
                  retrains: dict[tuple[str, str], list[dict[str, Any]]] | None = None) -> dict[str, Any]:  # fmt: skip
    """One row per checked day of the last ``days`` days (newest first), the plot's points over the
    whole history, and the open drift event."""
    found = listed_days(lake, keys.drift_reports_prefix(dataset), keys.REPORT_JSON)
    state = drift_state(lake, dataset)
    shown = _last(found, days)
    reports = _read_all(lake, [found[d] for d in shown])
    out: dict[str, Any] = {
        "rows": [drift_row(r, state, retrains) for r in reports],
        "days": days,
        "checks_total": len(found),
        "drift_days_shown": sum(r.get("status") == "drift" for r in reports),
        "first_day": min(found).isoformat() if found else None,
        "last_day": max(found).isoformat() if found else None,
        "open_event": state.get("open_event"),
        "last_backfill": (
            {"id": state.get("last_backfill_id"), "at": state.get("last_backfill_at")}
            if state.get("last_backfill_id")
            else None
        ),
        "points": plot_points(lake, found) if found else [],
        "empty_reason": None,
    }
    if not found:
        out["empty_reason"] = (
            f"no drift check has run for {dataset} yet: the drift_check DAG writes one report per day "
            "once ingest has recorded the day (it skips, with a report, while there is no champion)"
        )
    return out


def drift_day(lake: Lake, dataset: str, day: dt.date,
              retrains: dict[tuple[str, str], list[dict[str, Any]]] | None = None) -> dict[str, Any]:  # fmt: skip
    """The drift report of ``day`` (the drift_check run tab)."""
    key = keys.drift_report_key(dataset, day, keys.REPORT_JSON)
    if not lake.exists(key):
        raise NotFound(f"no drift report for {dataset} {day.isoformat()}: no drift check ran for that day")
    report = lake.get_json(key)
    data = report.get("data_drift") or {}
    return {
        "report": report,
        "row": drift_row(report, drift_state(lake, dataset), retrains),
        "features": sorted(data.get("features") or [], key=lambda f: f.get("p_value", 1.0)),
        "threshold": data.get("threshold"),
    }


def drift_run_day(run_id: str, data_interval_end: dt.datetime | None = None) -> dt.date:
    """The day a drift_check run checked: the day before its interval's end (as the DAG computes
    it); without the interval, from the timestamp in the run's id."""
    if data_interval_end is not None:
        return data_interval_end.date() - dt.timedelta(days=1)
    match = _DAY_IN_TEXT.search(run_id)
    if not match:
        raise NotFound(f"cannot tell the day of drift_check run {run_id!r}")
    try:
        return dt.date.fromisoformat(match.group(1)) - dt.timedelta(days=1)
    except ValueError:
        raise NotFound(f"cannot tell the day of drift_check run {run_id!r}") from None


# --- models --------------------------------------------------------------------------------
def _number(text: Any) -> float | None:
    try:
        return float(text) if text not in (None, "", "none") else None
    except (TypeError, ValueError):
        return None


def _json(text: Any) -> Any:
    import json

    if not text or text == "none":
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _timestamp(ms: Any) -> str:
    try:
        return dt.datetime.fromtimestamp(int(ms) / 1000, dt.UTC).isoformat(timespec="seconds")
    except (TypeError, ValueError):
        return ""


def _status(tags: dict[str, str], number: str, champion: str | None, previous: str | None) -> str:
    if number == champion:
        return "champion"
    if f"{ROLLBACK}demoted_at" in tags:
        return "rolled back"
    if number == previous:
        return "previous champion"
    return tags.get(f"{GATE}decision") or "not gated"


def required_action_path(train_run_id: str) -> str:
    """Airflow UI page where a person answers train run ``train_run_id``'s approval request."""
    from urllib.parse import quote

    return f"/dags/train/runs/{quote(train_run_id, safe='')}/tasks/approve_promotion/required_actions"


def version_record(settings: Settings, version: Any, *, champion: str | None = None,
                   previous: str | None = None) -> dict[str, Any]:  # fmt: skip
    """One model version as the pages show it: its gate decision and evidence from its tags."""
    from mlflywheel.promote import gate_evidence

    tags = dict(getattr(version, "tags", None) or {})
    number = str(version.version)
    metric = tags.get(f"{GATE}metric") or settings.gate_metric
    candidate = _json(tags.get(f"{GATE}candidate_metrics")) or {}
    old = _json(tags.get(f"{GATE}champion_metrics")) or {}
    evidence = gate_evidence(tags)  # the same reading of the gate's tags as promote's history
    reasons = [r for r in (tags.get(f"{GATE}reasons") or "").split("; ") if r]
    return {
        "version": number,
        "status": _status(tags, number, champion, previous),
        "created_at": _timestamp(getattr(version, "creation_timestamp", None)),
        "run_id": getattr(version, "run_id", None) or tags.get("flywheel.run_id"),
        "decision": tags.get(f"{GATE}decision"),
        "verdict": tags.get(f"{GATE}verdict"),
        "mode": tags.get(f"{GATE}mode"),
        "decided_at": tags.get(f"{GATE}decided_at", ""),
        "decided_by": tags.get(f"{GATE}decided_by", ""),
        "metric": metric,
        "candidate_value": _number(candidate.get(metric)) if isinstance(candidate, dict) else None,
        "old_champion_value": _number(old.get(metric)) if isinstance(old, dict) else None,
        "old_champion_version": tags.get(f"{GATE}champion_version"),
        "difference": evidence["difference"],
        "interval": evidence["interval"],
        "confidence": evidence["confidence"],
        "holdout_rows": evidence["rows"],
        "holdout_positives": evidence["positives"],
        "floors": {
            "pr_auc": _number(tags.get(f"{GATE}floor_pr_auc")),
            "roc_auc": _number(tags.get(f"{GATE}floor_roc_auc")),
        },
        "margin": _number(tags.get(f"{GATE}margin")),
        "reasons": reasons,
        "snapshot_id": tags.get(f"{GATE}snapshot_id") or tags.get("flywheel.snapshot_id", ""),
        # What made the training run (the train DAG copies its run tags onto the version).
        "trigger": tags.get("flywheel.trigger", ""),
        "training_reason": tags.get("flywheel.reason", ""),
        "airflow_run_id": tags.get(TRAIN_RUN_TAG, ""),
        "drift_event_id": tags.get("flywheel.drift_event_id", ""),
        # A person's answer in promotion_mode=approval (empty for the other modes).
        "approval": {
            "answer": tags.get(f"{APPROVAL}answer", ""),
            "by": tags.get(f"{APPROVAL}by", ""),
            "at": tags.get(f"{APPROVAL}at", ""),
        },
        "required_action_url": (
            required_action_path(tags.get(TRAIN_RUN_TAG, ""))
            if tags.get(f"{GATE}decision") == AWAITING and tags.get(TRAIN_RUN_TAG) else ""
        ),
        "champion_since": tags.get(f"{CHAMPION_TAG}since"),
        "champion_reason": tags.get(f"{CHAMPION_TAG}reason"),
        "rollback": {
            "restored_at": tags.get(f"{ROLLBACK}restored_at"),
            "restored_from": tags.get(f"{ROLLBACK}restored_from"),
            "restored_reason": tags.get(f"{ROLLBACK}reason"),
            "demoted_at": tags.get(f"{ROLLBACK}demoted_at"),
            "demoted_reason": tags.get(f"{ROLLBACK}demoted_reason"),
            "demoted_by": tags.get(f"{ROLLBACK}demoted_by"),
        },
        "version_url": version_link(settings, number),
        "run_url": run_link(settings, getattr(version, "run_id", None)),
    }


def _with_training_run(settings: Settings, record: dict[str, Any]) -> dict[str, Any]:
    """Fill in what made the training run from the run's own tags when the version lacks them
    (versions registered before the tags were copied onto them); best effort."""
    from mlflywheel import registry

    if record.get("trigger") or not record.get("run_id"):
        return record
    try:
        tags = registry.run_tags(settings, record["run_id"])
    except Exception:  # noqa: BLE001 - a deleted run must not break the page
        return record
    record["trigger"] = tags.get("flywheel.trigger", "")
    record["training_reason"] = tags.get("flywheel.reason", "")
    record["airflow_run_id"] = record.get("airflow_run_id") or tags.get(TRAIN_RUN_TAG, "")
    return record


def retrains_by_event(records: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Versions trained for a drift event, by (champion version, first day) of the event.

    A drift event's id is ``<dataset>:champion-v<N>:<first day>`` (``orchestration.retraining``);
    drift_check puts it in the retrain's conf and training copies it onto the version.
    """
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for record in records:
        parts = (record.get("drift_event_id") or "").rsplit(":", 2)
        if len(parts) == 3 and parts[1].startswith("champion-v"):
            out.setdefault((parts[1][len("champion-v") :], parts[2]), []).append(record)
    return out


def models(settings: Settings, *, versions: int = DEFAULT_VERSIONS) -> dict[str, Any]:
    """Champion and previous champion with their gate records, the newest ``versions`` versions as
    a timeline (newest first), the last refused candidates, and the history's events."""
    from mlflywheel import promote, registry

    current, previous = registry.champion(settings), registry.previous_champion(settings)
    champion_number = str(current.version) if current is not None else None
    previous_number = str(previous.version) if previous is not None else None
    every = registry.list_versions(settings)
    records = [version_record(settings, v, champion=champion_number, previous=previous_number) for v in every]
    timeline = list(reversed(records))
    out: dict[str, Any] = {
        "model_name": settings.model_name,
        "mlflow_url": mlflow_ui_url(settings),
        "champion": (
            _with_training_run(settings, version_record(settings, current, champion=champion_number))
            if current is not None
            else None
        ),
        "previous": (
            _with_training_run(settings, version_record(settings, previous, previous=previous_number))
            if previous is not None
            else None
        ),
        "timeline": timeline[:versions],
        "retrains": retrains_by_event(records),
        "versions_total": len(records),
        "refused": [r for r in timeline if r["decision"] in REFUSED][:5],
        "awaiting": [r for r in timeline if r["decision"] == AWAITING],
        "rollbacks": [e for e in promote.champion_history(settings) if e["event"] == "rollback"][-5:]
        if any(r["rollback"]["restored_at"] for r in records) else [],
        "empty_reason": None,
    }
    if current is None:
        out["empty_reason"] = no_champion_reason(settings.model_name, len(records), len(out["awaiting"]))
    return out


def no_champion_reason(model_name: str, versions: int, awaiting: int) -> str:
    """Why the page shows no champion: nothing registered, versions waiting for a person, or refused."""
    if not versions:
        return f"no champion yet: {model_name} has no registered version (the train DAG registers one per run)"
    if awaiting:
        return (f"no champion yet: {model_name} has {versions} version(s); {awaiting} passed the gate and "
                "await approval (Required Actions in Airflow)")  # fmt: skip
    return f"no champion yet: {model_name} has {versions} version(s) but none was promoted"


def retrains(settings: Settings) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """:func:`retrains_by_event` over every version of the model (one registry search)."""
    from mlflywheel import registry

    return retrains_by_event([version_record(settings, v) for v in registry.list_versions(settings)])


def train_run(settings: Settings, run_id: str) -> dict[str, Any]:
    """The gate decision of train run ``run_id``: the version it registered and decided on."""
    from mlflywheel import registry

    decided_by = f"airflow:train/{run_id}"
    every = registry.list_versions(settings)
    match = [
        v for v in every
        if (v.tags or {}).get(TRAIN_RUN_TAG) == run_id or (v.tags or {}).get(f"{GATE}decided_by") == decided_by
    ]  # fmt: skip
    version = match[-1] if match else registry.find_version_by_run_tag(settings, TRAIN_RUN_TAG, run_id)
    if version is None:
        raise NotFound(
            f"no model version of {settings.model_name} was registered by train run {run_id!r} "
            "(the run may not have reached registration)"
        )
    return _detail(settings, version)


def _detail(settings: Settings, version: Any) -> dict[str, Any]:
    """One version's record with the champion / previous champion marks and its training run."""
    from mlflywheel import registry

    current, previous = registry.champion(settings), registry.previous_champion(settings)
    record = version_record(
        settings, version,
        champion=str(current.version) if current is not None else None,
        previous=str(previous.version) if previous is not None else None,
    )  # fmt: skip
    return _with_training_run(settings, record)


def version_detail(settings: Settings, version: str) -> dict[str, Any]:
    from mlflywheel import registry

    if not str(version).isdigit():
        raise NotFound(f"{version!r} is not a model version number")
    try:
        found = registry.get_version(settings, str(version))
    except registry.RegistryError as exc:
        raise NotFound(str(exc)) from None
    return _detail(settings, found)


# --- the whole page ------------------------------------------------------------------------
def overview(settings: Settings, lake: Lake, *, days: int = DEFAULT_DAYS,
             versions: int = DEFAULT_VERSIONS) -> dict[str, Any]:  # fmt: skip
    """Everything the Flywheel page shows."""
    model_data = models(settings, versions=versions)
    return {
        "dataset": settings.dataset,
        "days": days,
        "models": model_data,
        "drift": drift_history(lake, settings.dataset, days=days, retrains=model_data["retrains"]),
        "ledger": ledger(lake, settings.dataset, days=days),
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
