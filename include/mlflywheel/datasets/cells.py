"""How one landed text cell is read as its schema dtype, and why a cell that does not read fails.

The rules, value by value, are :func:`read_cell`; ingest casts whole Arrow columns with
:func:`cast_array` (a vectorised path for the plain forms, :func:`read_cell` for the few cells it
cannot decide; a test holds the two together); validation names the problem of a value that did
not cast with :func:`explain`. The rules:

* ``string``: the text as is. Words such as ``NA``, ``null`` or ``None`` are text here.
* ``int``: a whole number within the 64-bit range (``12``, ``-3``, ``12.0``, ``1e3``), read
  exactly (no detour through floating point); ``12.5``, ``inf`` or anything beyond
  ``[-2**63, 2**63 - 1]`` (``9223372036854775808``, ``1e20``: an overflow) does not cast.
* ``float``: a finite number, correctly rounded (``12.5``, ``-3``, ``.5``, ``1e-3``); text that
  overflows to infinity (``1e400``) or says ``inf`` does not.
* ``datetime``: ISO 8601; each value with its own UTC offset (``Z``, ``+05:30``, ``-0200``), a value
  without one is UTC. Times outside what the pipeline can store (about 1677-2262) do not cast.
* In ``int``, ``float`` and ``datetime`` columns the usual missing-value words (``NA``, ``N/A``,
  ``null``, ``NULL``, ``None``, ``NaN``, ``#N/A``, ...) are empty cells, not errors.
"""

from __future__ import annotations

import math
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

_NUMBER = re.compile(r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$")


def is_na_word(value: Any) -> bool:
    return isinstance(value, str) and value.strip() in NA_WORDS


def read_cell(text: str | None, dtype: str) -> Any:
    """One landed cell read as ``dtype`` by the rules above: the value (str, int, float or a UTC
    :class:`pandas.Timestamp`), or None for an empty cell, an NA word in a typed column, or a
    value that does not cast (tell the last apart with :func:`is_na_word`)."""
    if text is None:
        return None
    if dtype == "string":
        return text
    if is_na_word(text):
        return None
    if dtype == "int":
        return _read_int(text)
    if dtype == "float":
        return _read_float(text)
    if dtype == "datetime":
        return _read_datetime(text)
    raise ValueError(f"unknown dtype {dtype!r}")


# pandas dtypes of the pipeline's typed columns (raw data file and validated zone), per schema dtype.
PANDAS_DTYPES = {"string": object, "int": "Int64", "float": "float64", "datetime": "datetime64[ns, UTC]"}


def arrow_type(dtype: str) -> Any:
    """The Arrow type of a schema dtype in the pipeline's typed files (what pandas writes for
    :data:`PANDAS_DTYPES`)."""
    import pyarrow as pa

    return {"string": pa.string(), "int": pa.int64(), "float": pa.float64(), "datetime": pa.timestamp("ns", tz="UTC")}[
        dtype
    ]


def typed_schema(columns: list[tuple[str, str]], *, row_ids: bool) -> Any:
    """The Arrow schema of typed rows: ``columns`` ((name, dtype), in that order), then ``_row_id``
    (text) when ``row_ids``; with the pandas metadata that reads each back as its contract dtype
    (object, Int64, float64, datetime64[ns, UTC]) whatever the values. The one definition of a
    validated partition's schema and of a raw data file's (an all-good day's raw data file is
    published as its validated file, so the two must agree to the byte)."""
    import pyarrow as pa

    from mlflywheel.lake.keys import ROW_ID_COLUMN

    frame = pd.DataFrame({name: pd.Series([], dtype=PANDAS_DTYPES[dtype]) for name, dtype in columns})
    types = {name: arrow_type(dtype) for name, dtype in columns}
    if row_ids:
        frame[ROW_ID_COLUMN] = pd.Series([], dtype=object)
        types[ROW_ID_COLUMN] = pa.string()
    schema = pa.Schema.from_pandas(frame, preserve_index=False)
    for i, name in enumerate(schema.names):  # an empty object column would otherwise be ``null``
        schema = schema.set(i, pa.field(name, types[name]))
    return schema


def cast_column(text: pd.Series, dtype: str) -> pd.Series:
    """``text`` (str or None per cell) cast to ``dtype``, value by value; cells that do not cast
    become null. The reference :func:`cast_array` is tested against."""
    if dtype not in PANDAS_DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}")
    values = [read_cell(v, dtype) for v in text.to_numpy()]
    if dtype == "datetime":
        return pd.Series(pd.to_datetime(values, utc=True), index=text.index, dtype="datetime64[ns, UTC]")
    return pd.Series(pd.array(values, dtype=PANDAS_DTYPES[dtype]) if dtype == "int" else values,
                     index=text.index, dtype=PANDAS_DTYPES[dtype])  # fmt: skip


def _read_int(text: str) -> int | None:
    number = _decimal(text)
    if number is None or number.adjusted() > 18 or number != number.to_integral_value():
        return None  # adjusted() > 18: beyond 2**63 whatever the digits (and no huge int is built)
    whole = int(number)
    return whole if INT64_MIN <= whole <= INT64_MAX else None


def _read_float(text: str) -> float | None:
    if not _NUMBER.match(text):
        return None
    value = float(text.strip())
    return value if math.isfinite(value) else None


def _read_datetime(text: str) -> pd.Timestamp | None:
    """ISO 8601 with the value's own offset (none: UTC); None outside the datetime64[ns] range."""
    try:
        parsed = pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601")
    except (ValueError, OverflowError):  # pragma: no cover - errors="coerce" returns NaT instead
        return None
    if parsed is None or pd.isna(parsed):
        return None
    try:
        return parsed.as_unit("ns")
    except (ValueError, OverflowError):  # outside 1677-2262
        return None


def _decimal(text: str) -> Decimal | None:
    if not _NUMBER.match(text):  # also keeps out what Decimal alone would take: "1_000", "Infinity"
        return None
    try:
        return Decimal(text.strip())
    except InvalidOperation:  # pragma: no cover - the pattern admits only numbers
        return None


# --- vectorised: the plain forms in bulk, the rest value by value --------------------------------

_DATE = r"(19|20)[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
_TIME = r"[T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,9})?)?"
# The plain forms of each dtype, whose cast Arrow does exactly as read_cell: (test, argument, what
# the cells cast to). Tests: "digits" (ASCII digits only, at most argument characters), "decimal"
# (the same with at most one point) or a regular expression. Later forms see only the cells the
# earlier ones left.
_PLAIN_FORMS: dict[str, tuple[tuple[str, Any, str], ...]] = {
    "int": (("digits", 18, "int64"), ("regex", r"^-[0-9]{1,18}$", "int64")),  # 18 digits never overflow
    # Finite whatever the digits: <= 300 characters without an exponent, <= 15 integer digits with a
    # 2-digit one. Arrow rounds correctly, as float() does.
    "float": (("decimal", 300, "float64"), ("regex", r"^-?([0-9]{1,15}(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]{1,2})?$", "float64")),
    # Years 1900-2099 are inside the datetime64[ns] range; no offset: UTC. "iso": this regular
    # expression, decided byte by byte for a column of values of one layout (:func:`_plain_iso`).
    # The offset: Z, +HH:MM, +HHMM, or +HH alone (how PostgreSQL writes a timestamptz: "+00").
    "datetime": (("iso", rf"^{_DATE}({_TIME}(Z|[+-]([01][0-9]|2[0-3])(:?[0-5][0-9])?)?)?$", "timestamp"),),
}
# The datetime form again, its two-digit fields named, with the range the form allows each.
_ISO_LAYOUT = re.compile(
    r"(?P<century>19|20)[0-9]{2}-(?P<month>[0-9]{2})-(?P<day>[0-9]{2})"
    r"([T ](?P<hour>[0-9]{2}):(?P<minute>[0-9]{2})(:(?P<second>[0-9]{2})(\.[0-9]{1,9})?)?"
    r"(Z|[+-](?P<offset_hour>[0-9]{2})(:?(?P<offset_minute>[0-9]{2}))?)?)?"
)
_ISO_RANGES = {"month": (1, 12), "day": (1, 31), "hour": (0, 23), "minute": (0, 59), "second": (0, 59),
               "offset_hour": (0, 23), "offset_minute": (0, 59)}  # fmt: skip


def _plain(values: Any, test: str, argument: Any) -> np.ndarray:
    import pyarrow as pa
    import pyarrow.compute as pc

    if test == "iso":
        chunks = values.chunks if isinstance(values, pa.ChunkedArray) else [values]
        parts = [_plain_iso(chunk, argument) for chunk in chunks]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=bool)
    if test == "regex":
        mask = pc.match_substring_regex(values, argument)
        return mask.fill_null(False).to_numpy(zero_copy_only=False)
    chunks = values.chunks if isinstance(values, pa.ChunkedArray) else [values]
    parts = [_plain_number(chunk, argument, decimal=test == "decimal") for chunk in chunks]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=bool)


def _plain_number(values: Any, max_length: int, *, decimal: bool) -> np.ndarray:
    """Which cells are ASCII digits only (``decimal``: and at most one point, with a digit), at
    most ``max_length`` bytes: ``pc.ascii_is_decimal`` of the cell (its first point removed when
    ``decimal``) and its length, decided on the string array's bytes in one scan."""
    count = len(values)
    _, offsets_buffer, data_buffer = values.buffers()
    if count == 0 or data_buffer is None:
        return np.zeros(count, dtype=bool)
    offsets = np.frombuffer(offsets_buffer, dtype=np.int32)[values.offset : values.offset + count + 1].astype(np.int64)
    starts, ends = offsets[:-1] - offsets[0], offsets[1:] - offsets[0]
    data = np.frombuffer(data_buffer, dtype=np.uint8)[int(offsets[0]) : int(offsets[-1])]
    other = (data - np.uint8(48)) > 9  # uint8 wraps below "0": True for any byte but a digit
    points = data == 46 if decimal else None
    if points is not None:
        other &= ~points

    def per_cell(flags: np.ndarray) -> np.ndarray:
        total = np.zeros(len(flags) + 1, dtype=np.int64)
        np.cumsum(flags, out=total[1:])
        return total[ends] - total[starts]

    lengths = ends - starts
    ok = (per_cell(other) == 0) & (lengths <= max_length)
    if points is not None:
        dots = per_cell(points)
        ok &= (dots <= 1) & (lengths - dots >= 1)
    else:
        ok &= lengths >= 1
    if values.null_count:
        ok &= values.is_valid().to_numpy(zero_copy_only=False)
    return ok


def _plain_iso(values: Any, regex: str) -> np.ndarray:
    """Which cells match the datetime form ``regex``. When every cell present has the layout of the
    first one (one length, the same separators and offset sign: the usual column of timestamps),
    the form is checked on the bytes (digits where the first has digits, the same characters
    elsewhere, each field in its range): a cell passing it matches ``regex``; the cells that do not
    pass (or a column of mixed layouts) go to ``regex`` itself."""
    import pyarrow as pa
    import pyarrow.compute as pc

    count = len(values)
    out = np.zeros(count, dtype=bool)
    present = values.is_valid().to_numpy(zero_copy_only=False)
    rest = present
    if present.any():
        _, offsets_buffer, data_buffer = values.buffers()
        offsets = np.frombuffer(offsets_buffer, dtype=np.int32)[values.offset : values.offset + count + 1]
        lengths = np.diff(offsets)
        first = values[int(np.argmax(present))].as_py()
        layout = _ISO_LAYOUT.fullmatch(first) if first.isascii() else None
        width = len(first)
        if layout is not None and (lengths[present] == width).all() and not lengths[~present].any():
            data = np.frombuffer(data_buffer, dtype=np.uint8)[int(offsets[0]) : int(offsets[-1])]
            cells = data.reshape(-1, width)  # the present cells, one row each, no copy
            ok = _same_layout(cells, np.frombuffer(first.encode(), dtype=np.uint8))
            at = layout.start("century")
            ok &= ((cells[:, at] == 49) & (cells[:, at + 1] == 57)) | ((cells[:, at] == 50) & (cells[:, at + 1] == 48))
            for field, (low, high) in _ISO_RANGES.items():
                if layout.start(field) >= 0:
                    at = layout.start(field)
                    number = (cells[:, at].astype(np.int16) - 48) * 10 + (cells[:, at + 1].astype(np.int16) - 48)
                    ok &= (number >= low) & (number <= high)
            out[present] = ok
            rest = present & ~out
    if rest.any():
        where = np.flatnonzero(rest)
        matched = pc.match_substring_regex(values.take(pa.array(where)), regex)
        out[where] = matched.fill_null(False).to_numpy(zero_copy_only=False)
    return out


def _same_layout(cells: np.ndarray, template: np.ndarray) -> np.ndarray:
    """Rows of ``cells`` (bytes, one cell a row) with an ASCII digit wherever ``template`` has one and
    ``template``'s byte everywhere else; checked 8 bytes at a time."""
    width = (len(template) + 7) // 8 * 8
    if width != len(template):
        cells = np.pad(cells, ((0, 0), (0, width - len(template))))
    words = np.ascontiguousarray(cells.view("<u8").T)  # word i of every cell, contiguous
    pattern = np.zeros(width, dtype=np.uint8)
    pattern[: len(template)] = template
    digit = (pattern - np.uint8(48)) <= 9  # uint8 wraps below "0"
    # XOR with the template's literals and "0" under its digits: a literal must become 0, a digit
    # 0-9 (no high nibble, none either once 6 is added; a carry out of a byte that is no digit
    # only rejects more)
    flip = np.where(digit, 0x30, pattern).astype(np.uint8).view("<u8")
    high = np.where(digit, 0xF0, 0xFF).astype(np.uint8).view("<u8")
    six = np.where(digit, 0x06, 0).astype(np.uint8).view("<u8")
    nibble = np.where(digit, 0xF0, 0).astype(np.uint8).view("<u8")
    ok = np.ones(len(cells), dtype=bool)
    for i in range(width // 8):
        x = words[i] ^ flip[i]
        ok &= ((x & high[i]) | ((x + six[i]) & nibble[i])) == 0
    return ok


def _timestamps(plain: Any) -> Any:
    """Plain ISO 8601 texts as ns since the epoch, UTC: Arrow casts a text with an offset to UTC
    only as an aware type, one without only as a naive type (here UTC), so the two go apart."""
    import pyarrow as pa
    import pyarrow.compute as pc

    # The common cases without a regular expression: UTC written as Z, or as PostgreSQL writes it.
    if any(pc.all(pc.ends_with(plain, utc)).as_py() for utc in ("Z", "+00")):
        return pc.cast(plain, pa.timestamp("ns", tz="UTC")).cast(pa.int64())
    # An offset follows a time (minutes or seconds): a date alone ending in "-05" has none.
    aware = pc.match_substring_regex(plain, r":[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}(:?[0-9]{2})?)$")
    if pc.all(aware).as_py():
        return pc.cast(plain, pa.timestamp("ns", tz="UTC")).cast(pa.int64())
    if not pc.any(aware).as_py():
        return pc.cast(plain, pa.timestamp("ns")).cast(pa.int64())
    out = np.zeros(len(plain), dtype=np.int64)
    mask = aware.to_numpy(zero_copy_only=False)
    out[mask] = pc.cast(plain.filter(aware), pa.timestamp("ns", tz="UTC")).cast(pa.int64()).to_numpy()
    out[~mask] = pc.cast(plain.filter(pc.invert(aware)), pa.timestamp("ns")).cast(pa.int64()).to_numpy()
    return pa.array(out)


def cast_array(values: Any, dtype: str) -> tuple[Any, np.ndarray]:
    """``values`` (an Arrow string array, null = empty cell) cast to ``dtype``'s Arrow type
    (string, int64, float64, timestamp[ns, UTC]), and a mask of the cells that are present but do
    not cast (coercion errors; NA words in typed columns are nulls, not errors).

    Cells in a plain form (:data:`_PLAIN_FORMS`) are cast by Arrow in bulk; every other present
    cell by :func:`read_cell`, once per distinct text. Same results as :func:`read_cell`, cell by cell.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    count = len(values)
    failed = np.zeros(count, dtype=bool)
    if dtype == "string":
        return values.cast(pa.string()), failed
    if dtype not in _PLAIN_FORMS:
        raise ValueError(f"unknown dtype {dtype!r}")
    storage = np.float64 if dtype == "float" else np.int64  # datetimes: ns since the epoch, UTC
    out = np.zeros(count, dtype=storage)
    valid = np.zeros(count, dtype=bool)
    left = values.is_valid().to_numpy(zero_copy_only=False)  # present cells not cast yet
    for number, (test, argument, target) in enumerate(_PLAIN_FORMS[dtype]):
        if number == 0:  # the first form sees every cell, later ones only what is left
            where, pool = None, values
        else:
            where = np.flatnonzero(left)
            if not where.size:
                break
            pool = values.take(pa.array(where))
        plain = _plain(pool, test, argument)
        if where is None:
            plain &= left
        if not plain.any():
            continue
        subset = pool if plain.all() else pool.filter(pa.array(plain))
        try:
            cast = _timestamps(subset) if target == "timestamp" else pc.cast(subset, pa.type_for_alias(target))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue  # e.g. 2026-02-30 among them: these cells go value by value
        if where is None and plain.all():  # every cell plain (the usual column): Arrow's cast is the result
            return (cast.cast(pa.timestamp("ns", tz="UTC")) if dtype == "datetime" else cast), failed
        cells = np.flatnonzero(plain) if where is None else where[plain]
        out[cells] = cast.to_numpy(zero_copy_only=False)
        valid[cells] = True
        left[cells] = False
    rest = np.flatnonzero(left)
    if rest.size:
        seen: dict[str, Any] = {}
        for position, text in zip(rest, values.take(pa.array(rest)).to_pylist(), strict=True):
            if text not in seen:
                seen[text] = read_cell(text, dtype)
            value = seen[text]
            if value is None:
                failed[position] = not is_na_word(text)
                continue
            out[position] = value.value if dtype == "datetime" else value
            valid[position] = True
    arrow_type = pa.timestamp("ns", tz="UTC") if dtype == "datetime" else pa.from_numpy_dtype(storage)
    return pa.array(out, type=arrow_type if dtype != "datetime" else pa.int64(), mask=~valid).cast(arrow_type), failed


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
