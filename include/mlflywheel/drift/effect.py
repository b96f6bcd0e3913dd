"""Effect sizes: how far a feature moved, beside the p-value that says whether it moved at all.

A p-value answers "is there any difference?"; with a few thousand rows, or a reference taken
over a long stable stretch, the answer is "yes" for differences too small to matter. An effect
size answers "how large is it?", and the drift policy asks for both (numpy only, no scipy):

* ``psi``: Population Stability Index, ``sum((c - r) * ln(c / r))`` over bins, where ``r`` and
  ``c`` are the reference and current shares of each bin. Numeric features are cut into
  ``PSI_BINS`` bins at the reference's quantiles (ties merged), with missing values as a bin of
  their own; categorical features use one bin per category seen in either sample (a missing
  value is a category). A share of 0 is floored at ``PSI_EPSILON`` so that an empty bin gives a
  large but finite term. Rule of thumb: < 0.1 stable, 0.1-0.25 moderate, > 0.25 large.
* ``wasserstein``: the 1-Wasserstein (earth mover's) distance between the two empirical
  distributions of the observed values, divided by the reference spread, so it reads "the
  average row moved this many standard deviations". The spread is the reference's interquartile
  range / 1.349 (on normal data this equals the standard deviation), not the standard deviation
  itself: the monitored features are often heavy-tailed (amounts, counts, distances) and a
  handful of extreme values inflate the standard deviation and hide a shift of the bulk. It falls
  back to the standard deviation when the IQR is 0 (a feature with one dominant value), and to
  1 (unscaled) when the reference is constant. A change of the missing rate is the mass that
  moved to or from "no value": the effect is the larger of the scaled distance and that change.
* ``ks``: the two-sample Kolmogorov-Smirnov statistic, the largest gap between the empirical
  CDFs, in [0, 1]; a missing value counts as below every observed value (the backends' KS does
  the same), so a change in the missing rate moves it too.

KS and Wasserstein need an order, which categories do not have. For categorical features both
use the total variation distance ``0.5 * sum |c - r|`` instead: the largest gap in probability
the two samples give any set of categories (KS's analogue) and the 1-Wasserstein distance under
the 0/1 metric between categories. PSI works on categories as they are.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlflywheel.datasets.spec import EFFECT_SIZES

PSI_BINS = 10
PSI_EPSILON = 1e-4
IQR_TO_SIGMA = 1.349  # the IQR of a normal distribution in standard deviations


def _numeric(values: Any) -> np.ndarray:
    return np.asarray(values, dtype=np.float64).ravel()


def _labels(values: Any) -> np.ndarray:
    return np.asarray(values, dtype=object).ravel()


def _check_samples(ref: np.ndarray, cur: np.ndarray) -> None:
    if ref.size == 0 or cur.size == 0:
        raise ValueError(f"effect sizes need rows in both samples (reference {ref.size}, current {cur.size})")


def _psi_from_shares(ref_share: np.ndarray, cur_share: np.ndarray, epsilon: float) -> float:
    r = np.maximum(ref_share, epsilon)
    c = np.maximum(cur_share, epsilon)
    return float(np.sum((c - r) * np.log(c / r)))


def psi_numeric(reference: Any, current: Any, *, bins: int = PSI_BINS, epsilon: float = PSI_EPSILON) -> float:
    """PSI of a numeric feature over ``bins`` reference-quantile bins plus a bin for missing values."""
    ref, cur = _numeric(reference), _numeric(current)
    _check_samples(ref, cur)
    if bins < 2:
        raise ValueError(f"bins must be >= 2, got {bins}")
    observed = ref[~np.isnan(ref)]
    # Inner edges at the reference's quantiles; ties (discrete features) merge into one edge.
    edges = np.unique(np.quantile(observed, np.arange(1, bins) / bins)) if observed.size else np.array([])

    def shares(x: np.ndarray) -> np.ndarray:
        missing = np.isnan(x)
        # Bin i holds (edge[i-1], edge[i]]; the last bin is open above.
        counts = np.bincount(np.searchsorted(edges, x[~missing], side="left"), minlength=edges.size + 1)
        return np.append(counts, missing.sum()) / x.size

    return _psi_from_shares(shares(ref), shares(cur), epsilon)


def _category_shares(ref: np.ndarray, cur: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    categories = sorted(set(ref.tolist()) | set(cur.tolist()), key=str)
    index = {category: i for i, category in enumerate(categories)}
    ref_counts = np.bincount([index[v] for v in ref], minlength=len(categories))
    cur_counts = np.bincount([index[v] for v in cur], minlength=len(categories))
    return ref_counts / ref.size, cur_counts / cur.size


def psi_categorical(reference: Any, current: Any, *, epsilon: float = PSI_EPSILON) -> float:
    """PSI of a categorical feature, one bin per category seen in either sample."""
    ref, cur = _labels(reference), _labels(current)
    _check_samples(ref, cur)
    return _psi_from_shares(*_category_shares(ref, cur), epsilon)


def total_variation(reference: Any, current: Any) -> float:
    """Total variation distance of two categorical samples, in [0, 1]."""
    ref, cur = _labels(reference), _labels(current)
    _check_samples(ref, cur)
    ref_share, cur_share = _category_shares(ref, cur)
    return float(0.5 * np.abs(ref_share - cur_share).sum())


def ks_statistic(reference: Any, current: Any) -> float:
    """Two-sample KS statistic; missing values sit below every observed value."""
    ref, cur = _numeric(reference), _numeric(current)
    _check_samples(ref, cur)
    ref = np.sort(np.where(np.isnan(ref), -np.inf, ref))
    cur = np.sort(np.where(np.isnan(cur), -np.inf, cur))
    points = np.concatenate([ref, cur])
    gap = np.searchsorted(ref, points, side="right") / ref.size - np.searchsorted(cur, points, side="right") / cur.size
    return float(np.abs(gap).max())


def reference_spread(reference: Any) -> float:
    """IQR / 1.349 of the observed reference values; the std if that is 0; 1 if both are."""
    ref = _numeric(reference)
    ref = ref[~np.isnan(ref)]
    if ref.size == 0:
        return 1.0
    q1, q3 = np.quantile(ref, [0.25, 0.75])
    for spread in ((q3 - q1) / IQR_TO_SIGMA, float(np.std(ref))):
        if spread > 0:
            return float(spread)
    return 1.0


def wasserstein_distance(reference: Any, current: Any) -> float:
    """1-Wasserstein distance between the empirical distributions of two samples (no NaN)."""
    ref, cur = np.sort(_numeric(reference)), np.sort(_numeric(current))
    _check_samples(ref, cur)
    points = np.sort(np.concatenate([ref, cur]))
    widths = np.diff(points)
    # The area between the two CDFs, which are constant between consecutive points.
    ref_cdf = np.searchsorted(ref, points[:-1], side="right") / ref.size
    cur_cdf = np.searchsorted(cur, points[:-1], side="right") / cur.size
    return float(np.sum(np.abs(ref_cdf - cur_cdf) * widths))


def wasserstein_scaled(reference: Any, current: Any) -> float:
    """Wasserstein distance of the observed values / reference spread, or the missing-rate change."""
    ref, cur = _numeric(reference), _numeric(current)
    _check_samples(ref, cur)
    ref_missing, cur_missing = np.isnan(ref), np.isnan(cur)
    missing_change = float(abs(ref_missing.mean() - cur_missing.mean()))
    if ref_missing.all() or cur_missing.all():  # no observed values to compare on one side
        return missing_change
    distance = wasserstein_distance(ref[~ref_missing], cur[~cur_missing]) / reference_spread(ref)
    return max(distance, missing_change)


def effect_size(name: str, kind: str, reference: Any, current: Any) -> float:
    """The effect size ``name`` (psi | wasserstein | ks) of one feature of kind numeric or categorical."""
    if name not in EFFECT_SIZES:
        raise ValueError(f"effect size must be one of {EFFECT_SIZES}, got {name!r}")
    if kind == "categorical":
        return psi_categorical(reference, current) if name == "psi" else total_variation(reference, current)
    if kind != "numeric":
        raise ValueError(f"kind must be numeric or categorical, got {kind!r}")
    if name == "psi":
        return psi_numeric(reference, current)
    return wasserstein_scaled(reference, current) if name == "wasserstein" else ks_statistic(reference, current)


def effect_label(name: str, kind: str) -> str:
    """What the reported number is, e.g. ``psi``, ``wasserstein/iqr`` or ``tvd`` for categories."""
    if kind == "categorical" and name != "psi":
        return "tvd"
    return "wasserstein/iqr" if name == "wasserstein" else name
