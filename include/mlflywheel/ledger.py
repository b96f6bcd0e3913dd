"""The ingestion ledger: one summary per partition, the record that nothing was lost.

Every partition that ingest touches ends with exactly one summary at
``reports/ingest/<dataset>/dt=YYYY-MM-DD/summary.json`` (:func:`mlflywheel.lake.keys.ledger_summary_key`) saying how many rows came in, how many
were validated and how many were quarantined, and why. The invariant
``rows_in == rows_validated + rows_quarantined`` is checked on every write.

Optionally a *sink* mirrors every summary somewhere queryable (``FLYWHEEL_LEDGER_URI``: a
PostgreSQL table, see :mod:`mlflywheel.ledger_postgres`). The lake's summary stays the record
the pipeline itself reads; the sink is written in the same step, just before it.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any, Protocol

from mlflywheel.lake import Lake, keys

if TYPE_CHECKING:  # pragma: no cover
    from mlflywheel.ledger_postgres import PostgresLedgerSink

STATUSES = ("validated", "partially_quarantined", "quarantined")


class LedgerError(ValueError):
    """A summary that would break the ledger's invariant."""


class LedgerSink(Protocol):
    """Somewhere besides the lake that records each partition summary (an upsert per partition)."""

    def record(self, summary: dict[str, Any]) -> None: ...


def write_summary(lake: Lake, summary: dict[str, Any], *, sink: LedgerSink | None = None) -> None:
    """Validate and write a partition summary (replacing any earlier one for the partition).

    Order: validate, then ``sink.record(summary)``, then the lake's ``summary.json``. Both
    describe the same, already published partition. The lake summary goes last because it is
    the completion mark the pipeline reads (:func:`days_without_summary`), like a manifest: if
    it exists the sink has the row too. Any failure raises, so the Airflow task retries, and a
    re-run rewrites both idempotently (the sink upserts, the lake put replaces).
    """
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
    if sink is not None:
        sink.record(summary)
    lake.put_json(keys.ledger_summary_key(summary["dataset"], day), summary)


def sink_from_settings(settings: Any) -> PostgresLedgerSink | None:
    """The ledger sink configured by ``FLYWHEEL_LEDGER_URI`` / ``_TABLE``; None when no URI is set."""
    if not settings.ledger_uri:
        return None
    from mlflywheel.ledger_postgres import PostgresLedgerSink  # psycopg2 only when a sink is configured

    return PostgresLedgerSink(settings.ledger_uri, settings.ledger_table)


def read_summary(lake: Lake, dataset: str, day: dt.date) -> dict[str, Any] | None:
    key = keys.ledger_summary_key(dataset, day)
    return lake.get_json(key) if lake.exists(key) else None


def list_summaries(lake: Lake, dataset: str) -> list[dict[str, Any]]:
    """All partition summaries of ``dataset``, oldest partition first."""
    out = []
    for key in lake.list_keys(keys.ledger_prefix(dataset)):
        if key.endswith("/" + keys.SUMMARY_JSON):
            out.append(lake.get_json(key))
    return sorted(out, key=lambda s: s["partition"])


def days_without_summary(lake: Lake, dataset: str, days: list[dt.date]) -> list[dt.date]:
    """The days among ``days`` that ingest has not finished (no summary yet)."""
    return [d for d in days if not lake.exists(keys.ledger_summary_key(dataset, d))]

