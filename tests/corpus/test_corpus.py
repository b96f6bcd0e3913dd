"""The bad-input corpus (``corpus_cases``) through ingest and validation, the package's own functions.

For every case: no crash; rows in = validated + quarantined (in the ledger too); rows in = the
records truly in the file; the expected outcome; and a specific reason (or, for a control, none).
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

from corpus_cases import DAY, QUARANTINED, VALIDATED, cases
from mlflywheel import ledger, validation
from mlflywheel.datasets.landing import land_bytes
from mlflywheel.ingest import ingest_partition, read_raw
from mlflywheel.lake import LocalLake

CASES = cases()


def test_the_corpus_is_broad():
    assert len(CASES) >= 50
    assert sum(c.reason is not None for c in CASES) >= 50


@pytest.fixture(scope="module", autouse=True)
def _warm_gx() -> None:
    validation.suite._batch_definition()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case(tmp_path, case):
    lake = LocalLake(tmp_path / "lake")
    land_bytes(lake, case.spec, DAY, case.data)
    ingested = ingest_partition(lake, case.spec, DAY, run_id="corpus")
    summary = validation.validate_partition(lake, case.spec, DAY, run_id="corpus")

    assert summary["rows_in"] == case.records, "rows in must be the records truly in the file"
    assert summary["rows_validated"] + summary["rows_quarantined"] == summary["rows_in"]
    assert ledger.read_summary(lake, case.spec.name, DAY) == summary
    assert summary["status"] == case.status, summary

    texts = [*summary["reasons"], *summary.get("partition_failures", []), *ingested.get("notes", [])]
    manifest = lake.manifest("quarantine", case.spec.name, DAY)
    if manifest is not None and manifest.get("kind") != "unreadable_file":
        texts += lake.read_frame("quarantine", case.spec.name, DAY)["_quarantine_reasons"].tolist()
    if case.reason is None:
        assert summary["reasons"] == {} and summary["status"] == VALIDATED
    else:
        assert any(case.reason in text for text in texts), texts
    if case.status == QUARANTINED:
        assert lake.manifest("validated", case.spec.name, DAY) is None
    else:
        validated = lake.read_frame("validated", case.spec.name, DAY)
        assert len(validated) == summary["rows_validated"]
    if case.check is not None:
        case.check(read_raw(lake, case.spec, DAY))
