"""Validation: split a raw partition into validated rows and quarantined rows, with reasons.

The expectation suite is built with Great Expectations from the dataset spec
(:meth:`~mlflywheel.datasets.spec.DatasetSpec.expectations`) plus two checks that only make
sense per partition:

* the timestamp column lies inside the partition's UTC day ``[day 00:00, next day 00:00)``;
* ``_coercion_errors`` is null, i.e. ingest could read every value as its schema type.

Expectations are either *partition-level* (columns match the schema, at least one row) or
*row-level* (not null, in range, in vocabulary, unique id, ...). Outcomes:

``validated``
    no expectation failed: every row goes to ``validated/<dataset>/dt=<day>/``.
``partially_quarantined``
    some rows failed row-level expectations: those rows go to ``quarantine/`` with the
    reasons in ``_quarantine_reasons``, the rest to ``validated/``.
``quarantined``
    a partition-level expectation failed, or more than ``max_failed_row_fraction`` of the
    rows failed: the whole partition goes to ``quarantine/`` and any earlier validated
    partition for that day is cleared.

Every row ends in exactly one zone (checked before publishing), re-runs replace the
partitions of the day instead of adding to them, and each run writes a human-readable
report to ``reports/validation/<dataset>/dt=<day>/v=<commit>/`` and the partition's ledger summary,
all in one commit (:mod:`.publication`).

Modules: :mod:`.suite` (the expectations, run with Great Expectations, imported lazily with
analytics off), :mod:`.verdict` (result -> verdict -> split of the rows), :mod:`.publication`
(zones, report, ledger in one commit), :mod:`.report` (the HTML page).
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING, Any

from mlflywheel import ledger
from mlflywheel.datasets.spec import DatasetSpec
from mlflywheel.lake import Lake, keys
from mlflywheel.validation.errors import ValidationError
from mlflywheel.validation.publication import publish
from mlflywheel.validation.report import REPORT_SAMPLE_ROWS, render_report
from mlflywheel.validation.suite import (
    COERCION_REASON,
    build_suite,
    partition_expectations,
    run_suite,
    suite_as_dict,
)
from mlflywheel.validation.verdict import (
    Split,
    Verdict,
    judge,
    log_failures,
    outcomes,
    prepare,
    split_rows,
    suite_frame,
    to_schema_types,
)

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = [
    "COERCION_REASON",
    "ValidationError",
    "build_suite",
    "partition_expectations",
    "render_report",
    "suite_as_dict",
    "to_schema_types",
    "validate_partition",
]

log = logging.getLogger("mlflywheel.validation")


def validate_partition(
    lake: Lake,
    spec: DatasetSpec,
    day: dt.date,
    *,
    run_id: str,
    max_failed_row_fraction: float = 0.2,
    ledger_sink: ledger.LedgerSink | None = None,
) -> dict[str, Any]:
    """Validate the raw partition of ``day``, publish validated and quarantined rows, return the summary.

    ``ledger_sink`` (e.g. :func:`mlflywheel.ledger.sink_from_settings`) records the summary
    beside the lake's, in this same step that publishes the partition.

    The summary (also written to the ledger) has dataset, partition, status, rows_in,
    rows_validated, rows_quarantined, reasons (reason -> rows), partition_failures, run_id,
    report_key and validated_at.
    """
    if not 0.0 <= max_failed_row_fraction <= 1.0:
        raise ValueError(f"max_failed_row_fraction must be in [0, 1], got {max_failed_row_fraction}")
    where = f"{spec.name} {day.isoformat()}"
    frame = read_raw_partition(lake, spec, day, run_id=run_id)
    if isinstance(frame, dict):  # ingest quarantined the whole file in this run: its summary stands
        return frame

    suite = build_suite(spec, day)
    result = run_suite(suite_frame(frame), suite)
    verdict = judge(spec, frame, outcomes(result, frame), max_failed_row_fraction)
    log_failures(where, verdict, len(frame))
    split = split_rows(spec, frame, verdict, where=where)

    commit_id = keys.new_version()  # the report names its own key, so the commit id comes first
    summary = partition_summary(spec, day, split, verdict, rows_in=len(frame), run_id=run_id, commit_id=commit_id)
    report_html = render_report(spec, summary, verdict.outcomes, split.failing_sample.head(REPORT_SAMPLE_ROWS))
    summary = publish(
        lake, day, split, summary, report_html=report_html, verdict=verdict, suite=suite, result=result,
        ledger_sink=ledger_sink, commit_id=commit_id,
    )  # fmt: skip
    log.info(
        "%s: %s (rows_in=%d validated=%d quarantined=%d) report %s",
        where, split.status, len(frame), split.rows_validated, len(split.quarantined),
        lake.url(summary["report_key"]),
    )  # fmt: skip
    return summary


def read_raw_partition(lake: Lake, spec: DatasetSpec, day: dt.date, *, run_id: str) -> pd.DataFrame | dict:
    """The raw partition ready for the suite, or the ledger summary of a file that ingest
    quarantined whole in this same run (nothing to validate then)."""
    where = f"{spec.name} {day.isoformat()}"
    raw_manifest = lake.manifest(keys.RAW, spec.name, day)
    if raw_manifest is None:
        earlier = ledger.read_summary(lake, spec.name, day)
        if earlier and earlier.get("status") == "quarantined" and earlier.get("run_id") == run_id:
            log.info(
                "%s: no raw partition; ingest quarantined it in run %s, keeping its summary", where, run_id
            )
            return earlier
        raise ValidationError(
            f"{where}: no raw partition at {keys.partition_prefix(keys.RAW, spec.name, day)} "
            f"(run {run_id}); run ingest for this day first"
        )
    frame = prepare(lake.read_frame(keys.RAW, spec.name, day))
    declared = raw_manifest.get("rows_in")
    if declared is not None and int(declared) != len(frame):
        raise ValidationError(
            f"{where}: raw manifest says rows_in={declared} but the raw data has {len(frame)} rows"
        )
    return frame


def partition_summary(
    spec: DatasetSpec,
    day: dt.date,
    split: Split,
    verdict: Verdict,
    *,
    rows_in: int,
    run_id: str,
    commit_id: str | None = None,
) -> dict[str, Any]:
    """The partition's ledger summary."""
    return {
        "dataset": spec.name,
        "partition": day.isoformat(),
        "status": split.status,
        "rows_in": rows_in,
        "rows_validated": split.rows_validated,
        "rows_quarantined": len(split.quarantined),
        "reasons": split.reason_counts,
        "partition_failures": list(verdict.partition_failures),
        "run_id": run_id,
        "report_key": keys.validation_report_key(spec.name, day, version=commit_id),
        "validated_at": dt.datetime.now(dt.UTC).isoformat(),
    }
