"""The dataset spec: everything the pipeline needs to know about a dataset.

A dataset is declared in a spec file (YAML, see :mod:`mlflywheel.datasets.spec_file`) that maps
onto these dataclasses key for key: schema, types, vocabularies, target, timestamp, features,
extra expectations, the drift and performance policies. The dataclasses are the one place where
a spec's invariants are checked; :class:`SpecError` names the offending field, and the file
layer adds the file's name. Standard library only (plus the lake's key module).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from mlflywheel.lake.keys import META_PREFIX, ROW_ID_COLUMN

DType = Literal["string", "int", "float", "datetime"]
DTYPES = ("string", "int", "float", "datetime")
# Text a spreadsheet would run as a formula (CSV injection), for the reject_formulas rule.
FORMULA_PATTERN = r"^[=+\-@\t\r]"
CATEGORICAL_DTYPES = ("string", "int")  # dtypes a closed vocabulary can be declared for
_CATEGORY_TYPES = {"string": (str,), "int": (int,)}


class SpecError(ValueError):
    """A spec breaks an invariant. ``field`` is the offending field's dotted path, when known
    (e.g. ``timestamp_column``, ``categories``, ``drift.monitored``)."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Column:
    name: str
    dtype: DType
    nullable: bool = False
    min: float | None = None
    max: float | None = None
    # Closed vocabulary of a categorical column, of the column's own type: text for a
    # ``string`` column, whole numbers for an ``int`` column.
    categories: tuple[str | int, ...] | None = None
    description: str = ""
    # Text rules (string columns): cells may hold line breaks only in a multiline column (else a
    # quote left open across lines is caught); a longest allowed text; text that a spreadsheet
    # would run as a formula (leading =, +, -, @, tab, carriage return) refused. ``None``: the
    # dataset's ``max_text_length`` / ``reject_formulas``.
    multiline: bool = False
    max_length: int | None = None
    reject_formulas: bool | None = None

    def __post_init__(self) -> None:
        where = f"column {self.name!r}"
        if self.dtype not in DTYPES:
            raise SpecError(f"{where}: dtype {self.dtype!r} not in {DTYPES}", field="dtype")
        for rule, on in (
            ("multiline", self.multiline),
            ("max_length", self.max_length is not None),
            ("reject_formulas", self.reject_formulas is not None),
        ):
            if on and self.dtype != "string":
                raise SpecError(f"{where}: {rule} applies to string columns, not {self.dtype}", field=rule)
        if self.max_length is not None and (isinstance(self.max_length, bool) or self.max_length < 1):
            raise SpecError(f"{where}: max_length must be a whole number >= 1", field="max_length")
        if (self.min is not None or self.max is not None) and self.dtype not in ("int", "float"):
            raise SpecError(f"{where}: min and max apply to int and float columns, not {self.dtype}", field="min")
        for bound in ("min", "max"):
            value = getattr(self, bound)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise SpecError(f"{where}: {bound} must be a number, got {value!r}", field=bound)
        if self.min is not None and self.max is not None and self.min > self.max:
            raise SpecError(f"{where}: min {self.min} is above max {self.max}", field="min")
        if self.categories is not None:
            self._check_categories(where)

    def _check_categories(self, where: str) -> None:
        if self.dtype not in CATEGORICAL_DTYPES:
            raise SpecError(
                f"{where}: categories are for string or int columns, not {self.dtype}", field="categories"
            )
        wanted = _CATEGORY_TYPES[self.dtype]
        for value in self.categories or ():
            if isinstance(value, bool) or not isinstance(value, wanted):
                if self.dtype == "string":
                    rule, hint = "a string column must be text", " (quote it in YAML to keep it text)"
                else:
                    rule, hint = "an int column must be whole numbers", " (write them without quotes)"
                raise SpecError(
                    f"{where}: categories of {rule}, got {value!r} ({type(value).__name__}){hint}",
                    field="categories",
                )
        if len(set(self.categories or ())) != len(self.categories or ()):
            raise SpecError(f"{where}: categories has duplicates", field="categories")


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
    p_value: float | None = 0.01  # bounds a change-free day's alarm chance; None: FLYWHEEL_DRIFT_P_VALUE
    effect_size: str = "psi"  # psi | wasserstein (scaled by the reference spread) | ks (the statistic)
    effect_threshold: float = 0.2
    min_drifted_features: int = 1
    min_drifted_share: float = 0.0  # of the monitored features, in [0, 1]
    prediction_drift: bool = True
    reference: str = "training_window"  # training_window: the champion's training rows | sample
    window_days: int | None = None  # current window; None: FLYWHEEL_DRIFT_WINDOW_DAYS
    seasonality: str = "day_of_week"  # none | day_of_week | hour_of_day: compare like with like
    seasonal_period_days: int = 0  # e.g. 7 for a weekly rhythm: the current window spans >= a period

    def __post_init__(self) -> None:
        checks = (
            (self.effect_size in EFFECT_SIZES, "effect_size", f"must be one of {EFFECT_SIZES}"),
            (self.seasonality in SEASONALITIES, "seasonality", f"must be one of {SEASONALITIES}"),
            (self.reference in REFERENCES, "reference", f"must be one of {REFERENCES}"),
            (self.effect_threshold >= 0, "effect_threshold", "must be >= 0"),
            (self.min_drifted_features >= 1, "min_drifted_features", "must be >= 1"),
            (0.0 <= self.min_drifted_share <= 1.0, "min_drifted_share", "must be in [0, 1]"),
            (self.p_value is None or 0 < self.p_value < 1, "p_value", "must be in (0, 1)"),
            (self.window_days is None or self.window_days >= 1, "window_days", "must be >= 1"),
            (self.seasonal_period_days >= 0, "seasonal_period_days", "must be >= 0"),
        )
        for ok, name, message in checks:
            if not ok:
                raise SpecError(f"drift policy: {name} {message}", field=name)


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
        checks = (
            (self.tolerance >= 0, "tolerance", "must be >= 0"),
            (self.min_rows >= 1, "min_rows", "must be >= 1"),
            (self.min_positives >= 1, "min_positives", "must be >= 1"),
            (self.window_days >= 1, "window_days", "must be >= 1"),
            (self.label_delay_days >= 0, "label_delay_days", "must be >= 0"),
        )
        for ok, name, message in checks:
            if not ok:
                raise SpecError(f"performance policy: {name} {message}", field=name)


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset: its schema and the roles of its columns.

    ``id_column`` is optional: without one, every row gets a derived id from its partition day
    and its position in the landed file (:attr:`row_id_column`, written by ingest).
    """

    name: str
    description: str
    columns: tuple[Column, ...]
    id_column: str | None
    timestamp_column: str
    target: str
    categorical_features: tuple[str, ...]
    numeric_features: tuple[str, ...]
    landing_format: Literal["csv", "parquet"] = "csv"
    extra_expectations: tuple[Expectation, ...] = field(default_factory=tuple)
    drift: DriftPolicy = field(default_factory=DriftPolicy)
    performance: PerformancePolicy = field(default_factory=PerformancePolicy)
    # Text rules for every string column (a column's own max_length / reject_formulas wins).
    max_text_length: int | None = None
    reject_formulas: bool = False

    def __post_init__(self) -> None:
        if self.max_text_length is not None and (isinstance(self.max_text_length, bool) or self.max_text_length < 1):
            raise self._fail("max_text_length must be a whole number >= 1", "max_text_length")
        self._check_name_and_columns()
        self._check_roles()
        self._check_features()
        self._check_drift_policy()

    def _fail(self, message: str, field: str) -> SpecError:
        return SpecError(f"dataset {self.name!r}: {message}", field=field)

    def _check_name_and_columns(self) -> None:
        # The name becomes lake folders, the model's name and DAG tags: keep it to safe characters.
        if not self.name or not all(ch.isalnum() or ch in "_-" for ch in self.name) or not self.name[0].isalnum():
            raise self._fail("name must be letters, digits, '_' or '-', starting with a letter or digit", "name")
        if self.landing_format not in ("csv", "parquet"):
            raise self._fail(f"landing_format must be csv or parquet, not {self.landing_format!r}", "landing_format")
        if not self.columns:
            raise self._fail("a spec needs at least one column", "columns")
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            raise self._fail("duplicate column names", "columns")
        for name in names:
            if not name or name.startswith(META_PREFIX):
                raise self._fail(
                    f"column name {name!r} is not allowed: names starting with {META_PREFIX!r} are the "
                    "pipeline's meta columns",
                    "columns",
                )

    def _check_roles(self) -> None:
        roles = {"timestamp_column": self.timestamp_column, "target": self.target}
        if self.id_column is not None:
            roles = {"id_column": self.id_column, **roles}
        for field_name, role in roles.items():
            self._require_column(role, field_name)
        if self.column(self.timestamp_column).dtype != "datetime":
            raise self._fail("timestamp column must have dtype datetime", "timestamp_column")
        if self.column(self.target).dtype != "int":
            raise self._fail(
                f"target {self.target!r} must have dtype int (0/1 labels), not {self.column(self.target).dtype}",
                "target",
            )
        if self.id_column is not None:
            id_column = self.column(self.id_column)
            if id_column.dtype not in ("string", "int"):
                raise self._fail(f"id column must have dtype string or int, not {id_column.dtype}", "id_column")
            if id_column.nullable:
                raise self._fail(f"id column {self.id_column!r} cannot be nullable", "id_column")

    def _check_features(self) -> None:
        for field_name in ("categorical_features", "numeric_features"):
            for name in getattr(self, field_name):
                self._require_column(name, field_name)
        for name in self.categorical_features:
            if not self.column(name).categories:
                raise self._fail(f"categorical feature {name!r} needs categories", "categorical_features")
        for name in self.numeric_features:
            if self.column(name).dtype not in ("int", "float"):
                raise self._fail(f"numeric feature {name!r} must be int or float", "numeric_features")
        repeated = sorted({n for n in self.features if self.features.count(n) > 1})
        if repeated:
            raise self._fail(f"features listed twice: {', '.join(repeated)}", "numeric_features")
        for field_name, role in (("target", self.target), ("id_column", self.id_column)):
            if role in self.features:
                raise self._fail(f"{field_name} {role!r} cannot also be a feature", field_name)

    def _check_drift_policy(self) -> None:
        for field_name in ("monitored", "exclude"):
            for name in getattr(self.drift, field_name) or ():
                if name not in self.features:
                    raise self._fail(
                        f"drift.{field_name} names {name!r}, which is not a feature "
                        f"(features: {', '.join(self.features)})",
                        f"drift.{field_name}",
                    )

    def _require_column(self, name: str, field_name: str) -> None:
        if name not in self.column_names:
            raise self._fail(f"{field_name} {name!r} is not a column", field_name)

    def _text_rules(self, c: Column) -> list[Expectation]:
        if c.dtype != "string":
            return []
        out = []
        max_length = c.max_length if c.max_length is not None else self.max_text_length
        if max_length is not None:
            out.append(
                Expectation.rows(
                    "expect_column_value_lengths_to_be_between", f"{c.name} longer than {max_length} characters",
                    column=c.name, max_value=max_length,
                )
            )
        if c.reject_formulas if c.reject_formulas is not None else self.reject_formulas:
            out.append(
                Expectation.rows(
                    "expect_column_values_to_not_match_regex",
                    f"{c.name} looks like a spreadsheet formula (starts with =, +, -, @, tab or carriage return)",
                    column=c.name, regex=FORMULA_PATTERN,
                )
            )
        return out

    @property
    def row_id_column(self) -> str:
        """The column that identifies a row: the declared id, else the derived id that ingest
        writes (``<YYYY-MM-DD>:<position in the landed file>``, see :mod:`mlflywheel.lake.keys`)."""
        return self.id_column if self.id_column is not None else ROW_ID_COLUMN

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
            out.extend(self._text_rules(c))
            if c.categories:
                out.append(
                    Expectation.rows(
                        "expect_column_values_to_be_in_set", f"{c.name} not in its vocabulary",
                        column=c.name, value_set=list(c.categories),
                    )
                )
        if self.id_column is not None:  # a derived id is unique by construction
            out.append(
                Expectation.rows(
                    "expect_column_values_to_be_unique", f"duplicate {self.id_column}", column=self.id_column
                )
            )
        out.extend(self.extra_expectations)
        return out
