"""Each injectable fault damages a delivery the way its name says, reproducibly."""

from __future__ import annotations

import datetime as dt
import io

import pandas as pd
import pytest
from mlflywheel.datasets import get_spec
from mlflywheel.datasets.upstreams.csv_replay import LOANS_CSV, day_frame
from mlflywheel.datasets.upstreams.faults import EXTRA_COLUMN, FAULTS, apply_fault
from mlflywheel.datasets.upstreams.transactions import TRANSACTIONS, generate_day

ROWS = 200


@pytest.fixture(scope="module")
def clean() -> pd.DataFrame:
    return generate_day(dt.date(2026, 11, 1), ROWS, seed=1)


def test_every_fault_is_reproducible_and_leaves_input_alone(clean):
    snapshot = clean.copy()
    for fault in FAULTS:
        first = apply_fault(clean, fault, seed=3)
        second = apply_fault(clean, fault, seed=3)
        if isinstance(first, bytes):
            assert first == second
        else:
            pd.testing.assert_frame_equal(first, second)
    pd.testing.assert_frame_equal(clean, snapshot)


def test_unknown_fault_and_bad_fraction(clean):
    with pytest.raises(ValueError, match="unknown fault"):
        apply_fault(clean, "late", seed=1)
    with pytest.raises(ValueError, match="fraction"):
        apply_fault(clean, "nulls", seed=1, fraction=0)


def test_corrupt_file_is_not_a_csv(clean):
    data = apply_fault(clean, "corrupt_file", seed=1)
    assert isinstance(data, bytes) and data
    with pytest.raises(Exception):  # noqa: B017 - any parse error will do
        pd.read_csv(io.BytesIO(data))


def test_missing_column(clean):
    damaged = apply_fault(clean, "missing_column", seed=1)
    missing = set(clean.columns) - set(damaged.columns)
    assert len(missing) == 1
    assert not TRANSACTIONS.column(missing.pop()).nullable


def test_extra_column(clean):
    damaged = apply_fault(clean, "extra_column", seed=1)
    assert list(damaged.columns) == [*clean.columns, EXTRA_COLUMN]
    assert EXTRA_COLUMN not in TRANSACTIONS.column_names and not EXTRA_COLUMN.startswith("_")


def test_wrong_types(clean):
    damaged = apply_fault(clean, "wrong_types", seed=1, fraction=0.05)
    assert damaged["amount"].dtype == object
    not_numbers = pd.to_numeric(damaged["amount"], errors="coerce").isna()
    assert not_numbers.sum() == 10
    assert (damaged.loc[~not_numbers, "amount"].astype(float) == clean.loc[~not_numbers, "amount"]).all()


def test_out_of_range(clean):
    damaged = apply_fault(clean, "out_of_range", seed=1, fraction=0.1)
    negative = damaged["amount"] < 0
    absurd_age = damaged["account_age_days"] > TRANSACTIONS.column("account_age_days").max
    assert negative.sum() == 10 and absurd_age.sum() == 10
    assert not (negative & absurd_age).any()
    assert damaged["account_age_days"].dtype == clean["account_age_days"].dtype


def test_duplicate_ids(clean):
    damaged = apply_fault(clean, "duplicate_ids", seed=1, fraction=0.05)
    assert damaged["transaction_id"].duplicated().sum() == 10
    assert len(damaged) == ROWS


def test_nulls(clean):
    damaged = apply_fault(clean, "nulls", seed=1, fraction=0.05)
    nulls = damaged.isna().sum() - clean.isna().sum()
    [column] = nulls[nulls > 0].index
    assert nulls[column] == 10
    assert not TRANSACTIONS.column(column).nullable


def test_empty(clean):
    damaged = apply_fault(clean, "empty", seed=1)
    assert len(damaged) == 0 and list(damaged.columns) == list(clean.columns)


def test_spec_inferred_for_another_dataset():
    loans = get_spec("loans")
    frame = day_frame(loans, LOANS_CSV, dt.date(2026, 11, 1)).astype(
        {"loan_amount": float, "credit_score": int}
    )
    damaged = apply_fault(frame, "duplicate_ids", seed=2)
    assert damaged["application_id"].duplicated().any()
    assert set(frame.columns) - set(apply_fault(frame, "missing_column", seed=2).columns) <= set(
        loans.column_names
    )
    # Numeric columns damaged as numbers where the frame holds numbers.
    out = apply_fault(frame.astype({"applicant_income": float}), "out_of_range", seed=2)
    assert (out["applicant_income"] < 0).any()
