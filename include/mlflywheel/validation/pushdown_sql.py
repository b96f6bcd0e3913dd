"""The SQL of validation inside PostgreSQL (:mod:`.pushdown`): the day as the suite sees it, and
each row-level expectation as a predicate that names the rows it fails.

The lake path judges a day after a trip through CSV text (extract, ingest): an empty text is an
empty cell, ``NaN`` in a float column is a missing value, a float that is infinite and a time the
pipeline cannot store (before 1677 or after 2262, ``infinity``) do not cast and are recorded in
``_coercion_errors``. :func:`day_relation` gives the same values in SQL, so the same expectations
count the same rows; the rows' own ``_coercion_errors`` text (with the original values) is built
in Python from the extracted text, exactly as ingest builds it.

Only column types whose text reads back exactly are accepted (:data:`ACCEPTED_TYPES`); any other
type (``numeric``, ``real``, ``char(n)``, ...) is a :class:`~mlflywheel.sources.postgres.SourceError`
naming the column: such a table is validated on the lake path.

Every identifier goes through :mod:`psycopg2.sql`, every value is a :class:`psycopg2.sql.Literal`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from psycopg2 import sql

from mlflywheel.datasets.spec import DatasetSpec, Expectation
from mlflywheel.lake import keys
from mlflywheel.postgres import table_identifier
from mlflywheel.sources.postgres import day_order

# PostgreSQL type OIDs whose text ingest reads back as the schema dtype, value for value.
ACCEPTED_TYPES: dict[str, dict[int, str]] = {
    "string": {25: "text", 1043: "character varying"},
    "int": {20: "bigint", 21: "smallint", 23: "integer"},
    "float": {701: "double precision"},
    "datetime": {1184: "timestamp with time zone", 1114: "timestamp without time zone"},
}
# The times a datetime64[ns] column holds, at PostgreSQL's microsecond precision.
STORABLE_TIMES = (
    dt.datetime(1677, 9, 21, 0, 12, 43, 145225, tzinfo=dt.UTC),
    dt.datetime(2262, 4, 11, 23, 47, 16, 854775, tzinfo=dt.UTC),
)
_NOT_FINITE = sql.SQL("('NaN'::float8, 'Infinity'::float8, '-Infinity'::float8)")
_INFINITE = sql.SQL("('Infinity'::float8, '-Infinity'::float8)")
# kwargs that change an expectation's success but not which rows it finds unexpected.
_SUCCESS_ONLY_KWARGS = {"mostly"}


def _window(spec: DatasetSpec, day: dt.date) -> sql.Composed:
    start, end = keys.day_bounds(day)
    ts = sql.Identifier(spec.timestamp_column)
    return sql.SQL("{ts} >= {start} AND {ts} < {end}").format(
        ts=ts, start=sql.Literal(start), end=sql.Literal(end)
    )


def _row_number(spec: DatasetSpec) -> sql.Composed:
    # The window's ORDER BY sees the table's own columns: the position the extract gives a row.
    return sql.SQL("(row_number() OVER (ORDER BY {order}) - 1)::bigint").format(order=day_order(spec))


def _normalised(column: Any) -> sql.Composed:
    """The value as ingest reads it back from the extract's CSV text."""
    c = sql.Identifier(column.name)
    if column.dtype == "string":
        return sql.SQL("NULLIF({c}, '')").format(c=c)  # CSV cannot tell an empty text from null
    if column.dtype == "float":  # NaN reads as a missing value, +-Infinity does not cast
        return sql.SQL("CASE WHEN {c} IN {bad} THEN NULL ELSE {c} END").format(c=c, bad=_NOT_FINITE)
    if column.dtype == "datetime":
        return sql.SQL("CASE WHEN {c} BETWEEN {low} AND {high} THEN {c} END").format(
            c=c, low=sql.Literal(STORABLE_TIMES[0]), high=sql.Literal(STORABLE_TIMES[1])
        )
    return sql.SQL("{c}").format(c=c)


def _does_not_cast(column: Any) -> sql.Composed | None:
    """When a present value of ``column`` would not cast in ingest (then ``_coercion_errors``)."""
    c = sql.Identifier(column.name)
    if column.dtype == "float":
        return sql.SQL("{c} IN {bad}").format(c=c, bad=_INFINITE)
    if column.dtype == "datetime":
        return sql.SQL("({c} IS NOT NULL AND {c} NOT BETWEEN {low} AND {high})").format(
            c=c, low=sql.Literal(STORABLE_TIMES[0]), high=sql.Literal(STORABLE_TIMES[1])
        )
    return None


def day_relation(spec: DatasetSpec, table: str, day: dt.date) -> sql.Composed:
    """``SELECT`` the day's rows as the suite sees them: the schema's columns read as ingest reads
    them, ``_row`` (the row's position in the extract's order) and ``_coercion_errors`` (the names
    of the columns whose value does not cast, null for a clean row: the suite checks nullness)."""
    failures = [
        sql.SQL("CASE WHEN {cond} THEN {name} END").format(cond=cond, name=sql.Literal(column.name))
        for column in spec.columns
        if (cond := _does_not_cast(column)) is not None
    ]
    coercion = (
        sql.SQL("NULLIF(concat_ws(', ', {parts}), '')").format(parts=sql.SQL(", ").join(failures))
        if failures
        else sql.SQL("NULL::text")
    )
    return sql.SQL(
        "SELECT {columns}, {row} AS {row_name}, {coercion} AS {coercion_name} FROM {table} WHERE {window}"
    ).format(
        columns=sql.SQL(", ").join(
            sql.SQL("{value} AS {name}").format(value=_normalised(c), name=sql.Identifier(c.name))
            for c in spec.columns
        ),
        row=_row_number(spec),
        row_name=sql.Identifier(keys.ROW_COLUMN),
        coercion=coercion,
        coercion_name=sql.Identifier(keys.COERCION_ERRORS_COLUMN),
        table=table_identifier(table),
        window=_window(spec, day),
    )


def day_rows(spec: DatasetSpec, table: str, day: dt.date, rows: list[int], *, listed: bool) -> sql.Composed:
    """``SELECT`` the day's rows as stored (the text the extract writes) with ``_row``, in ``_row``
    order: those whose ``_row`` is in ``rows`` (``listed``) or all the others."""
    raw = sql.SQL("SELECT {columns}, {row} AS {row_name} FROM {table} WHERE {window}").format(
        columns=sql.SQL(", ").join(sql.Identifier(name) for name in spec.column_names),
        row=_row_number(spec),
        row_name=sql.Identifier(keys.ROW_COLUMN),
        table=table_identifier(table),
        window=_window(spec, day),
    )
    row = sql.Identifier(keys.ROW_COLUMN)
    if listed:  # a hash join on the listed positions
        join = sql.SQL("JOIN unnest({rows}::bigint[]) AS listed(r) ON listed.r = d.{row}")
        where = sql.SQL("")
    elif rows:  # an anti join: every row not listed
        join = sql.SQL("LEFT JOIN unnest({rows}::bigint[]) AS listed(r) ON listed.r = d.{row}")
        where = sql.SQL(" WHERE listed.r IS NULL")
    else:
        join, where = sql.SQL(""), sql.SQL("")
    return sql.SQL("SELECT {columns}, d.{row} FROM ({raw}) AS d {join}{where} ORDER BY d.{row}").format(
        columns=sql.SQL(", ").join(
            sql.SQL("d.{}").format(sql.Identifier(name)) for name in spec.column_names
        ),
        row=row,
        raw=raw,
        join=join.format(rows=sql.Literal(rows), row=row),
        where=where,
    )


# --- row-level expectations as predicates ------------------------------------------------------


def _bounds(c: sql.Composable, kwargs: Mapping[str, Any]) -> sql.Composed | None:
    """``c`` outside ``[min_value, max_value]`` (bounds strict where asked); None if unbounded."""
    checks = []
    for bound, inside, strict_inside in (("min_value", ">=", ">"), ("max_value", "<=", "<")):
        value = kwargs.get(bound)
        if value is None:
            continue
        strict = kwargs.get("strict_min" if bound == "min_value" else "strict_max", False)
        operator = strict_inside if strict else inside
        checks.append(sql.SQL("{c} {op} {value}").format(c=c, op=sql.SQL(operator), value=sql.Literal(value)))
    if not checks:
        return None
    return sql.SQL("NOT ({})").format(sql.SQL(" AND ").join(checks))


_KWARGS = {
    "expect_column_values_to_not_be_null": {"column"},
    "expect_column_values_to_be_null": {"column"},
    "expect_column_values_to_be_between": {"column", "min_value", "max_value", "strict_min", "strict_max"},
    "expect_column_value_lengths_to_be_between": {
        "column",
        "min_value",
        "max_value",
        "strict_min",
        "strict_max",
    },
    "expect_column_values_to_be_in_set": {"column", "value_set"},
    "expect_column_values_to_not_be_in_set": {"column", "value_set"},
    "expect_column_values_to_be_unique": {"column"},
    "expect_column_values_to_match_regex": {"column", "regex"},
    "expect_column_values_to_not_match_regex": {"column", "regex"},
}


def unique_count_column(position: int) -> str:
    """The helper column holding, per row, how often its value occurs in the day (unique checks)."""
    return f"_n{position}"


def row_predicate(expectation: Expectation, position: int) -> sql.Composed | None:
    """A predicate over :func:`day_relation`'s columns that is true exactly for the rows
    ``expectation`` finds unexpected, as Great Expectations counts them (nulls are not judged,
    except by the null checks; every occurrence of a duplicated value is unexpected); None where
    no predicate is compiled (then the rows come from Great Expectations itself).

    A unique check reads :func:`unique_count_column` (``count(*) OVER (PARTITION BY column)``).
    """
    kwargs = {k: v for k, v in expectation.kwargs.items() if k not in _SUCCESS_ONLY_KWARGS}
    allowed = _KWARGS.get(expectation.type)
    if allowed is None or not set(kwargs) <= allowed or not isinstance(kwargs.get("column"), str):
        return None
    if any(isinstance(v, dict) for v in kwargs.values()):  # a suite parameter ({"$PARAMETER": ...})
        return None
    c = sql.Identifier(kwargs["column"])
    present = sql.SQL("{c} IS NOT NULL").format(c=c)
    kind = expectation.type
    if kind == "expect_column_values_to_not_be_null":
        return sql.SQL("{c} IS NULL").format(c=c)
    if kind == "expect_column_values_to_be_null":
        return present
    if kind == "expect_column_values_to_be_unique":
        return sql.SQL("{present} AND {n} > 1").format(
            present=present, n=sql.Identifier(unique_count_column(position))
        )
    if kind in ("expect_column_values_to_be_between", "expect_column_value_lengths_to_be_between"):
        value = c if kind == "expect_column_values_to_be_between" else sql.SQL("char_length({c})").format(c=c)
        outside = _bounds(value, kwargs)
        return (
            None
            if outside is None
            else sql.SQL("{present} AND {outside}").format(present=present, outside=outside)
        )
    if kind in ("expect_column_values_to_be_in_set", "expect_column_values_to_not_be_in_set"):
        values = list(kwargs.get("value_set") or [])
        inside = (
            sql.SQL("{c} IN ({values})").format(
                c=c, values=sql.SQL(", ").join(sql.Literal(v) for v in values)
            )
            if values
            else sql.SQL("FALSE")
        )
        wrong = sql.SQL("NOT ({})").format(inside) if kind == "expect_column_values_to_be_in_set" else inside
        return sql.SQL("{present} AND {wrong}").format(present=present, wrong=wrong)
    if kind in ("expect_column_values_to_match_regex", "expect_column_values_to_not_match_regex"):
        matches = sql.SQL("{c} ~ {regex}").format(c=c, regex=sql.Literal(kwargs["regex"]))
        wrong = (
            sql.SQL("NOT ({})").format(matches) if kind == "expect_column_values_to_match_regex" else matches
        )
        return sql.SQL("{present} AND {wrong}").format(present=present, wrong=wrong)
    return None  # pragma: no cover - every type of _KWARGS is handled above


def failing_rows_query(
    relation: sql.Composable, predicates: Mapping[int, sql.Composable], unique_columns: Mapping[int, str]
) -> sql.Composed:
    """``SELECT _row, <one boolean per predicate> FROM <relation> WHERE <any predicate>``: the rows
    that fail, and which checks they fail (columns in ``predicates``' order)."""
    counts = [
        sql.SQL("count(*) OVER (PARTITION BY {c}) AS {n}").format(
            c=sql.Identifier(column), n=sql.Identifier(unique_count_column(position))
        )
        for position, column in unique_columns.items()
    ]
    inner = (
        sql.SQL("SELECT day.*, {counts} FROM ({relation}) AS day").format(
            counts=sql.SQL(", ").join(counts), relation=relation
        )
        if counts
        else relation
    )
    flags = sql.SQL(", ").join(sql.SQL("coalesce({p}, FALSE)").format(p=p) for p in predicates.values())
    return sql.SQL("SELECT {row}, {flags} FROM ({inner}) AS checked WHERE {any}").format(
        row=sql.Identifier(keys.ROW_COLUMN),
        flags=flags,
        inner=inner,
        any=sql.SQL(" OR ").join(sql.SQL("coalesce({p}, FALSE)").format(p=p) for p in predicates.values()),
    )
