"""The Preprocessor's vocabularies: int-coded categories work however their values arrive."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from mlflywheel.datasets import get_spec, spec_from_dict
from mlflywheel.training import model as model_module
from mlflywheel.training.model import Preprocessor, category_codes, category_key, category_keys

SPEC = spec_from_dict(
    {
        "name": "sensors",
        "columns": [
            {"name": "when", "dtype": "datetime"},
            {"name": "site", "dtype": "string", "categories": ["north", "south"]},
            {"name": "weekday", "dtype": "int", "categories": [0, 1, 2, 3, 4, 5, 6]},
            {"name": "temp", "dtype": "float"},
            {"name": "alarm", "dtype": "int"},
        ],
        "timestamp_column": "when", "target": "alarm",
        "categorical_features": ["site", "weekday"], "numeric_features": ["temp"],
    },
    source="test",
)  # fmt: skip


@pytest.mark.parametrize(
    "value, key",
    [(3, "3"), (np.int64(3), "3"), (3.0, "3"), ("3", "3"), ("north", "north"), (2.5, "2.5"),
     (None, None), (np.nan, None), (pd.NA, None)],
)  # fmt: skip
def test_category_key(value: object, key: str | None) -> None:
    assert category_key(value) == key


def frame(weekday: pd.Series) -> pd.DataFrame:
    n = len(weekday)
    return pd.DataFrame({"site": ["north"] * n, "weekday": weekday, "temp": np.arange(n, dtype=float)})


def test_int_categories_code_the_same_whatever_the_dtype() -> None:
    prep = Preprocessor.fit(SPEC, frame(pd.Series([0, 1, 2], dtype="Int64")))
    assert prep.vocab["weekday"] == ["0", "1", "2", "3", "4", "5", "6"]
    expected = [1, 7, 0, 0]  # 0 -> 1, 6 -> 7, unknown 9 -> 0, missing -> 0
    for values in (
        pd.Series([0, 6, 9, None], dtype="Int64"),  # validated partitions
        pd.Series([0.0, 6.0, 9.0, np.nan]),  # after a null, in a plain float column
        pd.Series(["0", "6", "9", None], dtype=object),  # text, e.g. a JSON request
        pd.Series([0, 6, 9, None], dtype=object),
    ):
        cat, _ = prep.transform_numpy(frame(values))
        assert cat[:, 1].tolist() == expected, values.dtype


def test_vocabulary_survives_json_and_string_vocabularies_are_unchanged() -> None:
    prep = Preprocessor.fit(SPEC, frame(pd.Series([0, 1], dtype="Int64")))
    again = Preprocessor.from_dict(json.loads(json.dumps(prep.to_dict())))
    assert again == prep
    transactions = get_spec("transactions")
    assert Preprocessor.fit(transactions, pd.DataFrame({c: [1.0] for c in transactions.numeric_features})).vocab[
        "currency"
    ] == ["USD", "EUR", "GBP"]


def test_category_keys_of_text_keeps_the_array() -> None:
    values = pd.Series(["a", "b"], dtype=object)
    assert category_keys(values).tolist() == ["a", "b"]
    assert category_keys(pd.Series([1, None], dtype="Int64")).tolist() == ["1", None]


@pytest.mark.parametrize(
    "values",
    [
        pd.Series([0, 6, 9, None, -1, 3], dtype="Int64"),
        pd.Series([5, 0, 2, 2], dtype="int64"),
        pd.Series(["0", "6", None, "x", "03"], dtype=object),
        pd.Series(["0", "6", np.nan, "x"], dtype=object),
        pd.Series([0.0, 6.0, np.nan, 2.5]),
        pd.Series([0, "6", None, 3.0], dtype=object),
        pd.Series([], dtype="Int64"),
    ],
)
@pytest.mark.parametrize("vocab", [["0", "1", "2", "3", "4", "5", "6"], ["6", "x", "-1", "0"], ["north"], []])
def test_category_codes_equal_the_value_by_value_lookup(values: pd.Series, vocab: list[str]) -> None:
    want = [vocab.index(category_key(v)) if category_key(v) in vocab else -1 for v in values]
    got = category_codes(values, vocab)
    assert got.dtype == np.int64 and got.tolist() == want


def test_integer_and_text_columns_are_coded_without_a_call_per_value(monkeypatch: pytest.MonkeyPatch) -> None:
    """The training tables' usual columns (nullable Int64 from Parquet, text) never go value by
    value through category_key: that per-row Python was the slow part of building tensors."""

    def per_value(value: object) -> str | None:
        raise AssertionError(f"category_key called for {value!r}")

    monkeypatch.setattr(model_module, "category_key", per_value)
    assert category_codes(pd.Series([0, 6, None], dtype="Int64"), ["0", "6"]).tolist() == [0, 1, -1]
    assert category_codes(pd.Series(["b", None, "a", np.nan], dtype=object), ["a", "b"]).tolist() == [1, -1, 0, -1]
