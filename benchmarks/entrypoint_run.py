"""Run the one training entrypoint end to end on generated data and time it (a report, not a test).

Publishes ``--days`` validated partitions of the built-in transactions upstream (typed as the
validation stage types them), builds a snapshot the way the ``train`` DAG does, then runs
``python -m mlflywheel.training`` in a child process against a file-based MLflow under
``--data-dir``, exactly as the local backend and the Kubernetes pod run it. Prints the device,
the wall time of the child process and the phases the entrypoint reports (import, load, prepare,
train, validate, evaluate, reference, MLflow's parts), and the FLYWHEEL_RESULT line.
``--compare-with PATH`` runs the same snapshot with another checkout's package too (its
``include/`` folder, e.g. main's), each against a fresh copy of the data, and prints both.

    PYTHONPATH=include python benchmarks/entrypoint_run.py --days 14 --rows-per-day 200000 --device cuda
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

INCLUDE = Path(__file__).resolve().parents[1] / "include"
PHASES = (  # the entrypoint's phases in the order they run (its JSON result sorts them)
    "import", "load", "prepare", "train", "validate", "evaluate", "reference",
    "mlflow_setup", "mlflow_log", "mlflow_model", "mlflow_register",
)  # fmt: skip
RESULT_PREFIX = (
    "FLYWHEEL_RESULT "  # mlflywheel.training.command.RESULT_PREFIX (not imported: see --compare-with)
)


@dataclass
class EntrypointRun:
    label: str
    exit_code: int
    wall_seconds: float
    result: dict[str, Any] = field(default_factory=dict)

    @property
    def phases(self) -> dict[str, float]:
        return dict(self.result.get("phases") or {})


def prepare_snapshot(data_dir: Path, days: int, rows_per_day: int) -> str:
    """Publish ``days`` validated partitions and build their snapshot; its id."""
    from mlflywheel.datasets.upstreams.transactions import TRANSACTIONS, generate_day
    from mlflywheel.lake import LocalLake, frame_to_parquet
    from mlflywheel.training.snapshot import build_snapshot
    from mlflywheel.validation import to_schema_types

    shutil.rmtree(data_dir, ignore_errors=True)
    lake = LocalLake(data_dir / "lake")
    end = dt.date(2026, 11, 25)
    t0 = time.perf_counter()
    for i in range(days):
        day = end - dt.timedelta(days=i)
        frame = to_schema_types(generate_day(day, rows_per_day, seed=11), TRANSACTIONS)
        lake.publish_partition("validated", "transactions", day, {"data.parquet": frame_to_parquet(frame)})
    t1 = time.perf_counter()
    manifest = build_snapshot(lake, TRANSACTIONS, end_day=end, window_days=days)
    t2 = time.perf_counter()
    print(f"data: {days} days x {rows_per_day} rows published in {t1 - t0:.1f}s; "
          f"snapshot {manifest['snapshot_id']} built in {t2 - t1:.1f}s", flush=True)  # fmt: skip
    return str(manifest["snapshot_id"])


def run_entrypoint(
    data_dir: Path, snapshot_id: str, *, epochs: int, batch_size: int, device: str = "",
    include: Path = INCLUDE, label: str = "this checkout", echo: bool = True,
) -> EntrypointRun:  # fmt: skip
    """``python -m mlflywheel.training`` in a child process with ``include`` first on its path;
    its wall time and its result. MLflow's SQLite database is created fresh under ``data_dir``
    unless one is already there."""
    env = {
        **os.environ,
        "FLYWHEEL_DATA_DIR": str(data_dir),
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(include), os.environ.get("PYTHONPATH")])),
    }
    cmd = [
        sys.executable, "-m", "mlflywheel.training", "--snapshot-id", snapshot_id,
        "--epochs", str(epochs), "--batch-size", str(batch_size),
    ]  # fmt: skip
    if device:
        cmd += ["--device", device]
    started = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if echo:
        for line in proc.stderr.splitlines():
            if " mlflywheel.training: " in line or "Error" in line:
                print("  " + line.split(" mlflywheel.training: ", 1)[-1])
    result: dict[str, Any] = {}
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            result = json.loads(line[len(RESULT_PREFIX) :])
    if proc.returncode != 0:
        print(proc.stderr[-3000:])
    return EntrypointRun(label, proc.returncode, wall, result)


def phase_table(runs: list[EntrypointRun]) -> str:
    """The runs side by side: wall, then each phase (load, train, validate, MLflow, ...)."""
    names = [name for name in PHASES if any(name in run.phases for run in runs)]
    for run in runs:  # any the entrypoint adds later, after the known ones
        names += [name for name in run.phases if name not in names]
    width = max(14, *(len(run.label) for run in runs))
    lines = [f"{'phase (s)':<18}" + "".join(f"{run.label:>{width + 2}}" for run in runs)]
    rows = [("process wall", [run.wall_seconds for run in runs])]
    rows += [(name, [run.phases.get(name) for run in runs]) for name in names]
    mlflow = [sum(v for k, v in run.phases.items() if k.startswith("mlflow_")) or None for run in runs]
    rows.append(("mlflow (all)", mlflow))
    outside = [
        run.wall_seconds - sum(run.phases.values()) if run.phases else None for run in runs
    ]  # interpreter start and exit
    rows.append(("outside phases", outside))
    for name, values in rows:
        cells = "".join(f"{v:>{width + 2}.2f}" if v is not None else f"{'-':>{width + 2}}" for v in values)
        lines.append(f"{name:<18}{cells}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--rows-per-day", type=int, default=20_000)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=8192)
    parser.add_argument("--device", default="", help="cuda or cpu (default: the entrypoint's choice)")
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/flywheel-entrypoint-run"))
    parser.add_argument("--compare-with", type=Path, help="another checkout's include/ folder (e.g. main's)")
    args = parser.parse_args(argv)

    template = args.data_dir / "template"
    snapshot_id = prepare_snapshot(template, args.days, args.rows_per_day)
    checkouts = [("this checkout", INCLUDE)]
    if args.compare_with:
        checkouts.insert(0, (f"{args.compare_with.resolve().parent.name}", args.compare_with.resolve()))
    runs = []
    for label, include in checkouts:
        run_dir = args.data_dir / label.replace(" ", "-")
        shutil.rmtree(run_dir, ignore_errors=True)
        shutil.copytree(template, run_dir)  # each run: the same data, a fresh MLflow database
        print(f"-- entrypoint with {include}", flush=True)
        runs.append(run_entrypoint(
            run_dir, snapshot_id, epochs=args.epochs, batch_size=args.batch_size, device=args.device,
            include=include, label=label,
        ))  # fmt: skip
    try:
        import torch

        device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    except ImportError:  # pragma: no cover
        device = "unknown"
    print(f"device: {device}")
    print(phase_table(runs))
    for run in runs:
        print(
            f"{run.label}: exit code {run.exit_code}; {RESULT_PREFIX}{json.dumps(run.result, sort_keys=True)}"
        )
    return max(run.exit_code for run in runs)


if __name__ == "__main__":
    sys.exit(main())
