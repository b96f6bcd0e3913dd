"""The dataset spec: validation of columns and roles, and the expectation suite derived from it."""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

import pytest
from mlflywheel.datasets import get_spec
from mlflywheel.datasets.spec import DTYPES, Column, DatasetSpec, Expectation

TRANSACTIONS = get_spec("transactions")
LOANS = get_spec("loans")
BUILT_IN = [TRANSACTIONS, LOANS]


def small_columns() -> tuple[Column, ...]:
    return (
        Column("id", "string"),
        Column("ts", "datetime"),
        Column("colour", "string", categories=("red", "green")),
        Column("size", "float", nullable=True, min=0.0),
        Column("count", "int", max=10),
        Column("note", "string", nullable=True),
        Column("label", "int", min=0, max=1),
    )


def small_spec(**changes: Any) -> DatasetSpec:
    fields: dict[str, Any] = {
        "name": "small",
        "description": "a hand-made spec",
        "columns": small_columns(),
        "id_column": "id",
        "timestamp_column": "ts",
        "target": "label",
        "categorical_features": ("colour",),
        "numeric_features": ("size", "count"),
    }
    fields.update(changes)
    return DatasetSpec(**fields)


def by_type(expectations: list[Expectation], type_: str) -> list[Expectation]:
    return [e for e in expectations if e.type == type_]


def one(expectations: list[Expectation], type_: str, column: str) -> Expectation:
    (match,) = [e for e in by_type(expectations, type_) if e.kwargs.get("column") == column]
    return match


# --- Column ------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_column_accepts_known_dtypes(dtype: str) -> None:
    c = Column("x", dtype)  # type: ignore[arg-type]
    assert c.dtype == dtype and c.nullable is False
    assert c.min is None and c.max is None and c.categories is None


@pytest.mark.parametrize("dtype", ["str", "integer", "bool", "date", "", "DATETIME"])
def test_column_rejects_unknown_dtype(dtype: str) -> None:
    with pytest.raises(ValueError, match="column 'amount'") as info:
        Column("amount", dtype)  # type: ignore[arg-type]
    assert repr(dtype) in str(info.value)


def test_column_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Column("x", "int").nullable = True  # type: ignore[misc]


# --- DatasetSpec validation ----------------------------------------------------------------------


def test_small_spec_is_valid() -> None:
    spec = small_spec()
    assert spec.landing_format == "csv" and spec.extra_expectations == ()


def test_duplicate_column_names_rejected() -> None:
    columns = (*small_columns(), Column("count", "float"))
    with pytest.raises(ValueError, match="'small': duplicate column names"):
        small_spec(columns=columns)


@pytest.mark.parametrize(
    "changes",
    [
        {"id_column": "uuid"},
        {"timestamp_column": "when"},
        {"target": "y"},
        {"categorical_features": ("colour", "shape")},
        {"numeric_features": ("size", "weight")},
    ],
)
def test_roles_must_name_columns(changes: dict[str, Any]) -> None:
    missing = next(iter(set(_role_names(changes)) - {c.name for c in small_columns()}))
    with pytest.raises(ValueError, match=f"'{missing}' is not a column"):
        small_spec(**changes)


def _role_names(changes: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for value in changes.values():
        out.extend([value] if isinstance(value, str) else value)
    return out


def test_timestamp_column_must_be_datetime() -> None:
    with pytest.raises(ValueError, match="timestamp column must have dtype datetime"):
        small_spec(timestamp_column="note")


def test_categorical_feature_needs_categories() -> None:
    with pytest.raises(ValueError, match="categorical feature 'note' needs categories"):
        small_spec(categorical_features=("colour", "note"))
    # An empty vocabulary is no vocabulary.
    columns = tuple(
        Column("colour", "string", categories=()) if c.name == "colour" else c for c in small_columns()
    )
    with pytest.raises(ValueError, match="categorical feature 'colour' needs categories"):
        small_spec(columns=columns)


@pytest.mark.parametrize("name", ["note", "ts", "colour"])
def test_numeric_feature_must_be_int_or_float(name: str) -> None:
    with pytest.raises(ValueError, match=f"numeric feature '{name}' must be int or float"):
        small_spec(numeric_features=("size", name))


def test_spec_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        small_spec().target = "count"  # type: ignore[misc]


# --- accessors -----------------------------------------------------------------------------------


def test_column_names_in_declared_order() -> None:
    assert small_spec().column_names == ["id", "ts", "colour", "size", "count", "note", "label"]
    assert TRANSACTIONS.column_names[:3] == ["transaction_id", "event_time", "customer_id"]
    assert LOANS.column_names[-1] == "defaulted"


def test_features_are_categorical_then_numeric() -> None:
    assert small_spec().features == ("colour", "size", "count")
    assert TRANSACTIONS.features == (
        "currency", "merchant_category", "country", "channel",
        "amount", "account_age_days", "txn_count_24h", "distance_from_home_km",
    )  # fmt: skip
    assert LOANS.features[:3] == LOANS.categorical_features


def test_column_lookup() -> None:
    spec = small_spec()
    assert spec.column("size") == Column("size", "float", nullable=True, min=0.0)
    assert TRANSACTIONS.column("currency").categories == ("USD", "EUR", "GBP")
    with pytest.raises(KeyError, match="'small' has no column 'missing'"):
        spec.column("missing")


@pytest.mark.parametrize("spec", BUILT_IN, ids=lambda s: s.name)
def test_built_in_specs_are_consistent(spec: DatasetSpec) -> None:
    names = spec.column_names
    assert len(names) == len(set(names))
    assert spec.id_column in names and spec.target in names
    assert spec.target not in spec.features and spec.id_column not in spec.features
    assert spec.column(spec.timestamp_column).dtype == "datetime"
    assert spec.landing_format in ("csv", "parquet")


# --- expectations --------------------------------------------------------------------------------


def test_expectations_of_small_spec() -> None:
    spec = small_spec()
    exps = spec.expectations()
    assert exps[0] == Expectation(
        "expect_table_columns_to_match_set",
        {"column_set": ["id", "ts", "colour", "size", "count", "note", "label"], "exact_match": True},
        row_level=False,
        reason="the columns differ from the schema",
    )
    assert exps[1] == Expectation(
        "expect_table_row_count_to_be_between",
        {"min_value": 1},
        row_level=False,
        reason="the partition is empty",
    )
    not_null = by_type(exps, "expect_column_values_to_not_be_null")
    assert [e.kwargs["column"] for e in not_null] == ["id", "ts", "colour", "count", "label"]
    assert all(e.row_level for e in not_null)
    assert not_null[1].reason == "ts is missing or not a valid datetime"

    between = by_type(exps, "expect_column_values_to_be_between")
    assert [e.kwargs for e in between] == [
        {"column": "size", "min_value": 0.0, "max_value": None},
        {"column": "count", "min_value": None, "max_value": 10},
        {"column": "label", "min_value": 0, "max_value": 1},
    ]
    assert [e.reason for e in between] == [
        "size outside [0.0, None]",
        "count outside [None, 10]",
        "label outside [0, 1]",
    ]
    assert all(e.row_level for e in between)

    in_set = by_type(exps, "expect_column_values_to_be_in_set")
    assert in_set == [
        Expectation(
            "expect_column_values_to_be_in_set",
            {"column": "colour", "value_set": ["red", "green"]},
            row_level=True,
            reason="colour not in its vocabulary",
        )
    ]
    assert isinstance(in_set[0].kwargs["value_set"], list)

    assert exps[-1] == Expectation(
        "expect_column_values_to_be_unique", {"column": "id"}, row_level=True, reason="duplicate id"
    )
    assert len(exps) == 2 + 5 + 3 + 1 + 1


def test_zero_bounds_still_make_a_range_expectation() -> None:
    columns = (Column("id", "string"), Column("ts", "datetime"), Column("y", "int", min=0, max=0))
    spec = DatasetSpec("z", "", columns, "id", "ts", "y", (), ())
    between = by_type(spec.expectations(), "expect_column_values_to_be_between")
    assert [e.kwargs for e in between] == [{"column": "y", "min_value": 0, "max_value": 0}]


def test_expectations_per_column_come_in_column_order() -> None:
    exps = small_spec().expectations()
    columns = [e.kwargs.get("column") for e in exps[2:-1]]
    # Each column's own expectations are grouped: not-null, range, vocabulary, in that order.
    assert columns == ["id", "ts", "colour", "colour", "size", "count", "count", "label", "label"]
    colour = [e.type for e in exps[2:-1] if e.kwargs.get("column") == "colour"]
    assert colour == ["expect_column_values_to_not_be_null", "expect_column_values_to_be_in_set"]


def test_extra_expectations_come_last_unchanged() -> None:
    extra = (
        Expectation(
            "expect_column_pair_values_a_to_be_greater_than_b",
            {"column_A": "count", "column_B": "label"},
            row_level=True,
            reason="count below label",
        ),
        Expectation("expect_column_mean_to_be_between", {"column": "size", "min_value": 1}, False, "small"),
    )
    with_extras = small_spec(extra_expectations=extra).expectations()
    without = small_spec().expectations()
    assert with_extras[: len(without)] == without
    assert tuple(with_extras[len(without):]) == extra


def test_expectations_are_fresh_each_call() -> None:
    spec = small_spec()
    first = spec.expectations()
    first[0].kwargs["column_set"].append("extra")
    first.append(first[0])
    second = spec.expectations()
    assert "extra" not in second[0].kwargs["column_set"]
    assert len(second) == len(first) - 1


@pytest.mark.parametrize("spec", BUILT_IN, ids=lambda s: s.name)
def test_built_in_expectations_cover_the_schema(spec: DatasetSpec) -> None:
    exps = spec.expectations()
    assert exps[0].kwargs == {"column_set": spec.column_names, "exact_match": True}
    not_null = {e.kwargs["column"] for e in by_type(exps, "expect_column_values_to_not_be_null")}
    assert not_null == {c.name for c in spec.columns if not c.nullable}
    between = {e.kwargs["column"]: (e.kwargs["min_value"], e.kwargs["max_value"])
               for e in by_type(exps, "expect_column_values_to_be_between")}  # fmt: skip
    assert between == {c.name: (c.min, c.max) for c in spec.columns if c.min is not None or c.max is not None}
    in_set = {e.kwargs["column"]: tuple(e.kwargs["value_set"])
              for e in by_type(exps, "expect_column_values_to_be_in_set")}  # fmt: skip
    assert in_set == {c.name: c.categories for c in spec.columns if c.categories}
    unique = by_type(exps, "expect_column_values_to_be_unique")
    assert [e.kwargs for e in unique] == [{"column": spec.id_column}]
    table_level = [e.type for e in exps if not e.row_level]
    assert table_level == ["expect_table_columns_to_match_set", "expect_table_row_count_to_be_between"]
    # No expectation is generated twice.
    keys = Counter((e.type, e.kwargs.get("column")) for e in exps)
    assert max(keys.values()) == 1


def test_transactions_expectations_in_detail() -> None:
    exps = TRANSACTIONS.expectations()
    # 12 columns, one nullable; 5 ranged; 4 vocabularies; plus columns, row count and unique id.
    assert len(exps) == 2 + 11 + 5 + 4 + 1
    not_null = {e.kwargs["column"] for e in by_type(exps, "expect_column_values_to_not_be_null")}
    assert "distance_from_home_km" not in not_null and "is_fraud" in not_null
    amount = one(exps, "expect_column_values_to_be_between", "amount")
    assert amount.kwargs == {"column": "amount", "min_value": 0.0, "max_value": 50_000.0}
    assert amount.reason == "amount outside [0.0, 50000.0]"
    assert exps[-1].kwargs == {"column": "transaction_id"} and exps[-1].reason == "duplicate transaction_id"


def test_loans_expectations_in_detail() -> None:
    exps = LOANS.expectations()
    assert len(exps) == 2 + 10 + 5 + 3 + 1
    term = one(exps, "expect_column_values_to_be_between", "term_months")
    assert (term.kwargs["min_value"], term.kwargs["max_value"]) == (12, 360)
    region = one(exps, "expect_column_values_to_be_in_set", "region")
    assert region.kwargs["value_set"] == ["north", "south", "east", "west", "central"]
