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

The partition is read chunk by chunk (``chunk_rows``): memory follows the chunk, not the
partition. Modules: :mod:`.suite` (the expectations; Great Expectations imported lazily with
analytics off), :mod:`.engines` (one chunk evaluated: ``arrow`` vectorised, or ``gx``, same
outcomes), :mod:`.uniqueness` (duplicate ids across the whole partition), :mod:`.streaming` (the
passes over the chunks, the verdict, the spool files), :mod:`.verdict` (outcomes, reasons, schema
types), :mod:`.publication` (zones, report, ledger in one commit), :mod:`.report` (the HTML page).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mlflywheel import ledger
from mlflywheel.datasets.spec import DatasetSpec
from mlflywheel.lake import Lake, keys
from mlflywheel.validation.engines import ENGINES
from mlflywheel.validation.errors import ValidationError
from mlflywheel.validation.publication import publish_streamed
from mlflywheel.validation.report import REPORT_SAMPLE_ROWS, render_report
from mlflywheel.validation.streaming import Streamed, validate_file
from mlflywheel.validation.suite import (
    COERCION_REASON,
    build_suite,
    partition_expectations,
    suite_as_dict,
)
from mlflywheel.validation.uniqueness import DuplicateIds
from mlflywheel.validation.verdict import Split, Verdict, log_failures, to_schema_types

__all__ = [
    "COERCION_REASON",
    "DEFAULT_CHUNK_ROWS",
    "ENGINES",
    "ValidationError",
    "build_suite",
    "partition_expectations",
    "render_report",
    "suite_as_dict",
    "to_schema_types",
    "validate_partition",
]

log = logging.getLogger("mlflywheel.validation")

DEFAULT_CHUNK_ROWS = 250_000  # the default of FLYWHEEL_PARTITION_CHUNK_ROWS


def validate_partition(
    lake: Lake,
    spec: DatasetSpec,
    day: dt.date,
    *,
    run_id: str,
    max_failed_row_fraction: float = 0.2,
    ledger_sink: ledger.LedgerSink | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    engine: str = "arrow",
) -> dict[str, Any]:
    """Validate the raw partition of ``day``, publish validated and quarantined rows, return the summary.

    ``ledger_sink`` (e.g. :func:`mlflywheel.ledger.sink_from_settings`) records the summary
    beside the lake's, in this same step that publishes the partition. The partition is read
    ``chunk_rows`` rows at a time (``FLYWHEEL_PARTITION_CHUNK_ROWS``), the suite evaluated by
    ``engine`` (``FLYWHEEL_VALIDATION_ENGINE``: ``arrow`` vectorised, or ``gx`` Great
    Expectations; same outcomes, see :mod:`.engines`).

    The summary (also written to the ledger) has dataset, partition, status, rows_in,
    rows_validated, rows_quarantined, reasons (reason -> rows), partition_failures, run_id,
    report_key and validated_at.
    """
    if not 0.0 <= max_failed_row_fraction <= 1.0:
        raise ValueError(f"max_failed_row_fraction must be in [0, 1], got {max_failed_row_fraction}")
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    where = f"{spec.name} {day.isoformat()}"
    raw_manifest = raw_partition_manifest(lake, spec, day, run_id=run_id)
    if "zone" not in raw_manifest:  # ingest quarantined the whole file in this run: its summary stands
        return raw_manifest

    with (
        lake.partition_local_file(keys.RAW, spec.name, day, keys.DATA_FILE) as raw_path,
        _raw_meta_file(lake, spec, day, raw_manifest) as meta_path,
        tempfile.TemporaryDirectory(prefix="flywheel-validate-") as spool,
    ):
        # An all-good day's validated file is the raw data file itself (published, not rewritten).
        streamed = validate_file(
            raw_path, spec, day, Path(spool),
            chunk_rows=chunk_rows, engine=engine, max_failed_row_fraction=max_failed_row_fraction,
            where=where, declared_rows=raw_manifest.get("rows_in"),
            known_duplicates=recorded_duplicates(lake, spec, day, raw_manifest), meta_path=meta_path,
        )  # fmt: skip
        if streamed.validated_path == raw_path:  # copied inside the lake: on S3 its bytes stay there
            streamed.validated_path = lake.partition_object(keys.RAW, spec.name, day, keys.DATA_FILE)
        summary = commit_streamed(lake, spec, day, streamed, run_id=run_id, ledger_sink=ledger_sink)
    log.info(
        "%s: %s (rows_in=%d validated=%d quarantined=%d, engine %s, chunks of %d rows) report %s",
        where, streamed.status, streamed.rows_in, streamed.rows_validated, streamed.rows_quarantined,
        engine, chunk_rows, lake.url(summary["report_key"]),
    )  # fmt: skip
    return summary


@contextlib.contextmanager
def _raw_meta_file(lake: Lake, spec: DatasetSpec, day: dt.date, raw_manifest: dict[str, Any]) -> Iterator[Path | None]:
    """The raw partition's meta file (see :mod:`mlflywheel.ingest`), None for one from before it."""
    if keys.RAW_META_FILE not in raw_manifest.get("files", ()):
        yield None
        return
    with lake.partition_local_file(keys.RAW, spec.name, day, keys.RAW_META_FILE) as path:
        yield path


def recorded_duplicates(
    lake: Lake, spec: DatasetSpec, day: dt.date, raw_manifest: dict[str, Any]
) -> dict[str, DuplicateIds]:
    """The duplicated ids ingest recorded with the raw partition (see :func:`mlflywheel.ingest.raw.write_raw`):
    none for the columns in ``unique_ids``, the values of its duplicates file for those in
    ``duplicate_ids``; a column in neither (or a partition from before) is searched by validation."""
    import pyarrow.parquet as pq

    known = {str(column): DuplicateIds.none() for column in raw_manifest.get("unique_ids") or ()}
    for column in raw_manifest.get("duplicate_ids") or ():
        with lake.partition_local_file(keys.RAW, spec.name, day, keys.DUPLICATE_IDS_FILE) as path:
            known[str(column)] = DuplicateIds.of(pq.read_table(path, columns=[str(column)]).column(0))
    return known


def commit_streamed(
    lake: Lake,
    spec: DatasetSpec,
    day: dt.date,
    streamed: Streamed,
    *,
    run_id: str,
    ledger_sink: ledger.LedgerSink | None = None,
) -> dict[str, Any]:
    """Commit a streamed validation's zones (its spool files), report and ledger summary together;
    returns the summary as recorded."""
    log_failures(f"{spec.name} {day.isoformat()}", streamed.outcomes, streamed.rows_in)
    commit_id = keys.new_version()  # the report names its own key, so the commit id comes first
    summary = streamed_summary(spec, day, streamed, run_id=run_id, commit_id=commit_id)
    report_html = render_report(spec, summary, streamed.outcomes, streamed.failing_sample.head(REPORT_SAMPLE_ROWS))
    return publish_streamed(
        lake, spec, day, streamed, summary, report_html=report_html, ledger_sink=ledger_sink, commit_id=commit_id
    )


def raw_partition_manifest(lake: Lake, spec: DatasetSpec, day: dt.date, *, run_id: str) -> dict[str, Any]:
    """The raw partition's manifest, or the ledger summary of a file that ingest quarantined
    whole in this same run (nothing to validate then)."""
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
    return raw_manifest


def streamed_summary(
    spec: DatasetSpec, day: dt.date, streamed: Streamed, *, run_id: str, commit_id: str | None = None
) -> dict[str, Any]:
    """The partition's ledger summary."""
    return _summary(
        spec, day, streamed.status, streamed.rows_in, streamed.rows_validated, streamed.rows_quarantined,
        streamed.reason_counts, streamed.partition_failures, run_id=run_id, commit_id=commit_id,
    )  # fmt: skip


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
    """The ledger summary of a split held in memory (:func:`.verdict.split_rows`)."""
    return _summary(
        spec, day, split.status, rows_in, split.rows_validated, len(split.quarantined), split.reason_counts,
        verdict.partition_failures, run_id=run_id, commit_id=commit_id,
    )  # fmt: skip


def _summary(
    spec: DatasetSpec,
    day: dt.date,
    status: str,
    rows_in: int,
    rows_validated: int,
    rows_quarantined: int,
    reasons: dict[str, int],
    partition_failures: list[str],
    *,
    run_id: str,
    commit_id: str | None,
) -> dict[str, Any]:
    return {
        "dataset": spec.name,
        "partition": day.isoformat(),
        "status": status,
        "rows_in": rows_in,
        "rows_validated": rows_validated,
        "rows_quarantined": rows_quarantined,
        "reasons": reasons,
        "partition_failures": list(partition_failures),
        "run_id": run_id,
        "report_key": keys.validation_report_key(spec.name, day, version=commit_id),
        "validated_at": dt.datetime.now(dt.UTC).isoformat(),
    }
