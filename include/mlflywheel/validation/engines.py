"""Evaluating the suite on one chunk of a partition: two engines with the same outcomes.

A partition is validated chunk by chunk (:mod:`.streaming`). Per chunk, each row-level
expectation gives a :class:`ChunkResult`: which rows of the chunk are unexpected (a mask), the
element and missing counts behind GX's ``unexpected_percent``, or the error that stopped it.

``arrow``
    vectorised pyarrow / numpy versions of the expectation types the specs generate, with Great
    Expectations' semantics (nulls, NaN included, are ignored by column-map expectations except
    the null ones; bounds inclusive unless ``strict_*``); any other expectation (a spec's
    ``extra_expectations``) goes to GX on that chunk, alone, in COMPLETE format.
``gx``
    the whole suite through Great Expectations on the chunk, COMPLETE format (slow; the reference
    the ``arrow`` engine is tested against).

Both engines take uniqueness from :mod:`.uniqueness` (duplicates across the whole partition, every
occurrence unexpected, as GX marks them). The partition-level checks (columns match the schema, at
least one row) are decided once from the Parquet schema and the row count (:func:`table_outcomes`).
"""

from __future__ import annotations

import datetime as dt
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlflywheel.datasets.spec import DatasetSpec, Expectation
from mlflywheel.lake import keys
from mlflywheel.validation.suite import SUITE_META_COLUMNS, build_suite, partition_expectations, run_suite
from mlflywheel.validation.uniqueness import DuplicateIds
from mlflywheel.validation.verdict import outcomes as gx_outcomes

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pandas as pd
    import pyarrow as pa

ENGINES = ("arrow", "gx")
TABLE_TYPES = ("expect_table_columns_to_match_set", "expect_table_row_count_to_be_between")
NULL_TYPES = ("expect_column_values_to_not_be_null", "expect_column_values_to_be_null")
UNIQUE_TYPE = "expect_column_values_to_be_unique"
# The kwargs the arrow engine implements, per expectation type; anything else goes to GX.
ARROW_KWARGS: dict[str, frozenset[str]] = {
    "expect_column_values_to_not_be_null": frozenset({"column", "mostly"}),
    "expect_column_values_to_be_null": frozenset({"column", "mostly"}),
    "expect_column_values_to_be_between": frozenset(
        {"column", "min_value", "max_value", "strict_min", "strict_max", "mostly"}
    ),
    "expect_column_values_to_be_in_set": frozenset({"column", "value_set", "mostly"}),
    "expect_column_value_lengths_to_be_between": frozenset({"column", "min_value", "max_value", "mostly"}),
    "expect_column_values_to_not_match_regex": frozenset({"column", "regex", "mostly"}),
    UNIQUE_TYPE: frozenset({"column", "mostly"}),
}


def missing_column_error(column: str) -> str:
    """GX's message for an expectation on a column the batch lacks."""
    return f'Error: The column "{column}" in BatchData does not exist.'


@dataclass(frozen=True)
class Check:
    """One expectation of the partition's suite, at its position."""

    position: int
    expectation: Expectation

    @property
    def type(self) -> str:
        return self.expectation.type

    @property
    def column(self) -> str | None:
        return self.expectation.kwargs.get("column")

    @property
    def row_level(self) -> bool:
        return self.expectation.row_level

    @property
    def arrow_native(self) -> bool:
        allowed = ARROW_KWARGS.get(self.type)
        return allowed is not None and set(self.expectation.kwargs) <= allowed


def partition_checks(spec: DatasetSpec, day: dt.date) -> list[Check]:
    return [Check(position, e) for position, e in enumerate(partition_expectations(spec, day))]


@dataclass
class ChunkResult:
    """One expectation on one chunk."""

    position: int
    unexpected: np.ndarray | None = None  # bool per chunk row (row-level, rows named)
    unexpected_count: int = 0
    element_count: int = 0
    missing_count: int | None = None  # None: GX reports none (the null expectations)
    error: str | None = None
    success: bool = True  # what GX said for the chunk (partition-level extras)
    observed_value: Any = None
    names_rows: bool = True  # False: GX failed the chunk without naming rows


@dataclass
class ChunkContext:
    """What every chunk of one partition shares."""

    spec: DatasetSpec
    day: dt.date
    checks: list[Check]
    columns: list[str]  # the suite frame's columns (raw columns, meta ones the suite expects)
    duplicates: dict[str, DuplicateIds] = field(default_factory=dict)  # column -> its duplicates
    pending: Future[dict[str, DuplicateIds]] | None = None  # more duplicates, still being found
    _gx_suites: dict[tuple[int, ...], Any] = field(default_factory=dict)

    def duplicates_of(self, column: str) -> DuplicateIds:
        """The column's duplicates, waiting for them if they are still being found (:attr:`pending`)."""
        self.settle()
        return self.duplicates[column]

    def settle(self) -> None:
        """Wait for the duplicates still being found; raises what stopped their search."""
        if self.pending is not None:
            pending, self.pending = self.pending, None
            self.duplicates.update(pending.result())

    def gx_suite(self, positions: tuple[int, ...]) -> Any:
        if positions not in self._gx_suites:
            self._gx_suites[positions] = build_suite(self.spec, self.day, positions=positions)
        return self._gx_suites[positions]


def chunk_checks(context: ChunkContext) -> list[Check]:
    """The checks evaluated per chunk: not the table checks, not those on a missing column."""
    present = set(context.columns)
    return [
        c
        for c in context.checks
        if c.type not in TABLE_TYPES and (c.column is None or c.column in present)
    ]


def evaluate_chunk(engine: str, chunk: pa.Table, rows: np.ndarray, context: ChunkContext) -> dict[int, ChunkResult]:
    """Each per-chunk expectation's result on ``chunk`` (``rows``: the chunk's ``_row`` ids)."""
    if engine not in ENGINES:
        raise ValueError(f"validation engine must be one of {ENGINES}, not {engine!r}")
    checks = chunk_checks(context)
    gx_checks = checks if engine == "gx" else [c for c in checks if not c.arrow_native]
    results: dict[int, ChunkResult] = {}
    if gx_checks:
        results.update(_gx_evaluate(chunk, rows, context, gx_checks))
    columns = _ChunkColumns(chunk)
    for check in checks:
        if check.position not in results:
            results[check.position] = _arrow_evaluate(columns, check)
    for check in checks:  # duplicates across chunks: GX on one chunk cannot see them
        result = results[check.position]
        if check.type == UNIQUE_TYPE and result.error is None and result.unexpected is not None:
            duplicated = context.duplicates_of(str(check.column)).mask(columns.values(str(check.column)))
            result.unexpected = result.unexpected | duplicated
            result.unexpected_count = int(result.unexpected.sum())
    return results


def dictionary_columns(checks: list[Check], schema: pa.Schema) -> list[str]:
    """String columns whose checks all work on a dictionary as well (vocabularies, nulls): a reader
    may give them dictionary-encoded (Parquet stores them so), which spares decoding every cell and
    lets a vocabulary be checked once per distinct value."""
    import pyarrow as pa

    by_column: dict[str, set[str]] = {}
    for check in checks:
        if check.column is not None:
            by_column.setdefault(check.column, set()).add(check.type)
    allowed = {"expect_column_values_to_be_in_set", *NULL_TYPES}
    return [
        name
        for name, types in by_column.items()
        if "expect_column_values_to_be_in_set" in types
        and types <= allowed
        and name in schema.names
        and pa.types.is_string(schema.field(name).type)
    ]


class _ChunkColumns:
    """A chunk's columns for the arrow engine, each prepared once: dictionary columns decoded for
    the checks that need values, and the non-null mask."""

    def __init__(self, chunk: pa.Table) -> None:
        self.chunk = chunk
        self._values: dict[str, Any] = {}
        self._valid: dict[str, np.ndarray] = {}

    def raw(self, name: str) -> Any:
        """The column as read (dictionary-encoded or not)."""
        return self.chunk.column(name)

    def values(self, name: str) -> Any:
        """The column with plain values (a dictionary column decoded)."""
        import pyarrow as pa

        if name not in self._values:
            column = self.chunk.column(name)
            if pa.types.is_dictionary(column.type):
                column = column.cast(column.type.value_type)
            self._values[name] = column
        return self._values[name]

    def valid(self, name: str) -> np.ndarray:
        if name not in self._valid:
            self._valid[name] = _valid_mask(self.raw(name))
        return self._valid[name]


# --- arrow -------------------------------------------------------------------------------------


def _valid_mask(column: pa.ChunkedArray) -> np.ndarray:
    """Non-null cells as pandas sees them (NaN is null)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_null(column.type):
        return np.zeros(len(column), dtype=bool)
    nan_is_null = pa.types.is_floating(column.type)
    if not nan_is_null and not column.null_count:  # the usual column: no cell to look at
        return np.ones(len(column), dtype=bool)
    return pc.invert(pc.is_null(column, nan_is_null=nan_is_null)).to_numpy(zero_copy_only=False)


def _as_numpy(mask: Any) -> np.ndarray:
    import numpy as np

    return np.asarray(mask.to_numpy(zero_copy_only=False), dtype=bool)


def _between(values: Any, low: Any, high: Any, strict_low: bool, strict_high: bool) -> np.ndarray:
    """True where ``values`` lie inside the bounds (nulls come out True: ignored)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    inside = np.ones(len(values), dtype=bool)
    if _all_between(values, low, high, strict_low, strict_high):  # the usual chunk: no mask to build
        return inside
    for bound, strict, above in ((low, strict_low, True), (high, strict_high, False)):
        if bound is None:
            continue
        scalar = pa.scalar(bound)
        if pa.types.is_timestamp(values.type):
            scalar = pa.scalar(bound).cast(values.type)
        if above:
            ok = pc.greater(values, scalar) if strict else pc.greater_equal(values, scalar)
        else:
            ok = pc.less(values, scalar) if strict else pc.less_equal(values, scalar)
        inside &= _as_numpy(pc.fill_null(ok, True))
    return inside


def _all_between(values: Any, low: Any, high: Any, strict_low: bool, strict_high: bool) -> bool:
    """True when every non-null value lies inside the bounds, from the values' minimum and
    maximum alone (False: undecided, compare value by value). A NaN is never inside (a
    comparison with it is false) and min/max skip it, so a column holding one is undecided."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not (pa.types.is_integer(values.type) or pa.types.is_floating(values.type) or pa.types.is_timestamp(values.type)):
        return False
    if pa.types.is_floating(values.type) and pc.any(pc.is_nan(values)).as_py():
        return False
    extremes = pc.min_max(values)
    low_seen, high_seen = extremes["min"], extremes["max"]
    if not low_seen.is_valid:  # no value at all: nothing outside
        return True
    for bound, strict, seen, above in ((low, strict_low, low_seen, True), (high, strict_high, high_seen, False)):
        if bound is None:
            continue
        scalar = pa.scalar(bound)
        if pa.types.is_timestamp(values.type):
            scalar = scalar.cast(values.type)
        if above:
            ok = pc.greater(seen, scalar) if strict else pc.greater_equal(seen, scalar)
        else:
            ok = pc.less(seen, scalar) if strict else pc.less_equal(seen, scalar)
        if not ok.as_py():
            return False
    return True


def _arrow_evaluate(columns: _ChunkColumns, check: Check) -> ChunkResult:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    kwargs = check.expectation.kwargs
    name = str(check.column)
    on_dictionary = check.type == "expect_column_values_to_be_in_set" or check.type in NULL_TYPES
    column = columns.raw(name) if on_dictionary else columns.values(name)
    n = len(column)
    valid = columns.valid(name)
    result = ChunkResult(check.position, element_count=n)
    if check.type in NULL_TYPES:
        unexpected = ~valid if check.type == "expect_column_values_to_not_be_null" else valid
    else:
        result.missing_count = int(n - valid.sum())
        if pa.types.is_null(column.type):
            unexpected = np.zeros(n, dtype=bool)
        elif check.type == "expect_column_values_to_be_between":
            inside = _between(
                column, kwargs.get("min_value"), kwargs.get("max_value"),
                bool(kwargs.get("strict_min", False)), bool(kwargs.get("strict_max", False)),
            )  # fmt: skip
            unexpected = valid & ~inside
        elif check.type == "expect_column_value_lengths_to_be_between":
            lengths = pc.utf8_length(column)
            unexpected = valid & ~_between(lengths, kwargs.get("min_value"), kwargs.get("max_value"), False, False)
        elif check.type == "expect_column_values_to_be_in_set":
            unexpected = valid & ~_in_set(column, list(kwargs["value_set"]))
        elif check.type == "expect_column_values_to_not_match_regex":
            unexpected = valid & _matches(column, valid, kwargs["regex"])
        elif check.type == UNIQUE_TYPE:
            unexpected = np.zeros(n, dtype=bool)  # filled from the partition's duplicates
        else:  # pragma: no cover - arrow_native guards this
            raise AssertionError(check.type)
    result.unexpected = np.asarray(unexpected, dtype=bool)
    result.unexpected_count = int(result.unexpected.sum())
    return result


def _in_set(column: pa.ChunkedArray, value_set: list[Any]) -> np.ndarray:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_dictionary(column.type):  # each distinct value looked up once
        parts = [np.zeros(0, dtype=bool)]
        for chunk in column.chunks:
            known = _in_set(chunk.dictionary, value_set)
            if known.all() and not chunk.null_count:  # every value the chunk can hold is in the set
                parts.append(np.ones(len(chunk), dtype=bool))
                continue
            indices = chunk.indices.fill_null(0).to_numpy(zero_copy_only=False)
            found = known[indices] if len(known) else np.zeros(len(chunk), dtype=bool)
            if chunk.null_count:  # a null is in no set, as on plain values
                found &= chunk.is_valid().to_numpy(zero_copy_only=False)
            parts.append(found)
        return np.concatenate(parts)
    try:
        members = pa.array(value_set, type=column.type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
        # The set does not fit the column's type: compare as pandas does (GX's pandas isin).
        series = column.to_pandas()
        return series.isin(value_set).to_numpy(dtype=bool)
    return _as_numpy(pc.fill_null(pc.is_in(column, value_set=members), False))


def _matches(column: pa.ChunkedArray, valid: np.ndarray, regex: str) -> np.ndarray:
    """Python ``re`` search semantics, as GX's pandas ``str.contains`` (RE2 may differ)."""
    import numpy as np

    out = np.zeros(len(column), dtype=bool)
    if valid.any():
        series = column.filter(valid).to_pandas()
        out[np.flatnonzero(valid)] = series.astype(str).str.contains(regex, regex=True).to_numpy(dtype=bool)
    return out


# --- Great Expectations ------------------------------------------------------------------------


def chunk_frame(chunk: pa.Table, rows: np.ndarray, context: ChunkContext) -> pd.DataFrame:
    """The chunk as the frame GX sees: the suite's columns, with ``_row`` and ``_coercion_errors``."""
    import pyarrow as pa

    picked = chunk.select([c for c in chunk.column_names if c in context.columns])
    for i, f in enumerate(picked.schema):  # dictionary-read columns as plain values, as GX expects
        if pa.types.is_dictionary(f.type):
            picked = picked.set_column(i, f.name, picked.column(i).cast(f.type.value_type))
    frame = picked.to_pandas()
    frame[keys.ROW_COLUMN] = rows
    if keys.COERCION_ERRORS_COLUMN not in frame.columns:
        frame[keys.COERCION_ERRORS_COLUMN] = None
    frame[keys.COERCION_ERRORS_COLUMN] = frame[keys.COERCION_ERRORS_COLUMN].astype(object)
    frame = frame[[c for c in context.columns if c in frame.columns]]
    return frame.reset_index(drop=True)


def _gx_evaluate(
    chunk: pa.Table, rows: np.ndarray, context: ChunkContext, checks: list[Check]
) -> dict[int, ChunkResult]:
    import numpy as np

    frame = chunk_frame(chunk, rows, context)
    suite = context.gx_suite(tuple(c.position for c in checks))
    result = run_suite(frame, suite)
    counts = {r.expectation_config.meta["flywheel_position"]: r.result or {} for r in result.results}
    out: dict[int, ChunkResult] = {}
    for o in gx_outcomes(result, frame):
        details = counts.get(o.position, {})
        r = ChunkResult(
            o.position,
            element_count=int(details.get("element_count") or 0),
            missing_count=details.get("missing_count"),
            error=o.error,
            success=o.success,
            observed_value=o.observed_value,
        )
        if o.row_level and o.error is None:
            if o.success or o.failing_rows:
                r.unexpected = np.isin(rows, np.asarray(o.failing_rows, dtype=np.int64))
                r.unexpected_count = int(r.unexpected.sum())
            else:
                r.names_rows = False
                r.unexpected_count = int(o.unexpected_count or 0)
        out[o.position] = r
    return out


# --- partition-level checks ----------------------------------------------------------------------


def table_outcome(check: Check, columns: list[str], rows_in: int) -> ChunkResult:
    """A table check decided from the partition's columns and row count (as GX observes them)."""
    kwargs = check.expectation.kwargs
    if check.type == "expect_table_columns_to_match_set":
        wanted, observed = set(kwargs["column_set"]), set(columns)
        exact = kwargs.get("exact_match", True)
        success = observed == wanted if exact in (True, None) else wanted <= observed
        return ChunkResult(check.position, success=success, observed_value=sorted(columns))
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    success = (low is None or rows_in >= low) and (high is None or rows_in <= high)
    return ChunkResult(check.position, success=success, observed_value=rows_in)


def suite_columns(raw_columns: list[str]) -> list[str]:
    """The columns GX would see: the raw ones but the pipeline's non-suite meta columns, plus the
    suite's meta columns a writer left out."""
    from mlflywheel.validation.suite import PIPELINE_META_COLUMNS

    keep = [c for c in raw_columns if c not in PIPELINE_META_COLUMNS or c in SUITE_META_COLUMNS]
    return keep + [c for c in SUITE_META_COLUMNS if c not in keep]
