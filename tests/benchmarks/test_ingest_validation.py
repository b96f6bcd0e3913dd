"""The ingest + validation benchmark (benchmarks/ingest_validation.py) at a tiny size: the report's
shape, every row accounted for (rows in = validated + quarantined, quarantined = the bad rows it
generated), its vectorised checks agreeing with validation, and a generator that is deterministic."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "ingest_validation.py"
POSTGRES_URI = "postgresql://postgres@127.0.0.1:5432/postgres"
ROWS = 20_000


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("ingest_validation", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    sys.modules["ingest_validation"] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("ingest_validation", None)


def _postgres_reachable() -> bool:
    try:
        import psycopg2

        psycopg2.connect(POSTGRES_URI, connect_timeout=3).close()
    except Exception:  # noqa: BLE001 - any failure means: no server to measure against
        return False
    return True


def test_tiny_run_accounts_for_every_row(bench, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    figures = tmp_path / "figures.json"
    argv = ["--sizes", str(ROWS), "--bad", "0,0.01", "--workdir", str(tmp_path / "work"), "--json", str(figures),
            "--postgres-uri", ""]  # fmt: skip
    assert bench.main(argv) == 0
    document = json.loads(figures.read_text())
    assert set(document["targets"]) == {"peak_rss_mib_below", "all_good_floor_share_at_least", "bad_rows_per_s_at_least"}
    assert [(run["rows"], run["bad_fraction"]) for run in document["runs"]] == [(ROWS, 0.0), (ROWS, 0.01)]

    for run in document["runs"]:
        phases = run["phases"]
        assert list(phases) == ["generate", "floor", "checks", "ingest", "validate", "single_pass", "ingest+validate"]
        for name, phase in phases.items():
            assert phase["error"] is None, name
            assert phase["rows"] == ROWS, name
            assert phase["seconds"] > 0 and phase["rows_per_s"] > 0, name
            assert phase["peak_rss_mib"] > 0, name  # from the child's own rusage
        e2e = phases["ingest+validate"]
        assert e2e["seconds"] == pytest.approx(phases["ingest"]["seconds"] + phases["validate"]["seconds"])
        assert e2e["peak_rss_mib"] == max(phases["ingest"]["peak_rss_mib"], phases["validate"]["peak_rss_mib"])

        generated = run["generated"]
        expected_bad = round(ROWS * run["bad_fraction"])
        assert generated["bad_rows"] == expected_bad == sum(generated["bad_by_kind"].values())
        assert set(generated["bad_by_kind"]) == set(bench.KINDS)
        if expected_bad:  # the bad rows are spread over every kind the suite catches
            assert min(generated["bad_by_kind"].values()) > 0

        accounting = run["accounting"]
        assert accounting["rows_in"] == ROWS
        assert accounting["rows_validated"] + accounting["rows_quarantined"] == ROWS
        assert accounting["rows_add_up"] is True
        assert accounting["rows_quarantined"] == expected_bad
        assert accounting["quarantined_equals_generated_bad"] is True
        assert accounting["status"] == ("partially_quarantined" if expected_bad else "validated")
        assert accounting["checks_failing_rows"] == expected_bad
        assert accounting["checks_reasons_equal_validation"] is True
        assert accounting["single_pass_same_as_two_stages"] is True
        single = phases["single_pass"]["details"]
        assert (single["rows_quarantined"], single["reasons"]) == (expected_bad, phases["validate"]["details"]["reasons"])
        assert len(run["targets"]) == 4 and all(t["met"] in (True, False) for t in run["targets"])
        assert any(t["target"].startswith("single pass >= ") for t in run["targets"])

    validate = document["runs"][1]["phases"]["validate"]["details"]["reasons"]
    assert validate["duplicate transaction_id"] == 2 * generated["bad_by_kind"]["duplicate_id"]  # both copies
    assert validate["value could not be read as its type"] == generated["bad_by_kind"]["unparseable_number"]

    printed = capsys.readouterr().out
    assert bench.HEADER in printed
    for label in ("floor: pyarrow", "vectorised checks", "ingest+validate", "single pass", "target: peak RSS"):
        assert label in printed
    assert "quarantined = generated bad rows (200): yes" in printed
    assert "single pass: status, counts and reasons as the two stages': yes" in printed
    assert "FAILED" not in printed


@pytest.mark.skipif(not _postgres_reachable(), reason=f"no PostgreSQL at {POSTGRES_URI}")
def test_postgres_copy_baseline_moves_every_row_and_drops_its_table(bench, tmp_path: Path) -> None:
    import psycopg2

    figures = tmp_path / "figures.json"
    argv = ["--sizes", "3000", "--bad", "0,0.01", "--workdir", str(tmp_path / "work"), "--json", str(figures),
            "--postgres-uri", POSTGRES_URI]  # fmt: skip
    assert bench.main(argv) == 0
    for run in json.loads(figures.read_text())["runs"]:
        typed = run["bad_fraction"] == 0  # a typed COPY would refuse the file's unparseable numbers
        for name in ("pg_copy_in", "pg_copy_out"):
            phase = run["phases"][name]
            assert phase["error"] is None and phase["rows"] == 3000, name
            assert phase["details"]["typed"] is typed
    with psycopg2.connect(POSTGRES_URI) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_tables WHERE tablename = %s", (f"flywheel_bench_{os.getpid()}",))
        assert cursor.fetchone()[0] == 0
    conn.close()


def test_generated_file_is_deterministic_and_streams_in_chunks(bench, tmp_path: Path) -> None:
    # Chunks of 700 rows: positions, bad rows and duplicates cross chunk boundaries.
    first = bench.generate_landing(tmp_path / "a", 3000, 0.05, seed=7, chunk_rows=700)
    again = bench.generate_landing(tmp_path / "b", 3000, 0.05, seed=7, chunk_rows=700)
    other = bench.generate_landing(tmp_path / "c", 3000, 0.05, seed=8, chunk_rows=700)
    assert first["sha256"] == again["sha256"] != other["sha256"]
    assert first["bad_rows"] == 150

    from mlflywheel.datasets import get_spec
    from mlflywheel.datasets.landing import landing_key, landing_marker_key
    from mlflywheel.lake import open_lake

    spec, lake = get_spec("transactions"), open_lake(str(tmp_path / "a"))
    assert Path(first["path"]) == tmp_path / "a" / landing_key(spec, bench.DAY)
    text = Path(first["path"]).read_text().splitlines()
    assert text[0] == ",".join(spec.column_names)
    assert len(text) == 3001
    marker = json.loads(lake.get_bytes(landing_marker_key(spec, bench.DAY)))
    assert (marker["bytes"], marker["sha256"], marker["file"]) == (first["bytes"], first["sha256"], "data.csv")
    ids = [line.split(",", 1)[0] for line in text[1:]]
    present = [i for i in ids if i]  # a missing id is one of the kinds of bad rows
    assert len(present) - len(set(present)) == first["bad_by_kind"]["duplicate_id"]
