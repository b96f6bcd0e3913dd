"""The ingest + validation benchmark (benchmarks/ingest_validation.py) at a tiny size: the report's
shape, every row accounted for (rows in = validated + quarantined, quarantined = the bad rows it
generated), its vectorised checks agreeing with validation, a generator that is deterministic, and
``--repeat``: the table's figures the medians of interleaved rounds (ingest+validate paired within a
round), peak RSS the max, the accounting checked in every round."""

from __future__ import annotations

import importlib.util
import json
import os
import statistics
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


@pytest.mark.slow  # about 40 s: a fresh child process per phase and round
def test_tiny_run_accounts_for_every_row(bench, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    figures = tmp_path / "figures.json"
    argv = ["--sizes", str(ROWS), "--bad", "0,0.01", "--workdir", str(tmp_path / "work"), "--json", str(figures),
            "--postgres-uri", "", "--repeat", "2"]  # fmt: skip
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
            # generate runs once; every timed phase twice: its seconds the median, its peak the max
            assert len(phase["rounds"]) == len(phase["rounds_peak_rss_mib"]) == (1 if name == "generate" else 2), name
            assert phase["seconds"] == pytest.approx(statistics.median(phase["rounds"])), name
            assert phase["peak_rss_mib"] == max(phase["rounds_peak_rss_mib"]), name
        e2e = phases["ingest+validate"]
        paired = [i + v for i, v in zip(phases["ingest"]["rounds"], phases["validate"]["rounds"], strict=True)]
        assert e2e["rounds"] == pytest.approx(paired)
        assert e2e["rounds_peak_rss_mib"] == [
            max(i, v) for i, v in zip(phases["ingest"]["rounds_peak_rss_mib"], phases["validate"]["rounds_peak_rss_mib"])
        ]
        assert e2e["peak_rss_mib"] == max(phases["ingest"]["peak_rss_mib"], phases["validate"]["peak_rss_mib"])
        # each round's rows/s over the same round's floor's
        floor = phases["floor"]
        shares = [(ROWS / s) / (ROWS / f) for s, f in zip(e2e["rounds"], floor["rounds"], strict=True)]
        assert run["floor_share_per_round"]["ingest+validate"] == pytest.approx(shares)

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
    lines = printed.splitlines()
    for run in document["runs"]:
        bad = f"{run['bad_fraction']:.0%} bad"
        assert f"[{ROWS:,} rows, {bad}, round 1/2] floor: pyarrow: " in printed
        assert f"[{ROWS:,} rows, {bad}, round 2/2] single pass: " in printed
        for name, phase in run["phases"].items():
            # the table row (printed per run and again in the summary): seconds = the JSON's median
            cells = f"{bench.PHASE_LABELS[name]:<20}{ROWS:>12,}{run['bad_fraction']:>6.0%}{phase['seconds']:>10.2f}"
            rows = [line for line in lines if line.startswith(cells)]
            assert len(rows) == 2, (name, rows)
            if name != "generate":
                low, high = min(phase["rounds"]), max(phase["rounds"])
                assert f"median of 2: {low:.2f}-{high:.2f} s" in rows[0], rows[0]
        for name, label in (("ingest+validate", "ingest+validate"), ("single_pass", "single pass")):
            cells = ", ".join(f"{share:.0%}" for share in run["floor_share_per_round"][name])
            assert f"{label} / floor per round: {cells}" in lines
    assert printed.count("rows, status, counts and reasons the same in every round: yes") == 2
    assert bench.HEADER in printed
    for label in ("floor: pyarrow", "vectorised checks", "ingest+validate", "single pass", "target: peak RSS"):
        assert label in printed
    assert "quarantined = generated bad rows (200): yes" in printed
    assert "single pass: status, counts and reasons as the two stages': yes" in printed
    assert "FAILED" not in printed


@pytest.mark.slow  # about 40 s: a fresh child process per phase and round
@pytest.mark.skipif(not _postgres_reachable(), reason=f"no PostgreSQL at {POSTGRES_URI}")
def test_postgres_copy_baseline_moves_every_row_and_drops_its_table(bench, tmp_path: Path) -> None:
    import psycopg2

    figures = tmp_path / "figures.json"
    argv = ["--sizes", "3000", "--bad", "0,0.01", "--workdir", str(tmp_path / "work"), "--json", str(figures),
            "--postgres-uri", POSTGRES_URI, "--repeat", "2"]  # fmt: skip
    assert bench.main(argv) == 0
    for run in json.loads(figures.read_text())["runs"]:
        typed = run["bad_fraction"] == 0  # a typed COPY would refuse the file's unparseable numbers
        for name in ("pg_copy_in", "pg_copy_out"):
            phase = run["phases"][name]
            assert phase["error"] is None and phase["rows"] == 3000, name
            assert phase["details"]["typed"] is typed
            assert len(phase["rounds"]) == 2 and None not in phase["rounds"], name  # the table dropped each round
        assert run["accounting"]["rounds_disagree"] == []
    with psycopg2.connect(POSTGRES_URI) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_tables WHERE tablename = %s", (f"flywheel_bench_{os.getpid()}",))
        assert cursor.fetchone()[0] == 0
    conn.close()


def test_rounds_combine_to_median_seconds_and_max_peak(bench) -> None:
    assert bench.median_spread([3.0, 1.0, 2.0]) == (2.0, 1.0, 3.0)
    assert bench.median_spread([4.0, 1.0]) == (2.5, 1.0, 4.0)
    with pytest.raises(ValueError):
        bench.median_spread([])
    # Paired within a round: the median of the sums, not the sum of the medians (2 + 2 = 4 here).
    ingest, validate = [1.0, 2.0, 9.0], [9.0, 2.0, 1.0]
    assert bench.paired_sums(ingest, validate) == [10.0, 4.0, 10.0]
    assert bench.median_spread(bench.paired_sums(ingest, validate))[0] == 10.0
    with pytest.raises(ValueError):
        bench.paired_sums([1.0], [1.0, 2.0])
    assert bench.round_shares([50.0, None, 30.0], [100.0, 100.0, None]) == [0.5, None, None]

    phase = bench.PhaseResult
    rounds = [phase("floor", rows=10, seconds=s, peak_rss_mib=m, details={"typed": True, "import_seconds": i})
              for s, m, i in ((1.0, 50.0, 0.3), (6.0, 70.0, 0.1), (2.0, 60.0, 0.2))]  # fmt: skip
    combined = bench.combine_rounds("floor", rounds)
    assert (combined.seconds, combined.peak_rss_mib, combined.rows) == (2.0, 70.0, 10)
    assert combined.rows_per_s == 5.0
    assert (combined.rounds, combined.rounds_peak_rss_mib) == ([1.0, 6.0, 2.0], [50.0, 70.0, 60.0])
    assert combined.details == {"typed": True, "import_seconds": 0.2} and combined.error is None
    assert "median of 3: 1.00-6.00 s" in bench._note(combined)

    failed = [rounds[0], phase("floor", peak_rss_mib=90.0, error="exit 1: boom"), rounds[2]]
    combined = bench.combine_rounds("floor", failed)
    assert combined.error == "round 2/3: exit 1: boom" and combined.seconds is None
    assert combined.rounds == [1.0, None, 2.0] and combined.peak_rss_mib == 90.0
    assert bench._note(combined).startswith("FAILED: round 2/3: exit 1: boom")
    assert bench.combine_rounds("validate", [None, None]) is None
    assert bench.combine_rounds("validate", [rounds[0], None]).error.startswith("round 2/2: not run")


def _round(bench, ingest: float, validate: float, floor: float, quarantined: int = 5) -> dict:
    phase = bench.PhaseResult
    summary = {"status": "partially_quarantined", "rows_validated": 100 - quarantined,
               "rows_quarantined": quarantined, "reasons": {"r": quarantined}, "partition_failures": []}  # fmt: skip
    return {
        "floor": phase("floor", rows=100, seconds=floor, peak_rss_mib=10.0),
        "checks": phase("checks", rows=100, seconds=0.1, peak_rss_mib=10.0,
                    details={"failing_rows": quarantined, "reasons": {"r": quarantined}}),
        "ingest": phase("ingest", rows=100, seconds=ingest, peak_rss_mib=20.0),
        "validate": phase("validate", rows=100, seconds=validate, peak_rss_mib=30.0 + ingest, details=summary),
        "single_pass": phase("single_pass", rows=100, seconds=ingest, peak_rss_mib=40.0, details=dict(summary)),
    }


def test_run_pairs_rounds_and_checks_accounting_in_every_round(bench) -> None:
    rounds = [_round(bench, 1.0, 9.0, 1.0), _round(bench, 2.0, 2.0, 2.0), _round(bench, 9.0, 1.0, 4.0)]
    run = bench.Run(100, 0.05, {}, {"bad_rows": 5}, rounds=rounds)
    e2e = run.end_to_end()
    assert e2e.rounds == [10.0, 4.0, 10.0] and e2e.seconds == 10.0 and e2e.rows == 100
    assert e2e.rounds_peak_rss_mib == [31.0, 32.0, 39.0] and e2e.peak_rss_mib == 39.0
    assert run.floor_shares("ingest+validate") == pytest.approx([0.1, 0.5, 0.4])
    assert run.floor_shares("single_pass") == pytest.approx([1.0, 1.0, 4 / 9])
    accounting = run.accounting()
    assert accounting["rows_add_up"] and accounting["quarantined_equals_generated_bad"]
    assert accounting["single_pass_same_as_two_stages"] and accounting["checks_reasons_equal_validation"]
    assert accounting["rounds"] == 3 and accounting["rounds_disagree"] == []

    # One round's validation quarantines a row more: its checks fail, and the rounds disagree.
    rounds[1] = _round(bench, 2.0, 2.0, 2.0, quarantined=6)
    rounds[1]["checks"].details = {"failing_rows": 5, "reasons": {"r": 5}}
    run = bench.Run(100, 0.05, {}, {"bad_rows": 5}, rounds=rounds)
    accounting = run.accounting()
    assert accounting["rows_quarantined"] == 5  # the first round's count, with the difference reported
    assert accounting["rows_add_up"] is True
    assert accounting["quarantined_equals_generated_bad"] is False
    assert accounting["checks_reasons_equal_validation"] is False
    assert accounting["single_pass_same_as_two_stages"] is True  # that round's single pass said 6 too
    assert any(d.startswith("validate: round 2 differs from round 1 in reasons, rows_quarantined")
               for d in accounting["rounds_disagree"])  # fmt: skip
    assert any(d.startswith("single pass: round 2 differs") for d in accounting["rounds_disagree"])
    report = "\n".join(bench.report_lines(run))
    assert "quarantined = generated bad rows (5): NO" in report
    assert "the same in every round: NO: validate: round 2 differs from round 1" in report

    # A failed round: the pair is FAILED with that round's error; no median over the rounds left.
    rounds[2]["validate"] = bench.PhaseResult("validate", peak_rss_mib=50.0, error="exit 1: boom")
    e2e = bench.Run(100, 0.05, {}, {"bad_rows": 5}, rounds=rounds).end_to_end()
    assert e2e.error == "round 3/3: validate: exit 1: boom" and e2e.seconds is None and e2e.peak_rss_mib == 50.0


def test_repeat_must_be_positive(bench) -> None:
    assert bench.parse_args([]).repeat == 3
    with pytest.raises(SystemExit):
        bench.parse_args(["--repeat", "0"])


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
