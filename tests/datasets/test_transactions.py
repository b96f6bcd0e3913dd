"""The built-in transactions upstream: shape, reproducibility, a learnable label, detectable drift."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from mlflywheel.datasets.upstreams.transactions import TRANSACTIONS, DriftSchedule, generate_day
from scipy.stats import chi2_contingency, ks_2samp

DAY = dt.date(2026, 11, 1)
DRIFT = DriftSchedule(start=dt.date(2026, 11, 20))


def test_columns_types_and_day_bounds():
    frame = generate_day(DAY, 3000, seed=1)
    assert list(frame.columns) == TRANSACTIONS.column_names
    assert len(frame) == 3000
    assert str(frame["event_time"].dtype) == "datetime64[ns, UTC]"
    assert frame["event_time"].min() >= pd.Timestamp("2026-11-01", tz="UTC")
    assert frame["event_time"].max() < pd.Timestamp("2026-11-02", tz="UTC")
    assert frame["event_time"].is_monotonic_increasing
    assert frame["transaction_id"].is_unique
    for column in TRANSACTIONS.columns:
        values = frame[column.name]
        if column.categories:
            assert set(values) <= set(column.categories), column.name
        if column.min is not None:
            assert values.min() >= column.min and values.max() <= column.max, column.name
        if not column.nullable:
            assert values.notna().all(), column.name
    online = frame["channel"] == "online"
    assert frame.loc[online, "distance_from_home_km"].isna().all()
    assert frame.loc[~online, "distance_from_home_km"].notna().all()
    assert 0.15 < online.mean() < 0.45


def test_reproducible_by_seed_and_unique_across_days():
    first = generate_day(DAY, 500, seed=3, drift=DRIFT)
    pd.testing.assert_frame_equal(first, generate_day(DAY, 500, seed=3, drift=DRIFT))
    assert not first.equals(generate_day(DAY, 500, seed=4))
    next_day = generate_day(DAY + dt.timedelta(days=1), 500, seed=3)
    assert not set(first["transaction_id"]) & set(next_day["transaction_id"])
    assert generate_day(DAY, 0, seed=3).columns.tolist() == TRANSACTIONS.column_names


def test_zero_strength_drift_changes_nothing():
    no_drift = DriftSchedule(start=DAY, covariate=0.0, concept=0.0)
    pd.testing.assert_frame_equal(
        generate_day(DAY, 300, seed=5, drift=no_drift), generate_day(DAY, 300, seed=5)
    )


def test_drift_only_from_its_start():
    before = DRIFT.start - dt.timedelta(days=1)
    pd.testing.assert_frame_equal(
        generate_day(before, 300, seed=5, drift=DRIFT), generate_day(before, 300, seed=5)
    )


def _features(frame: pd.DataFrame) -> np.ndarray:
    parts = [
        np.log(frame["amount"]),
        np.log1p(frame["account_age_days"]),
        frame["txn_count_24h"],
        np.log1p(frame["distance_from_home_km"].fillna(0.0)),
        frame["distance_from_home_km"].isna(),
        (frame["account_age_days"] < 30),
    ]
    for column in TRANSACTIONS.categorical_features:
        for category in TRANSACTIONS.column(column).categories:
            parts.append(frame[column] == category)
    return np.column_stack([np.asarray(p, dtype=float) for p in parts])


@pytest.fixture(scope="module")
def fitted_model():
    sklearn = pytest.importorskip("sklearn.linear_model")
    from sklearn.preprocessing import StandardScaler

    train = pd.concat([generate_day(DAY + dt.timedelta(days=i), 4000, seed=7) for i in range(5)])
    scaler = StandardScaler().fit(_features(train))
    model = sklearn.LogisticRegression(max_iter=500).fit(
        scaler.transform(_features(train)), train["is_fraud"]
    )
    return lambda frame: model.predict_proba(scaler.transform(_features(frame)))[:, 1]


def test_label_rate_and_learnable_signal(fitted_model):
    from sklearn.metrics import average_precision_score, roc_auc_score

    holdout = pd.concat([generate_day(dt.date(2026, 11, 10 + i), 4000, seed=7) for i in range(2)])
    assert 0.02 <= holdout["is_fraud"].mean() <= 0.045
    scores = fitted_model(holdout)
    assert roc_auc_score(holdout["is_fraud"], scores) > 0.85
    assert average_precision_score(holdout["is_fraud"], scores) > 0.3


def test_covariate_drift_detectable_and_no_false_alarm():
    before = generate_day(DRIFT.start - dt.timedelta(days=1), 3000, seed=7, drift=DRIFT)
    earlier = generate_day(DRIFT.start - dt.timedelta(days=2), 3000, seed=7, drift=DRIFT)
    after = generate_day(DRIFT.start, 3000, seed=7, drift=DRIFT)
    assert ks_2samp(before["amount"], after["amount"]).pvalue < 1e-6
    assert ks_2samp(before["txn_count_24h"], after["txn_count_24h"]).pvalue < 1e-6
    assert ks_2samp(before["amount"], earlier["amount"]).pvalue > 1e-3

    def chi2_p(a: pd.Series, b: pd.Series) -> float:
        table = pd.crosstab(pd.concat([a, b]).to_numpy(), np.r_[np.zeros(len(a)), np.ones(len(b))])
        return chi2_contingency(table)[1]

    assert chi2_p(before["channel"], after["channel"]) < 1e-6
    assert chi2_p(before["country"], after["country"]) < 1e-6
    assert chi2_p(before["channel"], earlier["channel"]) > 1e-3


def test_concept_drift_breaks_the_old_model(fitted_model):
    from sklearn.metrics import roc_auc_score

    concept_only = DriftSchedule(start=DRIFT.start, covariate=0.0, concept=1.0)
    before = generate_day(DRIFT.start - dt.timedelta(days=1), 6000, seed=9, drift=concept_only)
    after = generate_day(DRIFT.start, 6000, seed=9, drift=concept_only)
    # Same feature distribution, different fraud relationship.
    assert ks_2samp(before["amount"], after["amount"]).pvalue > 1e-3
    auc_before = roc_auc_score(before["is_fraud"], fitted_model(before))
    auc_after = roc_auc_score(after["is_fraud"], fitted_model(after))
    assert auc_after < auc_before - 0.2


# --- seasonality, gradual drift, several schedules, base rate ------------------------------------

from itertools import pairwise

from mlflywheel.datasets.upstreams.transactions import (
    Seasonality,
    combined_strengths,
    intercept_for_rate,
)

SEASON = Seasonality()


def test_gradual_ramp_is_monotone_and_reaches_full_strength():
    ramp = DriftSchedule(start=DAY, covariate=1.0, concept=0.5, ramp_days=5)
    strengths = [ramp.strengths(DAY + dt.timedelta(days=i)) for i in range(-2, 8)]
    covariate = [c for c, _ in strengths]
    assert covariate[:2] == [0.0, 0.0]  # before the start
    assert 0.0 < covariate[2] < 1.0  # the first day of the ramp is partial
    assert all(a < b for a, b in pairwise(covariate[2:7]))  # strictly rising
    assert covariate[6:] == [1.0] * 4  # full from day start + ramp_days - 1 on
    assert strengths[-1] == (1.0, 0.5)
    assert DriftSchedule(start=DAY, ramp_days=1).strengths(DAY) == (1.0, 1.0)  # 1 day: abrupt
    with pytest.raises(ValueError, match="ramp_days"):
        DriftSchedule(start=DAY, ramp_days=-1)


def test_gradual_drift_moves_the_data_step_by_step():
    ramp = DriftSchedule(start=DAY, covariate=1.0, concept=0.0, ramp_days=8)
    means = [
        np.log(generate_day(DAY + dt.timedelta(days=i), 4000, seed=3, drift=ramp)["amount"]).mean()
        for i in (-1, 1, 3, 5, 7)
    ]
    assert all(a < b for a, b in pairwise(means)), means


def test_several_schedules_add_up_and_a_negative_one_takes_a_shift_back():
    shift = DriftSchedule(start=DAY, covariate=1.0, concept=1.0)
    back = DriftSchedule(start=DAY + dt.timedelta(days=10), covariate=-1.0, concept=-1.0, ramp_days=4)
    assert combined_strengths((shift, back), DAY + dt.timedelta(days=5)) == (1.0, 1.0)
    assert combined_strengths((shift, back), DAY + dt.timedelta(days=11)) == (0.5, 0.5)
    assert combined_strengths((shift, back), DAY + dt.timedelta(days=20)) == (0.0, 0.0)
    assert combined_strengths(None, DAY) == (0.0, 0.0)
    later = DAY + dt.timedelta(days=20)  # fully taken back: the undrifted feed again
    pd.testing.assert_frame_equal(generate_day(later, 200, seed=2, drift=(shift, back)), generate_day(later, 200, seed=2))


def test_weekly_pattern_changes_the_weekend_mix_and_volume():
    monday, saturday = dt.date(2026, 9, 7), dt.date(2026, 9, 12)
    assert monday.weekday() == 0 and saturday.weekday() == 5
    weekday_frame = generate_day(monday, 20_000, seed=4, seasonality=SEASON)
    weekend_frame = generate_day(saturday, 20_000, seed=4, seasonality=SEASON)
    share = {
        name: (frame["merchant_category"] == "restaurants").mean()
        for name, frame in (("weekday", weekday_frame), ("weekend", weekend_frame))
    }
    assert share["weekend"] > share["weekday"] + 0.05
    assert SEASON.volume_factor(saturday) > SEASON.volume_factor(monday)
    # Without the weekend mix the two days draw from the same distribution.
    flat = Seasonality(weekend_mix=0.0, yearly_amount=0.0, yearly_fraud=0.0)
    pd.testing.assert_frame_equal(generate_day(saturday, 300, seed=4, seasonality=flat),
                                  generate_day(saturday, 300, seed=4))  # fmt: skip


def test_yearly_sine_moves_amounts_and_fraud_rate_with_the_season():
    peak = dt.date(2026, 12, 16)  # day of year 350
    trough = peak - dt.timedelta(weeks=26)  # half a year back, the same weekday
    assert SEASON.yearly(peak) == pytest.approx(1.0)
    assert SEASON.yearly(trough) == pytest.approx(-1.0, abs=1e-3)
    high = generate_day(peak, 30_000, seed=5, seasonality=SEASON, base_rate=0.1)
    low = generate_day(trough, 30_000, seed=5, seasonality=SEASON, base_rate=0.1)
    assert np.log(high["amount"]).mean() > np.log(low["amount"]).mean() + 0.4
    assert high["is_fraud"].mean() > low["is_fraud"].mean() + 0.02


def test_base_rate_sets_the_fraud_rate_and_small_days_have_positives():
    for rate in (0.01, 0.15, 0.4):
        frame = generate_day(DAY, 40_000, seed=6, base_rate=rate)
        assert frame["is_fraud"].mean() == pytest.approx(rate, rel=0.15), rate
    assert intercept_for_rate(0.15) == intercept_for_rate(0.15)  # same answer every call
    days = [generate_day(DAY + dt.timedelta(days=i), 50, seed=6, base_rate=0.15) for i in range(20)]
    positives = [int(day["is_fraud"].sum()) for day in days]
    assert sum(p > 0 for p in positives) >= 18  # at 50 rows a day nearly every day has positives
    assert 0.08 < np.mean(positives) / 50 < 0.25
    for bad in (0.0, 1.0, -0.1):
        with pytest.raises(ValueError, match="base_rate"):
            generate_day(DAY, 10, seed=6, base_rate=bad)


def test_seasonal_drifted_feed_is_reproducible_and_valid():
    ramp = DriftSchedule(start=DAY, ramp_days=6)
    first = generate_day(DAY + dt.timedelta(days=2), 800, seed=8, drift=(ramp,), seasonality=SEASON, base_rate=0.2)
    again = generate_day(DAY + dt.timedelta(days=2), 800, seed=8, drift=(ramp,), seasonality=SEASON, base_rate=0.2)
    pd.testing.assert_frame_equal(first, again)
    assert list(first.columns) == TRANSACTIONS.column_names
    for column in TRANSACTIONS.columns:
        if column.categories:
            assert set(first[column.name]) <= set(column.categories), column.name
        if column.min is not None:
            assert first[column.name].min() >= column.min and first[column.name].max() <= column.max


def test_seasonality_rejects_bad_values():
    with pytest.raises(ValueError, match="weekly_volume"):
        Seasonality(weekly_volume=(1.0,) * 6)
    with pytest.raises(ValueError, match="weekly_volume"):
        Seasonality(weekly_volume=(1.0,) * 6 + (0.0,))
    with pytest.raises(ValueError, match="weekend_mix"):
        Seasonality(weekend_mix=-1)
    with pytest.raises(ValueError, match="peak_day_of_year"):
        Seasonality(peak_day_of_year=0)
