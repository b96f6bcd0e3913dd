"""Effect sizes against values computed by hand (and against scipy where it has the same measure)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from mlflywheel.drift.effect import (
    PSI_EPSILON,
    effect_label,
    effect_size,
    ks_statistic,
    psi_categorical,
    psi_numeric,
    reference_spread,
    total_variation,
    wasserstein_distance,
    wasserstein_scaled,
)

NAN = float("nan")


def test_psi_numeric_by_hand() -> None:
    # Two bins cut at the reference median 2.5: reference 50/50, current 75/25.
    expected = (0.75 - 0.5) * math.log(0.75 / 0.5) + (0.25 - 0.5) * math.log(0.25 / 0.5)
    assert psi_numeric([1, 2, 3, 4], [1, 1, 1, 4], bins=2) == pytest.approx(expected)
    assert expected == pytest.approx(0.274653, abs=1e-6)


def test_psi_numeric_missing_is_a_bin_and_empty_bins_use_epsilon() -> None:
    # Current: 25% below the median, 50% above, 25% missing; the reference has no missing value,
    # so its share of that bin is floored at epsilon.
    expected = (
        (0.25 - 0.5) * math.log(0.25 / 0.5)
        + (0.5 - 0.5) * 0.0
        + (0.25 - PSI_EPSILON) * math.log(0.25 / PSI_EPSILON)
    )
    assert psi_numeric([1, 2, 3, 4], [1, NAN, 4, 4], bins=2) == pytest.approx(expected)
    assert psi_numeric([1, 2, 3, 4], [1, 2, 3, 4], bins=2) == 0.0


def test_psi_numeric_bins_are_reference_quantiles() -> None:
    reference = np.arange(1000.0)
    # Shifting every value by a tenth of the range moves 10% of the mass from the first decile
    # into an eleventh region above the last edge (still the last bin).
    psi = psi_numeric(reference, reference + 100.0)
    expected = (0.0 + PSI_EPSILON - 0.1) * math.log(PSI_EPSILON / 0.1) + (0.2 - 0.1) * math.log(0.2 / 0.1)
    assert psi == pytest.approx(expected, rel=1e-3)
    # Ties in a discrete feature merge quantile edges instead of making empty bins.
    assert psi_numeric([0, 0, 0, 0, 0, 0, 0, 0, 1, 2], [0, 0, 0, 0, 0, 0, 0, 0, 1, 2]) == 0.0


def test_psi_categorical_by_hand() -> None:
    expected = (0.25 - 0.5) * math.log(0.25 / 0.5) + (0.75 - 0.5) * math.log(0.75 / 0.5)
    assert psi_categorical(["a", "a", "b", "b"], ["a", "b", "b", "b"]) == pytest.approx(expected)
    # A category the reference never saw: its reference share is epsilon.
    unseen = (0.5 - 0.5) * 0 + (0.25 - 0.5) * math.log(0.5) + (0.25 - PSI_EPSILON) * math.log(0.25 / PSI_EPSILON)
    assert psi_categorical(["a", "a", "b", "b"], ["a", "a", "b", "c"]) == pytest.approx(unseen)


def test_total_variation_by_hand() -> None:
    assert total_variation(["a", "a", "b", "b"], ["a", "b", "b", "c"]) == pytest.approx(0.25)
    assert total_variation(["a", "b"], ["c", "d"]) == pytest.approx(1.0)


def test_ks_statistic_by_hand_and_against_scipy() -> None:
    assert ks_statistic([1, 2, 3, 4], [3, 4, 5, 6]) == pytest.approx(0.5)
    # Missing values sit below every observed value: 50% missing vs none is a gap of 0.5.
    assert ks_statistic([1, 2, 3, 4], [NAN, NAN, 3, 4]) == pytest.approx(0.5)
    from scipy.stats import ks_2samp

    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 700), rng.normal(0.2, 1.3, 450)
    assert ks_statistic(a, b) == pytest.approx(ks_2samp(a, b).statistic, abs=1e-12)


def test_wasserstein_by_hand_and_against_scipy() -> None:
    assert wasserstein_distance([0, 1], [1, 2]) == pytest.approx(1.0)
    from scipy.stats import wasserstein_distance as scipy_wasserstein

    rng = np.random.default_rng(1)
    a, b = rng.lognormal(0, 1, 500), rng.lognormal(0.3, 1, 300)
    assert wasserstein_distance(a, b) == pytest.approx(scipy_wasserstein(a, b), rel=1e-12)


def test_wasserstein_is_scaled_by_the_reference_iqr() -> None:
    reference = np.arange(101.0)  # IQR 75 - 25 = 50
    assert reference_spread(reference) == pytest.approx(50 / 1.349)
    assert wasserstein_scaled(reference, reference + 10) == pytest.approx(10 / (50 / 1.349))


def test_spread_falls_back_to_std_then_one() -> None:
    one_dominant = [0] * 9 + [10]  # IQR 0: the std, 3, is the spread
    assert reference_spread(one_dominant) == pytest.approx(3.0)
    # 10% of the mass moves by 10: distance 1, scaled 1/3.
    assert wasserstein_scaled(one_dominant, [0] * 8 + [10, 10]) == pytest.approx(1 / 3)
    assert reference_spread([5, 5, 5]) == 1.0  # constant: unscaled
    assert wasserstein_scaled([5, 5, 5], [6, 6, 6]) == pytest.approx(1.0)


def test_wasserstein_counts_a_change_in_the_missing_rate() -> None:
    # Same observed values, half of the current rows missing: the moved mass is 0.5.
    assert wasserstein_scaled([1, 2, 3, 4], [1, 2, 3, 4, NAN, NAN, NAN, NAN]) == pytest.approx(0.5)
    assert wasserstein_scaled([NAN, NAN], [NAN]) == 0.0
    assert wasserstein_scaled([1.0, 2.0], [NAN]) == pytest.approx(1.0)


def test_effect_size_dispatch_and_labels() -> None:
    ref, cur = ["a", "a", "b", "b"], ["a", "b", "b", "c"]
    assert effect_size("psi", "categorical", ref, cur) == pytest.approx(psi_categorical(ref, cur))
    # Categories have no order: KS and Wasserstein become the total variation distance.
    assert effect_size("ks", "categorical", ref, cur) == pytest.approx(0.25)
    assert effect_size("wasserstein", "categorical", ref, cur) == pytest.approx(0.25)
    assert effect_size("ks", "numeric", [1, 2, 3, 4], [3, 4, 5, 6]) == pytest.approx(0.5)
    assert (effect_label("psi", "numeric"), effect_label("ks", "categorical")) == ("psi", "tvd")
    assert effect_label("wasserstein", "numeric") == "wasserstein/iqr"


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="effect size must be one of"):
        effect_size("hellinger", "numeric", [1], [1])
    with pytest.raises(ValueError, match="kind"):
        effect_size("psi", "ordinal", [1], [1])
    with pytest.raises(ValueError, match="rows in both samples"):
        psi_numeric([], [1.0])
    with pytest.raises(ValueError, match="bins"):
        psi_numeric([1.0, 2.0], [1.0], bins=1)
