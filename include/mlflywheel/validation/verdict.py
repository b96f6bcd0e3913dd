"""Outcomes of expectations, the rows' reasons, and the validated rows' types.

:class:`ExpectationOutcome` is one expectation's result over the partition, reduced to what the
verdict and the report need (:func:`outcomes` reads it from a Great Expectations result);
:func:`coercion_row_reason` words an unreadable value; :func:`to_schema_types` gives the
validated zone's columns and dtypes; :func:`partition_failures` words the partition-level
failures. A partition read from the lake is judged chunk by chunk (:mod:`.streaming`); a whole
frame held in memory (a day validated inside PostgreSQL) by :func:`judge` and :func:`split_rows`,
with the same wording.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlflywheel.datasets.cells import PANDAS_DTYPES, explain
from mlflywheel.datasets.spec import DatasetSpec
from mlflywheel.lake import keys
from mlflywheel.validation.errors import ValidationError
from mlflywheel.validation.suite import COERCION_REASON, PIPELINE_META_COLUMNS, SUITE_META_COLUMNS

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from great_expectations.core import ExpectationSuiteValidationResult

log = logging.getLogger("mlflywheel.validation")

_MAX_ORIGINAL_TEXT = 120  # characters of an unreadable value quoted in a row's reason

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


@dataclass
class Verdict:
    outcomes: list[ExpectationOutcome]
    partition_failures: list[str]
    row_reasons: dict[int, list[str]]  # _row -> reasons, for rows failing row-level expectations
    reason_counts: Counter[str]  # generic reason -> rows


def partition_failures(
    spec: DatasetSpec,
    outcomes: list[ExpectationOutcome],
    columns: list[str],
    *,
    failed_rows: int,
    rows_in: int,
    max_failed_row_fraction: float,
) -> list[str]:
    """The partition-level failures, worded as the whole-frame verdict words them."""
    schema = spec.column_names
    missing = [c for c in schema if c not in columns]
    extra = [c for c in columns if c not in PIPELINE_META_COLUMNS and c not in schema]
    failures: list[str] = []
    for o in outcomes:
        if o.success:
            continue
        if o.type == "expect_table_columns_to_match_set":
            detail = "; ".join(
                part
                for part in (
                    f"missing {', '.join(missing)}" if missing else "",
                    f"unexpected {', '.join(map(str, extra))}" if extra else "",
                )
                if part
            )
            failures.append(f"{o.reason}: {detail}" if detail else o.reason)
        elif o.error is not None:
            # An expectation on a missing column cannot run; the column check already says why.
            if o.column is not None and o.column in missing:
                continue
            failures.append(f"{o.label} could not be evaluated: {o.error}")
        elif not o.row_level:
            observed = f" (observed {o.observed_value})" if o.observed_value is not None else ""
            failures.append(f"{o.reason}{observed}")
        elif not o.names_rows:
            # A row-level expectation that failed without naming rows cannot split the partition.
            failures.append(f"{o.reason} ({o.label} failed without naming the rows)")
    if rows_in and failed_rows / rows_in > max_failed_row_fraction:
        failures.append(
            f"{failed_rows} of {rows_in} rows ({failed_rows / rows_in:.1%}) failed row-level expectations, "
            f"above the limit of {max_failed_row_fraction:.1%}"
        )
    return failures


def judge(
    spec: DatasetSpec,
    frame: pd.DataFrame,
    outcomes: list[ExpectationOutcome],
    max_failed_row_fraction: float,
) -> Verdict:
    """The verdict on a whole frame (a partition held in memory, e.g. one validated in PostgreSQL)."""
    row_reasons: dict[int, list[str]] = {}
    reason_counts: Counter[str] = Counter()
    coercion_text = dict(zip(frame[keys.ROW_COLUMN].tolist(), frame[keys.COERCION_ERRORS_COLUMN].tolist(), strict=True))
    judged = []
    for o in outcomes:
        if o.row_level and not o.success and o.error is None:
            o = dataclasses.replace(o, names_rows=bool(o.failing_rows))
            for row_id in o.failing_rows if o.names_rows else ():
                reasons = row_reasons.setdefault(row_id, [])
                if o.type == "expect_column_values_to_be_null" and o.column == keys.COERCION_ERRORS_COLUMN:
                    reasons.append(coercion_row_reason(spec, coercion_text.get(row_id)))
                elif o.reason not in reasons:  # duplicates list a row once per occurrence
                    reasons.append(o.reason)
            if o.names_rows:
                reason_counts[o.reason] += len(set(o.failing_rows))
        judged.append(o)
    failures = partition_failures(
        spec, judged, list(frame.columns),
        failed_rows=len(row_reasons), rows_in=len(frame), max_failed_row_fraction=max_failed_row_fraction,
    )  # fmt: skip
    return Verdict(outcomes, failures, row_reasons, reason_counts)


# --- frames ------------------------------------------------------------------------------------


def prepare(raw: pd.DataFrame) -> pd.DataFrame:
    """The raw frame with the meta columns the suite relies on (added if a writer left them out)."""
    frame = raw.reset_index(drop=True).copy()
    if keys.ROW_COLUMN not in frame.columns:
        frame[keys.ROW_COLUMN] = range(len(frame))
    if not frame[keys.ROW_COLUMN].is_unique:
        raise ValidationError(f"raw partition has duplicate {keys.ROW_COLUMN} values: rows cannot be told apart")
    frame[keys.ROW_COLUMN] = frame[keys.ROW_COLUMN].astype("int64")
    if keys.COERCION_ERRORS_COLUMN not in frame.columns:
        frame[keys.COERCION_ERRORS_COLUMN] = None
    frame[keys.COERCION_ERRORS_COLUMN] = frame[keys.COERCION_ERRORS_COLUMN].astype(object)
    return frame


def suite_frame(frame: pd.DataFrame) -> pd.DataFrame:
    # Of the pipeline's meta columns only the suite's go to GX; any other column (an upstream's
    # "_note" too) reaches the column check.
    keep = [c for c in frame.columns if c not in PIPELINE_META_COLUMNS or c in SUITE_META_COLUMNS]
    return frame[keep]


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


@dataclass
class Split:
    """Where every row of the partition goes, and the counts the ledger records."""

    status: str  # validated | partially_quarantined | quarantined
    validated: pd.DataFrame | None  # schema-typed rows; None when the whole partition is quarantined
    quarantined: pd.DataFrame  # failing rows with their reasons in ``_quarantine_reasons``
    reason_counts: dict[str, int]  # reason -> rows, most frequent first
    failing_sample: pd.DataFrame  # quarantined rows that failed on their own (all, if none did)

    @property
    def rows_validated(self) -> int:
        return 0 if self.validated is None else len(self.validated)


def split_rows(spec: DatasetSpec, frame: pd.DataFrame, verdict: Verdict, *, where: str) -> Split:
    """Apply the verdict: every row ends in exactly one zone (checked), with its reasons."""
    import pandas as pd

    rows_in = len(frame)
    row_reason_text = frame[keys.ROW_COLUMN].map(lambda r: "; ".join(verdict.row_reasons.get(r, [])))
    if verdict.partition_failures:
        status = "quarantined"
        failed_mask = pd.Series(True, index=frame.index)
        partition_text = "; ".join(verdict.partition_failures)
        reasons_column = row_reason_text.map(lambda t: f"{partition_text}; {t}" if t else partition_text)
        reason_counts = Counter(verdict.reason_counts)
        for failure in verdict.partition_failures:
            reason_counts[failure] = rows_in
    else:
        failed_mask = frame[keys.ROW_COLUMN].isin(list(verdict.row_reasons))
        status = "partially_quarantined" if failed_mask.any() else "validated"
        reasons_column = row_reason_text
        reason_counts = verdict.reason_counts

    quarantined = frame[failed_mask].copy()
    quarantined[keys.QUARANTINE_REASONS_COLUMN] = reasons_column[failed_mask].astype(object)
    quarantined = quarantined.reset_index(drop=True)
    validated = to_schema_types(frame[~failed_mask], spec) if status != "quarantined" else None
    rows_validated = 0 if validated is None else len(validated)
    if rows_in != rows_validated + len(quarantined):  # nothing may be lost or doubled
        raise ValidationError(
            f"{where}: rows_in={rows_in} but validated={rows_validated} + quarantined={len(quarantined)}"
        )
    # The sample shows rows that failed on their own first (all rows fail a partition-level check).
    sample = quarantined
    if verdict.row_reasons:
        sample = quarantined[quarantined[keys.ROW_COLUMN].isin(list(verdict.row_reasons))]
    return Split(
        status=status,
        validated=validated,
        quarantined=quarantined,
        reason_counts=dict(sorted(reason_counts.items(), key=lambda kv: (-kv[1], kv[0]))),
        failing_sample=sample,
    )


def log_failures(where: str, verdict: Verdict | list[ExpectationOutcome], rows_in: int) -> None:
    """One warning per failed expectation (of a verdict, or a list of outcomes), with its counts."""
    for o in verdict.outcomes if isinstance(verdict, Verdict) else verdict:
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
