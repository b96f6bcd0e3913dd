"""CSV replay: the streamed one-pass replay against the former re-read-per-day replay, one run.

Generates a CSV shaped like the issue's stream (default 45,000 rows over 420 days, timestamps with
UTC offsets), then lands every day into two fresh local lakes:

* ``before``: the former ``replay_csv`` path, kept here verbatim as the reference: for each day
  it re-reads and re-parses the whole CSV, then lands that day's rows;
* ``after``: :func:`mlflywheel.datasets.upstreams.csv_replay.replay_csv`, one streamed pass.

It checks that both lakes hold byte-identical day files, and prints both timings side by side.
``--before-days N`` times the former path on the first N days only (it is slow) and prints its
per-day cost and the extrapolation to every day beside the measured part.

    PYTHONPATH=include python benchmarks/csv_replay.py
    PYTHONPATH=include python benchmarks/csv_replay.py --rows 45000 --days 420 --before-days 60
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from mlflywheel.datasets.landing import land_frame, landing_key
from mlflywheel.datasets.spec_file import spec_from_dict
from mlflywheel.datasets.upstreams.csv_replay import replay_csv
from mlflywheel.lake import LocalLake

SPEC = spec_from_dict(
    {
        "name": "stream",
        "columns": [
            {"name": "when", "dtype": "datetime"},
            {"name": "station", "dtype": "string", "categories": ["a", "b", "c", "d"]},
            {"name": "weekday", "dtype": "int", "categories": [0, 1, 2, 3, 4, 5, 6]},
            {"name": "hour", "dtype": "int", "min": 0, "max": 23},
            {"name": "load", "dtype": "float", "nullable": True},
            {"name": "temperature", "dtype": "float"},
            {"name": "humidity", "dtype": "float"},
            {"name": "price", "dtype": "float"},
            {"name": "label", "dtype": "int", "min": 0, "max": 1},
        ],
        "timestamp_column": "when",
        "target": "label",
        "categorical_features": ["station", "weekday"],
        "numeric_features": ["hour", "load", "temperature", "humidity", "price"],
    },
    source="benchmark",
)


def generate_csv(path: Path, rows: int, days: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2023-01-01", tz="UTC")
    seconds = np.sort(rng.integers(0, days * 86_400, rows))
    utc = start + pd.to_timedelta(seconds, unit="s")
    offsets = rng.choice([0, 1, -5], rows)  # some rows written with a local offset
    when = [t.tz_convert(dt.timezone(dt.timedelta(hours=int(h)))).isoformat() for t, h in zip(utc, offsets)]
    load = np.round(rng.gamma(2.0, 50.0, rows), 2).astype(object)
    load[rng.random(rows) < 0.02] = ""
    frame = pd.DataFrame({
        "when": when,
        "station": rng.choice(["a", "b", "c", "d"], rows),
        "weekday": utc.weekday, "hour": utc.hour, "load": load,
        "temperature": np.round(rng.normal(12, 8, rows), 1),
        "humidity": np.round(rng.uniform(20, 100, rows), 1),
        "price": np.round(rng.lognormal(3, 0.4, rows), 3),
        "label": (rng.random(rows) < 0.1).astype(int),
    })  # fmt: skip
    frame.to_csv(path, index=False)


# --- the former replay (before this change), kept as the reference ------------------------------


def _former_read_source_csv(csv_path: Path) -> pd.DataFrame:
    return pd.read_csv(csv_path, dtype=str, keep_default_na=False)


def _former_utc_days(source: pd.DataFrame) -> np.ndarray:
    times = pd.to_datetime(source[SPEC.timestamp_column], utc=True, errors="coerce", format="ISO8601")
    return np.array([t.date() if not pd.isna(t) else None for t in times], dtype=object)


def former_replay_day(lake: LocalLake, csv_path: Path, day: dt.date) -> int:
    source = _former_read_source_csv(csv_path)
    rows = source[_former_utc_days(source) == day].reset_index(drop=True)
    land_frame(lake, SPEC, day, rows)
    return len(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=45_000)
    parser.add_argument("--days", type=int, default=420)
    parser.add_argument("--before-days", type=int, default=0, help="days the former path lands (0: all)")
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="flywheel-bench-replay-") as tmp:
        root = Path(tmp)
        csv_path = root / "stream.csv"
        generate_csv(csv_path, args.rows, args.days, args.seed)
        size_mb = csv_path.stat().st_size / 1e6

        after_lake = LocalLake(root / "after")
        t0 = time.perf_counter()
        result = replay_csv(after_lake, SPEC, csv_path)
        after_s = time.perf_counter() - t0
        days = sorted(result.rows_per_day)

        before_days = days[: args.before_days] if args.before_days else days
        before_lake = LocalLake(root / "before")
        t0 = time.perf_counter()
        before_rows = sum(former_replay_day(before_lake, csv_path, day) for day in before_days)
        before_s = time.perf_counter() - t0

        same = all(
            before_lake.get_bytes(landing_key(SPEC, day)) == after_lake.get_bytes(landing_key(SPEC, day))
            for day in before_days
        )
        per_day_before = before_s / len(before_days)
        before_all = per_day_before * len(days)

    print(f"== CSV replay: {args.rows:,} rows over {len(days)} days ({size_mb:.1f} MB), "
          f"python {sys.version.split()[0]}, pandas {pd.__version__}")
    print(f"{'path':<44} {'days':>5} {'rows':>8} {'seconds':>9} {'s/day':>8}")
    label = "before: re-read the CSV per day" + ("" if len(before_days) == len(days) else " (measured)")
    print(f"{label:<44} {len(before_days):>5} {before_rows:>8,} {before_s:>9.2f} {per_day_before:>8.4f}")
    if len(before_days) != len(days):
        print(f"{'before: all days (extrapolated)':<44} {len(days):>5} {'':>8} {before_all:>9.1f} {per_day_before:>8.4f}")
    print(f"{'after: one streamed pass, spooled per day':<44} {len(days):>5} {result.rows_landed:>8,} "
          f"{after_s:>9.2f} {after_s / len(days):>8.4f}")
    print(f"speed-up on all days: {before_all / after_s:.0f}x; day files identical on the compared days: {same}")
    return 0 if same and result.rows_landed == args.rows else 1


if __name__ == "__main__":
    sys.exit(main())
