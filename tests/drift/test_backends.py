"""The two drift backends: same answers, no false alarm on one distribution, real drift found."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from mlflywheel.drift.backends import AlibiBackend, DriftResult, ScipyBackend, get_backend

CATEGORICAL = ["currency", "channel"]
NUMERIC = ["amount", "account_age_days", "distance_from_home_km"]
N_ROWS = 2000


def make_frame(
    seed: int,
    n: int = N_ROWS,
    *,
    amount_shift: float = 0.0,
    channel_mix: tuple[float, ...] = (0.5, 0.3, 0.1, 0.1),
    missing_distance: float = 0.1,
) -> pd.DataFrame:
    """Transactions-like features; the keyword arguments inject drift."""
    rng = np.random.default_rng(seed)
    distance = rng.exponential(30.0, n)
    distance[rng.random(n) < missing_distance] = np.nan  # nullable numeric feature
    return pd.DataFrame(
        {
            "currency": rng.choice(["USD", "EUR", "GBP"], n, p=[0.6, 0.3, 0.1]),
            "channel": rng.choice(["pos", "online", "atm", "mobile"], n, p=list(channel_mix)),
            "amount": rng.lognormal(3.5, 1.0, n) + amount_shift,
            "account_age_days": rng.integers(0, 3000, n),
            "distance_from_home_km": distance,
        }
    )


def run(
    backend_name: str,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    correction: str = "bonferroni",
    p_value: float = 0.05,
) -> DriftResult:
    return get_backend(backend_name).test(
        reference, current, categorical=CATEGORICAL, numeric=NUMERIC, p_value=p_value, correction=correction
    )


def assert_same(a: DriftResult, b: DriftResult) -> None:
    assert a.is_drift == b.is_drift
    assert a.threshold == pytest.approx(b.threshold, abs=1e-12)
    assert (a.n_reference, a.n_current) == (b.n_reference, b.n_current)
    assert [f.name for f in a.features] == [f.name for f in b.features]
    for fa, fb in zip(a.features, b.features, strict=True):
        assert (fa.kind, fa.test, fa.is_drift) == (fb.kind, fb.test, fb.is_drift), fa.name
        assert fa.p_value == pytest.approx(fb.p_value, abs=1e-6), fa.name
        assert fa.statistic == pytest.approx(fb.statistic, rel=1e-6, abs=1e-6), fa.name
        assert (fa.missing_reference, fa.missing_current) == (fb.missing_reference, fb.missing_current)


REFERENCE = make_frame(1)
SAME = make_frame(2)
SHIFTED = make_frame(3, amount_shift=25.0, channel_mix=(0.3, 0.5, 0.1, 0.1))


@pytest.mark.parametrize("correction", ["bonferroni", "fdr"])
@pytest.mark.parametrize("current", [SAME, SHIFTED], ids=["same", "shifted"])
def test_backends_agree(current: pd.DataFrame, correction: str) -> None:
    assert_same(run("alibi", REFERENCE, current, correction), run("scipy", REFERENCE, current, correction))


@pytest.mark.parametrize("backend", ["alibi", "scipy"])
@pytest.mark.parametrize("correction", ["bonferroni", "fdr"])
def test_no_drift_on_same_distribution(backend: str, correction: str) -> None:
    result = run(backend, REFERENCE, SAME, correction)
    assert not result.is_drift
    assert result.drifted_features == []
    assert [f.test for f in result.features] == ["chi2", "chi2", "ks", "ks", "ks"]


@pytest.mark.parametrize("backend", ["alibi", "scipy"])
@pytest.mark.parametrize("correction", ["bonferroni", "fdr"])
def test_drift_flags_the_shifted_features(backend: str, correction: str) -> None:
    result = run(backend, REFERENCE, SHIFTED, correction)
    assert result.is_drift
    assert result.drifted_features == ["channel", "amount"]
    if correction == "bonferroni":
        assert result.threshold == pytest.approx(0.05 / 5)
    else:  # BH: the largest q*i/n below which the i smallest p-values fall (two drifted features)
        assert result.threshold == pytest.approx(0.05 * 2 / 5)
    as_dict = result.to_dict()
    assert as_dict["drifted_features"] == ["channel", "amount"]
    assert {f["name"] for f in as_dict["features"]} == set(CATEGORICAL + NUMERIC)


@pytest.mark.parametrize("backend", ["alibi", "scipy"])
def test_change_in_missing_rate_is_drift(backend: str) -> None:
    result = run(backend, REFERENCE, make_frame(4, missing_distance=0.4))
    assert result.drifted_features == ["distance_from_home_km"]
    feature = result.features[-1]
    assert feature.missing_reference == pytest.approx(0.1, abs=0.02)
    assert feature.missing_current == pytest.approx(0.4, abs=0.03)


def test_unseen_category_and_nullable_dtypes_agree() -> None:
    # A category absent from the reference, pandas nullable dtypes, and missing categories.
    current = SAME.copy()
    current.loc[:99, "currency"] = "CHF"
    current.loc[100:110, "channel"] = None
    current["account_age_days"] = current["account_age_days"].astype("Int64")
    current.loc[5:9, "account_age_days"] = pd.NA
    alibi, scipy = run("alibi", REFERENCE, current), run("scipy", REFERENCE, current)
    assert_same(alibi, scipy)
    assert "currency" in alibi.drifted_features


@pytest.mark.parametrize("backend", ["alibi", "scipy"])
def test_score_drift(backend: str) -> None:
    rng = np.random.default_rng(0)
    reference, same, shifted = rng.beta(2, 8, 2000), rng.beta(2, 8, 2000), rng.beta(3, 7, 2000)
    impl = get_backend(backend)
    quiet = impl.test_scores(reference, same, p_value=0.05)
    loud = impl.test_scores(reference, shifted, p_value=0.05)
    assert (quiet.is_drift, loud.is_drift) == (False, True)
    assert (loud.name, loud.test, loud.kind) == ("prediction_score", "ks", "numeric")
    other_backend = get_backend("scipy" if backend == "alibi" else "alibi")
    other = other_backend.test_scores(reference, shifted, p_value=0.05)
    assert loud.p_value == pytest.approx(other.p_value, abs=1e-6)
    assert loud.statistic == pytest.approx(other.statistic, abs=1e-6)


def test_get_backend() -> None:
    assert isinstance(get_backend("alibi"), AlibiBackend)
    assert isinstance(get_backend("scipy"), ScipyBackend)
    with pytest.raises(ValueError, match="unknown drift backend"):
        get_backend("evidently")


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="correction"):
        run("scipy", REFERENCE, SAME, correction="holm")
    with pytest.raises(ValueError, match="rows"):
        run("scipy", REFERENCE, SAME.iloc[:0])
    with pytest.raises(ValueError, match="lacks"):
        run("scipy", REFERENCE, SAME.drop(columns=["amount"]))
