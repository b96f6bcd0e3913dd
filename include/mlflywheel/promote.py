"""Promotion: score candidate and champion on the same holdout, apply the gate, record, move.

Order matters for crash safety: the decision is written as tags on the candidate version
first and the ``champion`` alias moves last, so a promoted model always has its record.
Modes: ``gate`` moves the alias when the gate says so; ``shadow`` scores and records but
never moves it. :func:`rollback` restores ``previous_champion`` (one step).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlflywheel import gate, registry

if TYPE_CHECKING:  # pragma: no cover
    from mlflywheel.settings import Settings

MODES = ("gate", "shadow")
GATE_PREFIX = "flywheel.gate."
ROLLBACK_PREFIX = "flywheel.rollback."


class PromotionError(RuntimeError):
    """Promotion or rollback cannot proceed (bad mode, no previous champion)."""


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


@dataclass(frozen=True)
class Evidence:
    """Candidate and champion scored on the same holdout: what the gate decides on."""

    candidate_version: str
    champion_version: str | None
    candidate_metrics: dict[str, Any]
    champion_metrics: dict[str, Any] | None


def evaluate_and_promote(
    settings: Settings,
    *,
    candidate_version: str,
    snapshot_id: str,
    mode: str = "gate",
    decided_by: str = "",
) -> dict[str, Any]:
    """Gate ``candidate_version`` against the champion on the snapshot's holdout.

    Returns the decision as a dict (``promoted`` says whether the alias moved).
    """
    if mode not in MODES:
        raise PromotionError(f"mode {mode!r} not in {MODES}")
    evidence = score_on_holdout(settings, str(candidate_version), snapshot_id)
    decision = gate.decide(
        evidence.candidate_metrics,
        evidence.champion_metrics,
        floors=gate.Floors(min_pr_auc=settings.floor_pr_auc, min_roc_auc=settings.floor_roc_auc),
        metric=settings.gate_metric,
        margin=settings.gate_margin,
    )
    return record_and_move(settings, evidence, decision, snapshot_id=snapshot_id, mode=mode, decided_by=decided_by)


def score_on_holdout(settings: Settings, candidate_version: str, snapshot_id: str) -> Evidence:
    """Score the candidate and the current champion (if another version) on the snapshot's holdout."""
    from mlflywheel.datasets import get_spec
    from mlflywheel.lake import lake_from_settings
    from mlflywheel.training.loop import evaluate
    from mlflywheel.training.snapshot import load_snapshot

    manifest, splits = load_snapshot(lake_from_settings(settings), snapshot_id)
    holdout = splits["holdout"]
    target = get_spec(manifest["dataset"]).target

    def score(version: str) -> dict[str, Any]:
        return evaluate(registry.load_model(settings, version), None, holdout, target)

    current = registry.champion(settings)
    champion_version = str(current.version) if current is not None else None
    champion_metrics = None
    if champion_version is not None and champion_version != candidate_version:
        champion_metrics = score(champion_version)
    return Evidence(candidate_version, champion_version, score(candidate_version), champion_metrics)


def record_and_move(
    settings: Settings,
    evidence: Evidence,
    decision: gate.GateDecision,
    *,
    snapshot_id: str,
    mode: str,
    decided_by: str,
) -> dict[str, Any]:
    """Write the decision on the candidate version first, then move the alias if it says so."""
    candidate_version, champion_version = evidence.candidate_version, evidence.champion_version
    reasons = list(decision.reasons)
    already_champion = champion_version == candidate_version
    move_alias = decision.promote and mode == "gate" and not already_champion
    if already_champion:
        reasons.append(f"version {candidate_version} is already the champion; alias unchanged")
    elif mode == "shadow":
        verdict = "would promote" if decision.promote else "would reject"
        reasons.append(f"shadow mode: gate {verdict}; champion alias not moved")
    promoted = move_alias or (already_champion and decision.promote)
    outcome = "promoted" if promoted else "rejected"

    decided_at = _now()
    tags = decision.as_tags(GATE_PREFIX, outcome=outcome, reasons=reasons)
    tags.update(
        {
            f"{GATE_PREFIX}gate_passed": str(decision.promote).lower(),
            f"{GATE_PREFIX}mode": mode,
            f"{GATE_PREFIX}snapshot_id": snapshot_id,
            f"{GATE_PREFIX}champion_version": champion_version or "none",
            f"{GATE_PREFIX}decided_by": decided_by,
            f"{GATE_PREFIX}decided_at": decided_at,
        }
    )
    registry.tag_version(settings, candidate_version, tags)  # the record first ...
    if move_alias:  # ... the alias last
        registry.set_champion(
            settings,
            candidate_version,
            reason=f"gate: {'; '.join(decision.reasons)} (snapshot {snapshot_id}, by {decided_by or 'n/a'})",
        )
    return {
        "model_name": settings.model_name,
        "candidate_version": candidate_version,
        "champion_version": champion_version,
        "snapshot_id": snapshot_id,
        "mode": mode,
        "decision": outcome,
        "promoted": promoted,
        "alias_moved": move_alias,
        "gate_passed": decision.promote,
        "reasons": reasons,
        "metric": decision.metric,
        "margin": decision.margin,
        "candidate_metrics": gate.plain_metrics(evidence.candidate_metrics),
        "champion_metrics": (
            gate.plain_metrics(evidence.champion_metrics) if evidence.champion_metrics is not None else None
        ),
        "decided_by": decided_by,
        "decided_at": decided_at,
    }


def rollback(settings: Settings, *, reason: str, decided_by: str = "") -> dict[str, Any]:
    """One step back: ``champion`` <- ``previous_champion``; the ``previous_champion``
    alias is then removed, so a second rollback fails instead of flip-flopping."""
    previous = registry.previous_champion(settings)
    if previous is None:
        raise PromotionError(f"{settings.model_name} has no previous_champion to roll back to")
    current = registry.champion(settings)
    restored = str(previous.version)
    demoted = str(current.version) if current is not None else None
    at = _now()
    record = {"reason": reason, "decided_by": decided_by, "at": at}
    registry.tag_version(
        settings,
        restored,
        {
            f"{ROLLBACK_PREFIX}restored_at": at,
            f"{ROLLBACK_PREFIX}restored_from": demoted or "none",
            f"{ROLLBACK_PREFIX}reason": reason,
            f"{ROLLBACK_PREFIX}decided_by": decided_by,
        },
    )
    if demoted is not None and demoted != restored:
        registry.tag_version(
            settings,
            demoted,
            {
                f"{ROLLBACK_PREFIX}demoted_at": at,
                f"{ROLLBACK_PREFIX}demoted_reason": reason,
                f"{ROLLBACK_PREFIX}demoted_by": decided_by,
            },
        )
    registry.restore_champion(settings, restored)
    return {"model_name": settings.model_name, "champion": restored, "rolled_back": demoted, **record}


def champion_history(settings: Settings) -> list[dict[str, Any]]:
    """Gate decisions and rollbacks recorded on the model's versions, oldest first."""
    events: list[dict[str, Any]] = []
    current = registry.champion(settings)
    current_version = str(current.version) if current is not None else None
    for version in registry.list_versions(settings):
        tags = dict(version.tags or {})
        number = str(version.version)
        if f"{GATE_PREFIX}decision" in tags:
            events.append(
                {
                    "event": "gate",
                    "version": number,
                    "at": tags.get(f"{GATE_PREFIX}decided_at", ""),
                    "decision": tags[f"{GATE_PREFIX}decision"],
                    "mode": tags.get(f"{GATE_PREFIX}mode", ""),
                    "reasons": tags.get(f"{GATE_PREFIX}reasons", ""),
                    "champion_version": tags.get(f"{GATE_PREFIX}champion_version", "none"),
                    "candidate_metrics": _json_or_none(tags.get(f"{GATE_PREFIX}candidate_metrics")),
                    "champion_metrics": _json_or_none(tags.get(f"{GATE_PREFIX}champion_metrics")),
                    "snapshot_id": tags.get(
                        f"{GATE_PREFIX}snapshot_id", tags.get("flywheel.snapshot_id", "")
                    ),
                    "decided_by": tags.get(f"{GATE_PREFIX}decided_by", ""),
                    "is_champion": number == current_version,
                }
            )
        if f"{ROLLBACK_PREFIX}restored_at" in tags:
            events.append(
                {
                    "event": "rollback",
                    "version": number,
                    "at": tags[f"{ROLLBACK_PREFIX}restored_at"],
                    "decision": "restored",
                    "reasons": tags.get(f"{ROLLBACK_PREFIX}reason", ""),
                    "rolled_back_version": tags.get(f"{ROLLBACK_PREFIX}restored_from", "none"),
                    "decided_by": tags.get(f"{ROLLBACK_PREFIX}decided_by", ""),
                    "is_champion": number == current_version,
                }
            )
    return sorted(events, key=lambda e: (e["at"], int(e["version"])))


def _json_or_none(text: str | None) -> Any:
    if not text or text == "none":
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text
