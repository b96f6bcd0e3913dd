"""The evidence of a promotion: candidate and champion scored on one holdout.

The holdout both models are scored on is the candidate snapshot's holdout split plus the validated
partitions of up to ``gate_holdout_extra_days`` days after the snapshot's end day that exist at
evaluation time: rows the candidate never trained on (its window ends with the end day, and its
holdout split is never trained on). Rows the *champion* trained on (its own snapshot's train and
validation splits) are taken out, so the champion is not flattered by rows it has seen; the record
says how many. Both models score every row once; the point metrics and a paired bootstrap of their
difference on the gate metric (``gate_bootstrap_samples`` resamples of row indices, seeded, an
interval at ``gate_confidence``) are the evidence :func:`mlflywheel.gate.decide` decides on
(:mod:`mlflywheel.promote` records the decision and moves the alias).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlflywheel import gate, metrics, registry

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pandas as pd

    from mlflywheel.lake import Lake
    from mlflywheel.settings import Settings

log = logging.getLogger("mlflywheel.holdout")

HOLDOUT_NOTE = (
    "rows the candidate never trained on: its snapshot's holdout split and validated days after the "
    "snapshot's end day; rows inside the champion's training and validation splits are left out"
)
# Scores are clipped as training.loop.binary_metrics clips them, so the bootstrap's metrics are the
# point metrics' (clipping can merge near-0 or near-1 scores into ties).
_SCORE_CLIP = 1e-7


@dataclass(frozen=True)
class Evidence:
    """Candidate and champion scored on the same holdout: what the gate decides on."""

    candidate_version: str
    champion_version: str | None
    candidate_metrics: dict[str, Any]
    champion_metrics: dict[str, Any] | None
    gate_evidence: gate.Evidence | None = None  # rows, positives, interval of the difference
    holdout: dict[str, Any] = field(default_factory=dict)  # what the holdout is made of
    bootstrap: dict[str, Any] = field(default_factory=dict)  # samples, seed, valid resamples


def score_on_holdout(settings: Settings, candidate_version: str, snapshot_id: str) -> Evidence:
    """Score the candidate and the current champion (if another version) once on the evaluation
    holdout; the point metrics and the paired bootstrap interval of their difference."""
    import numpy as np

    from mlflywheel.datasets import spec_from_manifest
    from mlflywheel.lake import lake_from_settings
    from mlflywheel.training.loop import binary_metrics
    from mlflywheel.training.snapshot import load_snapshot

    lake = lake_from_settings(settings)
    manifest, splits = load_snapshot(lake, snapshot_id)
    spec = spec_from_manifest(manifest)  # the spec the snapshot was built with
    target = spec.target

    current = registry.champion(settings)
    champion_version = str(current.version) if current is not None else None
    compare = champion_version is not None and champion_version != candidate_version
    champion_span = _champion_training_span(settings, lake, manifest, champion_version) if compare else None
    holdout, record = evaluation_holdout(
        lake,
        manifest,
        splits["holdout"],
        extra_days=settings.gate_holdout_extra_days,
        champion_span=champion_span,
    )
    labels = holdout[target].astype(int).to_numpy()

    def scores(version: str) -> np.ndarray:
        return np.asarray(registry.load_model(settings, version).predict_proba(holdout), dtype=np.float64)

    def point_metrics(values: np.ndarray) -> dict[str, Any]:
        out = binary_metrics(labels, values)
        return {**out, "rows": int(out["rows"]), "positives": int(out["positives"])}

    candidate_scores = scores(candidate_version)
    candidate_metrics, champion_metrics = point_metrics(candidate_scores), None
    low = high = None
    bootstrap: dict[str, Any] = {}
    if compare:
        champion_scores = scores(champion_version)  # type: ignore[arg-type]
        champion_metrics = point_metrics(champion_scores)
        low, high, valid = paired_bootstrap_interval(
            labels, candidate_scores, champion_scores, metric=settings.gate_metric,
            samples=settings.gate_bootstrap_samples, confidence=settings.gate_confidence, seed=settings.seed,
        )  # fmt: skip
        bootstrap = {
            "samples": settings.gate_bootstrap_samples,
            "valid_samples": valid,
            "seed": settings.seed,
        }
    gate_evidence = gate.Evidence(
        rows=len(labels), positives=int(labels.sum()), low=low, high=high, confidence=settings.gate_confidence
    )
    return Evidence(
        candidate_version,
        champion_version,
        candidate_metrics,
        champion_metrics,
        gate_evidence,
        record,
        bootstrap,
    )


def evaluation_holdout(
    lake: Lake,
    manifest: dict[str, Any],
    snapshot_holdout: pd.DataFrame,
    *,
    extra_days: int,
    champion_span: tuple[pd.Timestamp, pd.Timestamp] | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The snapshot's holdout plus the validated days ``(end_day, end_day + extra_days]`` that
    exist now, less unlabelled rows and rows in ``champion_span`` (``[start, end)`` of the rows the
    champion trained or picked its epoch on); returns the rows and a record of what they are."""
    import pandas as pd

    from mlflywheel.lake import keys

    if extra_days < 0:
        raise ValueError(f"gate_holdout_extra_days must be >= 0, got {extra_days}")
    dataset, target, ts_col = manifest["dataset"], manifest["target"], manifest["timestamp_column"]
    end_day = dt.date.fromisoformat(manifest["end_day"])
    last_day = end_day + dt.timedelta(days=extra_days)
    frames, days = [snapshot_holdout], []
    for day in sorted(d for d in lake.list_partitions(keys.VALIDATED, dataset) if end_day < d <= last_day):
        partition = lake.manifest(keys.VALIDATED, dataset, day)
        if partition is None:  # removed between listing and reading
            continue
        frame = lake.read_frame(keys.VALIDATED, dataset, day)
        frames.append(frame)
        days.append({"day": day.isoformat(), "version": partition["version"], "rows": len(frame)})
    rows = (
        pd.concat(frames, ignore_index=True) if len(frames) > 1 else snapshot_holdout.reset_index(drop=True)
    )
    labelled = rows[target].notna()
    excluded = pd.Series(False, index=rows.index)
    if champion_span is not None:
        timestamps = pd.to_datetime(rows[ts_col], utc=True)
        excluded = (timestamps >= champion_span[0]) & (timestamps < champion_span[1])
    kept = rows.loc[labelled & ~excluded].reset_index(drop=True)
    record = {
        "snapshot_id": manifest["snapshot_id"],
        "snapshot_end_day": end_day.isoformat(),
        "snapshot_holdout_rows": len(snapshot_holdout),
        "extra_days_limit": extra_days,
        "extra_days": days,
        "unlabelled_rows_left_out": int((~labelled).sum()),
        "champion_trained_span": [t.isoformat() for t in champion_span]
        if champion_span is not None
        else None,
        "champion_trained_rows_left_out": int((labelled & excluded).sum()),
        "rows": len(kept),
        "positives": int((pd.to_numeric(kept[target]) == 1).sum()),
        "note": HOLDOUT_NOTE,
    }
    return kept, record


def _champion_training_span(
    settings: Settings, lake: Lake, manifest: dict[str, Any], champion_version: str | None
) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    """``[start, end)`` of the rows the champion trained (or chose its epoch) on, from its snapshot's
    manifest: its window's first day up to its holdout boundary. None (nothing left out, logged)
    when the champion's snapshot cannot be found."""
    import pandas as pd

    from mlflywheel.lake import keys

    if champion_version is None:
        return None
    snapshot_id = dict(registry.get_version(settings, champion_version).tags or {}).get(
        "flywheel.snapshot_id"
    )
    key = keys.snapshot_key(manifest["dataset"], snapshot_id) if snapshot_id else None
    if key is None or not lake.exists(key):
        log.warning("champion v%s: snapshot %s not found; its training rows cannot be left out", champion_version,
                    snapshot_id)  # fmt: skip
        return None
    champion_manifest = lake.get_json(key)
    first_day = dt.date.fromisoformat(champion_manifest["window"]["start_exclusive"]) + dt.timedelta(days=1)
    start = pd.Timestamp(first_day.isoformat(), tz="UTC")
    end = pd.Timestamp(champion_manifest["boundaries"]["holdout_start"])
    end = end.tz_localize("UTC") if end.tzinfo is None else end.tz_convert("UTC")
    return start, end


def paired_bootstrap_interval(
    labels: np.ndarray,
    candidate_scores: np.ndarray,
    champion_scores: np.ndarray,
    *,
    metric: str,
    samples: int,
    confidence: float,
    seed: int,
) -> tuple[float | None, float | None, int]:
    """Percentile interval of ``metric(candidate) - metric(champion)`` over ``samples`` paired
    resamples of the rows (the same rows for both models in each resample).

    Resamples are blocks of row counts (:mod:`mlflywheel.metrics`: no Python loop per resample).
    Resamples without both classes are dropped; returns ``(low, high, valid)``, with
    ``low``/``high`` None when fewer than half the resamples are valid.
    """
    import numpy as np

    if metric not in gate.METRICS:
        raise ValueError(f"metric {metric!r} not in {gate.METRICS}")
    if samples < 1 or not 0 < confidence < 1:
        raise ValueError(f"need samples >= 1 and confidence in (0, 1), got {samples}, {confidence}")
    y = np.asarray(labels).astype(np.float64)
    n = len(y)
    if n == 0 or len(candidate_scores) != n or len(champion_scores) != n:
        raise ValueError("labels and both score vectors must be non-empty and of the same length")
    rng = np.random.default_rng(seed)
    orders = [metrics.score_order(s, clip=_SCORE_CLIP) for s in (candidate_scores, champion_scores)]
    diffs = []
    for weights in metrics.bootstrap_counts(rng, n, samples):
        cand, champ = (
            metrics.weighted_metrics(weights, y, *order, metrics=(metric,))[metric] for order in orders
        )
        diffs.append(cand - champ)
    values = np.concatenate(diffs)
    values = values[np.isfinite(values)]
    if len(values) * 2 < samples:
        return None, None, len(values)
    low, high = np.quantile(values, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(low), float(high), len(values)
