"""The upstream's delivery to the landing zone: the day's file, then its ``_SUCCESS`` marker,
and the CSV text upstreams write (ISO-8601 UTC datetimes, empty nulls)."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
from pathlib import Path

import pandas as pd
import pytest
from mlflywheel.datasets.landing import frame_to_csv_bytes, is_landed, land_bytes, land_frame
from mlflywheel.datasets.spec import Column, DatasetSpec, SpecError
from mlflywheel.lake import LocalLake

DAY = dt.date(2026, 11, 3)


def landing_key(spec: DatasetSpec, day: dt.date) -> str:
    """The landing layout, written out here so that a change to it shows up as a failing test."""
    return f"landing/{spec.name}/dt={day.isoformat()}/data.{spec.landing_format}"


def landing_marker_key(spec: DatasetSpec, day: dt.date) -> str:
    return f"landing/{spec.name}/dt={day.isoformat()}/_SUCCESS"


def make_spec(landing_format: str = "csv", name: str = "tiny") -> DatasetSpec:
    return DatasetSpec(
        name=name,
        description="a tiny dataset for landing tests",
        columns=(
            Column("id", "string"),
            Column("ts", "datetime"),
            Column("amount", "float", nullable=True),
            Column("label", "int"),
        ),
        id_column="id",
        timestamp_column="ts",
        target="label",
        categorical_features=(),
        numeric_features=("amount",),
        landing_format=landing_format,  # type: ignore[arg-type]
    )


def iso(values: list[str | None], *, utc: bool = False) -> pd.DatetimeIndex:
    return pd.to_datetime(values, format="ISO8601", utc=utc)


def sample_frame() -> pd.DataFrame:
    times = iso(["2026-11-03 00:00:00", "2026-11-03 12:30:45.123", "2026-11-03 23:59:59.999"], utc=True)
    return pd.DataFrame({"id": ["a", "b", "c"], "ts": times, "amount": [1.5, None, 3.0], "label": [0, 1, 0]})


class RecordingLake(LocalLake):
    """A local lake that records the order of writes and deletes (and can fail a put)."""

    def __init__(self, root: Path, fail_put: str | None = None):
        super().__init__(root)
        self.calls: list[tuple[str, str]] = []
        self.fail_put = fail_put

    def put_bytes(self, key: str, data: bytes) -> None:
        self.calls.append(("put", key))
        if key == self.fail_put:
            raise OSError(f"disk full writing {key}")
        super().put_bytes(key, data)

    def delete_prefix(self, prefix: str) -> None:
        self.calls.append(("delete", prefix))
        super().delete_prefix(prefix)


@pytest.fixture()
def lake(tmp_path: Path) -> LocalLake:
    return LocalLake(tmp_path / "lake")


# --- land_bytes and is_landed ---------------------------------------------------------------------


def test_land_bytes_writes_the_file_and_a_marker_describing_it(lake: LocalLake) -> None:
    spec = make_spec()
    data = b"id,ts\nx,2026-11-03T00:00:00.000Z\n"
    before = dt.datetime.now(dt.UTC)
    key = land_bytes(lake, spec, DAY, data)
    after = dt.datetime.now(dt.UTC)

    assert key == "landing/tiny/dt=2026-11-03/data.csv"
    assert lake.get_bytes(key) == data
    marker = json.loads(lake.get_bytes(landing_marker_key(spec, DAY)))
    assert set(marker) == {"file", "bytes", "sha256", "landed_at"}
    assert marker["file"] == "data.csv"
    assert marker["bytes"] == len(data)
    assert marker["sha256"] == hashlib.sha256(data).hexdigest()
    landed_at = dt.datetime.fromisoformat(marker["landed_at"])
    assert landed_at.utcoffset() == dt.timedelta(0)
    assert before <= landed_at <= after
    assert sorted(lake.list_keys("landing/tiny/")) == sorted([key, "landing/tiny/dt=2026-11-03/_SUCCESS"])


def test_marker_is_written_after_the_file_and_withdrawn_first(tmp_path: Path) -> None:
    spec = make_spec()
    lake = RecordingLake(tmp_path / "lake")
    land_bytes(lake, spec, DAY, b"payload")
    marker = landing_marker_key(spec, DAY)
    assert lake.calls == [("delete", marker), ("put", landing_key(spec, DAY)), ("put", marker)]


def test_failed_relanding_leaves_the_day_not_landed(tmp_path: Path) -> None:
    spec = make_spec()
    lake = RecordingLake(tmp_path / "lake")
    land_bytes(lake, spec, DAY, b"first")
    assert is_landed(lake, spec, DAY)
    lake.fail_put = landing_key(spec, DAY)
    with pytest.raises(OSError, match="disk full"):
        land_bytes(lake, spec, DAY, b"second")
    # The old "complete" marker must not vouch for a file that is being replaced.
    assert not is_landed(lake, spec, DAY)
    assert not lake.exists(landing_marker_key(spec, DAY))


def test_relanding_replaces_file_and_marker(lake: LocalLake) -> None:
    spec = make_spec()
    land_bytes(lake, spec, DAY, b"first version, longer")
    first_marker = json.loads(lake.get_bytes(landing_marker_key(spec, DAY)))
    key = land_bytes(lake, spec, DAY, b"second")
    assert lake.get_bytes(key) == b"second"
    marker = json.loads(lake.get_bytes(landing_marker_key(spec, DAY)))
    assert marker["bytes"] == 6
    assert marker["sha256"] == hashlib.sha256(b"second").hexdigest() != first_marker["sha256"]
    assert sorted(lake.list_keys("landing/tiny/")) == sorted([key, landing_marker_key(spec, DAY)])


def test_empty_and_binary_payloads(lake: LocalLake) -> None:
    spec = make_spec()
    land_bytes(lake, spec, DAY, b"")
    marker = json.loads(lake.get_bytes(landing_marker_key(spec, DAY)))
    assert marker["bytes"] == 0 and marker["sha256"] == hashlib.sha256(b"").hexdigest()
    blob = bytes(range(256)) * 3
    land_bytes(lake, spec, DAY, blob)
    assert lake.get_bytes(landing_key(spec, DAY)) == blob
    assert json.loads(lake.get_bytes(landing_marker_key(spec, DAY)))["bytes"] == 768


def test_is_landed_per_day_and_dataset(lake: LocalLake) -> None:
    spec, other = make_spec(), make_spec(name="other")
    assert not is_landed(lake, spec, DAY)
    land_bytes(lake, spec, DAY, b"x")
    assert is_landed(lake, spec, DAY)
    assert not is_landed(lake, spec, DAY + dt.timedelta(days=1))
    assert not is_landed(lake, other, DAY)


def test_file_without_marker_is_not_landed(lake: LocalLake) -> None:
    spec = make_spec()
    lake.put_bytes(landing_key(spec, DAY), b"still being delivered")
    assert not is_landed(lake, spec, DAY)


# --- land_frame ----------------------------------------------------------------------------------


def test_land_frame_csv(lake: LocalLake) -> None:
    spec = make_spec("csv")
    df = sample_frame()
    key = land_frame(lake, spec, DAY, df)
    assert key.endswith("/data.csv")
    data = lake.get_bytes(key)
    assert data == frame_to_csv_bytes(df)
    assert data.decode().splitlines() == [
        "id,ts,amount,label",
        "a,2026-11-03T00:00:00.000Z,1.5,0",
        "b,2026-11-03T12:30:45.123Z,,1",
        "c,2026-11-03T23:59:59.999Z,3.0,0",
    ]
    marker = json.loads(lake.get_bytes(landing_marker_key(spec, DAY)))
    assert marker["file"] == "data.csv" and marker["sha256"] == hashlib.sha256(data).hexdigest()
    assert is_landed(lake, spec, DAY)


def test_land_frame_parquet(lake: LocalLake) -> None:
    spec = make_spec("parquet")
    df = sample_frame()
    key = land_frame(lake, spec, DAY, df)
    assert key == "landing/tiny/dt=2026-11-03/data.parquet"
    data = lake.get_bytes(key)
    assert data[:4] == b"PAR1"
    back = pd.read_parquet(io.BytesIO(data))
    pd.testing.assert_frame_equal(back, df)
    marker = json.loads(lake.get_bytes(landing_marker_key(spec, DAY)))
    assert marker["file"] == "data.parquet" and marker["bytes"] == len(data)
    assert is_landed(lake, spec, DAY)


def test_land_frame_does_not_modify_the_frame(lake: LocalLake) -> None:
    df = sample_frame()
    before = df.copy()
    land_frame(lake, make_spec("csv"), DAY, df)
    pd.testing.assert_frame_equal(df, before)


def test_unknown_landing_format_is_refused_by_the_spec(lake: LocalLake) -> None:
    with pytest.raises(SpecError, match="landing_format must be csv or parquet, not 'json'"):
        make_spec("json")


# --- frame_to_csv_bytes ----------------------------------------------------------------------------


def csv_lines(df: pd.DataFrame) -> list[str]:
    data = frame_to_csv_bytes(df)
    assert b"\r" not in data
    assert data.endswith(b"\n")
    return data.decode("utf-8").split("\n")[:-1]


def test_csv_milliseconds_when_nothing_finer() -> None:
    df = pd.DataFrame({"t": iso(["2026-11-03T01:02:03Z", "2026-11-03T01:02:03.450Z"])})
    assert csv_lines(df) == ["t", "2026-11-03T01:02:03.000Z", "2026-11-03T01:02:03.450Z"]


def test_csv_microseconds_when_any_value_has_them() -> None:
    df = pd.DataFrame({"t": iso(["2026-11-03T01:02:03Z", "2026-11-03T01:02:03.000001Z"])})
    # One finer value switches the whole column to microseconds, so all values keep one format.
    assert csv_lines(df) == ["t", "2026-11-03T01:02:03.000000Z", "2026-11-03T01:02:03.000001Z"]


def test_csv_precision_is_decided_per_column() -> None:
    df = pd.DataFrame(
        {
            "a": pd.to_datetime(["2026-11-03T00:00:00.123456Z"], format="ISO8601"),
            "b": pd.to_datetime(["2026-11-03T00:00:00.123Z"], format="ISO8601"),
        }
    )
    assert csv_lines(df) == ["a,b", "2026-11-03T00:00:00.123456Z,2026-11-03T00:00:00.123Z"]


def test_csv_naive_datetimes_are_taken_as_utc() -> None:
    df = pd.DataFrame({"t": pd.to_datetime(["2026-11-03 23:30:00"], format="ISO8601")})
    assert df["t"].dt.tz is None
    assert csv_lines(df) == ["t", "2026-11-03T23:30:00.000Z"]


def test_csv_aware_datetimes_are_converted_to_utc() -> None:
    local = iso(["2026-11-03 00:30:00", "2026-07-01 12:00:00.5"]).tz_localize("Europe/Berlin")
    df = pd.DataFrame({"t": local})
    # November: UTC+1; July: UTC+2 (summer time).
    assert csv_lines(df) == ["t", "2026-11-02T23:30:00.000Z", "2026-07-01T10:00:00.500Z"]


def test_csv_nulls_are_empty() -> None:
    df = pd.DataFrame(
        {
            "t": pd.to_datetime(["2026-11-03T01:00:00.000001Z", None], format="ISO8601"),
            "s": [None, "x"],
            "f": [float("nan"), 2.5],
            "i": pd.array([None, 7], dtype="Int64"),
        }
    )
    assert csv_lines(df) == ["t,s,f,i", "2026-11-03T01:00:00.000001Z,,,", ",x,2.5,7"]


def test_csv_all_null_datetime_column() -> None:
    df = pd.DataFrame({"id": ["a", "b"], "t": pd.Series([pd.NaT, pd.NaT], dtype="datetime64[ns, UTC]")})
    assert csv_lines(df) == ["id,t", "a,", "b,"]


def test_csv_has_no_index_and_leaves_other_columns_alone() -> None:
    df = pd.DataFrame({"n": [1, 2], "s": ["a,b", 'q"q'], "d": ["2026-11-03", "x"]}, index=[10, 20])
    assert csv_lines(df) == ["n,s,d", '1,"a,b",2026-11-03', '2,"q""q",x']


def test_csv_is_utf8() -> None:
    df = pd.DataFrame({"s": ["café", "東京"]})
    assert frame_to_csv_bytes(df) == "s\ncafé\n東京\n".encode()


def test_csv_round_trips_through_a_reader() -> None:
    df = sample_frame()
    back = pd.read_csv(io.BytesIO(frame_to_csv_bytes(df)))
    back["ts"] = pd.to_datetime(back["ts"], utc=True)
    pd.testing.assert_frame_equal(back, df, check_dtype=False)
