"""The ingestion ledger keeps rows_in == rows_validated + rows_quarantined."""

from __future__ import annotations

import datetime as dt

import pytest
from mlflywheel.lake import LocalLake
from mlflywheel.lake.keys import ledger_summary_key as summary_key
from mlflywheel.ledger import LedgerError, list_summaries, read_summary, write_summary


def _summary(day: str, **changes) -> dict:
    base = {
        "dataset": "ds",
        "partition": day,
        "status": "partially_quarantined",
        "rows_in": 10,
        "rows_validated": 7,
        "rows_quarantined": 3,
        "run_id": "run-1",
    }
    return {**base, **changes}


def test_write_read_and_list(tmp_path):
    lake = LocalLake(tmp_path)
    write_summary(lake, _summary("2026-11-02"))
    write_summary(lake, _summary("2026-11-01", status="validated", rows_validated=10, rows_quarantined=0))
    assert lake.exists(summary_key("ds", dt.date(2026, 11, 2)))
    assert read_summary(lake, "ds", dt.date(2026, 11, 2))["rows_quarantined"] == 3
    assert read_summary(lake, "ds", dt.date(2026, 11, 9)) is None
    assert [s["partition"] for s in list_summaries(lake, "ds")] == ["2026-11-01", "2026-11-02"]


def test_rewrite_replaces(tmp_path):
    lake = LocalLake(tmp_path)
    write_summary(lake, _summary("2026-11-02"))
    write_summary(lake, _summary("2026-11-02", run_id="run-2"))
    assert [s["run_id"] for s in list_summaries(lake, "ds")] == ["run-2"]


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"rows_validated": 8}, "rows_in=10"),
        ({"rows_in": 0}, "rows_in=0"),
        ({"status": "done"}, "status"),
    ],
)
def test_broken_summaries_rejected(tmp_path, changes, message):
    lake = LocalLake(tmp_path)
    with pytest.raises(LedgerError, match=message):
        write_summary(lake, _summary("2026-11-02", **changes))
    assert list_summaries(lake, "ds") == []


def test_missing_fields_rejected(tmp_path):
    summary = _summary("2026-11-02")
    del summary["run_id"]
    with pytest.raises(LedgerError, match="run_id"):
        write_summary(LocalLake(tmp_path), summary)
