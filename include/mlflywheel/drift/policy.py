"""The drift policy applied: which features, which reference rows, and when a test result is drift.

What a daily check compares, and how it decides (the policy is the spec's
:class:`~mlflywheel.datasets.spec.DriftPolicy`; every step here is pure, no I/O):

* **Monitored features** (:func:`monitored_features`): ``policy.monitored`` (default: every
  feature of the spec) minus ``policy.exclude``. A name that is not a feature is an error.
* **Current window** (:func:`current_window_days`): ``policy.window_days`` (default
  ``FLYWHEEL_DRIFT_WINDOW_DAYS``), at least ``policy.seasonal_period_days``.
* **Like with like** (:func:`match_phase_mix`). With ``seasonality`` ``day_of_week`` or
  ``hour_of_day``, every row of both samples gets its phase from the spec's timestamp column
  (weekday 0-6 or hour 0-23, UTC). The reference is then resampled, by stratified sampling
  without replacement, so that its phase mix equals the current window's: a Monday is compared
  with the Mondays of the reference, a one-week window with a reference holding each weekday in
  the same shares. Why: in seasonal data a single day (or an uneven window) is a different
  mixture of phases than the reference, and every feature that follows the rhythm (and any
  day-of-week feature, completely) differs for that reason alone; the tests would flag the
  calendar, not a change. Why resampling and not weights: both backends test unweighted
  samples (alibi-detect takes no weights), and sampling without replacement keeps every row
  once, so the tests' sample sizes stay honest (repeating rows would overstate the evidence).
  The reference keeps as many rows as the rarest phase allows: ``n = min_p ref_count(p) /
  cur_share(p)``, ``round(n * cur_share(p))`` rows of each phase. Current rows of a phase the
  reference never saw cannot be matched: they are left out and counted in the report.
* **A feature drifts** (:func:`judge_data_drift`) when its test is significant (p-value below the
  backend's corrected threshold: Bonferroni or FDR over the monitored features, unchanged) AND
  its effect size (:mod:`mlflywheel.drift.effect`, ``policy.effect_size``) reaches
  ``policy.effect_threshold``.
* **The dataset drifts** when at least ``policy.min_drifted_features`` and at least
  ``policy.min_drifted_share`` of the monitored features drift.
* **Prediction drift** (:func:`judge_prediction_drift`, when ``policy.prediction_drift``): the
  champion's scores on the current rows vs on the reference rows, by the same two criteria (KS
  p-value below its share of the significance level, effect size on the scores).
* **One significance budget** (:func:`split_significance`): the check is one family of tests
  (m monitored features, plus the scores when prediction drift is on), and ``p_value`` bounds
  the chance that a day with no change at all raises an alarm. With prediction drift on, the
  feature tests get ``p_value * m / (m + 1)`` (corrected over the features by the backend as
  before) and the score test ``p_value / (m + 1)``: Bonferroni across the two, so a day on which
  nothing changed alarms with probability at most ``p_value``, not up to twice that.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from mlflywheel.drift.backends import SCORE_FEATURE, _category_strings, _float_values
from mlflywheel.drift.effect import effect_label, effect_size

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from mlflywheel.datasets.spec import DatasetSpec, DriftPolicy
    from mlflywheel.drift.backends import DriftBackend, FeatureDrift

PHASE_COUNT = {"day_of_week": 7, "hour_of_day": 24}


def monitored_features(spec: DatasetSpec, policy: DriftPolicy) -> tuple[list[str], list[str]]:
    """The (categorical, numeric) features the check tests, in the spec's order."""
    features = set(spec.features)
    named = set(policy.monitored or ()) | set(policy.exclude)
    unknown = sorted(named - features)
    if unknown:
        raise ValueError(
            f"drift policy of {spec.name!r} names {unknown}, which are not features ({', '.join(spec.features)})"
        )
    chosen = set(spec.features if policy.monitored is None else policy.monitored) - set(policy.exclude)
    if not chosen:
        raise ValueError(f"drift policy of {spec.name!r} monitors no feature (all excluded)")
    categorical = [f for f in spec.categorical_features if f in chosen]
    numeric = [f for f in spec.numeric_features if f in chosen]
    return categorical, numeric


def current_window_days(policy: DriftPolicy, default_days: int) -> int:
    """Days of the current window: the policy's (or the setting's), at least one seasonal period."""
    return max(policy.window_days or default_days, policy.seasonal_period_days, 1)


def phases(timestamps: pd.Series, seasonality: str) -> np.ndarray:
    """Each row's phase: weekday (0 = Monday) or hour of day, in UTC."""
    import pandas as pd

    if seasonality not in PHASE_COUNT:
        raise ValueError(f"seasonality must be one of {tuple(PHASE_COUNT)}, got {seasonality!r}")
    stamps = pd.to_datetime(timestamps, utc=True)
    if stamps.isna().any():
        raise ValueError("cannot place rows without a timestamp in the seasonal cycle")
    values = stamps.dt.dayofweek if seasonality == "day_of_week" else stamps.dt.hour
    return values.to_numpy(dtype=np.int64)


def match_phase_mix(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    timestamp_column: str,
    seasonality: str,
    seed: int,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Resample ``reference`` to the phase mix of ``current`` (see the module docstring).

    Returns the resampled reference, the current rows that could be matched, and what was done.
    """
    ref_phase = phases(reference[timestamp_column], seasonality)
    cur_phase = phases(current[timestamp_column], seasonality)
    ref_counts = np.bincount(ref_phase, minlength=PHASE_COUNT[seasonality])
    matched = ref_counts[cur_phase] > 0
    current = current.loc[matched].reset_index(drop=True)
    cur_phase = cur_phase[matched]
    info: dict[str, Any] = {
        "seasonality": seasonality,
        "reference_rows_before": len(reference),
        "unmatched_current_rows": int((~matched).sum()),
    }
    if len(current) == 0:
        info.update(reference_rows_after=0, phases={})
        return reference.iloc[:0], current, info
    cur_counts = np.bincount(cur_phase, minlength=PHASE_COUNT[seasonality])
    shares = cur_counts / cur_counts.sum()
    present = np.flatnonzero(cur_counts)
    size = min(ref_counts[p] / shares[p] for p in present)  # the rarest phase sets the size
    rng = np.random.default_rng(seed)
    picked: list[np.ndarray] = []
    for p in present:
        rows = np.flatnonzero(ref_phase == p)
        take = min(len(rows), max(1, round(size * shares[p])))
        picked.append(rng.choice(rows, size=take, replace=False))
    index = np.sort(np.concatenate(picked))
    info.update(
        reference_rows_after=int(index.size),
        phases={  # keyed by text, as JSON keeps them
            str(p): {"current_share": round(float(shares[p]), 4), "reference_rows": int(ref_counts[p])}
            for p in present
        },
    )
    return reference.iloc[index].reset_index(drop=True), current, info


def split_significance(p_value: float, n_features: int, prediction_drift: bool) -> tuple[float, float | None]:
    """The significance level of the feature tests and of the score test (None when it is off)."""
    if not prediction_drift:
        return p_value, None
    return p_value * n_features / (n_features + 1), p_value / (n_features + 1)


def _feature_values(frame: pd.DataFrame, name: str, kind: str) -> np.ndarray:
    if kind == "categorical":
        return _category_strings(frame[name]).to_numpy(dtype=object)
    return _float_values(frame[name])


def _judged(feature: FeatureDrift, effect_name: str, effect: float, threshold: float) -> dict[str, Any]:
    """One feature's record: the test beside the effect size, and both verdicts."""
    record = feature.to_dict()
    significant = bool(feature.is_drift)
    drifted = significant and effect >= threshold
    record.update(
        effect_size=effect_label(effect_name, feature.kind),
        effect=round(float(effect), 6),
        significant=significant,
        drifted=drifted,
        is_drift=drifted,  # the field earlier readers know: now both criteria
    )
    return record


def judge_data_drift(
    backend: DriftBackend,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    categorical: list[str],
    numeric: list[str],
    policy: DriftPolicy,
    p_value: float,
    correction: str,
) -> dict[str, Any]:
    """Per-feature tests and effect sizes, and the dataset-level rule's outcome."""
    result = backend.test(
        reference, current, categorical=categorical, numeric=numeric, p_value=p_value, correction=correction
    )
    features = []
    for feature in result.features:
        effect = effect_size(
            policy.effect_size,
            feature.kind,
            _feature_values(reference, feature.name, feature.kind),
            _feature_values(current, feature.name, feature.kind),
        )
        features.append(_judged(feature, policy.effect_size, effect, policy.effect_threshold))
    drifted = [f["name"] for f in features if f["drifted"]]
    monitored = len(features)
    share = len(drifted) / monitored
    fired = len(drifted) >= policy.min_drifted_features and share >= policy.min_drifted_share
    return {
        "is_drift": fired,
        "threshold": result.threshold,
        "correction": result.correction,
        "p_value": result.p_value,
        "n_reference": result.n_reference,
        "n_current": result.n_current,
        "effect_size": policy.effect_size,
        "effect_threshold": policy.effect_threshold,
        "features": features,
        "significant_features": [f["name"] for f in features if f["significant"]],
        "drifted_features": drifted,
        "rule": {
            "min_drifted_features": policy.min_drifted_features,
            "min_drifted_share": policy.min_drifted_share,
            "monitored": monitored,
            "drifted": len(drifted),
            "share": round(share, 6),
            "fired": fired,
        },
    }


def judge_prediction_drift(
    backend: DriftBackend,
    reference_scores: Any,
    current_scores: Any,
    *,
    policy: DriftPolicy,
    p_value: float,
) -> dict[str, Any]:
    """KS of the champion's scores (current vs reference) beside the effect size on them."""
    feature = backend.test_scores(reference_scores, current_scores, p_value=p_value)
    ref = np.asarray(reference_scores, dtype=np.float64).ravel()
    cur = np.asarray(current_scores, dtype=np.float64).ravel()
    effect = effect_size(policy.effect_size, "numeric", ref[np.isfinite(ref)], cur[np.isfinite(cur)])
    record = _judged(feature, policy.effect_size, effect, policy.effect_threshold)
    record.update(name=SCORE_FEATURE, threshold=p_value, n_reference=int(ref.size), n_current=int(cur.size))
    return record
