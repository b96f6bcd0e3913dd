"""The promotion gate: a pure decision whether a candidate model may replace the champion.

No I/O and no MLflow or torch imports, so the rule can be tested exhaustively and read in one
place. The caller (:mod:`mlflywheel.promote`) scores both models on the same holdout and
records the returned :class:`GateDecision` as model-version tags.

Rules, in order:
  1. a candidate whose metrics are missing or NaN is rejected;
  2. every failing floor (minimum PR-AUC, minimum ROC-AUC) rejects, one reason per floor;
  3. with no champion, a candidate that passes the floors is promoted;
  4. otherwise it is promoted only if ``candidate[metric] >= champion[metric] + margin``
     (a champion whose metric is NaN cannot be compared, so the champion is kept).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

METRICS = ("pr_auc", "roc_auc")


@dataclass(frozen=True)
class Floors:
    """Absolute minimums a candidate must reach, whatever the champion does."""

    min_pr_auc: float
    min_roc_auc: float


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reasons: list[str]
    candidate: dict[str, Any]
    champion: dict[str, Any] | None
    metric: str
    margin: float
    floors: Floors | None = field(default=None)

    @property
    def decision(self) -> str:
        return "promoted" if self.promote else "rejected"

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
        """
        tags = {
            f"{prefix}decision": outcome or self.decision,
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
        return tags

    def as_dict(self) -> dict[str, Any]:
        return {
            "promote": self.promote,
            "decision": self.decision,
            "reasons": list(self.reasons),
            "candidate": plain_metrics(self.candidate),
            "champion": plain_metrics(self.champion) if self.champion is not None else None,
            "metric": self.metric,
            "margin": self.margin,
        }


def decide(
    candidate_metrics: dict[str, Any],
    champion_metrics: dict[str, Any] | None,
    *,
    floors: Floors,
    metric: str = "pr_auc",
    margin: float = 0.002,
) -> GateDecision:
    """Decide whether the candidate replaces the champion (see the module docstring)."""
    if metric not in METRICS:
        raise ValueError(f"gate metric {metric!r} not in {METRICS}")
    if not _is_number(margin) or margin < 0:
        raise ValueError(f"gate margin must be a non-negative number, got {margin!r}")

    def result(promote: bool, reasons: list[str]) -> GateDecision:
        return GateDecision(
            promote=promote,
            reasons=reasons,
            candidate=dict(candidate_metrics),
            champion=dict(champion_metrics) if champion_metrics is not None else None,
            metric=metric,
            margin=float(margin),
            floors=floors,
        )

    # 1. Unusable candidate metrics: never promote what could not be measured.
    needed = sorted({metric, *METRICS})
    bad = [name for name in needed if not _is_number(candidate_metrics.get(name))]
    if bad:
        return result(False, [f"candidate {name} is missing or NaN" for name in bad])

    # 2. Floors: each failing floor is its own reason.
    reasons: list[str] = []
    for name, floor in (("pr_auc", floors.min_pr_auc), ("roc_auc", floors.min_roc_auc)):
        value = float(candidate_metrics[name])
        if value < floor:
            reasons.append(f"candidate {name} {_fmt(value)} is below the floor {_fmt(floor)}")
    if reasons:
        return result(False, reasons)

    # 3. No champion: the first model that passes the floors becomes champion.
    if champion_metrics is None:
        return result(True, ["no champion; candidate passes the floors"])

    # 4. Beat the champion by the margin on the gate metric.
    cand = float(candidate_metrics[metric])
    champ = champion_metrics.get(metric)
    if not _is_number(champ):
        # Without a comparable champion score we cannot show the candidate is not worse.
        return result(False, [f"champion {metric} is missing or NaN; cannot compare, champion kept"])
    champ = float(champ)
    needed_value = champ + margin
    if cand >= needed_value:
        return result(
            True,
            [f"candidate {metric} {_fmt(cand)} >= champion {_fmt(champ)} + margin {_fmt(margin)}"],
        )
    return result(
        False,
        [f"candidate {metric} {_fmt(cand)} < champion {_fmt(champ)} + margin {_fmt(margin)}"],
    )


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
