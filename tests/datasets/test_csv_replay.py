"""The loans dataset plugs in by declaration: a spec plus a committed CSV replayed per day."""

from __future__ import annotations

import datetime as dt
import io

import pandas as pd
from mlflywheel.datasets import get_spec
from mlflywheel.datasets.landing import is_landed, landing_key
from mlflywheel.datasets.upstreams.csv_replay import LOANS_CSV, csv_days, generate_loans_csv, replay_csv
from mlflywheel.lake import LocalLake


def test_spec_registered():
    spec = get_spec("loans")
    assert spec.name == "loans" and spec.target == "defaulted"
    assert spec.timestamp_column == "applied_at" and spec.landing_format == "csv"


def test_committed_csv_is_small_and_reproducible(tmp_path):
    assert LOANS_CSV.stat().st_size < 1_000_000
    regenerated = generate_loans_csv(tmp_path / "loans.csv")
    assert regenerated.read_bytes() == LOANS_CSV.read_bytes()


def test_csv_days():
    days = csv_days(get_spec("loans"), LOANS_CSV)
    assert days == [dt.date(2026, 11, 1) + dt.timedelta(days=i) for i in range(12)]


def test_replay_lands_the_days_rows(tmp_path):
    spec = get_spec("loans")
    lake = LocalLake(tmp_path)
    day = dt.date(2026, 11, 4)
    count = replay_csv(lake, spec, LOANS_CSV, day)
    assert is_landed(lake, spec, day)
    landed = pd.read_csv(io.BytesIO(lake.get_bytes(landing_key(spec, day))), dtype=str)
    assert len(landed) == count == 250
    assert list(landed.columns) == spec.column_names
    times = pd.to_datetime(landed["applied_at"], utc=True)
    assert (times.dt.date == day).all()
    # The text is landed untouched: the same rows as in the source, byte for byte per cell.
    source = pd.read_csv(LOANS_CSV, dtype=str)
    expected = source[pd.to_datetime(source["applied_at"], utc=True).dt.date == day].reset_index(drop=True)
    pd.testing.assert_frame_equal(landed, expected)


def test_replay_of_a_day_without_rows_lands_an_empty_file(tmp_path):
    spec = get_spec("loans")
    lake = LocalLake(tmp_path)
    assert replay_csv(lake, spec, LOANS_CSV, dt.date(2027, 1, 1)) == 0
    header = lake.get_bytes(landing_key(spec, dt.date(2027, 1, 1))).decode().strip()
    assert header.split(",") == spec.column_names
