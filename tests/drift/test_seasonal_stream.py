"""The default drift policy on a seasonal stream: quiet on stable days, loud on the first shifted day.

The stream (:mod:`mlflywheel.datasets.upstreams.seasonal`) has a day-of-week feature, a weekend offset and a
yearly sine in a numeric feature; the champion is retrained weekly on the 14 days before, and
every day is checked against its training rows with the spec's default policy (the function the
daily check calls, :func:`mlflywheel.drift.check.assess`, scipy backend).
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from mlflywheel.datasets.upstreams.seasonal import SEASONAL_SPEC, Replay, SeasonalStream, StreamModel
from mlflywheel.drift.backends import get_backend
from mlflywheel.drift.check import assess

ORIGIN = dt.date(2025, 1, 1)
FIRST_CHECK = ORIGIN + dt.timedelta(days=14)


def triggers(replay: Replay, day: dt.date, policy=None) -> list[str]:
    outcome = assess(
        get_backend("scipy"), SEASONAL_SPEC, replay.champion_train_rows(day, first_retrain=FIRST_CHECK),
        replay.day(day), model=StreamModel(), p_value=SEASONAL_SPEC.drift.p_value or 0.05,
        correction="bonferroni", max_rows=5000, seed=42, policy=policy,
    )  # fmt: skip
    fired = ["data_drift"] if outcome["data_drift"]["is_drift"] else []
    return fired + (["prediction_drift"] if outcome["prediction_drift"]["drifted"] else [])


@pytest.mark.parametrize(("rows_per_day", "stable_days"), [(50, 140), (2000, 42)])
def test_default_policy_is_quiet_on_stable_days_and_flags_the_shift_at_once(
    rows_per_day: int, stable_days: int
) -> None:
    shift_day = FIRST_CHECK + dt.timedelta(days=stable_days)
    stream = SeasonalStream(origin=ORIGIN, covariate_shift_day=shift_day)
    replay = Replay(stream, rows_per_day, seed=7)
    stable = [FIRST_CHECK + dt.timedelta(days=i) for i in range(stable_days)]
    alarms = [day for day in stable if triggers(replay, day)]
    assert len(alarms) <= 0.05 * stable_days, alarms
    assert "data_drift" in triggers(replay, shift_day)


def test_the_stream_is_seasonal_enough_to_fool_a_check_without_matching() -> None:
    # Guard for the test above: the same stream, compared without seasonal matching, alarms daily
    # (the day-of-week feature alone), so a quiet default policy is the policy's doing.
    replay = Replay(SeasonalStream(origin=ORIGIN), 50, seed=7)
    unmatched = dataclasses.replace(SEASONAL_SPEC.drift, seasonality="none")
    days = [FIRST_CHECK + dt.timedelta(days=i) for i in range(14)]
    assert all("data_drift" in triggers(replay, day, unmatched) for day in days)
