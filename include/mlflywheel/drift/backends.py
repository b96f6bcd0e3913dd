"""Drift tests behind one interface, with two interchangeable backends.

``AlibiBackend`` (the default) runs alibi-detect's ``TabularDrift`` (Kolmogorov-Smirnov per
numeric feature, chi-square per categorical feature) and ``KSDrift`` for prediction scores.
alibi-detect is licensed under the Business Source License 1.1 (non-production use only), so
``ScipyBackend`` reproduces the same tests with scipy (BSD) and gives the same answers:

* numeric features: ``scipy.stats.ks_2samp(ref, cur, alternative="two-sided", method="asymp")``,
  exactly what alibi's ``TabularDrift``/``KSDrift`` call;
* categorical features: ``scipy.stats.chi2_contingency`` on a 2 x k table of counts over the
  categories seen in either sample (alibi's construction, default Yates correction when k == 2);
* correction over all features: Bonferroni (threshold ``p_value / n_features``) or
  Benjamini-Hochberg FDR as in ``alibi_detect.utils.statstest.fdr`` (strict ``<``);
* alibi stores p-values and statistics as float32, so the scipy backend rounds the same way
  and a p-value sitting on the threshold gets the same verdict from both.

Missing values. alibi cannot test NaN, so both backends prepare the data identically
(:func:`_prepare`): a NaN in a numeric feature is replaced by a sentinel below every observed
value of that feature in either sample. KS then sees missingness as a step of the empirical CDF
at the sentinel, so a change in the missing rate is detected by the same test, without an
extra feature in the correction. The missing fractions are reported per feature. A missing
categorical value is its own category.

Heavy imports (alibi-detect takes ~9 s to import) happen inside functions only.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

CORRECTIONS = ("bonferroni", "fdr")
MISSING_CATEGORY = "<missing>"
SCORE_FEATURE = "prediction_score"


@dataclass(frozen=True)
class FeatureDrift:
    """The outcome of one univariate test."""

    name: str
    kind: Literal["numeric", "categorical"]
    test: Literal["ks", "chi2"]
    statistic: float
    p_value: float
    is_drift: bool
    missing_reference: float = 0.0  # fraction of NaN in the reference sample
    missing_current: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DriftResult:
    """The outcome of a multivariate drift test: per-feature tests plus a corrected verdict."""

    is_drift: bool
    threshold: float  # the per-feature p-value threshold after the correction
    correction: str
    p_value: float  # the requested significance level (FDR: the q-value)
    n_reference: int
    n_current: int
    features: list[FeatureDrift] = field(default_factory=list)

    @property
    def drifted_features(self) -> list[str]:
        return [f.name for f in self.features if f.is_drift]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["features"] = [f.to_dict() for f in self.features]
        out["drifted_features"] = self.drifted_features
        return out


class DriftBackend(ABC):
    """A drift-test implementation. Both backends must give the same answers."""

    name: str

    def test(
        self,
        reference: pd.DataFrame,
        current: pd.DataFrame,
        *,
        categorical: list[str],
        numeric: list[str],
        p_value: float,
        correction: str,
    ) -> DriftResult:
        """Test every feature of ``current`` against ``reference`` and correct for multiplicity."""
        _check_inputs(reference, current, categorical, numeric, correction)
        prepared = _prepare(reference, current, categorical, numeric)
        return self._test_prepared(prepared, p_value=p_value, correction=correction)

    def test_scores(self, reference_scores: Any, current_scores: Any, *, p_value: float) -> FeatureDrift:
        """Two-sample KS test of prediction scores (one feature, so no correction)."""
        statistic, p, is_drift = self._ks_scores(
            _clean_scores(reference_scores), _clean_scores(current_scores), p_value=p_value
        )
        return FeatureDrift(
            name=SCORE_FEATURE, kind="numeric", test="ks", statistic=statistic, p_value=p, is_drift=is_drift
        )

    @abstractmethod
    def _test_prepared(self, prepared: _Prepared, *, p_value: float, correction: str) -> DriftResult:
        """The backend's own per-feature tests on the prepared samples, with the correction."""

    @abstractmethod
    def _ks_scores(self, ref: np.ndarray, cur: np.ndarray, *, p_value: float) -> tuple[float, float, bool]:
        """KS of the two score samples: ``(statistic, p-value, is_drift)``."""


# --- shared preparation -----------------------------------------------------------------


@dataclass(frozen=True)
class _Prepared:
    """Both samples as float matrices, categorical columns first, then numeric ones."""

    names: list[str]
    kinds: list[str]
    x_ref: np.ndarray
    x_cur: np.ndarray
    missing_ref: list[float]
    missing_cur: list[float]

    @property
    def categorical_indices(self) -> list[int]:
        return [i for i, k in enumerate(self.kinds) if k == "categorical"]


def _check_inputs(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    categorical: list[str],
    numeric: list[str],
    correction: str,
) -> None:
    if correction not in CORRECTIONS:
        raise ValueError(f"correction must be one of {CORRECTIONS}, got {correction!r}")
    if not categorical and not numeric:
        raise ValueError("no features to test")
    if len(reference) == 0 or len(current) == 0:
        raise ValueError(f"both samples need rows (reference {len(reference)}, current {len(current)})")
    for frame, label in ((reference, "reference"), (current, "current")):
        missing = [c for c in (*categorical, *numeric) if c not in frame.columns]
        if missing:
            raise ValueError(f"{label} sample lacks feature columns {missing}")


def _category_strings(column: pd.Series) -> pd.Series:
    # A missing categorical value is a category of its own.
    return column.astype("object").where(column.notna(), MISSING_CATEGORY).astype(str)


def _float_values(column: pd.Series) -> np.ndarray:
    import pandas as pd

    # Nullable pandas dtypes (Int64, Float64) carry pd.NA; turn it into NaN.
    return pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def _prepare(
    reference: pd.DataFrame, current: pd.DataFrame, categorical: list[str], numeric: list[str]
) -> _Prepared:
    import pandas as pd

    ref_cols: list[np.ndarray] = []
    cur_cols: list[np.ndarray] = []
    missing_ref: list[float] = []
    missing_cur: list[float] = []
    for name in categorical:
        ref_values = _category_strings(reference[name])
        cur_values = _category_strings(current[name])
        # One vocabulary for both samples, so a code means the same category in each.
        vocabulary = sorted(set(ref_values) | set(cur_values))
        ref_cols.append(pd.Categorical(ref_values, categories=vocabulary).codes.astype(np.float64))
        cur_cols.append(pd.Categorical(cur_values, categories=vocabulary).codes.astype(np.float64))
        missing_ref.append(float((ref_values == MISSING_CATEGORY).mean()))
        missing_cur.append(float((cur_values == MISSING_CATEGORY).mean()))
    for name in numeric:
        ref_values = _float_values(reference[name])
        cur_values = _float_values(current[name])
        ref_nan, cur_nan = np.isnan(ref_values), np.isnan(cur_values)
        missing_ref.append(float(ref_nan.mean()))
        missing_cur.append(float(cur_nan.mean()))
        if ref_nan.any() or cur_nan.any():
            observed = np.concatenate([ref_values[~ref_nan], cur_values[~cur_nan]])
            # KS depends only on order: any value below all observations is equivalent.
            sentinel = float(observed.min()) - 1.0 if observed.size else 0.0
            ref_values = np.where(ref_nan, sentinel, ref_values)
            cur_values = np.where(cur_nan, sentinel, cur_values)
        ref_cols.append(ref_values)
        cur_cols.append(cur_values)
    return _Prepared(
        names=[*categorical, *numeric],
        kinds=["categorical"] * len(categorical) + ["numeric"] * len(numeric),
        x_ref=np.column_stack(ref_cols),
        x_cur=np.column_stack(cur_cols),
        missing_ref=missing_ref,
        missing_cur=missing_cur,
    )


def _clean_scores(scores: Any) -> np.ndarray:
    # Non-finite scores carry no distributional information; both backends drop them.
    values = np.asarray(scores, dtype=np.float64).ravel()
    values = values[np.isfinite(values)]
    if values.size == 0:
        raise ValueError("no finite prediction scores to test")
    return values


def _corrected_threshold(p_values: np.ndarray, p_value: float, correction: str) -> float:
    """The per-feature threshold after the correction, as alibi-detect computes it."""
    n = len(p_values)
    if correction == "bonferroni":
        return p_value / n
    # Benjamini-Hochberg: the largest q*i/n with p_(i) < q*i/n; if none, the smallest
    # candidate q/n (nothing falls below it, so the verdicts are the same).
    thresholds = p_value * np.arange(1, n + 1) / n
    below = np.sort(p_values) < thresholds
    return float(thresholds[np.where(below)[0].max()]) if below.any() else float(thresholds[0])


def _result(
    prepared: _Prepared,
    p_values: np.ndarray,
    statistics: np.ndarray,
    *,
    threshold: float,
    p_value: float,
    correction: str,
) -> DriftResult:
    features = [
        FeatureDrift(
            name=name,
            kind=kind,  # type: ignore[arg-type]
            test="chi2" if kind == "categorical" else "ks",
            statistic=float(statistics[i]),
            p_value=float(p_values[i]),
            is_drift=bool(p_values[i] < threshold),
            missing_reference=prepared.missing_ref[i],
            missing_current=prepared.missing_cur[i],
        )
        for i, (name, kind) in enumerate(zip(prepared.names, prepared.kinds, strict=True))
    ]
    return DriftResult(
        is_drift=any(f.is_drift for f in features),
        threshold=float(threshold),
        correction=correction,
        p_value=p_value,
        n_reference=len(prepared.x_ref),
        n_current=len(prepared.x_cur),
        features=features,
    )


# --- backends -----------------------------------------------------------------------------


class AlibiBackend(DriftBackend):
    """alibi-detect ``TabularDrift`` / ``KSDrift`` (BSL 1.1: non-production use only)."""

    name = "alibi"

    def _test_prepared(self, prepared: _Prepared, *, p_value: float, correction: str) -> DriftResult:
        from alibi_detect.cd import TabularDrift

        detector = TabularDrift(
            prepared.x_ref,
            p_val=p_value,
            # None: alibi infers each vocabulary from the reference and adds unseen current codes.
            categories_per_feature={i: None for i in prepared.categorical_indices} or None,
            correction=correction,
        )
        data = detector.predict(prepared.x_cur, drift_type="batch")["data"]  # p-values and distances included
        threshold = data["threshold"]
        if np.ndim(threshold):  # FDR with nothing significant returns every candidate threshold
            threshold = float(np.min(threshold))
        result = _result(
            prepared,
            np.asarray(data["p_val"]),
            np.asarray(data["distance"]),
            threshold=float(threshold),
            p_value=p_value,
            correction=correction,
        )
        if result.is_drift != bool(data["is_drift"]):  # pragma: no cover - guards our reading of alibi
            raise RuntimeError("per-feature verdicts disagree with alibi-detect's batch verdict")
        return result

    def _ks_scores(self, ref: np.ndarray, cur: np.ndarray, *, p_value: float) -> tuple[float, float, bool]:
        from alibi_detect.cd import KSDrift

        detector = KSDrift(ref.reshape(-1, 1), p_val=p_value)
        data = detector.predict(cur.reshape(-1, 1), drift_type="batch")["data"]
        return float(data["distance"][0]), float(data["p_val"][0]), bool(data["is_drift"])


class ScipyBackend(DriftBackend):
    """The same tests with scipy (BSD licensed), for production use."""

    name = "scipy"

    def _test_prepared(self, prepared: _Prepared, *, p_value: float, correction: str) -> DriftResult:
        from scipy.stats import chi2_contingency, ks_2samp

        # float32 like alibi-detect, so both backends agree even on the threshold.
        p_values = np.zeros(len(prepared.names), dtype=np.float32)
        statistics = np.zeros_like(p_values)
        for i, kind in enumerate(prepared.kinds):
            ref, cur = prepared.x_ref[:, i], prepared.x_cur[:, i]
            if kind == "categorical":
                categories = np.union1d(ref, cur)  # counted over categories seen in either sample
                table = np.vstack(
                    [[(ref == c).sum() for c in categories], [(cur == c).sum() for c in categories]]
                )
                statistics[i], p_values[i], _, _ = chi2_contingency(table)
            else:
                statistics[i], p_values[i] = ks_2samp(ref, cur, alternative="two-sided", method="asymp")
        threshold = _corrected_threshold(p_values, p_value, correction)
        return _result(
            prepared, p_values, statistics, threshold=threshold, p_value=p_value, correction=correction
        )

    def _ks_scores(self, ref: np.ndarray, cur: np.ndarray, *, p_value: float) -> tuple[float, float, bool]:
        from scipy.stats import ks_2samp

        outcome = ks_2samp(ref, cur, alternative="two-sided", method="asymp")
        statistic, p = np.float32(outcome.statistic), np.float32(outcome.pvalue)  # float32 like alibi
        return float(statistic), float(p), bool(p < p_value)


BACKENDS: dict[str, type[DriftBackend]] = {"alibi": AlibiBackend, "scipy": ScipyBackend}


def get_backend(name: str) -> DriftBackend:
    """The backend called ``name``: ``alibi`` (default; BSL 1.1) or ``scipy`` (BSD)."""
    try:
        return BACKENDS[name]()
    except KeyError:
        raise ValueError(f"unknown drift backend {name!r}; choose one of {', '.join(BACKENDS)}") from None
