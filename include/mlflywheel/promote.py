"""Promotion: score candidate and champion on one holdout, weigh the evidence, gate, record, move.

Candidate and champion are scored on one holdout (:mod:`mlflywheel.holdout`): the point metrics
and the paired bootstrap interval of their difference are the evidence :func:`mlflywheel.gate.decide`
decides on.

Order matters for crash safety: the decision is written as tags on the candidate version
first, as one record (:func:`mlflywheel.registry.tag_version`: readers see all of its tags or
none, and a new decision removes every tag of an earlier one under ``flywheel.gate.`` and
``flywheel.approval.``, so a version gated again never shows its new decision beside old
evidence), as ``promoting`` when the alias is to move; the ``champion`` alias moves next, and only then
is the decision ``promoted``. A failure of the move records ``promotion_failed`` with the error
(the alias did not move); a kill leaves ``promoting``, which :func:`finish_interrupted` settles
(``promoted`` if the alias had moved, else ``promotion_failed``) before the next promotion,
approval or rollback. ``previous_champion`` never names the champion, and a rollback that would
restore the champion itself is refused.
Modes: ``gate`` moves the alias when the gate promotes; ``shadow`` scores and records the gate's
verdict truthfully (decision ``shadow``, ``verdict`` and ``gate_passed`` as the gate said) but
never moves it; ``approval`` records a passing gate as ``awaiting_approval`` and leaves the move
to a person: :func:`apply_approval` takes their answer (Airflow's human-in-the-loop approval in the
``train`` DAG), records who answered and when, and moves the alias only on an approval, only if the
champion is still the one the candidate was gated against. A gate that does not pass never asks.
:func:`rollback` restores ``previous_champion`` (one step).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import TYPE_CHECKING, Any

from mlflywheel import faults, gate, registry
from mlflywheel.holdout import Evidence, score_on_holdout

if TYPE_CHECKING:  # pragma: no cover

    from mlflywheel.settings import Settings

log = logging.getLogger("mlflywheel.promote")

MODES = ("gate", "shadow", "approval")
SHADOW = "shadow"
APPROVAL = "approval"
AWAITING_APPROVAL = "awaiting_approval"  # the decision recorded while a person has not answered
PROMOTING = "promoting"  # recorded before the champion alias moves; "promoted" once it has
PROMOTION_FAILED = "promotion_failed"  # the alias did not move (error in promotion_error)
GATE_PREFIX = "flywheel.gate."
APPROVAL_PREFIX = "flywheel.approval."
APPROVAL_ANSWERS = ("approved", "rejected", "timed_out")
ROLLBACK_PREFIX = "flywheel.rollback."
# The namespaces of one gate decision: a new decision replaces all of an earlier one's tags there.
RECORD_PREFIXES = (GATE_PREFIX, APPROVAL_PREFIX)


class PromotionError(RuntimeError):
    """Promotion or rollback cannot proceed (bad mode, no previous champion)."""


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


def evaluate_and_promote(
    settings: Settings,
    *,
    candidate_version: str,
    snapshot_id: str,
    mode: str = "gate",
    decided_by: str = "",
) -> dict[str, Any]:
    """Gate ``candidate_version`` against the champion on the evaluation holdout (module docstring).

    Returns the decision as a dict (``promoted`` says whether the alias moved, ``decision`` what was
    done: promoted | rejected | undecided | shadow, ``verdict`` the gate's own outcome).
    """
    if mode not in MODES:
        raise PromotionError(f"mode {mode!r} not in {MODES}")
    finish_interrupted(settings)
    if mode == "gate":
        done = _recorded_promotion(settings, str(candidate_version), snapshot_id)
        if done is not None:
            return done
    evidence = score_on_holdout(settings, str(candidate_version), snapshot_id)
    decision = gate.decide(
        evidence.candidate_metrics,
        evidence.champion_metrics,
        floors=gate.Floors(min_pr_auc=settings.floor_pr_auc, min_roc_auc=settings.floor_roc_auc),
        metric=settings.gate_metric,
        margin=settings.gate_margin,
        evidence=evidence.gate_evidence,
        minimum=gate.EvidenceMinimum(
            rows=settings.gate_min_holdout_rows, positives=settings.gate_min_holdout_positives
        ),
    )
    return record_and_move(
        settings, evidence, decision, snapshot_id=snapshot_id, mode=mode, decided_by=decided_by
    )


def _recorded_promotion(settings: Settings, version: str, snapshot_id: str) -> dict[str, Any] | None:
    """The decision this gate already recorded when it promoted ``version`` on ``snapshot_id`` (the
    task's retry after a kill once the alias had moved, or a second run), kept as it is; else None.

    Gating again would compare the champion with itself and overwrite the evidence against the
    champion it replaced.
    """
    if _champion_version(settings) != version:
        return None
    tags = registry.version_tags(settings, version)
    if (tags.get(f"{GATE_PREFIX}decision"), tags.get(f"{GATE_PREFIX}mode"),
            tags.get(f"{GATE_PREFIX}snapshot_id")) != ("promoted", "gate", snapshot_id):  # fmt: skip
        return None
    decided_at = tags.get(f"{GATE_PREFIX}decided_at", "")
    reasons = [r for r in tags.get(f"{GATE_PREFIX}reasons", "").split("; ") if r]
    reasons.append(f"version {version} is already the champion: this gate promoted it at {decided_at}; "
                   "its record is kept")  # fmt: skip
    log.info("version %s: promoted by this gate before (%s); record kept", version, decided_at)
    evidence = gate_evidence(tags)
    margin = _json_or_none(tags.get(f"{GATE_PREFIX}margin"))
    champion = tags.get(f"{GATE_PREFIX}champion_version", "none")
    return {
        "model_name": settings.model_name,
        "candidate_version": version,
        "champion_version": None if champion in ("", "none") else champion,
        "snapshot_id": snapshot_id,
        "mode": "gate",
        "decision": "promoted",
        "verdict": tags.get(f"{GATE_PREFIX}verdict", "promoted"),
        "promoted": True,
        "alias_moved": False,  # not by this call
        "awaiting_approval": False,
        "gate_passed": True,
        "reasons": reasons,
        "metric": tags.get(f"{GATE_PREFIX}metric", settings.gate_metric),
        "margin": margin,
        "difference": evidence["difference"],
        "evidence": evidence,
        "holdout": _json_or_none(tags.get(f"{GATE_PREFIX}holdout")) or {},
        "candidate_metrics": _json_or_none(tags.get(f"{GATE_PREFIX}candidate_metrics")),
        "champion_metrics": _json_or_none(tags.get(f"{GATE_PREFIX}champion_metrics")),
        "decided_by": tags.get(f"{GATE_PREFIX}decided_by", ""),
        "decided_at": decided_at,
        "record_kept": True,
    }


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
    reasons, verdict = list(decision.reasons), decision.decision
    already_champion = champion_version == candidate_version
    move_alias = decision.promote and mode == "gate" and not already_champion
    awaiting = decision.promote and mode == APPROVAL and not already_champion
    outcome = verdict
    if already_champion:
        reasons.append(f"version {candidate_version} is already the champion; alias unchanged")
    elif mode == SHADOW:
        outcome = SHADOW
        reasons.append(f"shadow mode: the gate's verdict is {verdict}; champion alias not moved")
    elif awaiting:
        outcome = AWAITING_APPROVAL
        reasons.append("the gate passed, so the promotion waits for a person's approval in Airflow")
    elif verdict == gate.UNDECIDED:
        reasons.append(
            f"undecided: champion {('v' + champion_version) if champion_version else 'alias'} unchanged"
        )
    promoted = move_alias or (already_champion and decision.promote)

    decided_at = _now()
    tags = _decision_tags(
        evidence, decision, outcome=outcome, reasons=reasons, snapshot_id=snapshot_id, mode=mode,
        decided_by=decided_by, decided_at=decided_at,
    )  # fmt: skip
    if move_alias:  # "promoting" first, the alias, then "promoted" (_move_champion)
        tags[f"{GATE_PREFIX}decision"] = PROMOTING
    # The record first, as one write that replaces any earlier decision's (a version gated again):
    # readers see the old decision with its evidence or this one with its own, never a mix.
    registry.tag_version(settings, candidate_version, tags, replace_prefixes=RECORD_PREFIXES)
    if move_alias:  # ... the alias last
        _move_champion(
            settings,
            candidate_version,
            reason=f"gate: {'; '.join(decision.reasons)} (snapshot {snapshot_id}, by {decided_by or 'n/a'})",
        )
    gate_record = decision.as_dict()
    return {
        "model_name": settings.model_name,
        "candidate_version": candidate_version,
        "champion_version": champion_version,
        "snapshot_id": snapshot_id,
        "mode": mode,
        "decision": outcome,
        "verdict": verdict,
        "promoted": promoted,
        "alias_moved": move_alias,
        "awaiting_approval": awaiting,
        "gate_passed": decision.promote,
        "reasons": reasons,
        "metric": decision.metric,
        "margin": decision.margin,
        "difference": gate_record["difference"],
        "evidence": {
            **(gate_record["evidence"] or {}),
            "minimum": gate_record["minimum"],
            **evidence.bootstrap,
        },
        "holdout": evidence.holdout,
        "candidate_metrics": gate.plain_metrics(evidence.candidate_metrics),
        "champion_metrics": (
            gate.plain_metrics(evidence.champion_metrics) if evidence.champion_metrics is not None else None
        ),
        "decided_by": decided_by,
        "decided_at": decided_at,
    }


def _move_champion(settings: Settings, version: str, *, reason: str) -> None:
    """Move ``champion`` to ``version``, recorded ``promoting``, then ``promoted`` once it moved.

    A failure leaves the alias where it was (or, failing after it moved, finishes as promoted), and
    records ``promotion_failed`` with the error before raising :class:`PromotionError`; a kill
    leaves ``promoting``, which :func:`finish_interrupted` settles on the next call.
    """
    try:
        registry.set_champion(settings, version, reason=reason)
    except Exception as exc:
        current = _champion_version(settings)
        if current == version:  # the champion moved; only previous_champion did not
            log.warning("version %s is champion, but previous_champion was not set: %s", version, exc)
            _settle_promoting(settings, version)
            return
        error = f"{type(exc).__name__}: {exc}"
        registry.tag_version(settings, version, {
            f"{GATE_PREFIX}decision": PROMOTION_FAILED,
            f"{GATE_PREFIX}promotion_error": error,
        })  # fmt: skip
        raise PromotionError(
            f"version {version}: the champion alias did not move ({error}); champion is still "
            f"{('v' + current) if current else 'unset'}; recorded as {PROMOTION_FAILED}"
        ) from exc
    faults.point("promote.record")
    registry.tag_version(settings, version, {f"{GATE_PREFIX}decision": "promoted"})


def _champion_version(settings: Settings) -> str | None:
    current = registry.champion(settings)
    return str(current.version) if current is not None else None


def _settle_promoting(settings: Settings, version: str) -> None:
    """``version`` is champion: make ``previous_champion`` what it replaced, record ``promoted``."""
    tags = registry.version_tags(settings, version)
    replaced = tags.get("flywheel.champion.replaced", "none")
    if replaced not in ("none", version):
        previous = registry.get_alias(settings, registry.PREVIOUS_CHAMPION)
        if previous is None or str(previous.version) != replaced:
            registry.configure_mlflow(settings).set_registered_model_alias(
                settings.model_name, registry.PREVIOUS_CHAMPION, replaced
            )
    registry.tag_version(settings, version, {f"{GATE_PREFIX}decision": "promoted"})


def finish_interrupted(settings: Settings) -> dict[str, str]:
    """Undo tag writes a kill left unfinished (:func:`mlflywheel.registry.repair_unfinished_writes`;
    readers already read around them), then settle promotions a kill left ``promoting``:
    ``promoted`` if the alias moved (and
    ``previous_champion`` set to what it replaced), else ``promotion_failed``; remove a
    ``previous_champion`` that names the champion (a rollback killed before its last step). Returns
    ``{version: decision}`` of those settled. Run first by promotion, approval and rollback
    (one promoter at a time, as the DAGs run them)."""
    registry.repair_unfinished_writes(settings)  # a record write killed half-way: back to the old record
    settled: dict[str, str] = {}
    current = None
    for version in registry.list_versions(settings):
        if (version.tags or {}).get(f"{GATE_PREFIX}decision") != PROMOTING:
            continue
        current = current if current is not None else (_champion_version(settings) or "")
        name = str(version.version)
        if name == current:
            _settle_promoting(settings, name)
            settled[name] = "promoted"
        else:
            registry.tag_version(settings, name, {
                f"{GATE_PREFIX}decision": PROMOTION_FAILED,
                f"{GATE_PREFIX}promotion_error": "interrupted before the champion alias moved",
            })  # fmt: skip
            settled[name] = PROMOTION_FAILED
        log.warning("version %s: an interrupted promotion settled as %s", name, settled[name])
    previous = registry.get_alias(settings, registry.PREVIOUS_CHAMPION)
    if previous is not None and str(previous.version) == (_champion_version(settings) or ""):
        registry.delete_alias(settings, registry.PREVIOUS_CHAMPION)  # a rollback killed before its last step
        log.warning("previous_champion named the champion v%s: removed", previous.version)
    return settled


def _decision_tags(
    evidence: Evidence,
    decision: gate.GateDecision,
    *,
    outcome: str,
    reasons: list[str],
    snapshot_id: str,
    mode: str,
    decided_by: str,
    decided_at: str,
) -> dict[str, str]:
    """The tags that record a decision on the candidate version (the gate's own and the context's)."""
    tags = decision.as_tags(GATE_PREFIX, outcome=outcome, reasons=reasons)
    tags.update(
        {
            f"{GATE_PREFIX}gate_passed": str(decision.promote).lower(),
            f"{GATE_PREFIX}mode": mode,
            f"{GATE_PREFIX}snapshot_id": snapshot_id,
            f"{GATE_PREFIX}champion_version": evidence.champion_version or "none",
            f"{GATE_PREFIX}decided_by": decided_by,
            f"{GATE_PREFIX}decided_at": decided_at,
        }
    )
    if evidence.holdout:
        tags[f"{GATE_PREFIX}holdout"] = json.dumps(evidence.holdout, sort_keys=True)
        tags[f"{GATE_PREFIX}holdout_days"] = json.dumps(
            [d["day"] for d in evidence.holdout.get("extra_days", [])]
        )
    if evidence.bootstrap:
        tags[f"{GATE_PREFIX}bootstrap"] = json.dumps(evidence.bootstrap, sort_keys=True)
    return tags


def approval_request(result: dict[str, Any], *, cockpit_url: str = "") -> dict[str, str]:
    """Subject and Markdown body of the approval request for a result of :func:`record_and_move`.

    The body carries the gate's evidence, so the approver decides on what the gate saw.
    """
    candidate, champion = result["candidate_version"], result.get("champion_version")
    metric = result.get("metric", "pr_auc")
    evidence = result.get("evidence") or {}

    def figure(metrics: dict[str, Any] | None, name: str) -> str:
        value = (metrics or {}).get(name)
        return f"{value:.4f}" if isinstance(value, int | float) else "n/a"

    rows = [
        "| metric | candidate | champion |",
        "| --- | --- | --- |",
        *(
            f"| {name} | {figure(result.get('candidate_metrics'), name)} | "
            f"{figure(result.get('champion_metrics'), name)} |"
            for name in ("pr_auc", "roc_auc", "log_loss")
            if name in (result.get("candidate_metrics") or {})
        ),
    ]
    low, high = evidence.get("interval") or (None, None)
    interval = (
        f"{evidence.get('confidence', 0.9):.0%} interval of the difference: [{low:+.4f}, {high:+.4f}]"
        if isinstance(low, int | float) and isinstance(high, int | float)
        else "no interval recorded"
    )
    body = [
        f"**{result['model_name']} v{candidate}** passed the promotion gate against "
        + (f"champion **v{champion}**" if champion else "no champion (first model)")
        + f" on the same holdout (snapshot `{result.get('snapshot_id', '')}`).",
        "",
        *rows,
        "",
        (
            f"- {metric} difference: {result['difference']:+.4f} (margin {result.get('margin')}); {interval}"
            if isinstance(result.get("difference"), int | float)
            else f"- no champion to compare with: the floors decided ({interval})"
        ),
        f"- holdout: {evidence.get('rows', 'n/a')} rows, {evidence.get('positives', 'n/a')} positives",
        *(f"- {reason}" for reason in result.get("reasons", [])),
        "",
        ("**Approve** moves the `champion` alias to this version; **Reject**, or no answer before the "
        "timeout, promotes nothing. Your answer is recorded on the model version."),
    ]
    if cockpit_url:
        body.append(f"\n[This version in the Flywheel cockpit]({cockpit_url.rstrip('/')}/version/{candidate})")
    subject = f"Promote {result['model_name']} v{candidate} to champion?"
    return {"subject": subject, "body": "\n".join(body)}


def apply_approval(
    settings: Settings,
    *,
    candidate_version: str,
    answer: str,
    responded_by: str = "",
    responded_at: str = "",
    decided_by: str = "",
) -> dict[str, Any]:
    """Record a person's answer to a promotion that awaits approval; move the alias on approval.

    ``answer``: ``approved``, ``rejected`` or ``timed_out`` (no answer in time: nothing promoted).
    The record comes first and the alias last, as in :func:`record_and_move`. An approval of a
    candidate gated against a champion that is no longer the champion (a rollback or another
    promotion in between) moves nothing and raises :class:`PromotionError` after recording why.
    """
    if answer not in APPROVAL_ANSWERS:
        raise PromotionError(f"answer {answer!r} not in {APPROVAL_ANSWERS}")
    version = str(candidate_version)
    finish_interrupted(settings)
    try:
        tags = dict(registry.get_version(settings, version).tags or {})
    except registry.RegistryError as exc:
        raise PromotionError(str(exc)) from exc
    if tags.get(f"{GATE_PREFIX}decision") != AWAITING_APPROVAL:
        raise PromotionError(
            f"version {version} is not awaiting approval (decision: "
            f"{tags.get(f'{GATE_PREFIX}decision', 'never gated')}): nothing to apply"
        )
    gated_against = tags.get(f"{GATE_PREFIX}champion_version", "none")
    current = registry.champion(settings)
    current_version = str(current.version) if current is not None else "none"
    who = responded_by or ("nobody (response timeout)" if answer == "timed_out" else "unknown")
    at = responded_at or _now()
    reasons = [r for r in tags.get(f"{GATE_PREFIX}reasons", "").split("; ") if r]
    stale = answer == "approved" and current_version != gated_against
    if stale:
        outcome = "superseded"
        reasons.append(f"approved by {who}, but the champion is v{current_version} now, not the "
                       f"v{gated_against} the gate compared against: nothing promoted; train again")  # fmt: skip
    elif answer == "approved":
        outcome = "promoted"
        reasons.append(f"approved by {who} at {at}")
    else:
        outcome = "rejected"
        reasons.append(f"rejected by {who} at {at}" if answer == "rejected" else
                       f"no answer before the approval timeout ({at}): nothing promoted")  # fmt: skip
    registry.tag_version(
        settings,
        version,
        {
            f"{GATE_PREFIX}decision": PROMOTING if outcome == "promoted" else outcome,
            f"{GATE_PREFIX}reasons": "; ".join(reasons),
            f"{APPROVAL_PREFIX}answer": answer,
            f"{APPROVAL_PREFIX}by": who,
            f"{APPROVAL_PREFIX}at": at,
            f"{APPROVAL_PREFIX}recorded_by": decided_by,
        },
    )  # the record first ...
    if stale:
        raise PromotionError(reasons[-1])
    if outcome == "promoted":  # ... the alias last
        _move_champion(settings, version, reason=f"approved by {who} at {at} (gate passed: "
                       f"{tags.get(f'{GATE_PREFIX}verdict', 'promoted')})")  # fmt: skip
    return {
        "model_name": settings.model_name,
        "candidate_version": version,
        "decision": outcome,
        "answer": answer,
        "responded_by": who,
        "responded_at": at,
        "promoted": outcome == "promoted",
        "reasons": reasons,
    }


def regate_undecided(settings: Settings, *, decided_by: str = "") -> dict[str, Any] | None:
    """Gate again the newest candidate left ``undecided``, once validated days arrived after it.

    An undecided candidate had too little evidence, or a difference within noise; the days that
    arrived since its last decision extend its holdout (up to ``gate_holdout_extra_days`` after its
    snapshot), so the same gate may now decide. The newest undecided version newer than the
    champion (gated in ``gate`` mode), only when more later days exist than its last decision
    used; else None.
    """
    from mlflywheel.lake import keys, lake_from_settings

    current = registry.champion(settings)
    newer_than = int(current.version) if current is not None else 0
    undecided = [
        v for v in registry.list_versions(settings)
        if int(v.version) > newer_than
        and (v.tags or {}).get(f"{GATE_PREFIX}decision") == "undecided"
        and (v.tags or {}).get(f"{GATE_PREFIX}mode") == "gate"
    ]  # fmt: skip
    if not undecided:
        return None
    version = undecided[-1]  # the newest: it saw the most data
    tags = dict(version.tags or {})
    snapshot_id = tags.get(f"{GATE_PREFIX}snapshot_id", "")
    lake = lake_from_settings(settings)
    manifest_key = keys.snapshot_key(settings.dataset, snapshot_id)
    if not snapshot_id or not lake.exists(manifest_key):
        log.warning("version %s: its snapshot %r is gone; not gated again", version.version, snapshot_id)
        return None
    end_day = dt.date.fromisoformat(lake.get_json(manifest_key)["end_day"])
    last_day = end_day + dt.timedelta(days=settings.gate_holdout_extra_days)
    available = [d for d in lake.list_partitions(keys.VALIDATED, settings.dataset) if end_day < d <= last_day]
    used = _json_or_none(tags.get(f"{GATE_PREFIX}holdout_days")) or []
    if len(available) <= len(used):
        return None
    log.info("version %s was undecided on %d later day(s); %d exist now: gating it again",
             version.version, len(used), len(available))  # fmt: skip
    return evaluate_and_promote(
        settings, candidate_version=str(version.version), snapshot_id=snapshot_id, mode="gate",
        decided_by=decided_by,
    )  # fmt: skip


def rollback(
    settings: Settings, *, reason: str, decided_by: str = "", to_version: str | None = None
) -> dict[str, Any]:
    """One step back: ``champion`` <- ``previous_champion``; the ``previous_champion``
    alias is then removed, so a second rollback fails instead of flip-flopping.

    ``to_version``: back to that version instead, which must have passed the gate before
    (promoted by it, or passed it in shadow mode) and not be the champion now.
    """
    finish_interrupted(settings)  # a promotion killed half-way: settle it, then go back from there
    current = registry.champion(settings)
    demoted = str(current.version) if current is not None else None
    if to_version is None:
        previous = registry.previous_champion(settings)  # never the champion itself
        if previous is None:
            raise PromotionError(f"{settings.model_name} has no previous_champion to roll back to")
        restored = str(previous.version)
    else:
        restored = _rollback_target(settings, str(to_version), demoted)
    if restored == demoted:
        raise PromotionError(f"version {restored} is the champion already: nothing to roll back")
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


def _rollback_target(settings: Settings, version: str, champion: str | None) -> str:
    """``version`` if a rollback may restore it, else a :class:`PromotionError` saying why."""
    try:
        tags = dict(registry.get_version(settings, version).tags or {})
    except registry.RegistryError as exc:
        raise PromotionError(str(exc)) from exc
    passed = tags.get(f"{GATE_PREFIX}decision") == "promoted" or (
        tags.get(f"{GATE_PREFIX}gate_passed") == "true"
        and tags.get(f"{APPROVAL_PREFIX}answer") not in ("rejected", "timed_out")  # not refused by a person
    )
    if not passed:
        decision = tags.get(f"{GATE_PREFIX}decision", "never gated")
        raise PromotionError(f"version {version} never passed the gate ({decision}): a rollback restores only "
                             "a version that did")  # fmt: skip
    if version == champion:
        raise PromotionError(f"version {version} is the champion already: nothing to roll back")
    return version


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
                    # Records written before the gate had a verdict of its own: the decision was it.
                    "verdict": tags.get(f"{GATE_PREFIX}verdict", tags[f"{GATE_PREFIX}decision"]),
                    "gate_passed": tags.get(f"{GATE_PREFIX}gate_passed", "") == "true",
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
                    "evidence": gate_evidence(tags),
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


def gate_evidence(tags: dict[str, str]) -> dict[str, Any]:
    """The evidence a gate decision was taken on, from its tags (empty for older records)."""

    def number(name: str) -> float | None:
        text = tags.get(f"{GATE_PREFIX}{name}")
        try:
            return float(text) if text not in (None, "") else None
        except ValueError:
            return None

    low, high = number("interval_low"), number("interval_high")
    rows, positives = number("holdout_rows"), number("holdout_positives")
    return {
        "rows": int(rows) if rows is not None else None,
        "positives": int(positives) if positives is not None else None,
        "difference": number("difference"),
        "interval": [low, high] if low is not None and high is not None else None,
        "confidence": number("confidence"),
        "holdout_days": _json_or_none(tags.get(f"{GATE_PREFIX}holdout_days")) or [],
    }


def _json_or_none(text: str | None) -> Any:
    if not text or text == "none":
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text
