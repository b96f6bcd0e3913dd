"""An upstream that replays a CSV file into the landing zone, one UTC day per partition.

:func:`replay_csv` reads the file **once**, streamed in chunks: each chunk's rows are grouped by
the UTC day of the spec's timestamp column and appended to one temporary file per day (so the
input may be in any order and only a chunk is held in memory); then every day in the range is
landed through :mod:`mlflywheel.datasets.landing`, the file first and ``_SUCCESS`` last. A day
without rows inside the range is landed as an empty file (header only): the upstream says "nothing
that day" instead of leaving the ingest sensor waiting for a delivery that never comes. Re-running
replaces each day's delivery. The cells are landed as text, untouched: only the timestamp is
parsed, to pick the day; rows whose timestamp cannot be read are counted and not landed.

:func:`generate_loans_csv` is the deterministic script that produced ``datasets/data/loans.csv``
(the built-in ``loans`` upstream); it is not needed at run time.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mlflywheel.datasets import get_spec
from mlflywheel.datasets.landing import land_bytes, land_frame
from mlflywheel.datasets.spec import DatasetSpec
from mlflywheel.lake import Lake

DATA_DIR = Path(__file__).resolve().parents[1] / "data"  # package data of mlflywheel.datasets
LOANS_CSV = DATA_DIR / "loans.csv"
BUILT_IN_CSVS: dict[str, Path] = {"loans": LOANS_CSV}  # the committed CSV behind a built-in dataset
DEFAULT_CHUNK_ROWS = 100_000

# Terms the loans generator draws from (term_months is a numeric feature bounded by them).
LOAN_TERMS_MONTHS = (12, 24, 36, 48, 60, 120, 240, 360)


@dataclass
class ReplayResult:
    """What a replay landed: rows per day (every day of the range, 0 for a day without rows)."""

    rows_per_day: dict[dt.date, int] = field(default_factory=dict)
    rows_read: int = 0
    rows_without_timestamp: int = 0  # empty or unreadable timestamp: no day to land them on
    rows_outside_range: int = 0

    @property
    def rows_landed(self) -> int:
        return sum(self.rows_per_day.values())


def read_csv_chunks(csv_path: str | Path, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[pd.DataFrame]:
    """The CSV as text, ``chunk_rows`` rows at a time; empty cells stay empty strings."""
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
    try:
        reader = pd.read_csv(csv_path, dtype=str, keep_default_na=False, chunksize=chunk_rows)
    except pd.errors.EmptyDataError:
        raise ValueError(f"{csv_path}: the file is empty (not even a header line)") from None
    with reader:
        yield from reader


def utc_days(chunk: pd.DataFrame, spec: DatasetSpec, csv_path: str | Path) -> pd.Series:
    """Midnight (UTC, as naive datetime64) of each row's timestamp day; NaT where it is empty or
    unreadable. Vectorised: no Python object per row."""
    if spec.timestamp_column not in chunk.columns:
        raise ValueError(
            f"{csv_path}: no column {spec.timestamp_column!r} (the {spec.name} spec's timestamp column); "
            f"columns: {', '.join(map(str, chunk.columns))}"
        )
    times = pd.to_datetime(chunk[spec.timestamp_column], utc=True, errors="coerce", format="ISO8601")
    return times.dt.tz_convert(None).dt.normalize()


def replay_csv(
    lake: Lake,
    spec: DatasetSpec,
    csv_path: str | Path,
    *,
    first_day: dt.date | None = None,
    last_day: dt.date | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> ReplayResult:
    """Land every day of ``csv_path`` in ``[first_day, last_day]`` (default: its first to its last
    day), reading the file once; see the module's docstring."""
    if first_day and last_day and first_day > last_day:
        raise ValueError(f"the range is empty: {first_day} is after {last_day}")
    result = ReplayResult()
    with tempfile.TemporaryDirectory(prefix="flywheel-replay-") as spool:
        header, spooled = _spool_by_day(spec, csv_path, Path(spool), first_day, last_day, chunk_rows, result)
        days = sorted(spooled)
        start = first_day or (days[0] if days else None)
        end = last_day or (days[-1] if days else None)
        if start is None or end is None:  # no row with a readable timestamp and no range given
            return result
        day = start
        while day <= end:
            path, rows = spooled.get(day, (None, 0))
            body = path.read_bytes() if path is not None else b""
            _land_text(lake, spec, day, header + body)
            result.rows_per_day[day] = rows
            day += dt.timedelta(days=1)
    return result


def _spool_by_day(
    spec: DatasetSpec,
    csv_path: str | Path,
    spool: Path,
    first_day: dt.date | None,
    last_day: dt.date | None,
    chunk_rows: int,
    result: ReplayResult,
) -> tuple[bytes, dict[dt.date, tuple[Path, int]]]:
    """One pass over the CSV: each row appended to its day's file (CSV body, no header).

    Returns the header line and ``day -> (file, rows)``; counts the rest in ``result``.
    """
    header = b""
    spooled: dict[dt.date, tuple[Path, int]] = {}
    low = pd.Timestamp(first_day) if first_day else None
    high = pd.Timestamp(last_day) if last_day else None
    for chunk in read_csv_chunks(csv_path, chunk_rows):
        if not header:
            header = _csv_bytes(chunk.iloc[0:0], header=True)
        result.rows_read += len(chunk)
        days = utc_days(chunk, spec, csv_path)
        readable = days.notna()
        in_range = readable.copy()
        if low is not None:
            in_range &= days >= low
        if high is not None:
            in_range &= days <= high
        result.rows_without_timestamp += int((~readable).sum())
        result.rows_outside_range += int((readable & ~in_range).sum())
        for midnight, rows in chunk[in_range].groupby(days[in_range], sort=False):
            day = midnight.date()
            path, count = spooled.get(day, (spool / f"{day.isoformat()}.csv", 0))
            with path.open("ab") as out:  # opened per chunk: a long file has many days
                out.write(_csv_bytes(rows, header=False))
            spooled[day] = (path, count + len(rows))
    if not header:  # no row at all: land the file's own header line
        with open(csv_path, "rb") as source:
            header = source.readline().rstrip(b"\r\n") + b"\n"
    return header, spooled


def _csv_bytes(frame: pd.DataFrame, *, header: bool) -> bytes:
    # The same writer options as landing.frame_to_csv_bytes, so a day is landed as that would.
    return frame.to_csv(index=False, header=header, lineterminator="\n").encode("utf-8")


def _land_text(lake: Lake, spec: DatasetSpec, day: dt.date, csv_bytes: bytes) -> None:
    if spec.landing_format == "csv":
        land_bytes(lake, spec, day, csv_bytes)
    else:  # e.g. parquet: the day's rows, as text, in the spec's landing format
        import io

        frame = pd.read_csv(io.BytesIO(csv_bytes), dtype=str, keep_default_na=False)
        land_frame(lake, spec, day, frame)


def csv_days(spec: DatasetSpec, csv_path: str | Path, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> list[dt.date]:
    """The UTC days that have rows in ``csv_path``, in order (one streamed pass)."""
    days: set[dt.date] = set()
    for chunk in read_csv_chunks(csv_path, chunk_rows):
        days.update(t.date() for t in utc_days(chunk, spec, csv_path).dropna().unique())
    return sorted(days)


def day_frame(spec: DatasetSpec, csv_path: str | Path, day: dt.date) -> pd.DataFrame:
    """The rows of ``csv_path`` whose timestamp falls on ``day`` (UTC), as text, in file order.

    One streamed pass for one day: to land many days, use :func:`replay_csv`.
    """
    midnight = pd.Timestamp(day)
    parts = [chunk[(utc_days(chunk, spec, csv_path) == midnight).to_numpy()] for chunk in read_csv_chunks(csv_path)]
    if not parts:
        return pd.DataFrame()
    return pd.concat(parts).reset_index(drop=True)


def generate_loans_csv(
    path: str | Path = LOANS_CSV,
    *,
    start: dt.date = dt.date(2026, 11, 1),
    days: int = 12,
    rows_per_day: int = 250,
    seed: int = 11,
) -> Path:
    """Write the synthetic loan applications CSV (the committed file came from the defaults)."""
    loans = get_spec("loans")
    employment_types, purposes, regions = (
        loans.column(name).categories for name in ("employment_type", "purpose", "region")
    )
    rng = np.random.default_rng(seed)
    n = days * rows_per_day
    day_index = np.repeat(np.arange(days), rows_per_day)
    seconds = np.sort(rng.integers(0, 86_400, size=(days, rows_per_day)), axis=1).ravel()
    applied_at = pd.Timestamp(start.isoformat(), tz="UTC") + pd.to_timedelta(
        day_index * 86_400 + seconds, unit="s"
    )

    employment = rng.choice(len(employment_types), size=n, p=[0.55, 0.18, 0.15, 0.05, 0.07])
    purpose = rng.choice(len(purposes), size=n, p=[0.2, 0.2, 0.1, 0.25, 0.1, 0.05, 0.1])
    region = rng.choice(len(regions), size=n)
    income = np.round(np.exp(rng.normal(10.8, 0.55, size=n)) * np.where(employment == 3, 0.3, 1.0), -2)
    loan = np.round(np.clip(income * rng.lognormal(-0.6, 0.6, size=n), 500, 2_000_000), -1)
    term = np.array(LOAN_TERMS_MONTHS)[
        rng.choice(len(LOAN_TERMS_MONTHS), size=n, p=[0.1, 0.15, 0.25, 0.15, 0.2, 0.05, 0.05, 0.05])
    ]
    score = np.clip(np.round(rng.normal(680, 70, size=n)), 300, 850).astype(int)

    # Latent default model: low score, high loan-to-income, unemployment, business loans.
    logit = (
        -2.2
        - 0.018 * (score - 680)
        + 1.6 * np.log(loan / income + 0.05)
        + np.array([0.0, 0.4, 0.3, 1.4, 0.2])[employment]
        + np.array([-0.3, -0.1, 0.1, 0.3, 0.6, 0.2, 0.0])[purpose]
    )
    defaulted = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)

    frame = pd.DataFrame(
        {
            "application_id": [f"app-{i:06d}" for i in range(n)],
            "applied_at": applied_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "applicant_income": income,
            "loan_amount": loan,
            "term_months": term,
            "employment_type": np.array(employment_types)[employment],
            "purpose": np.array(purposes)[purpose],
            "region": np.array(regions)[region],
            "credit_score": score,
            "defaulted": defaulted,
        }
    )[loans.column_names]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False, lineterminator="\n")
    return path
