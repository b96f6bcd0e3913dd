"""The expectation suite of a partition, built from the dataset spec and run with Great Expectations.

The spec's expectations (:meth:`~mlflywheel.datasets.spec.DatasetSpec.expectations`) plus two
checks that only make sense per partition: the timestamp lies inside the partition's UTC day, and
``_coercion_errors`` is null (ingest could read every value as its schema type). Each
expectation's ``meta`` carries the Flywheel reason, whether it is row-level, and its position.

Great Expectations is imported lazily (its cold import takes seconds), with analytics off, and one
ephemeral context is reused per process.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from typing import TYPE_CHECKING, Any

from mlflywheel.datasets.spec import DatasetSpec, Expectation
from mlflywheel.lake import keys
from mlflywheel.validation.errors import ValidationError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from great_expectations.core import ExpectationSuite, ExpectationSuiteValidationResult

# The meta columns the suite expects next to the schema columns (the pipeline's others are dropped
# before GX; any other column, "_" or not, is the upstream's and must fail the column check).
SUITE_META_COLUMNS = (keys.ROW_COLUMN, keys.COERCION_ERRORS_COLUMN)
PIPELINE_META_COLUMNS = (*SUITE_META_COLUMNS, keys.ROW_ID_COLUMN, keys.QUARANTINE_REASONS_COLUMN)
COERCION_REASON = "value could not be read as its type"


def partition_expectations(spec: DatasetSpec, day: dt.date) -> list[Expectation]:
    """The spec's expectations adapted to one partition of the raw zone, plus the partition checks."""
    start, end = keys.day_bounds(day)
    out: list[Expectation] = []
    for expectation in spec.expectations():
        if expectation.type == "expect_table_columns_to_match_set":
            # The raw frame carries meta columns; expect them too, so a missing or extra
            # *schema* column is still the only way this expectation fails.
            kwargs = dict(expectation.kwargs)
            kwargs["column_set"] = list(kwargs["column_set"]) + list(SUITE_META_COLUMNS)
            expectation = Expectation(expectation.type, kwargs, expectation.row_level, expectation.reason)
        out.append(expectation)
    ts = spec.timestamp_column
    out.append(
        Expectation.rows(
            "expect_column_values_to_be_between",
            f"{ts} outside the partition day [{start.isoformat()}, {end.isoformat()})",
            column=ts, min_value=start, max_value=end, strict_max=True,
        )
    )
    out.append(
        Expectation.rows("expect_column_values_to_be_null", COERCION_REASON, column=keys.COERCION_ERRORS_COLUMN)
    )
    return out


def _import_gx() -> Any:
    # Analytics must be off before the first GX import: runs have no network.
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx

    return gx


def _expectation_class(type_name: str) -> Any:
    import great_expectations.expectations as gxe

    class_name = "".join(part.capitalize() for part in type_name.split("_"))
    cls = getattr(gxe, class_name, None)
    if cls is None:
        raise ValidationError(f"unknown Great Expectations expectation {type_name!r} (no class {class_name})")
    return cls


def build_suite(spec: DatasetSpec, day: dt.date, *, positions: tuple[int, ...] | None = None) -> ExpectationSuite:
    """The Great Expectations suite that validates ``spec``'s partition for ``day``.

    Each expectation's ``meta`` carries the flywheel reason, whether it is row-level, and
    its position (results come back in a different order than the suite's). ``positions``: only
    those expectations (a chunk's share of the suite).
    """
    gx = _import_gx()
    expectations = []
    for position, expectation in enumerate(partition_expectations(spec, day)):
        if positions is not None and position not in positions:
            continue
        cls = _expectation_class(expectation.type)
        meta = {
            "flywheel_position": position,
            "reason": expectation.reason,
            "row_level": expectation.row_level,
        }
        try:
            expectations.append(cls(**expectation.kwargs, meta=meta))
        except Exception as exc:  # pydantic rejects bad kwargs: name the spec entry
            raise ValidationError(
                f"{spec.name}: bad expectation {expectation.type}({expectation.kwargs}): {exc}"
            ) from exc
    # Passed to the constructor, not add_expectation(): that one needs (and saves to) a context.
    suite = gx.ExpectationSuite(name=f"{spec.name}.dt={day.isoformat()}", expectations=expectations)
    if len(suite.expectations) != len(expectations):  # GX drops invalid ones with only a log line
        raise ValidationError(f"{spec.name}: Great Expectations rejected part of the suite (see the log)")
    return suite


def suite_as_dict(spec: DatasetSpec, day: dt.date) -> dict[str, Any]:
    """The suite as a JSON-serialisable dict (for docs and the report)."""
    return build_suite(spec, day).to_json_dict()


def suite_description(spec: DatasetSpec, day: dt.date) -> dict[str, Any]:
    """The suite as plain data, without importing GX (the report's ``suite``): name and each
    expectation's type, kwargs and meta, as in :func:`build_suite`."""
    return {
        "name": f"{spec.name}.dt={day.isoformat()}",
        "expectations": [
            {
                "type": e.type,
                "kwargs": e.kwargs,
                "meta": {"flywheel_position": position, "reason": e.reason, "row_level": e.row_level},
            }
            for position, e in enumerate(partition_expectations(spec, day))
        ],
    }


# --- running GX --------------------------------------------------------------------------------

_gx_lock = threading.Lock()
_gx_batch_definition: Any = None


def _batch_definition() -> Any:
    """One ephemeral GX context per process, reused: creating it costs seconds."""
    global _gx_batch_definition
    with _gx_lock:
        if _gx_batch_definition is None:
            gx = _import_gx()
            from great_expectations.data_context.types.base import ProgressBarsConfig

            context = gx.get_context(mode="ephemeral")
            context.variables.progress_bars = ProgressBarsConfig(globally=False)
            _gx_batch_definition = (
                context.data_sources.add_pandas("flywheel_validation")
                .add_dataframe_asset("partition")
                .add_batch_definition_whole_dataframe("whole_partition")
            )
        return _gx_batch_definition


def run_suite(frame: pd.DataFrame, suite: ExpectationSuite) -> ExpectationSuiteValidationResult:
    """Validate ``frame`` (which must have a ``_row`` column) with the full row ids of failures."""
    batch = _batch_definition().get_batch(batch_parameters={"dataframe": frame})
    # COMPLETE lists every failing row; table-level expectations produce no lists, so it
    # only costs for row-level ones.
    result_format = {"result_format": "COMPLETE", "unexpected_index_column_names": [keys.ROW_COLUMN]}
    return batch.validate(suite, result_format=result_format)
