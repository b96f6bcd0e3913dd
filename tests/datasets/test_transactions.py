"""The built-in transactions upstream: shape, reproducibility, a learnable label, detectable drift."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from mlflywheel.datasets.transactions_spec import TRANSACTIONS
from mlflywheel.datasets.upstreams.transactions import DriftSchedule, generate_day
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
