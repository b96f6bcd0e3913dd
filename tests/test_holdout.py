"""The evidence on one holdout: the paired bootstrap of a metric's difference, on numbers, and
what the evaluation holdout is made of. Scoring real versions on it is tested through the gate
in ``tests/test_promote.py``."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflywheel import holdout
from mlflywheel.datasets import get_spec
from mlflywheel.devstack.synthetic import synthetic_frame, write_validated
from mlflywheel.lake import LocalLake
from sklearn.metrics import average_precision_score

SPEC = get_spec("transactions")


# --- the paired bootstrap, on numbers ----------------------------------------------------------


def test_paired_bootstrap_interval() -> None:
    rng = np.random.default_rng(5)
    labels = (rng.random(3000) < 0.1).astype(int)
    strong = rng.random(3000) * 0.5 + 0.5 * labels
    weak = rng.random(3000) * 0.5 + 0.1 * labels
    args = {"metric": "pr_auc", "samples": 300, "confidence": 0.9, "seed": 1}
    low, high, valid = holdout.paired_bootstrap_interval(labels, strong, weak, **args)
    point = average_precision_score(labels, strong) - average_precision_score(labels, weak)
    assert 0 < low < point < high and valid == 300
    assert holdout.paired_bootstrap_interval(labels, strong, weak, **args) == (low, high, valid)  # seeded
    reverse = holdout.paired_bootstrap_interval(labels, weak, strong, **args)
    assert reverse[0] == pytest.approx(-high) and reverse[1] == pytest.approx(-low)
    assert holdout.paired_bootstrap_interval(labels, weak, weak, **args) == (0.0, 0.0, 300)  # paired
    auc = holdout.paired_bootstrap_interval(labels, strong, weak, **{**args, "metric": "roc_auc"})
    assert 0 < auc[0] < auc[1]
    none = holdout.paired_bootstrap_interval(np.zeros(50, dtype=int), strong[:50], weak[:50], **args)
    assert none == (None, None, 0)
    with pytest.raises(ValueError):
        holdout.paired_bootstrap_interval(labels, strong, weak[:10], **args)
    with pytest.raises(ValueError):
        holdout.paired_bootstrap_interval(labels, strong, weak, **{**args, "confidence": 1.0})
    with pytest.raises(ValueError):
        holdout.paired_bootstrap_interval(labels, strong, weak, **{**args, "metric": "accuracy"})


def test_evaluation_holdout_leaves_out_unlabelled_rows(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path / "lake")
    end = dt.date(2026, 11, 10)
    write_validated(lake, SPEC, [end + dt.timedelta(days=1), end + dt.timedelta(days=9)], 20, seed=4)
    snapshot_holdout = synthetic_frame(SPEC, end, 10, seed=4)
    snapshot_holdout[SPEC.target] = pd.array([None, *snapshot_holdout[SPEC.target][1:]], dtype="Int64")  # a label not in yet
    manifest = {
        "snapshot_id": "s", "dataset": SPEC.name, "target": SPEC.target,
        "timestamp_column": SPEC.timestamp_column, "end_day": end.isoformat(),
    }  # fmt: skip
    rows, record = holdout.evaluation_holdout(lake, manifest, snapshot_holdout, extra_days=7)
    assert [d["day"] for d in record["extra_days"]] == ["2026-11-11"]  # 2026-11-19 is beyond the 7 days
    assert record["unlabelled_rows_left_out"] == 1 and len(rows) == record["rows"] == 29
    assert record["champion_trained_rows_left_out"] == 0 and record["champion_trained_span"] is None
    with pytest.raises(ValueError, match="extra_days"):
        holdout.evaluation_holdout(lake, manifest, snapshot_holdout, extra_days=-1)
