"""The dataset spec: everything the pipeline needs to know about a dataset.

A new dataset plugs in by declaring a :class:`DatasetSpec` (schema, types, vocabularies,
target, timestamp, features, extra expectations) and a landing source, and registering both
in :mod:`mlflywheel.datasets`. No DAG code changes. Standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

DType = Literal["string", "int", "float", "datetime"]
DTYPES = ("string", "int", "float", "datetime")


@dataclass(frozen=True)
class Column:
    name: str
    dtype: DType
    nullable: bool = False
    min: float | None = None
    max: float | None = None
    categories: tuple[str, ...] | None = None  # closed vocabulary for categorical columns
    description: str = ""

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"column {self.name!r}: dtype {self.dtype!r} not in {DTYPES}")


@dataclass(frozen=True)
class Expectation:
    """One declarative expectation, turned into a Great Expectations object by validation.

    ``type`` is a GX expectation class name in snake case (e.g. ``expect_column_values_to_be_between``),
    ``kwargs`` its arguments. ``row_level`` expectations can split a partition into passing
    and failing rows; the others judge the partition as a whole.
    """

    type: str
    kwargs: dict[str, Any]
    row_level: bool
    reason: str

    @classmethod
    def rows(cls, type_: str, reason: str, **kwargs: Any) -> Expectation:
        """A row-level expectation: failing rows are quarantined with ``reason``."""
        return cls(type_, kwargs, row_level=True, reason=reason)


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    description: str
    columns: tuple[Column, ...]
    id_column: str
    timestamp_column: str
    target: str
    categorical_features: tuple[str, ...]
    numeric_features: tuple[str, ...]
    landing_format: Literal["csv", "parquet"] = "csv"
    extra_expectations: tuple[Expectation, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            raise ValueError(f"dataset {self.name!r}: duplicate column names")
        for role in (self.id_column, self.timestamp_column, self.target, *self.features):
            if role not in names:
                raise ValueError(f"dataset {self.name!r}: {role!r} is not a column")
        if self.column(self.timestamp_column).dtype != "datetime":
            raise ValueError(f"dataset {self.name!r}: timestamp column must have dtype datetime")
        for name in self.categorical_features:
            if not self.column(name).categories:
                raise ValueError(f"dataset {self.name!r}: categorical feature {name!r} needs categories")
        for name in self.numeric_features:
            if self.column(name).dtype not in ("int", "float"):
                raise ValueError(f"dataset {self.name!r}: numeric feature {name!r} must be int or float")

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def features(self) -> tuple[str, ...]:
        return self.categorical_features + self.numeric_features

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"dataset {self.name!r} has no column {name!r}")

    def expectations(self) -> list[Expectation]:
        """The expectation suite: derived from the schema, plus the spec's extras."""
        out = [
            Expectation(
                "expect_table_columns_to_match_set",
                {"column_set": self.column_names, "exact_match": True},
                row_level=False,
                reason="the columns differ from the schema",
            ),
            Expectation(
                "expect_table_row_count_to_be_between",
                {"min_value": 1},
                row_level=False,
                reason="the partition is empty",
            ),
        ]
        for c in self.columns:
            if not c.nullable:
                out.append(
                    Expectation.rows(
                        "expect_column_values_to_not_be_null", f"{c.name} is missing or not a valid {c.dtype}",
                        column=c.name,
                    )
                )
            if c.min is not None or c.max is not None:
                out.append(
                    Expectation.rows(
                        "expect_column_values_to_be_between", f"{c.name} outside [{c.min}, {c.max}]",
                        column=c.name, min_value=c.min, max_value=c.max,
                    )
                )
            if c.categories:
                out.append(
                    Expectation.rows(
                        "expect_column_values_to_be_in_set", f"{c.name} not in its vocabulary",
                        column=c.name, value_set=list(c.categories),
                    )
                )
        out.append(
            Expectation.rows(
                "expect_column_values_to_be_unique", f"duplicate {self.id_column}", column=self.id_column
            )
        )
        out.extend(self.extra_expectations)
        return out
