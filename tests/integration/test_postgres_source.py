"""The PostgreSQL source lands exactly a day's rows, in a file ingest and validation accept as is."""

from __future__ import annotations

import datetime as dt
import io

import pandas as pd
import psycopg2
import pytest
from mlflywheel.datasets.landing import is_landed, landing_key
from mlflywheel.datasets.upstreams.transactions import TRANSACTIONS as SPEC
from mlflywheel.datasets.upstreams.transactions import generate_day
from mlflywheel.ingest import ingest_partition, read_raw
from mlflywheel.lake import LocalLake
from mlflywheel.sources.postgres import (
    SourceError,
    count_rows_for_day,
    extract_partition_to_landing,
    load_frame_to_table,
)
from mlflywheel.validation import validate_partition
from postgres_fixtures import execute, temporary_database

DAYS = [dt.date(2026, 11, 4), dt.date(2026, 11, 5), dt.date(2026, 11, 6)]
DAY = DAYS[1]
TABLE = "transactions_source"
ROWS_PER_DAY = 30


def _seed_frame() -> pd.DataFrame:
    """Three days of rows with some event times exactly on the midnights around ``DAY``."""
    frames = [generate_day(day, ROWS_PER_DAY, seed=7) for day in DAYS]
    midnight = pd.Timestamp(DAY.isoformat(), tz="UTC")
    next_midnight = midnight + pd.Timedelta(days=1)
    ts = SPEC.timestamp_column
    frames[0].loc[frames[0].index[-2:], ts] = midnight  # previous day's last rows: start of DAY (in)
    frames[1].loc[frames[1].index[0], ts] = midnight  # DAY's first row: its own start (in)
    frames[1].loc[frames[1].index[-1], ts] = next_midnight  # DAY's last row: next day's start (out)
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def source():
    """A fresh database with the seeded source table; yields (uri, seeded frame)."""
    with temporary_database("flywheel_source") as uri:
        seeded = _seed_frame()
        assert load_frame_to_table(uri, TABLE, SPEC, seeded) == len(seeded)
        yield uri, seeded


def _expected_day(seeded: pd.DataFrame, day: dt.date) -> pd.DataFrame:
    start = pd.Timestamp(day.isoformat(), tz="UTC")
    ts = seeded[SPEC.timestamp_column]
    in_day = (ts >= start) & (ts < start + pd.Timedelta(days=1))
    return seeded[in_day].sort_values(SPEC.id_column).reset_index(drop=True)


def test_extracts_exactly_the_day_and_ingest_and_validation_accept_it(source, tmp_path):
    uri, seeded = source
    lake = LocalLake(tmp_path)
    expected = _expected_day(seeded, DAY)
    # The boundary rows really are in play: two moved in from the day before, one moved out.
    assert len(expected) == ROWS_PER_DAY - 1 + 2

    result = extract_partition_to_landing(lake, SPEC, DAY, postgres_uri=uri, table=TABLE)
    assert result == {
        "rows": len(expected),
        "landing_key": landing_key(SPEC, DAY),
        "source": "postgres",
        "table": TABLE,
        "partition": DAY.isoformat(),
    }
    assert is_landed(lake, SPEC, DAY)
    assert count_rows_for_day(uri, TABLE, SPEC, DAY) == len(expected)
    landed = pd.read_csv(io.BytesIO(lake.get_bytes(result["landing_key"])), dtype=str)
    assert list(landed.columns) == SPEC.column_names
    assert landed[SPEC.id_column].tolist() == expected[SPEC.id_column].tolist()  # ORDER BY id

    ingested = ingest_partition(lake, SPEC, DAY, run_id="run-pg")
    assert ingested["rows_in"] == result["rows"]
    assert ingested["coercion_errors"] == 0  # Postgres' timestamp text parses as ISO-8601 UTC
    raw = read_raw(lake, SPEC, DAY).sort_values(SPEC.id_column).reset_index(drop=True)
    # Every value survives the round trip (timestamps to the millisecond, doubles exactly, nulls).
    pd.testing.assert_frame_equal(raw[SPEC.column_names], expected, check_dtype=False)

    summary = validate_partition(lake, SPEC, DAY, run_id="run-pg")
    assert summary["status"] == "validated", summary["reasons"]
    assert summary["rows_in"] == summary["rows_validated"] == result["rows"]


def test_schema_qualified_and_quoted_table_names(source, tmp_path):
    uri, seeded = source
    expected = _expected_day(seeded, DAY)
    execute(uri, 'CREATE SCHEMA "src"')
    for table in ("src.events", 'Weird "Name"'):
        assert load_frame_to_table(uri, table, SPEC, seeded) == len(seeded)
        lake = LocalLake(tmp_path / "lake")
        result = extract_partition_to_landing(lake, SPEC, DAY, postgres_uri=uri, table=table)
        assert result["rows"] == len(expected) == count_rows_for_day(uri, table, SPEC, DAY)
    assert execute(uri, 'SELECT count(*) FROM "src"."events"') == [(len(seeded),)]
    assert execute(uri, 'SELECT count(*) FROM "Weird ""Name"""') == [(len(seeded),)]


@pytest.mark.parametrize("table", ["x; DROP TABLE victim", "public.x; DROP TABLE victim; --"])
def test_injection_looking_name_is_just_a_missing_table(source, tmp_path, table):
    uri, _ = source
    execute(uri, "CREATE TABLE IF NOT EXISTS victim (id int)")
    lake = LocalLake(tmp_path)
    with pytest.raises(SourceError, match="does not exist"):
        extract_partition_to_landing(lake, SPEC, DAY, postgres_uri=uri, table=table)
    assert execute(uri, "SELECT to_regclass('victim') IS NOT NULL") == [(True,)]  # nothing dropped
    assert not is_landed(lake, SPEC, DAY)  # nothing landed either


@pytest.mark.parametrize("table", ["", "  ", "schema.", ".table"])
def test_empty_table_names_are_rejected(tmp_path, table):
    with pytest.raises(ValueError, match="table name"):
        # Rejected before any connection is tried (the URI points nowhere).
        extract_partition_to_landing(
            LocalLake(tmp_path), SPEC, DAY, postgres_uri="postgresql://unused", table=table
        )


def test_table_missing_a_schema_column_fails_clearly(source, tmp_path):
    uri, _ = source
    execute(uri, "CREATE TABLE narrow (transaction_id text, event_time timestamptz)")
    with pytest.raises(SourceError, match="lacks a column"):
        extract_partition_to_landing(LocalLake(tmp_path), SPEC, DAY, postgres_uri=uri, table="narrow")


def test_unreachable_server_raises_for_a_retry(tmp_path):
    with pytest.raises(psycopg2.OperationalError):
        extract_partition_to_landing(
            LocalLake(tmp_path), SPEC, DAY, postgres_uri="postgresql://postgres@127.0.0.1:1/none", table=TABLE
        )


def test_empty_day_lands_an_empty_partition_that_validation_quarantines(source, tmp_path):
    uri, _ = source
    lake = LocalLake(tmp_path)
    empty_day = dt.date(2026, 11, 20)
    result = extract_partition_to_landing(lake, SPEC, empty_day, postgres_uri=uri, table=TABLE)
    assert result["rows"] == 0
    assert is_landed(lake, SPEC, empty_day)
    header_only = ",".join(SPEC.column_names)
    assert lake.get_bytes(result["landing_key"]).decode().strip() == header_only

    assert ingest_partition(lake, SPEC, empty_day, run_id="run-empty")["rows_in"] == 0
    summary = validate_partition(lake, SPEC, empty_day, run_id="run-empty")
    assert summary["status"] == "quarantined"
    assert summary["rows_in"] == summary["rows_validated"] == summary["rows_quarantined"] == 0
    assert any("empty" in failure for failure in summary["partition_failures"])
