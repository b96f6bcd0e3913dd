"""The Postgres ledger table mirrors the lake's partition summaries, one upserted row per partition."""

from __future__ import annotations

import datetime as dt

import psycopg2.errors
import pytest
from mlflywheel.datasets.landing import land_bytes, land_frame
from mlflywheel.datasets.upstreams.transactions import TRANSACTIONS as SPEC
from mlflywheel.datasets.upstreams.transactions import generate_day
from mlflywheel.ingest import ingest_partition
from mlflywheel.lake import LocalLake
from mlflywheel.ledger import LedgerError, read_summary, sink_from_settings, write_summary
from mlflywheel.ledger_postgres import PostgresLedgerSink
from mlflywheel.settings import Settings
from mlflywheel.validation import validate_partition
from postgres_fixtures import execute, temporary_database

DAY = dt.date(2026, 11, 5)


def _summary(**changes) -> dict:
    base = {
        "dataset": "ds",
        "partition": DAY.isoformat(),
        "status": "partially_quarantined",
        "rows_in": 10,
        "rows_validated": 7,
        "rows_quarantined": 3,
        "reasons": {"amount outside [0.0, 50000.0]": 3},
        "run_id": "run-1",
    }
    return {**base, **changes}


@pytest.fixture(scope="module")
def database_uri():
    with temporary_database("flywheel_ledger") as uri:
        yield uri


@pytest.fixture
def sink(database_uri, request):
    """A sink on a table of its own per test (tests share the module's database)."""
    return PostgresLedgerSink(database_uri, f"ledger_{request.node.name[:40]}")


def test_upsert_twice_is_one_updated_row(sink):
    assert sink.read("ds", DAY) is None and sink.list("ds") == []  # reading creates nothing
    sink.record(_summary())
    first = sink.read("ds", DAY)
    sink.record(
        _summary(run_id="run-2", status="validated", rows_validated=10, rows_quarantined=0, reasons={})
    )
    rows = sink.list("ds")
    assert len(rows) == 1
    row = rows[0]
    fields = (row["run_id"], row["status"], row["rows_validated"], row["rows_quarantined"])
    assert fields == ("run-2", "validated", 10, 0)
    assert row["partition"] == DAY.isoformat()
    assert row["validation_summary"]["run_id"] == "run-2"
    assert row["updated_at"] >= first["updated_at"]


def test_list_orders_partitions_and_separates_datasets(sink):
    for day in ("2026-11-07", "2026-11-05", "2026-11-06"):
        sink.record(_summary(partition=day))
    sink.record(_summary(dataset="other"))
    assert [r["partition"] for r in sink.list("ds")] == ["2026-11-05", "2026-11-06", "2026-11-07"]
    assert len(sink.list("other")) == 1


def test_check_constraint_rejects_a_broken_summary(sink, tmp_path):
    broken = _summary(rows_validated=8)  # 8 + 3 != 10
    with pytest.raises(psycopg2.errors.CheckViolation):
        sink.record(broken)  # the table's own guard, for writers that bypass write_summary
    assert sink.read("ds", DAY) is None

    lake = LocalLake(tmp_path)
    with pytest.raises(LedgerError, match="rows_in=10"):
        write_summary(lake, broken, sink=sink)  # rejected before either write
    assert sink.read("ds", DAY) is None and read_summary(lake, "ds", DAY) is None


def test_write_summary_writes_table_and_lake(sink, tmp_path):
    lake = LocalLake(tmp_path)
    write_summary(lake, _summary(), sink=sink)
    assert sink.read("ds", DAY)["validation_summary"] == read_summary(lake, "ds", DAY)


def test_quoted_schema_qualified_ledger_table(database_uri):
    execute(database_uri, 'CREATE SCHEMA IF NOT EXISTS "Ops"')
    sink = PostgresLedgerSink(database_uri, 'Ops.ingest "ledger"')
    sink.record(_summary())
    assert execute(database_uri, 'SELECT count(*) FROM "Ops"."ingest ""ledger"""') == [(1,)]
    with pytest.raises(ValueError, match="table name"):
        PostgresLedgerSink(database_uri, "")


def test_sink_from_settings(database_uri):
    assert sink_from_settings(Settings()) is None
    sink = sink_from_settings(Settings(ledger_uri=database_uri, ledger_table="from_settings"))
    assert isinstance(sink, PostgresLedgerSink) and sink.table == "from_settings"


def test_ingest_and_validation_with_the_sink_agree_with_the_lake(sink, tmp_path):
    lake = LocalLake(tmp_path)
    frame = generate_day(DAY, 40, seed=3)
    frame.loc[frame.index[:3], "amount"] = -5.0  # three rows fail: partially quarantined
    land_frame(lake, SPEC, DAY, frame)
    ingest_partition(lake, SPEC, DAY, run_id="run-1", ledger_sink=sink)
    summary = validate_partition(lake, SPEC, DAY, run_id="run-1", ledger_sink=sink)
    assert summary["status"] == "partially_quarantined"

    row = sink.read(SPEC.name, DAY)
    lake_summary = read_summary(lake, SPEC.name, DAY)
    counts = ("rows_in", "rows_validated", "rows_quarantined", "status", "run_id")
    assert {k: row[k] for k in counts} == {k: lake_summary[k] for k in counts} == {
        "rows_in": 40, "rows_validated": 37, "rows_quarantined": 3,
        "status": "partially_quarantined", "run_id": "run-1",
    }
    assert row["validation_summary"] == lake_summary

    # An unreadable re-delivery: ingest quarantines the file whole and updates the same row.
    land_bytes(lake, SPEC, DAY, b"\x00\x01 not a csv")
    ingest_partition(lake, SPEC, DAY, run_id="run-2", ledger_sink=sink)
    assert [(r["status"], r["run_id"]) for r in sink.list(SPEC.name)] == [("quarantined", "run-2")]
    assert sink.read(SPEC.name, DAY)["validation_summary"] == read_summary(lake, SPEC.name, DAY)
