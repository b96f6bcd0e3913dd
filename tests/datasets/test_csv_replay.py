"""CSV replay: a CSV lands in the landing zone one UTC day per partition, reading the file once."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from mlflywheel.datasets import get_spec, spec_to_dict
from mlflywheel.datasets.__main__ import main
from mlflywheel.datasets.landing import is_landed, landing_key, landing_marker_key
from mlflywheel.datasets.spec import DatasetSpec
from mlflywheel.datasets.upstreams import csv_replay
from mlflywheel.datasets.upstreams.csv_replay import (
    LOANS_CSV,
    csv_days,
    day_frame,
    generate_loans_csv,
    replay_csv,
)
from mlflywheel.lake import LocalLake, frame_from_parquet

LOANS = get_spec("loans")
FIRST = dt.date(2026, 11, 1)
LOAN_DAYS = [FIRST + dt.timedelta(days=i) for i in range(12)]


def landed(lake: LocalLake, spec: DatasetSpec, day: dt.date) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(lake.get_bytes(landing_key(spec, day))), dtype=str, keep_default_na=False)


def landed_days(lake: LocalLake, dataset: str) -> list[dt.date]:
    """The days whose delivery is complete (marker present), from the landing zone's keys."""
    markers = [k for k in lake.list_keys(f"landing/{dataset}/") if k.endswith("/_SUCCESS")]
    return sorted(dt.date.fromisoformat(k.split("/")[2].removeprefix("dt=")) for k in markers)


def source_rows(frame: pd.DataFrame, spec: DatasetSpec, day: dt.date) -> pd.DataFrame:
    """The rows of ``frame`` (text) on ``day``, in frame order: what a day's file must hold."""
    days = pd.to_datetime(frame[spec.timestamp_column], utc=True, format="ISO8601").dt.date
    return frame[(days == day).to_numpy()].reset_index(drop=True)


def test_spec_registered() -> None:
    assert LOANS.name == "loans" and LOANS.target == "defaulted"
    assert LOANS.timestamp_column == "applied_at" and LOANS.landing_format == "csv"


def test_committed_csv_is_small_and_reproducible(tmp_path: Path) -> None:
    assert LOANS_CSV.stat().st_size < 1_000_000
    regenerated = generate_loans_csv(tmp_path / "loans.csv")
    assert regenerated.read_bytes() == LOANS_CSV.read_bytes()


@pytest.mark.parametrize("chunk_rows", [100_000, 97])
def test_csv_days(chunk_rows: int) -> None:
    assert csv_days(LOANS, LOANS_CSV, chunk_rows=chunk_rows) == LOAN_DAYS


def test_replay_lands_exactly_each_days_rows_once(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path)
    result = replay_csv(lake, LOANS, LOANS_CSV, chunk_rows=137)  # days straddle chunk boundaries
    assert result.rows_per_day == {day: 250 for day in LOAN_DAYS}
    assert result.rows_read == result.rows_landed == 3000
    assert result.rows_without_timestamp == result.rows_outside_range == 0
    source = pd.read_csv(LOANS_CSV, dtype=str, keep_default_na=False)
    for day in LOAN_DAYS:
        assert is_landed(lake, LOANS, day)
        frame = landed(lake, LOANS, day)
        assert list(frame.columns) == LOANS.column_names
        pd.testing.assert_frame_equal(frame, source_rows(source, LOANS, day))  # text untouched, in file order
    assert landed_days(lake, "loans") == LOAN_DAYS


def test_replay_reads_the_file_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[str] = []
    real = pd.read_csv

    def counting_read_csv(path, *args, **kwargs):
        opened.append(str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(csv_replay.pd, "read_csv", counting_read_csv)
    replay_csv(LocalLake(tmp_path), LOANS, LOANS_CSV, chunk_rows=500)
    assert opened == [str(LOANS_CSV)]


def test_unsorted_input_lands_each_day_in_file_order(tmp_path: Path) -> None:
    source = pd.read_csv(LOANS_CSV, dtype=str, keep_default_na=False).sample(frac=1.0, random_state=4)
    shuffled = tmp_path / "shuffled.csv"
    source.to_csv(shuffled, index=False)
    lake = LocalLake(tmp_path / "lake")
    result = replay_csv(lake, LOANS, shuffled, chunk_rows=211)
    assert result.rows_per_day == {day: 250 for day in LOAN_DAYS}
    for day in LOAN_DAYS:
        pd.testing.assert_frame_equal(landed(lake, LOANS, day), source_rows(source, LOANS, day))


def write_csv(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    """A small CSV of the ``small`` spec below: id, ts, value."""
    path.write_text("id,ts,value\n" + "".join(f"{a},{b},{c}\n" for a, b, c in rows))
    return path


@pytest.fixture(scope="module")
def small() -> DatasetSpec:
    from mlflywheel.datasets import spec_from_dict

    return spec_from_dict(
        {
            "name": "small",
            "columns": [{"name": "id", "dtype": "string"}, {"name": "ts", "dtype": "datetime"},
                        {"name": "value", "dtype": "int"}],
            "timestamp_column": "ts", "target": "value", "categorical_features": [], "numeric_features": [],
        },
        source="test",
    )  # fmt: skip


def test_days_without_rows_land_empty_files_and_offsets_pick_the_utc_day(tmp_path: Path, small: DatasetSpec) -> None:
    csv = write_csv(tmp_path / "gaps.csv", [
        ("a", "2024-03-01T23:30:00-02:00", "1"),  # 2024-03-02 01:30 UTC
        ("b", "2024-03-01T10:00:00Z", "0"),
        ("c", "2024-03-05T00:30:00+01:00", "1"),  # 2024-03-04 23:30 UTC
        ("d", "2024-03-06T12:00:00.250+00:00", "0"),
    ])  # fmt: skip
    lake = LocalLake(tmp_path / "lake")
    result = replay_csv(lake, small, csv)
    assert result.rows_per_day == {
        dt.date(2024, 3, 1): 1, dt.date(2024, 3, 2): 1, dt.date(2024, 3, 3): 0,
        dt.date(2024, 3, 4): 1, dt.date(2024, 3, 5): 0, dt.date(2024, 3, 6): 1,
    }  # fmt: skip
    assert landed(lake, small, dt.date(2024, 3, 2))["id"].tolist() == ["a"]
    assert landed(lake, small, dt.date(2024, 3, 4))["id"].tolist() == ["c"]
    empty = lake.get_bytes(landing_key(small, dt.date(2024, 3, 3)))
    assert empty == b"id,ts,value\n" and is_landed(lake, small, dt.date(2024, 3, 3))


def test_a_range_lands_its_days_only_and_counts_the_rest(tmp_path: Path, small: DatasetSpec) -> None:
    csv = write_csv(tmp_path / "r.csv", [
        ("a", "2024-03-01T10:00:00Z", "1"), ("b", "not a time", "0"), ("c", "", "1"),
        ("d", "2024-03-03T10:00:00Z", "0"), ("e", "2024-03-09T10:00:00Z", "0"),
    ])  # fmt: skip
    lake = LocalLake(tmp_path / "lake")
    result = replay_csv(lake, small, csv, first_day=dt.date(2024, 3, 2), last_day=dt.date(2024, 3, 4))
    assert result.rows_per_day == {dt.date(2024, 3, 2): 0, dt.date(2024, 3, 3): 1, dt.date(2024, 3, 4): 0}
    assert (result.rows_read, result.rows_without_timestamp, result.rows_outside_range) == (5, 2, 2)
    assert landed_days(lake, "small") == [dt.date(2024, 3, d) for d in (2, 3, 4)]
    with pytest.raises(ValueError, match="the range is empty: 2024-03-04 is after 2024-03-02"):
        replay_csv(lake, small, csv, first_day=dt.date(2024, 3, 4), last_day=dt.date(2024, 3, 2))


def test_rerun_replaces_each_day(tmp_path: Path, small: DatasetSpec) -> None:
    lake = LocalLake(tmp_path / "lake")
    day = dt.date(2024, 3, 1)
    replay_csv(lake, small, write_csv(tmp_path / "v1.csv", [("a", "2024-03-01T01:00:00Z", "1"),
                                                           ("b", "2024-03-01T02:00:00Z", "0")]))  # fmt: skip
    result = replay_csv(lake, small, write_csv(tmp_path / "v2.csv", [("z", "2024-03-01T03:00:00Z", "1")]))
    assert result.rows_per_day == {day: 1}
    data = lake.get_bytes(landing_key(small, day))
    assert landed(lake, small, day)["id"].tolist() == ["z"]
    marker = json.loads(lake.get_bytes(landing_marker_key(small, day)))
    assert marker["sha256"] == hashlib.sha256(data).hexdigest()
    assert len([k for k in lake.list_keys("landing/small/") if k.endswith(".csv")]) == 1


def test_parquet_landing_format(tmp_path: Path, small: DatasetSpec) -> None:
    import dataclasses

    spec = dataclasses.replace(small, landing_format="parquet")
    csv = write_csv(tmp_path / "p.csv", [("a", "2024-03-01T01:00:00Z", "1"), ("b", "2024-03-01T02:00:00Z", "")])
    lake = LocalLake(tmp_path / "lake")
    replay_csv(lake, spec, csv)
    frame = frame_from_parquet(lake.get_bytes(landing_key(spec, dt.date(2024, 3, 1))))
    assert frame.to_dict("list") == {"id": ["a", "b"], "ts": ["2024-03-01T01:00:00Z", "2024-03-01T02:00:00Z"],
                                     "value": ["1", ""]}  # fmt: skip


def test_bad_files(tmp_path: Path, small: DatasetSpec) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ValueError, match="the file is empty"):
        replay_csv(LocalLake(tmp_path / "lake"), small, empty)
    other = tmp_path / "other.csv"
    other.write_text("id,when,value\na,2024-03-01T00:00:00Z,1\n")
    with pytest.raises(ValueError, match="no column 'ts' \\(the small spec's timestamp column\\); columns: id, when"):
        replay_csv(LocalLake(tmp_path / "lake"), small, other)


def test_day_frame_is_one_day(tmp_path: Path) -> None:
    frame = day_frame(LOANS, LOANS_CSV, dt.date(2026, 11, 4))
    assert len(frame) == 250 and list(frame.columns) == LOANS.column_names


def test_cli_replay(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec_file = tmp_path / "loans.yaml"
    spec_file.write_text(yaml.safe_dump(spec_to_dict(LOANS)))
    lake_dir = tmp_path / "lake"
    code = main(["replay", str(LOANS_CSV), "--spec", str(spec_file), "--lake", str(lake_dir),
                 "--from", "2026-11-03", "--to", "2026-11-04"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("landed 2 days of loans (2026-11-03 .. 2026-11-04, 0 without rows)")
    assert "500 of 3,000 rows; 0 without a readable applied_at, 2,500 outside the range" in out
    assert landed_days(LocalLake(lake_dir), "loans") == [dt.date(2026, 11, 3), dt.date(2026, 11, 4)]
    assert main(["replay", str(LOANS_CSV), "--spec", str(tmp_path / "none.yaml")]) == 2
    assert "none.yaml: no such spec file" in capsys.readouterr().err
