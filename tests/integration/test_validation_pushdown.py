"""Validation inside PostgreSQL gives the lake path's result, row for row, on a real server.

Each case validates one day of one source table twice: the lake path (extract to landing, ingest,
validate on pandas) into one lake, :func:`validate_in_postgres` into another; the summaries, the
validated rows and the quarantined rows with their reasons must be equal.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging

import pandas as pd
import psycopg2
import pytest
from mlflywheel.datasets.spec import Expectation
from mlflywheel.datasets.upstreams.transactions import TRANSACTIONS, generate_day
from mlflywheel.ingest import ingest_partition, raw
from mlflywheel.lake import LocalLake, keys
from mlflywheel.settings import Settings
from mlflywheel.sources.postgres import SourceError, extract_partition_to_landing, load_frame_to_table
from mlflywheel.validation import pushdown, validate_partition
from mlflywheel.validation.pushdown import PushdownError, validate_in_postgres
from mlflywheel.validation.pushdown_sql import row_predicate
from postgres_fixtures import execute, temporary_database
from psycopg2 import sql

# Text rules on every string column, so the length and formula checks run too.
SPEC = dataclasses.replace(TRANSACTIONS, max_text_length=24, reject_formulas=True)
BAD, GOOD, OVER, DUPES = (dt.date(2026, 11, d) for d in (5, 6, 7, 8))
EMPTY = dt.date(2026, 11, 20)
TABLE = "events"
ROWS = 120
SUMMARY_KEYS = (
    "dataset", "partition", "status", "rows_in", "rows_validated", "rows_quarantined", "reasons",
    "partition_failures", "run_id",
)  # fmt: skip


def _frames() -> pd.DataFrame:
    frames = {day: generate_day(day, ROWS, seed=day.day) for day in (BAD, GOOD, OVER, DUPES)}
    bad = frames[BAD]
    bad.loc[0:1, "amount"] = -5.0  # out of range
    bad.loc[2, "amount"] = None  # missing
    bad.loc[3, "currency"] = "XXX"  # not in the vocabulary
    bad.loc[4, ["amount", "currency"]] = [70_000.0, "JPY"]  # two reasons
    bad.loc[5, "account_age_days"] = 30_000  # int out of range
    bad.loc[6, "is_fraud"] = 2
    bad.loc[7, "customer_id"] = "=HYPERLINK(x)"  # a formula
    bad.loc[8, "customer_id"] = "c-" + "9" * 30  # too long
    bad.loc[9, "transaction_id"] = bad.loc[10, "transaction_id"]  # a duplicate id
    bad.loc[11, "merchant_category"] = None
    ts = "event_time"
    bad.loc[12, ts] = pd.Timestamp(BAD.isoformat(), tz="UTC")  # the day's first instant: in
    bad.loc[13, ts] = pd.Timestamp(GOOD.isoformat(), tz="UTC")  # the next day's first: out (in GOOD)
    frames[OVER].loc[0 : int(ROWS * 0.4), "amount"] = -1.0  # 41% of the rows fail
    dupes = frames[DUPES]
    dupes.loc[1:3, "transaction_id"] = dupes.loc[0, "transaction_id"]  # one id four times
    dupes.loc[5] = dupes.loc[4]  # a row twice, every value equal
    return pd.concat(frames.values(), ignore_index=True)


@pytest.fixture(scope="module")
def source():
    """A fresh database with the source table, plus values only SQL can store: empty texts, NaN, infinities."""
    with temporary_database("flywheel_pushdown") as uri:
        seeded = _frames()
        assert load_frame_to_table(uri, TABLE, SPEC, seeded) == len(seeded)
        day_ids = seeded[seeded.event_time.dt.date == BAD].transaction_id.tolist()
        for value, column, row in (
            ("", "customer_id", 20), ("", "currency", 21), ("NaN", "amount", 22), ("Infinity", "amount", 23),
            ("-Infinity", "distance_from_home_km", 24), ("NaN", "distance_from_home_km", 25),
        ):  # fmt: skip
            statement = sql.SQL("UPDATE {} SET {} = %s WHERE transaction_id = %s").format(
                sql.Identifier(TABLE), sql.Identifier(column)
            )
            execute(uri, statement, (value, day_ids[row]))
        yield uri


def _lake_path(uri: str, spec, day: dt.date, lake: LocalLake, fraction: float = 0.2) -> dict:
    extract_partition_to_landing(lake, spec, day, postgres_uri=uri, table=TABLE)
    ingest_partition(lake, spec, day, run_id="run-1")
    return validate_partition(lake, spec, day, run_id="run-1", max_failed_row_fraction=fraction)


def _zone(lake: LocalLake, zone: str, spec, day: dt.date) -> pd.DataFrame | None:
    return lake.read_frame(zone, spec.name, day) if lake.manifest(zone, spec.name, day) else None


def _assert_same_result(
    uri: str, spec, day: dt.date, tmp_path, fraction: float = 0.2, chunk_rows: int | None = None
) -> dict:
    lake_path, in_postgres = LocalLake(tmp_path / "lake-path"), LocalLake(tmp_path / "in-postgres")
    expected = _lake_path(uri, spec, day, lake_path, fraction)
    overrides = {} if chunk_rows is None else {"partition_chunk_rows": chunk_rows}
    got = validate_in_postgres(
        in_postgres,
        spec,
        day,
        postgres_uri=uri,
        table=TABLE,
        run_id="run-1",
        max_failed_row_fraction=fraction,
        settings=Settings.from_env(**overrides),
    )
    assert {k: got[k] for k in SUMMARY_KEYS} == {k: expected[k] for k in SUMMARY_KEYS}
    assert got["rows_in"] == got["rows_validated"] + got["rows_quarantined"]
    assert (got["validated_in"], got["source_table"]) == ("postgres", TABLE)
    for zone in (keys.VALIDATED, keys.QUARANTINE):
        want, have = _zone(lake_path, zone, spec, day), _zone(in_postgres, zone, spec, day)
        assert (want is None) == (have is None), zone
        if want is not None:  # same rows, same values and types, same reasons, in the same order
            pd.testing.assert_frame_equal(have, want)
    assert in_postgres.manifest(keys.RAW, spec.name, day) is None  # raw holds nothing in this mode
    assert in_postgres.exists(got["report_key"])
    return got


def test_a_day_with_bad_rows_of_each_kind(source, tmp_path):
    got = _assert_same_result(source, SPEC, BAD, tmp_path)
    assert got["status"] == "partially_quarantined"
    reasons = got["reasons"]
    # Every kind of bad row really is in play (the lake path agreed on each above).
    for reason in (
        "amount outside [0.0, 50000.0]", "amount is missing or not a valid float", "currency not in its vocabulary",
        "account_age_days outside [0, 20000]", "is_fraud outside [0, 1]", "duplicate transaction_id",
        "customer_id longer than 24 characters", "customer_id is missing or not a valid string",
        "merchant_category is missing or not a valid string", "value could not be read as its type",
    ):  # fmt: skip
        assert reasons.get(reason), (reason, reasons)
    assert any("spreadsheet formula" in reason for reason in reasons)
    quarantined = LocalLake(tmp_path / "in-postgres").read_frame(keys.QUARANTINE, SPEC.name, BAD)
    two = quarantined[quarantined.currency == "JPY"][keys.QUARANTINE_REASONS_COLUMN].item()
    assert two == "amount outside [0.0, 50000.0]; currency not in its vocabulary"
    infinite = quarantined[quarantined[keys.COERCION_ERRORS_COLUMN].notna()]
    assert sorted(infinite[keys.COERCION_ERRORS_COLUMN]) == [
        '{"amount": "Infinity"}',
        '{"distance_from_home_km": "-Infinity"}',
    ]


def test_an_all_good_day(source, tmp_path):
    got = _assert_same_result(source, SPEC, GOOD, tmp_path)
    assert got["status"] == "validated" and got["rows_quarantined"] == 0
    assert got["rows_in"] == ROWS + 1  # the row moved in from BAD's next midnight


def test_an_empty_day(source, tmp_path):
    got = _assert_same_result(source, SPEC, EMPTY, tmp_path)
    assert got["status"] == "quarantined" and got["rows_in"] == 0
    assert got["partition_failures"] == ["the partition is empty (observed 0)"]


def test_a_day_above_the_failed_row_limit(source, tmp_path):
    got = _assert_same_result(source, SPEC, OVER, tmp_path)
    assert got["status"] == "quarantined" and got["rows_validated"] == 0 and got["rows_quarantined"] == ROWS
    assert "above the limit of 20.0%" in got["partition_failures"][0]


def test_the_limit_is_the_callers(source, tmp_path):
    got = _assert_same_result(source, SPEC, OVER, tmp_path, fraction=0.5)
    assert got["status"] == "partially_quarantined"


def test_duplicate_ids(source, tmp_path):
    got = _assert_same_result(source, SPEC, DUPES, tmp_path)
    assert got["reasons"] == {"duplicate transaction_id": 6}  # every occurrence, the equal rows too


def test_a_spec_without_an_id_column(source, tmp_path):
    # Rows are ordered by time then every column; the derived _row_id rides along.
    spec = dataclasses.replace(SPEC, id_column=None)
    got = _assert_same_result(source, spec, BAD, tmp_path)
    assert "duplicate transaction_id" not in got["reasons"]
    validated = LocalLake(tmp_path / "in-postgres").read_frame(keys.VALIDATED, spec.name, BAD)
    assert validated[keys.ROW_ID_COLUMN].str.startswith(BAD.isoformat() + ":").all()


@pytest.mark.parametrize("chunk_rows", [1, 7])
@pytest.mark.parametrize(
    ("day", "id_column"),
    [(BAD, "transaction_id"), (OVER, "transaction_id"), (DUPES, "transaction_id"), (BAD, None)],
    ids=["partially-quarantined", "quarantined-whole", "duplicates", "no-id-column"],
)
def test_rows_read_back_in_chunks_give_the_same_result(source, tmp_path, monkeypatch, day, id_column, chunk_rows):
    """The extracts are read back and cast chunk_rows rows at a time, each day spanning many chunks
    (a duplicate's occurrences, failing and passing rows, a whole quarantine across them)."""
    cast_rows, original = [], raw.cast_batch

    def counting(batch, *args, **kwargs):
        if kwargs.get("row_ids") is not None:  # the pushdown's casts (ingest's own number the rows)
            cast_rows.append(batch.num_rows)
        return original(batch, *args, **kwargs)

    monkeypatch.setattr(raw, "cast_batch", counting)
    spec = dataclasses.replace(SPEC, id_column=id_column)
    got = _assert_same_result(source, spec, day, tmp_path, chunk_rows=chunk_rows)
    assert got["rows_in"] > 10 * chunk_rows
    assert sum(cast_rows) == got["rows_in"] and max(cast_rows) <= chunk_rows


def test_an_expectation_without_a_sql_predicate_gets_its_rows_from_gx(source, tmp_path, caplog):
    extra = Expectation.rows(
        "expect_column_values_to_match_regex_list", "customer_id is not a customer code",
        column="customer_id", regex_list=["^c-00", "^c-01", "^c-02", "^c-03"], match_on="any",
    )  # fmt: skip
    spec = dataclasses.replace(SPEC, extra_expectations=(extra,))
    assert row_predicate(extra, 0) is None
    with caplog.at_level(logging.WARNING, logger="mlflywheel.validation"):
        got = _assert_same_result(source, spec, GOOD, tmp_path, fraction=1.0)
    assert got["reasons"]["customer_id is not a customer code"] > 0
    assert "listed by Great Expectations" in caplog.text


def test_a_predicate_that_disagrees_with_gx_is_not_trusted(source, tmp_path, monkeypatch, caplog):
    def wrong_for_amount(expectation, position):
        compiled = row_predicate(expectation, position)
        if expectation.kwargs.get("column") == "amount" and expectation.type.endswith("between"):
            return sql.SQL("TRUE")  # every row: not what GX counted
        return compiled

    monkeypatch.setattr(pushdown, "row_predicate", wrong_for_amount)
    with caplog.at_level(logging.WARNING, logger="mlflywheel.validation"):
        _assert_same_result(source, SPEC, BAD, tmp_path)
    assert "using GX's list" in caplog.text


def test_one_snapshot_for_every_query(source, tmp_path, monkeypatch):
    """Rows committed after the run's first query are seen by none of its queries (GX's included)."""
    original = pushdown.day_relation
    before = validate_in_postgres(LocalLake(tmp_path / "before"), SPEC, GOOD, postgres_uri=source, table=TABLE,
                                  run_id="r")  # fmt: skip
    late = generate_day(GOOD, 5, seed=99).assign(
        transaction_id=lambda f: "late-" + f.transaction_id, amount=-1.0
    )

    def insert_then_build(*args):
        load_frame_to_table(source, TABLE, SPEC, late)  # committed by another connection, mid-run
        return original(*args)

    monkeypatch.setattr(pushdown, "day_relation", insert_then_build)
    try:
        during = validate_in_postgres(LocalLake(tmp_path / "during"), SPEC, GOOD, postgres_uri=source, table=TABLE,
                                      run_id="r")  # fmt: skip
    finally:
        execute(
            source,
            sql.SQL("DELETE FROM {} WHERE transaction_id LIKE 'late-%%'").format(sql.Identifier(TABLE)),
        )
    assert {k: during[k] for k in SUMMARY_KEYS} == {k: before[k] for k in SUMMARY_KEYS}
    assert during["status"] == "validated"


def test_a_raw_partition_of_an_earlier_lake_run_is_cleared(source, tmp_path):
    lake = LocalLake(tmp_path)
    _lake_path(source, SPEC, GOOD, lake)
    assert lake.manifest(keys.RAW, SPEC.name, GOOD) is not None
    summary = validate_in_postgres(lake, SPEC, GOOD, postgres_uri=source, table=TABLE, run_id="run-2")
    assert lake.manifest(keys.RAW, SPEC.name, GOOD) is None
    assert lake.commit_record(SPEC.name, GOOD)["run_id"] == "run-2" == summary["run_id"]
    # Re-running replaces the day's result instead of adding to it.
    again = validate_in_postgres(lake, SPEC, GOOD, postgres_uri=source, table=TABLE, run_id="run-3")
    assert (
        len(lake.read_frame(keys.VALIDATED, SPEC.name, GOOD))
        == again["rows_validated"]
        == summary["rows_validated"]
    )


def test_a_column_type_that_does_not_read_back_exactly_is_refused(source, tmp_path):
    columns = ", ".join(
        f'"{c.name}" '
        + {"string": "text", "int": "bigint", "float": "numeric", "datetime": "timestamptz"}[c.dtype]
        for c in SPEC.columns
    )
    execute(source, f"CREATE TABLE numeric_amounts ({columns})")
    with pytest.raises(SourceError, match=r"amount is numeric \(float needs double precision\).*=lake"):
        validate_in_postgres(LocalLake(tmp_path), SPEC, GOOD, postgres_uri=source, table="numeric_amounts",
                             run_id="r")  # fmt: skip
    assert LocalLake(tmp_path).commit_record(SPEC.name, GOOD) is None  # nothing published


def test_missing_table_and_unreachable_server(source, tmp_path):
    with pytest.raises(SourceError, match="does not exist"):
        validate_in_postgres(LocalLake(tmp_path), SPEC, GOOD, postgres_uri=source, table="x; DROP TABLE events",
                             run_id="r")  # fmt: skip
    assert execute(source, f"SELECT count(*) > 0 FROM {TABLE}") == [(True,)]
    with pytest.raises(psycopg2.OperationalError):
        validate_in_postgres(LocalLake(tmp_path), SPEC, GOOD, postgres_uri="postgresql://postgres@127.0.0.1:1/none",
                             table=TABLE, run_id="r")  # fmt: skip


def test_an_expectation_gx_cannot_evaluate_fails_the_run_instead_of_quarantining(source, tmp_path):
    extra = Expectation.rows(
        "expect_column_values_to_match_regex", "bad regex", column="customer_id", regex="("
    )
    spec = dataclasses.replace(SPEC, extra_expectations=(extra,))
    with pytest.raises(PushdownError, match="could not be evaluated"):
        validate_in_postgres(LocalLake(tmp_path), spec, GOOD, postgres_uri=source, table=TABLE, run_id="r")
    assert LocalLake(tmp_path).commit_record(SPEC.name, GOOD) is None


@pytest.mark.parametrize(
    ("kwargs", "compiled"),
    [
        ({"column": "amount", "min_value": 0}, True),
        ({"column": "amount", "min_value": 0, "mostly": 0.9}, True),  # mostly changes success, not the rows
        ({"column": "amount", "min_value": 0, "row_condition": "x>0"}, False),  # another set of rows
        ({"column": "amount", "min_value": {"$PARAMETER": "low"}}, False),  # a suite parameter
        ({"column": "amount"}, False),  # no bound: GX refuses it, so does the compiler
    ],
)
def test_which_between_checks_compile(kwargs, compiled):
    expectation = Expectation("expect_column_values_to_be_between", kwargs, row_level=True, reason="r")
    assert (row_predicate(expectation, 0) is not None) is compiled
