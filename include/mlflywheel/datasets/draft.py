"""Draft a dataset spec from a CSV file: a starting point for the user to read and edit.

:func:`profile_csv` reads the file once, in chunks (memory stays bounded by the chunk size and
a few capped sets), and keeps per column: nulls, whether every value reads as a whole number, a
number or a datetime (the same readers as ingest), the observed range and up to
``max_categories + 1`` distinct values. :func:`draft_spec` turns the profile into a
:class:`~mlflywheel.datasets.spec.DatasetSpec`:

* dtype: ``int`` if every value is a whole number, else ``float`` if every value is a number,
  else ``datetime`` if every value is an ISO-8601 time (any UTC offset), else ``string`` (also
  for numbers written with leading zeros, such as codes: ``007``);
* ``nullable`` if any cell is empty; ``min``/``max`` the observed range widened by a margin (a
  non-negative column stays non-negative; a 0/1 target keeps exactly 0 and 1);
* ``categories``: a closed vocabulary for low-cardinality text columns;
* the timestamp and target columns (given, or the likeliest candidates), an id column when one
  is named like an id, unique and never empty; features: every other numeric column and every
  text column with a vocabulary.

:func:`draft_yaml` writes it as YAML with the observations and the choices as comments; the loader
(:func:`~mlflywheel.datasets.spec_file.parse_spec_text`) accepts it as is.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from mlflywheel.datasets.spec import Column, DatasetSpec

DEFAULT_CHUNK_ROWS = 100_000
DEFAULT_MAX_CATEGORIES = 30
RANGE_MARGIN = 0.1  # bounds widened by this share of the observed span
MAX_ID_CHECK_ROWS = 5_000_000  # uniqueness of id candidates is checked on at most this many values
FEW_INT_VALUES = 24  # an int column with at most this many values may be categorical (a note says so)
TARGET_NAMES = ("label", "target", "y", "class", "outcome")
TIME_NAMES = ("time", "date", "timestamp", "ts", "datetime", "at")


class DraftError(ValueError):
    """The CSV cannot be drafted into a valid spec (e.g. no datetime or 0/1 column); says what to pass."""


@dataclass
class ColumnProfile:
    """What one pass over a column saw."""

    name: str
    present: int = 0
    nulls: int = 0
    numeric: bool = True  # every value so far reads as a finite number
    whole: bool = True  # ... and as a whole number
    datetime: bool = True  # every value so far reads as an ISO-8601 time
    low: float | None = None
    high: float | None = None
    first_time: pd.Timestamp | None = None
    last_time: pd.Timestamp | None = None
    distinct: set[str] | None = field(default_factory=set)  # None once above the cap
    id_hashes: list[np.ndarray] | None = None  # hashes of the values, for id candidates
    hashed: int = 0

    @property
    def rows(self) -> int:
        return self.present + self.nulls

    @property
    def dtype(self) -> str:
        if self.present == 0:
            return "string"
        if self.numeric:
            return "int" if self.whole else "float"
        return "datetime" if self.datetime else "string"

    def unique(self) -> bool | None:
        """True/False when known; None when more values were seen than were checked."""
        if self.id_hashes is None:
            return None
        hashes = np.concatenate(self.id_hashes) if self.id_hashes else np.array([], dtype=np.uint64)
        if len(np.unique(hashes)) != len(hashes):
            return False
        return True if self.hashed == self.present else None


def looks_like_id(name: str) -> bool:
    lower = name.lower()
    return lower in ("id", "uuid", "guid", "key") or lower.endswith(("_id", "-id", " id")) or name.endswith("Id")


def profile_csv(
    csv_path: str | Path, *, chunk_rows: int = DEFAULT_CHUNK_ROWS, max_categories: int = DEFAULT_MAX_CATEGORIES
) -> list[ColumnProfile]:
    """One streamed pass over ``csv_path``; empty cells and pandas' NA words are nulls, as in ingest."""
    try:
        reader = pd.read_csv(csv_path, dtype=str, keep_default_na=True, chunksize=chunk_rows)
    except pd.errors.EmptyDataError:
        raise DraftError(f"{csv_path}: the file is empty (not even a header line)") from None
    profiles: list[ColumnProfile] = []
    with reader:
        for chunk in reader:
            if not profiles:
                profiles = [ColumnProfile(str(name)) for name in chunk.columns]
                for p in profiles:
                    p.id_hashes = [] if looks_like_id(p.name) else None
            for p in profiles:
                _observe(p, chunk[p.name], max_categories)
    if not profiles:
        raise DraftError(f"{csv_path}: no columns")
    return profiles


def _observe(p: ColumnProfile, text: pd.Series, max_categories: int) -> None:
    present = text.notna()
    values = text[present]
    p.present += len(values)
    p.nulls += int((~present).sum())
    if values.empty:
        return
    if p.numeric:
        numbers = pd.to_numeric(values, errors="coerce").astype("float64")
        finite = np.isfinite(numbers.to_numpy())
        # "007" reads as a number but is a code: leading zeros are kept only by text.
        if not finite.all() or values.str.match(r"^\s*[+-]?0\d").any():
            p.numeric = p.whole = False
        else:
            p.whole = p.whole and bool((numbers == np.round(numbers)).all())
            low, high = float(numbers.min()), float(numbers.max())
            p.low = low if p.low is None else min(p.low, low)
            p.high = high if p.high is None else max(p.high, high)
    if p.datetime and not p.numeric:
        times = pd.to_datetime(values, utc=True, errors="coerce", format="ISO8601")
        if times.isna().any():
            p.datetime = False
        else:
            first, last = times.min(), times.max()
            p.first_time = first if p.first_time is None else min(p.first_time, first)
            p.last_time = last if p.last_time is None else max(p.last_time, last)
    if p.distinct is not None:
        p.distinct.update(values.unique().tolist())
        if len(p.distinct) > max_categories:
            p.distinct = None
    if p.id_hashes is not None and p.hashed < MAX_ID_CHECK_ROWS:
        take = values.iloc[: MAX_ID_CHECK_ROWS - p.hashed].to_numpy(dtype=object)
        p.id_hashes.append(pd.util.hash_array(take))
        p.hashed += len(take)


# --- from profile to spec --------------------------------------------------------------------


@dataclass
class Draft:
    spec: DatasetSpec
    profiles: list[ColumnProfile]
    notes: list[str]  # the choices made and what to check, for the user


def draft_spec(
    profiles: list[ColumnProfile],
    *,
    name: str,
    timestamp: str | None = None,
    target: str | None = None,
    id_column: str | None = None,
    max_categories: int = DEFAULT_MAX_CATEGORIES,
    source: str = "the CSV",
) -> Draft:
    """The spec the profile suggests; raises :class:`DraftError` when no valid spec follows."""
    by_name = {p.name: p for p in profiles}
    for option, column in (("--timestamp", timestamp), ("--target", target), ("--id", id_column)):
        if column is not None and column not in by_name:
            raise DraftError(f"{option} {column!r} is not a column of {source}; columns: {', '.join(by_name)}")
    notes: list[str] = []
    ts = _pick_timestamp(profiles, timestamp, notes)
    label = _pick_target(profiles, target, notes)
    ident = _pick_id(profiles, id_column, {ts, label}, notes)
    columns = tuple(_column(p, is_target=p.name == label, max_categories=max_categories) for p in profiles)
    # Roles and other id-like columns are never features: an id carries no signal that generalises.
    roles = {ts, label, ident} | {p.name for p in profiles if p.id_hashes is not None}
    categorical = tuple(c.name for c in columns if c.categories and c.name not in roles)
    numeric = tuple(c.name for c in columns if c.dtype in ("int", "float") and c.name not in roles)
    for c in columns:
        if c.name in (ts, label, ident) or c.name in categorical or c.name in numeric:
            continue
        if c.name in roles:
            why = "named like an id"
        elif c.dtype == "datetime":
            why = "a datetime"
        else:
            why = f"text with more than {max_categories} distinct values, or too few rows per value"
        notes.append(f"{c.name}: not a feature ({why})")
    rows = profiles[0].rows
    spec = DatasetSpec(
        name=name,
        description=f"Drafted from {source} ({rows:,} rows); edit me.",
        columns=columns,
        id_column=ident,
        timestamp_column=ts,
        target=label,
        categorical_features=categorical,
        numeric_features=numeric,
    )
    return Draft(spec, profiles, notes)


def _pick_timestamp(profiles: list[ColumnProfile], given: str | None, notes: list[str]) -> str:
    candidates = [p for p in profiles if p.dtype == "datetime"]
    if given is not None:
        chosen = next(p for p in profiles if p.name == given)
        if chosen.dtype != "datetime":
            raise DraftError(f"--timestamp {given!r}: its values do not all read as ISO-8601 times")
    elif not candidates:
        raise DraftError("no column reads as ISO-8601 times; the spec needs a timestamp column")
    else:
        candidates.sort(key=lambda p: (p.nulls > 0, not _named_like(p.name, TIME_NAMES)))
        chosen = candidates[0]
        others = [p.name for p in candidates[1:]]
        notes.append(
            f"timestamp: {chosen.name} (candidates: {', '.join([chosen.name, *others])}); "
            "pass --timestamp to choose another"
        )
    if chosen.nulls:
        notes.append(f"{chosen.name}: {chosen.nulls:,} rows have no time; replay cannot place them on a day")
    return chosen.name


def _is_binary(p: ColumnProfile) -> bool:
    return p.dtype == "int" and p.low is not None and p.low >= 0 and p.high is not None and p.high <= 1


def _pick_target(profiles: list[ColumnProfile], given: str | None, notes: list[str]) -> str:
    if given is not None:
        chosen = next(p for p in profiles if p.name == given)
        if not _is_binary(chosen):
            seen = sorted(chosen.distinct)[:5] if chosen.distinct else "many values"
            raise DraftError(
                f"--target {given!r} must be a 0/1 column (whole numbers 0 and 1); it has {seen}. "
                "Convert the labels to 0/1 in the CSV first"
            )
        return chosen.name
    candidates = [p for p in profiles if _is_binary(p)]
    if not candidates:
        raise DraftError("no column holds only 0 and 1; pass --target after converting the label to 0/1")
    candidates.sort(key=lambda p: (p.nulls > 0, not _named_like(p.name, TARGET_NAMES), -profiles.index(p)))
    chosen = candidates[0]
    notes.append(
        f"target: {chosen.name} (0/1 columns: {', '.join(p.name for p in candidates)}); pass --target to choose another"
    )
    return chosen.name


def _pick_id(profiles: list[ColumnProfile], given: str | None, taken: set[str], notes: list[str]) -> str | None:
    if given is not None:
        return given
    for p in profiles:
        if p.name in taken or p.id_hashes is None or p.nulls or p.dtype not in ("string", "int"):
            continue
        unique = p.unique()
        if unique:
            notes.append(f"id: {p.name} (named like an id, unique, never empty)")
            return p.name
        if unique is None:
            notes.append(f"{p.name}: unique in the first {p.hashed:,} values checked; set id_column: {p.name} if it is")
    notes.append("id: none declared; each row gets a derived id from its day and position")
    return None


def _named_like(name: str, words: tuple[str, ...]) -> bool:
    lower = name.lower()
    parts = set(lower.replace("-", "_").split("_"))
    flag = words == TARGET_NAMES and lower.startswith(("is_", "has_"))  # is_fraud, has_churned
    return lower in words or bool(parts & set(words)) or flag


def _column(p: ColumnProfile, *, is_target: bool, max_categories: int) -> Column:
    dtype = p.dtype
    low = high = None
    if dtype in ("int", "float") and p.low is not None and p.high is not None:
        low, high = (0, 1) if is_target else widen(p.low, p.high, whole=dtype == "int")
        if dtype == "int":
            low, high = int(low), int(high)
    categories = None
    if dtype == "string" and p.distinct and len(p.distinct) <= max_categories and 2 * len(p.distinct) <= p.present:
        categories = tuple(sorted(p.distinct))
    return Column(p.name, dtype, nullable=p.nulls > 0, min=low, max=high, categories=categories)  # type: ignore[arg-type]


def widen(low: float, high: float, *, whole: bool, margin: float = RANGE_MARGIN) -> tuple[float, float]:
    """``[low, high]`` widened by ``margin`` of its span (or of its magnitude when flat), rounded
    outwards to a readable step; a non-negative range stays non-negative."""
    span = high - low
    pad = span * margin if span > 0 else max(abs(high), 1.0) * margin
    step = 10.0 ** math.floor(math.log10(pad))
    if whole:
        step = max(step, 1.0)
    new_low = math.floor((low - pad) / step) * step
    new_high = math.ceil((high + pad) / step) * step
    if low >= 0:
        new_low = max(new_low, 0.0)
    return round(new_low, 12), round(new_high, 12)


# --- as YAML ---------------------------------------------------------------------------------


def _scalar(value: Any) -> str:
    return yaml.safe_dump([value], default_flow_style=True, width=1 << 30).strip()[1:-1]


def _flow(values: Any) -> str:
    return yaml.safe_dump(list(values), default_flow_style=True, width=1 << 30).strip()


def _observed(p: ColumnProfile) -> str:
    parts = []
    if p.dtype in ("int", "float") and p.low is not None:
        parts.append(f"seen {p.low:g} .. {p.high:g}")
    if p.dtype == "datetime" and p.first_time is not None:
        parts.append(f"seen {p.first_time.isoformat()} .. {p.last_time.isoformat()}")
    if p.distinct is not None and p.dtype != "datetime":
        parts.append(f"{len(p.distinct)} distinct")
    else:
        parts.append("many distinct")
    if p.nulls:
        parts.append(f"{p.nulls:,} of {p.rows:,} empty")
    if p.dtype == "int" and p.distinct is not None and 2 < len(p.distinct) <= FEW_INT_VALUES:
        parts.append("few values: add categories to treat it as categorical")
    return "; ".join(parts)


def draft_yaml(draft: Draft) -> str:
    """The draft as a YAML spec file, with the observations and choices as comments."""
    spec = draft.spec
    lines = [
        f"# Dataset spec drafted by `python -m mlflywheel.datasets draft` on {dt.date.today().isoformat()}.",
        "# Check every choice below, then `python -m mlflywheel.datasets check` this file.",
        *[f"# - {note}" for note in draft.notes],
        f"name: {_scalar(spec.name)}",
        f"description: {_scalar(spec.description)}",
        f"landing_format: {spec.landing_format}",
        "",
        "columns:",
    ]
    for column, p in zip(spec.columns, draft.profiles, strict=True):
        lines += [f"  - name: {_scalar(column.name)}", f"    dtype: {column.dtype}"]
        if column.nullable:
            lines.append("    nullable: true")
        for bound in ("min", "max"):
            if getattr(column, bound) is not None:
                lines.append(f"    {bound}: {_scalar(getattr(column, bound))}")
        if column.categories:
            lines.append(f"    categories: {_flow(column.categories)}")
        lines.append(f"    # {_observed(p)}")
    lines += [
        "",
        *([f"id_column: {_scalar(spec.id_column)}"] if spec.id_column else ["# id_column: none (derived ids)"]),
        f"timestamp_column: {_scalar(spec.timestamp_column)}",
        f"target: {_scalar(spec.target)}",
        f"categorical_features: {_flow(spec.categorical_features)}",
        f"numeric_features: {_flow(spec.numeric_features)}",
        "",
        "# drift:        # the drift policy (README: Drift); defaults apply when left out",
        "#   exclude: []  # features never tested, e.g. a day-of-week feature",
        "# performance:  # monitoring on late labels; defaults apply when left out",
        "#   label_delay_days: 1",
    ]
    return "\n".join(lines) + "\n"
