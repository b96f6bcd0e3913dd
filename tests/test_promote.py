"""Promotion: the gate against the champion on one holdout, shadow mode, rollback, history.

Two versions are trained once (in process, 1-2 epochs on a few hundred rows): ``good`` on
labels that follow the features, ``noise`` on labels that do not. Each test resets the
aliases it depends on.
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
from mlflywheel.training.snapshot import build_snapshot

SPEC = get_spec("transactions")
GOOD_END = dt.date(2026, 11, 10)
NOISE_END = dt.date(2026, 11, 3)


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
        write_validated(lake, SPEC, [GOOD_END - dt.timedelta(days=i) for i in range(3)], 200, seed=21)
        write_validated(
            lake, SPEC, [NOISE_END - dt.timedelta(days=i) for i in range(3)], 200, seed=22, signal=0.0
        )
        good_snap = build_snapshot(lake, SPEC, end_day=GOOD_END, window_days=3, min_rows=100)["snapshot_id"]
        noise_snap = build_snapshot(lake, SPEC, end_day=NOISE_END, window_days=3, min_rows=100)["snapshot_id"]
        good = run_training(parse_args(["--snapshot-id", good_snap, "--epochs", "2", "--batch-size", "64"]))
        noise = run_training(parse_args(["--snapshot-id", noise_snap, "--epochs", "1", "--batch-size", "64"]))
        yield {
            "settings": Settings.from_env(),
            "snapshot": good_snap,
            "good": good["version"],
            "noise": noise["version"],
        }


def reset_aliases(settings: Settings) -> None:
    for alias in (registry.CHAMPION, registry.PREVIOUS_CHAMPION):
        registry.delete_alias(settings, alias)


def tags_of(settings: Settings, version: str) -> dict[str, str]:
    return dict(registry.get_version(settings, version).tags)


def test_first_version_promoted_when_floors_pass(world: dict) -> None:
    settings = world["settings"]
    reset_aliases(settings)
    result = promote.evaluate_and_promote(
        settings, candidate_version=world["good"], snapshot_id=world["snapshot"], decided_by="run-1"
    )
    assert result["promoted"] and result["decision"] == "promoted" and result["alias_moved"]
    assert result["champion_version"] is None and result["champion_metrics"] is None
    assert result["candidate_metrics"]["pr_auc"] >= settings.floor_pr_auc
    assert str(registry.champion(settings).version) == world["good"]
    assert registry.previous_champion(settings) is None
    tags = tags_of(settings, world["good"])
    assert tags["flywheel.gate.decision"] == "promoted"
    assert tags["flywheel.gate.decided_by"] == "run-1"
    assert tags["flywheel.gate.snapshot_id"] == world["snapshot"]
    assert "no champion" in tags["flywheel.gate.reasons"]
    assert json.loads(tags["flywheel.gate.candidate_metrics"])["pr_auc"] == pytest.approx(
        result["candidate_metrics"]["pr_auc"]
    )


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
    assert str(registry.champion(settings).version) == world["good"]
    tags = tags_of(settings, world["noise"])
    assert tags["flywheel.gate.decision"] == "rejected"
    assert "< champion" in tags["flywheel.gate.reasons"]
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


def test_shadow_mode_never_moves_the_alias(world: dict) -> None:
    settings = world["settings"]
    reset_aliases(settings)
    result = promote.evaluate_and_promote(
        settings, candidate_version=world["good"], snapshot_id=world["snapshot"], mode="shadow"
    )
    assert result["gate_passed"] and not result["promoted"] and not result["alias_moved"]
    assert any("shadow mode" in r for r in result["reasons"])
    assert registry.champion(settings) is None
    assert tags_of(settings, world["good"])["flywheel.gate.mode"] == "shadow"

    registry.set_champion(settings, world["noise"], reason="test setup")
    lenient = Settings.from_env(floor_pr_auc=0.0, floor_roc_auc=0.0)
    result = promote.evaluate_and_promote(
        lenient, candidate_version=world["good"], snapshot_id=world["snapshot"], mode="shadow"
    )
    assert result["gate_passed"] and not result["promoted"]
    assert str(registry.champion(settings).version) == world["noise"]
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
