"""Ingest: landing -> raw normalisation, idempotence, and whole-file quarantine of unreadable files."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest
from mlflywheel import ingest as ingest_module
from mlflywheel import ledger
from mlflywheel.datasets import get_spec
from mlflywheel.datasets.landing import frame_to_csv_bytes, land_bytes, land_frame, landing_key
from mlflywheel.datasets.upstreams.csv_replay import LOANS_CSV, replay_csv
from mlflywheel.datasets.upstreams.faults import EXTRA_COLUMN, apply_fault
from mlflywheel.datasets.upstreams.transactions import generate_day
from mlflywheel.ingest import COERCION_ERRORS_COLUMN, ROW_COLUMN, IngestError, ingest_partition, read_raw
from mlflywheel.lake import LocalLake, frame_to_parquet
from mlflywheel.lake.keys import ROW_ID_COLUMN

DAY = dt.date(2026, 11, 5)
SPEC = get_spec("transactions")


@pytest.fixture()
def lake(tmp_path) -> LocalLake:
    return LocalLake(tmp_path)


def _versions(lake: LocalLake, zone: str) -> set[str]:
    return {k.split("/")[3] for k in lake.list_keys(f"{zone}/{SPEC.name}/dt={DAY}/") if "/v=" in k}


def test_not_landed_raises(lake):
    with pytest.raises(IngestError, match="not landed"):
        ingest_partition(lake, SPEC, DAY, run_id="r")
    lake.put_bytes(landing_key(SPEC, DAY), b"a,b\n1,2\n")  # file without marker: still arriving
    with pytest.raises(IngestError, match="not landed"):
        ingest_partition(lake, SPEC, DAY, run_id="r")
    assert lake.list_partitions("raw", SPEC.name) == []


def test_clean_partition_normalised(lake):
    clean = generate_day(DAY, 300, seed=2)
    land_frame(lake, SPEC, DAY, clean)
    result = ingest_partition(lake, SPEC, DAY, run_id="run-1")
    assert result["status"] == "raw" and result["rows_in"] == 300 and result["coercion_errors"] == 0
    assert result["dataset"] == "transactions" and result["partition"] == DAY.isoformat()

    raw = read_raw(lake, SPEC, DAY)
    assert list(raw.columns) == [*SPEC.column_names, ROW_COLUMN, COERCION_ERRORS_COLUMN]
    expected_dtypes = {
        "string": "object",
        "int": "Int64",
        "float": "float64",
        "datetime": "datetime64[ns, UTC]",
    }
    for column in SPEC.columns:
        assert str(raw[column.name].dtype) == expected_dtypes[column.dtype], column.name
    assert raw[ROW_COLUMN].tolist() == list(range(300)) and raw[ROW_COLUMN].dtype == np.int64
    assert raw[COERCION_ERRORS_COLUMN].isna().all()
    # Values survive the CSV round trip.
    pd.testing.assert_frame_equal(
        raw[SPEC.column_names].astype({c.name: "int64" for c in SPEC.columns if c.dtype == "int"}), clean
    )
    manifest = lake.manifest("raw", SPEC.name, DAY)
    assert manifest["rows_in"] == 300 and manifest["run_id"] == "run-1"
    assert manifest["source_key"] == landing_key(SPEC, DAY) and len(manifest["source_sha256"]) == 64


def test_coercion_errors_extra_and_missing_columns(lake):
    csv = (
        "transaction_id,event_time,amount,account_age_days,is_fraud,channel,promo\n"
        "t1,2026-11-05T10:00:00Z,12.5,100,0,pos,x\n"
        "t2,yesterday,abc,12.5,1,online,\n"
        "t3,2026-11-05 11:00:00,,7,,atm,y\n"
        "t4,2026-11-05T12:00:00+02:00,1e3,inf,0,,z\n"
    )
    land_bytes(lake, SPEC, DAY, csv.encode())
    result = ingest_partition(lake, SPEC, DAY, run_id="r")
    assert result["coercion_errors"] == 2
    assert result["extra_columns"] == ["promo"]
    assert "customer_id" in result["missing_columns"]
    raw = read_raw(lake, SPEC, DAY)
    assert "customer_id" not in raw  # schema columns absent from the file stay absent
    assert raw["promo"].tolist() == ["x", None, "y", "z"]  # unknown columns kept as text
    assert raw["amount"].tolist()[0] == 12.5 and np.isnan(raw["amount"][1]) and raw["amount"][3] == 1000.0
    assert raw["account_age_days"].isna().tolist() == [False, True, False, True]
    assert raw["event_time"].tolist()[3] == pd.Timestamp("2026-11-05T10:00:00Z")
    assert pd.isna(raw["event_time"][1])
    errors = [json.loads(e) if e else None for e in raw[COERCION_ERRORS_COLUMN]]
    # Empty cells are plain nulls, not coercion errors.
    assert errors == [
        None,
        {"event_time": "yesterday", "amount": "abc", "account_age_days": "12.5"},
        None,
        {"account_age_days": "inf"},
    ]


def test_rerun_is_idempotent(lake):
    land_frame(lake, SPEC, DAY, apply_fault(generate_day(DAY, 200, seed=3), "wrong_types", seed=1))
    first = ingest_partition(lake, SPEC, DAY, run_id="run-1")
    first_raw = read_raw(lake, SPEC, DAY)
    second = ingest_partition(lake, SPEC, DAY, run_id="run-2")
    pd.testing.assert_frame_equal(read_raw(lake, SPEC, DAY), first_raw)
    ingest_partition(lake, SPEC, DAY, run_id="run-3")
    assert len(_versions(lake, "raw")) == 2  # the current version and the one before, no more
    assert first["coercion_errors"] == second["coercion_errors"] == 10
    assert lake.list_partitions("raw", SPEC.name) == [DAY]


def test_faulty_frames_reach_raw_for_validation_to_judge(lake):
    clean = generate_day(DAY, 100, seed=4)
    land_frame(lake, SPEC, DAY, apply_fault(clean, "extra_column", seed=1))
    ingest_partition(lake, SPEC, DAY, run_id="r")
    assert EXTRA_COLUMN in read_raw(lake, SPEC, DAY)

    land_frame(lake, SPEC, DAY, apply_fault(clean, "empty", seed=1))
    result = ingest_partition(lake, SPEC, DAY, run_id="r")
    raw = read_raw(lake, SPEC, DAY)
    assert result["rows_in"] == 0 and len(raw) == 0
    assert set(SPEC.column_names) <= set(raw.columns)

    land_frame(lake, SPEC, DAY, apply_fault(clean, "nulls", seed=1))
    ingest_partition(lake, SPEC, DAY, run_id="r")
    raw = read_raw(lake, SPEC, DAY)
    assert raw[SPEC.column_names].isna().sum().sum() > clean.isna().sum().sum()
    assert raw[COERCION_ERRORS_COLUMN].isna().all()


def test_corrupt_file_quarantined_whole(lake):
    # An earlier good run left raw and validated partitions for the day.
    land_frame(lake, SPEC, DAY, generate_day(DAY, 50, seed=5))
    ingest_partition(lake, SPEC, DAY, run_id="run-1")
    lake.publish_partition(
        "validated", SPEC.name, DAY, {"data.parquet": frame_to_parquet(pd.DataFrame({"a": [1]}))}
    )

    corrupt = apply_fault(generate_day(DAY, 400, seed=5), "corrupt_file", seed=1)
    land_bytes(lake, SPEC, DAY, corrupt)
    result = ingest_partition(lake, SPEC, DAY, run_id="run-2")

    assert result["status"] == "quarantined"
    assert lake.list_partitions("raw", SPEC.name) == []
    assert lake.list_partitions("validated", SPEC.name) == []
    assert lake.partition_file("quarantine", SPEC.name, DAY, "landing.csv") == corrupt
    reasons = json.loads(lake.partition_file("quarantine", SPEC.name, DAY, "reasons.json"))
    [reason] = reasons
    assert reason.startswith("unreadable file: ")

    summary = ledger.read_summary(lake, SPEC.name, DAY)
    assert summary["status"] == "quarantined" and summary["run_id"] == "run-2"
    assert summary["rows_validated"] == 0
    assert summary["rows_in"] == summary["rows_quarantined"] == reasons[reason]
    assert 0 < summary["rows_in"] <= 400  # best effort from what can still be decompressed
    assert result == summary

    # Re-running gives the same outcome (the previous commit's version is kept one commit more).
    assert ingest_partition(lake, SPEC, DAY, run_id="run-3")["status"] == "quarantined"
    assert len(_versions(lake, "quarantine")) == 2
    assert ingest_partition(lake, SPEC, DAY, run_id="run-3b")["status"] == "quarantined"
    assert len(_versions(lake, "quarantine")) == 2
    # A fixed re-delivery: raw is ingested; the quarantine and its ledger summary stay together
    # (one commit) until validation commits the new delivery's result over them.
    land_frame(lake, SPEC, DAY, generate_day(DAY, 40, seed=5))
    assert ingest_partition(lake, SPEC, DAY, run_id="run-4")["rows_in"] == 40
    assert lake.list_partitions("quarantine", SPEC.name) == [DAY]
    assert ledger.read_summary(lake, SPEC.name, DAY)["run_id"] == "run-3b"
    from mlflywheel import validation

    assert validation.validate_partition(lake, SPEC, DAY, run_id="run-4")["status"] == "validated"
    assert lake.list_partitions("quarantine", SPEC.name) == []


@pytest.mark.parametrize("data, rows", [(b"", 0), (b"a,b\n1,2\n3,4,5\n", 2), (b"\x00\x00junk", 0)])
def test_other_unreadable_files(lake, data, rows):
    land_bytes(lake, SPEC, DAY, data)
    result = ingest_partition(lake, SPEC, DAY, run_id="r")
    assert result["status"] == "quarantined" and result["rows_in"] == rows
    assert ledger.read_summary(lake, SPEC.name, DAY)["rows_quarantined"] == rows


def test_second_dataset_ingests(lake):
    loans = get_spec("loans")
    count = replay_csv(lake, loans, LOANS_CSV, first_day=DAY, last_day=DAY).rows_per_day[DAY]
    result = ingest_partition(lake, loans, DAY, run_id="r")
    raw = read_raw(lake, loans, DAY)
    assert result["rows_in"] == count == len(raw) == 250
    assert str(raw["credit_score"].dtype) == "Int64" and str(raw["applied_at"].dtype) == "datetime64[ns, UTC]"
    assert raw[COERCION_ERRORS_COLUMN].isna().all()


def test_parquet_landing_normalised_the_same_way(lake):
    parquet_spec = dataclasses.replace(SPEC, landing_format="parquet")
    clean = generate_day(DAY, 60, seed=6)
    land_frame(lake, parquet_spec, DAY, clean)
    assert landing_key(parquet_spec, DAY).endswith("data.parquet")
    ingest_partition(lake, parquet_spec, DAY, run_id="r")
    raw = read_raw(lake, parquet_spec, DAY)
    pd.testing.assert_frame_equal(
        raw[SPEC.column_names].astype({c.name: "int64" for c in SPEC.columns if c.dtype == "int"}), clean
    )
    land_bytes(lake, parquet_spec, DAY, b"PAR1 not really")
    assert ingest_partition(lake, parquet_spec, DAY, run_id="r")["status"] == "quarantined"
    assert lake.manifest("quarantine", SPEC.name, DAY)["files"] == ["landing.parquet", "reasons.json"]


def test_derived_row_id_only_without_an_id_column(lake):
    land_frame(lake, SPEC, DAY, generate_day(DAY, 30, seed=8))
    ingest_partition(lake, SPEC, DAY, run_id="r")
    assert ROW_ID_COLUMN not in read_raw(lake, SPEC, DAY).columns  # the declared id identifies rows

    no_id = dataclasses.replace(SPEC, name="no_id", id_column=None)
    land_frame(lake, no_id, DAY, generate_day(DAY, 30, seed=8))
    ingest_partition(lake, no_id, DAY, run_id="r")
    raw = read_raw(lake, no_id, DAY)
    assert raw[ROW_ID_COLUMN].tolist() == [f"{DAY.isoformat()}:{i}" for i in range(30)]
    assert raw[ROW_ID_COLUMN].tolist() == [f"{DAY.isoformat()}:{r}" for r in raw[ROW_COLUMN]]
    ingest_partition(lake, no_id, DAY, run_id="again")  # a re-run gives the same ids
    assert read_raw(lake, no_id, DAY)[ROW_ID_COLUMN].tolist() == raw[ROW_ID_COLUMN].tolist()


# --- hardening: bad input is read value by value, record by record ------------------------------


def _csv_lines(rows: int = 200, seed: int = 11) -> list[str]:
    return frame_to_csv_bytes(generate_day(DAY, rows, seed=seed)).decode().splitlines()


def _land_lines(lake, lines: list[str], encoding: str = "utf-8") -> None:
    land_bytes(lake, SPEC, DAY, ("\n".join(lines) + "\n").encode(encoding))


def test_int_overflow_is_a_coercion_error_not_a_crash(lake):
    lines = _csv_lines(4)
    header = lines[0].split(",")
    age = header.index("account_age_days")
    values = ["9223372036854775808", "1e20", "9223372036854775807", "-9223372036854775809"]
    for i, value in enumerate(values, start=1):
        cells = lines[i].split(",")
        cells[age] = value
        lines[i] = ",".join(cells)
    _land_lines(lake, lines)
    result = ingest_partition(lake, SPEC, DAY, run_id="r")
    assert result["status"] == "raw" and result["rows_in"] == 4 and result["coercion_errors"] == 3
    raw = read_raw(lake, SPEC, DAY)
    assert raw["account_age_days"][2] == 2**63 - 1  # the largest int64, read exactly
    errors = [json.loads(e) if e else None for e in raw[COERCION_ERRORS_COLUMN]]
    assert errors[0] == {"account_age_days": "9223372036854775808"} and errors[1] == {"account_age_days": "1e20"}
    assert errors[2] is None and errors[3] == {"account_age_days": "-9223372036854775809"}


def test_quote_spanning_rows_is_caught_not_merged(lake):
    lines = _csv_lines(200)
    header = lines[0].split(",")
    customer = header.index("customer_id")
    for row, text in ((11, '"c-open'), (81, 'c-close"')):
        cells = lines[row].split(",")
        cells[customer] = text
        lines[row] = ",".join(cells)
    _land_lines(lake, lines)
    result = ingest_partition(lake, SPEC, DAY, run_id="r")
    assert result["status"] == "quarantined"
    assert result["rows_in"] == result["rows_quarantined"] == 200  # the records truly in the file
    [reason] = result["reasons"]
    assert "quote" in reason and "line 12" in reason and "line 82" in reason, reason


def test_each_timestamp_is_read_with_its_own_offset(lake):
    csv = (
        "transaction_id,event_time\n"
        "t1,2026-11-05T10:00:00+05:30\n"
        "t2,2026-11-05T12:00:00\n"
        "t3,2026-11-05 13:00:00-02:00\n"
        "t4,2026-11-05T14:00:00Z\n"
        "t5,2026-11-05T15:00:00\n"
    )
    land_bytes(lake, SPEC, DAY, csv.encode())
    ingest_partition(lake, SPEC, DAY, run_id="r")
    times = read_raw(lake, SPEC, DAY)["event_time"].tolist()
    assert times == [
        pd.Timestamp(t, tz="UTC")
        for t in ("2026-11-05 04:30", "2026-11-05 12:00", "2026-11-05 15:00", "2026-11-05 14:00", "2026-11-05 15:00")
    ]


def test_na_words_keep_their_text_in_text_columns(lake):
    csv = "transaction_id,customer_id,amount\nNA,null,NA\nnull,None,\nNone,N/A,1.5\n"
    land_bytes(lake, SPEC, DAY, csv.encode())
    ingest_partition(lake, SPEC, DAY, run_id="r")
    raw = read_raw(lake, SPEC, DAY)
    assert raw["transaction_id"].tolist() == ["NA", "null", "None"]
    assert raw["customer_id"].tolist() == ["null", "None", "N/A"]
    assert raw["amount"].isna().tolist() == [True, True, False]  # a number column reads NA words as empty
    assert raw[COERCION_ERRORS_COLUMN].isna().all()


@pytest.mark.parametrize("encoding", ["utf-16", "utf-8-sig", "utf-16-be", "utf-32"])
def test_text_encodings_with_a_byte_order_mark_are_read(lake, encoding):
    lines = _csv_lines(200)
    data = ("\n".join(lines) + "\n").encode(encoding)
    if encoding == "utf-16-be":
        data = b"\xfe\xff" + data
    land_bytes(lake, SPEC, DAY, data)
    result = ingest_partition(lake, SPEC, DAY, run_id="r")
    assert result["status"] == "raw" and result["rows_in"] == 200 and result["coercion_errors"] == 0
    assert list(read_raw(lake, SPEC, DAY).columns[: len(SPEC.column_names)]) == SPEC.column_names


def test_latin1_is_read_by_fallback_with_a_note(lake):
    lines = _csv_lines(200)
    lines[5] = lines[5].replace("c-", "Zoë-", 1)
    _land_lines(lake, lines, encoding="latin-1")
    result = ingest_partition(lake, SPEC, DAY, run_id="r")
    assert result["status"] == "raw" and result["rows_in"] == 200
    assert any("not UTF-8" in note and "Windows-1252" in note for note in result["notes"]), result["notes"]
    assert "Zoë-" in read_raw(lake, SPEC, DAY)["customer_id"][4]
    assert lake.manifest("raw", SPEC.name, DAY)["notes"] == result["notes"]


def test_unreadable_files_count_the_records_they_hold(lake):
    lines = _csv_lines(200)
    text = "\n".join(lines) + "\n"
    with_nul = text.replace("\n", "\x00\n", 3).encode()
    land_bytes(lake, SPEC, DAY, with_nul)
    result = ingest_partition(lake, SPEC, DAY, run_id="r")
    assert result["status"] == "quarantined" and result["rows_in"] == 200
    assert "NUL" in next(iter(result["reasons"]))

    parquet = frame_to_parquet(generate_day(DAY, 200, seed=11))
    land_bytes(lake, SPEC, DAY, parquet)  # a Parquet file delivered as data.csv
    result = ingest_partition(lake, SPEC, DAY, run_id="r")
    assert result["status"] == "quarantined" and result["rows_in"] == 200
    assert "Parquet" in next(iter(result["reasons"]))


def test_excel_sep_line_is_not_a_record(lake):
    lines = _csv_lines(50)
    land_bytes(lake, SPEC, DAY, ("sep=;\n" + "\n".join(line.replace(",", ";") for line in lines) + "\n").encode())
    result = ingest_partition(lake, SPEC, DAY, run_id="r")
    assert result["status"] == "raw" and result["rows_in"] == 50 and result["coercion_errors"] == 0
    assert list(read_raw(lake, SPEC, DAY).columns[: len(SPEC.column_names)]) == SPEC.column_names


def test_unreadable_redelivery_replaces_the_validation_report(lake):
    """Issue 9, item 9: the report a reader reaches belongs to the same commit as the ledger."""
    from mlflywheel import validation

    land_frame(lake, SPEC, DAY, generate_day(DAY, 300, seed=5))
    ingest_partition(lake, SPEC, DAY, run_id="run-1")
    validated = validation.validate_partition(lake, SPEC, DAY, run_id="run-1")
    assert validated["rows_validated"] > 0
    land_bytes(lake, SPEC, DAY, b"PAR1" + bytes(range(256)) * 4)  # a Parquet file, not the CSV expected
    ingest_partition(lake, SPEC, DAY, run_id="run-2")
    summary = ledger.read_summary(lake, SPEC.name, DAY)
    assert summary["status"] == "quarantined" and summary["run_id"] == "run-2"
    page = lake.get_bytes(summary["report_key"]).decode()
    assert "run-2" in page and "unreadable file" in page and "run-1" not in page
    assert lake.list_partitions("validated", SPEC.name) == []


# --- bounded memory: streamed reading, chunked casting and writing --------------------------------


def _with_bad_cells(rows: int, seed: int) -> bytes:
    """A generated file with bad cells of every typed column, NA words and odd but valid forms."""
    lines = _csv_lines(rows, seed=seed)
    header = lines[0].split(",")
    bad = {"event_time": ["yesterday", "2026-02-30T10:00:00", "2300-01-01", "2026-11-05T10:00:00+05:30", "NA"],
           "amount": ["abc", "1e400", "inf", "+12.5", " 7 ", "NULL", "1e3"],
           "account_age_days": ["12.5", "9223372036854775808", "12.0", "1e3", "N/A"],
           "is_fraud": ["yes", "1.0", ""]}  # fmt: skip
    rng = np.random.default_rng(seed)
    for i in range(1, len(lines)):
        cells = lines[i].split(",")
        for column, values in bad.items():
            if rng.random() < 0.05:
                cells[header.index(column)] = values[rng.integers(len(values))]
        lines[i] = ",".join(cells)
    return ("\n".join(lines) + "\n").encode()


def _ingest(tmp_path, name: str, spec, data: bytes, **kwargs) -> tuple[dict, pd.DataFrame | None]:
    lake = LocalLake(tmp_path / name)
    land_bytes(lake, spec, DAY, data)
    result = ingest_partition(lake, spec, DAY, run_id="r", **kwargs)
    raw = read_raw(lake, spec, DAY) if result["status"] == "raw" else None
    volatile = ("commit", "report_key", "validated_at")  # a quarantine's commit: new ids and times
    return {k: v for k, v in result.items() if k not in volatile}, raw


def _corpus_cases():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent / "corpus"))
    from corpus_cases import cases

    return cases()


def test_chunk_boundaries_do_not_change_the_result(tmp_path):
    no_id = dataclasses.replace(SPEC, name="no_id", id_column=None)
    inputs = [("bad_cells", SPEC, _with_bad_cells(300, seed=12)), ("no_id", no_id, _with_bad_cells(40, seed=13))]
    inputs += [(case.name, case.spec, case.data) for case in _corpus_cases()]
    for name, spec, data in inputs:
        results = [_ingest(tmp_path, f"{name}-{rows}", spec, data, chunk_rows=rows) for rows in (1, 7, 250_000)]
        (first, first_raw), *others = results
        for result, raw in others:
            assert result == first, name
            if first_raw is None:
                assert raw is None, name
            else:
                pd.testing.assert_frame_equal(raw, first_raw, obj=name)
    result, raw = _ingest(tmp_path, "check", SPEC, _with_bad_cells(300, seed=12), chunk_rows=7)
    assert 0 < result["coercion_errors"] < 300 and raw[ROW_COLUMN].tolist() == list(range(300))


def test_raw_file_has_one_row_group_per_chunk(lake):
    import pyarrow.parquet as pq

    land_frame(lake, SPEC, DAY, generate_day(DAY, 100, seed=14))
    ingest_partition(lake, SPEC, DAY, run_id="r", chunk_rows=30)
    with lake.partition_local_file("raw", SPEC.name, DAY, "data.parquet") as path:
        metadata = pq.ParquetFile(path).metadata
    assert metadata.num_rows == 100
    assert [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)] == [30, 30, 30, 10]


def test_a_chunk_of_several_read_blocks_casts_as_one_block():
    """The streaming reader hands over chunks made of several pyarrow blocks (chunked columns, no
    copy): the cast is the same as of one contiguous batch, odd cells across the block edges."""
    import pyarrow as pa
    from mlflywheel.ingest import raw, stream

    cells = {
        "transaction_id": ["t1", "t2", None, "t4", "t5", "t6", "t7"],
        "event_time": ["2026-11-05T01:00:00Z", "2026-11-05 02:00", "NA", "2026-11-05T03:00:00+02:00", "soon",
                       "2026-02-30T00:00:00Z", "2026-11-05T04:00:00"],
        "amount": ["1.5", "1e3", "12.5.3", None, "-0", "inf", "NaN"],
        "account_age_days": ["3", "12.0", "1e20", "abc", "-4", "N/A", "9223372036854775808"],
    }  # fmt: skip
    whole = pa.RecordBatch.from_pydict(cells)
    blocks = [whole.slice(0, 2), whole.slice(2, 1), whole.slice(3, 4)]
    schema = raw.raw_schema(list(cells), SPEC, row_ids=False)
    tables = list(stream.rechunk(iter(blocks), 5))
    assert [t.num_rows for t in tables] == [5, 2] and tables[0].column(0).num_chunks > 1
    copied = list(stream.rebatch(iter(blocks), 5))
    assert [b.num_rows for b in copied] == [5, 2] and all(isinstance(b, pa.RecordBatch) for b in copied)
    assert pa.Table.from_batches(copied).equals(pa.concat_tables(tables))
    expected, expected_errors = raw.cast_batch(whole, SPEC, first_row=0, day=DAY, schema=schema)
    cast = [raw.cast_batch(t, SPEC, first_row=start, day=DAY, schema=schema) for t, start in zip(tables, (0, 5))]
    assert sum(errors for _, errors in cast) == expected_errors > 0
    assert pa.concat_tables([c for c, _ in cast]).equals(pa.Table.from_batches([expected]))


def test_the_zones_files_are_written_with_the_lakes_writer_options(lake, monkeypatch):
    """Raw, validated and quarantined files use PARQUET_WRITER_OPTIONS (the benchmark's pyarrow
    floor uses them too: the comparison stays fair)."""
    import pyarrow.parquet as pq
    from mlflywheel import validation
    from mlflywheel.lake import PARQUET_WRITER_OPTIONS

    written = []

    class Spy(pq.ParquetWriter):
        def __init__(self, where, schema, **options):
            written.append((str(where).rsplit("/", 1)[-1], options))
            super().__init__(where, schema, **options)

    monkeypatch.setattr(pq, "ParquetWriter", Spy)
    frame = generate_day(DAY, 50, seed=15)
    frame.loc[3, "currency"] = "XXX"
    land_frame(lake, SPEC, DAY, frame)
    ingest_partition(lake, SPEC, DAY, run_id="r")
    validation.validate_partition(lake, SPEC, DAY, run_id="r")
    assert sorted(name for name, _ in written) == ["data.parquet", "meta.parquet", "quarantined.parquet", "validated.parquet"]
    assert all(options == PARQUET_WRITER_OPTIONS for _, options in written)
    assert PARQUET_WRITER_OPTIONS["dictionary_pagesize_limit"] < 2**20  # below pyarrow's default


def test_vectorised_normalisation_matches_the_rules_value_by_value(lake):
    """Each raw cell is what read_cell makes of the landed text; each error what did not cast."""
    from mlflywheel.datasets.cells import is_na_word, read_cell
    from mlflywheel.ingest import read_landing_table

    data = _with_bad_cells(300, seed=15)
    land_bytes(lake, SPEC, DAY, data)
    ingest_partition(lake, SPEC, DAY, run_id="r", chunk_rows=64)
    raw = read_raw(lake, SPEC, DAY)
    text = read_landing_table(data)
    for column in SPEC.columns:
        for row, cell in enumerate(text[column.name]):
            expected = read_cell(cell, column.dtype)
            got = raw[column.name][row]
            assert (pd.isna(got) and expected is None) or got == expected, (column.name, row, cell, got)
            errors = json.loads(raw[COERCION_ERRORS_COLUMN][row] or "{}")
            failed = cell is not None and expected is None and not is_na_word(cell)
            assert (errors.get(column.name) == cell) if failed else column.name not in errors


def test_a_streamed_file_is_never_held_whole(lake, monkeypatch):
    from mlflywheel.ingest import exact

    def refuse(*args, **kwargs):
        raise AssertionError("read whole")

    get_bytes = LocalLake.get_bytes
    monkeypatch.setattr(LocalLake, "get_bytes", lambda self, key: refuse() if key == landing_key(SPEC, DAY) else get_bytes(self, key))
    monkeypatch.setattr(exact, "_read_csv", refuse)
    monkeypatch.setattr("mlflywheel.ingest.read_landing", refuse)
    monkeypatch.setattr("mlflywheel.ingest.EXACT_READER_MAX_BYTES", 0)
    lines = _csv_lines(200)
    lines[5] = lines[5].replace("c-", "Zoë-", 1)
    for data in (("\n".join(lines) + "\n").encode("latin-1"), ("\n".join(lines) + "\n").encode("utf-16"),
                 _with_bad_cells(200, seed=16)):  # fmt: skip
        land_bytes(lake, SPEC, DAY, data)
        result = ingest_partition(lake, SPEC, DAY, run_id="r", chunk_rows=50)
        assert result["status"] == "raw" and result["rows_in"] == 200


def test_a_large_file_the_streaming_reader_declines_is_quarantined(tmp_path, monkeypatch):
    """Above the exact reader's size cap, a declined file is quarantined with the streaming
    reader's reason and the records counted streaming; a file it takes reads the same as below."""
    monkeypatch.setattr("mlflywheel.ingest.EXACT_READER_MAX_BYTES", 0)
    approximate = {"line_break_in_cell"}  # a record over two lines counts per line: an upper bound
    for case in _corpus_cases():
        result, raw = _ingest(tmp_path, case.name, case.spec, case.data)
        monkeypatch.setattr("mlflywheel.ingest.EXACT_READER_MAX_BYTES", 2**40)
        expected, expected_raw = _ingest(tmp_path, case.name + "-exact", case.spec, case.data)
        monkeypatch.setattr("mlflywheel.ingest.EXACT_READER_MAX_BYTES", 0)
        if expected_raw is not None and result["status"] == "raw":
            assert result == expected, case.name
            pd.testing.assert_frame_equal(raw, expected_raw, obj=case.name)
            continue
        assert result["status"] == "quarantined", case.name
        [reason] = result["reasons"]
        if case.spec.landing_format == "csv" and case.name not in ("empty_file",):
            assert "read streaming" in reason, (case.name, reason)
        if case.name in approximate:
            assert result["rows_in"] >= case.records
        else:
            assert result["rows_in"] == case.records, case.name
    assert sum(1 for case in _corpus_cases() if case.status != "quarantined") > 40


def test_a_parquet_landing_is_read_in_chunks(lake, monkeypatch):
    parquet_spec = dataclasses.replace(SPEC, landing_format="parquet")
    clean = generate_day(DAY, 100, seed=17)
    land_frame(lake, parquet_spec, DAY, clean)
    whole = ingest_partition(lake, parquet_spec, DAY, run_id="r")
    expected = read_raw(lake, parquet_spec, DAY)

    def refuse(*args, **kwargs):
        raise AssertionError("read whole")

    monkeypatch.setattr("mlflywheel.ingest.read_landing", refuse)
    assert ingest_partition(lake, parquet_spec, DAY, run_id="r", chunk_rows=7) == whole
    pd.testing.assert_frame_equal(read_raw(lake, parquet_spec, DAY), expected)


def test_the_streaming_reader_reads_quirky_files_as_the_exact_reader(tmp_path, monkeypatch):
    """Random files of quotes, delimiters and odd cells: where the streaming reader takes one, it
    reads it as the exact reader does (where it declines, the exact reader reads it anyway)."""
    import random

    import mlflywheel.ingest as ingest_module
    from mlflywheel.ingest import stream

    rng = random.Random(5)
    pieces = ["a", '"', '""', ",", " ", "\t", "1", "2.5", 'x"y', '"q"', '"a,b"', "NA", "", "é", "\\", "'",
              '"" ', ' "x"', '"x" ', "1e3", '""""', "\r\n", '"a\nb"']  # fmt: skip
    header = "transaction_id,amount,account_age_days,event_time"
    csv_source, read_landing = stream.csv_source, ingest_module.read_landing
    exact_reads: list[int] = []

    def counted(*args, **kwargs):
        exact_reads.append(1)
        return read_landing(*args, **kwargs)

    monkeypatch.setattr(ingest_module, "read_landing", counted)
    taken = 0
    for number in range(300):
        lines = [header]
        for _ in range(rng.randint(0, 5)):
            width = rng.choice([4, 4, 4, 4, 3])
            lines.append(",".join("".join(rng.choice(pieces) for _ in range(rng.randint(0, 3))) for _ in range(width)))
        data = ("\n".join(lines) + rng.choice(["", "\n"])).encode()
        before = len(exact_reads)
        streamed = _ingest(tmp_path, f"{number}-s", SPEC, data)
        taken += len(exact_reads) == before

        def declined(*args):
            raise stream.Declined("as a test")

        monkeypatch.setattr(stream, "csv_source", declined)
        exact = _ingest(tmp_path, f"{number}-e", SPEC, data)
        monkeypatch.setattr(stream, "csv_source", csv_source)
        assert streamed[0] == exact[0], data
        if exact[1] is not None:
            pd.testing.assert_frame_equal(streamed[1], exact[1], obj=repr(data))
    assert 30 <= taken <= 270  # both readers had work


@pytest.mark.parametrize("block_bytes", [7, 4 * 2**20])
def test_survey_digest_and_checks_over_blocks(tmp_path, monkeypatch, block_bytes):
    """The digest (taken by a thread, block by block) is the file's sha256; the scan finds the first
    byte that is not UTF-8 across block edges, NUL bytes and quotes."""
    import hashlib

    from mlflywheel.ingest import stream

    monkeypatch.setattr(stream, "BLOCK_BYTES", block_bytes)
    path = tmp_path / "landed.csv"
    data = ("a,b\n" + "é,1\n" * 50).encode() + b'"x",\xff\n' + b"z,\x00\n"
    path.write_bytes(data)
    surveyed = stream.survey(path)
    assert surveyed.sha256 == hashlib.sha256(data).hexdigest() and surveyed.size == len(data)
    assert surveyed.utf8_error_at == data.index(b"\xff") and surveyed.has_nul and surveyed.has_quote
    path.write_bytes(b"a,b\n1,2\n")
    clean = stream.survey(path)
    assert (clean.utf8_error_at, clean.has_nul, clean.has_quote) == (None, False, False)
    assert clean.sha256 == hashlib.sha256(b"a,b\n1,2\n").hexdigest()


def _reference_utf8_error_at(data: bytes, block_bytes: int) -> int | None:
    """The survey's UTF-8 check before Arrow took it: Python's incremental decoder over the blocks."""
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")()
    size, error_at = 0, None
    for start in range(0, len(data), block_bytes):
        block = data[start : start + block_bytes]
        if error_at is None:
            pending = len(decoder.getstate()[0])
            try:
                decoder.decode(block)
            except UnicodeDecodeError as exc:
                error_at = size - pending + exc.start
        size += len(block)
    if error_at is None:
        pending = len(decoder.getstate()[0])
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            error_at = size - pending + exc.start
    return error_at


# Pieces of adversarial UTF-8: valid characters of each length, a byte order mark, noncharacters,
# surrogates encoded in UTF-8, overlong forms, code points past U+10FFFF, truncated sequences,
# stray continuation bytes and bytes that start nothing.
_UTF8_PIECES = [
    b"a", b",", b"\n", b"\x00", "é".encode(), "€".encode(), "😀".encode(), b"\xef\xbb\xbf", b"\xef\xbf\xbe",
    b"\xed\x9f\xbf", b"\xee\x80\x80", b"\xf4\x8f\xbf\xbf", b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xc0\x80",
    b"\xc1\xbf", b"\xe0\x80\x80", b"\xe0\x9f\xbf", b"\xf0\x80\x80\x80", b"\xf0\x8f\xbf\xbf", b"\xf4\x90\x80\x80",
    b"\xf5\x80\x80\x80", b"\xe2\x82", b"\xf0\x9f\x98", b"\xf0\x9f", b"\xc3", b"\x80", b"\xbf", b"\xff", b"\xfe",
]  # fmt: skip


def _adversarial_utf8(rnd) -> bytes:
    if rnd.random() < 0.2:  # raw bytes, biased to those that matter to UTF-8
        alphabet = [0x41, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC2, 0xDF, 0xE0, 0xED, 0xEF, 0xF0, 0xF4, 0xF5, 0xFF]
        return bytes(rnd.choice(alphabet) for _ in range(rnd.randint(0, 12)))
    valid = [p for p in _UTF8_PIECES if _reference_utf8_error_at(p, 8) is None]
    pieces = [rnd.choice(valid) for _ in range(rnd.randint(0, 30))]
    for _ in range(rnd.choice([0, 0, 1, 2])):  # mostly one bad piece somewhere, or none
        pieces.insert(rnd.randint(0, len(pieces)), rnd.choice(_UTF8_PIECES))
    return b"".join(pieces)


def test_survey_utf8_error_offset_is_the_python_decoders_over_any_blocks(tmp_path, monkeypatch):
    """Arrow validates the blocks and Python's decoder finds the offset only in a bad one: the offset
    is the one the decoder over the whole file gives, wherever the blocks split a character."""
    import random

    from mlflywheel.ingest import stream

    rnd = random.Random(20261128)
    path = tmp_path / "landed.csv"
    inputs = [_adversarial_utf8(rnd) for _ in range(1500)]
    # a bad byte right at, just before and just after a block edge; a character cut by the edge
    for edge in (8, 16):
        for bad in (b"\xff", b"\xe2\x28\xa1", b"\xed\xa0\x80", b"\xf0\x9f\x98", "😀".encode(), b"\xe2\x82"):
            for shift in range(-3, 2):
                inputs.append(b"a" * (edge + shift) + bad + b"b" * 5)
                inputs.append(b"a" * (edge + shift) + bad)  # the file ends there
    bad_inputs = 0
    for data in inputs:
        path.write_bytes(data)
        bad_inputs += _reference_utf8_error_at(data, len(data) + 1) is not None
        for block_bytes in (1, 2, 3, 4, 5, 7, 8, 16, 4 * 2**20):
            monkeypatch.setattr(stream, "BLOCK_BYTES", block_bytes)
            expected = _reference_utf8_error_at(data, block_bytes)
            assert expected == _reference_utf8_error_at(data, len(data) + 1)  # blocks never changed it
            assert stream._scan(path)[2] == expected, (data, block_bytes)
    assert 500 < bad_inputs < len(inputs) - 300  # both kinds well represented


def test_survey_utf8_error_in_a_large_block_is_found_exactly(tmp_path):
    """At the real block size: the error after megabytes of valid multi-byte text, in the second block."""
    from mlflywheel.ingest import stream

    text = ("a,é€😀\n" * 600_000).encode()  # ~7 MB: blocks end inside characters
    path = tmp_path / "landed.csv"
    line_end = text.index(b"\n", 5 * 2**20) + 1
    for bad in (b"\xed\xa0\x80", b"\xc0\xaf", b"\xf0\x9f\x98"):
        data = text[:line_end] + bad + text
        path.write_bytes(data)
        assert stream.survey(path).utf8_error_at == _reference_utf8_error_at(data, len(data)) == line_end
        data = text[: 5 * 2**20 + 1] + bad + text  # after a character cut short: the error is at its start
        path.write_bytes(data)
        assert stream.survey(path).utf8_error_at == _reference_utf8_error_at(data, len(data)) < 5 * 2**20
    path.write_bytes(text)
    assert stream.survey(path).utf8_error_at is None


class _SlowSha256:
    """hashlib.sha256 that waits for ``gate`` on its first block (and may fail): a digest still running."""

    def __init__(self, gate, fail: bool = False):
        import hashlib

        self._digest, self._gate, self._fail, self.blocks = hashlib.new("sha256"), gate, fail, 0  # not patched

    def update(self, block):
        self._gate.wait(5)
        self.blocks += 1
        if self._fail:
            raise OSError("the disk went away while hashing")
        self._digest.update(block)

    def hexdigest(self):
        return self._digest.hexdigest()


def _hashing_threads() -> list:
    import threading

    return [t for t in threading.enumerate() if t.name == "flywheel-sha256"]


def test_survey_digest_runs_on_after_the_survey_and_its_failure_surfaces(tmp_path, monkeypatch):
    import hashlib
    import threading

    from mlflywheel.ingest import stream

    path = tmp_path / "landed.csv"
    data = b"a,b\n" + b"1,2\n" * 1000
    path.write_bytes(data)
    monkeypatch.setattr(stream, "BLOCK_BYTES", 64)
    gate = threading.Event()
    made = []
    monkeypatch.setattr(stream.hashlib, "sha256", lambda: made.append(_SlowSha256(gate)) or made[-1])
    surveyed = stream.survey(path)  # returns while the digest waits on its first block
    assert surveyed.size == len(data) and _hashing_threads() and not made[0].blocks
    gate.set()
    monkeypatch.undo()
    assert surveyed.sha256 == hashlib.sha256(data).hexdigest()
    assert not _hashing_threads()

    gate.clear()
    monkeypatch.setattr(stream.hashlib, "sha256", lambda: _SlowSha256(gate, fail=True))
    failing = stream.survey(path)
    gate.set()
    with pytest.raises(OSError, match="went away"):
        _ = failing.sha256
    with pytest.raises(OSError, match="went away"):  # and closing it raises it too, not swallowed
        failing.close()


def test_a_closed_survey_stops_hashing(tmp_path, monkeypatch):
    """Closing a survey whose digest is still running stops the thread at its next block."""
    import threading

    from mlflywheel.ingest import stream

    path = tmp_path / "landed.csv"
    path.write_bytes(b"a,b\n" + b"1,2\n" * 1000)
    monkeypatch.setattr(stream, "BLOCK_BYTES", 64)
    gate = threading.Event()
    made = []
    monkeypatch.setattr(stream.hashlib, "sha256", lambda: made.append(_SlowSha256(gate)) or made[-1])
    threading.Timer(0.05, gate.set).start()  # a block the thread is on is finished first
    with stream.survey(path) as surveyed:
        pass
    # stopped before its first block or after the one it was on (which, is up to the scheduler),
    # never reading on through the file's other blocks
    assert not _hashing_threads() and made[0].blocks <= 1 < len(path.read_bytes()) // 64
    with pytest.raises(RuntimeError, match="abandoned"):
        _ = surveyed.sha256


def test_ingest_leaves_no_hashing_thread_running(lake, monkeypatch):
    """Whether ingest publishes, quarantines or raises, the hashing thread is over when it returns;
    a failure of the digest fails the ingest (nothing published)."""
    import threading

    from mlflywheel.ingest import stream

    land_frame(lake, SPEC, DAY, generate_day(DAY, 50, seed=3))
    assert ingest_partition(lake, SPEC, DAY, run_id="r")["status"] == "raw" and not _hashing_threads()
    land_bytes(lake, SPEC, DAY, b"\x00\x00junk")
    assert ingest_partition(lake, SPEC, DAY, run_id="r")["status"] == "quarantined" and not _hashing_threads()

    land_frame(lake, SPEC, DAY, generate_day(DAY, 50, seed=4))
    monkeypatch.setattr(stream, "BLOCK_BYTES", 64)
    gate = threading.Event()
    made = []
    monkeypatch.setattr(stream.hashlib, "sha256", lambda: made.append(_SlowSha256(gate)) or made[-1])

    def broken(*args):
        threading.Timer(0.05, gate.set).start()
        raise RuntimeError("a bug in the reader")

    monkeypatch.setattr(stream, "csv_source", broken)
    with pytest.raises(RuntimeError, match="a bug in the reader"):
        ingest_partition(lake, SPEC, DAY, run_id="r")
    assert not _hashing_threads() and made[0].blocks <= 1  # stopped (at its first block at most), not hashed to the end

    versions = _versions(lake, "raw")
    monkeypatch.undo()
    monkeypatch.setattr(stream.hashlib, "sha256", lambda: _SlowSha256(threading.Event(), fail=True))
    with pytest.raises(OSError, match="went away"):
        ingest_partition(lake, SPEC, DAY, run_id="r")
    assert not _hashing_threads() and _versions(lake, "raw") == versions


# --- ids found unique while ingest casts them (validation then skips its pass over the ids) ----------


def test_ingest_names_the_id_column_when_no_id_repeats(lake):
    land_frame(lake, SPEC, DAY, generate_day(DAY, 400, seed=3))
    ingest_partition(lake, SPEC, DAY, run_id="r", chunk_rows=64)  # ids of several chunks
    assert lake.manifest("raw", SPEC.name, DAY)["unique_ids"] == [SPEC.id_column]


@pytest.mark.parametrize("where", ["same chunk", "other chunks"])
def test_repeated_ids_are_recorded_with_the_raw_partition(lake, where):
    import pyarrow.parquet as pq

    frame = generate_day(DAY, 400, seed=3)
    frame.loc[10 if where == "same chunk" else 390, SPEC.id_column] = frame.loc[5, SPEC.id_column]
    frame.loc[[200, 300, 301], SPEC.id_column] = frame.loc[7, SPEC.id_column]  # thrice more
    land_frame(lake, SPEC, DAY, frame)
    ingest_partition(lake, SPEC, DAY, run_id="r", chunk_rows=64)
    manifest = lake.manifest("raw", SPEC.name, DAY)
    assert manifest["unique_ids"] == [] and manifest["duplicate_ids"] == [SPEC.id_column]
    with lake.partition_local_file("raw", SPEC.name, DAY, "duplicate_ids.parquet") as path:
        recorded = pq.read_table(path).column(SPEC.id_column).to_pylist()
    assert recorded == sorted([frame.loc[5, SPEC.id_column], frame.loc[7, SPEC.id_column]])


def test_too_many_repeated_ids_are_left_to_validation(lake, monkeypatch):
    from mlflywheel.ingest import raw as raw_module

    monkeypatch.setattr(raw_module, "MAX_RECORDED_DUPLICATES", 1)
    frame = generate_day(DAY, 100, seed=3)
    frame.loc[[10, 20], SPEC.id_column] = [frame.loc[5, SPEC.id_column], frame.loc[6, SPEC.id_column]]
    land_frame(lake, SPEC, DAY, frame)
    ingest_partition(lake, SPEC, DAY, run_id="r")
    manifest = lake.manifest("raw", SPEC.name, DAY)
    assert manifest["unique_ids"] == [] and manifest["duplicate_ids"] == [] and manifest["files"] == ["data.parquet", "meta.parquet"]


def test_a_hash_collision_alone_also_leaves_the_ids_to_validation(lake, monkeypatch):
    from mlflywheel.validation import uniqueness

    monkeypatch.setattr(uniqueness, "hash_ids", lambda values: np.zeros(len(values), dtype=np.uint64))
    land_frame(lake, SPEC, DAY, generate_day(DAY, 50, seed=3))
    ingest_partition(lake, SPEC, DAY, run_id="r")
    manifest = lake.manifest("raw", SPEC.name, DAY)
    assert manifest["unique_ids"] == [] and manifest["duplicate_ids"] == [] and manifest["files"] == ["data.parquet", "meta.parquet"]


def test_nulls_are_no_repeats_and_a_spec_without_ids_names_none(lake):
    frame = generate_day(DAY, 60, seed=4)
    frame.loc[[3, 7], SPEC.id_column] = None
    land_frame(lake, SPEC, DAY, frame)
    ingest_partition(lake, SPEC, DAY, run_id="r")
    assert lake.manifest("raw", SPEC.name, DAY)["unique_ids"] == [SPEC.id_column]
    no_ids = dataclasses.replace(SPEC, id_column=None)
    ingest_partition(lake, no_ids, DAY, run_id="r2")
    assert lake.manifest("raw", SPEC.name, DAY)["unique_ids"] == []


@pytest.mark.parametrize("long_cell, sizes", [(700, [64, 256, 1024]), (20_000, [64, 256, 1024, 4096])])
def test_a_record_longer_than_the_csv_block_is_read_again_with_larger_blocks(lake, monkeypatch, long_cell, sizes):
    """Blocks grow 4-fold from CSV_BLOCK_BYTES while a record is longer than one; past the last
    size the streaming reader declines (here the exact reader takes the small file). The raw
    partition is the same as with the default sizes."""
    from mlflywheel.ingest import stream

    frame = generate_day(DAY, 40, seed=21)
    frame.loc[30, "customer_id"] = "c" * long_cell
    land_frame(lake, SPEC, DAY, frame)
    ingest_partition(lake, SPEC, DAY, run_id="r")
    expected = read_raw(lake, SPEC, DAY)
    assert expected.loc[30, "customer_id"] == "c" * long_cell and len(expected) == 40

    monkeypatch.setattr(stream, "CSV_BLOCK_BYTES", 64)  # shorter than every record
    monkeypatch.setattr(stream, "MAX_CSV_BLOCK_BYTES", 4096)
    assert stream.csv_block_sizes() == [64, 256, 1024, 4096]
    tried = []
    real = stream.read_batches

    def spy(source, multiline=(), block_bytes=None):
        tried.append(block_bytes)
        return real(source, multiline, block_bytes)

    monkeypatch.setattr(stream, "read_batches", spy)
    exact_reads = []
    real_exact = ingest_module.read_landing
    monkeypatch.setattr(ingest_module, "read_landing", lambda *a: exact_reads.append(1) or real_exact(*a))
    ingest_partition(lake, SPEC, DAY, run_id="r")
    assert tried == sizes and bool(exact_reads) == (long_cell > 4096)
    pd.testing.assert_frame_equal(read_raw(lake, SPEC, DAY), expected)
