"""Datasets: specs and the upstreams that land their files in the lake's landing zone.

To plug in a dataset: declare a :class:`~mlflywheel.datasets.spec.DatasetSpec` in a module
and add it to ``_SPECS`` below (module path and attribute). DAGs pick it by the
``FLYWHEEL_DATASET`` setting; no DAG code changes.
"""

from __future__ import annotations

import datetime as dt
import importlib

from mlflywheel.datasets.spec import Column, DatasetSpec, Expectation

__all__ = ["Column", "DatasetSpec", "Expectation", "get_spec", "landing_key", "landing_marker_key"]

_SPECS = {
    "transactions": ("mlflywheel.datasets.transactions_spec", "TRANSACTIONS"),
    "loans": ("mlflywheel.datasets.loans_spec", "LOANS"),
}


def get_spec(name: str) -> DatasetSpec:
    try:
        module, attr = _SPECS[name]
    except KeyError:
        raise KeyError(f"unknown dataset {name!r}; known: {', '.join(sorted(_SPECS))}") from None
    return getattr(importlib.import_module(module), attr)


def landing_key(spec: DatasetSpec, day: dt.date) -> str:
    """Where the upstream delivers the day's file."""
    return f"landing/{spec.name}/dt={day.isoformat()}/data.{spec.landing_format}"


def landing_marker_key(spec: DatasetSpec, day: dt.date) -> str:
    """Written by the upstream after the file: the partition is complete."""
    return f"landing/{spec.name}/dt={day.isoformat()}/_SUCCESS"
