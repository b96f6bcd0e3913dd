"""A second dataset plugs in without DAG code: loans, replayed from a CSV file by its timestamp.

The same stage functions the DAGs call run on it: ingest, validation, snapshot, training
(the real entrypoint in a subprocess), registration.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from mlflywheel import ledger
from mlflywheel.datasets import get_spec
from mlflywheel.datasets.upstreams.csv_replay import LOANS_CSV, csv_days, replay_csv
from mlflywheel.ingest import ingest_partition
from mlflywheel.lake import LocalLake
from mlflywheel.settings import Settings
from mlflywheel.training.snapshot import build_snapshot
from mlflywheel.validation import validate_partition


def test_loans_flow_through_the_pipeline(tmp_path):
    spec = get_spec("loans")
    settings = Settings(data_dir=tmp_path, dataset="loans")
    lake = LocalLake(tmp_path / "lake")
    days = csv_days(spec, LOANS_CSV)
    assert len(days) >= 10

    for day in days:
        landed = replay_csv(lake, spec, LOANS_CSV, day)
        ingest_partition(lake, spec, day, run_id="t")
        summary = validate_partition(lake, spec, day, run_id="t")
        assert summary["rows_in"] == landed
    summaries = ledger.list_summaries(lake, "loans")
    assert len(summaries) == len(days)
    assert sum(s["rows_validated"] for s in summaries) > 0.9 * sum(s["rows_in"] for s in summaries)

    manifest = build_snapshot(lake, spec, end_day=days[-1], window_days=len(days), min_rows=200)
    env = {**os.environ, **settings.to_env()}
    out = subprocess.run(
        [sys.executable, "-m", "mlflywheel.training", "--snapshot-id", manifest["snapshot_id"], "--epochs", "2"],
        capture_output=True, text=True, env=env, timeout=600, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    result = json.loads(out.stdout.split("FLYWHEEL_RESULT ", 1)[1].splitlines()[0])
    assert result["model_name"] == "flywheel-loans"
    assert result["version"] == "1" or result["version"] == 1
