"""Validation: split a raw partition into validated rows and quarantined rows, with reasons.

The expectation suite is built with Great Expectations from the dataset spec
(:meth:`~mlflywheel.datasets.spec.DatasetSpec.expectations`) plus two checks that only make
sense per partition:

* the timestamp column lies inside the partition's UTC day ``[day 00:00, next day 00:00)``;
* ``_coercion_errors`` is null, i.e. ingest could read every value as its schema type.

Expectations are either *partition-level* (columns match the schema, at least one row) or
*row-level* (not null, in range, in vocabulary, unique id, ...). Outcomes:

``validated``
    no expectation failed: every row goes to ``validated/<dataset>/dt=<day>/``.
``partially_quarantined``
    some rows failed row-level expectations: those rows go to ``quarantine/`` with the
    reasons in ``_quarantine_reasons``, the rest to ``validated/``.
``quarantined``
    a partition-level expectation failed, or more than ``max_failed_row_fraction`` of the
    rows failed: the whole partition goes to ``quarantine/`` and any earlier validated
    partition for that day is cleared.

Every row ends in exactly one zone (checked before publishing), re-runs replace the
partitions of the day instead of adding to them, and each run writes a human-readable
report to ``reports/validation/<dataset>/dt=<day>/`` and the partition's ledger summary.

Great Expectations is imported lazily (its cold import takes seconds) with analytics off.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlflywheel import ledger, reports
from mlflywheel.datasets.spec import DatasetSpec, Expectation
from mlflywheel.lake import Lake, frame_to_parquet

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from great_expectations.core import ExpectationSuite, ExpectationSuiteValidationResult

log = logging.getLogger("mlflywheel.validation")

ROW_ID = "_row"
COERCION_ERRORS = "_coercion_errors"
QUARANTINE_REASONS = "_quarantine_reasons"
# The meta columns the suite expects next to the schema columns (others are dropped before GX).
SUITE_META_COLUMNS = (ROW_ID, COERCION_ERRORS)
COERCION_REASON = "value could not be read as its type"
REPORT_SAMPLE_ROWS = 20
_MAX_ORIGINAL_TEXT = 120  # characters of an unreadable value quoted in a row's reason

# pandas dtypes of validated data, per schema dtype (the same casts as the raw zone).
_PANDAS_DTYPES = {"string": "object", "int": "Int64", "float": "float64", "datetime": "datetime64[ns, UTC]"}


class ValidationError(RuntimeError):
    """A partition could not be validated (missing raw data, broken invariant, bad suite)."""


# --- the suite ---------------------------------------------------------------------------------


def day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """The partition's UTC window: ``[day 00:00, next day 00:00)``."""
    start = dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)
    return start, start + dt.timedelta(days=1)


def partition_expectations(spec: DatasetSpec, day: dt.date) -> list[Expectation]:
    """The spec's expectations adapted to one partition of the raw zone, plus the partition checks."""
    start, end = day_bounds(day)
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
        Expectation(
            "expect_column_values_to_be_between",
            {"column": ts, "min_value": start, "max_value": end, "strict_max": True},
            row_level=True,
            reason=f"{ts} outside the partition day [{start.isoformat()}, {end.isoformat()})",
        )
    )
    out.append(
        Expectation(
            "expect_column_values_to_be_null",
            {"column": COERCION_ERRORS},
            row_level=True,
            reason=COERCION_REASON,
        )
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


def build_suite(spec: DatasetSpec, day: dt.date) -> ExpectationSuite:
    """The Great Expectations suite that validates ``spec``'s partition for ``day``.

    Each expectation's ``meta`` carries the flywheel reason, whether it is row-level, and
    its position (results come back in a different order than the suite's).
    """
    gx = _import_gx()
    expectations = []
    for position, expectation in enumerate(partition_expectations(spec, day)):
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
    result_format = {"result_format": "COMPLETE", "unexpected_index_column_names": [ROW_ID]}
    return batch.validate(suite, result_format=result_format)


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


def _outcomes(result: ExpectationSuiteValidationResult, frame: pd.DataFrame) -> list[ExpectationOutcome]:
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
        if outcome.row_level and not outcome.success and outcome.error is None:
            index_list = details.get("unexpected_index_list")
            if index_list is not None:
                # Entries are {"_row": id, column: value}; plain positions if GX ignored the id column.
                outcome.failing_rows = [
                    int(entry[ROW_ID]) if isinstance(entry, dict) else int(frame[ROW_ID].iloc[int(entry)])
                    for entry in index_list
                ]
        out.append(outcome)
    return sorted(out, key=lambda o: o.position)


def _coercion_row_reason(spec: DatasetSpec, errors_text: Any) -> str:
    """The generic reason plus each unreadable value's original text.

    E.g. ``value could not be read as its type: amount='abc' is not a valid float``.
    """
    try:
        errors = json.loads(errors_text)
    except (TypeError, ValueError):
        errors = None
    if not isinstance(errors, dict) or not errors:
        return f"{COERCION_REASON}: {str(errors_text)[:_MAX_ORIGINAL_TEXT]!r}"
    names = set(spec.column_names)
    details = [
        f"{column}={str(original)[:_MAX_ORIGINAL_TEXT]!r} is not a valid "
        f"{spec.column(column).dtype if column in names else 'value'}"
        for column, original in errors.items()
    ]
    return f"{COERCION_REASON}: {', '.join(details)}"


@dataclass
class _Verdict:
    outcomes: list[ExpectationOutcome]
    partition_failures: list[str]
    row_reasons: dict[int, list[str]]  # _row -> reasons, for rows failing row-level expectations
    reason_counts: Counter[str]  # generic reason -> rows


def _judge(
    spec: DatasetSpec,
    frame: pd.DataFrame,
    outcomes: list[ExpectationOutcome],
    max_failed_row_fraction: float,
) -> _Verdict:
    rows_in = len(frame)
    schema = spec.column_names
    missing = [c for c in schema if c not in frame.columns]
    extra = [c for c in frame.columns if not str(c).startswith("_") and c not in schema]

    partition_failures: list[str] = []
    row_reasons: dict[int, list[str]] = {}
    reason_counts: Counter[str] = Counter()
    coercion_text = dict(zip(frame[ROW_ID].tolist(), frame[COERCION_ERRORS].tolist(), strict=True))

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
            partition_failures.append(f"{o.reason}: {detail}" if detail else o.reason)
        elif o.error is not None:
            # An expectation on a missing column cannot run; the column check already says why.
            if o.column is not None and o.column in missing:
                continue
            partition_failures.append(f"{o.label} could not be evaluated: {o.error}")
        elif not o.row_level:
            observed = f" (observed {o.observed_value})" if o.observed_value is not None else ""
            partition_failures.append(f"{o.reason}{observed}")
        elif not o.failing_rows:
            # A row-level expectation that failed without naming rows cannot split the partition.
            partition_failures.append(f"{o.reason} ({o.label} failed without naming the rows)")
        else:
            reason_counts[o.reason] += len(set(o.failing_rows))
            for row_id in o.failing_rows:
                reasons = row_reasons.setdefault(row_id, [])
                if o.type == "expect_column_values_to_be_null" and o.column == COERCION_ERRORS:
                    reasons.append(_coercion_row_reason(spec, coercion_text.get(row_id)))
                elif o.reason not in reasons:  # duplicates list a row once per occurrence
                    reasons.append(o.reason)

    failed_rows = len(row_reasons)
    if rows_in and failed_rows / rows_in > max_failed_row_fraction:
        partition_failures.append(
            f"{failed_rows} of {rows_in} rows ({failed_rows / rows_in:.1%}) failed row-level expectations, "
            f"above the limit of {max_failed_row_fraction:.1%}"
        )
    return _Verdict(outcomes, partition_failures, row_reasons, reason_counts)


# --- frames ------------------------------------------------------------------------------------


def _prepare(raw: pd.DataFrame) -> pd.DataFrame:
    """The raw frame with the meta columns the suite relies on (added if a writer left them out)."""
    frame = raw.reset_index(drop=True).copy()
    if ROW_ID not in frame.columns:
        frame[ROW_ID] = range(len(frame))
    if not frame[ROW_ID].is_unique:
        raise ValidationError(f"raw partition has duplicate {ROW_ID} values: rows cannot be told apart")
    frame[ROW_ID] = frame[ROW_ID].astype("int64")
    if COERCION_ERRORS not in frame.columns:
        frame[COERCION_ERRORS] = None
    frame[COERCION_ERRORS] = frame[COERCION_ERRORS].astype(object)
    return frame


def _suite_frame(frame: pd.DataFrame) -> pd.DataFrame:
    # Only the suite's meta columns go to GX, so stray "_" columns never fail the column check.
    keep = [c for c in frame.columns if not str(c).startswith("_") or c in SUITE_META_COLUMNS]
    return frame[keep]


def to_schema_types(frame: pd.DataFrame, spec: DatasetSpec) -> pd.DataFrame:
    """Exactly the schema's columns, in schema order, with the schema's pandas dtypes."""
    import pandas as pd

    out = pd.DataFrame(index=frame.index)
    for column in spec.columns:
        values = frame[column.name]
        if column.dtype == "datetime":
            out[column.name] = pd.to_datetime(values, utc=True).astype(_PANDAS_DTYPES["datetime"])
        else:
            out[column.name] = values.astype(_PANDAS_DTYPES[column.dtype])
    return out.reset_index(drop=True)


# --- the stage ---------------------------------------------------------------------------------


def report_prefix(dataset: str, day: dt.date) -> str:
    return f"reports/validation/{dataset}/dt={day.isoformat()}"


def validate_partition(
    lake: Lake,
    spec: DatasetSpec,
    day: dt.date,
    *,
    run_id: str,
    max_failed_row_fraction: float = 0.2,
    ledger_sink: ledger.LedgerSink | None = None,
) -> dict[str, Any]:
    """Validate the raw partition of ``day``, publish validated and quarantined rows, return the summary.

    ``ledger_sink`` (e.g. :func:`mlflywheel.ledger.sink_from_settings`) records the summary
    beside the lake's, in this same step that publishes the partition.

    The summary (also written to the ledger) has dataset, partition, status, rows_in,
    rows_validated, rows_quarantined, reasons (reason -> rows), partition_failures, run_id,
    report_key and validated_at.
    """
    import pandas as pd

    if not 0.0 <= max_failed_row_fraction <= 1.0:
        raise ValueError(f"max_failed_row_fraction must be in [0, 1], got {max_failed_row_fraction}")
    where = f"{spec.name} {day.isoformat()}"

    raw_manifest = lake.manifest("raw", spec.name, day)
    if raw_manifest is None:
        earlier = ledger.read_summary(lake, spec.name, day)
        if earlier and earlier.get("status") == "quarantined" and earlier.get("run_id") == run_id:
            # Ingest already quarantined an unreadable file in this run: nothing to validate.
            log.info(
                "%s: no raw partition; ingest quarantined it in run %s, keeping its summary", where, run_id
            )
            return earlier
        raise ValidationError(
            f"{where}: no raw partition at raw/{spec.name}/dt={day.isoformat()} "
            f"(run {run_id}); run ingest for this day first"
        )

    frame = _prepare(lake.read_frame("raw", spec.name, day))
    rows_in = len(frame)
    declared = raw_manifest.get("rows_in")
    if declared is not None and int(declared) != rows_in:
        raise ValidationError(
            f"{where}: raw manifest says rows_in={declared} but the raw data has {rows_in} rows"
        )

    suite = build_suite(spec, day)
    result = run_suite(_suite_frame(frame), suite)
    verdict = _judge(spec, frame, _outcomes(result, frame), max_failed_row_fraction)

    for o in verdict.outcomes:
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

    # --- split -----------------------------------------------------------------------------
    row_reason_text = frame[ROW_ID].map(lambda r: "; ".join(verdict.row_reasons.get(r, [])))
    if verdict.partition_failures:
        status = "quarantined"
        failed_mask = pd.Series(True, index=frame.index)
        partition_text = "; ".join(verdict.partition_failures)
        reasons_column = row_reason_text.map(lambda t: f"{partition_text}; {t}" if t else partition_text)
        reason_counts = Counter(verdict.reason_counts)
        for failure in verdict.partition_failures:
            reason_counts[failure] = rows_in
    else:
        failed_mask = frame[ROW_ID].isin(list(verdict.row_reasons))
        status = "partially_quarantined" if failed_mask.any() else "validated"
        reasons_column = row_reason_text
        reason_counts = verdict.reason_counts

    quarantined = frame[failed_mask].copy()
    quarantined[QUARANTINE_REASONS] = reasons_column[failed_mask].astype(object)
    quarantined = quarantined.reset_index(drop=True)
    validated = to_schema_types(frame[~failed_mask], spec) if status != "quarantined" else None
    rows_validated = 0 if validated is None else len(validated)
    if rows_in != rows_validated + len(quarantined):  # nothing may be lost or doubled
        raise ValidationError(
            f"{where}: rows_in={rows_in} but validated={rows_validated} + quarantined={len(quarantined)}"
        )

    summary: dict[str, Any] = {
        "dataset": spec.name,
        "partition": day.isoformat(),
        "status": status,
        "rows_in": rows_in,
        "rows_validated": rows_validated,
        "rows_quarantined": len(quarantined),
        "reasons": dict(sorted(reason_counts.items(), key=lambda kv: (-kv[1], kv[0]))),
        "partition_failures": list(verdict.partition_failures),
        "run_id": run_id,
        "report_key": f"{report_prefix(spec.name, day)}/report.html",
        "validated_at": dt.datetime.now(dt.UTC).isoformat(),
    }
    # The sample shows rows that failed on their own first (all rows fail a partition-level check).
    sample = quarantined
    if verdict.row_reasons:
        sample = quarantined[quarantined[ROW_ID].isin(list(verdict.row_reasons))]
    report_html = render_report(spec, summary, verdict.outcomes, sample.head(REPORT_SAMPLE_ROWS))
    result_json = json.dumps(result.to_json_dict(), indent=2, sort_keys=True, default=str).encode()

    # --- publish: quarantine before validated, so a crash in between never drops rows ------
    if status != "validated":
        lake.publish_partition(
            "quarantine",
            spec.name,
            day,
            {
                "data.parquet": frame_to_parquet(quarantined),
                "validation_result.json": result_json,
                "report.html": report_html.encode(),
            },
            meta={
                "rows": len(quarantined),
                "run_id": run_id,
                "rows_in": rows_in,
                "scope": "partition" if status == "quarantined" else "rows",
                "partition_failures": summary["partition_failures"],
            },
        )
    if validated is not None:
        lake.publish_partition(
            "validated",
            spec.name,
            day,
            {"data.parquet": frame_to_parquet(validated)},
            meta={
                "rows": rows_validated,
                "run_id": run_id,
                "rows_in": rows_in,
                "rows_quarantined": len(quarantined),
            },
        )
    else:
        lake.clear_partition("validated", spec.name, day)  # an earlier run's rows are no longer trusted
    if status == "validated":
        lake.clear_partition("quarantine", spec.name, day)  # stale failures of an earlier run

    lake.put_text(summary["report_key"], report_html)
    lake.put_json(
        f"{report_prefix(spec.name, day)}/summary.json",
        {
            **summary,
            "expectations": [_outcome_row(o) for o in verdict.outcomes],
            "suite": suite.to_json_dict(),
        },
    )
    ledger.write_summary(lake, summary, sink=ledger_sink)
    log.info(
        "%s: %s (rows_in=%d validated=%d quarantined=%d) report %s",
        where, status, rows_in, rows_validated, len(quarantined), lake.url(summary["report_key"]),
    )
    return summary


# --- the report --------------------------------------------------------------------------------


def _outcome_row(o: ExpectationOutcome) -> dict[str, Any]:
    return {
        "expectation": o.type,
        "column": o.column,
        "row_level": o.row_level,
        "success": o.success,
        "unexpected_count": o.unexpected_count,
        "unexpected_percent": None if o.unexpected_percent is None else round(float(o.unexpected_percent), 4),
        "reason": o.reason,
        "error": o.error,
    }


def render_report(
    spec: DatasetSpec,
    summary: dict[str, Any],
    outcomes: list[ExpectationOutcome],
    failing_sample: pd.DataFrame,
) -> str:
    """The validation report: a self-contained HTML page."""
    r = reports
    overview = r.key_values(
        [
            ("dataset", summary["dataset"]),
            ("partition", summary["partition"]),
            ("status", r.badge(summary["status"])),
            ("rows in", summary["rows_in"]),
            ("rows validated", summary["rows_validated"]),
            ("rows quarantined", summary["rows_quarantined"]),
            ("run id", summary["run_id"]),
            ("validated at", summary["validated_at"]),
        ]
    )
    expectation_rows = [
        (
            o.type,
            o.column or "",
            "row" if o.row_level else "partition",
            r.badge("passed" if o.success else "failed"),
            "" if o.unexpected_count is None else int(o.unexpected_count),
            "" if o.unexpected_percent is None else f"{float(o.unexpected_percent):.2f}%",
            o.reason if o.error is None else f"{o.reason} (could not run: {o.error})",
        )
        for o in outcomes
    ]
    expectations_html = r.table(
        ["expectation", "column", "level", "result", "unexpected rows", "unexpected % of non-null", "reason"],
        expectation_rows,
        raw_html_columns=(3,),
    )
    reasons_html = r.table(["reason", "rows"], list(summary["reasons"].items())) if summary["reasons"] else (
        '<p class="muted">none</p>'
    )
    if len(failing_sample):
        first = [QUARANTINE_REASONS, ROW_ID]
        columns = first + [c for c in failing_sample.columns if c not in first]
        sample_html = r.table(
            columns, [[_cell(v) for v in row] for row in failing_sample[columns].itertuples(index=False)]
        )
    else:
        sample_html = '<p class="muted">no failing rows</p>'
    return r.page(
        f"Validation of {summary['dataset']} {summary['partition']}: {summary['status']}",
        [
            ("Overview", overview),
            ("Partition failures", r.bullet_list(summary["partition_failures"])),
            ("Reasons", reasons_html),
            ("Expectations", expectations_html),
            (f"Failing rows (sample of up to {REPORT_SAMPLE_ROWS})", sample_html),
        ],
        subtitle=f"{spec.description} Report key: {summary['report_key']}",
    )


def _cell(value: Any) -> Any:
    import pandas as pd

    if value is None or (not isinstance(value, (list, dict, str)) and pd.isna(value)):
        return ""
    return value if isinstance(value, (int, float, str)) else str(value)
