"""The validation report: a self-contained HTML page per partition, and its JSON rows."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlflywheel import reports
from mlflywheel.datasets.spec import DatasetSpec
from mlflywheel.lake import keys
from mlflywheel.validation.verdict import ExpectationOutcome

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

REPORT_SAMPLE_ROWS = 20


def outcome_row(o: ExpectationOutcome) -> dict[str, Any]:
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
        first = [keys.QUARANTINE_REASONS_COLUMN, keys.ROW_COLUMN]
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
