"""Performance monitoring on late labels: is the champion still as good as its holdout said?

Labels of real streams arrive late (a fraud is confirmed days after the payment). Each day,
with the spec's :class:`~mlflywheel.datasets.spec.PerformancePolicy`:

* rows: the validated rows of the ``window_days`` days ending ``label_delay_days`` before the
  check day (their labels are there by then), with a label. Days up to the end of the champion's
  training window are left out: the champion trained (or was selected) on them, and scoring it
  there would overstate how well it does on data it has not seen;
* figure: the gate metric (``FLYWHEEL_GATE_METRIC``: PR-AUC as average precision, or ROC-AUC;
  the same definitions as scikit-learn's, which the training run uses) of the champion's scores
  on those rows;
* baseline: the champion's holdout figure of that metric (version tag ``flywheel.metrics``,
  ``holdout_<metric>``);
* verdict: with fewer than ``min_rows`` labelled rows or ``min_positives`` positives (or no
  negative) the result is "insufficient labels", never a trigger. Otherwise the figure's
  uncertainty is taken into account: a bootstrap of the rows (``BOOTSTRAP_SAMPLES`` resamples,
  fixed seed) gives a one-sided ``CONFIDENCE`` upper bound of the figure, and the check triggers
  when even that bound is more than ``tolerance`` below the baseline (``drop_bound`` in the report,
  beside the point ``drop``). Why: ``min_positives`` keeps out figures on a handful of labels,
  but a PR-AUC on 30 positives still moves by +-0.1 from one week to the next with nothing
  changed; on a stable 50-rows-a-day stream the point drop alone crossed a 0.1 tolerance on 9% of
  the days (benchmarks/drift_false_alarms.py), the bound on under 1%, while a concept shift
  (a drop of 0.3 or more) is still caught at once.

:func:`judge_performance` is the pure verdict; :func:`check_performance` reads the rows and
scores them.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from mlflywheel import metrics
from mlflywheel.lake import keys

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from mlflywheel.datasets.spec import DatasetSpec, PerformancePolicy
    from mlflywheel.lake import Lake

log = logging.getLogger(__name__)

METRICS_TAG = "flywheel.metrics"
BOOTSTRAP_SAMPLES = 200
CONFIDENCE = 0.95  # one-sided: the figure is at most its upper bound with this confidence
OK, DEGRADED, INSUFFICIENT, NO_BASELINE, DISABLED = (
    "ok", "degraded", "insufficient_labels", "no_baseline", "disabled",
)  # fmt: skip


def label_window(day: dt.date, policy: PerformancePolicy) -> tuple[dt.date, dt.date]:
    """First and last day whose rows are labelled by ``day``."""
    end = day - dt.timedelta(days=policy.label_delay_days)
    return end - dt.timedelta(days=policy.window_days - 1), end


def holdout_baseline(version_tags: dict[str, str], metric: str) -> float | None:
    """The champion's ``holdout_<metric>`` from its ``flywheel.metrics`` tag; None if absent."""
    text = version_tags.get(METRICS_TAG)
    if not text:
        return None
    try:
        value = json.loads(text).get(f"holdout_{metric}")
    except (json.JSONDecodeError, AttributeError):
        log.warning("tag %s is not a JSON object: %.80s", METRICS_TAG, text)
        return None
    return float(value) if value is not None else None


def _check_metric(metric: str) -> None:
    if metric not in ("pr_auc", "roc_auc"):
        raise ValueError(f"metric must be pr_auc or roc_auc, got {metric!r}")


def metric_value(metric: str, labels: Any, scores: Any) -> float:
    """PR-AUC (average precision) or ROC-AUC of ``scores`` for the 0/1 ``labels``."""
    _check_metric(metric)
    y = np.asarray(labels).astype(np.float64).ravel()
    order, starts = metrics.score_order(scores)
    return float(metrics.weighted_metrics(np.ones((1, y.size)), y, order, starts, (metric,))[metric][0])


def upper_bound(metric: str, labels: Any, scores: Any, *, seed: int = 0) -> float:
    """One-sided ``CONFIDENCE`` upper bound of the metric, from a bootstrap of the rows."""
    _check_metric(metric)
    y = np.asarray(labels).astype(np.float64).ravel()
    order, starts = metrics.score_order(scores)
    rng = np.random.default_rng(seed)
    values = [
        metrics.weighted_metrics(counts, y, order, starts, (metric,))[metric]
        for counts in metrics.bootstrap_counts(rng, y.size, BOOTSTRAP_SAMPLES)
    ]
    return float(np.nanquantile(np.concatenate(values), CONFIDENCE))  # no positives drawn: NaN, left out


def judge_performance(
    labels: Any, scores: Any, *, metric: str, baseline: float | None, policy: PerformancePolicy
) -> dict[str, Any]:
    """The verdict on labelled rows: ``status`` ok | degraded | insufficient_labels | no_baseline."""
    y = np.asarray(labels).astype(np.int64).ravel()
    p = np.asarray(scores, dtype=np.float64).ravel()
    rows, positives = int(y.size), int(y.sum())
    out: dict[str, Any] = {
        "metric": metric, "value": None, "baseline": baseline, "drop": None, "drop_bound": None,
        "tolerance": policy.tolerance, "confidence": CONFIDENCE,
        "rows": rows, "positives": positives, "min_rows": policy.min_rows,
        "min_positives": policy.min_positives, "triggered": False,
    }  # fmt: skip
    short = []
    if rows < policy.min_rows:
        short.append(f"{rows} rows (< {policy.min_rows})")
    if positives < policy.min_positives:
        short.append(f"{positives} positives (< {policy.min_positives})")
    if rows and positives == rows:
        short.append("no negatives")
    if short:
        return {**out, "status": INSUFFICIENT, "reason": "insufficient labels: " + ", ".join(short)}
    value = metric_value(metric, y, p)
    out["value"] = round(value, 6)
    if baseline is None:
        return {**out, "status": NO_BASELINE, "reason": f"the champion records no holdout_{metric}"}
    bound = upper_bound(metric, y, p)
    drop, drop_bound = baseline - value, baseline - bound
    triggered = drop_bound > policy.tolerance
    verdict = "beyond" if triggered else "within"
    return {
        **out,
        "upper_bound": round(bound, 6),
        "drop": round(drop, 6),
        "drop_bound": round(drop_bound, 6),
        "triggered": triggered,
        "status": DEGRADED if triggered else OK,
        "reason": (
            f"{metric} {value:.3f} (at most {bound:.3f}, {CONFIDENCE:.0%}) on {rows} labelled rows vs holdout "
            f"{baseline:.3f}: drop {drop:+.3f}, at least {drop_bound:+.3f}, {verdict} the tolerance {policy.tolerance:g}"
        ),
    }


def _labelled_rows(lake: Lake, spec: DatasetSpec, first: dt.date, last: dt.date) -> pd.DataFrame:
    import pandas as pd

    days = [d for d in lake.list_partitions(keys.VALIDATED, spec.name) if first <= d <= last]
    frames = [lake.read_frame(keys.VALIDATED, spec.name, d) for d in days]
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(columns=[*spec.features, spec.target])
    rows = pd.concat(frames, ignore_index=True)
    return rows.loc[rows[spec.target].notna()].reset_index(drop=True)


def check_performance(
    lake: Lake,
    spec: DatasetSpec,
    *,
    day: dt.date,
    policy: PerformancePolicy,
    metric: str,
    model: Any,
    version_tags: dict[str, str],
    trained_until: dt.date | None,
) -> dict[str, Any]:
    """Score the champion (``model.predict_proba``) on the rows labelled by ``day`` and judge."""
    first, last = label_window(day, policy)
    record: dict[str, Any] = {"window": [first.isoformat(), last.isoformat()], "trained_until": None}
    if not policy.enabled:
        return {**record, "status": DISABLED, "triggered": False, "reason": "performance monitoring is off"}
    if trained_until is not None:
        record["trained_until"] = trained_until.isoformat()
        first = max(first, trained_until + dt.timedelta(days=1))
    rows = _labelled_rows(lake, spec, first, last)  # none when the champion trained on the whole window
    scores = positive_scores(model.predict_proba(rows)) if len(rows) else np.zeros(0)
    verdict = judge_performance(
        rows[spec.target].astype("int64").to_numpy() if len(rows) else np.zeros(0),
        scores,
        metric=metric,
        baseline=holdout_baseline(version_tags, metric),
        policy=policy,
    )
    record.update(verdict)
    record["scored_window"] = [first.isoformat(), last.isoformat()] if first <= last else None
    return record


def positive_scores(probabilities: Any) -> np.ndarray:
    """P(positive) from ``predict_proba``, which may return it alone or one column per class."""
    scores = np.asarray(probabilities, dtype=np.float64)
    if scores.ndim == 2:
        scores = scores[:, -1]
    return scores.ravel()
