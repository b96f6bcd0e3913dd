"""The ingestion ledger: one summary per partition, the record that nothing was lost.

Every partition that ingest touches ends with exactly one summary at
``reports/ingest/<dataset>/dt=YYYY-MM-DD/summary.json`` saying how many rows came in, how many
were validated and how many were quarantined, and why. The invariant
``rows_in == rows_validated + rows_quarantined`` is checked on every write.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from mlflywheel.lake import Lake

STATUSES = ("validated", "partially_quarantined", "quarantined")


class LedgerError(ValueError):
    """A summary that would break the ledger's invariant."""


def summary_key(dataset: str, day: dt.date) -> str:
    return f"reports/ingest/{dataset}/dt={day.isoformat()}/summary.json"


def write_summary(lake: Lake, summary: dict[str, Any]) -> None:
    """Validate and write a partition summary (replacing any earlier one for the partition)."""
    required = ("dataset", "partition", "status", "rows_in", "rows_validated", "rows_quarantined", "run_id")
    missing = [k for k in required if k not in summary]
    if missing:
        raise LedgerError(f"partition summary lacks {', '.join(missing)}")
    if summary["status"] not in STATUSES:
        raise LedgerError(f"status {summary['status']!r} not in {STATUSES}")
    if summary["rows_in"] != summary["rows_validated"] + summary["rows_quarantined"]:
        raise LedgerError(
            f"{summary['dataset']} {summary['partition']}: rows_in={summary['rows_in']} but "
            f"validated={summary['rows_validated']} + quarantined={summary['rows_quarantined']}"
        )
    day = dt.date.fromisoformat(summary["partition"])
    lake.put_json(summary_key(summary["dataset"], day), summary)


def read_summary(lake: Lake, dataset: str, day: dt.date) -> dict[str, Any] | None:
    key = summary_key(dataset, day)
    return lake.get_json(key) if lake.exists(key) else None


def list_summaries(lake: Lake, dataset: str) -> list[dict[str, Any]]:
    """All partition summaries of ``dataset``, oldest partition first."""
    out = []
    for key in lake.list_keys(f"reports/ingest/{dataset}/"):
        if key.endswith("/summary.json"):
            out.append(lake.get_json(key))
    return sorted(out, key=lambda s: s["partition"])


def days_without_summary(lake: Lake, dataset: str, days: list[dt.date]) -> list[dt.date]:
    """The days among ``days`` that ingest has not finished (no summary yet)."""
    return [d for d in days if not lake.exists(summary_key(dataset, d))]


def window_days(end_day: dt.date, window: int) -> list[dt.date]:
    """The ``window`` days ending with ``end_day`` (inclusive), oldest first."""
    return [end_day - dt.timedelta(days=i) for i in range(window - 1, -1, -1)]
