"""The promotion gate: a pure decision whether a candidate model may replace the champion.

No I/O and no MLflow, numpy or torch imports, so the rule can be tested exhaustively and read in
one place. The caller (:mod:`mlflywheel.promote`) scores both models on the same holdout, computes
the evidence (how many rows and positives, and a paired-bootstrap interval of the difference on the
gate metric) and records the returned :class:`GateDecision` as model-version tags.

Three outcomes: ``promoted``, ``rejected``, ``undecided``. Only ``promoted`` moves the alias.

Rules, in order, when the evidence is given (``evidence`` and ``minimum``):
  1. too little evidence (holdout rows < ``minimum.rows`` or positives < ``minimum.positives``) is
     ``undecided``, whatever the metrics say: on a few dozen rows a metric is noise, and neither a
     promotion nor a rejection should be decided by noise;
  2. a candidate whose metrics are missing or NaN is rejected;
  3. every failing floor (minimum PR-AUC, minimum ROC-AUC) rejects, one reason per floor;
  4. with no champion, a candidate that passes the floors is promoted;
  5. a champion whose metric is NaN cannot be compared: rejected, the champion is kept;
  6. with a champion, on the difference ``d = candidate[metric] - champion[metric]`` and its
     interval ``[low, high]`` at ``evidence.confidence``:
       * ``high < margin``: rejected (even the optimistic end is short of the margin: the
         candidate is shown not to be better by the margin);
       * ``d >= margin`` and ``low > 0``: promoted;
       * otherwise ``undecided`` (the difference is within the noise of this holdout);
       * no finite interval: ``undecided`` (the difference's uncertainty is unknown).

Why rule 6 is built this way: the margin is a *practical* threshold on the point estimate (a
candidate must be better by enough to be worth a change of model), the interval's low end above
zero is the *statistical* one (at this confidence the candidate is really better, not better by
the luck of which rows were held out). Asking the whole interval to clear the margin would need far
more evidence than the margin's purpose (to avoid churn on ties) justifies. Rejection mirrors it:
it needs the interval's high end below the margin, i.e. evidence that the candidate is not better
by the margin. Where the rule for rejection and the one for promotion would both hold (a skewed
bootstrap whose interval excludes the point estimate), the champion is kept: rejection is checked
first.

Without evidence (``decide(cand, champ, floors=..., metric=..., margin=...)``, the form used before
evidence existed) rules 2-5 apply and rule 6 compares point estimates only: promoted iff
``candidate[metric] >= champion[metric] + margin``. :mod:`mlflywheel.promote` always passes evidence.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

METRICS = ("pr_auc", "roc_auc")
PROMOTED, REJECTED, UNDECIDED = "promoted", "rejected", "undecided"
OUTCOMES = (PROMOTED, REJECTED, UNDECIDED)


@dataclass(frozen=True)
class Floors:
    """Absolute minimums a candidate must reach, whatever the champion does."""

    min_pr_auc: float
    min_roc_auc: float


@dataclass(frozen=True)
class EvidenceMinimum:
    """Below these holdout sizes the gate decides nothing (``undecided``)."""

    rows: int
    positives: int

    def __post_init__(self) -> None:
        for name in ("rows", "positives"):
            value = getattr(self, name)
            if not _is_count(value):
                raise ValueError(f"evidence minimum {name} must be a non-negative integer, got {value!r}")


@dataclass(frozen=True)
class Evidence:
    """What the point metrics were measured on, and how uncertain their difference is.

    ``rows`` and ``positives`` count the holdout both models were scored on. ``low`` and ``high``
    bound ``candidate - champion`` on the gate metric at two-sided level ``confidence`` (a paired
    bootstrap in :mod:`mlflywheel.promote`); None without a champion or when not computable.
    """

    rows: int
    positives: int
    low: float | None = None
    high: float | None = None
    confidence: float | None = None

    def __post_init__(self) -> None:
        if not _is_count(self.rows) or not _is_count(self.positives):
            raise ValueError(f"evidence rows and positives must be non-negative integers, got {self}")
        if self.positives > self.rows:
            raise ValueError(f"evidence has more positives ({self.positives}) than rows ({self.rows})")
        if self.confidence is not None and not (_is_number(self.confidence) and 0 < self.confidence < 1):
            raise ValueError(f"evidence confidence must be in (0, 1), got {self.confidence!r}")
        if _is_number(self.low) and _is_number(self.high) and float(self.low) > float(self.high):
            raise ValueError(f"evidence interval low {self.low} > high {self.high}")

    @property
    def has_interval(self) -> bool:
        return _is_number(self.low) and _is_number(self.high)


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reasons: list[str]
    candidate: dict[str, Any]
    champion: dict[str, Any] | None
    metric: str
    margin: float
    floors: Floors | None = field(default=None)
    outcome: str = ""  # promoted | rejected | undecided; "" derives it from ``promote``
    evidence: Evidence | None = None
    minimum: EvidenceMinimum | None = None

    @property
    def decision(self) -> str:
        return self.outcome or (PROMOTED if self.promote else REJECTED)

    @property
    def difference(self) -> float | None:
        """``candidate - champion`` on the gate metric (None when not both are numbers)."""
        if self.champion is None:
            return None
        cand, champ = self.candidate.get(self.metric), self.champion.get(self.metric)
        return float(cand) - float(champ) if _is_number(cand) and _is_number(champ) else None

    def as_tags(
        self,
        prefix: str = "flywheel.gate.",
        *,
        outcome: str | None = None,
        reasons: list[str] | None = None,
    ) -> dict[str, str]:
        """Strings for MLflow tags (values are bounded by the caller's tag helper).

        ``outcome`` and ``reasons`` record what was finally done when it differs from the gate's
        own verdict (shadow mode, a candidate that already is the champion); default: the gate's.
        ``verdict`` is always the gate's own.
        """
        tags = {
            f"{prefix}decision": outcome or self.decision,
            f"{prefix}verdict": self.decision,
            f"{prefix}reasons": "; ".join(self.reasons if reasons is None else reasons),
            f"{prefix}metric": self.metric,
            f"{prefix}margin": _fmt(self.margin),
            f"{prefix}candidate_metrics": json.dumps(plain_metrics(self.candidate), sort_keys=True),
            f"{prefix}champion_metrics": (
                json.dumps(plain_metrics(self.champion), sort_keys=True)
                if self.champion is not None
                else "none"
            ),
        }
        if self.floors is not None:
            tags[f"{prefix}floor_pr_auc"] = _fmt(self.floors.min_pr_auc)
            tags[f"{prefix}floor_roc_auc"] = _fmt(self.floors.min_roc_auc)
        difference = self.difference
        if difference is not None:
            tags[f"{prefix}difference"] = _fmt(difference)
        if self.evidence is not None:
            tags[f"{prefix}holdout_rows"] = str(self.evidence.rows)
            tags[f"{prefix}holdout_positives"] = str(self.evidence.positives)
            if self.evidence.has_interval:
                tags[f"{prefix}interval_low"] = _fmt(self.evidence.low)
                tags[f"{prefix}interval_high"] = _fmt(self.evidence.high)
            if self.evidence.confidence is not None:
                tags[f"{prefix}confidence"] = f"{float(self.evidence.confidence):g}"
        if self.minimum is not None:
            tags[f"{prefix}min_holdout_rows"] = str(self.minimum.rows)
            tags[f"{prefix}min_holdout_positives"] = str(self.minimum.positives)
        return tags

    def as_dict(self) -> dict[str, Any]:
        evidence = self.evidence
        return {
            "promote": self.promote,
            "decision": self.decision,
            "reasons": list(self.reasons),
            "candidate": plain_metrics(self.candidate),
            "champion": plain_metrics(self.champion) if self.champion is not None else None,
            "metric": self.metric,
            "margin": self.margin,
            "difference": self.difference,
            "evidence": (
                {
                    "rows": evidence.rows,
                    "positives": evidence.positives,
                    "interval": [evidence.low, evidence.high] if evidence.has_interval else None,
                    "confidence": evidence.confidence,
                }
                if evidence is not None
                else None
            ),
            "minimum": (
                {"rows": self.minimum.rows, "positives": self.minimum.positives} if self.minimum else None
            ),
        }


def decide(
    candidate_metrics: dict[str, Any],
    champion_metrics: dict[str, Any] | None,
    *,
    floors: Floors,
    metric: str = "pr_auc",
    margin: float = 0.002,
    evidence: Evidence | None = None,
    minimum: EvidenceMinimum | None = None,
) -> GateDecision:
    """Promote, reject, or leave undecided (see the module docstring for the rules and why)."""
    if metric not in METRICS:
        raise ValueError(f"gate metric {metric!r} not in {METRICS}")
    if not _is_number(margin) or margin < 0:
        raise ValueError(f"gate margin must be a non-negative number, got {margin!r}")
    if (evidence is None) != (minimum is None):
        raise ValueError("evidence and minimum come together: a decision on evidence needs its minimum")

    def result(outcome: str, reasons: list[str]) -> GateDecision:
        return GateDecision(
            promote=outcome == PROMOTED,
            reasons=reasons,
            candidate=dict(candidate_metrics),
            champion=dict(champion_metrics) if champion_metrics is not None else None,
            metric=metric,
            margin=float(margin),
            floors=floors,
            outcome=outcome,
            evidence=evidence,
            minimum=minimum,
        )

    # 1. Too little evidence: decide nothing, in either direction.
    if evidence is not None and minimum is not None:
        short = _short_of_evidence(evidence, minimum)
        if short:
            return result(UNDECIDED, short)

    # 2. Unusable candidate metrics: never promote what could not be measured.
    needed = sorted({metric, *METRICS})
    bad = [name for name in needed if not _is_number(candidate_metrics.get(name))]
    if bad:
        return result(REJECTED, [f"candidate {name} is missing or NaN" for name in bad])

    # 3. Floors: each failing floor is its own reason.
    reasons: list[str] = []
    for name, floor in (("pr_auc", floors.min_pr_auc), ("roc_auc", floors.min_roc_auc)):
        value = float(candidate_metrics[name])
        if value < floor:
            reasons.append(f"candidate {name} {_fmt(value)} is below the floor {_fmt(floor)}")
    if reasons:
        return result(REJECTED, reasons)

    # 4. No champion: the first model that passes the floors becomes champion.
    if champion_metrics is None:
        return result(PROMOTED, ["no champion; candidate passes the floors"])

    # 5. Without a comparable champion score we cannot show the candidate is not worse.
    cand = float(candidate_metrics[metric])
    champ = champion_metrics.get(metric)
    if not _is_number(champ):
        return result(REJECTED, [f"champion {metric} is missing or NaN; cannot compare, champion kept"])
    champ = float(champ)

    # 6. Beat the champion by the margin (on the evidence, when given).
    if evidence is None:
        beats = cand >= champ + margin
        relation = ">=" if beats else "<"
        return result(
            PROMOTED if beats else REJECTED,
            [f"candidate {metric} {_fmt(cand)} {relation} champion {_fmt(champ)} + margin {_fmt(margin)}"],
        )
    return _decide_on_interval(result, metric, cand, champ, float(margin), evidence)


def _short_of_evidence(evidence: Evidence, minimum: EvidenceMinimum) -> list[str]:
    reasons = []
    if evidence.rows < minimum.rows:
        reasons.append(
            f"too little evidence: holdout has {evidence.rows} rows, at least {minimum.rows} needed"
        )
    if evidence.positives < minimum.positives:
        reasons.append(
            f"too little evidence: holdout has {evidence.positives} positives, "
            f"at least {minimum.positives} needed"
        )
    return reasons


def _decide_on_interval(
    result: Any, metric: str, cand: float, champ: float, margin: float, evidence: Evidence
) -> GateDecision:
    diff = cand - champ
    point = f"candidate {metric} {_fmt(cand)} - champion {_fmt(champ)} = {_fmt(diff)}"
    if not evidence.has_interval:
        return result(UNDECIDED, [f"{point}; no interval of the difference, so its noise is unknown"])
    low, high = float(evidence.low), float(evidence.high)  # type: ignore[arg-type]
    level = f"{float(evidence.confidence):.0%} " if evidence.confidence is not None else ""
    interval = f"{level}interval [{_fmt(low)}, {_fmt(high)}]"
    if high < margin:
        return result(REJECTED, [f"{point}; {interval} lies below the margin {_fmt(margin)}"])
    if diff >= margin and low > 0:
        return result(PROMOTED, [f"{point} >= margin {_fmt(margin)}; {interval} lies above 0"])
    if diff < margin:
        why = f"{point} < margin {_fmt(margin)}, but the {interval} reaches the margin"
    else:
        why = f"{point} >= margin {_fmt(margin)}, but the {interval} reaches 0"
    return result(UNDECIDED, [f"{why}: the difference is within the noise of this holdout"])


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_number(value: Any) -> bool:
    if isinstance(value, bool) or value is None:
        return False
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _fmt(value: float) -> str:
    return f"{float(value):.4f}"


def plain_metrics(metrics: dict[str, Any] | None) -> dict[str, Any]:
    # JSON cannot carry NaN portably; write it as null.
    out: dict[str, Any] = {}
    for key, value in (metrics or {}).items():
        if isinstance(value, float) and not math.isfinite(value):
            out[key] = None
        elif hasattr(value, "item"):  # numpy scalars
            out[key] = value.item()
        else:
            out[key] = value
    return out
