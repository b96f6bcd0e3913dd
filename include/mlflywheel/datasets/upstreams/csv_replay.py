"""An upstream that replays a committed CSV one UTC day at a time (used by ``loans``).

:func:`replay_csv` lands the rows whose timestamp falls on the day, with their original text
untouched (the CSV is read as strings; only the timestamp is parsed, to pick the day).
:func:`generate_loans_csv` is the deterministic script that produced
``datasets/data/loans.csv``; it is not needed at run time.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd

from mlflywheel.datasets.landing import land_frame
from mlflywheel.datasets.loans_spec import EMPLOYMENT_TYPES, LOANS, PURPOSES, REGIONS, TERMS_MONTHS
from mlflywheel.datasets.spec import DatasetSpec
from mlflywheel.lake import Lake

DATA_DIR = Path(__file__).resolve().parents[1] / "data"  # package data of mlflywheel.datasets
LOANS_CSV = DATA_DIR / "loans.csv"

# The committed CSV behind each replayed dataset.
CSV_SOURCES: dict[str, Path] = {"loans": LOANS_CSV}


def read_source_csv(csv_path: str | Path) -> pd.DataFrame:
    """The whole source CSV as text; empty cells stay empty strings (landed as empty)."""
    return pd.read_csv(csv_path, dtype=str, keep_default_na=False)


def day_frame(spec: DatasetSpec, csv_path: str | Path, day: dt.date) -> pd.DataFrame:
    """The source rows whose ``spec.timestamp_column`` falls on ``day`` (UTC), as text."""
    source = read_source_csv(csv_path)
    days = _utc_days(source, spec)
    return source[days == day].reset_index(drop=True)


def replay_csv(lake: Lake, spec: DatasetSpec, csv_path: str | Path, day: dt.date) -> int:
    """Land the day's rows of ``csv_path``; returns how many rows were landed."""
    rows = day_frame(spec, csv_path, day)
    land_frame(lake, spec, day, rows)
    return len(rows)


def csv_days(spec: DatasetSpec, csv_path: str | Path) -> list[dt.date]:
    """The UTC days that have rows in ``csv_path``, in order."""
    days = _utc_days(read_source_csv(csv_path), spec)
    return sorted({d for d in days if d is not None})


def _utc_days(source: pd.DataFrame, spec: DatasetSpec) -> np.ndarray:
    if spec.timestamp_column not in source:
        raise ValueError(f"{spec.name} source CSV has no {spec.timestamp_column!r} column")
    times = pd.to_datetime(source[spec.timestamp_column], utc=True, errors="coerce", format="ISO8601")
    return np.array([t.date() if not pd.isna(t) else None for t in times], dtype=object)


def generate_loans_csv(
    path: str | Path = LOANS_CSV,
    *,
    start: dt.date = dt.date(2026, 11, 1),
    days: int = 12,
    rows_per_day: int = 250,
    seed: int = 11,
) -> Path:
    """Write the synthetic loan applications CSV (the committed file came from the defaults)."""
    rng = np.random.default_rng(seed)
    n = days * rows_per_day
    day_index = np.repeat(np.arange(days), rows_per_day)
    seconds = np.sort(rng.integers(0, 86_400, size=(days, rows_per_day)), axis=1).ravel()
    applied_at = pd.Timestamp(start.isoformat(), tz="UTC") + pd.to_timedelta(
        day_index * 86_400 + seconds, unit="s"
    )

    employment = rng.choice(len(EMPLOYMENT_TYPES), size=n, p=[0.55, 0.18, 0.15, 0.05, 0.07])
    purpose = rng.choice(len(PURPOSES), size=n, p=[0.2, 0.2, 0.1, 0.25, 0.1, 0.05, 0.1])
    region = rng.choice(len(REGIONS), size=n)
    income = np.round(np.exp(rng.normal(10.8, 0.55, size=n)) * np.where(employment == 3, 0.3, 1.0), -2)
    loan = np.round(np.clip(income * rng.lognormal(-0.6, 0.6, size=n), 500, 2_000_000), -1)
    term = np.array(TERMS_MONTHS)[
        rng.choice(len(TERMS_MONTHS), size=n, p=[0.1, 0.15, 0.25, 0.15, 0.2, 0.05, 0.05, 0.05])
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
            "employment_type": np.array(EMPLOYMENT_TYPES)[employment],
            "purpose": np.array(PURPOSES)[purpose],
            "region": np.array(REGIONS)[region],
            "credit_score": score,
            "defaulted": defaulted,
        }
    )[LOANS.column_names]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False, lineterminator="\n")
    return path
