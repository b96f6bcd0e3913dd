"""Scenarios: the demo's layout, and landing days with faults and late deliveries."""

from __future__ import annotations

import datetime as dt
import io

import pandas as pd
import pytest
from mlflywheel.datasets import get_spec
from mlflywheel.datasets.landing import frame_to_csv_bytes, is_landed, land_frame, landing_key
from mlflywheel.datasets.upstreams.scenario import Scenario, demo_scenario, land_day, land_scenario
from mlflywheel.datasets.upstreams.transactions import generate_day
from mlflywheel.lake import LocalLake

END = dt.date(2026, 11, 21)
TRANSACTIONS = get_spec("transactions")


def test_demo_layout():
    scenario = demo_scenario(END)
    assert scenario.dataset == "transactions"
    assert scenario.start == dt.date(2026, 11, 1) and scenario.end == END and len(scenario.day_list) == 21
    assert scenario.drift.start == dt.date(2026, 11, 18)  # the last 4 days drift
    assert scenario.drift.covariate > 0 and scenario.drift.concept > 0
    corrupt = [d for d, f in scenario.faults.items() if f == "corrupt_file"]
    row_level = [d for d, f in scenario.faults.items() if f != "corrupt_file"]
    assert len(corrupt) == 1 and corrupt[0] < scenario.drift.start
    assert len(row_level) == 1 and row_level[0] < scenario.drift.start
    assert len(scenario.late_days) == 1 and scenario.late_days[0] < scenario.drift.start
    assert scenario.late_days[0] not in scenario.faults


def test_demo_scales_down():
    scenario = demo_scenario(END, days=4, drift_days=1)
    assert scenario.start == dt.date(2026, 11, 18)
    assert all(d < scenario.drift.start for d in (*scenario.faults, *scenario.late_days))


def test_scenario_rejects_bad_days_and_faults():
    with pytest.raises(ValueError, match="outside"):
        Scenario("transactions", END, 2, 10, 1, late_days=(END + dt.timedelta(days=5),))
    with pytest.raises(ValueError, match="unknown fault"):
        Scenario("transactions", END, 2, 10, 1, faults={END: "late"})


def test_land_scenario_without_then_with_late_day(tmp_path):
    lake = LocalLake(tmp_path)
    scenario = demo_scenario(END, days=10, rows_per_day=50, drift_days=2)
    [late] = scenario.late_days
    landed = land_scenario(lake, scenario, include_late=False)
    assert landed == [d for d in scenario.day_list if d != late]
    assert not is_landed(lake, TRANSACTIONS, late)
    assert all(is_landed(lake, TRANSACTIONS, d) for d in landed)

    land_day(lake, scenario, late)
    assert is_landed(lake, TRANSACTIONS, late)
    late_rows = pd.read_csv(io.BytesIO(lake.get_bytes(landing_key(TRANSACTIONS, late))))
    assert len(late_rows) == 50

    for day, fault in scenario.faults.items():
        data = lake.get_bytes(landing_key(TRANSACTIONS, day))
        if fault == "corrupt_file":
            with pytest.raises(Exception):  # noqa: B017 - unreadable is the point
                pd.read_csv(io.BytesIO(data))
        else:
            assert pd.read_csv(io.BytesIO(data)).isna().sum().sum() > 0

    clean_day = landed[0]
    expected = generate_day(clean_day, 50, seed=scenario.seed, drift=scenario.drift)
    assert lake.get_bytes(landing_key(TRANSACTIONS, clean_day)) == frame_to_csv_bytes(expected)


def test_relanding_replaces(tmp_path):
    lake = LocalLake(tmp_path)
    day = dt.date(2026, 11, 2)
    land_frame(lake, TRANSACTIONS, day, generate_day(day, 30, seed=1))
    land_frame(lake, TRANSACTIONS, day, generate_day(day, 5, seed=1))
    assert len(pd.read_csv(io.BytesIO(lake.get_bytes(landing_key(TRANSACTIONS, day))))) == 5
    assert len(lake.list_keys(f"landing/transactions/dt={day}/")) == 2  # the file and its marker


def test_landed_csv_uses_iso_utc_with_z(tmp_path):
    lake = LocalLake(tmp_path)
    day = dt.date(2026, 11, 2)
    land_frame(lake, TRANSACTIONS, day, generate_day(day, 3, seed=1))
    landed = pd.read_csv(io.BytesIO(lake.get_bytes(landing_key(TRANSACTIONS, day))), dtype=str)
    assert landed["event_time"].str.fullmatch(r"2026-11-02T\d\d:\d\d:\d\d\.\d{3}Z").all()


def test_csv_backed_scenario(tmp_path):
    lake = LocalLake(tmp_path)
    start = dt.date(2026, 11, 1)
    scenario = Scenario("loans", start, 2, rows_per_day=0, seed=1, faults={start: "duplicate_ids"})
    assert land_scenario(lake, scenario) == [start, start + dt.timedelta(days=1)]
    loans = get_spec("loans")
    first = pd.read_csv(io.BytesIO(lake.get_bytes(landing_key(loans, start))), dtype=str)
    assert len(first) == 250 and first["application_id"].duplicated().any()
