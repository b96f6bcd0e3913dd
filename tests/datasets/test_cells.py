"""The cell rules: the vectorised cast (cast_array) gives what the value-by-value rule (read_cell)
gives, on tricky values of every dtype and on random text, so the two cannot drift apart."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from mlflywheel.datasets.cells import NA_WORDS, cast_array, cast_column, is_na_word, read_cell

TRICKY = [
    # ints
    "0", "-0", "007", "12", "-3", "+4", " 5", "6 ", "12.0", "1e3", "1E3", "12.5", "1.5e1", "9223372036854775807",
    "9223372036854775808", "-9223372036854775808", "-9223372036854775809", "1e20", "1e999999999", "999999999999999999",
    "-999999999999999999", "1_000", "0x10", "١٢", "１２",
    # floats
    "1.", ".5", "-.5", "-0.0", "1e400", "-1e400", "1e-400", "inf", "-inf", "Infinity", "nan", "NaN", "15.421926159742977",
    "0.19203808845136736", "123456789012345.678", "1234567890123456.5", "1e99", "1e100", "1.7976931348623157e308",
    "4.9e-324", "5e-324", "1e+05", "1e-05", "12,50", "#REF!", "twelve", "", "1.2.3", ".", "-", "-.", "1" * 19,
    "1" * 300, "9" * 310 + ".5", "0." + "0" * 400 + "1", "-" + "9" * 18, "-" + "9" * 19, "--5", "5-",
    # datetimes
    "2026-11-05", "2026-11-05T10:00:00Z", "2026-11-05T10:00:00+05:30", "2026-11-05 13:00:00-0200",
    "2026-11-05T04:16:54.835Z", "2026-11-05T04:16:54.123456789", "2026-11-05T04:16:54.1234567891", "2026-11-05 10:00",
    "2026-11-05T10:00:00z", "2026-11-05T10:00:00 +01:00", "2026-02-30", "2026-02-30T10:00:00", "2026-13-01",
    "2026-11-05T24:00:00", "2026-11-05T23:59:60", "2300-01-01T00:00:00Z", "1677-09-21", "1677-09-22", "2262-04-11",
    "2262-04-12", "1900-01-01T00:00:00+23:59", "2099-12-31T23:59:59-23:59", "20261105", "2026-W45", "2026-11-05T10",
    "yesterday", "2026/11/05", "2026-11-05T10:00:00+25:00", "2026-11-05T10:00:00.5+05:30", "0001-01-01",
    # hours-only offsets, as PostgreSQL writes a timestamptz; a date alone ending like one
    "2026-11-05 10:00:00.123+00", "2026-11-05 10:00:00-03", "2026-11-05T10:00+05", "2026-11-05T10:00:00+24",
    "2026-11-05T10:00:00+5", "2026-11-05-05", "2026-11-05T10:00:00.123456+00:00",
    *sorted(NA_WORDS), " NA ", "na", "none",
]  # fmt: skip
ALPHABET = "0123456789-+.eE :TZ/,abNn\t٣"


def _random_texts(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    texts = []
    for _ in range(count):
        kind = rng.random()
        if kind < 0.3:
            texts.append("".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 12))))
        elif kind < 0.5:
            texts.append(repr(rng.uniform(-1e6, 1e6) * 10.0 ** rng.randint(-30, 30)))
        elif kind < 0.7:
            texts.append(str(rng.randint(-(2**64), 2**64)))
        else:
            ts = pd.Timestamp("1900-01-01", tz="UTC") + pd.Timedelta(seconds=rng.randint(0, 6_000_000_000))
            texts.append(ts.strftime(rng.choice(["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"]))
                         + rng.choice(["", "Z", "+05:30", "-0200", ".123", ".5+01:00", "+00", ".123456-03"]))  # fmt: skip
    return texts


def _expected(texts: list[str | None], dtype: str) -> tuple[list, list[bool]]:
    values = [read_cell(t, dtype) for t in texts]
    failed = [t is not None and v is None and (dtype == "string" or not is_na_word(t)) for t, v in zip(texts, values)]
    if dtype == "datetime":
        values = [None if v is None else v.value for v in values]
    return values, failed


@pytest.mark.parametrize("dtype", ["string", "int", "float", "datetime"])
@pytest.mark.parametrize("source", ["tricky", "random"])
def test_vectorised_cast_matches_the_rules_cell_by_cell(dtype, source):
    texts: list[str | None] = [*TRICKY, None] if source == "tricky" else _random_texts(20_000, seed=len(dtype))
    texts = [t or None for t in texts]  # an empty cell is null before it is cast
    array, failed = cast_array(pa.array(texts, pa.string()), dtype)
    values, expected_failed = _expected(texts, dtype)
    got = array.cast(pa.int64()).to_pylist() if dtype == "datetime" else array.to_pylist()
    mismatches = [(t, g, v) for t, g, v in zip(texts, got, values) if not (g == v or (g is None and v is None))]
    assert mismatches == []
    assert failed.tolist() == expected_failed
    if source == "random" and dtype != "string":  # the random text reaches both paths
        assert 0 < sum(v is not None for v in values) < len(values)


def test_cast_is_the_same_however_the_cells_are_grouped():
    texts = [*TRICKY, *_random_texts(2_000, seed=9)]
    texts = [t or None for t in texts]
    for dtype in ("int", "float", "datetime"):
        whole, whole_failed = cast_array(pa.array(texts, pa.string()), dtype)
        parts = [cast_array(pa.array(texts[i : i + 7], pa.string()), dtype) for i in range(0, len(texts), 7)]
        assert pa.concat_arrays([p[0] for p in parts]).equals(whole)
        assert np.concatenate([p[1] for p in parts]).tolist() == whole_failed.tolist()


def test_rules_in_brief():
    assert read_cell("12.0", "int") == 12 and read_cell("1e3", "int") == 1000
    assert read_cell("9223372036854775808", "int") is None and read_cell("12.5", "int") is None
    assert read_cell("1e400", "float") is None and read_cell("inf", "float") is None
    assert read_cell("15.421926159742977", "float") == 15.421926159742977  # correctly rounded
    assert read_cell("NA", "float") is None and is_na_word("NA") and read_cell("NA", "string") == "NA"
    assert read_cell("2026-11-05T10:00:00+05:30", "datetime") == pd.Timestamp("2026-11-05T04:30:00Z")
    assert read_cell("2026-11-05T10:00:00", "datetime") == pd.Timestamp("2026-11-05T10:00:00Z")
    assert read_cell("2300-01-01", "datetime") is None
    column = cast_column(pd.Series(["1", None, "x", "NA"], dtype=object), "int")
    assert str(column.dtype) == "Int64" and column.isna().tolist() == [False, True, True, True]
    times = cast_column(pd.Series(["2026-11-05", None], dtype=object), "datetime")
    assert str(times.dtype) == "datetime64[ns, UTC]"


@pytest.mark.parametrize(
    "base", ["2026-11-05T04:16:54.835Z", "1999-01-31 23:59", "2026-11-05T10:00:00+05:30", "2026-11-05T10:00:00-0200",
             "2026-11-05", "2026-11-05T04:16:54.123456789", "2026-11-05 10:00:00.123+00"],
)  # fmt: skip
def test_timestamps_of_one_layout_are_checked_as_the_regular_expression_checks_them(base, monkeypatch):
    """A column of one length and layout is checked byte by byte (digits, separators, each field's
    range): the same cells pass as with the regular expression, whatever byte of a cell is changed."""
    import pyarrow.compute as pc
    from mlflywheel.datasets import cells

    regex = cells._PLAIN_FORMS["datetime"][0][1]
    texts = [base]
    for position in range(len(base)):
        for char in "0123456789-+:. TZz/a\x7f":
            texts.append(base[:position] + char + base[position + 1 :])
    texts += [base[:1] + "é" + base[3:], None, base]  # a wider character: not one layout any more
    regex_cells = []
    match = pc.match_substring_regex

    def spy(values, pattern):  # the regular expression sees only what the byte check left
        regex_cells.append(len(values))
        return match(values, pattern)

    one_layout = texts[:-3]
    plain_ones = [base, *[t for t in one_layout if t and len(t) == len(base) and t[-1] == base[-1]][:40], None]
    for group in (one_layout, one_layout[::-1], [t for t in texts if t is None or len(t.encode()) == len(base)], texts,
                  plain_ones):  # fmt: skip
        array = pa.array(group, pa.string())
        expected = pc.match_substring_regex(array, regex).fill_null(False).to_numpy(zero_copy_only=False)
        regex_cells.clear()
        monkeypatch.setattr(pc, "match_substring_regex", spy)
        got = cells._plain(array, "iso", regex).tolist()
        monkeypatch.undo()
        assert got == expected.tolist()
        assert cells._plain(pa.chunked_array([array[:5], array[5:]]), "iso", regex).tolist() == expected.tolist()
        if group is plain_ones:  # the byte check decided every cell that passes it
            assert sum(regex_cells) == len(group) - 1 - sum(expected)
    values, failed = cast_array(pa.array(texts[:-3], pa.string()), "datetime")
    expected_values, expected_failed = _expected(texts[:-3], "datetime")
    assert values.cast(pa.int64()).to_pylist() == expected_values and failed.tolist() == expected_failed


@pytest.mark.parametrize("seed", range(4))
def test_plain_numbers_are_decided_on_the_bytes_as_arrow_decides_them(seed):
    import pyarrow.compute as pc
    from mlflywheel.datasets import cells

    def arrow_decides(values, test, limit):  # the plain-number test as Arrow's kernels state it
        digits = pc.replace_substring(values, ".", "", max_replacements=1) if test == "decimal" else values
        mask = pc.and_(pc.ascii_is_decimal(digits), pc.less_equal(pc.binary_length(values), limit))
        return mask.fill_null(False).to_numpy(zero_copy_only=False)

    rng = random.Random(seed)
    alphabet = [*"0123456789", ".", ".", "-", "+", "e", " ", "x", "é", "٣", "\x00"]
    for _ in range(200):
        cells_ = [None if rng.random() < 0.1 else "".join(rng.choices(alphabet, k=rng.randrange(0, 22)))
                  for _ in range(rng.randrange(0, 40))]  # fmt: skip
        values = pa.array(cells_, type=pa.string()).slice(rng.randrange(0, 3))
        chunked = pa.chunked_array([values.slice(0, len(values) // 2), values.slice(len(values) // 2)], type=pa.string())
        for test, limit in (("digits", 18), ("digits", 3), ("decimal", 300), ("decimal", 4)):
            expected = arrow_decides(values, test, limit)
            assert cells._plain(values, test, limit).tolist() == expected.tolist(), (test, limit, cells_)
            assert cells._plain(chunked, test, limit).tolist() == expected.tolist(), (test, limit, cells_)
