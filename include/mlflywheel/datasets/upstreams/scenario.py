"""Scenarios: a history of upstream deliveries with drift, faults and late days, for demos and tests.

A :class:`Scenario` says what the upstream delivers each day. :func:`demo_scenario` builds the
one the demo runs: three weeks of transactions with a corrupt file, a row-level fault, a day
that lands late and drift over the last days. :func:`land_scenario` and :func:`land_day` put
the deliveries into the lake's landing zone.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import pandas as pd

from mlflywheel.datasets import get_spec
from mlflywheel.datasets.landing import land_bytes, land_frame
from mlflywheel.datasets.upstreams.csv_replay import BUILT_IN_CSVS, day_frame
from mlflywheel.datasets.upstreams.faults import FAULTS, apply_fault
from mlflywheel.datasets.upstreams.transactions import DriftSchedule, generate_day
from mlflywheel.lake import Lake

# Demo layout, in days from the scenario's start.
DEMO_ROW_FAULT_DAY = 3
DEMO_CORRUPT_DAY = 5
DEMO_LATE_DAY = 9


@dataclass(frozen=True)
class Scenario:
    dataset: str
    start: dt.date
    days: int
    rows_per_day: int
    seed: int
    drift: DriftSchedule | None = None
    faults: dict[dt.date, str] = field(default_factory=dict)
    late_days: tuple[dt.date, ...] = ()
    fault_fraction: float = 0.05  # share of rows a row-level fault damages

    def __post_init__(self) -> None:
        if self.days < 1:
            raise ValueError(f"a scenario needs at least one day, got {self.days}")
        for day, fault in self.faults.items():
            if fault not in FAULTS:
                raise ValueError(f"{day}: unknown fault {fault!r}; faults are {', '.join(FAULTS)}")
        outside = [d for d in (*self.faults, *self.late_days) if d not in self.day_list]
        if outside:
            raise ValueError(f"days outside the scenario {self.start}..{self.end}: {outside}")

    @property
    def end(self) -> dt.date:
        return self.start + dt.timedelta(days=self.days - 1)

    @property
    def day_list(self) -> list[dt.date]:
        return [self.start + dt.timedelta(days=i) for i in range(self.days)]


def demo_scenario(
    end: dt.date,
    *,
    days: int = 21,
    rows_per_day: int = 2000,
    drift_days: int = 4,
    seed: int = 7,
    covariate: float = 1.0,
    concept: float = 0.3,
) -> Scenario:
    """``days`` days of transactions ending at ``end`` (inclusive), drifting (covariate and
    concept) over the last ``drift_days``, with a row-level fault, a corrupt file and a late
    day placed before the drift.

    The default concept shift is partial on purpose: the first champion, trained mostly on
    pre-drift data, still passes the gate's floors on drifted data but degrades, so the demo
    shows drift detection and a retrained model that beats it. With ``concept=1.0`` the old
    model falls to chance (ROC-AUC about 0.45) and fails the floors.
    """
    start = end - dt.timedelta(days=days - 1)
    drift_start = end - dt.timedelta(days=drift_days - 1)
    drift = DriftSchedule(start=drift_start, covariate=covariate, concept=concept) if drift_days > 0 else None

    # Events go before the drift, so drift is not confounded with them; a short history
    # squeezes their offsets into the pre-drift days (and drops any that do not fit).
    pre_drift_days = days - max(drift_days, 0)
    scale = min(1.0, pre_drift_days / (DEMO_LATE_DAY + 1))
    taken: set[int] = set()

    def place(offset: int) -> dt.date | None:
        offset = round(offset * scale)
        if offset >= pre_drift_days or offset in taken:
            return None
        taken.add(offset)
        return start + dt.timedelta(days=offset)

    row_fault_day, corrupt_day, late_day = (
        place(o) for o in (DEMO_ROW_FAULT_DAY, DEMO_CORRUPT_DAY, DEMO_LATE_DAY)
    )
    faults = {}
    if row_fault_day:
        faults[row_fault_day] = "nulls"
    if corrupt_day:
        faults[corrupt_day] = "corrupt_file"
    return Scenario(
        dataset="transactions",
        start=start,
        days=days,
        rows_per_day=rows_per_day,
        seed=seed,
        drift=drift,
        faults=faults,
        late_days=(late_day,) if late_day else (),
    )


def scenario_frame(scenario: Scenario, day: dt.date) -> pd.DataFrame:
    """The clean rows the upstream has for ``day`` (before any fault)."""
    if scenario.dataset == "transactions":
        return generate_day(day, scenario.rows_per_day, seed=scenario.seed, drift=scenario.drift)
    if scenario.dataset in BUILT_IN_CSVS:
        # Replayed datasets deliver what the CSV holds; rows_per_day and drift do not apply.
        return day_frame(get_spec(scenario.dataset), BUILT_IN_CSVS[scenario.dataset], day)
    raise ValueError(f"no upstream for dataset {scenario.dataset!r} in scenarios")


def land_day(lake: Lake, scenario: Scenario, day: dt.date) -> str:
    """Deliver one day of the scenario, with its fault if it has one; returns the file key."""
    if day not in scenario.day_list:
        raise ValueError(f"{day} is outside the scenario {scenario.start}..{scenario.end}")
    spec = get_spec(scenario.dataset)
    delivered = scenario_frame(scenario, day)
    fault = scenario.faults.get(day)
    if fault:
        delivered = apply_fault(
            delivered,
            fault,
            seed=scenario.seed + day.toordinal(),
            fraction=scenario.fault_fraction,
            spec=spec,
        )
    if isinstance(delivered, bytes):
        return land_bytes(lake, spec, day, delivered)
    return land_frame(lake, spec, day, delivered)


def land_scenario(lake: Lake, scenario: Scenario, *, include_late: bool = True) -> list[dt.date]:
    """Deliver every day of the scenario (late days only if ``include_late``); returns the days landed."""
    landed = []
    for day in scenario.day_list:
        if not include_late and day in scenario.late_days:
            continue
        land_day(lake, scenario, day)
        landed.append(day)
    return landed
