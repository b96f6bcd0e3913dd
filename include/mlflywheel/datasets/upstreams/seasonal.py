"""A seasonal synthetic stream with known change points, to measure the drift policy.

Real streams have rhythms that are not drift: a weekly pattern (weekends differ from weekdays)
and a slow yearly one. :func:`seasonal_day` makes one day of such a stream, with the columns of
:data:`SEASONAL_SPEC`:

* ``day_of_week`` (categorical): the weekday of the row's timestamp, the feature that a
  one-day window sees as "drift" every day;
* ``level`` (numeric): a yearly sine (``yearly_amplitude`` standard deviations) plus a weekend
  offset (``weekly_amplitude``) plus unit noise;
* ``amount`` (numeric, heavy-tailed) and ``segment`` (categorical): stable;
* ``label``: a logistic function of ``level``, ``amount`` and ``segment`` (base rate about 10%).

From ``covariate_shift_day`` on, ``level`` jumps by ``covariate_shift`` standard deviations and
the segment mix moves (an abrupt covariate shift); from ``concept_shift_day`` on, the label's
dependence on ``level`` and ``segment`` reverses while the features stay as they were (an
abrupt concept shift, visible only in performance). :class:`StreamModel` scores rows with the
pre-shift relationship: a champion trained before the shifts. Vectorised numpy, reproducible by
``(day, rows, seed)``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from mlflywheel.datasets.spec import Column, DatasetSpec

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SEGMENTS = ("a", "b", "c")
_SEGMENT_P = np.array([0.5, 0.3, 0.2])
_SEGMENT_P_SHIFTED = np.array([0.25, 0.3, 0.45])
_SEGMENT_RISK = np.array([-0.5, 0.0, 0.8])
_INTERCEPT = -2.6
SECONDS_PER_DAY = 86_400

SEASONAL_SPEC = DatasetSpec(
    name="seasonal",
    description="Synthetic stream with weekly and yearly seasonality and known change points",
    columns=(
        Column("event_id", "string"),
        Column("event_time", "datetime"),
        Column("day_of_week", "string", categories=WEEKDAYS),
        Column("segment", "string", categories=SEGMENTS),
        Column("level", "float"),
        Column("amount", "float", min=0.0),
        Column("label", "int", min=0, max=1),
    ),
    id_column="event_id",
    timestamp_column="event_time",
    target="label",
    categorical_features=("day_of_week", "segment"),
    numeric_features=("level", "amount"),
)


@dataclass(frozen=True)
class SeasonalStream:
    """The stream's shape; days are counted from ``origin`` (the yearly sine's phase 0)."""

    origin: dt.date = dt.date(2025, 1, 1)
    yearly_amplitude: float = 1.0
    weekly_amplitude: float = 0.5
    covariate_shift_day: dt.date | None = None
    covariate_shift: float = 1.0
    concept_shift_day: dt.date | None = None

    def day(self, day: dt.date, rows: int, *, seed: int) -> pd.DataFrame:
        """One UTC day of rows, sorted by time."""
        import pandas as pd

        if rows < 0:
            raise ValueError(f"rows must be >= 0, got {rows}")
        rng = np.random.default_rng([seed, day.toordinal()])
        shifted = self.covariate_shift_day is not None and day >= self.covariate_shift_day
        concept = self.concept_shift_day is not None and day >= self.concept_shift_day
        t = (day - self.origin).days
        seconds = np.sort(rng.integers(0, SECONDS_PER_DAY, size=rows))
        weekend = day.weekday() >= 5
        level = (
            self.yearly_amplitude * np.sin(2 * np.pi * t / 365.25)
            + self.weekly_amplitude * weekend
            + (self.covariate_shift if shifted else 0.0)
            + rng.normal(0.0, 1.0, rows)
        )
        segment = rng.choice(len(SEGMENTS), size=rows, p=_SEGMENT_P_SHIFTED if shifted else _SEGMENT_P)
        amount = rng.lognormal(3.0, 1.0, rows)
        logit = risk_logit(level, amount, segment, reversed_concept=concept)
        label = (rng.random(rows) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)
        start = pd.Timestamp(day.isoformat(), tz="UTC")
        return pd.DataFrame(
            {
                "event_id": [f"e-{day:%Y%m%d}-{i:06d}" for i in range(rows)],
                "event_time": start + pd.to_timedelta(seconds, unit="s"),
                "day_of_week": WEEKDAYS[day.weekday()],
                "segment": np.array(SEGMENTS, dtype=object)[segment],
                "level": level,
                "amount": amount,
                "label": label,
            }
        )

    def days(self, first: dt.date, n_days: int, rows: int, *, seed: int) -> pd.DataFrame:
        """``n_days`` consecutive days from ``first``, concatenated."""
        import pandas as pd

        frames = [self.day(first + dt.timedelta(days=i), rows, seed=seed) for i in range(n_days)]
        return pd.concat(frames, ignore_index=True)


def risk_logit(level: np.ndarray, amount: np.ndarray, segment: np.ndarray, *, reversed_concept: bool) -> np.ndarray:
    """The label's log-odds; the concept shift reverses the roles of ``level`` and ``segment``."""
    sign = -1.0 if reversed_concept else 1.0
    return _INTERCEPT + sign * (1.2 * level + _SEGMENT_RISK[segment]) + 0.3 * (np.log(amount) - 3.0)


class StreamModel:
    """A champion trained before any shift: the pre-shift log-odds, as ``predict_proba``."""

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        segment = np.searchsorted(np.array(SEGMENTS), frame["segment"].astype(str).to_numpy())
        logit = risk_logit(
            frame["level"].to_numpy(dtype=float), frame["amount"].to_numpy(dtype=float), segment,
            reversed_concept=False,
        )  # fmt: skip
        positive = 1.0 / (1.0 + np.exp(-logit))
        return np.column_stack([1.0 - positive, positive])


class Replay:
    """Days of a stream (cached) and what a champion retrained on a fixed schedule trained on.

    The champion in service on ``day`` was trained on the morning of the latest retrain day
    ``<= day`` (``first_retrain + k * retrain_every``), on the ``window_days`` days before it; its
    training rows are the oldest ``train_fraction`` of that window (the snapshot's time split).
    """

    def __init__(self, stream: SeasonalStream, rows_per_day: int, *, seed: int) -> None:
        self.stream, self.rows_per_day, self.seed = stream, rows_per_day, seed
        self._days: dict[dt.date, pd.DataFrame] = {}

    def day(self, day: dt.date) -> pd.DataFrame:
        if day not in self._days:
            self._days[day] = self.stream.day(day, self.rows_per_day, seed=self.seed)
        return self._days[day]

    def retrain_day(self, day: dt.date, *, first_retrain: dt.date, retrain_every: int = 7) -> dt.date:
        """The day the champion in service on ``day`` was trained (in the morning, on the days before)."""
        if day < first_retrain:
            raise ValueError(f"no champion before the first retrain day {first_retrain}")
        return first_retrain + dt.timedelta(days=(day - first_retrain).days // retrain_every * retrain_every)

    def champion_window(
        self, day: dt.date, *, first_retrain: dt.date, retrain_every: int = 7, window_days: int = 14
    ) -> pd.DataFrame:
        """The rows of the champion's training window (snapshot), in time order."""
        import pandas as pd

        retrained = self.retrain_day(day, first_retrain=first_retrain, retrain_every=retrain_every)
        days = [retrained - dt.timedelta(days=i) for i in range(window_days, 0, -1)]
        return pd.concat([self.day(d) for d in days], ignore_index=True)

    def champion_train_rows(
        self,
        day: dt.date,
        *,
        first_retrain: dt.date,
        retrain_every: int = 7,
        window_days: int = 14,
        train_fraction: float = 0.7,
    ) -> pd.DataFrame:
        """The champion's training rows: the oldest ``train_fraction`` of its window."""
        window = self.champion_window(
            day, first_retrain=first_retrain, retrain_every=retrain_every, window_days=window_days
        )
        return window.iloc[: int(len(window) * train_fraction)].reset_index(drop=True)
