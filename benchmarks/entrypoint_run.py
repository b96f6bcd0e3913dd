"""Run the one training entrypoint end to end on generated data and time it (a report, not a test).

Publishes ``--days`` validated partitions of the built-in transactions upstream (typed as the
validation stage types them), builds a snapshot the way the ``train`` DAG does, then runs
``python -m mlflywheel.training`` in a child process against a file-based MLflow under
``--data-dir``, exactly as the local backend and the Kubernetes pod run it. Prints the device,
the wall time of each phase and the entrypoint's FLYWHEEL_RESULT line.

    PYTHONPATH=include python benchmarks/entrypoint_run.py --days 14 --rows-per-day 200000 --device cuda
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--rows-per-day", type=int, default=20_000)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=8192)
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/flywheel-entrypoint-run"))
    args = parser.parse_args()

    from mlflywheel.datasets.upstreams.transactions import TRANSACTIONS, generate_day
    from mlflywheel.lake import LocalLake, frame_to_parquet
    from mlflywheel.training.snapshot import build_snapshot
    from mlflywheel.validation import to_schema_types

    shutil.rmtree(args.data_dir, ignore_errors=True)
    lake = LocalLake(args.data_dir / "lake")
    end = dt.date(2026, 11, 25)
    t0 = time.perf_counter()
    for i in range(args.days):
        day = end - dt.timedelta(days=i)
        frame = to_schema_types(generate_day(day, args.rows_per_day, seed=11), TRANSACTIONS)
        lake.publish_partition("validated", "transactions", day, {"data.parquet": frame_to_parquet(frame)})
    t1 = time.perf_counter()
    manifest = build_snapshot(lake, TRANSACTIONS, end_day=end, window_days=args.days)
    t2 = time.perf_counter()
    print(f"data: {args.days} days x {args.rows_per_day} rows published in {t1 - t0:.1f}s; "
          f"snapshot {manifest['snapshot_id']} built in {t2 - t1:.1f}s", flush=True)  # fmt: skip

    env = {
        **os.environ,
        "FLYWHEEL_DATA_DIR": str(args.data_dir),
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[1] / "include"),
                                                    os.environ.get("PYTHONPATH")])),
    }  # fmt: skip
    cmd = [
        sys.executable, "-m", "mlflywheel.training", "--snapshot-id", manifest["snapshot_id"],
        "--epochs", str(args.epochs), "--batch-size", str(args.batch_size),
    ]  # fmt: skip
    t3 = time.perf_counter()
    code = subprocess.call(cmd, env=env)
    t4 = time.perf_counter()
    try:
        import torch

        device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    except ImportError:  # pragma: no cover
        device = "unknown"
    print(f"entrypoint exit code {code}, wall {t4 - t3:.1f}s (imports, training, MLflow logging, registration); "
          f"device: {device}")  # fmt: skip
    return code


if __name__ == "__main__":
    sys.exit(main())
