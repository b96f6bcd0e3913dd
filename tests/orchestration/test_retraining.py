"""Once per drift event: the pure decision, the backfill range, and the state it keeps."""

from __future__ import annotations

import datetime as dt

import pytest
from mlflywheel.orchestration.retraining import decide, drift_reason, training_interval_for

NOW = dt.datetime(2026, 11, 26, 5, 0, tzinfo=dt.UTC)
COOLDOWN = dt.timedelta(hours=24)


def report(status="drift", champion="3", day="2026-11-25"):
    return {
        "dataset": "transactions",
        "day": day,
        "status": status,
        "champion_version": champion,
        "drifted_features": ["amount", "country"],
        "prediction_drift": {"is_drift": True, "p_value": 1e-9},
        "report_key": f"reports/drift/transactions/dt={day}/report.json",
    }


def test_first_drift_creates_a_backfill():
    d = decide(report(), {}, active_backfills=0, now=NOW, cooldown=COOLDOWN)
    assert d.create
    assert "amount" in d.reason and "prediction drift" in d.reason
    assert d.event_id == "transactions:champion-v3:2026-11-25"


@pytest.mark.parametrize("status", ["no_drift", "skipped"])
def test_no_drift_no_backfill(status):
    assert not decide(report(status), {}, active_backfills=0, now=NOW, cooldown=COOLDOWN).create


def test_same_event_is_not_retrained_twice():
    state = {"open_event": {"event_id": "e1", "champion_version": "3", "backfill_id": 7}}
    d = decide(report(day="2026-11-26"), state, active_backfills=0, now=NOW, cooldown=dt.timedelta(0))
    assert not d.create and "already handled" in d.reason


def test_active_backfill_blocks_a_second_one():
    d = decide(report(), {}, active_backfills=1, now=NOW, cooldown=COOLDOWN)
    assert not d.create and "active" in d.reason


def test_cooldown_after_last_backfill():
    state = {"last_backfill_at": (NOW - dt.timedelta(hours=3)).isoformat()}
    assert not decide(report(), state, active_backfills=0, now=NOW, cooldown=COOLDOWN).create
    state = {"last_backfill_at": (NOW - dt.timedelta(hours=30)).isoformat()}
    assert decide(report(), state, active_backfills=0, now=NOW, cooldown=COOLDOWN).create


def test_new_champion_opens_a_new_event():
    state = {"open_event": {"event_id": "e1", "champion_version": "3"}, "last_backfill_at": "2026-11-01T00:00:00+00:00"}
    assert decide(report(champion="4"), state, active_backfills=0, now=NOW, cooldown=COOLDOWN).create


def test_backfill_range_holds_one_daily_train_run():
    start, end = training_interval_for(dt.date(2026, 11, 25))
    assert start == "2026-11-26T00:00:00+00:00"
    assert end == "2026-11-26T23:59:59+00:00"


def test_reason_without_details():
    r = {"day": "d", "champion_version": "1", "drifted_features": [], "prediction_drift": {"is_drift": False}}
    assert "thresholds crossed" in drift_reason(r)
