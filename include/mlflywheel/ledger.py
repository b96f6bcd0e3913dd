"""The ingestion ledger: one summary per partition, the record that nothing was lost.

Every partition that ingest touches ends with exactly one summary at
``reports/ingest/<dataset>/dt=YYYY-MM-DD/summary.json`` (:func:`mlflywheel.lake.keys.ledger_summary_key`) saying how many rows came in, how many
were validated and how many were quarantined, and why. The invariant
``rows_in == rows_validated + rows_quarantined`` is checked on every write.

The summary is also the partition's commit record (:func:`commit`,
:meth:`mlflywheel.lake.Lake.commit_partition`): it names the versions of the partition's validated
and quarantined rows and of its validation report, all written before it, so the ledger and the
zones switch together.

Optionally a *sink* mirrors every summary somewhere queryable (``FLYWHEEL_LEDGER_URI``: a
PostgreSQL table, see :mod:`mlflywheel.ledger_postgres`). The lake's summary stays the record
the pipeline itself reads; the sink is written in the same step, just after the commit.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any, Protocol

from mlflywheel import faults
from mlflywheel.lake import Lake, keys

if TYPE_CHECKING:  # pragma: no cover
    from mlflywheel.ledger_postgres import PostgresLedgerSink

STATUSES = ("validated", "partially_quarantined", "quarantined")


class LedgerError(ValueError):
    """A summary that would break the ledger's invariant."""


class LedgerSink(Protocol):
    """Somewhere besides the lake that records each partition summary (an upsert per partition)."""

    def record(self, summary: dict[str, Any]) -> None: ...


def check_summary(summary: dict[str, Any]) -> None:
    """Raise :class:`LedgerError` unless ``summary`` is a complete, balanced partition summary."""
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


def commit(
    lake: Lake,
    summary: dict[str, Any],
    *,
    zones: dict[str, tuple[dict[str, bytes], dict[str, Any] | None] | None],
    report: dict[str, bytes] | None = None,
    commit_id: str | None = None,
    sink: LedgerSink | None = None,
) -> dict[str, Any]:
    """Publish a partition's result and its summary in one commit; return the summary as recorded.

    The summary is checked, then :meth:`mlflywheel.lake.Lake.commit_partition` writes the
    validated and quarantined rows and the report under fresh versions and the summary last, as
    the partition's commit record (readers see the old commit or the new one, never a mix). The
    sink (PostgreSQL) is written after the commit, from the record: it is a mirror at most one
    commit behind (the record's ``commit.id`` is in its row), never ahead of the lake; a run
    killed in between fails its task, and the retry commits again and records it.
    """
    check_summary(summary)
    day = dt.date.fromisoformat(summary["partition"])
    record = lake.commit_partition(summary["dataset"], day, summary, zones=zones, report=report, commit_id=commit_id)
    if sink is not None:
        faults.point("ledger.sink")
        sink.record(record)
    return record


def write_summary(lake: Lake, summary: dict[str, Any], *, sink: LedgerSink | None = None) -> None:
    """Validate and write a partition summary alone, keeping the partition's current commit.

    A low-level door (tests, repairs): the pipeline records summaries with :func:`commit`, which
    publishes the rows in the same step. The summary replaces the record's figures; the ``commit``
    entry (which versions are current) is carried over, so readers keep resolving the same zones.
    """
    check_summary(summary)
    day = dt.date.fromisoformat(summary["partition"])
    key = keys.ledger_summary_key(summary["dataset"], day)
    current = lake.get_json(key) if lake.exists(key) else {}
    record = dict(summary)
    if "commit" in current and "commit" not in record:
        record["commit"] = current["commit"]
    if sink is not None:
        sink.record(record)
    lake.put_json(key, record)


def sink_from_settings(settings: Any) -> PostgresLedgerSink | None:
    """The ledger sink configured by ``FLYWHEEL_LEDGER_URI`` / ``_TABLE``; None when no URI is set."""
    if not settings.ledger_uri:
        return None
    from mlflywheel.ledger_postgres import PostgresLedgerSink  # psycopg2 only when a sink is configured

    return PostgresLedgerSink(settings.ledger_uri, settings.ledger_table, settings=settings)


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

