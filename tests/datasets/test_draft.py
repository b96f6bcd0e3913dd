"""Drafting a spec from a CSV: inferred types, ranges, vocabularies, roles; the YAML loads as is."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflywheel.datasets import load_spec_file
from mlflywheel.datasets.__main__ import main
from mlflywheel.datasets.draft import DraftError, draft_spec, draft_yaml, profile_csv, widen
from mlflywheel.datasets.spec import Column
from mlflywheel.datasets.spec_file import parse_spec_text

# ints, floats, text, datetimes with several UTC offsets, nulls (empty and NA words), YAML-ish words,
# codes with leading zeros, an id-like column that repeats, and the 0/1 label.
MIXED = """\
reading_id,when,site,weekday,temp,count,answer,note,code,customer_id,logged,is_alarm
r1,2024-03-01T10:00:00+02:00,north,4,12.5,3,yes,,007,c1,2024-02-01,0
r2,2024-03-01T23:30:00Z,south,4,-1.25,,no,hello,007,c2,2024-02-01,1
r3,2024-03-02T00:15:00-05:00,north,5,7,10,yes,x,012,c1,2024-02-02,0
r4,2024-03-02T08:00:00Z,east,5,NaN,4,no,,012,c3,2024-02-02,0
r5,2024-03-03T09:00:00.123+01:00,south,6,3.5,0,yes,y,007,c2,2024-02-03,1
r6,2024-03-03T10:00:00Z,north,6,21.0,7,no,z,012,c1,,0
r7,2024-03-04T10:00:00+05:30,south,0,2.0,1,yes,w,007,c3,2024-02-04,0
r8,2024-03-04T11:00:00Z,east,0,1.0,2,no,v,012,c2,2024-02-04,1
"""


@pytest.fixture
def mixed_csv(tmp_path: Path) -> Path:
    path = tmp_path / "mixed.csv"
    path.write_text(MIXED)
    return path


def test_inference_on_mixed_types(mixed_csv: Path) -> None:
    draft = draft_spec(profile_csv(mixed_csv), name="sensors", source="mixed.csv")
    spec = draft.spec
    column = {c.name: c for c in spec.columns}
    assert column["reading_id"] == Column("reading_id", "string")
    assert column["when"] == Column("when", "datetime")
    assert column["site"] == Column("site", "string", categories=("east", "north", "south"))
    assert column["weekday"] == Column("weekday", "int", min=0, max=7)
    assert column["temp"] == Column("temp", "float", nullable=True, min=-4.0, max=24.0)
    assert column["count"] == Column("count", "int", nullable=True, min=0, max=11)
    assert column["answer"].categories == ("no", "yes")  # text, although YAML would read yes/no as true/false
    assert column["note"].dtype == "string" and column["note"].nullable and column["note"].categories is None
    assert column["code"] == Column("code", "string", categories=("007", "012"))  # leading zeros: text
    assert column["logged"] == Column("logged", "datetime", nullable=True)
    assert column["is_alarm"] == Column("is_alarm", "int", min=0, max=1)
    assert (spec.id_column, spec.timestamp_column, spec.target) == ("reading_id", "when", "is_alarm")
    assert spec.categorical_features == ("site", "answer", "code")
    assert spec.numeric_features == ("weekday", "temp", "count")  # customer_id: named like an id
    assert "customer_id: not a feature (named like an id)" in draft.notes
    assert "timestamp: when (candidates: when, logged); pass --timestamp to choose another" in draft.notes


def test_draft_round_trips_through_the_loader(mixed_csv: Path, tmp_path: Path) -> None:
    draft = draft_spec(profile_csv(mixed_csv), name="sensors")
    text = draft_yaml(draft)
    path = tmp_path / "sensors.yaml"
    path.write_text(text)
    assert load_spec_file(path) == draft.spec
    assert "# - target: is_alarm (0/1 columns: is_alarm); pass --target to choose another" in text
    assert "    # seen -1.25 .. 21; 7 distinct; 1 of 8 empty" in text


def test_chunked_reading_gives_the_same_draft(mixed_csv: Path) -> None:
    whole = draft_spec(profile_csv(mixed_csv), name="sensors")
    chunked = draft_spec(profile_csv(mixed_csv, chunk_rows=3), name="sensors")
    assert chunked.spec == whole.spec and chunked.notes == whole.notes


def test_choices_can_be_given(mixed_csv: Path) -> None:
    spec = draft_spec(profile_csv(mixed_csv), name="s", timestamp="logged", target="is_alarm", id_column=None).spec
    assert spec.timestamp_column == "logged"
    assert "when" not in spec.features


def test_vocabulary_cap_and_id_that_repeats(tmp_path: Path) -> None:
    rows = "".join(f"id{i % 50},2024-01-01T00:00:{i % 60:02d}Z,name{i},{i % 2}\n" for i in range(100))
    path = tmp_path / "wide.csv"
    path.write_text("order_id,ts,name,y\n" + rows)
    draft = draft_spec(profile_csv(path, max_categories=10), name="wide", max_categories=10)
    assert draft.spec.id_column is None  # order_id repeats
    assert draft.spec.column("name").categories is None and draft.spec.features == ()
    assert "id: none declared; each row gets a derived id from its day and position" in draft.notes


def test_what_cannot_be_drafted(mixed_csv: Path, tmp_path: Path) -> None:
    profiles = profile_csv(mixed_csv)
    with pytest.raises(DraftError, match="--target 'site' must be a 0/1 column .*it has \\['east', 'north', 'south'\\]"):
        draft_spec(profiles, name="s", target="site")
    with pytest.raises(DraftError, match="--timestamp 'site': its values do not all read as ISO-8601 times"):
        draft_spec(profiles, name="s", timestamp="site")
    with pytest.raises(DraftError, match="--timestamp 'nope' is not a column of the CSV; columns: reading_id,"):
        draft_spec(profiles, name="s", timestamp="nope")
    no_time = tmp_path / "no_time.csv"
    no_time.write_text("a,y\n1,0\n2,1\n")
    with pytest.raises(DraftError, match="no column reads as ISO-8601 times; the spec needs a timestamp column"):
        draft_spec(profile_csv(no_time), name="s")
    no_label = tmp_path / "no_label.csv"
    no_label.write_text("ts,y\n2024-01-01T00:00:00Z,2\n")
    with pytest.raises(DraftError, match="no column holds only 0 and 1; pass --target"):
        draft_spec(profile_csv(no_label), name="s")


@pytest.mark.parametrize(
    "low, high, whole, expected",
    [
        (0.0, 1.0, False, (0.0, 1.1)),  # non-negative stays non-negative
        (-1.25, 21.0, False, (-4.0, 24.0)),  # outwards to a step of the margin's order
        (3.0, 7.0, True, (2.0, 8.0)),
        (5.0, 5.0, False, (4.5, 5.5)),  # flat: a margin of the magnitude
        (1000.0, 250000.0, False, (0.0, 280000.0)),
    ],
)
def test_widen(low: float, high: float, whole: bool, expected: tuple[float, float]) -> None:
    assert widen(low, high, whole=whole) == expected


def test_cli_draft_then_check(mixed_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "specs" / "sensors.yaml"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(
        [sys.executable, "-m", "mlflywheel.datasets", "draft", str(mixed_csv), "--name", "sensors",
         "--timestamp", "when", "--out", str(out)],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"wrote {out}: 12 columns" in done.stderr and "note: id: reading_id" in done.stderr
    assert parse_spec_text(out.read_text(), source="x").name == "sensors"
    checked = subprocess.run(
        [sys.executable, "-m", "mlflywheel.datasets", "check", str(out)],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.splitlines()[:2] == [
        "sensors: 12 columns, landing format csv",
        "  timestamp when, target is_alarm, id reading_id",
    ]


def test_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\n")
    assert main(["check", str(bad)]) == 2
    assert capsys.readouterr().err == f"error: {bad}: columns: missing required key 'columns'\n"
    assert main(["draft", str(tmp_path / "none.csv"), "--name", "x"]) == 2
    assert "No such file" in capsys.readouterr().err
