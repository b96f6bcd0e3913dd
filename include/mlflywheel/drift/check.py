"""The daily drift check: recent validated data against the champion's reference sample.

Current sample: validated rows of the ``drift_window_days`` days ending at ``day`` (inclusive),
subsampled to ``drift_max_rows`` with a fixed seed so a re-run gives the same answer.
Reference sample: the rows the champion model was registered with (features plus its
``score``). Two kinds of drift are tested:

* data drift: every feature, with the configured backend and multiplicity correction;
* prediction drift: the champion's scores on the current rows vs its reference scores (KS).

The verdict is drift if either fires. The report goes to the lake
(``reports/drift/<dataset>/dt=<day>/report.json`` and ``report.html``) and to MLflow, in a run
of the experiment ``<mlflow_experiment>-drift``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from mlflywheel.drift.backends import get_backend
from mlflywheel.drift.report import render_html
from mlflywheel.lake import keys

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from mlflywheel.datasets.spec import DatasetSpec
    from mlflywheel.lake import Lake
    from mlflywheel.settings import Settings

log = logging.getLogger(__name__)

SCORE_FEATURE_COLUMN = "score"  # the reference sample's column with the champion's scores


def window_bounds(day: dt.date, n_days: int) -> tuple[dt.date, dt.date]:
    """First and last day of the ``n_days`` window ending at ``day`` (inclusive)."""
    days = keys.window_days(day, max(n_days, 1))
    return days[0], days[-1]


def load_current(settings: Settings, lake: Lake, spec: DatasetSpec, *, day: dt.date) -> pd.DataFrame:
    """Validated rows of the window, subsampled to ``drift_max_rows`` (fixed seed)."""
    import pandas as pd

    start, end = window_bounds(day, settings.drift_window_days)
    days = [d for d in lake.list_partitions(keys.VALIDATED, spec.name) if start <= d <= end]
    frames = [lake.read_frame(keys.VALIDATED, spec.name, d) for d in days]
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(columns=list(spec.features))
    current = pd.concat(frames, ignore_index=True)
    if len(current) > settings.drift_max_rows:
        current = current.sample(n=settings.drift_max_rows, random_state=settings.seed).reset_index(drop=True)
    return current


def _positive_scores(probabilities: Any) -> np.ndarray:
    # predict_proba may return P(positive) or one column per class; drift is on P(positive).
    scores = np.asarray(probabilities, dtype=np.float64)
    if scores.ndim == 2:
        scores = scores[:, -1]
    return scores.ravel()


def _version_of(model_version: Any) -> str:
    version = getattr(model_version, "version", model_version)
    return str(version)


def run_drift_check(settings: Settings, lake: Lake, spec: DatasetSpec, *, day: dt.date) -> dict[str, Any]:
    """Run the drift check for ``day``, write its report to the lake and MLflow, return it."""
    from mlflywheel import registry  # module attribute access, so tests can substitute the boundary

    start, end = window_bounds(day, settings.drift_window_days)
    report: dict[str, Any] = {
        "dataset": spec.name,
        "day": day.isoformat(),
        "window": [start.isoformat(), end.isoformat()],
        "champion_version": None,
        "backend": settings.drift_backend,
        "p_value": settings.drift_p_value,
        "correction": settings.drift_correction,
        "data_drift": None,
        "prediction_drift": None,
        "drifted_features": [],
        "is_drift": False,
        "status": "skipped",
        "reason": None,
        "n_current": 0,
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }

    champion = registry.champion(settings)
    if champion is None:
        report["reason"] = "no champion model yet"
        return _publish(settings, lake, report)
    version = _version_of(champion)
    report["champion_version"] = version

    current = load_current(settings, lake, spec, day=day)
    report["n_current"] = len(current)
    if current.empty:
        report["reason"] = f"no validated data between {start} and {end}"
        return _publish(settings, lake, report)

    reference = registry.load_reference(settings, version)
    if reference.empty:
        report["reason"] = f"champion version {version} has an empty reference sample"
        return _publish(settings, lake, report)

    backend = get_backend(settings.drift_backend)
    data_drift = backend.test(
        reference,
        current,
        categorical=list(spec.categorical_features),
        numeric=list(spec.numeric_features),
        p_value=settings.drift_p_value,
        correction=settings.drift_correction,
    )

    prediction_drift = None
    if SCORE_FEATURE_COLUMN in reference.columns:
        model = registry.load_model(settings, version)
        # The validated frame as it is: the model picks its own feature columns.
        current_scores = _positive_scores(model.predict_proba(current))
        prediction_drift = backend.test_scores(
            reference[SCORE_FEATURE_COLUMN].to_numpy(), current_scores, p_value=settings.drift_p_value
        )
    else:  # a reference without scores still allows the data-drift check
        log.warning(
            "reference sample of version %s has no %r column; skipping prediction drift",
            version,
            SCORE_FEATURE_COLUMN,
        )

    is_drift = data_drift.is_drift or bool(prediction_drift and prediction_drift.is_drift)
    report.update(
        data_drift=data_drift.to_dict(),
        prediction_drift=prediction_drift.to_dict() if prediction_drift else None,
        drifted_features=data_drift.drifted_features,
        is_drift=is_drift,
        status="drift" if is_drift else "no_drift",
        n_reference=data_drift.n_reference,
    )
    return _publish(settings, lake, report)


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
    log.info("drift check %s %s: %s", report["dataset"], report["day"], report["status"])
    return report


def _log_to_mlflow(settings: Settings, report: dict[str, Any], html: str) -> str:
    """The report as a run of the experiment ``<mlflow_experiment>-drift``; returns the run id."""
    from mlflywheel import registry

    metrics: dict[str, float] = {}
    if report["data_drift"] is not None:
        metrics.update(
            n_drifted_features=len(report["drifted_features"]),
            is_drift=int(report["is_drift"]),
            n_current=report["n_current"],
        )
    if report["prediction_drift"] is not None:
        metrics["prediction_drift_p_value"] = report["prediction_drift"]["p_value"]
    return registry.log_report_run(
        settings,
        experiment=f"{settings.mlflow_experiment}-drift",
        tags={
            "dataset": report["dataset"],
            "day": report["day"],
            "status": report["status"],
            "champion_version": report["champion_version"] or "none",
            "backend": report["backend"],
            "mlflow.runName": f"drift-{report['dataset']}-{report['day']}",
        },
        params={
            "correction": report["correction"],
            "p_value": report["p_value"],
            "window": f"{report['window'][0]}..{report['window'][1]}",
        },
        metrics=metrics,
        texts={
            keys.REPORT_JSON: json.dumps(report, indent=2, sort_keys=True, default=str),
            keys.REPORT_HTML: html,
        },
    )
