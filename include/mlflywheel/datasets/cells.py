"""How one landed text cell is read as its schema dtype, and why a cell that does not read fails.

Ingest casts whole columns with :func:`cast_column`; validation names the problem of a value that
did not cast with :func:`explain`. Both follow the same rules, value by value:

* ``string``: the text as is. Words such as ``NA``, ``null`` or ``None`` are text here.
* ``int``: a whole number within the 64-bit range (``12``, ``-3``, ``12.0``, ``1e3``), read
  exactly (no detour through floating point); ``12.5``, ``inf`` or anything beyond
  ``[-2**63, 2**63 - 1]`` (``9223372036854775808``, ``1e20``: an overflow) does not cast.
* ``float``: a finite number; text that overflows to infinity (``1e400``) or says ``inf`` does not.
* ``datetime``: ISO 8601; each value with its own UTC offset (``Z``, ``+05:30``, ``-0200``), a value
  without one is UTC. Times outside what the pipeline can store (about 1677-2262) do not cast.
* In ``int``, ``float`` and ``datetime`` columns the usual missing-value words (``NA``, ``N/A``,
  ``null``, ``NULL``, ``None``, ``NaN``, ``#N/A``, ...) are empty cells, not errors.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np
import pandas as pd

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

# pandas' own missing-value words (read_csv's defaults), less the empty cell (always null).
NA_WORDS = frozenset(
    {
        "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
        "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
    }
)  # fmt: skip

# A time of day followed by a UTC offset: the offset is the value's own, read apart from its neighbours.
_OFFSET = re.compile(r"(?<=\d\d:\d\d)(?::\d\d(?:[.,]\d+)?)?\s*(Z|z|[+-]\d\d(?::?\d\d)?)\s*$")
_NUMBER = re.compile(r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$")


def is_na_word(value: Any) -> bool:
    return isinstance(value, str) and value.strip() in NA_WORDS


def cast_column(text: pd.Series, dtype: str) -> pd.Series:
    """``text`` (str or None per cell) cast to ``dtype``; cells that do not cast become null."""
    if dtype == "string":
        return text.astype(object)
    present = text.where(~np.array([is_na_word(v) for v in text.to_numpy()], dtype=bool))
    if dtype == "datetime":
        return _datetimes(present)
    if dtype == "float":
        numbers = pd.to_numeric(present, errors="coerce").astype("float64")
        return numbers.where(np.isfinite(numbers))
    if dtype == "int":
        return _ints(present)
    raise ValueError(f"unknown dtype {dtype!r}")


def _ints(text: pd.Series) -> pd.Series:
    values = {value: _read_int(value) for value in text.dropna().unique()}
    out = pd.array([values.get(v) if isinstance(v, str) else None for v in text.to_numpy()], dtype="Int64")
    return pd.Series(out, index=text.index)


def _read_int(text: str) -> int | None:
    number = _decimal(text)
    if number is None or number.adjusted() > 18 or number != number.to_integral_value():
        return None  # adjusted() > 18: beyond 2**63 whatever the digits (and no huge int is built)
    whole = int(number)
    return whole if INT64_MIN <= whole <= INT64_MAX else None


def _decimal(text: str) -> Decimal | None:
    if not _NUMBER.match(text):  # also keeps out what Decimal alone would take: "1_000", "Infinity"
        return None
    try:
        return Decimal(text.strip())
    except InvalidOperation:  # pragma: no cover - the pattern admits only numbers
        return None


def _datetimes(text: pd.Series) -> pd.Series:
    """Each distinct offset parsed on its own: pandas, given a mix, lends one value's offset to
    the naive values after it."""
    out = pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns, UTC]")
    present = text.dropna()
    if present.empty:
        return out
    offsets = present.map(lambda v: (m.group(1).upper() if (m := _OFFSET.search(v)) else ""))
    for _, group in present.groupby(offsets, sort=False):
        parsed = pd.to_datetime(group, utc=True, errors="coerce", format="ISO8601")
        out.loc[group.index] = parsed.astype("datetime64[ns, UTC]")
    return out


def explain(text: Any, dtype: str) -> str:
    """Why ``text`` is not a valid ``dtype`` value, for a quarantined row's reason."""
    value = str(text)
    if dtype == "int":
        number = _decimal(value)
        if number is not None and (
            number.adjusted() > 18
            or (number == number.to_integral_value() and not INT64_MIN <= int(number) <= INT64_MAX)
        ):
            return "is beyond the 64-bit int range (overflow)"
        if number is not None:
            return "is not a whole number"
    if dtype == "float" and _NUMBER.match(value):
        return "overflows the float range (overflow)"
    if dtype == "datetime":
        try:
            parsed = pd.Timestamp(value.strip())
        except (ValueError, OverflowError):
            parsed = None
        if parsed is not None and not pd.isna(parsed) and not 1678 <= parsed.year <= 2261:
            return "is a time outside the range the pipeline stores, 1678-2261 (overflow)"
    return f"is not a valid {dtype}"
