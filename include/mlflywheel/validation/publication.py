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
from typing import Any

from mlflywheel import ledger
from mlflywheel.datasets.spec import DatasetSpec
from mlflywheel.lake import Lake, keys
from mlflywheel.validation.report import outcome_row
from mlflywheel.validation.streaming import Streamed, result_document
from mlflywheel.validation.suite import suite_description


def publish(
    lake: Lake,
    spec: DatasetSpec,
    day: dt.date,
    streamed: Streamed,
    summary: dict[str, Any],
    *,
    report_html: str,
    ledger_sink: ledger.LedgerSink | None = None,
    commit_id: str | None = None,
) -> dict[str, Any]:
    """Commit the day's validated and quarantined partitions (their spool files), the report and
    the ledger summary together; returns the summary as recorded (with its ``commit``)."""
    run_id, rows_in = summary["run_id"], summary["rows_in"]
    result_json = json.dumps(result_document(streamed), indent=2, sort_keys=True, default=str).encode()
    zones: dict[str, Any] = {keys.VALIDATED: None, keys.QUARANTINE: None}  # None: no partition now
    if streamed.quarantined_path is not None:
        zones[keys.QUARANTINE] = (
            {
                keys.DATA_FILE: streamed.quarantined_path,
                "validation_result.json": result_json,
                keys.REPORT_HTML: report_html.encode(),
            },
            {
                "rows": streamed.rows_quarantined,
                "run_id": run_id,
                "rows_in": rows_in,
                "scope": "partition" if streamed.status == "quarantined" else "rows",
                "partition_failures": summary["partition_failures"],
            },
        )
    if streamed.validated_path is not None:
        zones[keys.VALIDATED] = (
            {keys.DATA_FILE: streamed.validated_path},
            {
                "rows": streamed.rows_validated,
                "run_id": run_id,
                "rows_in": rows_in,
                "rows_quarantined": streamed.rows_quarantined,
            },
        )
    report_json = {
        **summary,
        "expectations": [outcome_row(o) for o in streamed.outcomes],
        "suite": suite_description(spec, day),
    }
    report = {
        keys.REPORT_HTML: report_html.encode(),
        keys.SUMMARY_JSON: json.dumps(report_json, indent=2, sort_keys=True, default=str).encode(),
    }
    return ledger.commit(lake, summary, zones=zones, report=report, commit_id=commit_id, sink=ledger_sink)
