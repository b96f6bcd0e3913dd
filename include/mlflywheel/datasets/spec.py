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


EFFECT_SIZES = ("psi", "wasserstein", "ks")  # how far a feature moved, beside the p-value
SEASONALITIES = ("none", "day_of_week", "hour_of_day")
REFERENCES = ("training_window", "sample")


@dataclass(frozen=True)
class DriftPolicy:
    """How the daily drift check decides, per dataset (the spec's ``drift:`` section).

    A feature drifts only when its test is significant (p < ``p_value`` after correction) AND its
    effect size reaches ``effect_threshold``: a large sample or a long stable stretch then no longer
    turns every tiny difference into an alarm. The dataset drifts when at least
    ``min_drifted_features`` and at least ``min_drifted_share`` of the monitored features drift
    (or, with ``prediction_drift``, when the champion's scores drift by the same two criteria).
    """

    monitored: tuple[str, ...] | None = None  # features tested; None: every feature
    exclude: tuple[str, ...] = ()  # features never tested (e.g. a day-of-week feature)
    p_value: float | None = None  # None: FLYWHEEL_DRIFT_P_VALUE
    effect_size: str = "psi"  # psi | wasserstein (scaled by the reference spread) | ks (the statistic)
    effect_threshold: float = 0.2
    min_drifted_features: int = 1
    min_drifted_share: float = 0.0  # of the monitored features, in [0, 1]
    prediction_drift: bool = True
    reference: str = "training_window"  # training_window: the champion's training rows | sample
    window_days: int | None = None  # current window; None: FLYWHEEL_DRIFT_WINDOW_DAYS
    seasonality: str = "none"  # none | day_of_week | hour_of_day: compare like with like
    seasonal_period_days: int = 0  # e.g. 7 for a weekly rhythm: the current window spans >= a period

    def __post_init__(self) -> None:
        checks = (
            (self.effect_size in EFFECT_SIZES, f"effect_size must be one of {EFFECT_SIZES}"),
            (self.seasonality in SEASONALITIES, f"seasonality must be one of {SEASONALITIES}"),
            (self.reference in REFERENCES, f"reference must be one of {REFERENCES}"),
            (self.effect_threshold >= 0, "effect_threshold must be >= 0"),
            (self.min_drifted_features >= 1, "min_drifted_features must be >= 1"),
            (0.0 <= self.min_drifted_share <= 1.0, "min_drifted_share must be in [0, 1]"),
            (self.p_value is None or 0 < self.p_value < 1, "p_value must be in (0, 1)"),
            (self.window_days is None or self.window_days >= 1, "window_days must be >= 1"),
            (self.seasonal_period_days >= 0, "seasonal_period_days must be >= 0"),
        )
        for ok, message in checks:
            if not ok:
                raise ValueError(f"drift policy: {message}")


@dataclass(frozen=True)
class PerformancePolicy:
    """Performance monitoring on late labels (the spec's ``performance:`` section).

    Each day the champion scores the validated rows whose labels have arrived (rows of the
    ``window_days`` days ending ``label_delay_days`` before the check); a drop of the gate metric
    of more than ``tolerance`` below the champion's holdout figure, on at least ``min_rows`` rows and
    ``min_positives`` positives, is a retraining trigger of its own.
    """

    enabled: bool = True
    tolerance: float = 0.1  # absolute drop of the gate metric that triggers retraining
    min_rows: int = 200
    min_positives: int = 10
    window_days: int = 7
    label_delay_days: int = 1

    def __post_init__(self) -> None:
        if self.tolerance < 0 or self.min_rows < 1 or self.min_positives < 1:
            raise ValueError("performance policy: tolerance >= 0, min_rows >= 1 and min_positives >= 1")
        if self.window_days < 1 or self.label_delay_days < 0:
            raise ValueError("performance policy: window_days >= 1 and label_delay_days >= 0")


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
    drift: DriftPolicy = field(default_factory=DriftPolicy)
    performance: PerformancePolicy = field(default_factory=PerformancePolicy)

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
