"""Publishing a validated partition: the zones, the report and the ledger, in a crash-safe order.

Quarantine is published before validated, so a crash in between never drops rows; a re-run
replaces every zone of the day. The ledger summary is written last: it is the mark that the
partition is done (see :func:`mlflywheel.ledger.write_summary`).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING, Any

from mlflywheel import ledger
from mlflywheel.lake import Lake, frame_to_parquet, keys
from mlflywheel.validation.report import outcome_row
from mlflywheel.validation.verdict import Split, Verdict

if TYPE_CHECKING:  # pragma: no cover
    from great_expectations.core import ExpectationSuite, ExpectationSuiteValidationResult


def publish(
    lake: Lake,
    day: dt.date,
    split: Split,
    summary: dict[str, Any],
    *,
    report_html: str,
    verdict: Verdict,
    suite: ExpectationSuite,
    result: ExpectationSuiteValidationResult,
    ledger_sink: ledger.LedgerSink | None = None,
) -> None:
    """Write the day's validated and quarantined partitions, the report and the ledger summary."""
    dataset, run_id, rows_in = summary["dataset"], summary["run_id"], summary["rows_in"]
    result_json = json.dumps(result.to_json_dict(), indent=2, sort_keys=True, default=str).encode()
    if split.status != "validated":
        lake.publish_partition(
            keys.QUARANTINE,
            dataset,
            day,
            {
                keys.DATA_FILE: frame_to_parquet(split.quarantined),
                "validation_result.json": result_json,
                keys.REPORT_HTML: report_html.encode(),
            },
            meta={
                "rows": len(split.quarantined),
                "run_id": run_id,
                "rows_in": rows_in,
                "scope": "partition" if split.status == "quarantined" else "rows",
                "partition_failures": summary["partition_failures"],
            },
        )
    if split.validated is not None:
        lake.publish_partition(
            keys.VALIDATED,
            dataset,
            day,
            {keys.DATA_FILE: frame_to_parquet(split.validated)},
            meta={
                "rows": split.rows_validated,
                "run_id": run_id,
                "rows_in": rows_in,
                "rows_quarantined": len(split.quarantined),
            },
        )
    else:
        lake.clear_partition(keys.VALIDATED, dataset, day)  # an earlier run's rows are no longer trusted
    if split.status == "validated":
        lake.clear_partition(keys.QUARANTINE, dataset, day)  # stale failures of an earlier run

    lake.put_text(summary["report_key"], report_html)
    lake.put_json(
        keys.validation_report_key(dataset, day, keys.SUMMARY_JSON),
        {
            **summary,
            "expectations": [outcome_row(o) for o in verdict.outcomes],
            "suite": suite.to_json_dict(),
        },
    )
    ledger.write_summary(lake, summary, sink=ledger_sink)
