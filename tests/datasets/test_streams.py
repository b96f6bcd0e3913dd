"""Stream descriptions: days, volumes, drift events at known days, and the stream's own truth."""

from __future__ import annotations

import datetime as dt
from itertools import pairwise

import numpy as np
import pandas as pd
import pytest
from mlflywheel.datasets.upstreams.streams import DEFAULT_START, DriftEvent, Stream
from mlflywheel.datasets.upstreams.transactions import Seasonality

SEASONAL_ABRUPT = Stream(
    "seasonal_abrupt", days=30, rows_per_day=400, seed=3, seasonality=Seasonality(),
    events=(DriftEvent(day=20, kind="both"),),
)  # fmt: skip


def test_days_and_volumes_follow_the_weekly_pattern():
    assert SEASONAL_ABRUPT.date(0) == DEFAULT_START and DEFAULT_START.weekday() == 0
    assert SEASONAL_ABRUPT.index(SEASONAL_ABRUPT.date(17)) == 17
    rows = [SEASONAL_ABRUPT.rows_on(i) for i in range(7)]
    assert rows == [round(400 * f) for f in Seasonality().weekly_volume]
    assert [len(SEASONAL_ABRUPT.frame(i)) for i in range(3)] == rows[:3]
    flat = Stream("flat", days=5, rows_per_day=50, seed=1)
    assert {flat.rows_on(i) for i in range(5)} == {50}
    with pytest.raises(IndexError):
        SEASONAL_ABRUPT.date(30)
    with pytest.raises(IndexError):
        SEASONAL_ABRUPT.index(DEFAULT_START - dt.timedelta(days=1))


def test_frames_are_deterministic_by_seed_and_each_day_is_its_own():
    again = Stream(**SEASONAL_ABRUPT.__dict__)
    pd.testing.assert_frame_equal(SEASONAL_ABRUPT.frame(21), again.frame(21))
    other_seed = Stream(**{**SEASONAL_ABRUPT.__dict__, "seed": 4})
    assert not SEASONAL_ABRUPT.frame(21).equals(other_seed.frame(21))
    day = SEASONAL_ABRUPT.frame(5)["event_time"]
    assert (day.dt.date == SEASONAL_ABRUPT.date(5)).all()


def test_drift_event_becomes_a_schedule_on_its_day():
    (schedule,) = SEASONAL_ABRUPT.schedules
    assert schedule.start == SEASONAL_ABRUPT.date(20)
    assert (schedule.covariate, schedule.concept) == (1.0, 1.0)
    covariate_only = DriftEvent(day=4, kind="covariate", ramp_days=6, strength=0.5).schedule(DEFAULT_START)
    assert (covariate_only.covariate, covariate_only.concept, covariate_only.ramp_days) == (0.5, 0.0, 6)
    assert DriftEvent(day=4, kind="concept").schedule(DEFAULT_START).covariate == 0.0
    # Before the event the stream is the undrifted seasonal feed, after it the features move.
    undrifted = Stream(**{**SEASONAL_ABRUPT.__dict__, "events": ()})
    pd.testing.assert_frame_equal(SEASONAL_ABRUPT.frame(19), undrifted.frame(19))
    assert not SEASONAL_ABRUPT.frame(20).equals(undrifted.frame(20))


def test_gradual_event_ramps_over_its_days():
    gradual = Stream("gradual", days=30, rows_per_day=3000, seed=5, events=(DriftEvent(day=10, ramp_days=8),))
    strengths = [gradual.schedules[0].progress(gradual.date(i)) for i in range(8, 20)]
    assert strengths[:2] == [0.0, 0.0] and strengths[-3:] == [1.0] * 3
    assert all(a <= b for a, b in pairwise(strengths))
    means = [np.log(gradual.frame(i)["amount"]).mean() for i in (9, 12, 15, 18)]
    assert means == sorted(means)


def test_change_days_and_stability():
    ramp = DriftEvent(day=10, kind="concept", ramp_days=4)
    stream = Stream("two", days=40, rows_per_day=10, seed=1, events=(DriftEvent(day=25), ramp))
    assert stream.change_days == (10, 25)  # sorted by day
    assert ramp.last_change_day == 13 and list(ramp.change_days) == [10, 11, 12, 13]
    assert stream.is_stable(9, since=0)
    assert not stream.is_stable(10, since=0)  # the change itself
    assert not stream.is_stable(20, since=5)  # a model trained before the ramp, scored after it
    assert not stream.is_stable(20, since=12)  # its window holds part of the ramp
    assert stream.is_stable(20, since=13)  # trained from the ramp's last day on: same regime
    assert not stream.is_stable(30, since=14)
    assert stream.is_stable(30, since=25)
    no_drift = Stream("stable", days=40, rows_per_day=10, seed=1)
    assert all(no_drift.is_stable(d, since=0) for d in range(40))


def test_small_volume_stream_has_positives_most_days():
    small = Stream("small", days=28, rows_per_day=50, seed=9, seasonality=Seasonality(), base_rate=0.15)
    positives = [int(small.frame(i)["is_fraud"].sum()) for i in range(small.days)]
    assert sum(p > 0 for p in positives) >= 26
    assert 40 <= sum(small.rows_on(i) for i in range(7)) / 7 <= 60


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"days": 0}, "days and rows_per_day"),
        ({"rows_per_day": 0}, "days and rows_per_day"),
        ({"base_rate": 1.5}, "base_rate"),
        ({"events": (DriftEvent(day=30),)}, "past its 30 days"),
        ({"name": ""}, "needs a name"),
    ],
)
def test_stream_rejects_bad_descriptions(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Stream(**{"name": "s", "days": 30, "rows_per_day": 10, "seed": 1, **kwargs})


def test_drift_event_rejects_bad_values():
    with pytest.raises(ValueError, match="kind"):
        DriftEvent(day=1, kind="label")
    with pytest.raises(ValueError, match="day"):
        DriftEvent(day=-1)
    with pytest.raises(ValueError, match="ramp_days"):
        DriftEvent(day=1, ramp_days=-2)
