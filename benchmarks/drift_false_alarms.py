"""False alarms of the daily drift check on a seasonal stream, before and after the drift policy
(a report, not a test).

The stream (:mod:`mlflywheel.datasets.upstreams.seasonal`): a day-of-week feature, a numeric feature with a
weekend offset and a yearly sine, a stable heavy-tailed feature and a stable categorical one;
after ``--stable-days`` days an abrupt covariate shift. The champion is retrained every 7 days on
the 14 days before (its training rows: the oldest 70%, as the snapshot splits them), and scores
rows with the pre-shift relationship. Every day is checked against that champion:

* ``before``: the logic before the drift policy: p-values only (KS / chi-square, Bonferroni,
  p < 0.05; KS on the scores, p < 0.05), a 1-day window, the registered reference sample
  (2000 of the champion's training rows with their scores);
* ``after``: :func:`mlflywheel.drift.check.assess` with the spec's default drift policy (the
  same function the daily check calls), on the champion's training rows;
* ablations: the default policy without the effect-size threshold, without seasonal matching,
  and at p = 0.05 instead of the default 0.01, to show what each part contributes;
* the performance check (default :class:`PerformancePolicy`) on the stable days, with the
  champion's holdout PR-AUC taken on the newest 15% of its window: its statuses per day.

It prints, per daily volume and method, the share of stable days with an alarm (any trigger),
which triggers fired, and whether the shift was flagged on its first day.

    PYTHONPATH=include python benchmarks/drift_false_alarms.py [--rows 50 2000] [--stable-days 364]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import sys
import time
from collections import Counter

FIRST_DAY = dt.date(2025, 1, 1)
WARMUP_DAYS = 14  # the first champion needs 14 days of history
SAMPLE_ROWS = 2000  # FLYWHEEL_REFERENCE_SAMPLE_SIZE: the registered sample before the policy
P_VALUE = 0.05
CORRECTION = "bonferroni"
MAX_ROWS = 5000  # FLYWHEEL_DRIFT_MAX_ROWS
SEED = 42


def before(backend, spec, train, current, model) -> list[str]:
    """Triggers of the logic before the drift policy."""
    from mlflywheel.drift.performance import positive_scores

    sample = train.sample(n=min(SAMPLE_ROWS, len(train)), random_state=SEED).sort_index()
    data = backend.test(
        sample, current, categorical=list(spec.categorical_features), numeric=list(spec.numeric_features),
        p_value=P_VALUE, correction=CORRECTION,
    )  # fmt: skip
    scores = backend.test_scores(
        positive_scores(model.predict_proba(sample)), positive_scores(model.predict_proba(current)), p_value=P_VALUE
    )
    return [name for name, fired in (("data_drift", data.is_drift), ("prediction_drift", scores.is_drift)) if fired]


def after(backend, spec, train, current, model, policy) -> list[str]:
    """Triggers of :func:`assess` under ``policy``."""
    from mlflywheel.drift.check import assess

    outcome = assess(
        backend, spec, train, current, model=model, p_value=policy.p_value or P_VALUE, correction=CORRECTION,
        max_rows=MAX_ROWS, seed=SEED, policy=policy,
    )  # fmt: skip
    fired = []
    if outcome["data_drift"] and outcome["data_drift"]["is_drift"]:
        fired.append("data_drift")
    if outcome["prediction_drift"] and outcome["prediction_drift"]["drifted"]:
        fired.append("prediction_drift")
    return fired


def performance(spec, replay, day, first_retrain, model, policy) -> str:
    """The performance check's status on ``day`` (see :mod:`mlflywheel.drift.performance`): the
    champion's holdout figure is its PR-AUC on the newest 15% of its training window."""
    import pandas as pd
    from mlflywheel.drift.performance import judge_performance, label_window, metric_value, positive_scores

    window = replay.champion_window(day, first_retrain=first_retrain)
    holdout = window.iloc[int(len(window) * 0.85) :]
    baseline = metric_value("pr_auc", holdout[spec.target].to_numpy(), positive_scores(model.predict_proba(holdout)))
    first, last = label_window(day, policy)
    first = max(first, replay.retrain_day(day, first_retrain=first_retrain))  # after the training window
    days = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
    rows = pd.concat([replay.day(d) for d in days], ignore_index=True) if days else window.iloc[:0]
    scores = positive_scores(model.predict_proba(rows)) if len(rows) else []
    return judge_performance(rows[spec.target].to_numpy(), scores, metric="pr_auc", baseline=baseline,
                             policy=policy)["status"]  # fmt: skip


def run(rows_per_day: int, stable_days: int, methods: dict) -> None:
    from mlflywheel.datasets.upstreams.seasonal import SEASONAL_SPEC, Replay, SeasonalStream, StreamModel
    from mlflywheel.drift.backends import get_backend

    first_check = FIRST_DAY + dt.timedelta(days=WARMUP_DAYS)
    shift_day = first_check + dt.timedelta(days=stable_days)
    replay = Replay(SeasonalStream(origin=FIRST_DAY, covariate_shift_day=shift_day), rows_per_day, seed=SEED)
    backend, model = get_backend("scipy"), StreamModel()
    stable = [first_check + dt.timedelta(days=i) for i in range(stable_days)]
    print(f"\n== {rows_per_day} rows/day: {stable_days} stable days from {first_check}, shift on {shift_day}")
    print(f"{'method':<48} {'false alarms':>14} {'rate':>7}  {'shift day':>9}  triggers on stable days")
    fired_by_method: dict[str, dict[dt.date, list[str]]] = {}
    for name, judge in methods.items():
        started = time.perf_counter()
        fired_by_method[name] = {
            day: judge(backend, SEASONAL_SPEC, replay.champion_train_rows(day, first_retrain=first_check),
                       replay.day(day), model)
            for day in [*stable, shift_day]
        }  # fmt: skip
        report_line(name, fired_by_method[name], stable, shift_day, time.perf_counter() - started)
    statuses = {
        day: performance(SEASONAL_SPEC, replay, day, first_check, model, SEASONAL_SPEC.performance) for day in stable
    }
    print(f"performance check on the stable days (default policy): {dict(Counter(statuses.values()))}")
    default_name = next(name for name in methods if name.startswith("after (defaults"))
    combined = {
        day: fired + (["performance"] if statuses.get(day) == "degraded" else [])
        for day, fired in fired_by_method[default_name].items()
    }
    report_line("after (defaults), all three triggers", combined, stable, shift_day, None)


def report_line(name: str, fired: dict, stable: list, shift_day: dt.date, seconds: float | None) -> None:
    alarms = sum(1 for day in stable if fired[day])
    triggers = Counter(t for day in stable for t in fired[day])
    detail = ", ".join(f"{k} {v}" for k, v in sorted(triggers.items())) or "none"
    flagged = "flagged" if fired[shift_day] else "MISSED"
    took = f"  ({seconds:.1f}s)" if seconds is not None else ""
    print(
        f"{name:<48} {alarms:>6} / {len(stable):<5} {100 * alarms / len(stable):>6.1f}%  {flagged:>9}  {detail}{took}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[50, 2000], help="rows per day (one run each)")
    parser.add_argument("--stable-days", type=int, default=364, help="stable days checked before the shift")
    args = parser.parse_args()

    from mlflywheel.datasets.upstreams.seasonal import SEASONAL_SPEC

    default = SEASONAL_SPEC.drift
    no_effect = dataclasses.replace(default, effect_threshold=0.0)
    no_seasonal = dataclasses.replace(default, seasonality="none")
    p_05 = dataclasses.replace(default, p_value=0.05)
    label = f"{default.effect_size}>={default.effect_threshold:g}, p={default.p_value}, {default.seasonality}"
    methods = {
        "before (p-values, 1 day, sample)": before,
        f"after (defaults: {label})": lambda *a: after(*a, default),
        "after, no effect threshold": lambda *a: after(*a, no_effect),
        "after, no seasonal matching": lambda *a: after(*a, no_seasonal),
        "after, p=0.05 (FLYWHEEL_DRIFT_P_VALUE)": lambda *a: after(*a, p_05),
    }  # fmt: skip
    print(f"default drift policy: {default}")
    for rows in args.rows:
        run(rows, args.stable_days, methods)
    return 0


if __name__ == "__main__":
    sys.exit(main())
