"""The drift policy: monitored features, like-with-like reference, the two criteria, the dataset rule."""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pandas as pd
import pytest
from mlflywheel.datasets.spec import DriftPolicy
from mlflywheel.datasets.upstreams.seasonal import SEASONAL_SPEC, StreamModel
from mlflywheel.drift.backends import get_backend
from mlflywheel.drift.check import assess
from mlflywheel.drift.policy import (
    current_window_days,
    judge_data_drift,
    match_phase_mix,
    monitored_features,
    phases,
    split_significance,
)

SPEC = SEASONAL_SPEC
SCIPY = get_backend("scipy")


def frame(seed: int, n: int, *, level_shift: float = 0.0, segment_p=(0.5, 0.3, 0.2)) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2025-03-03", tz="UTC")  # a Monday
    return pd.DataFrame(
        {
            "event_time": start + pd.to_timedelta(rng.integers(0, 7 * 86_400, n), unit="s"),
            "day_of_week": "mon",
            "segment": rng.choice(["a", "b", "c"], n, p=list(segment_p)),
            "level": rng.normal(level_shift, 1.0, n),
            "amount": rng.lognormal(3.0, 1.0, n),
            "label": rng.integers(0, 2, n),
        }
    )


def judge(reference: pd.DataFrame, current: pd.DataFrame, policy: DriftPolicy, backend=SCIPY) -> dict:
    categorical, numeric = monitored_features(SPEC, policy)
    return judge_data_drift(
        backend, reference, current, categorical=categorical, numeric=numeric, policy=policy,
        p_value=0.05, correction="bonferroni",
    )  # fmt: skip


def test_monitored_features_default_all_minus_exclude() -> None:
    assert monitored_features(SPEC, DriftPolicy()) == (["day_of_week", "segment"], ["level", "amount"])
    assert monitored_features(SPEC, DriftPolicy(exclude=("day_of_week",))) == (["segment"], ["level", "amount"])
    chosen = DriftPolicy(monitored=("amount", "segment", "level"), exclude=("level",))
    assert monitored_features(SPEC, chosen) == (["segment"], ["amount"])  # spec order, not the policy's
    with pytest.raises(ValueError, match="not features"):
        monitored_features(SPEC, DriftPolicy(exclude=("label",)))
    with pytest.raises(ValueError, match="monitors no feature"):
        monitored_features(SPEC, DriftPolicy(monitored=("level",), exclude=("level",)))


def test_current_window_spans_at_least_one_period() -> None:
    assert current_window_days(DriftPolicy(), 1) == 1
    assert current_window_days(DriftPolicy(window_days=3), 1) == 3
    assert current_window_days(DriftPolicy(window_days=3, seasonal_period_days=7), 1) == 7


def test_phases_from_timestamps() -> None:
    stamps = pd.Series(pd.to_datetime(["2025-03-03 05:10", "2025-03-09 23:59"], utc=True))  # Mon, Sun
    assert phases(stamps, "day_of_week").tolist() == [0, 6]
    assert phases(stamps, "hour_of_day").tolist() == [5, 23]
    with pytest.raises(ValueError, match="seasonality"):
        phases(stamps, "month")


def test_reference_is_resampled_to_the_current_phase_mix() -> None:
    rng = np.random.default_rng(3)
    # Reference: a week with twice as many weekend rows as weekday rows per day.
    days = np.repeat(np.arange(7), [100, 100, 100, 100, 100, 200, 200])
    reference = pd.DataFrame(
        {"event_time": pd.Timestamp("2025-03-03", tz="UTC") + pd.to_timedelta(days * 86_400 + 60, unit="s"),
         "x": rng.normal(size=days.size)}
    )  # fmt: skip
    one_tuesday = reference.iloc[:40].assign(
        event_time=pd.Timestamp("2025-03-11 12:00", tz="UTC")
    )  # a Tuesday, a week later
    matched, current, info = match_phase_mix(
        reference, one_tuesday, timestamp_column="event_time", seasonality="day_of_week", seed=0
    )
    assert phases(matched["event_time"], "day_of_week").tolist() == [1] * 100  # every reference Tuesday
    assert len(current) == 40 and info["unmatched_current_rows"] == 0
    assert info["reference_rows_before"] == 900 and info["reference_rows_after"] == 100

    # A current window with one Saturday and one Monday in equal parts: 100 Mondays limit the size.
    two_days = pd.concat(
        [one_tuesday.assign(event_time=pd.Timestamp("2025-03-15 08:00", tz="UTC")),
         one_tuesday.assign(event_time=pd.Timestamp("2025-03-17 08:00", tz="UTC"))]
    )  # fmt: skip
    matched, _, info = match_phase_mix(reference, two_days, timestamp_column="event_time",
                                       seasonality="day_of_week", seed=0)  # fmt: skip
    counts = pd.Series(phases(matched["event_time"], "day_of_week")).value_counts().to_dict()
    assert counts == {0: 100, 5: 100}
    assert info["phases"] == {"0": {"current_share": 0.5, "reference_rows": 100},
                              "5": {"current_share": 0.5, "reference_rows": 200}}  # fmt: skip


def test_current_rows_of_a_phase_the_reference_lacks_are_left_out() -> None:
    reference = pd.DataFrame({"event_time": pd.to_datetime(["2025-03-03 01:00"] * 5, utc=True), "x": range(5)})
    current = pd.DataFrame({"event_time": pd.to_datetime(["2025-03-10 02:00", "2025-03-11 02:00"], utc=True),
                            "x": [1, 2]})  # fmt: skip
    matched, kept, info = match_phase_mix(reference, current, timestamp_column="event_time",
                                          seasonality="day_of_week", seed=0)  # fmt: skip
    assert (len(matched), len(kept), info["unmatched_current_rows"]) == (5, 1, 1)


def test_significant_but_small_is_not_drift() -> None:
    # 40,000 rows each: a shift of 0.05 standard deviations is highly significant and negligible.
    reference, current = frame(1, 40_000), frame(2, 40_000, level_shift=0.05)
    result = judge(reference, current, DriftPolicy())
    level = next(f for f in result["features"] if f["name"] == "level")
    assert level["significant"] and level["p_value"] < 1e-6
    assert level["effect_size"] == "psi" and level["effect"] < 0.01
    assert not level["drifted"] and not level["is_drift"]
    assert result["drifted_features"] == [] and not result["is_drift"]
    assert result["significant_features"] == ["level"]
    # The same data with no effect threshold: the p-value alone decides, as before the policy.
    assert judge(reference, current, DriftPolicy(effect_threshold=0.0))["drifted_features"] == ["level"]


def test_large_shift_is_drift_with_every_effect_size() -> None:
    reference, current = frame(1, 2000), frame(2, 2000, level_shift=1.0, segment_p=(0.2, 0.3, 0.5))
    for effect_size, threshold in (("psi", 0.2), ("wasserstein", 0.25), ("ks", 0.2)):
        result = judge(reference, current, DriftPolicy(effect_size=effect_size, effect_threshold=threshold))
        assert result["drifted_features"] == ["segment", "level"], effect_size
        record = next(f for f in result["features"] if f["name"] == "segment")
        expected_label = "psi" if effect_size == "psi" else "tvd"
        assert (record["test"], record["effect_size"], record["drifted"]) == ("chi2", expected_label, True)
        assert set(record) >= {"test", "statistic", "p_value", "effect_size", "effect", "significant", "drifted"}


def test_dataset_rule_counts_and_shares() -> None:
    reference, current = frame(1, 2000), frame(2, 2000, level_shift=1.0)  # only level drifts
    assert judge(reference, current, DriftPolicy())["rule"] == {
        "min_drifted_features": 1, "min_drifted_share": 0.0, "monitored": 4, "drifted": 1, "share": 0.25,
        "fired": True,
    }  # fmt: skip
    assert not judge(reference, current, DriftPolicy(min_drifted_features=2))["is_drift"]
    assert not judge(reference, current, DriftPolicy(min_drifted_share=0.5))["is_drift"]
    # Monitoring fewer features raises the share of the one that drifted.
    narrow = DriftPolicy(monitored=("level", "amount"), min_drifted_share=0.5)
    result = judge(reference, current, narrow)
    assert result["is_drift"] and result["rule"]["monitored"] == 2
    excluded = judge(reference, current, DriftPolicy(exclude=("level",)))
    assert not excluded["is_drift"] and "level" not in {f["name"] for f in excluded["features"]}


def test_one_significance_budget_for_features_and_scores() -> None:
    assert split_significance(0.01, 4, True) == pytest.approx((0.008, 0.002))
    assert split_significance(0.01, 4, False) == (0.01, None)


class CountingModel(StreamModel):
    calls = 0

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        CountingModel.calls += 1
        return super().predict_proba(frame)


def test_prediction_drift_on_and_off() -> None:
    reference, current = frame(1, 2000), frame(2, 2000, level_shift=1.0)
    policy = DriftPolicy(seasonality="none", p_value=0.05)
    kwargs = {"p_value": 0.05, "correction": "bonferroni", "max_rows": 5000, "seed": 0}
    on = assess(SCIPY, SPEC, reference, current, model=StreamModel(), policy=policy, **kwargs)
    scores = on["prediction_drift"]
    assert scores["drifted"] and scores["significant"] and scores["effect"] >= 0.2
    assert scores["threshold"] == pytest.approx(0.05 / 5)  # its share of the budget
    assert on["data_drift"]["p_value"] == pytest.approx(0.05 * 4 / 5)

    CountingModel.calls = 0
    off_policy = dataclasses.replace(policy, prediction_drift=False)
    off = assess(SCIPY, SPEC, reference, current, model=CountingModel(), policy=off_policy, **kwargs)
    assert off["prediction_drift"] is None and CountingModel.calls == 0
    assert off["data_drift"]["p_value"] == 0.05 and off["data_drift"]["is_drift"]


def test_assess_matches_phases_when_both_samples_have_timestamps() -> None:
    reference = frame(1, 3000)
    current = frame(2, 300).assign(event_time=pd.Timestamp("2025-03-12 10:00", tz="UTC"))  # a Wednesday
    out = assess(SCIPY, SPEC, reference, current, model=StreamModel(), p_value=0.01, correction="bonferroni",
                 max_rows=5000, seed=0)  # fmt: skip
    assert out["seasonal"]["seasonality"] == "day_of_week"
    assert out["data_drift"]["n_reference"] == out["seasonal"]["reference_rows_after"] < 3000
    # Without a timestamp (the registered sample) the comparison runs unmatched, and says so.
    out = assess(SCIPY, SPEC, reference.drop(columns="event_time"), current, model=StreamModel(), p_value=0.01,
                 correction="bonferroni", max_rows=1000, seed=0)  # fmt: skip
    assert "no 'event_time' column" in out["seasonal"]["skipped"]
    assert out["data_drift"]["n_reference"] == 1000  # capped at max_rows


def test_backends_give_the_same_verdicts_under_the_policy() -> None:
    reference, current = frame(1, 2000), frame(2, 1500, level_shift=0.3, segment_p=(0.4, 0.3, 0.3))
    policy = DriftPolicy(effect_threshold=0.05)
    alibi, scipy = judge(reference, current, policy, get_backend("alibi")), judge(reference, current, policy)
    assert alibi["drifted_features"] == scipy["drifted_features"] and alibi["rule"] == scipy["rule"]
    for a, s in zip(alibi["features"], scipy["features"], strict=True):
        assert (a["name"], a["significant"], a["drifted"]) == (s["name"], s["significant"], s["drifted"])
        assert a["p_value"] == pytest.approx(s["p_value"], abs=1e-6)
        assert a["effect"] == s["effect"]  # computed by the policy, not the backend
    assert scipy["drifted_features"], "the case must exercise a drifted feature"


def test_days_are_dates() -> None:
    # The stream's day helper keeps rows inside their UTC day (the phase of every row is its day's).
    from mlflywheel.datasets.upstreams.seasonal import SeasonalStream

    rows = SeasonalStream().day(dt.date(2025, 3, 8), 50, seed=1)  # a Saturday
    assert set(phases(rows["event_time"], "day_of_week")) == {5} and set(rows["day_of_week"]) == {"sat"}
