"""The gate before and after evidence: decisions on a small holdout vs an extended one.

A report, not a test: it prints tables and exits 0. It mimics the case that motivated the evidence
rule (a small daily stream, a retrained candidate judged on its own ~51-row holdout) on synthetic
data with a known truth, and compares, over many repetitions:

* ``old gate, 51 rows``: point estimates on the candidate snapshot's 51-row holdout, promoted iff
  ``candidate >= champion + margin`` (floors first) -- the rule before evidence existed;
* ``new gate, 51 rows``: :func:`mlflywheel.gate.decide` with the evidence (rows, positives, paired
  bootstrap interval from :func:`mlflywheel.holdout.paired_bootstrap_interval`) on the same rows;
* ``new gate, 51+7d``: the same on the holdout :mod:`mlflywheel.holdout` builds when later days
  exist: the 51 rows plus 7 validated days of 48 rows (387 rows).

Data: 6 standard-normal features; the label's logit is ``w . x - 1.6`` (about 20% positives). The
champion is a logistic regression fitted on 2,000 rows of the old regime; the candidate one fitted
on 240 rows (five days of 48) of the current regime. Scenarios, by what the truth says (both models
scored on 20,000 fresh rows of the current regime):

* ``concept shift``: the current regime's weights differ from the old ones, so the candidate is
  truly better;
* ``shift, old holdout``: the same, but 40 of the snapshot's 51 holdout rows come from before the
  shift (a window that ends close to the event, as in the case that motivated this); the 7 later
  days are all from the current regime;
* ``no change``: one regime; the candidate, with less data, is truly a little worse or equal;
* ``noise labels``: the candidate was fitted on shuffled labels: truly much worse.

A *wrong* decision is promoting a candidate that is truly worse than the champion by more than the
margin, or rejecting one that is truly better by more than the margin. Settings (margin, floors,
minimum rows and positives, bootstrap samples, confidence) are the defaults of
:class:`mlflywheel.settings.Settings` (``FLYWHEEL_*`` overrides them)::

    PYTHONPATH=include python benchmarks/gate_evidence.py [--repeats 100] [--seed 7]
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from dataclasses import dataclass

import numpy as np
from mlflywheel import gate
from mlflywheel.holdout import paired_bootstrap_interval
from mlflywheel.settings import Settings
from sklearn.linear_model import LogisticRegression

FEATURES = 6
ROWS_PER_DAY = 48
SNAPSHOT_HOLDOUT = 51
EXTRA_DAYS = 7
TRUTH_ROWS = 20_000
OLD_WEIGHTS = np.array([1.6, -1.2, 0.9, 0.0, 0.0, 0.5])
SHIFTED_WEIGHTS = np.array([0.0, 0.3, -1.1, 1.7, 1.3, 0.5])
SCENARIOS = ("concept shift", "shift, old holdout", "no change", "noise labels")
GATES = ("old gate, 51 rows", "new gate, 51 rows", "new gate, 51+7d")


@dataclass
class Trial:
    true_difference: float
    decisions: dict[str, str]
    example: dict[str, object]


def draw(rng: np.random.Generator, rows: int, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = rng.standard_normal((rows, FEATURES))
    y = (rng.random(rows) < 1 / (1 + np.exp(-(x @ weights - 1.6)))).astype(int)
    return x, y


def metrics(labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    from mlflywheel.training.loop import binary_metrics  # the point metrics promotion uses

    return binary_metrics(labels, scores)


def truth_metric(metric: str, labels: np.ndarray, scores: np.ndarray) -> float:
    from sklearn.metrics import average_precision_score, roc_auc_score

    return float((average_precision_score if metric == "pr_auc" else roc_auc_score)(labels, scores))


def trial(scenario: str, rng: np.random.Generator, settings: Settings) -> Trial:
    current = SHIFTED_WEIGHTS if scenario in ("concept shift", "shift, old holdout") else OLD_WEIGHTS
    champion = LogisticRegression().fit(*draw(rng, 2000, OLD_WEIGHTS))
    x_train, y_train = draw(rng, 5 * ROWS_PER_DAY, current)
    if scenario == "noise labels":
        y_train = rng.permutation(y_train)
    candidate = LogisticRegression().fit(x_train, y_train)

    def score(model: LogisticRegression, x: np.ndarray) -> np.ndarray:
        return model.predict_proba(x)[:, 1]

    x_truth, y_truth = draw(rng, TRUTH_ROWS, current)
    metric = settings.gate_metric
    true_difference = truth_metric(metric, y_truth, score(candidate, x_truth)) - truth_metric(
        metric, y_truth, score(champion, x_truth)
    )
    x_small, y_small = draw(rng, SNAPSHOT_HOLDOUT, current)
    if scenario == "shift, old holdout":  # the snapshot's holdout is mostly from before the shift
        before = SNAPSHOT_HOLDOUT * 4 // 5
        x_old, y_old = draw(rng, before, OLD_WEIGHTS)
        x_small, y_small = np.vstack([x_old, x_small[before:]]), np.concatenate([y_old, y_small[before:]])
    x_extra, y_extra = draw(rng, EXTRA_DAYS * ROWS_PER_DAY, current)
    holdouts = {
        "51 rows": (x_small, y_small),
        "51+7d": (np.vstack([x_small, x_extra]), np.concatenate([y_small, y_extra])),
    }
    floors = gate.Floors(min_pr_auc=settings.floor_pr_auc, min_roc_auc=settings.floor_roc_auc)
    minimum = gate.EvidenceMinimum(
        rows=settings.gate_min_holdout_rows, positives=settings.gate_min_holdout_positives
    )
    decisions: dict[str, str] = {}
    example: dict[str, object] = {"true difference": round(true_difference, 4)}
    for name, (x, y) in holdouts.items():
        cand_scores, champ_scores = score(candidate, x), score(champion, x)
        cand, champ = metrics(y, cand_scores), metrics(y, champ_scores)
        if name == "51 rows":
            old = gate.decide(cand, champ, floors=floors, metric=metric, margin=settings.gate_margin)
            decisions["old gate, 51 rows"] = old.decision
        low, high, _ = paired_bootstrap_interval(
            y, cand_scores, champ_scores, metric=metric, samples=settings.gate_bootstrap_samples,
            confidence=settings.gate_confidence, seed=settings.seed,
        )  # fmt: skip
        evidence = gate.Evidence(
            rows=len(y), positives=int(y.sum()), low=low, high=high, confidence=settings.gate_confidence
        )
        new = gate.decide(
            cand,
            champ,
            floors=floors,
            metric=metric,
            margin=settings.gate_margin,
            evidence=evidence,
            minimum=minimum,
        )
        decisions[f"new gate, {name}"] = new.decision
        example[name] = {
            "rows": len(y), "positives": int(y.sum()), "candidate": round(cand[metric], 4),
            "champion": round(champ[metric], 4), "interval": [round(v, 4) for v in (low, high)] if low is not None
            else None, "new": new.decision, "reasons": new.reasons,
        }  # fmt: skip
    example["old gate on 51 rows"] = decisions["old gate, 51 rows"]
    return Trial(true_difference, decisions, example)


def wrong(decision: str, true_difference: float, margin: float) -> bool:
    return (decision == "promoted" and true_difference < -margin) or (
        decision == "rejected" and true_difference > margin
    )


def report(repeats: int, seed: int) -> None:
    settings = Settings.from_env()
    print(
        f"== gate evidence: {repeats} repetitions per scenario, seed {seed}; metric {settings.gate_metric}, "
        f"margin {settings.gate_margin}, floors pr_auc {settings.floor_pr_auc} roc_auc {settings.floor_roc_auc}, "
        f"minimum {settings.gate_min_holdout_rows} rows / {settings.gate_min_holdout_positives} positives, "
        f"{settings.gate_bootstrap_samples} bootstrap resamples, confidence {settings.gate_confidence}"
    )
    header = f"{'scenario':<18} {'true diff':>10} {'gate':<18} {'promoted':>9} {'rejected':>9} {'undecided':>10} {'wrong':>6}"
    print(header)
    print("-" * len(header))
    examples = {}
    started = time.perf_counter()
    for index, scenario in enumerate(SCENARIOS):
        rng = np.random.default_rng([seed, index])
        trials = [trial(scenario, rng, settings) for _ in range(repeats)]
        examples[scenario] = trials[0].example
        mean_diff = float(np.mean([t.true_difference for t in trials]))
        for name in GATES:
            counts = Counter(t.decisions[name] for t in trials)
            errors = sum(wrong(t.decisions[name], t.true_difference, settings.gate_margin) for t in trials)
            print(
                f"{scenario:<18} {mean_diff:>+10.4f} {name:<18} {counts['promoted']:>9} {counts['rejected']:>9} "
                f"{counts['undecided']:>10} {errors:>6}"
            )
    print(f"({time.perf_counter() - started:.1f}s)")
    print("\nfirst repetition of each scenario:")
    for scenario, example in examples.items():
        print(f"- {scenario}: {example}")
    timing(settings)


def timing(settings: Settings) -> None:
    """The bootstrap's cost at the size the brief names: 1000 resamples of ~20k rows."""
    rng = np.random.default_rng(0)
    labels = (rng.random(20_000) < 0.05).astype(int)
    a, b = rng.random(20_000) + 0.5 * labels, rng.random(20_000) + 0.4 * labels
    for metric in gate.METRICS:
        started = time.perf_counter()
        low, high, valid = paired_bootstrap_interval(
            labels, a, b, metric=metric, samples=1000, confidence=settings.gate_confidence, seed=1
        )
        print(
            f"paired bootstrap, {metric}: 1000 resamples x 20,000 rows in {time.perf_counter() - started:.2f}s "
            f"(interval [{low:.4f}, {high:.4f}], {valid} valid)"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=100)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    report(args.repeats, args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
