"""End to end: the demo scenario through Airflow's real scheduler, REST API and an MLflow server.

Starts Airflow on SQLite (LocalExecutor, supervised components) and `mlflow server` on free loopback ports
under a temporary home, lands three weeks of transactions with drift and faults, and lets the
scheduler run ingest -> train -> drift_check -> backfill -> train. Takes several minutes.
"""

from __future__ import annotations

import datetime as dt

import pytest
from mlflywheel.demo import run_demo
from mlflywheel.devstack.stack import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(2700)]


@pytest.fixture(scope="module")
def summary(tmp_path_factory):
    home = tmp_path_factory.mktemp("flywheel-e2e")
    return run_demo(
        home=home,
        api_port=free_port(),
        mlflow_port=free_port(),
        timeout_minutes=40,
        summary_path=home / "summary.json",
    )


def test_loop_closed(summary):
    assert summary.get("error") is None, summary.get("error")
    assert summary["checks"] == {"drift_detected": True, "backfill_created": True, "retrained_model_gated": True}
    assert summary["loop_closed"] is True


def test_every_row_is_accounted_for(summary):
    totals = summary["partition_totals"]
    assert totals["partitions"] == 21
    assert totals["rows_in"] == totals["rows_validated"] + totals["rows_quarantined"]
    by_status = {p["partition"]: p for p in summary["partitions"]}
    statuses = sorted(p["status"] for p in by_status.values())
    assert statuses.count("quarantined") == 1  # the corrupt file
    assert statuses.count("partially_quarantined") == 1  # the day with nulls
    corrupt = next(p for p in by_status.values() if p["status"] == "quarantined")
    assert any("unreadable" in reason for reason in corrupt["reasons"])


def test_exactly_one_backfill_and_one_retraining(summary):
    assert len(summary["backfills"]) == 1
    backfill = summary["backfills"][0]
    assert backfill["dag_id"] == "train" and backfill["completed_at"]
    assert backfill["dag_run_conf"]["trigger"] == "drift_check"
    retrained = [v for v in summary["model_versions"] if v.get("trigger") == "drift_check"]
    assert len(retrained) == 1
    assert retrained[0]["decision"] in ("promoted", "rejected", "undecided")
    assert retrained[0]["reasons"]


def test_first_champion_came_through_the_gate(summary):
    first = summary["model_versions"][0]
    assert first["event"] == "gate" and first["decision"] == "promoted"
    assert first["champion_version"] == "none"


def test_drift_reports_pass_the_stable_days_and_name_the_drifted_features(summary):
    reports = sorted(summary["drift_reports"], key=lambda r: r["day"])
    # The demo's 4 drift days are its last 4 landed days; the last day's own check may not have
    # run yet (drift_check runs at 04:00 UTC for the day before), so count from the landed days.
    last_day = max(dt.date.fromisoformat(p["partition"]) for p in summary["partitions"])
    drift_start = last_day - dt.timedelta(days=3)
    stable = [r for r in reports if dt.date.fromisoformat(r["day"]) < drift_start]
    drifting = [r for r in reports if r["status"] == "drift"]
    assert stable and all(r["status"] == "no_drift" for r in stable), [(r["day"], r["status"]) for r in stable]
    assert drifting and drifting[0]["day"] == drift_start.isoformat()  # flagged on its first day
    assert drifting[0]["drifted_features"]
    assert drifting[0]["html_key"].endswith("report.html")


def test_the_drift_also_shows_in_the_champions_performance(summary):
    # The champion predates the drift (the demo trains weekly, on the drift's first morning), so
    # the labelled drifting days are rows it never saw: the performance check measures it there.
    reports = sorted(summary["drift_reports"], key=lambda r: r["day"])
    measured = [r for r in reports if r["status"] == "drift" and (r["performance"] or {}).get("rows")]
    assert measured, [(r["day"], (r["performance"] or {}).get("status")) for r in reports]
    assert all(r["performance"]["status"] in ("ok", "degraded") for r in measured)
    assert all(r["performance"]["drop"] > 0.05 for r in measured), [r["performance"] for r in measured]
    # Before the drift the champion is only scored on days it trained on: nothing to measure.
    assert all(r["performance"]["status"] == "insufficient_labels" for r in reports if r["status"] == "no_drift")


def test_the_retrain_learned_the_post_event_days_only(summary):
    backfill = summary["backfills"][0]
    conf = backfill["dag_run_conf"]
    first_drift = min(r["day"] for r in summary["drift_reports"] if r["status"] == "drift")
    window_end = dt.date.fromisoformat(conf["window_end"])
    assert window_end - dt.timedelta(days=conf["window_days"] - 1) == dt.date.fromisoformat(first_drift)
