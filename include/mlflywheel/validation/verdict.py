"""Outcomes of expectations, the rows' reasons, and the validated rows' types.

:class:`ExpectationOutcome` is one expectation's result over the partition, reduced to what the
verdict and the report need (:func:`outcomes` reads it from a Great Expectations result);
:func:`coercion_row_reason` words an unreadable value; :func:`to_schema_types` gives the
validated zone's columns and dtypes. The verdict itself is reached chunk by chunk in
:mod:`.streaming`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlflywheel.datasets.cells import explain
from mlflywheel.datasets.spec import DatasetSpec
from mlflywheel.lake import keys
from mlflywheel.validation.suite import COERCION_REASON

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from great_expectations.core import ExpectationSuiteValidationResult

log = logging.getLogger("mlflywheel.validation")

_MAX_ORIGINAL_TEXT = 120  # characters of an unreadable value quoted in a row's reason

# pandas dtypes of validated data, per schema dtype (the same casts as the raw zone).
PANDAS_DTYPES = {"string": "object", "int": "Int64", "float": "float64", "datetime": "datetime64[ns, UTC]"}


# --- interpreting the result ------------------------------------------------------------------


@dataclass
class ExpectationOutcome:
    """One expectation's result, reduced to what the split and the report need."""

    position: int
    type: str
    column: str | None
    row_level: bool
    reason: str
    success: bool
    unexpected_count: int | None = None
    unexpected_percent: float | None = None
    observed_value: Any = None
    error: str | None = None
    failing_rows: list[int] = field(default_factory=list)
    names_rows: bool = True  # False: a row-level failure that named no rows

    @property
    def label(self) -> str:
        return f"{self.type}({self.column})" if self.column else self.type


def _exception_message(info: Any) -> str | None:
    """The first raised exception's message in a GX ``exception_info`` (flat or per metric)."""
    if not isinstance(info, dict):
        return None
    if "raised_exception" in info:
        return (info.get("exception_message") or "error") if info.get("raised_exception") else None
    for value in info.values():
        message = _exception_message(value)
        if message:
            return message
    return None


def outcomes(result: ExpectationSuiteValidationResult, frame: pd.DataFrame) -> list[ExpectationOutcome]:
    out = []
    for r in result.results:
        config = r.expectation_config
        meta = config.meta or {}
        details = r.result or {}
        outcome = ExpectationOutcome(
            position=int(meta.get("flywheel_position", len(out))),
            type=config.type,
            column=config.kwargs.get("column"),
            row_level=bool(meta.get("row_level", False)),
            reason=str(meta.get("reason", config.type)),
            success=bool(r.success),
            unexpected_count=details.get("unexpected_count"),
            unexpected_percent=details.get("unexpected_percent"),
            observed_value=details.get("observed_value"),
            error=_exception_message(r.exception_info),
        )
        if outcome.row_level and outcome.error is None:  # a pass with ``mostly`` may name rows too
            index_list = details.get("unexpected_index_list")
            if index_list is not None:
                # Entries are {"_row": id, column: value}; plain positions if GX ignored the id column.
                outcome.failing_rows = [
                    int(entry[keys.ROW_COLUMN]) if isinstance(entry, dict) else int(frame[keys.ROW_COLUMN].iloc[int(entry)])
                    for entry in index_list
                ]
        out.append(outcome)
    return sorted(out, key=lambda o: o.position)


def coercion_row_reason(spec: DatasetSpec, errors_text: Any) -> str:
    """The generic reason plus each unreadable value's original text.

    E.g. ``value could not be read as its type: amount='abc' is not a valid float`` or
    ``account_age_days='1e20' is beyond the 64-bit int range (overflow)``
    (:func:`mlflywheel.datasets.cells.explain`).
    """
    try:
        errors = json.loads(errors_text)
    except (TypeError, ValueError):
        errors = None
    if not isinstance(errors, dict) or not errors:
        return f"{COERCION_REASON}: {str(errors_text)[:_MAX_ORIGINAL_TEXT]!r}"
    names = set(spec.column_names)
    details = [
        f"{column}={str(original)[:_MAX_ORIGINAL_TEXT]!r} "
        + (explain(original, spec.column(column).dtype) if column in names else "is not a valid value")
        for column, original in errors.items()
    ]
    return f"{COERCION_REASON}: {', '.join(details)}"


# --- frames ------------------------------------------------------------------------------------


def to_schema_types(frame: pd.DataFrame, spec: DatasetSpec) -> pd.DataFrame:
    """Exactly the schema's columns, in schema order, with the schema's pandas dtypes; plus the
    derived row id (``_row_id``) when the spec declares no id column and ingest wrote one."""
    import pandas as pd

    out = pd.DataFrame(index=frame.index)
    for column in spec.columns:
        values = frame[column.name]
        if column.dtype == "datetime":
            out[column.name] = pd.to_datetime(values, utc=True).astype(PANDAS_DTYPES["datetime"])
        else:
            out[column.name] = values.astype(PANDAS_DTYPES[column.dtype])
    if spec.id_column is None and keys.ROW_ID_COLUMN in frame.columns:
        out[keys.ROW_ID_COLUMN] = frame[keys.ROW_ID_COLUMN].astype(object)
    return out.reset_index(drop=True)


def log_failures(where: str, outcomes: list[ExpectationOutcome], rows_in: int) -> None:
    """One warning per failed expectation, with its counts."""
    for o in outcomes:
        if o.success:
            continue
        if o.error is not None:
            log.warning("%s: expectation %s could not run: %s", where, o.label, o.error)
        elif o.unexpected_count is not None:
            log.warning(
                "%s: expectation %s failed on %d of %d rows (%.2f%%): %s",
                where,
                o.label,
                o.unexpected_count,
                rows_in,
                100.0 * o.unexpected_count / max(rows_in, 1),
                o.reason,
            )
        else:
            log.warning(
                "%s: expectation %s failed: %s (observed %s)", where, o.label, o.reason, o.observed_value
            )
