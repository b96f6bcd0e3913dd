"""The daily drift check: recent validated data against the champion's reference, and the
champion's performance on rows whose labels have arrived.

Everything it decides comes from the dataset spec's policies (``spec.drift``,
``spec.performance``; see :mod:`mlflywheel.drift.policy` and :mod:`mlflywheel.drift.performance`):

* current sample: validated rows of the window ending at ``day`` (``policy.window_days`` or
  ``FLYWHEEL_DRIFT_WINDOW_DAYS``, at least ``policy.seasonal_period_days``), subsampled to
  ``drift_max_rows`` with a fixed seed so a re-run gives the same answer;
* reference (``policy.reference``): ``training_window``, the champion's own training rows (the
  train split of the snapshot named by its ``flywheel.snapshot_id`` tag), scored by the champion;
  when that snapshot is gone, or with ``sample``, the reference sample registered with the model
  (features and its scores). With a declared seasonality the reference is resampled to the
  current window's phase mix (a training split larger than ``drift_max_rows`` times the number
  of phases is thinned first), then subsampled to ``drift_max_rows``; fixed seeds throughout;
* triggers: ``data_drift`` (the dataset-level rule over the monitored features),
  ``prediction_drift`` (when the policy asks for it) and ``performance`` (the gate metric on
  late-labelled rows fell more than the tolerance below the champion's holdout figure).

``status`` is ``drift`` when any trigger fired (what the retraining step acts on), ``no_drift``
when a check reached a verdict and nothing fired, ``skipped`` when none could run. The report goes
to the lake (``reports/drift/<dataset>/dt=<day>/report.json`` and ``report.html``) and to MLflow,
in a run of the experiment ``<mlflow_experiment>-drift``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import re
from typing import TYPE_CHECKING, Any

from mlflywheel.drift.backends import get_backend
from mlflywheel.drift.performance import DEGRADED, OK, check_performance, positive_scores
from mlflywheel.drift.policy import (
    PHASE_COUNT,
    current_window_days,
    judge_data_drift,
    judge_prediction_drift,
    match_phase_mix,
    monitored_features,
    split_significance,
)
from mlflywheel.drift.report import render_html
from mlflywheel.lake import keys

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from mlflywheel.datasets.spec import DatasetSpec, DriftPolicy
    from mlflywheel.drift.backends import DriftBackend
    from mlflywheel.lake import Lake
    from mlflywheel.settings import Settings

log = logging.getLogger(__name__)

SCORE_FEATURE_COLUMN = "score"  # the reference sample's column with the champion's scores
SNAPSHOT_TAG = "flywheel.snapshot_id"
TRIGGERS = ("data_drift", "prediction_drift", "performance")
# training.snapshot.make_snapshot_id: <dataset>-<YYYYMMDD end day>-w<window>-<hash>
_SNAPSHOT_ID = re.compile(r"-(\d{8})-w\d+-[0-9a-f]+$")


def window_bounds(day: dt.date, n_days: int) -> tuple[dt.date, dt.date]:
    """First and last day of the ``n_days`` window ending at ``day`` (inclusive)."""
    days = keys.window_days(day, max(n_days, 1))
    return days[0], days[-1]


def load_current(
    settings: Settings, lake: Lake, spec: DatasetSpec, *, day: dt.date, window_days: int | None = None
) -> pd.DataFrame:
    """Validated rows of the window, subsampled to ``drift_max_rows`` (fixed seed)."""
    import pandas as pd

    n_days = window_days or current_window_days(spec.drift, settings.drift_window_days)
    start, end = window_bounds(day, n_days)
    days = [d for d in lake.list_partitions(keys.VALIDATED, spec.name) if start <= d <= end]
    frames = [lake.read_frame(keys.VALIDATED, spec.name, d) for d in days]
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(columns=list(spec.features))
    current = pd.concat(frames, ignore_index=True)
    if len(current) > settings.drift_max_rows:
        current = current.sample(n=settings.drift_max_rows, random_state=settings.seed).reset_index(drop=True)
    return current


def _cap(frame: pd.DataFrame, max_rows: int, seed: int) -> pd.DataFrame:
    if len(frame) <= max_rows:
        return frame
    return frame.sample(n=max_rows, random_state=seed).sort_index().reset_index(drop=True)


def assess(
    backend: DriftBackend,
    spec: DatasetSpec,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    model: Any,
    p_value: float,
    correction: str,
    max_rows: int,
    seed: int,
    policy: DriftPolicy | None = None,
) -> dict[str, Any]:
    """Data and prediction drift of ``current`` vs ``reference`` under ``policy`` (default
    ``spec.drift``); no I/O. ``model.predict_proba`` scores rows (the reference's ``score`` column
    is used when it has one). Returns ``seasonal``, ``data_drift``, ``prediction_drift``, ``reason``."""
    policy = policy or spec.drift
    categorical, numeric = monitored_features(spec, policy)
    out: dict[str, Any] = {
        "monitored": [*categorical, *numeric],
        "seasonal": None,
        "data_drift": None,
        "prediction_drift": None,
        "reason": None,
    }
    if policy.seasonality != "none":
        # A large training split is thinned first: enough rows stay for one phase to fill max_rows.
        reference = _cap(reference, max_rows * PHASE_COUNT[policy.seasonality], seed)
        ts = spec.timestamp_column
        if ts in reference.columns and ts in current.columns:
            reference, current, out["seasonal"] = match_phase_mix(
                reference, current, timestamp_column=ts, seasonality=policy.seasonality, seed=seed
            )
        else:  # the registered sample holds features and scores only
            out["seasonal"] = {"seasonality": policy.seasonality, "skipped": f"the reference has no {ts!r} column"}
            log.warning("seasonal matching skipped: the reference has no timestamp column %r", ts)
    reference = _cap(reference, max_rows, seed)
    if reference.empty or current.empty:
        out["reason"] = f"nothing to compare after seasonal matching (reference {len(reference)}, current {len(current)})"
        return out
    data_level, score_level = split_significance(p_value, len(out["monitored"]), policy.prediction_drift)
    out["data_drift"] = judge_data_drift(
        backend, reference, current, categorical=categorical, numeric=numeric, policy=policy,
        p_value=data_level, correction=correction,
    )  # fmt: skip
    if score_level is not None:
        if SCORE_FEATURE_COLUMN in reference.columns:
            reference_scores = reference[SCORE_FEATURE_COLUMN].to_numpy(dtype=float)
        else:
            reference_scores = positive_scores(model.predict_proba(reference))
        # The validated frame as it is: the model picks its own feature columns.
        current_scores = positive_scores(model.predict_proba(current))
        out["prediction_drift"] = judge_prediction_drift(
            backend, reference_scores, current_scores, policy=policy, p_value=score_level
        )
    return out


class _Champion:
    """The champion version, its tags, and its model loaded on first use."""

    def __init__(self, settings: Settings, version: str) -> None:
        from mlflywheel import registry  # module attribute access, so tests can substitute the boundary

        self.settings, self.version = settings, version
        self.tags = registry.version_tags(settings, version)
        self._model: Any = None

    def predict_proba(self, frame: pd.DataFrame) -> Any:
        """The champion's scores; loads the model (slow) only when something is scored."""
        from mlflywheel import registry

        if self._model is None:
            self._model = registry.load_model(self.settings, self.version)
        return self._model.predict_proba(frame)


def load_reference(
    settings: Settings, lake: Lake, spec: DatasetSpec, champion: _Champion
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The reference rows the policy asks for, and where they came from (see the module docstring)."""
    from mlflywheel import registry
    from mlflywheel.lake import LakeError
    from mlflywheel.training.snapshot import SnapshotError, load_snapshot

    policy = spec.drift
    snapshot_id = champion.tags.get(SNAPSHOT_TAG)
    info: dict[str, Any] = {"requested": policy.reference, "snapshot_id": snapshot_id, "fallback_reason": None}
    if policy.reference == "training_window":
        if not snapshot_id:
            reason = f"champion version {champion.version} has no {SNAPSHOT_TAG} tag"
        else:
            try:
                _, splits = load_snapshot(lake, snapshot_id)
                return splits["train"], {**info, "kind": "training_window", "rows": len(splits["train"])}
            except (SnapshotError, LakeError) as exc:
                reason = f"snapshot {snapshot_id} cannot be read ({exc})"
        log.warning("drift reference: %s; using the registered reference sample instead", reason)
        info["fallback_reason"] = reason
    reference = registry.load_reference(settings, champion.version)
    return reference, {**info, "kind": "sample", "rows": len(reference)}


def trained_until(lake: Lake, spec: DatasetSpec, snapshot_id: str | None) -> dt.date | None:
    """Last day of the champion's training window: its snapshot's end day (manifest, else the id)."""
    if not snapshot_id:
        return None
    key = keys.snapshot_key(spec.name, snapshot_id)
    if "/" not in snapshot_id and ".." not in snapshot_id and lake.exists(key):
        return dt.date.fromisoformat(str(lake.get_json(key)["end_day"]))
    match = _SNAPSHOT_ID.search(snapshot_id)
    return dt.datetime.strptime(match.group(1), "%Y%m%d").date() if match else None


def _policy_record(policy: DriftPolicy, p_value: float) -> dict[str, Any]:
    """The policy as the report records it (JSON types; ``p_value`` the one in effect)."""
    record = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(policy).items()}
    return {**record, "p_value": p_value}


def run_drift_check(settings: Settings, lake: Lake, spec: DatasetSpec, *, day: dt.date) -> dict[str, Any]:
    """Run the drift check for ``day``, write its report to the lake and MLflow, return it."""
    from mlflywheel import registry  # module attribute access, so tests can substitute the boundary

    policy = spec.drift
    start, end = window_bounds(day, current_window_days(policy, settings.drift_window_days))
    p_value = policy.p_value or settings.drift_p_value
    report: dict[str, Any] = {
        "dataset": spec.name,
        "day": day.isoformat(),
        "window": [start.isoformat(), end.isoformat()],
        "champion_version": None,
        "backend": settings.drift_backend,
        "p_value": p_value,
        "correction": settings.drift_correction,
        "policy": _policy_record(policy, p_value),
        "reference": None,
        "seasonal": None,
        "data_drift": None,
        "prediction_drift": None,
        "performance": None,
        "drifted_features": [],
        "triggers": [],
        "is_drift": False,
        "status": "skipped",
        "reason": None,
        "summary": None,
        "n_current": 0,
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    found = registry.champion(settings)
    if found is None:
        report["reason"] = "no champion model yet"
        return _publish(settings, lake, _conclude(report))
    champion = _Champion(settings, str(getattr(found, "version", found)))
    report["champion_version"] = champion.version
    _check_data(settings, lake, spec, report, champion, day=day)
    report["performance"] = check_performance(
        lake, spec, day=day, policy=spec.performance, metric=settings.gate_metric, model=champion,
        version_tags=champion.tags, trained_until=trained_until(lake, spec, champion.tags.get(SNAPSHOT_TAG)),
    )  # fmt: skip
    return _publish(settings, lake, _conclude(report))


def _check_data(
    settings: Settings, lake: Lake, spec: DatasetSpec, report: dict[str, Any], champion: _Champion, *, day: dt.date
) -> None:
    """Fill the report's data- and prediction-drift parts (or the reason they were skipped)."""
    current = load_current(settings, lake, spec, day=day)
    report["n_current"] = len(current)
    if current.empty:
        report["reason"] = f"no validated data between {report['window'][0]} and {report['window'][1]}"
        return
    reference, report["reference"] = load_reference(settings, lake, spec, champion)
    if reference.empty:
        report["reason"] = f"champion version {champion.version} has an empty reference"
        return
    outcome = assess(
        get_backend(settings.drift_backend), spec, reference, current, model=champion,
        p_value=report["p_value"], correction=settings.drift_correction,
        max_rows=settings.drift_max_rows, seed=settings.seed,
    )  # fmt: skip
    report.update(
        seasonal=outcome["seasonal"],
        data_drift=outcome["data_drift"],
        prediction_drift=outcome["prediction_drift"],
        reason=outcome["reason"],
    )
    if outcome["data_drift"] is not None:
        report["drifted_features"] = outcome["data_drift"]["drifted_features"]
        report["n_reference"] = outcome["data_drift"]["n_reference"]


def _conclude(report: dict[str, Any]) -> dict[str, Any]:
    """Triggers, status and a one-line summary from the parts of the report."""
    data, prediction, performance = report["data_drift"], report["prediction_drift"], report["performance"]
    fired = {
        "data_drift": bool(data and data["is_drift"]),
        "prediction_drift": bool(prediction and prediction["drifted"]),
        "performance": bool(performance and performance.get("triggered")),
    }
    report["triggers"] = [name for name in TRIGGERS if fired[name]]
    report["is_drift"] = bool(report["triggers"])
    judged = data is not None or bool(performance and performance.get("status") in (OK, DEGRADED))
    report["status"] = "drift" if report["is_drift"] else ("no_drift" if judged else "skipped")
    parts = []
    if data is not None:
        rule = data["rule"]
        names = ", ".join(data["drifted_features"]) or "none"
        parts.append(f"data drift: {rule['drifted']} of {rule['monitored']} monitored features ({names})")
    if prediction is not None:
        parts.append(
            f"prediction drift: {'yes' if prediction['drifted'] else 'no'} "
            f"(p={prediction['p_value']:.2g}, {prediction['effect_size']}={prediction['effect']:.3f})"
        )
    if performance is not None and performance.get("reason"):
        parts.append(f"performance: {performance['reason']}")
    report["summary"] = "; ".join(parts) or report["reason"]
    return report


def _publish(settings: Settings, lake: Lake, report: dict[str, Any]) -> dict[str, Any]:
    """Write JSON + HTML to the lake, log both to MLflow, return the report with their keys."""
    day = dt.date.fromisoformat(report["day"])
    report["report_key"] = keys.drift_report_key(report["dataset"], day, keys.REPORT_JSON)
    report["html_key"] = keys.drift_report_key(report["dataset"], day, keys.REPORT_HTML)
    html = render_html(report)
    # The lake is the record of truth: write it before MLflow, then add the run id.
    lake.put_json(report["report_key"], report)
    lake.put_text(report["html_key"], html)
    report["mlflow_run_id"] = _log_to_mlflow(settings, report, html)
    lake.put_json(report["report_key"], report)
    log.info(
        "drift check %s %s: %s (triggers: %s)",
        report["dataset"], report["day"], report["status"], ", ".join(report["triggers"]) or "none",
    )  # fmt: skip
    return report


def _metrics(report: dict[str, Any]) -> dict[str, float]:
    metrics: dict[str, float] = {"is_drift": int(report["is_drift"]), "n_triggers": len(report["triggers"])}
    for name in TRIGGERS:
        metrics[f"trigger_{name}"] = int(name in report["triggers"])
    if report["data_drift"] is not None:
        metrics.update(n_drifted_features=len(report["drifted_features"]), n_current=report["n_current"])
        metrics["n_significant_features"] = len(report["data_drift"]["significant_features"])
    if report["prediction_drift"] is not None:
        metrics["prediction_drift_p_value"] = report["prediction_drift"]["p_value"]
        metrics["prediction_drift_effect"] = report["prediction_drift"]["effect"]
    performance = report["performance"] or {}
    if performance.get("value") is not None:
        metrics[f"performance_{performance['metric']}"] = performance["value"]
        for key in ("baseline", "drop"):
            if performance.get(key) is not None:
                metrics[f"performance_{key}"] = performance[key]
    if "rows" in performance:
        metrics.update(performance_rows=performance["rows"], performance_positives=performance["positives"])
    return metrics


def _log_to_mlflow(settings: Settings, report: dict[str, Any], html: str) -> str:
    """The report as a run of the experiment ``<mlflow_experiment>-drift``; returns the run id."""
    from mlflywheel import registry

    return registry.log_report_run(
        settings,
        experiment=settings.mlflow_experiments[1],
        tags={
            "dataset": report["dataset"],
            "day": report["day"],
            "status": report["status"],
            "triggers": ",".join(report["triggers"]) or "none",
            "champion_version": report["champion_version"] or "none",
            "backend": report["backend"],
            "mlflow.runName": f"drift-{report['dataset']}-{report['day']}",
        },
        params={
            "correction": report["correction"],
            "p_value": report["p_value"],
            "window": f"{report['window'][0]}..{report['window'][1]}",
            "effect_size": report["policy"]["effect_size"],
            "effect_threshold": report["policy"]["effect_threshold"],
            "reference": (report["reference"] or {}).get("kind") or "none",
            "seasonality": report["policy"]["seasonality"],
        },
        metrics=_metrics(report),
        texts={
            keys.REPORT_JSON: json.dumps(report, indent=2, sort_keys=True, default=str),
            keys.REPORT_HTML: html,
        },
    )
