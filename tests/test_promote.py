"""Promotion: the gate against the champion on one evaluation holdout, with its evidence; shadow
mode, rollback, history.

Two versions are trained once (in process, 1-2 epochs on a few hundred rows): ``good`` on labels
that follow the features, ``noise`` on labels that do not. The good snapshot's holdout is small
(about 135 rows, below the default minimum of 200); two validated days after its end day extend the
evaluation holdout to about 735 rows. Each test resets the aliases it depends on.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflywheel import promote, registry
from mlflywheel.datasets import get_spec
from mlflywheel.devstack.synthetic import write_validated
from mlflywheel.lake import LocalLake
from mlflywheel.settings import Settings
from mlflywheel.training.entrypoint import parse_args, run_training
from mlflywheel.training.snapshot import build_snapshot, load_snapshot

SPEC = get_spec("transactions")
GOOD_END = dt.date(2026, 11, 10)
NOISE_END = dt.date(2026, 11, 3)
EXTRA_DAYS = [GOOD_END + dt.timedelta(days=1), GOOD_END + dt.timedelta(days=2)]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    root = tmp_path_factory.mktemp("promote")
    env = {
        "FLYWHEEL_DATA_DIR": str(root),
        "FLYWHEEL_LAKE_URI": (root / "lake").as_uri(),
        "FLYWHEEL_MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        "FLYWHEEL_MLFLOW_ARTIFACT_ROOT": str(root / "artifacts"),
        "FLYWHEEL_REFERENCE_SAMPLE_SIZE": "50",
    }
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        lake = LocalLake(Path(root) / "lake")
        write_validated(lake, SPEC, [GOOD_END - dt.timedelta(days=i) for i in range(3)], 300, seed=21)
        write_validated(
            lake, SPEC, [NOISE_END - dt.timedelta(days=i) for i in range(3)], 200, seed=22, signal=0.0
        )
        good_snap = build_snapshot(lake, SPEC, end_day=GOOD_END, window_days=3, min_rows=100)["snapshot_id"]
        noise_snap = build_snapshot(lake, SPEC, end_day=NOISE_END, window_days=3, min_rows=100)["snapshot_id"]
        # Days after the good snapshot's end, landed later: evidence for the gate, never trained on.
        write_validated(lake, SPEC, EXTRA_DAYS, 300, seed=23)
        good = run_training(parse_args(["--snapshot-id", good_snap, "--epochs", "2", "--batch-size", "64"]))
        noise = run_training(parse_args(["--snapshot-id", noise_snap, "--epochs", "1", "--batch-size", "64"]))
        yield {
            "settings": Settings.from_env(),
            "lake": lake,
            "snapshot": good_snap,
            "noise_snapshot": noise_snap,
            "good": good["version"],
            "noise": noise["version"],
        }


def reset_aliases(settings: Settings) -> None:
    for alias in (registry.CHAMPION, registry.PREVIOUS_CHAMPION):
        registry.delete_alias(settings, alias)


def tags_of(settings: Settings, version: str) -> dict[str, str]:
    return dict(registry.get_version(settings, version).tags)


def split_rows(world: dict, snapshot_key: str, split: str) -> int:
    return load_snapshot(world["lake"], world[snapshot_key])[0]["splits"][split]["rows"]


def test_first_version_promoted_on_the_extended_holdout(world: dict) -> None:
    settings = world["settings"]
    reset_aliases(settings)
    result = promote.evaluate_and_promote(
        settings, candidate_version=world["good"], snapshot_id=world["snapshot"], decided_by="run-1"
    )
    assert result["promoted"] and result["decision"] == "promoted" and result["alias_moved"]
    assert result["verdict"] == "promoted"
    assert result["champion_version"] is None and result["champion_metrics"] is None
    assert result["candidate_metrics"]["pr_auc"] >= settings.floor_pr_auc
    assert str(registry.champion(settings).version) == world["good"]
    assert registry.previous_champion(settings) is None

    # The holdout: the snapshot's own plus the two later days, recorded as such.
    holdout = result["holdout"]
    assert holdout["snapshot_holdout_rows"] == split_rows(world, "snapshot", "holdout")
    assert [d["day"] for d in holdout["extra_days"]] == [d.isoformat() for d in EXTRA_DAYS]
    assert all(d["rows"] == 300 and d["version"] for d in holdout["extra_days"])
    assert holdout["rows"] == holdout["snapshot_holdout_rows"] + 600 == result["evidence"]["rows"]
    assert holdout["rows"] == result["candidate_metrics"]["rows"]
    assert "never trained on" in holdout["note"]
    assert result["evidence"]["interval"] is None  # no champion, no difference

    tags = tags_of(settings, world["good"])
    assert tags["flywheel.gate.decision"] == "promoted" and tags["flywheel.gate.verdict"] == "promoted"
    assert tags["flywheel.gate.decided_by"] == "run-1"
    assert tags["flywheel.gate.snapshot_id"] == world["snapshot"]
    assert "no champion" in tags["flywheel.gate.reasons"]
    assert int(tags["flywheel.gate.holdout_rows"]) == holdout["rows"]
    assert int(tags["flywheel.gate.holdout_positives"]) == holdout["positives"] >= 10
    assert json.loads(tags["flywheel.gate.holdout_days"]) == [d.isoformat() for d in EXTRA_DAYS]
    assert json.loads(tags["flywheel.gate.holdout"])["note"] == holdout["note"]
    assert tags["flywheel.gate.min_holdout_rows"] == str(settings.gate_min_holdout_rows)
    assert json.loads(tags["flywheel.gate.candidate_metrics"])["pr_auc"] == pytest.approx(
        result["candidate_metrics"]["pr_auc"]
    )


def test_tiny_holdout_is_undecided_and_moves_nothing(world: dict) -> None:
    settings = Settings.from_env(gate_holdout_extra_days=0)
    reset_aliases(settings)
    first = promote.evaluate_and_promote(
        settings, candidate_version=world["good"], snapshot_id=world["snapshot"]
    )
    assert (
        first["holdout"]["rows"] == split_rows(world, "snapshot", "holdout") < settings.gate_min_holdout_rows
    )
    assert first["holdout"]["extra_days"] == []
    assert first["decision"] == first["verdict"] == "undecided"
    assert not first["promoted"] and not first["alias_moved"] and not first["gate_passed"]
    assert any("too little evidence" in r and "rows" in r for r in first["reasons"])
    assert registry.champion(settings) is None  # not even a first model on noise-sized evidence

    registry.set_champion(settings, world["noise"], reason="test setup")
    against = promote.evaluate_and_promote(
        settings, candidate_version=world["good"], snapshot_id=world["snapshot"]
    )
    assert against["decision"] == "undecided" and not against["alias_moved"]
    assert against["champion_metrics"] is not None  # both scored: the evidence is recorded either way
    assert str(registry.champion(settings).version) == world["noise"]
    assert tags_of(settings, world["good"])["flywheel.gate.decision"] == "undecided"


def test_clearly_better_candidate_promoted_on_its_interval(world: dict) -> None:
    settings = world["settings"]
    reset_aliases(settings)
    registry.set_champion(settings, world["noise"], reason="test setup")
    result = promote.evaluate_and_promote(
        settings, candidate_version=world["good"], snapshot_id=world["snapshot"]
    )
    assert result["decision"] == "promoted" and result["alias_moved"]
    low, high = result["evidence"]["interval"]
    assert 0 < low <= result["difference"] <= high
    assert result["difference"] >= settings.gate_margin
    assert result["evidence"]["confidence"] == settings.gate_confidence
    assert result["evidence"]["valid_samples"] == settings.gate_bootstrap_samples
    assert str(registry.champion(settings).version) == world["good"]
    assert str(registry.previous_champion(settings).version) == world["noise"]
    tags = tags_of(settings, world["good"])
    assert float(tags["flywheel.gate.interval_low"]) == pytest.approx(low, abs=1e-4)
    assert float(tags["flywheel.gate.interval_high"]) == pytest.approx(high, abs=1e-4)
    assert "lies above 0" in tags["flywheel.gate.reasons"]


def test_worse_candidate_rejected_with_reasons_as_tags(world: dict) -> None:
    settings = world["settings"]
    reset_aliases(settings)
    registry.set_champion(settings, world["good"], reason="test setup")
    # Floors at zero: the champion comparison alone must reject the noise model.
    lenient = Settings.from_env(floor_pr_auc=0.0, floor_roc_auc=0.0)
    result = promote.evaluate_and_promote(
        lenient, candidate_version=world["noise"], snapshot_id=world["snapshot"], decided_by="run-2"
    )
    assert not result["promoted"] and result["decision"] == "rejected" and not result["gate_passed"]
    assert result["champion_version"] == world["good"]
    assert result["candidate_metrics"]["pr_auc"] < result["champion_metrics"]["pr_auc"]
    assert result["evidence"]["interval"][1] < lenient.gate_margin
    assert str(registry.champion(settings).version) == world["good"]
    tags = tags_of(settings, world["noise"])
    assert tags["flywheel.gate.decision"] == "rejected"
    assert "lies below the margin" in tags["flywheel.gate.reasons"]
    assert tags["flywheel.gate.champion_version"] == world["good"]
    assert json.loads(tags["flywheel.gate.champion_metrics"])["pr_auc"] == pytest.approx(
        result["champion_metrics"]["pr_auc"]
    )

    # With the default floors the noise model also fails the ROC-AUC floor: its own reason.
    floors = promote.evaluate_and_promote(
        settings, candidate_version=world["noise"], snapshot_id=world["snapshot"]
    )
    assert not floors["promoted"]
    assert any("below the floor" in r for r in floors["reasons"])
    assert str(registry.champion(settings).version) == world["good"]


def test_rows_the_champion_trained_on_are_left_out(world: dict) -> None:
    settings = Settings.from_env(floor_pr_auc=0.0, floor_roc_auc=0.0)
    reset_aliases(settings)
    registry.set_champion(settings, world["good"], reason="test setup")
    # The noise snapshot ends 2026-11-03; a week of extra days reaches into the good model's window.
    result = promote.evaluate_and_promote(
        settings, candidate_version=world["noise"], snapshot_id=world["noise_snapshot"]
    )
    holdout = result["holdout"]
    assert [d["day"] for d in holdout["extra_days"]] == ["2026-11-08", "2026-11-09", "2026-11-10"]
    seen = split_rows(world, "snapshot", "train") + split_rows(world, "snapshot", "validation")
    assert holdout["champion_trained_rows_left_out"] == seen
    assert holdout["rows"] == split_rows(world, "noise_snapshot", "holdout") + split_rows(
        world, "snapshot", "holdout"
    )
    assert (
        holdout["champion_trained_span"][1]
        == load_snapshot(world["lake"], world["snapshot"])[0]["boundaries"]["holdout_start"]
    )


def test_shadow_mode_records_the_gates_true_verdict(world: dict) -> None:
    settings = world["settings"]
    reset_aliases(settings)
    result = promote.evaluate_and_promote(
        settings, candidate_version=world["good"], snapshot_id=world["snapshot"], mode="shadow"
    )
    assert result["decision"] == "shadow" and result["verdict"] == "promoted"
    assert result["gate_passed"] and not result["promoted"] and not result["alias_moved"]
    assert any("shadow mode: the gate's verdict is promoted" in r for r in result["reasons"])
    assert registry.champion(settings) is None
    tags = tags_of(settings, world["good"])
    assert tags["flywheel.gate.mode"] == "shadow" and tags["flywheel.gate.decision"] == "shadow"
    assert tags["flywheel.gate.verdict"] == "promoted" and tags["flywheel.gate.gate_passed"] == "true"

    registry.set_champion(settings, world["noise"], reason="test setup")
    better = promote.evaluate_and_promote(
        settings, candidate_version=world["good"], snapshot_id=world["snapshot"], mode="shadow"
    )
    assert better["verdict"] == "promoted" and better["gate_passed"] and not better["promoted"]
    assert str(registry.champion(settings).version) == world["noise"]

    reset_aliases(settings)
    registry.set_champion(settings, world["good"], reason="test setup")
    lenient = Settings.from_env(floor_pr_auc=0.0, floor_roc_auc=0.0)
    worse = promote.evaluate_and_promote(
        lenient, candidate_version=world["noise"], snapshot_id=world["snapshot"], mode="shadow"
    )
    assert worse["decision"] == "shadow" and worse["verdict"] == "rejected" and not worse["gate_passed"]
    assert tags_of(settings, world["noise"])["flywheel.gate.gate_passed"] == "false"
    assert str(registry.champion(settings).version) == world["good"]
    with pytest.raises(promote.PromotionError, match="mode"):
        promote.evaluate_and_promote(
            settings, candidate_version=world["good"], snapshot_id=world["snapshot"], mode="yolo"
        )


def test_candidate_already_champion_is_a_no_op(world: dict) -> None:
    settings = world["settings"]
    reset_aliases(settings)
    registry.set_champion(settings, world["good"], reason="test setup")
    result = promote.evaluate_and_promote(
        settings, candidate_version=world["good"], snapshot_id=world["snapshot"]
    )
    assert result["promoted"] and not result["alias_moved"]
    assert any("already the champion" in r for r in result["reasons"])
    assert registry.previous_champion(settings) is None


def test_a_retry_of_a_gate_that_promoted_keeps_its_record(world: dict) -> None:
    """The train task run again after its promotion completed (or retried after a kill once the
    alias had moved): gating again would compare the champion with itself and overwrite the
    comparison with the champion it replaced; the recorded decision is kept instead."""
    settings = world["settings"]
    reset_aliases(settings)
    registry.set_champion(settings, world["noise"], reason="test setup")
    first = promote.evaluate_and_promote(
        settings, candidate_version=world["good"], snapshot_id=world["snapshot"], decided_by="try-1"
    )
    assert first["decision"] == "promoted" and first["alias_moved"]
    recorded = {k: v for k, v in tags_of(settings, world["good"]).items() if k.startswith("flywheel.gate.")}

    again = promote.evaluate_and_promote(
        settings, candidate_version=world["good"], snapshot_id=world["snapshot"], decided_by="try-2"
    )
    assert again["promoted"] and again["decision"] == "promoted" and again["record_kept"]
    assert not again["alias_moved"] and again["champion_version"] == world["noise"]
    assert again["evidence"]["interval"] == pytest.approx(first["evidence"]["interval"], abs=1e-4)
    assert again["candidate_metrics"]["pr_auc"] == pytest.approx(first["candidate_metrics"]["pr_auc"])
    assert any("already the champion" in r and "record is kept" in r for r in again["reasons"])
    kept = {k: v for k, v in tags_of(settings, world["good"]).items() if k.startswith("flywheel.gate.")}
    assert kept == recorded  # still the comparison with v{noise}, decided by try-1
    assert str(registry.previous_champion(settings).version) == world["noise"]
    reset_aliases(settings)


def test_an_undecided_candidate_is_gated_again_once_later_days_exist(world: dict) -> None:
    no_later_days = Settings.from_env(gate_holdout_extra_days=0)
    reset_aliases(no_later_days)
    undecided = promote.evaluate_and_promote(
        no_later_days, candidate_version=world["good"], snapshot_id=world["snapshot"]
    )
    assert undecided["decision"] == "undecided"
    assert promote.regate_undecided(no_later_days) is None  # nothing new to decide on

    settings = Settings.from_env()  # the later days count now
    again = promote.regate_undecided(settings, decided_by="test:regate")
    assert again is not None and again["candidate_version"] == world["good"]
    assert again["decision"] == "promoted" and again["holdout"]["extra_days"]
    assert str(registry.champion(settings).version) == world["good"]
    assert tags_of(settings, world["good"])["flywheel.gate.decided_by"] == "test:regate"
    assert promote.regate_undecided(settings) is None  # decided: nothing left to gate again
    reset_aliases(settings)


def test_rollback_swaps_back_one_step(world: dict) -> None:
    settings = world["settings"]
    reset_aliases(settings)
    with pytest.raises(promote.PromotionError, match="no previous_champion"):
        promote.rollback(settings, reason="nothing to roll back")
    registry.set_champion(settings, world["good"], reason="first")
    moved = registry.set_champion(settings, world["noise"], reason="second")
    assert moved == {"champion": world["noise"], "previous_champion": world["good"]}

    result = promote.rollback(settings, reason="drift alarm", decided_by="rollback-run")
    assert result["champion"] == world["good"] and result["rolled_back"] == world["noise"]
    assert str(registry.champion(settings).version) == world["good"]
    assert registry.previous_champion(settings) is None  # one step only
    restored = tags_of(settings, world["good"])
    assert restored["flywheel.rollback.reason"] == "drift alarm"
    assert restored["flywheel.rollback.restored_from"] == world["noise"]
    assert tags_of(settings, world["noise"])["flywheel.rollback.demoted_reason"] == "drift alarm"
    with pytest.raises(promote.PromotionError):
        promote.rollback(settings, reason="again")

    history = promote.champion_history(settings)
    events = {(e["event"], e["version"]) for e in history}
    assert ("rollback", world["good"]) in events
    assert ("gate", world["noise"]) in events
    assert [e["at"] for e in history] == sorted(e["at"] for e in history)
    assert any(e["is_champion"] for e in history if e["version"] == world["good"])
    gates = [e for e in history if e["event"] == "gate"]
    assert {"verdict", "gate_passed", "evidence"} <= set(gates[-1])
    assert all(e["evidence"]["rows"] for e in gates)  # every evaluation recorded its evidence


def test_rollback_to_a_chosen_version_that_passed_the_gate(world: dict) -> None:
    settings = world["settings"]
    reset_aliases(settings)
    decision = f"{promote.GATE_PREFIX}decision"
    saved = {v: tags_of(settings, v).get(decision) for v in (world["good"], world["noise"])}
    registry.tag_version(settings, world["good"], {decision: "promoted"})
    registry.tag_version(settings, world["noise"], {decision: "rejected"})
    registry.set_champion(settings, world["noise"], reason="say an operator forced it")
    try:
        with pytest.raises(promote.PromotionError, match="never passed the gate \\(rejected\\)"):
            promote.rollback(settings, reason="try", to_version=world["noise"])  # nor is it a target
        with pytest.raises(promote.PromotionError, match="no version 999"):
            promote.rollback(settings, reason="try", to_version="999")
        assert str(registry.champion(settings).version) == world["noise"]  # refused: nothing moved

        result = promote.rollback(settings, reason="bad week", decided_by="op", to_version=world["good"])
        assert result["champion"] == world["good"] and result["rolled_back"] == world["noise"]
        assert str(registry.champion(settings).version) == world["good"]
        assert tags_of(settings, world["good"])["flywheel.rollback.reason"] == "bad week"
        with pytest.raises(promote.PromotionError, match="champion already"):
            promote.rollback(settings, reason="again", to_version=world["good"])
    finally:
        for version, value in saved.items():
            if value is not None:
                registry.tag_version(settings, version, {decision: value})
        reset_aliases(settings)



# --- promotion by approval ---------------------------------------------------------------------


def clear_approval(settings: Settings, version: str) -> None:
    registry.tag_version(settings, version, {f"{promote.APPROVAL_PREFIX}answer": ""})


def test_approval_mode_asks_when_the_gate_passes_and_moves_nothing_yet(world: dict) -> None:
    settings = world["settings"]
    reset_aliases(settings)
    result = promote.evaluate_and_promote(
        settings, candidate_version=world["good"], snapshot_id=world["snapshot"], mode="approval"
    )
    assert result["decision"] == "awaiting_approval" and result["awaiting_approval"]
    assert result["gate_passed"] and result["verdict"] == "promoted" and not result["alias_moved"]
    assert registry.champion(settings) is None
    tags = tags_of(settings, world["good"])
    assert tags["flywheel.gate.decision"] == "awaiting_approval" and tags["flywheel.gate.mode"] == "approval"
    request = promote.approval_request(result, cockpit_url="/flywheel")
    assert request["subject"] == f"Promote {settings.model_name} v{world['good']} to champion?"
    body = request["body"]
    assert "no champion (first model)" in body and f"snapshot `{world['snapshot']}`" in body
    assert f"| pr_auc | {result['candidate_metrics']['pr_auc']:.4f} | n/a |" in body
    assert f"holdout: {result['evidence']['rows']} rows" in body
    assert f"](/flywheel/version/{world['good']})" in body


def test_an_approval_records_who_then_promotes(world: dict) -> None:
    settings = world["settings"]
    reset_aliases(settings)
    promote.evaluate_and_promote(
        settings, candidate_version=world["good"], snapshot_id=world["snapshot"], mode="approval"
    )
    try:
        done = promote.apply_approval(settings, candidate_version=world["good"], answer="approved",
                                      responded_by="ada (ada)", responded_at="2026-11-28T10:00:00+00:00",
                                      decided_by="airflow:train/r1")  # fmt: skip
        assert done["promoted"] and done["decision"] == "promoted"
        assert str(registry.champion(settings).version) == world["good"]
        tags = tags_of(settings, world["good"])
        assert tags["flywheel.gate.decision"] == "promoted" and tags["flywheel.approval.answer"] == "approved"
        assert tags["flywheel.approval.by"] == "ada (ada)" and tags["flywheel.approval.at"].startswith("2026-11-28")
        assert "approved by ada (ada) at 2026-11-28T10:00:00+00:00" in tags["flywheel.gate.reasons"]
        assert "the gate passed" in tags["flywheel.gate.reasons"]  # the gate's reasons stay beside it
        with pytest.raises(promote.PromotionError, match="not awaiting approval \\(decision: promoted\\)"):
            promote.apply_approval(settings, candidate_version=world["good"], answer="rejected")
    finally:
        clear_approval(settings, world["good"])
        reset_aliases(settings)


def test_a_gate_that_fails_never_asks(world: dict) -> None:
    settings = world["settings"]
    reset_aliases(settings)
    registry.set_champion(settings, world["good"], reason="test setup")
    try:
        result = promote.evaluate_and_promote(
            settings, candidate_version=world["noise"], snapshot_id=world["snapshot"], mode="approval"
        )
        assert result["decision"] in ("rejected", "undecided") and not result["awaiting_approval"]
        assert str(registry.champion(settings).version) == world["good"]
    finally:
        reset_aliases(settings)


def test_a_rejection_or_no_answer_promotes_nothing(world: dict) -> None:
    settings = world["settings"]
    for answer, said in (("rejected", "rejected by bob at"), ("timed_out", "no answer before the approval timeout")):
        reset_aliases(settings)
        promote.evaluate_and_promote(
            settings, candidate_version=world["good"], snapshot_id=world["snapshot"], mode="approval"
        )
        who = "bob" if answer == "rejected" else ""
        done = promote.apply_approval(settings, candidate_version=world["good"], answer=answer, responded_by=who)
        assert not done["promoted"] and done["decision"] == "rejected"
        assert registry.champion(settings) is None
        tags = tags_of(settings, world["good"])
        assert tags["flywheel.gate.decision"] == "rejected" and tags["flywheel.approval.answer"] == answer
        assert said in tags["flywheel.gate.reasons"]
    # A version a person refused is no rollback target, though it passed the gate.
    registry.set_champion(settings, world["noise"], reason="test setup")
    try:
        with pytest.raises(promote.PromotionError, match="never passed the gate"):
            promote.rollback(settings, reason="try", to_version=world["good"])
    finally:
        clear_approval(settings, world["good"])
        reset_aliases(settings)


def test_an_approval_after_the_champion_changed_promotes_nothing(world: dict) -> None:
    settings = world["settings"]
    reset_aliases(settings)
    promote.evaluate_and_promote(
        settings, candidate_version=world["good"], snapshot_id=world["snapshot"], mode="approval"
    )
    registry.set_champion(settings, world["noise"], reason="another promotion in between")
    try:
        with pytest.raises(promote.PromotionError, match=f"the champion is v{world['noise']} now"):
            promote.apply_approval(settings, candidate_version=world["good"], answer="approved", responded_by="ada")
        assert str(registry.champion(settings).version) == world["noise"]
        assert tags_of(settings, world["good"])["flywheel.gate.decision"] == "superseded"
        with pytest.raises(promote.PromotionError, match="answer 'maybe'"):
            promote.apply_approval(settings, candidate_version=world["good"], answer="maybe")
    finally:
        clear_approval(settings, world["good"])
        reset_aliases(settings)

def _fail_champion_moves(monkeypatch: pytest.MonkeyPatch) -> None:
    """MLflow refuses every move of the ``champion`` alias (the server went away mid-promotion)."""
    from mlflow.tracking import MlflowClient

    real = MlflowClient.set_registered_model_alias

    def set_alias(self, name, alias, version):
        if alias == registry.CHAMPION:
            raise RuntimeError("MLflow is down")
        return real(self, name, alias, version)

    monkeypatch.setattr(MlflowClient, "set_registered_model_alias", set_alias)


def test_a_failed_alias_move_says_so_and_rollback_refuses_a_no_op(world: dict, monkeypatch) -> None:
    """Issue 9, item 7: "promoted" only once the alias moved; previous_champion never the champion."""
    settings = world["settings"]
    reset_aliases(settings)
    registry.set_champion(settings, world["noise"], reason="test setup")
    with monkeypatch.context() as mp:
        _fail_champion_moves(mp)
        with pytest.raises(promote.PromotionError, match="MLflow is down"):
            promote.evaluate_and_promote(settings, candidate_version=world["good"], snapshot_id=world["snapshot"])
    tags = tags_of(settings, world["good"])
    assert tags["flywheel.gate.decision"] == "promotion_failed"
    assert tags["flywheel.gate.verdict"] == "promoted" and tags["flywheel.gate.gate_passed"] == "true"
    assert "MLflow is down" in tags["flywheel.gate.promotion_error"]
    assert str(registry.champion(settings).version) == world["noise"]
    previous = registry.previous_champion(settings)
    assert previous is None or str(previous.version) != world["noise"]
    with pytest.raises(promote.PromotionError, match="no previous_champion"):
        promote.rollback(settings, reason="after the failure")
    assert str(registry.champion(settings).version) == world["noise"]
    # The next gate (MLflow back) promotes it for real.
    result = promote.evaluate_and_promote(settings, candidate_version=world["good"], snapshot_id=world["snapshot"])
    assert result["decision"] == "promoted" and result["alias_moved"]
    assert tags_of(settings, world["good"])["flywheel.gate.decision"] == "promoted"
    assert str(registry.previous_champion(settings).version) == world["noise"]


def test_an_interrupted_promotion_is_finished_by_the_next_call(world: dict) -> None:
    """A promotion killed after its alias moved, before it said so: rollback and the next gate
    finish the record first (a kill before the move is recorded as failed)."""
    settings = world["settings"]
    reset_aliases(settings)
    registry.set_champion(settings, world["noise"], reason="test setup")
    registry.tag_version(settings, world["good"], {"flywheel.gate.decision": "promoting",
                                                   "flywheel.gate.champion_version": world["noise"]})  # fmt: skip
    registry.tag_version(settings, world["good"], {"flywheel.champion.replaced": world["noise"]})
    from mlflow.tracking import MlflowClient

    MlflowClient(settings.mlflow_tracking_uri, settings.mlflow_tracking_uri).set_registered_model_alias(
        settings.model_name, registry.CHAMPION, world["good"]
    )  # the move happened; previous_champion was not set yet
    result = promote.rollback(settings, reason="drift")
    assert result["champion"] == world["noise"] and result["rolled_back"] == world["good"]
    assert tags_of(settings, world["good"])["flywheel.gate.decision"] == "promoted"

    registry.tag_version(settings, world["good"], {"flywheel.gate.decision": "promoting"})  # killed before the move
    assert promote.finish_interrupted(settings) == {world["good"]: "promotion_failed"}
    assert str(registry.champion(settings).version) == world["noise"]


def test_previous_champion_equal_to_the_champion_reads_as_none(world: dict) -> None:
    settings = world["settings"]
    reset_aliases(settings)
    registry.set_champion(settings, world["noise"], reason="test setup")
    from mlflow.tracking import MlflowClient

    MlflowClient(settings.mlflow_tracking_uri, settings.mlflow_tracking_uri).set_registered_model_alias(
        settings.model_name, registry.PREVIOUS_CHAMPION, world["noise"]
    )  # what a failed move used to leave
    assert registry.previous_champion(settings) is None
    with pytest.raises(promote.PromotionError, match="no previous_champion"):
        promote.rollback(settings, reason="no-op")
