"""A stream: a run of days of the synthetic transactions upstream with known seasonality and drift.

A :class:`Stream` describes what a stream evaluation (``benchmarks/stream_eval.py``) replays day
by day: how many days from which date, the rows per day (scaled by the weekly volume pattern),
the seed, the seasonality, the base fraud rate and the :class:`DriftEvent` s at known days. Days
are addressed by their index from the first day (0-based), so change points read the same
whatever the start date.

The stream also knows its own truth, which a drift check is scored against:
:meth:`Stream.change_days` (the days on which the data-generating process moves) and
:meth:`Stream.is_stable` (whether a day belongs to the same regime as a model's training window).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import pandas as pd

from mlflywheel.datasets.upstreams.transactions import DriftSchedule, Seasonality, generate_day

DRIFT_KINDS = ("covariate", "concept", "both")
DEFAULT_START = dt.date(2026, 9, 7)  # a Monday, in the rising part of the yearly cycle


@dataclass(frozen=True)
class DriftEvent:
    """A shift of the stream from day index ``day`` on.

    ``kind``: ``covariate`` (the features' distributions move), ``concept`` (the fraud relationship
    changes) or ``both``. ``ramp_days`` 0 or 1: abrupt; more: the strength grows linearly over that
    many days. ``strength`` scales the designed shift (negative takes an earlier one back).
    """

    day: int
    kind: str = "both"
    ramp_days: int = 0
    strength: float = 1.0

    def __post_init__(self) -> None:
        if self.day < 0:
            raise ValueError(f"drift event day must be >= 0, got {self.day}")
        if self.kind not in DRIFT_KINDS:
            raise ValueError(f"drift event kind must be one of {DRIFT_KINDS}, got {self.kind!r}")
        if self.ramp_days < 0:
            raise ValueError(f"drift event ramp_days must be >= 0, got {self.ramp_days}")

    @property
    def last_change_day(self) -> int:
        """Index of the last day on which the event still changes the stream (end of the ramp)."""
        return self.day + max(self.ramp_days, 1) - 1

    @property
    def change_days(self) -> range:
        return range(self.day, self.last_change_day + 1)

    def schedule(self, start: dt.date) -> DriftSchedule:
        covariate = self.strength if self.kind in ("covariate", "both") else 0.0
        concept = self.strength if self.kind in ("concept", "both") else 0.0
        return DriftSchedule(
            start=start + dt.timedelta(days=self.day),
            covariate=covariate,
            concept=concept,
            ramp_days=self.ramp_days,
        )


@dataclass(frozen=True)
class Stream:
    """``days`` days of transactions from ``start``; see the module docstring."""

    name: str
    days: int
    rows_per_day: int
    seed: int
    start: dt.date = DEFAULT_START
    seasonality: Seasonality | None = None
    events: tuple[DriftEvent, ...] = field(default_factory=tuple)
    base_rate: float | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a stream needs a name")
        if self.days < 1 or self.rows_per_day < 1:
            raise ValueError(f"stream {self.name!r}: days and rows_per_day must be >= 1")
        if self.base_rate is not None and not 0.0 < self.base_rate < 1.0:
            raise ValueError(f"stream {self.name!r}: base_rate must be in (0, 1), got {self.base_rate}")
        object.__setattr__(self, "events", tuple(sorted(self.events, key=lambda e: e.day)))
        for event in self.events:
            if event.day >= self.days:
                raise ValueError(f"stream {self.name!r}: drift event on day {event.day} is past its {self.days} days")

    def date(self, index: int) -> dt.date:
        """The calendar day of day index ``index``."""
        if not 0 <= index < self.days:
            raise IndexError(f"stream {self.name!r} has days 0..{self.days - 1}, not {index}")
        return self.start + dt.timedelta(days=index)

    def index(self, day: dt.date) -> int:
        """The day index of calendar day ``day``."""
        index = (day - self.start).days
        if not 0 <= index < self.days:
            raise IndexError(f"{day} is outside stream {self.name!r} ({self.start} + {self.days} days)")
        return index

    def rows_on(self, index: int) -> int:
        """Rows delivered on day ``index``: ``rows_per_day`` times the weekday's volume, at least 1."""
        factor = self.seasonality.volume_factor(self.date(index)) if self.seasonality else 1.0
        return max(1, round(self.rows_per_day * factor))

    @property
    def schedules(self) -> tuple[DriftSchedule, ...]:
        return tuple(event.schedule(self.start) for event in self.events)

    def frame(self, index: int) -> pd.DataFrame:
        """The rows of day ``index`` (reproducible: the same stream gives the same frame)."""
        return generate_day(
            self.date(index),
            self.rows_on(index),
            seed=self.seed,
            drift=self.schedules or None,
            seasonality=self.seasonality,
            base_rate=self.base_rate,
        )

    @property
    def change_days(self) -> tuple[int, ...]:
        """First day index of each drift event: the known change points."""
        return tuple(event.day for event in self.events)

    def is_stable(self, index: int, *, since: int = 0) -> bool:
        """True when nothing changed the stream on days ``since + 1 .. index``: day ``index`` is in
        the same regime as data from day ``since`` on (e.g. a model's training window), so a drift
        alarm on it is a false alarm. Seasonality is the stream's normal rhythm, not a change."""
        return not any(since < day <= index for event in self.events for day in event.change_days)
