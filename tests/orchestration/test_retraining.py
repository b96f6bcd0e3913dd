"""Once per drift event, after the wait: the pure decision on every path, the backfill range, and
the state :func:`request_retraining` keeps in the lake (against a scripted API)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from mlflywheel.lake import LocalLake, keys
from mlflywheel.ledger import write_summary
from mlflywheel.orchestration.airflow_api import AirflowApiError
from mlflywheel.orchestration.retraining import (
    PENDING,
    RETRAINING,
    decide,
    drift_reason,
    open_event_for,
    request_retraining,
    retrain_window,
    training_run_range,
)

NOW = dt.datetime(2026, 11, 26, 5, 0, tzinfo=dt.UTC)
COOLDOWN = dt.timedelta(hours=24)
FIRST = dt.date(2026, 11, 25)


def report(status="drift", champion="3", day="2026-11-25"):
    return {
        "dataset": "transactions",
        "day": day,
        "status": status,
        "champion_version": champion,
        "drifted_features": ["amount", "country"] if status == "drift" else [],
        "prediction_drift": {"is_drift": status == "drift", "p_value": 1e-9},
        "report_key": f"reports/drift/transactions/dt={day}/report.json",
    }


def day(offset: int) -> str:
    return (FIRST + dt.timedelta(days=offset)).isoformat()


def pending(wait: int = 2, champion: str = "3") -> dict[str, Any]:
    return open_event_for(report(champion=champion), wait)


def persisted(wait: int = 2) -> dict[str, Any]:
    """A pending event whose drift persisted: its first day and the next one drifted."""
    return {**pending(wait), "drift_days": [day(0), day(1)]}


def without_drift_days(event: dict[str, Any]) -> dict[str, Any]:
    """The event less what every check adds to it (its drift days, the latest day checked)."""
    return {k: v for k, v in event.items() if k not in ("drift_days", "checked_through")}


def started(champion: str = "3") -> dict[str, Any]:
    return {**pending(champion=champion), "status": RETRAINING, "backfill_id": 7, "window_end": day(2)}


# --- the pure decision, wait 0: the behaviour before the wait existed -----------------------------


def test_first_drift_creates_a_backfill():
    d = decide(report(), {}, active_backfills=0, now=NOW, cooldown=COOLDOWN)
    assert d.create
    assert "amount" in d.reason and "prediction drift" in d.reason
    assert d.event_id == "transactions:champion-v3:2026-11-25"
    assert d.event["first_day"] == d.event["retrain_after"] == "2026-11-25" and d.event["status"] == PENDING


@pytest.mark.parametrize("status", ["no_drift", "skipped"])
def test_no_drift_no_backfill(status):
    d = decide(report(status), {}, active_backfills=0, now=NOW, cooldown=COOLDOWN)
    assert not d.create and d.event is None


def test_same_event_is_not_retrained_twice():
    state = {"open_event": {"event_id": "e1", "champion_version": "3", "backfill_id": 7}}  # a pre-wait record
    d = decide(report(day="2026-11-26"), state, active_backfills=0, now=NOW, cooldown=dt.timedelta(0))
    assert not d.create and "already handled" in d.reason and d.event == state["open_event"]


def test_active_backfill_blocks_a_second_one():
    d = decide(report(), {}, active_backfills=1, now=NOW, cooldown=COOLDOWN)
    assert not d.create and "active" in d.reason and d.event["status"] == PENDING


def test_cooldown_after_last_backfill():
    state = {"last_backfill_at": (NOW - dt.timedelta(hours=3)).isoformat()}
    blocked = decide(report(), state, active_backfills=0, now=NOW, cooldown=COOLDOWN)
    assert not blocked.create and "cooldown" in blocked.reason and "stays pending" in blocked.reason
    state = {"last_backfill_at": (NOW - dt.timedelta(hours=30)).isoformat()}
    assert decide(report(), state, active_backfills=0, now=NOW, cooldown=COOLDOWN).create


def test_new_champion_opens_a_new_event():
    state = {
        "open_event": {"event_id": "e1", "champion_version": "3"},
        "last_backfill_at": "2026-11-01T00:00:00+00:00",
    }
    d = decide(report(champion="4"), state, active_backfills=0, now=NOW, cooldown=COOLDOWN)
    assert d.create and d.event_id == "transactions:champion-v4:2026-11-25"


# --- the pure decision with a wait ----------------------------------------------------------------


def test_opening_check_records_a_pending_retrain():
    d = decide(report(), {}, active_backfills=0, now=NOW, cooldown=COOLDOWN, wait_days=2)
    assert not d.create
    assert d.event["status"] == PENDING and d.event["retrain_after"] == day(2) and d.event["wait_days"] == 2
    assert d.event["reason"].startswith("drift on 2026-11-25") and "2 more day(s)" in d.reason


@pytest.mark.parametrize("status", ["drift", "no_drift", "skipped"])
def test_pending_retrain_waits_whatever_the_check_says(status):
    state = {"open_event": pending()}
    d = decide(report(status, day=day(1)), state, active_backfills=0, now=NOW, cooldown=COOLDOWN, wait_days=2)
    assert not d.create and "1 more day(s)" in d.reason
    assert without_drift_days(d.event) == without_drift_days(state["open_event"])
    assert d.event["drift_days"] == ([day(0), day(1)] if status == "drift" else [day(0)])
    assert d.event["checked_through"] == day(1)


@pytest.mark.parametrize("status", ["drift", "no_drift", "skipped"])
def test_wait_over_creates_the_backfill_whatever_the_check_says(status):
    state = {"open_event": persisted()}  # once the drift persisted, the due check may say anything
    for offset in (2, 5):  # on the day the wait ends, or later (a missed check)
        d = decide(
            report(status, day=day(offset)),
            state,
            active_backfills=0,
            now=NOW,
            cooldown=COOLDOWN,
            wait_days=2,
        )
        assert d.create and d.event_id == state["open_event"]["event_id"]
        # The reason is the event's (its first day's drift), with the post-event data it waited for.
        assert d.reason.startswith("drift on 2026-11-25") and "amount" in d.reason
        assert f"after {offset} day(s) of post-event data (window ends {day(offset)})" in d.reason


def test_the_event_keeps_the_wait_it_was_opened_with():
    state = {"open_event": pending(wait=1)}
    assert decide(
        report(day=day(1)), state, active_backfills=0, now=NOW, cooldown=COOLDOWN, wait_days=5
    ).create


@pytest.mark.parametrize(
    "state_extra, blocker",
    [({"last_backfill_at": (NOW - dt.timedelta(hours=3)).isoformat()}, "cooldown"), ({}, "active")],
)
def test_due_retrain_blocked_stays_pending(state_extra, blocker):
    state = {"open_event": persisted(), **state_extra}
    active = 1 if blocker == "active" else 0
    d = decide(
        report("no_drift", day=day(2)),
        state,
        active_backfills=active,
        now=NOW,
        cooldown=COOLDOWN,
        wait_days=2,
    )
    assert not d.create and blocker in d.reason
    assert without_drift_days(d.event) == without_drift_days(state["open_event"]) and d.event["checked_through"] == day(2)


def test_new_champion_closes_a_pending_event():
    state = {"open_event": pending()}
    quiet = decide(
        report("no_drift", champion="4", day=day(2)),
        state,
        active_backfills=0,
        now=NOW,
        cooldown=COOLDOWN,
        wait_days=2,
    )
    assert not quiet.create and quiet.event is None
    drifting = decide(
        report(champion="4", day=day(2)), state, active_backfills=0, now=NOW, cooldown=COOLDOWN, wait_days=2
    )
    assert not drifting.create and drifting.event["champion_version"] == "4"  # a new event, waiting anew
    assert drifting.event["retrain_after"] == day(4)


def test_retraining_event_closes_on_no_drift_and_ignores_drift():
    state = {"open_event": started()}
    closed = decide(
        report("no_drift", day=day(3)), state, active_backfills=0, now=NOW, cooldown=COOLDOWN, wait_days=2
    )
    assert not closed.create and closed.event is None and "closed" in closed.reason
    again = decide(report(day=day(3)), state, active_backfills=0, now=NOW, cooldown=COOLDOWN, wait_days=2)
    assert (
        not again.create
        and "already handled by backfill 7" in again.reason
        and again.event == state["open_event"]
    )


def test_skipped_check_without_champion_opens_nothing():
    d = decide(report("drift", champion=None), {}, active_backfills=0, now=NOW, cooldown=COOLDOWN)
    assert not d.create and d.event is None


def test_negative_wait_is_refused():
    with pytest.raises(ValueError, match="wait_days"):
        decide(report(), {}, active_backfills=0, now=NOW, cooldown=COOLDOWN, wait_days=-1)


@pytest.mark.parametrize(
    ("schedule", "now", "tick"),
    [
        ("0 2 * * *", "2026-11-26T04:00:00+00:00", "2026-11-26T02:00:00+00:00"),  # nightly, checked at 04:00
        ("0 2 * * *", "2026-11-26T01:59:00+00:00", "2026-11-25T02:00:00+00:00"),  # before tonight's tick
        ("0 2 * * *", "2026-11-26T02:00:00+00:00", "2026-11-26T02:00:00+00:00"),  # on the tick
        ("0 2 * * 1", "2026-11-26T04:00:00+00:00", "2026-11-23T02:00:00+00:00"),  # weekly, on Mondays
        ("0 2 * * *", "2026-11-26T09:30:00+05:30", "2026-11-26T02:00:00+00:00"),  # any offset: UTC ticks
    ],
)
def test_backfill_range_holds_exactly_the_latest_train_run(schedule, now, tick):
    assert training_run_range(schedule, dt.datetime.fromisoformat(now)) == (tick, tick)


def test_reason_without_details():
    r = {"day": "d", "champion_version": "1", "drifted_features": [], "prediction_drift": {"is_drift": False}}
    assert "thresholds crossed" in drift_reason(r)


def test_reason_names_a_performance_trigger():
    r = {**report(), "drifted_features": [], "prediction_drift": None}
    r["performance"] = {"triggered": True, "reason": "pr_auc 0.41 on 300 labelled rows vs holdout 0.80"}
    assert "performance: pr_auc 0.41" in drift_reason(r)


# --- request_retraining: the I/O around the decision ----------------------------------------------


class ScriptedApi:
    def __init__(self, active: int = 0, refuse: bool = False):
        self.active, self.refuse = active, refuse
        self.created: list[dict[str, Any]] = []
        self.asked = 0

    def active_backfills(self, dag_id: str) -> list[dict[str, Any]]:
        self.asked += 1
        return [{"id": 99, "dag_id": dag_id}] * self.active

    def create_backfill(self, dag_id: str, *, from_date: str, to_date: str, conf: dict[str, Any]) -> dict:
        if self.refuse:
            raise AirflowApiError("conflict", status=409, body={"detail": "active"})
        self.created.append({"dag_id": dag_id, "from_date": from_date, "to_date": to_date, "conf": conf})
        return {"id": 10 + len(self.created)}


def run(api, lake, r, wait=2, now=NOW, max_attempts=1):
    return request_retraining(api, lake, r, cooldown_hours=24, retrain_window_days=7, wait_days=wait, now=now,
                              max_attempts=max_attempts)  # fmt: skip


def state_of(lake) -> dict[str, Any]:
    return lake.get_json(keys.drift_state_key("transactions"))


def test_one_event_through_its_wait(tmp_path: Path):
    lake, api = LocalLake(tmp_path / "lake"), ScriptedApi()
    opened = run(api, lake, report(day=day(0)))
    assert opened["action"] == "retrain_pending" and opened["retrain_after"] == day(2)
    assert state_of(lake)["open_event"]["status"] == PENDING and api.asked == 0 and not api.created

    assert run(api, lake, report(day=day(1)))["action"] == "retrain_pending"  # the drift persists
    created = run(api, lake, report("no_drift", day=day(2)), now=NOW + dt.timedelta(days=2))
    assert created["action"] == "backfill_created" and api.asked == 1
    # The window ends with the check's day and holds the event's first day and the two days after it,
    # nothing older (the retrain learns the new regime only).
    assert (created["from_date"], created["to_date"]) == training_run_range("0 2 * * *", NOW + dt.timedelta(days=2))
    conf = created["conf"]
    assert conf["trigger"] == "drift_check" and conf["window_days"] == 3 and conf["window_end"] == day(2)
    assert conf["drift_event_id"] == "transactions:champion-v3:2026-11-25"
    assert conf["drift_report"] == report(day=day(0))["report_key"]  # the report that opened the event
    event = state_of(lake)["open_event"]
    assert event["status"] == RETRAINING and event["backfill_id"] == 11 and event["window_end"] == day(2)
    assert state_of(lake)["last_backfill_id"] == 11

    assert run(api, lake, report(day=day(3)))["action"] == "none"  # once per event
    assert run(api, lake, report("no_drift", day=day(4)))["action"] == "none"
    assert state_of(lake)["open_event"] is None and len(api.created) == 1


def test_wait_zero_creates_at_once(tmp_path: Path):
    lake, api = LocalLake(tmp_path / "lake"), ScriptedApi()
    created = run(api, lake, report(), wait=0)
    assert created["action"] == "backfill_created"
    assert (created["from_date"], created["to_date"]) == training_run_range("0 2 * * *", NOW)
    assert created["conf"]["window_end"] == day(0) and created["conf"]["window_days"] == 1
    assert "post-event" not in created["conf"]["reason"]


def test_refused_or_blocked_backfill_stays_pending(tmp_path: Path):
    lake = LocalLake(tmp_path / "lake")
    assert run(ScriptedApi(active=1), lake, report(), wait=0)["action"] == "retrain_pending"
    assert state_of(lake)["open_event"]["status"] == PENDING
    assert (
        run(ScriptedApi(refuse=True), lake, report("no_drift", day=day(1)), wait=0)["action"]
        == "retrain_pending"
    )
    api = ScriptedApi()
    assert run(api, lake, report("no_drift", day=day(2)), wait=0)["action"] == "backfill_created"
    assert api.created[0]["conf"]["drift_event_id"].endswith(":2026-11-25")


def test_quiet_check_without_event_writes_nothing(tmp_path: Path):
    lake, api = LocalLake(tmp_path / "lake"), ScriptedApi()
    assert run(api, lake, report("no_drift"))["action"] == "none"
    assert not lake.exists(keys.drift_state_key("transactions")) and api.asked == 0


def test_retrain_window_never_reaches_before_the_event():
    event = {"first_day": FIRST.isoformat()}
    assert retrain_window(event, FIRST + dt.timedelta(days=2), 7) == [FIRST + dt.timedelta(days=i) for i in range(3)]
    late = FIRST + dt.timedelta(days=20)
    assert retrain_window(event, late, 7) == [late - dt.timedelta(days=6 - i) for i in range(7)]
    assert retrain_window(event, FIRST, 7) == [FIRST]


def _ledger_rows(lake, days_and_rows: dict[dt.date, int]) -> None:
    for d, rows in days_and_rows.items():
        write_summary(lake, {"dataset": "transactions", "partition": d.isoformat(), "status": "validated",
                             "rows_in": rows, "rows_validated": rows, "rows_quarantined": 0, "run_id": "r"})


def test_retrain_waits_for_enough_post_event_rows(tmp_path: Path):
    lake, api = LocalLake(tmp_path / "lake"), ScriptedApi()
    _ledger_rows(lake, {FIRST - dt.timedelta(days=1): 10_000, FIRST: 50, FIRST + dt.timedelta(days=1): 50})

    def check(offset: int) -> dict:
        return request_retraining(
            api, lake, report(day=day(offset)), cooldown_hours=24,
            retrain_window_days=7, wait_days=1, min_rows=120, now=NOW + dt.timedelta(days=offset),
        )  # fmt: skip

    assert check(0)["action"] == "retrain_pending"
    waiting = check(1)  # the wait in days is over, but the new regime has 100 rows (the old day's don't count)
    assert waiting["action"] == "retrain_pending" and "100 validated rows" in waiting["reason"]
    assert not api.created and api.asked == 0
    _ledger_rows(lake, {FIRST + dt.timedelta(days=2): 50})
    created = check(2)
    assert created["action"] == "backfill_created" and created["conf"]["window_days"] == 3


def test_an_earlier_drifting_day_checked_later_starts_the_event_earlier(tmp_path: Path):
    lake, api = LocalLake(tmp_path / "lake"), ScriptedApi()
    assert run(api, lake, report(day=day(5)))["action"] == "retrain_pending"  # the latest day came first
    assert state_of(lake)["open_event"]["retrain_after"] == day(7)
    assert run(api, lake, report(day=day(4)))["action"] == "retrain_pending"  # then a catch-up
    event = state_of(lake)["open_event"]
    assert (event["first_day"], event["retrain_after"], event["checked_through"]) == (day(4), day(6), day(5))
    assert event["event_id"] == "transactions:champion-v3:2026-11-30"  # one event, same id
    # An earlier day still: its wait ended by day 2, and day 5 was checked already, so the retrain
    # starts now, its window through day 5 (the latest day checked), not at the next check.
    created = run(api, lake, report(day=day(0)))
    assert created["action"] == "backfill_created" and created["conf"]["window_end"] == day(5)
    assert created["conf"]["window_days"] == 6 and created["event_id"] == "transactions:champion-v3:2026-11-30"


def test_the_latest_day_checked_first_then_catch_ups_retrain_once_the_wait_is_over(tmp_path: Path):
    """As a scheduler may run the latest day's check before a backfill of the earlier days' checks:
    the retrain starts at the catch-up that makes the wait end by the latest day checked."""
    lake, api = LocalLake(tmp_path / "lake"), ScriptedApi()
    checks = [("drift", 4), ("no_drift", 0), ("no_drift", 1), ("drift", 2), ("drift", 3)]
    outcomes = [run(api, lake, report(status, day=day(offset)))["action"] for status, offset in checks]
    assert outcomes[:4] == ["retrain_pending", "retrain_pending", "retrain_pending", "backfill_created"]
    assert outcomes[4] != "backfill_created"  # one retrain per event
    assert len(api.created) == 1
    assert (api.created[0]["conf"]["window_end"], api.created[0]["conf"]["window_days"]) == (day(4), 3)


def test_a_retrain_that_was_not_promoted_is_tried_again_up_to_the_limit(tmp_path: Path):
    attempts = 3
    lake, api = LocalLake(tmp_path / "lake"), ScriptedApi()
    run(api, lake, report(day=day(0)))
    first = run(api, lake, report(day=day(2)), max_attempts=attempts, now=NOW + dt.timedelta(days=2))
    assert first["action"] == "backfill_created" and first["conf"]["window_days"] == 3
    # Same champion, still drifting: the retrain was not promoted. Before the wait: nothing.
    assert run(api, lake, report(day=day(3)), max_attempts=attempts, now=NOW + dt.timedelta(days=3))["action"] == "none"
    second = run(api, lake, report(day=day(4)), max_attempts=attempts, now=NOW + dt.timedelta(days=4))
    assert second["action"] == "backfill_created" and second["conf"]["window_days"] == 5  # more data
    assert "attempt 2 of 3" in second["conf"]["reason"]
    assert second["event_id"] == first["event_id"]
    third = run(api, lake, report(day=day(6)), max_attempts=attempts, now=NOW + dt.timedelta(days=6))
    assert third["action"] == "backfill_created" and "attempt 3 of 3" in third["conf"]["reason"]
    assert run(api, lake, report(day=day(9)), max_attempts=attempts, now=NOW + dt.timedelta(days=9))["action"] == "none"  # the limit
    assert len(api.created) == 3
    # A promoted retrain (a new champion) closes the event instead.
    assert run(api, lake, report(champion="4", day=day(10)), max_attempts=attempts, now=NOW + dt.timedelta(days=10))["action"] == (
        "retrain_pending"
    )


def test_by_default_one_retraining_per_drift_event(tmp_path: Path):
    lake, api = LocalLake(tmp_path / "lake"), ScriptedApi()
    run(api, lake, report(day=day(0)))
    assert run(api, lake, report(day=day(2)), now=NOW + dt.timedelta(days=2))["action"] == "backfill_created"
    # Still drifting against the same champion long after: that retrain was not promoted, and
    # still no second retraining for the event.
    for n in range(3, 12):
        assert run(api, lake, report(day=day(n)), now=NOW + dt.timedelta(days=n))["action"] == "none"
    assert len(api.created) == 1
    assert "attempt" not in api.created[0]["conf"]["reason"]


def test_max_attempts_below_one_is_refused(tmp_path: Path):
    with pytest.raises(ValueError, match="max_attempts"):
        run(ScriptedApi(), LocalLake(tmp_path / "lake"), report(day=day(0)), max_attempts=0)


def test_the_backfill_follows_the_train_schedule(tmp_path: Path):
    lake, api = LocalLake(tmp_path / "lake"), ScriptedApi()
    weekly = request_retraining(api, lake, report(), cooldown_hours=24, retrain_window_days=7, wait_days=0,
                                train_schedule="0 2 * * 1", now=NOW)  # fmt: skip
    assert (weekly["from_date"], weekly["to_date"]) == ("2026-11-23T02:00:00+00:00",) * 2  # last Monday's run
    assert weekly["conf"]["window_end"] == day(0)  # the window does not follow the run's own interval


def test_each_days_report_records_what_became_of_retraining(tmp_path: Path):
    lake, api = LocalLake(tmp_path / "lake"), ScriptedApi()
    days = [report(day=day(0)), report(day=day(1)), report("no_drift", day=day(2))]
    for r in days:
        lake.put_json(r["report_key"], r)  # as run_drift_check writes it
    run(api, lake, days[0])
    run(api, lake, days[1])
    run(api, lake, days[2], now=NOW + dt.timedelta(days=2))
    stored = [lake.get_json(r["report_key"])["retraining"] for r in days]
    assert [s["action"] for s in stored] == ["retrain_pending", "retrain_pending", "backfill_created"]
    assert stored[0]["retrain_after"] == day(2) and stored[2]["backfill_id"] == 11
    assert lake.get_json(days[2]["report_key"])["status"] == "no_drift"  # the rest of the report is kept


def test_no_report_in_the_lake_no_record(tmp_path: Path):
    lake, api = LocalLake(tmp_path / "lake"), ScriptedApi()
    assert run(api, lake, report(day=day(0)))["action"] == "retrain_pending"
    assert not lake.exists(report(day=day(0))["report_key"])


def test_a_one_day_drift_that_does_not_persist_is_closed_without_a_retrain(tmp_path: Path):
    lake, api = LocalLake(tmp_path / "lake"), ScriptedApi()
    assert run(api, lake, report(day=day(0)))["action"] == "retrain_pending"  # a false alarm, say
    assert run(api, lake, report("no_drift", day=day(1)))["action"] == "retrain_pending"  # still waiting
    closed = run(api, lake, report("no_drift", day=day(2)), now=NOW + dt.timedelta(days=2))
    assert closed["action"] == "none" and "transient" in closed["reason"]
    assert state_of(lake)["open_event"] is None and not api.created and api.asked == 0
    # The real change comes later: a new event, whose retrain learns from that day on only.
    assert run(api, lake, report(day=day(3)), now=NOW + dt.timedelta(days=3))["action"] == "retrain_pending"
    assert run(api, lake, report(day=day(4)), now=NOW + dt.timedelta(days=4))["action"] == "retrain_pending"
    created = run(api, lake, report("no_drift", day=day(5)), now=NOW + dt.timedelta(days=5))
    assert created["action"] == "backfill_created" and created["conf"]["window_days"] == 3
    assert created["event_id"].endswith(day(3)) and created["conf"]["window_end"] == day(5)


def test_drift_days_are_counted_whatever_the_order_of_the_checks():
    state: dict[str, Any] = {}
    for offset in (3, 0):  # the latest day first, then a catch-up of an earlier one
        d = decide(report(day=day(offset)), state, active_backfills=0, now=NOW, cooldown=COOLDOWN, wait_days=2)
        state = {"open_event": d.event}
    assert state["open_event"]["drift_days"] == [day(0), day(3)] and state["open_event"]["first_day"] == day(0)
    due = decide(report("no_drift", day=day(2)), state, active_backfills=0, now=NOW, cooldown=COOLDOWN, wait_days=2)
    assert due.create  # two drifting days: the drift persisted


def test_an_event_recorded_before_drift_days_existed_still_retrains():
    old = {k: v for k, v in pending().items() if k != "drift_days"}
    due = decide(report("no_drift", day=day(2)), {"open_event": old}, active_backfills=0, now=NOW,
                 cooldown=COOLDOWN, wait_days=2)  # fmt: skip
    assert due.create


def test_with_no_wait_a_blocked_retrain_is_not_closed_by_a_quiet_day():
    state = {"open_event": open_event_for(report(day=day(0)), 0)}
    quiet = decide(report("no_drift", day=day(1)), state, active_backfills=1, now=NOW, cooldown=COOLDOWN,
                   wait_days=0)  # fmt: skip
    assert not quiet.create and quiet.event is not None and "still active" in quiet.reason
