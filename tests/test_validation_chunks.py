"""Chunked validation: the arrow engine gives exactly GX's outcomes, and chunk boundaries change nothing.

Every comparison validates the same raw partition several times (engines ``arrow`` and ``gx``;
chunks of 1, 7 and the default rows) and compares everything a reader sees: the ledger summary,
the validated and quarantined zones (rows, dtypes, reasons), the report's expectation rows and
its failing-row sample, the manifests' counts (timestamps, run and commit ids aside).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os

import numpy as np
import pandas as pd
import pytest

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

from corpus.corpus_cases import DAY as CORPUS_DAY
from corpus.corpus_cases import cases
from mlflywheel import validation
from mlflywheel.datasets import get_spec
from mlflywheel.datasets.landing import land_bytes
from mlflywheel.datasets.spec import Expectation
from mlflywheel.datasets.upstreams.faults import apply_fault
from mlflywheel.datasets.upstreams.transactions import CURRENCIES, TRANSACTIONS, generate_day
from mlflywheel.ingest import ingest_partition
from mlflywheel.lake import LocalLake, frame_to_parquet
from mlflywheel.validation import uniqueness

DAY = dt.date(2026, 11, 3)
VOLATILE = ("validated_at", "report_key", "commit", "run_id", "published_at", "version")


@pytest.fixture(scope="module", autouse=True)
def _warm_gx() -> None:
    validation.suite._batch_definition()


def raw_frame(spec, rows: int, seed: int) -> pd.DataFrame:
    """A raw partition as ingest writes it, from the generated day of the transactions spec."""
    frame = generate_day(DAY, rows, seed=seed)
    frame["_row"] = np.arange(rows, dtype="int64")
    frame["_coercion_errors"] = pd.Series([None] * rows, dtype=object)
    return frame


def write_raw(lake: LocalLake, spec, frame: pd.DataFrame) -> None:
    lake.publish_partition(
        "raw", spec.name, DAY, {"data.parquet": frame_to_parquet(frame.reset_index(drop=True))},
        meta={"rows_in": len(frame), "run_id": "r", "source_sha256": "0" * 64},
    )  # fmt: skip


def observe(lake: LocalLake, spec, day: dt.date = DAY, **kwargs) -> dict:
    """Validate and return everything a reader sees, without what changes run to run."""
    summary = validation.validate_partition(lake, spec, day, run_id="r", **kwargs)
    seen: dict = {"summary": {k: v for k, v in summary.items() if k not in VOLATILE}}
    for zone in ("validated", "quarantine"):
        manifest = lake.manifest(zone, spec.name, day)
        if manifest is None:
            seen[zone] = None
            continue
        frame = lake.read_frame(zone, spec.name, day)
        seen[zone] = {
            "manifest": {k: v for k, v in manifest.items() if k not in VOLATILE},
            "dtypes": {c: str(t) for c, t in frame.dtypes.items()},
            "rows": frame.astype(object).where(frame.notna(), None).to_dict("records"),
        }
    report = lake.get_json(summary["report_key"].replace("report.html", "summary.json"))
    seen["expectations"] = report["expectations"]
    page = lake.get_bytes(summary["report_key"]).decode()
    seen["sample"] = page[page.index("Failing rows") :]
    return seen


def assert_same_everywhere(lake: LocalLake, spec, day: dt.date = DAY, *, chunk_rows=(1, 7), gx_chunks=(None,)) -> dict:
    reference = observe(lake, spec, day, engine="arrow")
    for rows in gx_chunks:
        kwargs = {} if rows is None else {"chunk_rows": rows}
        assert observe(lake, spec, day, engine="gx", **kwargs) == reference, f"gx engine, chunks of {rows}"
    for rows in chunk_rows:
        assert observe(lake, spec, day, engine="arrow", chunk_rows=rows) == reference, f"arrow, chunks of {rows}"
    return reference


# --- the bad-input corpus ----------------------------------------------------------------------------

CORPUS = cases()


@pytest.mark.slow  # every corpus case, both engines, three chunk sizes: about a minute
@pytest.mark.parametrize("case", CORPUS, ids=[c.name for c in CORPUS])
def test_corpus_case_same_for_both_engines_and_any_chunks(tmp_path, case):
    lake = LocalLake(tmp_path / "lake")
    land_bytes(lake, case.spec, CORPUS_DAY, case.data)
    ingest_partition(lake, case.spec, CORPUS_DAY, run_id="r")
    if lake.manifest("raw", case.spec.name, CORPUS_DAY) is None:
        pytest.skip("ingest quarantined the whole file: nothing to validate")
    seen = assert_same_everywhere(lake, case.spec, CORPUS_DAY, chunk_rows=(1, 7))
    assert seen["summary"]["status"] == case.status


# --- generated days with injected faults ---------------------------------------------------------------


@pytest.mark.parametrize(
    "fault", ["missing_column", "extra_column", "wrong_types", "out_of_range", "duplicate_ids", "nulls", "empty"]
)
@pytest.mark.parametrize("dataset", ["transactions", "loans"])
def test_injected_faults_same_for_both_engines_and_any_chunks(tmp_path, fault, dataset):
    spec = get_spec(dataset)
    if fault == "duplicate_ids" and spec.id_column is None:
        pytest.skip("no id column")
    lake = LocalLake(tmp_path / "lake")
    base = raw_frame(spec, 60, seed=3) if dataset == "transactions" else None
    if base is None:  # loans: a raw frame through ingest from a CSV of the spec's columns
        from mlflywheel.datasets.landing import frame_to_csv_bytes
        from mlflywheel.datasets.upstreams.csv_replay import generate_loans_csv

        csv_path = generate_loans_csv(tmp_path / "loans.csv", days=1, rows_per_day=60, seed=3, start=DAY)
        clean = pd.read_csv(csv_path)
        bad = apply_fault(clean, fault, seed=5, fraction=0.1, spec=spec)
        land_bytes(lake, spec, DAY, frame_to_csv_bytes(bad))
        ingest_partition(lake, spec, DAY, run_id="r")
    else:
        bad = apply_fault(base.drop(columns=["_row", "_coercion_errors"]), fault, seed=5, fraction=0.1, spec=spec)
        if fault == "wrong_types":  # as ingest leaves them: null value, original text kept
            column = next(c for c in bad.columns if bad[c].dtype == object and c == "amount")
            texts = bad[column].map(lambda v: v if isinstance(v, str) else None)
            bad[column] = pd.to_numeric(bad[column], errors="coerce")
            bad["_coercion_errors"] = texts.map(lambda t: None if t is None else json.dumps({column: t}))
        bad["_row"] = np.arange(len(bad), dtype="int64")
        if "_coercion_errors" not in bad:
            bad["_coercion_errors"] = pd.Series([None] * len(bad), dtype=object)
        write_raw(lake, spec, bad)
    assert_same_everywhere(lake, spec, chunk_rows=(1, 7), gx_chunks=(None, 7))


# --- random frames ----------------------------------------------------------------------------------------


def damaged_frame(seed: int) -> pd.DataFrame:
    """A raw transactions frame with a random mix of every row fault, a few rows each."""
    rng = np.random.default_rng(seed)
    rows = int(rng.integers(20, 120))
    frame = raw_frame(TRANSACTIONS, rows, seed=seed)
    pick = lambda k: rng.choice(rows, size=min(k, rows), replace=False)
    frame.loc[pick(int(rng.integers(0, 4))), "amount"] = rng.choice([-5.0, 1e9, np.inf, np.nan])
    frame.loc[pick(int(rng.integers(0, 4))), "customer_id"] = None
    frame.loc[pick(int(rng.integers(0, 3))), "currency"] = rng.choice(["XXX", CURRENCIES[0], ""])
    frame.loc[pick(int(rng.integers(0, 3))), "is_fraud"] = int(rng.choice([2, -1, 1]))
    frame.loc[pick(int(rng.integers(0, 3))), "event_time"] = pd.Timestamp(DAY, tz="UTC") + pd.Timedelta(
        hours=float(rng.choice([-1, 24, 23.5, 0]))
    )
    for target in pick(int(rng.integers(0, 4))):  # duplicates, anywhere in the partition
        frame.loc[target, "transaction_id"] = frame.loc[int(rng.integers(0, rows)), "transaction_id"]
    bad_types = pick(int(rng.integers(0, 3)))
    frame.loc[bad_types, "account_age_days"] = pd.NA
    frame.loc[bad_types, "_coercion_errors"] = json.dumps({"account_age_days": "1e30"})
    frame.loc[pick(int(rng.integers(0, 3))), "customer_id"] = rng.choice(["=cmd|x", "@SUM(1)", "x" * 60, "ok"])
    if rng.random() < 0.15:
        frame["promo"] = "p"
    if rng.random() < 0.1:
        frame = frame.drop(columns=["channel"])
    return frame


@pytest.mark.slow  # about 45 s; the injected faults below keep both engines in the fast lane
@pytest.mark.parametrize("seed", range(12))
def test_random_frames_same_for_both_engines_and_any_chunks(tmp_path, seed):
    ruled = dataclasses.replace(TRANSACTIONS, max_text_length=40, reject_formulas=True)
    lake = LocalLake(tmp_path / "lake")
    write_raw(lake, ruled, damaged_frame(seed))
    fraction = float(np.random.default_rng(seed).choice([0.05, 0.2, 1.0]))
    reference = observe(lake, ruled, engine="arrow", max_failed_row_fraction=fraction)
    assert observe(lake, ruled, engine="gx", max_failed_row_fraction=fraction) == reference
    assert observe(lake, ruled, engine="gx", chunk_rows=7, max_failed_row_fraction=fraction) == reference
    for rows in (1, 7, 50):
        assert observe(lake, ruled, engine="arrow", chunk_rows=rows, max_failed_row_fraction=fraction) == reference


def test_extra_expectations_go_to_gx_and_mostly_is_decided_over_the_partition(tmp_path):
    extras = (
        # a type the arrow engine does not implement: GX on each chunk, for that expectation only
        Expectation.rows(
            "expect_column_values_to_match_regex", "customer_id is not c-<n>", column="customer_id", regex=r"^c-\d+$"
        ),
        # mostly: passes over the whole partition although some chunks are all failures
        Expectation.rows("expect_column_values_to_be_between", "amount above 400", column="amount", max_value=400,
                         mostly=0.5),
        Expectation.rows("expect_column_values_to_be_between", "amount above 450 (strict)", column="amount",
                         max_value=450, mostly=0.99),
    )  # fmt: skip
    spec = dataclasses.replace(TRANSACTIONS, extra_expectations=extras)
    frame = raw_frame(spec, 80, seed=9)
    frame.loc[[3, 40], "customer_id"] = ["cust 3", "c-x"]
    lake = LocalLake(tmp_path / "lake")
    write_raw(lake, spec, frame)
    seen = assert_same_everywhere(lake, spec, chunk_rows=(1, 7), gx_chunks=(None, 7))
    reasons = seen["summary"]["reasons"]
    assert reasons["customer_id is not c-<n>"] == 2
    assert "amount above 400" not in reasons  # mostly=0.5 holds over the partition
    over_450 = int((frame["amount"] > 450).sum())
    assert 0 < over_450 and reasons.get("amount above 450 (strict)") == over_450  # mostly=0.99 does not


# --- uniqueness across chunks ---------------------------------------------------------------------------------


def test_duplicates_in_different_chunks_quarantine_every_copy(tmp_path):
    frame = raw_frame(TRANSACTIONS, 50, seed=4)
    frame.loc[49, "transaction_id"] = frame.loc[0, "transaction_id"]
    lake = LocalLake(tmp_path / "lake")
    write_raw(lake, TRANSACTIONS, frame)
    summary = validation.validate_partition(lake, TRANSACTIONS, DAY, run_id="r", chunk_rows=10)
    assert summary["reasons"] == {"duplicate transaction_id": 2}
    assert sorted(lake.read_frame("quarantine", TRANSACTIONS.name, DAY)["_row"]) == [0, 49]


def test_a_hash_collision_does_not_quarantine_a_unique_id(tmp_path, monkeypatch):
    frame = raw_frame(TRANSACTIONS, 40, seed=6)
    frame.loc[30, "transaction_id"] = frame.loc[2, "transaction_id"]  # one true duplicate
    lake = LocalLake(tmp_path / "lake")
    write_raw(lake, TRANSACTIONS, frame)
    honest = observe(lake, TRANSACTIONS, engine="arrow", chunk_rows=7)

    calls = []

    def colliding(values):  # every id hashes alike: all are candidates, only exact values decide
        calls.append(len(values))
        return np.zeros(len(values), dtype=np.uint64)

    monkeypatch.setattr(uniqueness, "hash_ids", colliding)
    for engine in ("arrow", "gx"):
        assert observe(lake, TRANSACTIONS, engine=engine, chunk_rows=7) == honest
    assert calls, "the injected hash was used"
    assert honest["summary"]["reasons"] == {"duplicate transaction_id": 2}


def test_find_duplicate_ids_exact_values():
    import pyarrow as pa

    chunks = [pa.array(["a", "b", None]), pa.array(["c", "a", None]), pa.array(["d"])]
    found = uniqueness.find_duplicate_ids(lambda: iter(chunks))
    assert found.values == {"a"}
    assert found.mask(pa.array(["a", "b", None, "d"])).tolist() == [True, False, False, False]


def test_an_id_hashes_alike_in_any_chunk_layout():
    """Ids are hashed from Arrow's buffers: the hash is the value's, not its chunk's (offsets,
    neighbours' lengths, string or large_string), and different values differ here."""
    import pyarrow as pa

    ids = ["", "a", "abcdefgh", "abcdefghi", "abcdefgh\x00", "abcdefgi", "é" * 10, "tx20261102-0000000001", "x" * 200]
    alone = uniqueness.hash_ids(pa.array(ids))
    assert len(set(alone.tolist())) == len(ids)
    for i, value in enumerate(ids):
        for layout in (
            pa.array(["zz", value, "q" * 37]).slice(1, 1),  # an offset into a buffer of other lengths
            pa.array([value, value]),  # one length throughout
            pa.array([value], type=pa.large_string()),
            pa.chunked_array([pa.array(["y"]), pa.array([value])]).combine_chunks().slice(1),
        ):
            assert uniqueness.hash_ids(layout)[0] == alone[i], (value, layout)
    assert uniqueness.hash_ids(pa.array(["y" * 300]))[0] == uniqueness.hash_ids(pa.array(["z", "y" * 300]))[1]


def test_membership_of_hashes_is_isin():
    rng = np.random.default_rng(3)
    hashes = rng.integers(0, 2**64, size=20_000, dtype=np.uint64)
    near = hashes[:50] ^ np.uint64(1)  # same top bits as rows, other values: the table alone would err
    extremes = np.array([0, 2**64 - 1, 2**63], dtype=np.uint64)
    hashes = np.concatenate([hashes, extremes])
    for repeated in (np.unique(np.concatenate([hashes[::97], near, extremes[:1]])), np.empty(0, dtype=np.uint64)):
        assert uniqueness._among(hashes, repeated).tolist() == np.isin(hashes, repeated).tolist()


def test_duplicate_ids_found_across_chunks_of_other_lengths_and_types():
    import pyarrow as pa

    chunks = [pa.array(["tx-1", "tx-22", None]), pa.array(["tx-22", "tx-333"]), pa.array(["tx-1"], type=pa.large_string())]
    found = uniqueness.find_duplicate_ids(lambda: iter(chunks))
    assert found.values == {"tx-1", "tx-22"}
    assert found.mask(pa.array([None, "tx-333", "tx-22"])).tolist() == [False, False, True]
    numbers = [pa.array([1, 2, None]), pa.array([3, 2])]
    assert uniqueness.find_duplicate_ids(lambda: iter(numbers)).values == {2}


@pytest.mark.parametrize(
    ("rows", "unique"),
    [
        ([0, 1, 2, 3, 4, 5, 6, 7, 8, 9], True),  # as ingest writes them: no sort needed
        ([9, 8, 7, 6, 5, 4, 3, 2, 1, 0], True),  # unique, not in order: sorted to be sure
        ([0, 1, 2, 5, 3, 4, 6, 7, 8, 9], True),  # out of order across a chunk boundary (chunks of 3)
        ([0, 1, 2, 3, 4, 5, 6, 7, 8, 2], False),  # a repeat in a later chunk
        ([0, 1, 1, 3, 4, 5, 6, 7, 8, 9], False),  # a repeat inside a chunk
        ([0, 1, 2, 2, 4, 5, 6, 7, 8, 9], False),  # a repeat across a chunk boundary
    ],
)
def test_row_ids_must_tell_rows_apart_whatever_their_order(tmp_path, rows, unique):
    frame = raw_frame(TRANSACTIONS, 10, seed=8)
    frame["_row"] = np.array(rows, dtype="int64")
    lake = LocalLake(tmp_path / "lake")
    write_raw(lake, TRANSACTIONS, frame)
    if unique:
        summary = validation.validate_partition(lake, TRANSACTIONS, DAY, run_id="r", chunk_rows=3)
        assert summary["rows_in"] == 10
    else:
        with pytest.raises(validation.ValidationError, match="duplicate _row"):
            validation.validate_partition(lake, TRANSACTIONS, DAY, run_id="r", chunk_rows=3)


def test_the_zones_keep_the_raw_and_schema_types_with_nulls_in_every_chunk(tmp_path):
    frame = raw_frame(TRANSACTIONS, 30, seed=2)
    frame["distance_from_home_km"] = np.nan  # a nullable column entirely null
    frame.loc[[5, 22], "currency"] = "XXX"
    lake = LocalLake(tmp_path / "lake")
    write_raw(lake, TRANSACTIONS, frame)
    validation.validate_partition(lake, TRANSACTIONS, DAY, run_id="r", chunk_rows=4)
    validated = lake.read_frame("validated", TRANSACTIONS.name, DAY)
    good = frame.drop(index=[5, 22]).reset_index(drop=True)
    pd.testing.assert_frame_equal(validated, validation.to_schema_types(good, TRANSACTIONS))
    quarantined = lake.read_frame("quarantine", TRANSACTIONS.name, DAY)
    expected = frame.loc[[5, 22]].reset_index(drop=True)
    expected["_quarantine_reasons"] = "currency not in its vocabulary"
    pd.testing.assert_frame_equal(quarantined, expected)


def test_unknown_engine_is_refused(tmp_path):
    with pytest.raises(ValueError, match="engine"):
        validation.validate_partition(LocalLake(tmp_path), TRANSACTIONS, DAY, run_id="r", engine="spark")


@pytest.mark.parametrize("seed", [0, 3, 5, 7])
def test_the_whole_frame_verdict_agrees_with_the_streamed_one(tmp_path, seed):
    # judge / split_rows judge a frame held in memory (the PostgreSQL pushdown's path): same wording.
    from mlflywheel.validation import suite, verdict

    ruled = dataclasses.replace(TRANSACTIONS, max_text_length=40, reject_formulas=True)
    frame = damaged_frame(seed)
    lake = LocalLake(tmp_path / "lake")
    write_raw(lake, ruled, frame)
    streamed = validation.validate_partition(lake, ruled, DAY, run_id="r", chunk_rows=9)
    prepared = verdict.prepare(frame)
    result = suite.run_suite(verdict.suite_frame(prepared), suite.build_suite(ruled, DAY))
    judged = verdict.judge(ruled, prepared, verdict.outcomes(result, prepared), 0.2)
    split = verdict.split_rows(ruled, prepared, judged, where="t")
    whole = validation.partition_summary(ruled, DAY, split, judged, rows_in=len(frame), run_id="r")
    assert {k: v for k, v in whole.items() if k not in VOLATILE} == {
        k: v for k, v in streamed.items() if k not in VOLATILE
    }
    quarantined = lake.read_frame("quarantine", ruled.name, DAY)
    pd.testing.assert_frame_equal(quarantined, split.quarantined)


# --- vocabulary columns read dictionary-encoded (arrow engine) -------------------------------------------


def test_a_vocabulary_is_checked_alike_on_dictionary_and_plain_columns():
    import pyarrow as pa
    from mlflywheel.validation import engines

    value_set = ["EUR", "USD", ""]
    parts = [["EUR", None, "XXX", "USD", "EUR"], [None, None], ["", "usd", "EUR"], []]
    plain = pa.chunked_array([pa.array(p, type=pa.string()) for p in parts], type=pa.string())
    encoded = pa.chunked_array([pa.array(p, type=pa.string()).dictionary_encode() for p in parts])
    assert encoded.chunk(1).dictionary.to_pylist() == []  # an all-null chunk: an empty dictionary
    expected = engines._in_set(plain, value_set)
    assert expected.tolist() == [True, False, False, True, True, False, False, True, False, True]
    assert engines._in_set(encoded, value_set).tolist() == expected.tolist()
    assert engines._valid_mask(encoded).tolist() == engines._valid_mask(plain).tolist()


def test_a_dictionary_chunk_whose_every_value_is_in_the_set_passes_whole():
    import pyarrow as pa
    from mlflywheel.validation import engines

    parts = [["EUR", "USD", "EUR"], ["USD", None], ["EUR", "XXX"]]
    encoded = pa.chunked_array([pa.array(p, type=pa.string()).dictionary_encode() for p in parts])
    assert engines._in_set(encoded, ["EUR", "USD"]).tolist() == [True, True, True, True, False, True, False]


def test_range_checks_decided_by_minimum_and_maximum_agree_with_value_by_value(monkeypatch):
    """The shortcut (every value inside the bounds, from min and max) never hides a failing value:
    random int, float (NaN, nulls, infinities) and timestamp columns, bounds inside, outside and on
    the values, strict or not."""
    import pyarrow as pa
    from mlflywheel.validation import engines

    rng = np.random.default_rng(11)
    decided = []

    def reference(values, *bounds):
        with monkeypatch.context() as m:
            m.setattr(engines, "_all_between", lambda *a: False)
            return engines._between(values, *bounds)

    for case in range(400):
        kind = case % 3
        n = int(rng.integers(0, 12))
        if kind == 0:
            raw = rng.integers(-5, 6, n).tolist()
            values = pa.array(raw, type=pa.int64())
            pick = lambda: float(rng.integers(-6, 7)) / (2 if rng.random() < 0.3 else 1)
        elif kind == 1:
            raw = [float(x) for x in rng.normal(0, 3, n)]
            for i in range(n):
                roll = rng.random()
                raw[i] = float("nan") if roll < 0.08 else float("inf") if roll < 0.12 else raw[i]
            values = pa.array(raw, type=pa.float64())
            pick = lambda: float(np.round(rng.normal(0, 3), 1))
        else:
            base = int(np.datetime64("2026-11-02T00:00:00", "ns").astype(np.int64))
            hours = [base + int(x) * 3_600_000_000_000 for x in rng.integers(0, 30, n)]
            values = pa.array(hours, type=pa.int64()).cast(pa.timestamp("ns", tz="UTC"))
            pick = lambda: dt.datetime(2026, 11, int(rng.integers(1, 5)), int(rng.integers(0, 24)), tzinfo=dt.UTC)
        if n and rng.random() < 0.3:
            values = pa.array([None if rng.random() < 0.3 else v for v in values.to_pylist()], type=values.type)
        if rng.random() < 0.5:  # chunked, as the chunks' columns are
            values = pa.chunked_array([values.slice(0, n // 2), values.slice(n // 2)], type=values.type)
        low = None if rng.random() < 0.2 else pick()
        high = None if rng.random() < 0.2 else pick()
        strict_low, strict_high = bool(rng.random() < 0.5), bool(rng.random() < 0.5)
        expected = reference(values, low, high, strict_low, strict_high)
        decided.append(engines._all_between(values, low, high, strict_low, strict_high))
        got = engines._between(values, low, high, strict_low, strict_high)
        assert got.tolist() == expected.tolist(), (values, low, high, strict_low, strict_high)
        if decided[-1]:
            assert expected.all()
    assert 40 < sum(decided) < 360  # both paths taken


def test_only_string_columns_checked_by_vocabulary_and_nulls_alone_are_read_as_dictionaries():
    import pyarrow as pa
    from mlflywheel.validation import engines

    checks = engines.partition_checks(TRANSACTIONS, DAY)
    schema = pa.schema([(c.name, pa.string() if c.dtype == "string" else pa.int64()) for c in TRANSACTIONS.columns])
    chosen = engines.dictionary_columns(checks, schema)
    by_column: dict[str, set[str]] = {}
    for check in checks:
        by_column.setdefault(str(check.column), set()).add(check.type)
    assert chosen and set(chosen) <= {c.name for c in TRANSACTIONS.columns if c.categories}
    for name in chosen:
        assert by_column[name] <= {"expect_column_values_to_be_in_set", *engines.NULL_TYPES}
    id_column = TRANSACTIONS.id_column
    assert id_column not in chosen  # its uniqueness hashes the plain values
    ruled = dataclasses.replace(TRANSACTIONS, max_text_length=3)  # a length check needs plain values
    assert engines.dictionary_columns(engines.partition_checks(ruled, DAY), schema) == []


# --- ids that ingest found unique are not searched again -------------------------------------------------


def test_ids_ingest_recorded_unique_or_repeated_are_not_searched_again(tmp_path, monkeypatch):
    from mlflywheel.datasets.landing import land_frame
    from mlflywheel.lake import keys
    from mlflywheel.validation import streaming

    lake = LocalLake(tmp_path / "lake")
    land_frame(lake, TRANSACTIONS, DAY, generate_day(DAY, 300, seed=6))
    ingest_partition(lake, TRANSACTIONS, DAY, run_id="r", chunk_rows=64)
    manifest = lake.manifest("raw", TRANSACTIONS.name, DAY)
    assert manifest["unique_ids"] == [TRANSACTIONS.id_column]
    searched = []
    real_search = streaming.find_duplicate_ids
    monkeypatch.setattr(streaming, "find_duplicate_ids", lambda *a, **k: searched.append(1) or real_search(*a, **k))
    trusted = observe(lake, TRANSACTIONS, chunk_rows=50)
    assert searched == [] and trusted["summary"]["status"] == "validated"
    # the same partition without the record: searched, same result
    key = f"{keys.partition_prefix(keys.RAW, TRANSACTIONS.name, DAY)}/{keys.MANIFEST}"
    lake.put_bytes(key, json.dumps({k: v for k, v in manifest.items() if k != "unique_ids"}).encode())
    assert observe(lake, TRANSACTIONS, chunk_rows=50) == trusted and searched == [1]

    repeated = generate_day(DAY, 300, seed=6)
    repeated.loc[280, TRANSACTIONS.id_column] = repeated.loc[3, TRANSACTIONS.id_column]
    land_frame(lake, TRANSACTIONS, DAY, repeated)
    ingest_partition(lake, TRANSACTIONS, DAY, run_id="r", chunk_rows=64)
    assert lake.manifest("raw", TRANSACTIONS.name, DAY)["duplicate_ids"] == [TRANSACTIONS.id_column]
    recorded = observe(lake, TRANSACTIONS, chunk_rows=50)  # the recorded duplicates: no search either
    assert searched == [1] and recorded["summary"]["rows_quarantined"] == 2
    assert recorded["summary"]["reasons"] == {f"duplicate {TRANSACTIONS.id_column}": 2}
    manifest = lake.manifest("raw", TRANSACTIONS.name, DAY)
    lake.put_bytes(key, json.dumps({k: v for k, v in manifest.items() if k != "duplicate_ids"}).encode())
    assert observe(lake, TRANSACTIONS, chunk_rows=50) == recorded and searched == [1, 1]


# --- an all-good day's validated file is ingest's data file ---------------------------------------


def _republish_as_one_file(lake: LocalLake, spec, day: dt.date = DAY) -> None:
    """The day's raw partition again in the layout from before the meta file: one data file with
    every column (validation then writes the validated file itself)."""
    from mlflywheel.ingest import read_raw

    manifest = lake.manifest("raw", spec.name, day)
    kept = {k: manifest[k] for k in ("rows_in", "notes", "source_key", "source_sha256", "run_id") if k in manifest}
    frame = read_raw(lake, spec, day)
    lake.publish_partition("raw", spec.name, day, {"data.parquet": frame_to_parquet(frame)}, meta=kept)


def _inode(lake: LocalLake, zone: str, spec, day: dt.date = DAY) -> int:
    with lake.partition_local_file(zone, spec.name, day, "data.parquet") as path:
        return os.stat(path).st_ino


def _validated_schema(lake: LocalLake, spec, day: dt.date = DAY):
    import pyarrow.parquet as pq

    with lake.partition_local_file("validated", spec.name, day, "data.parquet") as path:
        return pq.read_schema(path)


@pytest.mark.parametrize("spec", [TRANSACTIONS, dataclasses.replace(TRANSACTIONS, id_column=None)], ids=["id", "no-id"])
def test_an_all_good_day_publishes_ingests_data_file_as_its_validated_file(tmp_path, spec):
    from mlflywheel.datasets.landing import land_frame

    lake = LocalLake(tmp_path / "lake")
    land_frame(lake, spec, DAY, generate_day(DAY, 500, seed=8))
    ingest_partition(lake, spec, DAY, run_id="r", chunk_rows=64)
    linked = observe(lake, spec, chunk_rows=50)
    assert linked["summary"]["status"] == "validated" and linked["summary"]["rows_validated"] == 500
    assert _inode(lake, "validated", spec) == _inode(lake, "raw", spec)  # the same file, not a copy
    linked_schema = _validated_schema(lake, spec)

    _republish_as_one_file(lake, spec)  # validation writes the validated file itself
    written = observe(lake, spec, chunk_rows=50)
    assert _inode(lake, "validated", spec) != _inode(lake, "raw", spec)
    assert written == linked  # rows, dtypes, manifests, report
    assert _validated_schema(lake, spec).equals(linked_schema, check_metadata=True)
    assert linked_schema.names == spec.column_names + (["_row_id"] if spec.id_column is None else [])


@pytest.mark.parametrize("bad_row", [0, 130, 260, 499])
def test_a_failing_row_after_unwritten_chunks_writes_them_first(tmp_path, bad_row):
    """Chunks that passed before the first failing row are written when it comes, in order."""
    from mlflywheel.datasets.landing import land_frame

    lake = LocalLake(tmp_path / "lake")
    frame = generate_day(DAY, 500, seed=9)
    frame.loc[bad_row, "currency"] = "XXX"
    land_frame(lake, TRANSACTIONS, DAY, frame)
    ingest_partition(lake, TRANSACTIONS, DAY, run_id="r", chunk_rows=64)
    seen = {rows: observe(lake, TRANSACTIONS, chunk_rows=rows) for rows in (1, 50, 64, 1000)}
    assert _inode(lake, "validated", TRANSACTIONS) != _inode(lake, "raw", TRANSACTIONS)
    reference = seen[50]
    assert all(other == reference for other in seen.values())
    assert reference["summary"]["rows_validated"] == 499 and reference["summary"]["rows_quarantined"] == 1
    ids = [r[TRANSACTIONS.id_column] for r in reference["validated"]["rows"]]
    assert ids == [i for n, i in enumerate(frame[TRANSACTIONS.id_column]) if n != bad_row]
    _republish_as_one_file(lake, TRANSACTIONS)
    assert observe(lake, TRANSACTIONS, chunk_rows=50) == reference


def test_a_meta_file_that_does_not_match_the_data_file_is_refused(tmp_path):
    import pyarrow.parquet as pq
    from mlflywheel.datasets.landing import land_frame

    lake = LocalLake(tmp_path / "lake")
    land_frame(lake, TRANSACTIONS, DAY, generate_day(DAY, 100, seed=10))
    ingest_partition(lake, TRANSACTIONS, DAY, run_id="r")
    manifest = lake.manifest("raw", TRANSACTIONS.name, DAY)
    with lake.partition_local_file("raw", TRANSACTIONS.name, DAY, "meta.parquet") as path:
        short = pq.read_table(path).slice(0, 60)
    files = {}
    for name in manifest["files"]:
        with lake.partition_local_file("raw", TRANSACTIONS.name, DAY, name) as path:
            files[name] = path.read_bytes()
    files["meta.parquet"] = frame_to_parquet(short.to_pandas())
    kept = {k: manifest[k] for k in ("rows_in", "unique_ids", "duplicate_ids") if k in manifest}
    lake.publish_partition("raw", TRANSACTIONS.name, DAY, files, meta=kept)
    with pytest.raises(validation.ValidationError, match="meta file has 60 rows, the data file 100"):
        validation.validate_partition(lake, TRANSACTIONS, DAY, run_id="r")
    assert lake.manifest("validated", TRANSACTIONS.name, DAY) is None


def test_aligned_pairs_cut_two_streams_at_the_nearer_end():
    import pyarrow as pa
    from mlflywheel.validation.streaming import _aligned

    def stream(sizes, name):
        start = 0
        for size in sizes:
            yield pa.table({name: list(range(start, start + size))})
            start += size

    pairs = list(_aligned(stream([50, 14, 0, 50, 14], "a"), stream([50, 50, 28], "b")))
    assert [len(a) for a, _ in pairs] == [50, 14, 36, 14, 14]
    assert all(a.column(0).to_pylist() == b.column(0).to_pylist() for a, b in pairs)
    with pytest.raises(validation.ValidationError, match="same rows"):
        list(_aligned(stream([10, 5], "a"), stream([10], "b")))
    with pytest.raises(validation.ValidationError, match="same rows"):
        list(_aligned(stream([10], "a"), stream([10, 1], "b")))
