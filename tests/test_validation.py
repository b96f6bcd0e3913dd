"""Tests of the validation stage on small hand-made raw partitions of the transactions spec."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os

import numpy as np
import pandas as pd
import pytest

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

from mlflywheel import ledger, validation
from mlflywheel.datasets.upstreams.transactions import (
    CHANNELS,
    COUNTRIES,
    CURRENCIES,
    MERCHANT_CATEGORIES,
    TRANSACTIONS,
)
from mlflywheel.lake import LocalLake, frame_to_parquet

DAY = dt.date(2026, 11, 3)
ROWS = 200
SPEC = TRANSACTIONS


@pytest.fixture(scope="module", autouse=True)
def _warm_gx() -> None:
    # The GX import and ephemeral context are cached in the module: pay for them once.
    validation.suite._batch_definition()


@pytest.fixture
def lake(tmp_path) -> LocalLake:
    return LocalLake(tmp_path / "lake")


def clean_frame(rows: int = ROWS, seed: int = 7) -> pd.DataFrame:
    """A raw frame as ingest writes it: schema dtypes, ``_row`` and null ``_coercion_errors``."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp(DAY, tz="UTC")
    return pd.DataFrame(
        {
            "transaction_id": [f"t-{i:05d}" for i in range(rows)],
            "event_time": start + pd.to_timedelta(np.sort(rng.integers(0, 86_400, rows)), unit="s"),
            "customer_id": [f"c-{i % 37}" for i in range(rows)],
            "amount": rng.uniform(1, 500, rows).round(2),
            "currency": rng.choice(CURRENCIES, rows).astype(object),
            "merchant_category": rng.choice(MERCHANT_CATEGORIES, rows).astype(object),
            "country": rng.choice(COUNTRIES, rows).astype(object),
            "channel": rng.choice(CHANNELS, rows).astype(object),
            "account_age_days": pd.array(rng.integers(0, 3000, rows), dtype="Int64"),
            "txn_count_24h": pd.array(rng.integers(0, 20, rows), dtype="Int64"),
            "distance_from_home_km": np.where(rng.random(rows) < 0.1, np.nan, rng.uniform(0, 800, rows)),
            "is_fraud": pd.array(rng.integers(0, 2, rows), dtype="Int64"),
            "_row": np.arange(rows, dtype="int64"),
            "_coercion_errors": pd.Series([None] * rows, dtype=object),
        }
    )


def write_raw(lake: LocalLake, frame: pd.DataFrame, run_id: str = "run-1") -> None:
    lake.publish_partition(
        "raw",
        SPEC.name,
        DAY,
        {"data.parquet": frame_to_parquet(frame)},
        meta={"rows_in": len(frame), "run_id": run_id, "source_sha256": "0" * 64},
    )


def run(lake: LocalLake, frame: pd.DataFrame, run_id: str = "run-1", **kwargs) -> dict:
    write_raw(lake, frame, run_id)
    return validation.validate_partition(lake, SPEC, DAY, run_id=run_id, **kwargs)


def quarantine(lake: LocalLake) -> pd.DataFrame:
    return lake.read_frame("quarantine", SPEC.name, DAY)


def assert_nothing_lost(lake: LocalLake, summary: dict, rows_in: int) -> None:
    assert summary["rows_in"] == rows_in
    assert summary["rows_validated"] + summary["rows_quarantined"] == rows_in
    validated_rows = len(lake.read_frame("validated", SPEC.name, DAY)) if summary["rows_validated"] else 0
    quarantined_rows = len(quarantine(lake)) if summary["status"] != "validated" else 0
    assert validated_rows == summary["rows_validated"]
    assert quarantined_rows == summary["rows_quarantined"]
    assert ledger.read_summary(lake, SPEC.name, DAY) == summary


# --- clean -------------------------------------------------------------------------------------


def test_clean_partition_is_all_validated(lake):
    summary = run(lake, clean_frame())
    assert summary["status"] == "validated"
    assert (summary["rows_validated"], summary["rows_quarantined"]) == (ROWS, 0)
    assert summary["reasons"] == {} and summary["partition_failures"] == []
    assert set(summary) == {
        "dataset", "partition", "status", "rows_in", "rows_validated", "rows_quarantined",
        "reasons", "partition_failures", "run_id", "report_key", "validated_at", "commit",
    }
    assert_nothing_lost(lake, summary, ROWS)

    validated = lake.read_frame("validated", SPEC.name, DAY)
    assert list(validated.columns) == SPEC.column_names  # no meta columns
    assert str(validated["event_time"].dtype) == "datetime64[ns, UTC]"
    assert str(validated["account_age_days"].dtype) == "Int64"
    assert validated["amount"].dtype == "float64" and validated["currency"].dtype == object
    meta = lake.manifest("validated", SPEC.name, DAY)
    manifest_counts = (meta["rows"], meta["run_id"], meta["rows_in"], meta["rows_quarantined"])
    assert manifest_counts == (ROWS, "run-1", ROWS, 0)
    assert lake.manifest("quarantine", SPEC.name, DAY) is None


# --- row-level faults: the bad rows go to quarantine, the rest is validated ----------------------


def _wrong_types(df: pd.DataFrame) -> list[int]:
    rows = [3, 50, 51]
    df.loc[rows, "amount"] = np.nan
    df.loc[rows, "_coercion_errors"] = json.dumps({"amount": "abc"})
    return rows


def _out_of_range(df: pd.DataFrame) -> list[int]:
    df.loc[[5, 6], "amount"] = [-1.0, 75_000.0]
    df.loc[7, "is_fraud"] = 3
    return [5, 6, 7]


def _duplicate_ids(df: pd.DataFrame) -> list[int]:
    df.loc[11, "transaction_id"] = df.loc[10, "transaction_id"]
    return [10, 11]  # both copies: neither can be trusted to be the real one


def _nulls(df: pd.DataFrame) -> list[int]:
    df.loc[20, "customer_id"] = None
    df.loc[21, "currency"] = None
    df.loc[22, "distance_from_home_km"] = np.nan  # nullable: stays valid
    return [20, 21]


def _outside_day(df: pd.DataFrame) -> list[int]:
    df.loc[30, "event_time"] = pd.Timestamp(DAY, tz="UTC") - pd.Timedelta(seconds=1)
    df.loc[31, "event_time"] = pd.Timestamp(DAY, tz="UTC") + pd.Timedelta(days=1)  # next day's midnight
    return [30, 31]


def _bad_vocabulary(df: pd.DataFrame) -> list[int]:
    df.loc[40, "currency"] = "XXX"
    return [40]


@pytest.mark.parametrize(
    ("inject", "reason_fragment"),
    [
        (_wrong_types, validation.COERCION_REASON),
        (_out_of_range, "amount outside [0.0, 50000.0]"),
        (_duplicate_ids, "duplicate transaction_id"),
        (_nulls, "customer_id is missing"),
        (_outside_day, "event_time outside the partition day"),
        (_bad_vocabulary, "currency not in its vocabulary"),
    ],
    ids=["wrong_types", "out_of_range", "duplicate_ids", "nulls", "outside_day", "bad_vocabulary"],
)
def test_row_faults_are_quarantined_with_reasons(lake, caplog, inject, reason_fragment):
    frame = clean_frame()
    bad_rows = inject(frame)
    with caplog.at_level(logging.WARNING, logger="mlflywheel.validation"):
        summary = run(lake, frame)

    assert summary["status"] == "partially_quarantined"
    assert summary["rows_quarantined"] == len(bad_rows)
    assert summary["partition_failures"] == []
    assert any(reason_fragment in reason for reason in summary["reasons"])
    assert_nothing_lost(lake, summary, ROWS)

    quarantined = quarantine(lake)
    assert sorted(quarantined["_row"]) == sorted(bad_rows)
    assert quarantined["_quarantine_reasons"].map(bool).all()
    assert any(reason_fragment in text for text in quarantined["_quarantine_reasons"])
    validated = lake.read_frame("validated", SPEC.name, DAY)
    assert validated["transaction_id"].is_unique
    assert not set(frame.loc[bad_rows, "transaction_id"]) & set(validated["transaction_id"])
    assert lake.manifest("quarantine", SPEC.name, DAY)["files"] == [
        "data.parquet", "report.html", "validation_result.json",
    ]
    # One clear log line per failing expectation.
    failing = [r.getMessage() for r in caplog.records if "failed on" in r.getMessage()]
    assert any(reason_fragment in message for message in failing), failing


def test_coercion_reason_quotes_the_original_text(lake):
    frame = clean_frame()
    _wrong_types(frame)
    run(lake, frame)
    reasons = quarantine(lake).set_index("_row")["_quarantine_reasons"]
    assert "value could not be read as its type: amount='abc' is not a valid float" in reasons[3]


# --- partition-level faults: the whole partition goes to quarantine ------------------------------


def _missing_column(df: pd.DataFrame) -> pd.DataFrame:
    return df.drop(columns=["amount"])


def _extra_column(df: pd.DataFrame) -> pd.DataFrame:
    return df.assign(promo_code="X1")


def _too_many_failing_rows(df: pd.DataFrame) -> pd.DataFrame:
    df.loc[: int(ROWS * 0.3) - 1, "channel"] = "carrier_pigeon"
    return df


@pytest.mark.parametrize(
    ("damage", "failure_fragment"),
    [
        (_missing_column, "missing amount"),
        (_extra_column, "unexpected promo_code"),
        (_too_many_failing_rows, "60 of 200 rows (30.0%) failed row-level expectations"),
    ],
    ids=["missing_column", "extra_column", "too_many_failing_rows"],
)
def test_partition_faults_quarantine_everything(lake, damage, failure_fragment):
    run(lake, clean_frame(), run_id="run-0")  # an earlier clean run that must be withdrawn
    assert lake.manifest("validated", SPEC.name, DAY) is not None

    summary = run(lake, damage(clean_frame()), run_id="run-1")
    assert summary["status"] == "quarantined"
    assert (summary["rows_validated"], summary["rows_quarantined"]) == (0, ROWS)
    assert any(failure_fragment in f for f in summary["partition_failures"]), summary["partition_failures"]
    assert_nothing_lost(lake, summary, ROWS)
    assert lake.manifest("validated", SPEC.name, DAY) is None

    quarantined = quarantine(lake)
    assert len(quarantined) == ROWS
    assert quarantined["_quarantine_reasons"].str.contains(failure_fragment, regex=False).all()
    result = json.loads(lake.partition_file("quarantine", SPEC.name, DAY, "validation_result.json"))
    assert result["success"] is False
    assert lake.manifest("quarantine", SPEC.name, DAY)["scope"] == "partition"


def test_empty_partition_is_quarantined(lake):
    summary = run(lake, clean_frame().iloc[0:0])
    assert summary["status"] == "quarantined"
    assert (summary["rows_in"], summary["rows_validated"], summary["rows_quarantined"]) == (0, 0, 0)
    assert summary["partition_failures"] == ["the partition is empty (observed 0)"]
    assert len(quarantine(lake)) == 0
    assert ledger.read_summary(lake, SPEC.name, DAY) == summary


def test_failing_fraction_threshold_is_configurable(lake):
    frame = _too_many_failing_rows(clean_frame())
    summary = run(lake, frame, max_failed_row_fraction=0.5)
    assert summary["status"] == "partially_quarantined"
    assert summary["rows_quarantined"] == 60


# --- re-runs -----------------------------------------------------------------------------------


def test_rerun_replaces_and_clears_stale_quarantine(lake):
    bad = clean_frame()
    _out_of_range(bad)
    first = run(lake, bad, run_id="run-1")
    again = run(lake, bad, run_id="run-2")
    assert first["rows_quarantined"] == again["rows_quarantined"] == 3
    assert len(quarantine(lake)) == 3  # replaced, not appended
    assert len(lake.read_frame("validated", SPEC.name, DAY)) == ROWS - 3

    fixed = run(lake, clean_frame(), run_id="run-3")
    assert fixed["status"] == "validated"
    assert lake.manifest("quarantine", SPEC.name, DAY) is None  # stale failures gone
    assert len(lake.read_frame("validated", SPEC.name, DAY)) == ROWS
    assert ledger.read_summary(lake, SPEC.name, DAY)["run_id"] == "run-3"


# --- reports -----------------------------------------------------------------------------------


def test_report_names_the_reason(lake):
    frame = clean_frame()
    _out_of_range(frame)
    summary = run(lake, frame)
    commit_id = summary["commit"]["id"]
    assert summary["report_key"] == f"reports/validation/transactions/dt={DAY.isoformat()}/v={commit_id}/report.html"
    page = lake.get_bytes(summary["report_key"]).decode()
    assert page.startswith("<!DOCTYPE html>")
    assert "amount outside [0.0, 50000.0]" in page
    assert "partially_quarantined" in page and "t-00005" in page  # a failing row in the sample
    assert "expect_column_values_to_be_between" in page
    assert lake.partition_file("quarantine", SPEC.name, DAY, "report.html").decode() == page
    report_json = lake.get_json(summary["report_key"].replace("report.html", "summary.json"))
    assert report_json["status"] == "partially_quarantined"
    failed = [e for e in report_json["expectations"] if not e["success"]]
    assert {e["column"] for e in failed} == {"amount", "is_fraud"}


# --- missing raw partition ---------------------------------------------------------------------


def test_missing_raw_partition_raises(lake):
    with pytest.raises(validation.ValidationError, match="no raw partition"):
        validation.validate_partition(lake, SPEC, DAY, run_id="run-1")


def test_missing_raw_after_ingest_quarantine_returns_its_summary(lake):
    ingest_summary = {
        "dataset": SPEC.name, "partition": DAY.isoformat(), "status": "quarantined", "rows_in": 0,
        "rows_validated": 0, "rows_quarantined": 0, "reasons": {"unreadable file": 0},
        "partition_failures": ["unreadable file"], "run_id": "run-9",
    }
    ledger.write_summary(lake, ingest_summary)
    assert validation.validate_partition(lake, SPEC, DAY, run_id="run-9") == ingest_summary
    with pytest.raises(validation.ValidationError):  # another run: the raw data should be there
        validation.validate_partition(lake, SPEC, DAY, run_id="run-10")


def test_raw_manifest_row_count_mismatch_raises(lake):
    lake.publish_partition(
        "raw", SPEC.name, DAY, {"data.parquet": frame_to_parquet(clean_frame(10))}, meta={"rows_in": 11}
    )
    with pytest.raises(validation.ValidationError, match="rows_in=11"):
        validation.validate_partition(lake, SPEC, DAY, run_id="run-1")


# --- the suite ---------------------------------------------------------------------------------


def test_suite_has_partition_checks_and_serialises():
    suite = validation.build_suite(SPEC, DAY)
    assert len(suite.expectations) == len(SPEC.expectations()) + 2
    as_dict = validation.suite_as_dict(SPEC, DAY)
    text = json.dumps(as_dict)
    assert "2026-11-03T00:00:00+00:00" in text and "2026-11-04T00:00:00+00:00" in text
    column_set = next(e for e in as_dict["expectations"] if e["type"] == "expect_table_columns_to_match_set")
    assert set(column_set["kwargs"]["column_set"]) == set(SPEC.column_names) | {"_row", "_coercion_errors"}
    assert all("reason" in e["meta"] for e in as_dict["expectations"])


def test_build_suite_needs_no_active_gx_context():
    # DAG code and docs call build_suite before anything has created a GX context.
    from great_expectations.data_context.data_context.context_factory import project_manager

    current = project_manager.get_current_project()
    project_manager.set_project(None)
    try:
        suite = validation.build_suite(SPEC, DAY)
    finally:
        project_manager.set_project(current)
    assert suite.name == f"transactions.dt={DAY.isoformat()}"


# --- hardening -----------------------------------------------------------------------------------


def test_an_unknown_underscore_column_fails_the_column_check(lake):
    summary = run(lake, clean_frame().assign(_note="from upstream"))
    assert summary["status"] == "quarantined"
    assert any("unexpected _note" in f for f in summary["partition_failures"]), summary["partition_failures"]
    assert_nothing_lost(lake, summary, ROWS)


def test_the_pipelines_own_meta_columns_are_not_extra(lake):
    frame = clean_frame()
    frame["_row_id"] = [f"{DAY}:{i}" for i in range(ROWS)]
    assert run(lake, frame)["status"] == "validated"


def test_overflow_is_named_in_the_row_reason(lake):
    frame = clean_frame()
    frame.loc[4, "account_age_days"] = pd.NA
    frame.loc[4, "_coercion_errors"] = json.dumps({"account_age_days": "9223372036854775808"})
    frame.loc[5, "account_age_days"] = pd.NA
    frame.loc[5, "_coercion_errors"] = json.dumps({"account_age_days": "12.5"})
    run(lake, frame)
    reasons = quarantine(lake).set_index("_row")["_quarantine_reasons"]
    assert "account_age_days='9223372036854775808' is beyond the 64-bit int range (overflow)" in reasons[4]
    assert "account_age_days='12.5' is not a whole number" in reasons[5]


def test_text_rules_of_the_spec(lake):
    import dataclasses

    ruled = dataclasses.replace(SPEC, max_text_length=50, reject_formulas=True)
    frame = clean_frame()
    frame.loc[8, "customer_id"] = "x" * 1_000_000
    frame.loc[9, "customer_id"] = '=HYPERLINK("http://evil.example","click")'
    frame.loc[10, "customer_id"] = "@SUM(A1:A2)"
    write_raw(lake, frame)
    summary = validation.validate_partition(lake, ruled, DAY, run_id="run-1")
    assert summary["status"] == "partially_quarantined" and summary["rows_quarantined"] == 3
    assert summary["reasons"]["customer_id longer than 50 characters"] == 1
    formula = next(r for r in summary["reasons"] if "spreadsheet formula" in r)
    assert summary["reasons"][formula] == 2
