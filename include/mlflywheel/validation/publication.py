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
from mlflywheel.lake.base import FileContent
from mlflywheel.validation.report import outcome_row
from mlflywheel.validation.streaming import Streamed, result_document
from mlflywheel.validation.suite import suite_description
from mlflywheel.validation.verdict import ExpectationOutcome


def publish_streamed(
    lake: Lake,
    spec: DatasetSpec,
    day: dt.date,
    streamed: Streamed,
    summary: dict[str, Any],
    *,
    report_html: str,
    ledger_sink: ledger.LedgerSink | None = None,
    commit_id: str | None = None,
    suite: dict[str, Any] | None = None,
    result: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Commit the day's validated and quarantined partitions (their spool files), the report and
    the ledger summary together; returns the summary as recorded (with its ``commit``).

    ``suite`` and ``result`` (default: the streamed run's own) are Great Expectations' suite and
    result as JSON where GX judged the day (validation inside PostgreSQL)."""
    return _commit(
        lake, summary,
        validated=None if streamed.validated_path is None else (streamed.validated_path, streamed.rows_validated),
        quarantined=None if streamed.quarantined_path is None else (streamed.quarantined_path, streamed.rows_quarantined),
        scope="partition" if streamed.status == "quarantined" else "rows",
        result=result_document(streamed) if result is None else result, outcomes=streamed.outcomes,
        suite=suite_description(spec, day) if suite is None else suite,
        report_html=report_html, ledger_sink=ledger_sink, commit_id=commit_id,
    )  # fmt: skip


def _commit(
    lake: Lake,
    summary: dict[str, Any],
    *,
    validated: tuple[FileContent, int] | None,
    quarantined: tuple[FileContent, int] | None,
    scope: str,
    result: dict[str, Any],
    outcomes: list[ExpectationOutcome],
    suite: dict[str, Any],
    report_html: str,
    ledger_sink: ledger.LedgerSink | None,
    commit_id: str | None,
) -> dict[str, Any]:
    run_id, rows_in = summary["run_id"], summary["rows_in"]
    result_json = json.dumps(result, indent=2, sort_keys=True, default=str).encode()
    zones: dict[str, Any] = {keys.VALIDATED: None, keys.QUARANTINE: None}  # None: no partition now
    rows_quarantined = 0 if quarantined is None else quarantined[1]
    if quarantined is not None:
        zones[keys.QUARANTINE] = (
            {
                keys.DATA_FILE: quarantined[0],
                "validation_result.json": result_json,
                keys.REPORT_HTML: report_html.encode(),
            },
            {
                "rows": rows_quarantined,
                "run_id": run_id,
                "rows_in": rows_in,
                "scope": scope,
                "partition_failures": summary["partition_failures"],
            },
        )
    if validated is not None:
        zones[keys.VALIDATED] = (
            {keys.DATA_FILE: validated[0]},
            {"rows": validated[1], "run_id": run_id, "rows_in": rows_in, "rows_quarantined": rows_quarantined},
        )
    report_json = {**summary, "expectations": [outcome_row(o) for o in outcomes], "suite": suite}
    report = {
        keys.REPORT_HTML: report_html.encode(),
        keys.SUMMARY_JSON: json.dumps(report_json, indent=2, sort_keys=True, default=str).encode(),
    }
    return ledger.commit(lake, summary, zones=zones, report=report, commit_id=commit_id, sink=ledger_sink)
