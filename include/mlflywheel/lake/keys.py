"""Where everything lives in the lake: the one module that knows key layouts.

Zones (top-level prefixes):
  landing/     files as the upstream delivers them (plus a ``_SUCCESS`` marker when complete)
  raw/         the landing file normalised to the dataset schema, as Parquet
  validated/   rows that passed the expectation suite
  quarantine/  rows or whole partitions that failed, with reasons and the validation result
  reports/     ingest ledger summaries, validation reports, drift reports (JSON + HTML)
  snapshots/   training snapshots (train / validation / holdout) with lineage
  state/       small state documents (drift events)

A partition lives at ``<zone>/<dataset>/dt=YYYY-MM-DD/``; its data files sit under a version
folder ``v=<version>/``. What names the current version is the partition's commit point, one
object written last: ``_MANIFEST.json`` in the partition's folder for a zone published alone
(raw), and for the zones a partition's result spans (validated, quarantine, with the validation
report and the ledger summary) the partition's commit record, which is its ledger summary
(:func:`partition_commit_key`), so all of them switch together. Stages
never build keys themselves: they ask this module, so a layout change is made here once.
Meta columns (names starting with ``_``) ride beside the schema's columns in raw and quarantined
partitions. The day window of a partition is the UTC day ``[00:00, next day 00:00)``.
Standard library only: DAG files import this at parse time.
"""

from __future__ import annotations

import datetime as dt
import uuid

from mlflywheel.lake.errors import LakeError

# --- zones ---------------------------------------------------------------------------------
LANDING = "landing"
RAW = "raw"
VALIDATED = "validated"
QUARANTINE = "quarantine"
REPORTS = "reports"
SNAPSHOTS = "snapshots"
STATE = "state"
ZONES = (LANDING, RAW, VALIDATED, QUARANTINE, REPORTS, SNAPSHOTS, STATE)
# The zones of a partition's result: resolved through its one commit record, never separately.
COMMITTED_ZONES = (VALIDATED, QUARANTINE)

# --- markers and file names ----------------------------------------------------------------
MANIFEST = "_MANIFEST.json"  # a partition's commit point
SUCCESS_MARKER = "_SUCCESS"  # the upstream's "delivery complete" marker in landing/
DATA_FILE = "data.parquet"  # the rows of a raw, validated or quarantined partition
DUPLICATE_IDS_FILE = "duplicate_ids.parquet"  # a raw partition's ids that occur twice (see ingest)
RAW_META_FILE = "meta.parquet"  # beside a raw data file, row for row: _row, _coercion_errors, unknown columns
VERSION_PREFIX = "v="  # a partition's version folder: v=<version>/
DAY_PREFIX = "dt="  # a partition's folder: dt=YYYY-MM-DD/
TEMP_PREFIX = ".tmp-"  # an object being written (local lake); never listed
REPORT_JSON = "report.json"
REPORT_HTML = "report.html"
SUMMARY_JSON = "summary.json"
SNAPSHOT_MANIFEST = "manifest.json"  # a snapshot's commit point

# --- meta columns --------------------------------------------------------------------------
META_PREFIX = "_"
ROW_COLUMN = "_row"  # the record's 0-based position in the landing file
COERCION_ERRORS_COLUMN = "_coercion_errors"  # JSON {column: original text} of values that did not cast
QUARANTINE_REASONS_COLUMN = "_quarantine_reasons"  # why a quarantined row failed
# A row's id when the dataset declares no id column: "<YYYY-MM-DD>:<_row>", stable across
# re-runs on the same delivery; written by ingest, kept in validated partitions and snapshots.
ROW_ID_COLUMN = "_row_id"


def derived_row_id(day: dt.date, row: int) -> str:
    """The id of the ``row``-th record (0-based) of ``day``'s landed file."""
    return f"{day.isoformat()}:{row}"


def is_meta_column(name: object) -> bool:
    return str(name).startswith(META_PREFIX)


# --- partitions ----------------------------------------------------------------------------
def dataset_prefix(zone: str, dataset: str) -> str:
    """``<zone>/<dataset>/``: every partition of a dataset in a zone."""
    if zone not in ZONES:
        raise LakeError(f"unknown zone {zone!r}; zones are {', '.join(ZONES)}")
    return f"{zone}/{dataset}/"


def partition_prefix(zone: str, dataset: str, day: dt.date) -> str:
    return f"{dataset_prefix(zone, dataset)}{DAY_PREFIX}{day.isoformat()}"


def manifest_key(zone: str, dataset: str, day: dt.date) -> str:
    return f"{partition_prefix(zone, dataset, day)}/{MANIFEST}"


def version_folder(version: str) -> str:
    return f"{VERSION_PREFIX}{version}"


def new_version() -> str:
    """A fresh version (commit) id: sortable by time, unique by a random suffix."""
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]


def folder_day(folder: str) -> dt.date | None:
    """The day of a ``dt=YYYY-MM-DD`` folder name; None for anything else (``dt=not-a-date``)."""
    if not folder.startswith(DAY_PREFIX):
        return None
    try:
        return dt.date.fromisoformat(folder[len(DAY_PREFIX) :])
    except ValueError:
        return None


def partition_file_key(zone: str, dataset: str, day: dt.date, version: str, name: str) -> str:
    return f"{partition_prefix(zone, dataset, day)}/{version_folder(version)}/{name}"


def manifest_day(key: str, zone: str, dataset: str) -> dt.date | None:
    """The day of ``<zone>/<dataset>/dt=D/_MANIFEST.json``; None for any other key
    (and for a folder ``dt=...`` that is not a day)."""
    parts = key.split("/")
    if len(parts) == 4 and parts[:2] == [zone, dataset] and parts[3] == MANIFEST:
        return folder_day(parts[2])
    return None


# --- landing -------------------------------------------------------------------------------
def landing_key(dataset: str, day: dt.date, landing_format: str = "csv") -> str:
    """Where the upstream delivers the day's file."""
    return f"{partition_prefix(LANDING, dataset, day)}/data.{landing_format}"


def landing_marker_key(dataset: str, day: dt.date) -> str:
    """Written by the upstream after the file: the partition is complete."""
    return f"{partition_prefix(LANDING, dataset, day)}/{SUCCESS_MARKER}"


# --- reports and state ---------------------------------------------------------------------
def ledger_prefix(dataset: str) -> str:
    return f"{REPORTS}/ingest/{dataset}/"


def ledger_summary_key(dataset: str, day: dt.date) -> str:
    """The ingestion ledger's summary of one partition."""
    return f"{ledger_prefix(dataset)}{DAY_PREFIX}{day.isoformat()}/{SUMMARY_JSON}"


def partition_commit_key(dataset: str, day: dt.date) -> str:
    """A partition's commit record: its ledger summary, naming the versions of its validated and
    quarantined rows and of its validation report (see :meth:`mlflywheel.lake.Lake.commit_partition`)."""
    return ledger_summary_key(dataset, day)


def validation_report_prefix(dataset: str, day: dt.date) -> str:
    return f"{REPORTS}/validation/{dataset}/{DAY_PREFIX}{day.isoformat()}"


def validation_report_key(dataset: str, day: dt.date, name: str = REPORT_HTML, version: str | None = None) -> str:
    """A file of the partition's validation report (``report.html``, ``summary.json``); with
    ``version``, the file of that commit (``.../v=<version>/<name>``), as commits write them."""
    folder = validation_report_prefix(dataset, day)
    return f"{folder}/{version_folder(version)}/{name}" if version else f"{folder}/{name}"


def drift_reports_prefix(dataset: str) -> str:
    return f"{REPORTS}/drift/{dataset}/"


def drift_report_key(dataset: str, day: dt.date, name: str = REPORT_JSON) -> str:
    """A file of the day's drift report (``report.json``, ``report.html``)."""
    return f"{drift_reports_prefix(dataset)}{DAY_PREFIX}{day.isoformat()}/{name}"


def drift_state_key(dataset: str) -> str:
    """The drift-event state of a dataset (open event, last backfill)."""
    return f"{STATE}/drift/{dataset}.json"


def snapshots_prefix(dataset: str) -> str:
    return f"{SNAPSHOTS}/{dataset}/"


def snapshot_prefix(dataset: str, snapshot_id: str) -> str:
    return f"{snapshots_prefix(dataset)}{snapshot_id}"


def snapshot_key(dataset: str, snapshot_id: str, name: str = SNAPSHOT_MANIFEST) -> str:
    """A file of a training snapshot: a split (``train.parquet``, ...) or its ``manifest.json``."""
    return f"{snapshot_prefix(dataset, snapshot_id)}/{name}"


# --- days ----------------------------------------------------------------------------------
def day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """The partition's UTC window: ``[day 00:00, next day 00:00)``."""
    start = dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)
    return start, start + dt.timedelta(days=1)


def window_days(end_day: dt.date, window: int) -> list[dt.date]:
    """The ``window`` days ending with ``end_day`` (inclusive), oldest first."""
    return [end_day - dt.timedelta(days=i) for i in range(window - 1, -1, -1)]
