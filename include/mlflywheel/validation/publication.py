"""Publishing a validated partition: the zones, the report and the ledger, in one commit.

Validated rows, quarantined rows, the report (HTML and JSON) and the ledger summary are written
by :func:`mlflywheel.ledger.commit`: every file under a fresh version, the summary last as the
partition's commit record. A crash anywhere before it leaves readers on the previous commit
(never new quarantine beside old validated rows); a re-run commits again and collects what the
crashed run left.
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
    commit_id: str | None = None,
) -> dict[str, Any]:
    """Commit the day's validated and quarantined partitions, the report and the ledger summary
    together; returns the summary as recorded (with its ``commit``)."""
    run_id, rows_in = summary["run_id"], summary["rows_in"]
    result_json = json.dumps(result.to_json_dict(), indent=2, sort_keys=True, default=str).encode()
    zones: dict[str, Any] = {keys.VALIDATED: None, keys.QUARANTINE: None}  # None: no partition now
    if split.status != "validated":
        zones[keys.QUARANTINE] = (
            {
                keys.DATA_FILE: frame_to_parquet(split.quarantined),
                "validation_result.json": result_json,
                keys.REPORT_HTML: report_html.encode(),
            },
            {
                "rows": len(split.quarantined),
                "run_id": run_id,
                "rows_in": rows_in,
                "scope": "partition" if split.status == "quarantined" else "rows",
                "partition_failures": summary["partition_failures"],
            },
        )
    if split.validated is not None:
        zones[keys.VALIDATED] = (
            {keys.DATA_FILE: frame_to_parquet(split.validated)},
            {
                "rows": split.rows_validated,
                "run_id": run_id,
                "rows_in": rows_in,
                "rows_quarantined": len(split.quarantined),
            },
        )
    report_json = {
        **summary,
        "expectations": [outcome_row(o) for o in verdict.outcomes],
        "suite": suite.to_json_dict(),
    }
    report = {
        keys.REPORT_HTML: report_html.encode(),
        keys.SUMMARY_JSON: json.dumps(report_json, indent=2, sort_keys=True, default=str).encode(),
    }
    return ledger.commit(lake, summary, zones=zones, report=report, commit_id=commit_id, sink=ledger_sink)
