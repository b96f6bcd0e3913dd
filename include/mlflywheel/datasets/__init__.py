"""Datasets: specs and the upstreams that land their files in the lake's landing zone.

To plug in a dataset: declare a :class:`~mlflywheel.datasets.spec.DatasetSpec` in a module
and add it to ``_SPECS`` below (module path and attribute). DAGs pick it by the
``FLYWHEEL_DATASET`` setting; no DAG code changes.
"""

from __future__ import annotations

import importlib

from mlflywheel.datasets.spec import Column, DatasetSpec, Expectation

__all__ = ["Column", "DatasetSpec", "Expectation", "get_spec"]

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
