"""The single pass (landing straight to validated and quarantine) gives exactly the two stages' results.

Every case lands the same bytes in two lakes: one goes through ``ingest_partition`` then
``validate_partition`` (the two stages), the other through ``validate_landed`` with chunks of 1, 7
and the default rows. Everything a reader sees must be equal: the ledger summary, the validated
and quarantined zones (rows, dtypes, ``_row``, ``_coercion_errors``, ``_quarantine_reasons``),
their manifests, the report's expectation rows and failing-row sample (run and commit ids,
timestamps aside). The single pass must leave nothing in ``raw/``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest
from corpus.corpus_cases import DAY as CORPUS_DAY
from corpus.corpus_cases import cases
from mlflywheel import validation
from mlflywheel.datasets.landing import frame_to_csv_bytes, land_bytes
from mlflywheel.datasets.spec import Expectation
from mlflywheel.datasets.upstreams.transactions import TRANSACTIONS, generate_day
from mlflywheel.ingest import IngestError, ingest_partition
from mlflywheel.ingest.exact import UNREADABLE_KIND
from mlflywheel.lake import LocalLake, frame_to_parquet
from mlflywheel.validation import single_pass, spool_fixup, uniqueness
from mlflywheel.validation.single_pass import validate_landed

DAY = dt.date(2026, 11, 3)
VOLATILE = ("validated_at", "report_key", "commit", "run_id", "published_at", "version")
CHUNKS = (1, 7, None)  # None: the default


def observe(lake: LocalLake, spec, day: dt.date, summary: dict) -> dict:
    """Everything a reader sees of the day, without what changes run to run."""
    seen: dict = {"summary": {k: v for k, v in summary.items() if k not in VOLATILE}}
    for zone in ("validated", "quarantine"):
        manifest = lake.manifest(zone, spec.name, day)
        if manifest is None:
            seen[zone] = None
            continue
        seen[zone] = {"manifest": {k: v for k, v in manifest.items() if k not in VOLATILE}}
        if manifest.get("kind") == UNREADABLE_KIND:  # the landed file kept whole
            seen[zone]["reasons"] = json.loads(lake.partition_file(zone, spec.name, day, "reasons.json"))
            continue
        frame = lake.read_frame(zone, spec.name, day)
        seen[zone]["dtypes"] = {c: str(t) for c, t in frame.dtypes.items()}
        seen[zone]["rows"] = frame.astype(object).where(frame.notna(), None).to_dict("records")
    report = summary["report_key"]
    if lake.exists(report.replace("report.html", "summary.json")):
        seen["expectations"] = lake.get_json(report.replace("report.html", "summary.json"))["expectations"]
    page = lake.get_bytes(report).decode()
    seen["sample"] = page[page.index("Failing rows") :] if "Failing rows" in page else None
    return seen


def no_hashing_thread_left() -> bool:
    """Whether the survey's hashing thread is over (ingest and the single pass join it before returning)."""
    import threading

    return not [t for t in threading.enumerate() if t.name == "flywheel-sha256"]


def two_stages(tmp_path, spec, day: dt.date, data: bytes, **kwargs) -> dict:
    lake = LocalLake(tmp_path / "two-stages")
    land_bytes(lake, spec, day, data)
    summary = ingest_partition(lake, spec, day, run_id="r")
    assert no_hashing_thread_left()
    if lake.manifest("raw", spec.name, day) is not None:
        summary = validation.validate_partition(lake, spec, day, run_id="r", **kwargs)
    return observe(lake, spec, day, summary)


def one_pass(tmp_path, spec, day: dt.date, data: bytes, *, chunk_rows: int | None = None, **kwargs) -> dict:
    lake = LocalLake(tmp_path / f"one-pass-{chunk_rows}")
    land_bytes(lake, spec, day, data)
    chunks = {} if chunk_rows is None else {"chunk_rows": chunk_rows}
    summary = validate_landed(lake, spec, day, run_id="r", **chunks, **kwargs)
    assert no_hashing_thread_left()
    assert lake.manifest("raw", spec.name, day) is None, "the single pass writes no raw partition"
    assert lake.list_keys(f"raw/{spec.name}/") == []
    return observe(lake, spec, day, summary)


def assert_same(tmp_path, spec, day: dt.date, data: bytes, *, chunks=CHUNKS, **kwargs) -> dict:
    reference = two_stages(tmp_path, spec, day, data, **kwargs)
    for rows in chunks:
        assert one_pass(tmp_path, spec, day, data, chunk_rows=rows, **kwargs) == reference, f"chunks of {rows}"
    return reference


def day_csv(rows: int, seed: int, change=None) -> bytes:
    frame = generate_day(DAY, rows, seed=seed)
    if change is not None:
        change(frame)
    return frame_to_csv_bytes(frame)


# --- the bad-input corpus, unreadable files included --------------------------------------------------

CORPUS = cases()


@pytest.mark.parametrize("case", CORPUS, ids=[c.name for c in CORPUS])
def test_corpus_case_same_as_two_stages(tmp_path, case):
    seen = assert_same(tmp_path, case.spec, CORPUS_DAY, case.data, chunks=(1, None))
    assert seen["summary"]["status"] == case.status
    assert seen["summary"]["rows_in"] == case.records


# --- generated days --------------------------------------------------------------------------------------


def _bad_rows(frame: pd.DataFrame) -> None:
    """One or a few rows of each kind of row fault, duplicated ids across chunks included."""
    frame["amount"] = frame["amount"].astype(object)
    frame.loc[2, "amount"] = "12,5"  # does not cast: a coercion error
    frame.loc[5, "amount"] = -3.0
    frame.loc[8, "customer_id"] = None
    frame.loc[11, "currency"] = "XXX"
    frame.loc[14, "is_fraud"] = 2
    frame.loc[17, "event_time"] = pd.Timestamp(DAY, tz="UTC") - pd.Timedelta(hours=1)
    frame.loc[39, "transaction_id"] = frame.loc[0, "transaction_id"]  # chunks 0 and 5 at 7 rows
    frame.loc[20, "transaction_id"] = frame.loc[21, "transaction_id"]  # one chunk at 7 rows, two at 1


@pytest.mark.parametrize(
    ("name", "change", "status"),
    [
        ("all_good", None, "validated"),
        ("bad_rows_of_each_kind", _bad_rows, "partially_quarantined"),
        ("ids_twice_across_chunks", lambda f: f.__setitem__("transaction_id", f["transaction_id"].where(
            f.index % 20 != 19, f["transaction_id"].shift(19))), "partially_quarantined"),
        ("over_the_failed_row_limit", lambda f: f.__setitem__("currency", "XXX"), "quarantined"),
        ("extra_column", lambda f: f.__setitem__("promo", "p"), "quarantined"),
        ("missing_column", lambda f: f.drop(columns=["channel"], inplace=True), "quarantined"),
    ],
)  # fmt: skip
def test_generated_day_same_as_two_stages(tmp_path, name, change, status):
    seen = assert_same(tmp_path, TRANSACTIONS, DAY, day_csv(80, seed=7, change=change))
    assert seen["summary"]["status"] == status
    if name == "ids_twice_across_chunks":
        assert seen["summary"]["reasons"] == {"duplicate transaction_id": 8}
    if name == "bad_rows_of_each_kind":
        assert seen["summary"]["reasons"]["duplicate transaction_id"] == 4


@pytest.mark.parametrize("fraction", [0.0, 0.05, 1.0])
def test_the_failed_row_limit_same_as_two_stages(tmp_path, fraction):
    seen = assert_same(tmp_path, TRANSACTIONS, DAY, day_csv(80, seed=8, change=_bad_rows),
                       max_failed_row_fraction=fraction)  # fmt: skip
    assert seen["summary"]["status"] == ("partially_quarantined" if fraction == 1.0 else "quarantined")


def test_mostly_and_gx_only_expectations_same_as_two_stages(tmp_path):
    extras = (
        Expectation.rows(
            "expect_column_values_to_match_regex", "customer_id is not c-<n>", column="customer_id", regex=r"^c-\d+$"
        ),
        Expectation.rows("expect_column_values_to_be_between", "amount above 400", column="amount", max_value=400,
                         mostly=0.5),
    )  # fmt: skip
    spec = dataclasses.replace(TRANSACTIONS, extra_expectations=extras)
    seen = assert_same(tmp_path, spec, DAY, day_csv(30, seed=9, change=lambda f: f.__setitem__(
        "customer_id", f["customer_id"].where(f.index != 3, "cust 3"))))  # fmt: skip
    assert seen["summary"]["reasons"]["customer_id is not c-<n>"] >= 1
    assert "amount above 400" not in seen["summary"]["reasons"]


def test_a_hash_collision_same_as_two_stages(tmp_path, monkeypatch):
    monkeypatch.setattr(uniqueness, "hash_ids", lambda values: np.zeros(len(values), dtype=np.uint64))
    data = day_csv(20, seed=6)
    seen = assert_same(tmp_path, TRANSACTIONS, DAY, data, chunks=(7,))
    assert seen["summary"]["status"] == "validated"  # every hash repeats, no id does


def test_a_landing_parquet_dataset_and_an_empty_day(tmp_path):
    spec = dataclasses.replace(TRANSACTIONS, landing_format="parquet")
    assert_same(tmp_path / "rows", spec, DAY, frame_to_parquet(generate_day(DAY, 25, seed=2)))
    assert_same(tmp_path / "empty", TRANSACTIONS, DAY, day_csv(3, 1)[: day_csv(3, 1).index(b"\n") + 1])


def test_streaming_declined_midway_falls_back_as_ingest_does(tmp_path, monkeypatch):
    lines = day_csv(30, seed=4).decode().splitlines()
    lines[25] += ",surplus"  # a ragged record late in the file: the streaming reader has already split rows
    data = ("\n".join(lines) + "\n").encode()
    monkeypatch.setattr("mlflywheel.ingest.stream.BLOCK_BYTES", 512)  # several blocks
    assert_same(tmp_path / "exact", TRANSACTIONS, DAY, data, chunks=(1, None))  # the exact reader's verdict
    monkeypatch.setattr("mlflywheel.ingest.EXACT_READER_MAX_BYTES", 0)  # too large to hold: quarantined whole
    seen = assert_same(tmp_path / "large", TRANSACTIONS, DAY, data, chunks=(7,))
    assert seen["quarantine"]["manifest"]["kind"] == UNREADABLE_KIND


# --- the zones around it ----------------------------------------------------------------------------------


def test_a_stale_raw_partition_is_cleared_and_a_rerun_replaces_the_day(tmp_path):
    lake = LocalLake(tmp_path / "lake")
    land_bytes(lake, TRANSACTIONS, DAY, day_csv(12, seed=1))
    ingest_partition(lake, TRANSACTIONS, DAY, run_id="earlier")  # a two-stage run left raw behind
    assert lake.manifest("raw", TRANSACTIONS.name, DAY) is not None
    land_bytes(lake, TRANSACTIONS, DAY, day_csv(9, seed=2, change=_bad_rows_small))
    first = validate_landed(lake, TRANSACTIONS, DAY, run_id="r1")
    assert lake.manifest("raw", TRANSACTIONS.name, DAY) is None
    assert (first["rows_in"], first["rows_quarantined"]) == (9, 1)
    again = validate_landed(lake, TRANSACTIONS, DAY, run_id="r2")
    assert {k: v for k, v in again.items() if k not in VOLATILE} == {
        k: v for k, v in first.items() if k not in VOLATILE
    }
    assert len(lake.read_frame("validated", TRANSACTIONS.name, DAY)) == 8
    with pytest.raises(validation.ValidationError):
        validation.validate_partition(lake, TRANSACTIONS, DAY, run_id="r3")  # nothing in raw to republish


def _bad_rows_small(frame: pd.DataFrame) -> None:
    frame.loc[4, "currency"] = "XXX"


def test_not_landed_and_bad_arguments_are_refused(tmp_path):
    lake = LocalLake(tmp_path / "lake")
    with pytest.raises(IngestError, match="not landed"):
        validate_landed(lake, TRANSACTIONS, DAY, run_id="r")
    land_bytes(lake, TRANSACTIONS, DAY, day_csv(3, 1))
    for kwargs in ({"chunk_rows": 0}, {"max_failed_row_fraction": 1.5}, {"engine": "pandas"}):
        with pytest.raises(ValueError):
            validate_landed(lake, TRANSACTIONS, DAY, run_id="r", **kwargs)


def test_an_all_good_day_is_read_once(tmp_path, monkeypatch):
    """The promise of the mode: a clean day's landed file is parsed once, not once per stage."""
    reads = []
    original = single_pass._Landed.chunks

    def counted(self, columns=None):
        reads.append(columns)
        return original(self, columns)

    monkeypatch.setattr(single_pass._Landed, "chunks", counted)
    lake = LocalLake(tmp_path / "lake")
    land_bytes(lake, TRANSACTIONS, DAY, day_csv(80, seed=3))
    assert validate_landed(lake, TRANSACTIONS, DAY, run_id="r", chunk_rows=7)["status"] == "validated"
    assert reads == [None]
    reads.clear()
    land_bytes(lake, TRANSACTIONS, DAY, day_csv(80, seed=3, change=_bad_rows))  # ids twice: fixed up from the spool
    assert validate_landed(lake, TRANSACTIONS, DAY, run_id="r", chunk_rows=7)["status"] == "partially_quarantined"
    assert reads == [None]


# --- duplicated ids: the split fixed up from the spool files -----------------------------------------------

FIXED_UP, SPLIT_AGAIN = "fixed up the split from the spool files", "splitting the landed file again"


def paths_taken(caplog) -> list[str]:
    """Which way each single pass took with duplicated ids, from its log lines."""
    out = []
    for record in caplog.records:
        message = record.getMessage()
        out += [path for path in (FIXED_UP, SPLIT_AGAIN) if path in message]
    return out


def _ids_twice_in_validated_rows(frame: pd.DataFrame) -> None:
    frame.loc[30, "transaction_id"] = frame.loc[3, "transaction_id"]  # chunks 0 and 4 at 7 rows
    frame.loc[50, "transaction_id"] = frame.loc[51, "transaction_id"]
    frame.loc[60, "transaction_id"] = frame.loc[60 + 1, "transaction_id"]
    frame.loc[62, "transaction_id"] = frame.loc[61, "transaction_id"]  # one id three times


def _ids_twice_in_quarantined_rows(frame: pd.DataFrame) -> None:
    frame["amount"] = frame["amount"].astype(object)
    frame.loc[5, "amount"] = -3.0
    frame.loc[11, "currency"] = "XXX"
    frame.loc[11, "transaction_id"] = frame.loc[5, "transaction_id"]
    # a reason text holding the separator: amount='1; 2' does not cast (its reason comes after the unique one's)
    frame.loc[40, "amount"] = "1; 2"
    frame.loc[44, "amount"] = "3; 4"
    frame.loc[44, "customer_id"] = None
    frame.loc[44, "transaction_id"] = frame.loc[40, "transaction_id"]


def _ids_twice_in_both(frame: pd.DataFrame) -> None:
    _ids_twice_in_quarantined_rows(frame)
    _ids_twice_in_validated_rows(frame)
    frame.loc[17, "event_time"] = pd.Timestamp(DAY, tz="UTC") - pd.Timedelta(hours=1)
    frame.loc[77, "transaction_id"] = frame.loc[17, "transaction_id"]  # a bad row and a good one
    frame.loc[0, "transaction_id"] = frame.loc[79, "transaction_id"]  # the first and the last row
    frame.loc[29, "currency"] = "XXX"  # a quarantined row just before a validated one that moves (row 30)


@pytest.mark.parametrize(
    ("name", "change", "reasons"),
    [
        ("in_validated_rows_only", _ids_twice_in_validated_rows, {"duplicate transaction_id": 7}),
        ("in_quarantined_rows_only", _ids_twice_in_quarantined_rows, {"duplicate transaction_id": 4}),
        ("in_both", _ids_twice_in_both, {"duplicate transaction_id": 15}),
    ],
)
@pytest.mark.parametrize("spool_batch", [3, None])  # 3: the spool files read and merged a few rows at a time
def test_duplicated_ids_fixed_up_same_as_two_stages(tmp_path, caplog, monkeypatch, name, change, reasons, spool_batch):
    if spool_batch is not None:
        monkeypatch.setattr(spool_fixup, "SPOOL_BATCH_ROWS", spool_batch)
    caplog.set_level("INFO", logger="mlflywheel.validation")
    chunks = (1, 2, 7, None)  # pairs within one chunk and across chunks
    seen = assert_same(tmp_path, TRANSACTIONS, DAY, day_csv(80, seed=7, change=change), chunks=chunks)
    assert paths_taken(caplog) == [FIXED_UP] * len(chunks)
    assert seen["summary"]["status"] == "partially_quarantined"
    for reason, rows in reasons.items():
        assert seen["summary"]["reasons"][reason] == rows
    quarantined = {row["_row"]: row["_quarantine_reasons"] for row in seen["quarantine"]["rows"]}
    if name != "in_validated_rows_only":
        assert quarantined[11] == "currency not in its vocabulary; duplicate transaction_id"
        # the unique check's reason in suite order, before a coercion reason that holds the separator
        assert quarantined[40] == (
            "amount is missing or not a valid float; duplicate transaction_id; "
            "value could not be read as its type: amount='1; 2' is not a valid float"
        )


def test_duplicated_ids_over_the_failed_row_limit_same_as_two_stages(tmp_path, caplog, monkeypatch):
    """The ids push the failed rows over the limit: the day is quarantined whole, by one more read."""
    reads = []
    original = single_pass._Landed.chunks

    def counted(self, columns=None):
        reads.append(columns)
        return original(self, columns)

    caplog.set_level("INFO", logger="mlflywheel.validation")
    data = day_csv(80, seed=7, change=_ids_twice_in_both)  # 16 of 80 rows fail, 10 of them only on the ids
    seen = assert_same(tmp_path / "under", TRANSACTIONS, DAY, data, chunks=(7,), max_failed_row_fraction=0.25)
    assert seen["summary"]["status"] == "partially_quarantined"
    monkeypatch.setattr(single_pass._Landed, "chunks", counted)
    seen = assert_same(tmp_path / "over", TRANSACTIONS, DAY, data, chunks=(7,), max_failed_row_fraction=0.15)
    assert seen["summary"]["status"] == "quarantined"
    assert seen["validated"] is None
    assert reads == [None, None]  # the split, then the whole quarantine (no split again in between)
    assert paths_taken(caplog) == [FIXED_UP, FIXED_UP]


def test_duplicated_ids_with_mostly_split_again_same_as_two_stages(tmp_path, caplog):
    extras = (Expectation.rows("expect_column_values_to_be_between", "amount above 400", column="amount",
                               max_value=400, mostly=0.5),)  # fmt: skip
    spec = dataclasses.replace(TRANSACTIONS, extra_expectations=extras)
    caplog.set_level("INFO", logger="mlflywheel.validation")
    seen = assert_same(tmp_path, spec, DAY, day_csv(80, seed=7, change=_ids_twice_in_validated_rows), chunks=(7,))
    assert seen["summary"]["reasons"]["duplicate transaction_id"] == 7
    assert paths_taken(caplog) == [SPLIT_AGAIN]


def test_a_failure_of_the_digest_fails_the_pass_before_it_publishes(tmp_path, monkeypatch):
    """The digest's thread is not left to fail unseen: its error ends the pass, nothing published."""
    from mlflywheel.ingest import stream

    class Failing:
        def update(self, block):
            raise OSError("the disk went away while hashing")

    lake = LocalLake(tmp_path / "lake")
    land_bytes(lake, TRANSACTIONS, DAY, day_csv(20, seed=5))
    monkeypatch.setattr(stream.hashlib, "sha256", Failing)
    with pytest.raises(OSError, match="went away"):
        validate_landed(lake, TRANSACTIONS, DAY, run_id="r")
    assert no_hashing_thread_left()
    assert lake.manifest("validated", TRANSACTIONS.name, DAY) is None
    assert lake.manifest("quarantine", TRANSACTIONS.name, DAY) is None
