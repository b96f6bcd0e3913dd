"""Ingest + validation: rows/s and peak memory per phase, beside three baselines measured in the same run.

For every partition size (``--sizes``) and fraction of bad rows (``--bad``) it generates a day of the
``transactions`` dataset (the project's spec, ``include/mlflywheel/datasets/specs/``) as CSV, chunk by
chunk straight into a local lake's landing zone with its ``_SUCCESS`` marker (seeded: the same file
every time), then runs, each phase in a fresh child process (peak RSS = the child's ``ru_maxrss``
from ``os.wait4``; seconds measured in the child around the work, imports not included):

* ``floor``: the pyarrow floor, streaming ``pyarrow.csv.open_csv`` of the landed CSV written back
  with ``pyarrow.parquet.ParquetWriter`` batch by batch (a row group each), with the writer options
  the pipeline's own files use (``mlflywheel.lake.PARQUET_WRITER_OPTIONS``); typed with the schema's
  types when the file is all good, as text otherwise (typed reading refuses an unparseable number);
* ``checks``: the same suite as plain vectorised pyarrow/numpy expressions over the streamed CSV
  (columns, not-null, ranges, vocabularies, unreadable values, the timestamp in the day, unique ids
  across the whole partition by 64-bit hashes): counts the failing rows, writes nothing;
* ``pg_copy_in`` / ``pg_copy_out``: ``COPY`` of the landed CSV into a scratch table of this
  machine's PostgreSQL, then ``COPY (SELECT ...) TO STDOUT`` back to a file, as the PostgreSQL
  source extracts a day (the table is dropped afterwards). Typed columns and the extract's query when
  the file is all good; text columns (no type checks, all rows back) otherwise, since a typed
  ``COPY`` refuses the whole file at the first unparseable number. RSS is the client's only;
* ``ingest`` and ``validate``: the project's public functions,
  ``mlflywheel.ingest.ingest_partition`` and ``mlflywheel.validation.validate_partition`` on the
  local lake, and ``ingest+validate`` their sum (peak: the larger of the two);
* ``single pass``: ``mlflywheel.validation.single_pass.validate_landed`` (``FLYWHEEL_KEEP_RAW=false``)
  on the same landed file: parse, cast, check and split straight into validated and quarantine, no
  raw zone; its summary must equal the two stages' (status, counts, reasons).

The timed phases (all but ``generate``, which runs once) run in ``--repeat`` rounds (default 3),
interleaved: round r runs every phase above, in that order, before round r+1 begins, so a slow spell
of a shared machine falls on all phases alike. The table gives each phase's median seconds (rows/s
from it) and the max peak RSS over the rounds, its note the rounds' range; ``ingest+validate`` is the
median of the per-round sums (both from the same round). Each round's share of that round's floor is
printed for ``ingest+validate`` and the single pass; the accounting is checked in every round.

The bad rows (``--bad``, a fraction of the rows, spread evenly over the file) cycle through six
kinds the suite catches: an unparseable number, a value out of range, a value not in its
vocabulary, a missing required value, a timestamp outside the day, a duplicate id. A duplicate takes
the id of the bad row just before it (a timestamp outside the day), so the quarantined rows equal
the generated bad rows whether a suite flags every copy of a duplicated id or only the later ones.

    PYTHONPATH=include python benchmarks/ingest_validation.py                      # 1M, 5M, 20M x 0%, 1%
    PYTHONPATH=include python benchmarks/ingest_validation.py --sizes 1000000 --json /tmp/iv.json
    PYTHONPATH=include python benchmarks/ingest_validation.py --sizes 20000 --postgres-uri ''  # no PostgreSQL
    PYTHONPATH=include python benchmarks/ingest_validation.py --sizes 1000000 --repeat 5     # 5 rounds

Targets (issue 11), printed beside the figures: peak memory under 1.5 GiB for any partition size;
ingest + validation of an all-good partition at >= 50% of the pyarrow floor's rows/s; >= 300k rows/s
end to end (ingest + validation) with 1% bad rows; each also for the single pass.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

DATASET = "transactions"
DAY = dt.date(2026, 11, 2)
SEED = 20261102
CHUNK_ROWS = 200_000  # rows generated and written at a time
BLOCK_BYTES = 16 << 20  # pyarrow CSV block of the baselines: about 170k rows, one row group each
DEFAULT_POSTGRES_URI = "postgresql://postgres@127.0.0.1:5432/postgres"

TARGET_PEAK_MIB = 1536.0
TARGET_FLOOR_SHARE = 0.50
TARGET_BAD_ROWS_PER_S = 300_000.0

KINDS = (
    "unparseable_number",
    "out_of_range",
    "not_in_vocabulary",
    "missing_value",
    "timestamp_outside_day",
    "duplicate_id",
)
PHASES = ("generate", "floor", "checks", "pg_copy_in", "pg_copy_out", "ingest", "validate", "single_pass")
PHASE_LABELS = {
    "generate": "generate CSV",
    "floor": "floor: pyarrow",
    "checks": "vectorised checks",
    "pg_copy_in": "pg COPY in",
    "pg_copy_out": "pg COPY out",
    "ingest": "ingest",
    "validate": "validate",
    "single_pass": "single pass",
    "ingest+validate": "ingest+validate",
}
# Values the suite refuses, per kind: (column, text), picked in turn.
UNPARSEABLE = (("amount", "12.5.3"), ("account_age_days", "abc"), ("txn_count_24h", "7 days"),
               ("distance_from_home_km", "12 km"), ("is_fraud", "yes"))  # fmt: skip
OUT_OF_RANGE = (("amount", "75000.25"), ("account_age_days", "-4"), ("txn_count_24h", "5000"),
                ("distance_from_home_km", "25000.5"), ("is_fraud", "2"))  # fmt: skip
NOT_IN_VOCABULARY = (("currency", "JPY"), ("merchant_category", "crypto"), ("country", "XX"), ("channel", "fax"))
MISSING = ("customer_id", "amount", "currency", "event_time", "account_age_days", "transaction_id")

_CHILD_START = time.perf_counter()


# --- the landed file --------------------------------------------------------------------------------


def bad_plan(rows: int, fraction: float, seed: int = SEED) -> tuple[Any, Any]:
    """Positions of the bad rows (sorted, spread over the file) and the kind of each (an index into
    :data:`KINDS`, in turn, so a duplicate always follows a bad row of another kind)."""
    import numpy as np

    count = round(rows * fraction)
    positions = np.sort(np.random.default_rng([seed, 1]).choice(rows, size=count, replace=False))
    return positions.astype(np.int64), np.arange(count) % len(KINDS)


def transaction_ids(positions: Any) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc

    digits = pc.utf8_lpad(pc.cast(pa.array(positions), pa.string()), width=10, padding="0")
    return pc.binary_join_element_wise(f"tx{DAY:%Y%m%d}-", digits, "")


def _texts(values: Any) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc

    return pc.cast(pa.array(values), pa.string())


def _chunk(spec: Any, start: int, count: int, rows: int, seed: int) -> dict[str, Any]:
    """Rows ``start .. start+count`` of the day as text columns (all good), from their own seed."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    rng = np.random.default_rng([seed, 2, start])
    positions = np.arange(start, start + count, dtype=np.int64)
    day_ms = int(dt.datetime.combine(DAY, dt.time(), dt.UTC).timestamp() * 1000)
    step = max(1, 86_400_000 // rows)
    times = day_ms + positions * 86_400_000 // rows + rng.integers(0, step, count)
    stamps = pc.cast(pa.array(times), pa.timestamp("ms", tz="UTC"))
    event_time = pc.binary_join_element_wise(pc.strftime(stamps, format="%Y-%m-%dT%H:%M:%S"), "Z", "")

    def pick(column: str, weights: list[float] | None = None) -> Any:
        vocabulary = list(spec.column(column).categories)
        p = None if weights is None else np.array(weights) / sum(weights)
        return pa.array(vocabulary).take(pa.array(rng.choice(len(vocabulary), count, p=p)))

    distance = np.round(rng.exponential(40.0, count), 1)
    distance_text = pc.if_else(pa.array(rng.random(count) < 0.05), pa.scalar(None, pa.string()), _texts(distance))
    customer = pc.utf8_lpad(_texts(rng.integers(0, 200_000, count)), width=7, padding="0")
    return {
        "transaction_id": transaction_ids(positions),
        "event_time": event_time,
        "customer_id": pc.binary_join_element_wise("c", customer, ""),
        "amount": _texts(np.minimum(np.round(rng.lognormal(3.5, 1.1, count), 2), 49_999.0)),
        "currency": pick("currency", [6, 3, 1]),
        "merchant_category": pick("merchant_category"),
        "country": pick("country"),
        "channel": pick("channel", [4, 3, 1, 2]),
        "account_age_days": _texts(rng.integers(0, 8_000, count)),
        "txn_count_24h": _texts(rng.poisson(3.0, count)),
        "distance_from_home_km": distance_text,
        "is_fraud": _texts((rng.random(count) < 0.012).astype(np.int64)),
    }


def _bad_cell(kind: int, turn: int, partner_id: str) -> tuple[str, str | None]:
    """The (column, text) that makes a row bad; None is an empty cell."""
    name = KINDS[kind]
    if name == "unparseable_number":
        return UNPARSEABLE[turn % len(UNPARSEABLE)]
    if name == "out_of_range":
        return OUT_OF_RANGE[turn % len(OUT_OF_RANGE)]
    if name == "not_in_vocabulary":
        return NOT_IN_VOCABULARY[turn % len(NOT_IN_VOCABULARY)]
    if name == "missing_value":
        return MISSING[turn % len(MISSING)], None
    if name == "timestamp_outside_day":
        before = dt.datetime.combine(DAY, dt.time(23, 59, 59, 500_000)) - dt.timedelta(days=1)
        return "event_time", (f"{before:%Y-%m-%dT%H:%M:%S}.500Z" if turn % 2 == 0 else f"{DAY + dt.timedelta(days=1)}T00:00:00.000Z")
    return "transaction_id", partner_id  # duplicate_id


def generate_landing(lake_dir: Path, rows: int, bad_fraction: float, *, seed: int = SEED,
                     chunk_rows: int = CHUNK_ROWS) -> dict[str, Any]:  # fmt: skip
    """Write the day's CSV chunk by chunk at the local lake's landing key, then its marker (the
    same document :func:`mlflywheel.datasets.landing.land_bytes` writes); never the whole table in
    memory. Returns the rows, the bad rows per kind, the file's bytes and SHA-256."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pcsv
    from mlflywheel.datasets import get_spec
    from mlflywheel.datasets.landing import landing_key, landing_marker_key
    from mlflywheel.lake import open_lake

    spec = get_spec(DATASET)
    lake = open_lake(str(lake_dir))
    key, marker = landing_key(spec, DAY), landing_marker_key(spec, DAY)
    path = Path(lake_dir) / key
    path.parent.mkdir(parents=True, exist_ok=True)
    lake.delete_prefix(marker)  # as land_bytes: never a new file under an old marker
    positions, kinds = bad_plan(rows, bad_fraction, seed)
    partner_ids = transaction_ids(np.concatenate([[0], positions[:-1]])).to_pylist() if len(positions) else []
    per_kind = dict.fromkeys(KINDS, 0)
    digest, size = hashlib.sha256(), 0
    header = (",".join(spec.column_names) + "\n").encode()
    options = pcsv.WriteOptions(include_header=False, quoting_style="none")
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as out:
        out.write(header)
        digest.update(header)
        size += len(header)
        for start in range(0, rows, chunk_rows):
            count = min(chunk_rows, rows - start)
            columns = _chunk(spec, start, count, rows, seed)
            lo, hi = np.searchsorted(positions, [start, start + count])
            overrides: dict[str, list[tuple[int, str | None]]] = {}
            for i in range(lo, hi):
                column, text = _bad_cell(int(kinds[i]), i // len(KINDS), partner_ids[i])
                overrides.setdefault(column, []).append((int(positions[i]) - start, text))
                per_kind[KINDS[int(kinds[i])]] += 1
            for column, cells in overrides.items():
                mask = np.zeros(count, dtype=bool)
                mask[[at for at, _ in cells]] = True
                texts = pa.array([text for _, text in sorted(cells)], pa.string())
                columns[column] = pc.replace_with_mask(columns[column], pa.array(mask), texts)
            sink = pa.BufferOutputStream()
            pcsv.write_csv(pa.table({name: columns[name] for name in spec.column_names}), sink, options)
            data = sink.getvalue().to_pybytes()
            out.write(data)
            digest.update(data)
            size += len(data)
    os.replace(tmp, path)
    marker_doc = {"file": path.name, "bytes": size, "sha256": digest.hexdigest(),
                  "landed_at": dt.datetime.now(dt.UTC).isoformat()}  # fmt: skip
    lake.put_bytes(marker, json.dumps(marker_doc, sort_keys=True).encode())
    return {"rows": rows, "bad_rows": len(positions), "bad_by_kind": per_kind, "bytes": size,
            "sha256": digest.hexdigest(), "path": str(path)}  # fmt: skip


# --- the phases (each in its own child process) --------------------------------------------------------


def _started() -> float:
    """Called after a phase's imports: records their time, returns the work's start."""
    _started.import_seconds = time.perf_counter() - _CHILD_START  # type: ignore[attr-defined]
    return time.perf_counter()


def _done(start: float, **result: Any) -> dict[str, Any]:
    return {"seconds": time.perf_counter() - start, "import_seconds": getattr(_started, "import_seconds", 0.0),
            **result}  # fmt: skip


def phase_generate(args: dict[str, Any]) -> dict[str, Any]:
    import numpy  # noqa: F401
    import pyarrow  # noqa: F401

    start = _started()
    generated = generate_landing(Path(args["lake"]), args["rows"], args["bad"], seed=args["seed"])
    return _done(start, **generated)


def _arrow_types(spec: Any, typed: bool) -> dict[str, Any]:
    import pyarrow as pa

    types = {"string": pa.string(), "int": pa.int64(), "float": pa.float64(), "datetime": pa.timestamp("ns", tz="UTC")}
    return {c.name: types[c.dtype] if typed else pa.string() for c in spec.columns}


def _open_csv(path: str, column_types: dict[str, Any]) -> Any:
    import pyarrow.csv as pcsv

    # Only the empty cell is null (as ingest reads text): "NA" is a word in a string column.
    convert = pcsv.ConvertOptions(column_types=column_types, null_values=[""], strings_can_be_null=True)
    return pcsv.open_csv(path, read_options=pcsv.ReadOptions(block_size=BLOCK_BYTES), convert_options=convert)


def phase_floor(args: dict[str, Any]) -> dict[str, Any]:
    """The pyarrow floor: stream the CSV, write Parquet a row group per batch."""
    import pyarrow.parquet as pq
    from mlflywheel.datasets import get_spec
    from mlflywheel.lake import PARQUET_WRITER_OPTIONS  # the lake's writer options: the same work

    spec = get_spec(DATASET)
    start = _started()
    reader = _open_csv(args["csv"], _arrow_types(spec, typed=args["typed"]))
    rows = row_groups = 0
    with pq.ParquetWriter(args["out"], reader.schema, **PARQUET_WRITER_OPTIONS) as writer:
        for batch in reader:
            writer.write_batch(batch)
            rows += batch.num_rows
            row_groups += 1
    return _done(start, rows=rows, row_groups=row_groups, typed=args["typed"],
                 parquet_bytes=os.path.getsize(args["out"]))  # fmt: skip


def _number_text(column: Any, integer: bool) -> tuple[Any, Any, Any]:
    """(null-or-NA-word mask, unreadable mask, values as float64) of a text column of numbers."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    from mlflywheel.datasets.cells import NA_WORDS

    trimmed = pc.utf8_trim_whitespace(column)
    empty = pc.or_(pc.is_null(trimmed), pc.fill_null(pc.is_in(trimmed, value_set=pa.array(sorted(NA_WORDS))), False))
    # An int is whole digits here (the project's rules also take "12.0" and "1e3"; this data has none).
    pattern = r"^[+-]?\d+$" if integer else r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"
    number = pc.fill_null(pc.match_substring_regex(trimmed, pattern), False)
    values = pc.cast(pc.if_else(number, trimmed, pa.scalar(None, pa.string())), pa.float64())
    finite = pc.fill_null(pc.is_finite(values), False).to_numpy(zero_copy_only=False)
    unreadable = ~np.asarray(empty) & ~finite
    return np.asarray(empty), unreadable, values.to_numpy(zero_copy_only=False)


def check_batch(spec: Any, batch: Any, counts: dict[str, int]) -> Any:
    """The suite's row-level checks on a batch of text columns, vectorised: the failing rows
    (a bool array) and, in ``counts``, rows per reason. Uniqueness is checked across batches by
    :func:`phase_checks`."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    from mlflywheel.lake import keys

    failed = np.zeros(batch.num_rows, dtype=bool)

    def fail(reason: str, mask: Any) -> None:
        nonlocal failed
        counts[reason] = counts.get(reason, 0) + int(mask.sum())
        failed |= mask

    unreadable_any = np.zeros(batch.num_rows, dtype=bool)
    for c in spec.columns:
        text = batch.column(c.name)
        if c.dtype == "string":
            missing = text.is_null().to_numpy(zero_copy_only=False)
            if c.categories:
                # A null is the not-null check's (as in Great Expectations, which skips it here).
                outside = pc.and_(pc.is_valid(text), pc.invert(pc.is_in(text, value_set=pa.array(list(c.categories)))))
                fail(f"{c.name} not in its vocabulary", outside.to_numpy(zero_copy_only=False))
        elif c.dtype == "datetime":
            iso = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:?\d\d)$"
            readable = pc.fill_null(pc.match_substring_regex(text, iso), False)
            empty = text.is_null().to_numpy(zero_copy_only=False)
            unreadable = ~empty & ~readable.to_numpy(zero_copy_only=False)
            stamps = pc.cast(pc.if_else(readable, text, pa.scalar(None, pa.string())), pa.timestamp("ms", tz="UTC"))
            unreadable_any |= unreadable
            missing = empty | unreadable
            if c.name == spec.timestamp_column:
                start, end = keys.day_bounds(DAY)
                outside = pc.or_(pc.less(stamps, pa.scalar(start, pa.timestamp("ms", tz="UTC"))),
                                 pc.greater_equal(stamps, pa.scalar(end, pa.timestamp("ms", tz="UTC"))))  # fmt: skip
                day = f"[{start.isoformat()}, {end.isoformat()})"
                fail(f"{c.name} outside the partition day {day}", pc.fill_null(outside, False).to_numpy(zero_copy_only=False))
        else:
            empty, unreadable, values = _number_text(text, integer=c.dtype == "int")
            unreadable_any |= unreadable
            missing = empty | unreadable
            with np.errstate(invalid="ignore"):
                outside = np.zeros(batch.num_rows, dtype=bool)
                if c.min is not None:
                    outside |= values < c.min
                if c.max is not None:
                    outside |= values > c.max
            if c.min is not None or c.max is not None:
                fail(f"{c.name} outside [{c.min}, {c.max}]", outside)
        if not c.nullable:
            fail(f"{c.name} is missing or not a valid {c.dtype}", missing)
    fail("value could not be read as its type", unreadable_any)
    return failed


def phase_checks(args: dict[str, Any]) -> dict[str, Any]:
    """The suite as vectorised expressions over the streamed CSV; ids unique across the partition."""
    import numpy as np
    import pandas as pd
    import pyarrow.compute as pc
    from mlflywheel.datasets import get_spec

    spec = get_spec(DATASET)
    start = _started()
    reader = _open_csv(args["csv"], _arrow_types(spec, typed=False))
    if sorted(reader.schema.names) != sorted(spec.column_names):
        return _done(start, rows=0, failing_rows=None, partition_failure="the columns differ from the schema")
    counts: dict[str, int] = {}
    failed_parts, hash_parts, present_parts = [], [], []
    for batch in reader:
        failed_parts.append(check_batch(spec, batch, counts))
        ids = batch.column(spec.id_column)
        present_parts.append(~ids.is_null().to_numpy(zero_copy_only=False))
        text = pc.fill_null(ids, "").to_numpy(zero_copy_only=False)
        hash_parts.append(pd.util.hash_array(text, categorize=False))
    failed = np.concatenate(failed_parts) if failed_parts else np.zeros(0, dtype=bool)
    hashes = np.concatenate(hash_parts) if hash_parts else np.zeros(0, dtype=np.uint64)
    present = np.concatenate(present_parts) if present_parts else np.zeros(0, dtype=bool)
    ordered = np.sort(hashes[present])
    repeated = np.unique(ordered[1:][ordered[1:] == ordered[:-1]])  # a 64-bit hash per id: collisions ~ n^2/2^65
    duplicate = present & np.isin(hashes, repeated)
    counts[f"duplicate {spec.id_column}"] = int(duplicate.sum())
    failed |= duplicate
    return _done(start, rows=len(failed), failing_rows=int(failed.sum()),
                 reasons={k: v for k, v in sorted(counts.items()) if v})  # fmt: skip


def _pg_types(spec: Any, typed: bool) -> list[tuple[str, str]]:
    types = {"string": "text", "int": "bigint", "float": "double precision", "datetime": "timestamptz"}
    return [(c.name, types[c.dtype] if typed else "text") for c in spec.columns]


def phase_pg_copy_in(args: dict[str, Any]) -> dict[str, Any]:
    """``COPY`` the landed CSV into a fresh scratch table (typed like the source's tables, with
    their index on the timestamp column; text when the file has unparseable values)."""
    import psycopg2
    from mlflywheel.datasets import get_spec
    from psycopg2 import sql

    spec = get_spec(DATASET)
    table = sql.Identifier(args["table"])
    start = _started()
    with psycopg2.connect(args["uri"]) as conn, conn.cursor() as cursor, open(args["csv"], "rb") as source:
        cursor.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table))
        columns = sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(t))
                                     for n, t in _pg_types(spec, args["typed"]))  # fmt: skip
        cursor.execute(sql.SQL("CREATE TABLE {} ({})").format(table, columns))
        if args["typed"]:
            cursor.execute(sql.SQL("CREATE INDEX ON {} ({})").format(table, sql.Identifier(spec.timestamp_column)))
        names = sql.SQL(", ").join(sql.Identifier(n) for n in spec.column_names)
        copy = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT csv, HEADER true)").format(table, names)
        cursor.copy_expert(copy, source, size=1 << 20)
        rows = cursor.rowcount
    return _done(start, rows=int(rows), typed=args["typed"])


def phase_pg_copy_out(args: dict[str, Any]) -> dict[str, Any]:
    """``COPY (SELECT ...) TO STDOUT`` of the scratch table to a file: the source extract's query
    (the day's window, ordered by id) for a typed table, every row for a text one."""
    import psycopg2
    from mlflywheel.datasets import get_spec
    from mlflywheel.lake import keys
    from psycopg2 import sql

    spec = get_spec(DATASET)
    start = _started()
    with psycopg2.connect(args["uri"]) as conn, conn.cursor() as cursor, open(args["out"], "wb") as out:
        cursor.execute("SET LOCAL TIME ZONE 'UTC'")
        cursor.execute("SET LOCAL extra_float_digits = 1")
        select = sql.SQL("SELECT {} FROM {}").format(
            sql.SQL(", ").join(sql.Identifier(n) for n in spec.column_names), sql.Identifier(args["table"])
        )
        if args["typed"]:
            select = sql.SQL("{} WHERE {ts} >= %s AND {ts} < %s ORDER BY {id}").format(
                select, ts=sql.Identifier(spec.timestamp_column), id=sql.Identifier(spec.id_column)
            )
            select = sql.SQL(cursor.mogrify(select, keys.day_bounds(DAY)).decode())
        else:
            select = sql.SQL("{} ORDER BY {}").format(select, sql.Identifier(spec.id_column))
        cursor.copy_expert(sql.SQL("COPY ({}) TO STDOUT WITH (FORMAT csv, HEADER true)").format(select), out,
                           size=1 << 20)  # fmt: skip
        rows = cursor.rowcount
    return _done(start, rows=int(rows), typed=args["typed"], csv_bytes=os.path.getsize(args["out"]))


def phase_ingest(args: dict[str, Any]) -> dict[str, Any]:
    from mlflywheel.datasets import get_spec
    from mlflywheel.ingest import ingest_partition
    from mlflywheel.lake import open_lake

    spec, lake = get_spec(DATASET), open_lake(args["lake"])
    start = _started()
    summary = ingest_partition(lake, spec, DAY, run_id=args["run_id"])
    return _done(start, rows=int(summary["rows_in"]), status=summary.get("status"),
                 coercion_errors=summary.get("coercion_errors"))  # fmt: skip


def phase_validate(args: dict[str, Any]) -> dict[str, Any]:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations  # noqa: F401  (its cold import takes seconds: not the phase's work)
    from mlflywheel.datasets import get_spec
    from mlflywheel.lake import open_lake
    from mlflywheel.validation import validate_partition

    spec, lake = get_spec(DATASET), open_lake(args["lake"])
    start = _started()
    summary = validate_partition(lake, spec, DAY, run_id=args["run_id"],
                                 max_failed_row_fraction=args["max_failed_row_fraction"])  # fmt: skip
    fields = ("status", "rows_in", "rows_validated", "rows_quarantined", "reasons", "partition_failures")
    return _done(start, rows=int(summary["rows_in"]), **{name: summary.get(name) for name in fields})


def phase_single_pass(args: dict[str, Any]) -> dict[str, Any]:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations  # noqa: F401  (its cold import takes seconds: not the phase's work)
    from mlflywheel.datasets import get_spec
    from mlflywheel.lake import open_lake
    from mlflywheel.validation.single_pass import validate_landed

    spec, lake = get_spec(DATASET), open_lake(args["lake"])
    start = _started()
    summary = validate_landed(lake, spec, DAY, run_id=args["run_id"],
                              max_failed_row_fraction=args["max_failed_row_fraction"])  # fmt: skip
    fields = ("status", "rows_in", "rows_validated", "rows_quarantined", "reasons", "partition_failures")
    return _done(start, rows=int(summary["rows_in"]), **{name: summary.get(name) for name in fields})


PHASE_FUNCTIONS = {
    "generate": phase_generate,
    "floor": phase_floor,
    "checks": phase_checks,
    "pg_copy_in": phase_pg_copy_in,
    "pg_copy_out": phase_pg_copy_out,
    "ingest": phase_ingest,
    "validate": phase_validate,
    "single_pass": phase_single_pass,
}


# --- the parent: children, their peak memory, the report -------------------------------------------------


@dataclasses.dataclass
class PhaseResult:
    phase: str
    rows: int | None = None
    seconds: float | None = None
    peak_rss_mib: float | None = None
    process_seconds: float | None = None  # the child's whole life: interpreter, imports, work, exit
    error: str | None = None
    details: dict[str, Any] = dataclasses.field(default_factory=dict)
    rounds: list[float | None] = dataclasses.field(default_factory=list)  # each round's seconds (None: failed)
    rounds_peak_rss_mib: list[float | None] = dataclasses.field(default_factory=list)

    @property
    def rows_per_s(self) -> float | None:
        if self.rows is None or not self.seconds:
            return None
        return self.rows / self.seconds


def _child_env() -> dict[str, str]:
    """The child imports this same mlflywheel (the parent's), offline."""
    import mlflywheel

    include = str(Path(mlflywheel.__file__).resolve().parents[1])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([include, *[p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]])
    env.setdefault("GX_ANALYTICS_ENABLED", "false")
    env.setdefault("DO_NOT_TRACK", "1")
    return env


def run_child(phase: str, args: dict[str, Any], run_dir: Path, *, timeout_s: float) -> PhaseResult:
    """Run one phase in a fresh interpreter; peak RSS from ``os.wait4``'s rusage (``ru_maxrss``, KiB)."""
    result_path = run_dir / f"{phase}.result.json"
    log_path = run_dir / f"{phase}.log"
    result_path.unlink(missing_ok=True)
    command = [sys.executable, str(Path(__file__).resolve()), "--phase", phase, "--phase-args", json.dumps(args),
               "--phase-result", str(result_path)]  # fmt: skip
    began = time.perf_counter()
    with open(log_path, "wb") as log:
        child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=_child_env())
        while True:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - began > timeout_s:
                child.kill()
                pid, status, usage = os.wait4(child.pid, 0)
                break
            time.sleep(0.05)
    child.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
    out = PhaseResult(phase, process_seconds=time.perf_counter() - began, peak_rss_mib=usage.ru_maxrss / 1024)
    if child.returncode != 0 or not result_path.exists():
        tail = log_path.read_text(errors="replace").strip().splitlines()[-3:]
        why = f"timed out after {timeout_s:.0f} s" if time.perf_counter() - began > timeout_s else f"exit {child.returncode}"
        out.error = f"{why}: {' | '.join(tail)[-400:]}"
        return out
    details = json.loads(result_path.read_text())
    out.rows, out.seconds = details.pop("rows", None), details.pop("seconds", None)
    out.details = details
    return out


def _drop_table(uri: str, table: str) -> None:
    import psycopg2
    from psycopg2 import sql

    try:
        conn = psycopg2.connect(uri, connect_timeout=10)
        conn.autocommit = True  # CHECKPOINT runs outside a transaction
        with conn.cursor() as cursor:
            cursor.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table)))
            # the server writes what the COPY left now, not in the background of the next phase
            cursor.execute("CHECKPOINT")
        conn.close()
    except psycopg2.Error as exc:
        print(f"   (could not drop scratch table {table}: {str(exc).strip().splitlines()[0]})", flush=True)


def settle(max_wait_s: float = 10.0, busy_below: float = 0.15) -> None:
    """Between phases, outside every timing: the dirty pages of the files a phase wrote go to disk
    now, so their write-back does not fall on the next phase (the generated CSV on the first
    floor, a stage's Parquet files on the next stage); then wait (up to ``max_wait_s``) until the
    CPUs are idle for 0.2 s (less than ``busy_below`` of them busy: what a phase left running in
    the background, PostgreSQL's after a COPY, say, is done), so every phase starts alike."""
    os.sync()
    deadline = time.monotonic() + max_wait_s
    while time.monotonic() < deadline and _cpu_busy(0.2) >= busy_below:
        pass


def _cpu_busy(window_s: float) -> float:
    """The fraction of all CPUs' time spent busy over ``window_s`` (``/proc/stat``; 0 elsewhere)."""

    def sample() -> tuple[int, int]:
        with open("/proc/stat") as fh:
            fields = [int(x) for x in fh.readline().split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        return sum(fields), idle

    try:
        total0, idle0 = sample()
        time.sleep(window_s)
        total1, idle1 = sample()
    except OSError:
        return 0.0
    return 0.0 if total1 == total0 else 1.0 - (idle1 - idle0) / (total1 - total0)


def median_spread(values: list[float]) -> tuple[float, float, float]:
    """(median, min, max) of the rounds' figures."""
    if not values:
        raise ValueError("no rounds")
    return statistics.median(values), min(values), max(values)


def paired_sums(first: list[float], second: list[float]) -> list[float]:
    """Round by round sums (``ingest_r + validate_r``): both halves from the same round, so their
    median is the median of real end-to-end times, not the sum of two medians from other rounds."""
    return [a + b for a, b in zip(first, second, strict=True)]


def round_shares(speeds: list[float | None], floor_speeds: list[float | None]) -> list[float | None]:
    """Per round: a phase's rows/s over the same round's floor's (None where either is missing)."""
    return [s / f if s and f else None for s, f in zip(speeds, floor_speeds, strict=True)]


# Details that differ between rounds by nature; everything else a phase reports must repeat.
VARYING_DETAILS = frozenset({"import_seconds"})


def combine_rounds(name: str, results: list[PhaseResult | None]) -> PhaseResult | None:
    """One phase over its rounds (None: it did not run that round): the median of the seconds, the
    max of the peak RSS; FAILED with the first failing round's error if any round failed or was not
    run. Rows and details are the first round's (:func:`rounds_disagree` reports any difference),
    the import time the median. None if the phase ran in no round."""
    if all(r is None for r in results):
        return None
    n = len(results)
    seconds = [None if r is None or r.error else r.seconds for r in results]
    peaks = [None if r is None else r.peak_rss_mib for r in results]
    known_peaks = [p for p in peaks if p is not None]
    peak = max(known_peaks) if known_peaks else None
    for i, result in enumerate(results, 1):
        if result is None or result.error or result.seconds is None:
            failed = result if result is not None else PhaseResult(name)
            why = failed.error or "not run: a phase it needs failed in this round"
            return dataclasses.replace(failed, error=f"round {i}/{n}: {why}", peak_rss_mib=peak, rounds=seconds,
                                       rounds_peak_rss_mib=peaks)  # fmt: skip
    first = results[0]
    details = dict(first.details)
    imports = [r.details.get("import_seconds") for r in results]
    if all(x is not None for x in imports):
        details["import_seconds"] = statistics.median(imports)
    processes = [r.process_seconds for r in results if r.process_seconds is not None]
    return PhaseResult(name, rows=first.rows, seconds=median_spread(seconds)[0], peak_rss_mib=peak,
                       process_seconds=statistics.median(processes) if processes else None, details=details,
                       rounds=seconds, rounds_peak_rss_mib=peaks)  # fmt: skip


def rounds_disagree(rounds: list[dict[str, PhaseResult]]) -> list[str]:
    """Where a phase's rows, status, counts or reasons (all its details but the import time) in a
    later round differ from the first round it succeeded in."""
    out = []
    for name in PHASES:
        ran = [(i, rd[name]) for i, rd in enumerate(rounds, 1) if name in rd and rd[name].error is None]
        for i, result in ran[1:]:
            first_round, first = ran[0]
            keys = {*first.details, *result.details} - VARYING_DETAILS
            differ = (["rows"] if result.rows != first.rows else []) + sorted(
                k for k in keys if first.details.get(k) != result.details.get(k)
            )
            if differ:
                out.append(f"{PHASE_LABELS[name]}: round {i} differs from round {first_round} in {', '.join(differ)}")
    return out


def round_accounting(phases: dict[str, PhaseResult], bad: int | None) -> dict[str, Any]:
    """One round's accounting: rows_in = validated + quarantined, quarantined = the generated bad
    rows, the single pass's summary = the two stages', the vectorised checks' reasons = validation's."""
    validate = phases.get("validate")
    checks = phases.get("checks")
    out: dict[str, Any] = {"generated_bad_rows": bad}
    if validate is not None and validate.error is None:
        d = validate.details
        out.update(rows_in=validate.rows, rows_validated=d.get("rows_validated"),
                   rows_quarantined=d.get("rows_quarantined"), status=d.get("status"))  # fmt: skip
        out["rows_add_up"] = validate.rows == (d.get("rows_validated") or 0) + (d.get("rows_quarantined") or 0)
        out["quarantined_equals_generated_bad"] = d.get("rows_quarantined") == bad
        single = phases.get("single_pass")
        if single is not None and single.error is None:
            fields = ("status", "rows_validated", "rows_quarantined", "reasons", "partition_failures")
            out["single_pass_same_as_two_stages"] = single.rows == validate.rows and all(
                single.details.get(f) == d.get(f) for f in fields
            )
    if checks is not None and checks.error is None:
        out["checks_failing_rows"] = checks.details.get("failing_rows")
        if validate is not None and validate.error is None:
            out["checks_reasons_equal_validation"] = checks.details.get("reasons") == validate.details.get("reasons")
    return out


@dataclasses.dataclass
class Run:
    rows: int
    bad_fraction: float
    phases: dict[str, PhaseResult]  # generate (once), then each timed phase over the rounds (combine_rounds)
    generated: dict[str, Any]
    rounds: list[dict[str, PhaseResult]] = dataclasses.field(default_factory=list)  # each round's own results

    def phase(self, name: str) -> PhaseResult | None:
        return self.phases.get(name)

    def end_to_end(self) -> PhaseResult:
        """ingest+validate: the median over rounds of ingest_r + validate_r (paired within a round),
        peak the max over rounds of both; FAILED with the first failing round's error."""
        out = PhaseResult("ingest+validate")
        n = len(self.rounds)
        ingest_s, validate_s, peaks = [], [], []
        for i, rd in enumerate(self.rounds, 1):
            parts = [p for p in (rd.get("ingest"), rd.get("validate")) if p is not None]
            rss = [p.peak_rss_mib for p in parts if p.peak_rss_mib is not None]
            peaks.append(max(rss) if rss else None)
            errors = [f"{p.phase}: {p.error}" for p in parts if p.error]
            if errors and out.error is None:
                out.error = f"round {i}/{n}: " + "; ".join(errors)
            if len(parts) == 2 and not errors and all(p.seconds is not None for p in parts):
                ingest_s.append(parts[0].seconds)
                validate_s.append(parts[1].seconds)
        known = [p for p in peaks if p is not None]
        out.peak_rss_mib = max(known) if known else None
        out.rounds_peak_rss_mib = peaks
        if n and len(ingest_s) == n:
            out.rounds = paired_sums(ingest_s, validate_s)
            out.rows, out.seconds = self.rounds[0]["ingest"].rows, median_spread(out.rounds)[0]
        else:
            out.rounds = [None] * n
        return out

    def floor_shares(self, name: str) -> list[float | None]:
        """Per round, ``name``'s rows/s (ingest+validate or single_pass) over that round's floor's."""
        floor = [rd["floor"].rows_per_s if "floor" in rd and not rd["floor"].error else None for rd in self.rounds]
        if name == "ingest+validate":
            e2e = self.end_to_end()
            rows = [rd["ingest"].rows if "ingest" in rd else None for rd in self.rounds]
            speeds = [r / s if r and s else None for r, s in zip(rows, e2e.rounds, strict=True)]
        else:
            speeds = [rd[name].rows_per_s if name in rd and not rd[name].error else None for rd in self.rounds]
        return round_shares(speeds, floor)

    def accounting(self) -> dict[str, Any]:
        """Each round's accounting (:func:`round_accounting`): a check holds only if it held in
        every round; counts are the first round's, and ``rounds_disagree`` lists any round whose
        rows, status, counts or reasons differ."""
        bad = self.generated.get("bad_rows")
        per_round = [round_accounting(rd, bad) for rd in self.rounds]
        if not per_round:
            return {"generated_bad_rows": bad}
        out: dict[str, Any] = {}
        for key, value in per_round[0].items():
            if all(key in a for a in per_round):  # a round whose phase failed: that check is not shown
                out[key] = all(a[key] for a in per_round) if isinstance(value, bool) else value
        out["rounds"] = len(per_round)
        out["rounds_disagree"] = rounds_disagree(self.rounds)
        return out

    def targets(self) -> list[tuple[str, bool | None, str]]:
        e2e, floor = self.end_to_end(), self.phases.get("floor")
        out = []
        peak = e2e.peak_rss_mib
        out.append((f"peak RSS of ingest and validate < {TARGET_PEAK_MIB:.0f} MiB",
                    None if peak is None or e2e.error else peak < TARGET_PEAK_MIB,
                    "n/a" if peak is None else f"{peak:,.0f} MiB"))  # fmt: skip
        single = self.phases.get("single_pass")
        if single is not None and single.peak_rss_mib is not None:
            out.append((f"peak RSS of the single pass < {TARGET_PEAK_MIB:.0f} MiB",
                        None if single.error else single.peak_rss_mib < TARGET_PEAK_MIB,
                        f"{single.peak_rss_mib:,.0f} MiB"))  # fmt: skip
        for name, result in (("ingest+validate", e2e), ("single pass", single)):
            if result is None:
                continue
            if self.bad_fraction == 0:
                share = None
                if result.rows_per_s and floor is not None and floor.rows_per_s:
                    share = result.rows_per_s / floor.rows_per_s
                out.append((f"{name} >= {TARGET_FLOOR_SHARE:.0%} of the pyarrow floor's rows/s (all good)",
                            None if share is None else share >= TARGET_FLOOR_SHARE,
                            "n/a" if share is None else f"{share:.1%}"))  # fmt: skip
            else:
                speed = result.rows_per_s
                out.append((f"{name} >= {TARGET_BAD_ROWS_PER_S:,.0f} rows/s (with bad rows)",
                            None if speed is None else speed >= TARGET_BAD_ROWS_PER_S,
                            "n/a" if speed is None else f"{speed:,.0f} rows/s"))  # fmt: skip
        return out

    def as_dict(self) -> dict[str, Any]:
        phases = {name: {**dataclasses.asdict(p), "rows_per_s": p.rows_per_s} for name, p in self.phases.items()}
        e2e = self.end_to_end()
        phases["ingest+validate"] = {**dataclasses.asdict(e2e), "rows_per_s": e2e.rows_per_s}
        return {
            "rows": self.rows,
            "bad_fraction": self.bad_fraction,
            "rounds": len(self.rounds),
            "generated": self.generated,
            "phases": phases,
            "floor_share_per_round": {name: self.floor_shares(name) for name in ("ingest+validate", "single_pass")},
            "accounting": self.accounting(),
            "targets": [{"target": t, "met": met, "measured": m} for t, met, m in self.targets()],
        }


def run_one(rows: int, bad: float, *, workdir: Path, postgres_uri: str, max_failed_row_fraction: float,
            timeout_s: float, keep: bool, seed: int = SEED, repeat: int = 1) -> Run:  # fmt: skip
    """Generate the file once, then ``repeat`` rounds of the timed phases, interleaved (round r runs
    every phase before round r+1 starts), so a slow spell of a shared machine spreads over all
    phases instead of landing on one; the report takes the medians."""
    run_dir = workdir / f"rows-{rows}-bad-{bad:g}"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    lake_dir = run_dir / "lake"
    run = Run(rows, bad, {}, {})
    label = f"[{rows:,} rows, {bad:.0%} bad]"
    typed = bad == 0
    table = f"flywheel_bench_{os.getpid()}"
    run_id = f"bench-{rows}-{bad:g}"
    try:
        plan: list[tuple[str, dict[str, Any]]] = [
            ("generate", {"lake": str(lake_dir), "rows": rows, "bad": bad, "seed": seed}),
        ]
        for name, args in plan:
            run.phases[name] = _progress(label, name, run_child(name, args, run_dir, timeout_s=timeout_s))
        settle()
        generated = run.phases["generate"]
        generated.rounds, generated.rounds_peak_rss_mib = [generated.seconds], [generated.peak_rss_mib]
        if generated.error:
            return run
        run.generated = {k: generated.details.get(k) for k in ("bad_rows", "bad_by_kind", "bytes", "sha256")}
        csv_path = generated.details["path"]
        plan = [
            ("floor", {"csv": csv_path, "out": str(run_dir / "floor.parquet"), "typed": typed}),
            ("checks", {"csv": csv_path}),
        ]
        if postgres_uri:
            plan += [
                ("pg_copy_in", {"csv": csv_path, "uri": postgres_uri, "table": table, "typed": typed}),
                ("pg_copy_out", {"out": str(run_dir / "pg_out.csv"), "uri": postgres_uri, "table": table,
                                 "typed": typed}),
            ]
        plan += [
            ("ingest", {"lake": str(lake_dir), "run_id": run_id}),
            ("validate", {"lake": str(lake_dir), "run_id": run_id, "max_failed_row_fraction": max_failed_row_fraction}),
            # after the two stages, on the same landed file (it clears their raw partition)
            ("single_pass", {"lake": str(lake_dir), "run_id": run_id,
                             "max_failed_row_fraction": max_failed_row_fraction}),
        ]
        for r in range(1, repeat + 1):
            this_round: dict[str, PhaseResult] = {}
            run.rounds.append(this_round)
            round_label = f"{label[:-1]}, round {r}/{repeat}]"
            for name, args in plan:
                if name == "pg_copy_out" and this_round["pg_copy_in"].error:
                    continue
                if name == "validate" and this_round["ingest"].error:
                    continue
                this_round[name] = _progress(round_label, name, run_child(name, args, run_dir, timeout_s=timeout_s))
                if name == "pg_copy_out" or (name == "pg_copy_in" and this_round[name].error):
                    _drop_table(postgres_uri, table)
                for scratch in ("floor.parquet", "pg_out.csv"):  # free the disk before the next phase
                    if not keep:
                        (run_dir / scratch).unlink(missing_ok=True)
                settle()
        for name, _ in plan:
            combined = combine_rounds(name, [rd.get(name) for rd in run.rounds])
            if combined is not None:
                run.phases[name] = combined
        return run
    finally:
        if not keep:
            shutil.rmtree(lake_dir, ignore_errors=True)


def _progress(label: str, name: str, result: PhaseResult) -> PhaseResult:
    if result.error:
        print(f"{label} {PHASE_LABELS[name]}: FAILED ({result.error})", flush=True)
    else:
        speed = f"{result.rows_per_s:,.0f} rows/s" if result.rows_per_s else "-"
        print(f"{label} {PHASE_LABELS[name]}: {result.seconds:.2f} s, {speed}, peak RSS {result.peak_rss_mib:,.0f} MiB "
              f"(process {result.process_seconds:.1f} s)", flush=True)  # fmt: skip
    return result


HEADER = f"{'phase':<20}{'rows':>12}{'bad':>6}{'seconds':>10}{'rows/s':>13}{'peak RSS MiB':>14}{'% of floor':>12}  note"


def _note(result: PhaseResult) -> str:
    d = result.details
    if result.error:
        return f"FAILED: {result.error[:160]}"
    notes = []
    if result.phase in ("floor", "pg_copy_in", "pg_copy_out") and "typed" in d:
        notes.append("typed" if d["typed"] else "as text")
    if result.phase == "floor":
        notes.append(f"{d.get('row_groups')} row groups")
    if result.phase == "checks" and d.get("failing_rows") is not None:
        notes.append(f"{d['failing_rows']:,} failing rows")
    if result.phase.startswith("pg_"):
        notes.append("client RSS")
    if result.phase in ("validate", "single_pass"):
        notes.append(f"{d.get('status')}: {d.get('rows_validated'):,} validated, {d.get('rows_quarantined'):,} quarantined")
    if result.phase == "generate":
        notes.append(f"{d.get('bytes', 0) / 2**20:,.0f} MiB CSV")
    imports = d.get("import_seconds")
    if imports is not None and result.phase in ("ingest", "validate", "single_pass"):
        notes.append(f"+{imports:.1f} s imports (not timed)")
    if result.phase != "generate" and len(result.rounds) > 1:
        _, low, high = median_spread(result.rounds)
        notes.append(f"median of {len(result.rounds)}: {low:.2f}-{high:.2f} s")
    return ", ".join(notes)


def table_lines(run: Run) -> list[str]:
    floor = run.phases.get("floor")
    floor_speed = floor.rows_per_s if floor is not None else None
    lines = []
    for result in [*(run.phases[p] for p in PHASES if p in run.phases), run.end_to_end()]:
        speed = result.rows_per_s
        share = f"{speed / floor_speed:.0%}" if speed and floor_speed and result.phase != "generate" else "-"
        cells = [
            f"{PHASE_LABELS[result.phase]:<20}",
            f"{run.rows:>12,}",
            f"{run.bad_fraction:>6.0%}",
            f"{result.seconds:>10.2f}" if result.seconds is not None else f"{'-':>10}",
            f"{speed:>13,.0f}" if speed else f"{'-':>13}",
            f"{result.peak_rss_mib:>14,.0f}" if result.peak_rss_mib is not None else f"{'-':>14}",
            f"{share:>12}",
        ]
        lines.append("".join(cells) + "  " + _note(result))
    return lines


def share_lines(run: Run) -> list[str]:
    """Per run: ``ingest+validate / floor per round: 48%, 52%, 55%``, and the same for the single pass."""
    if "floor" not in run.phases:
        return []
    lines = []
    for name in ("ingest+validate", "single_pass"):
        shares = run.floor_shares(name)
        if any(share is not None for share in shares):
            cells = ", ".join("n/a" if share is None else f"{share:.0%}" for share in shares)
            lines.append(f"{PHASE_LABELS[name]} / floor per round: {cells}")
    return lines


def report_lines(run: Run) -> list[str]:
    lines = [HEADER, "-" * len(HEADER), *table_lines(run), *share_lines(run)]
    for target, met, measured in run.targets():
        verdict = "n/a" if met is None else ("MET" if met else "NOT MET")
        lines.append(f"target: {target}: {verdict} ({measured})")
    a = run.accounting()
    if "rows_in" in a:
        lines.append(
            f"rows: in {a['rows_in']:,} = validated {a['rows_validated']:,} + quarantined {a['rows_quarantined']:,}: "
            f"{'yes' if a['rows_add_up'] else 'NO'}; quarantined = generated bad rows ({a['generated_bad_rows']:,}): "
            f"{'yes' if a['quarantined_equals_generated_bad'] else 'NO'}"
        )  # fmt: skip
    if "single_pass_same_as_two_stages" in a:
        lines.append(f"single pass: status, counts and reasons as the two stages': "
                     f"{'yes' if a['single_pass_same_as_two_stages'] else 'NO'}")  # fmt: skip
    if a.get("checks_failing_rows") is not None:
        same = a.get("checks_reasons_equal_validation")
        lines.append(f"vectorised checks: {a['checks_failing_rows']:,} failing rows; reasons and counts as validation's: "
                     f"{'n/a' if same is None else ('yes' if same else 'NO')}")  # fmt: skip
    if a.get("rounds", 0) > 1:
        disagree = a["rounds_disagree"]
        lines.append(f"accounting checked in each of {a['rounds']} rounds; rows, status, counts and reasons the same "
                     f"in every round: {'NO: ' + '; '.join(disagree) if disagree else 'yes'}")  # fmt: skip
    return lines


def machine() -> dict[str, Any]:
    import numpy
    import pandas
    import pyarrow

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "pyarrow": pyarrow.__version__,
        "pandas": pandas.__version__,
        "numpy": numpy.__version__,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def _parse_list(text: str, kind: type) -> list[Any]:
    return [kind(part) for part in text.split(",") if part.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000000,5000000,20000000", help="rows per partition, comma-separated")
    parser.add_argument("--bad", default="0,0.01", help="fractions of bad rows, comma-separated")
    parser.add_argument("--workdir", default="", help="where the lakes and files go (default: a temporary folder)")
    parser.add_argument("--json", default="", help="also write the figures to this JSON file")
    parser.add_argument("--postgres-uri", default=DEFAULT_POSTGRES_URI, help="'' skips the COPY baseline")
    parser.add_argument("--max-failed-row-fraction", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per phase before it is killed")
    parser.add_argument("--keep", action="store_true", help="keep the generated files and lakes")
    parser.add_argument("--repeat", type=int, default=3,
                        help="rounds of the timed phases (interleaved); the table gives the medians")  # fmt: skip
    parser.add_argument("--phase", help=argparse.SUPPRESS)  # the child's side
    parser.add_argument("--phase-args", help=argparse.SUPPRESS)
    parser.add_argument("--phase-result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.sizes = _parse_list(args.sizes, int)
    args.bad = _parse_list(args.bad, float)
    if not args.sizes or any(s <= 0 for s in args.sizes):
        parser.error("--sizes: positive row counts")
    if any(not 0 <= b < 1 for b in args.bad):
        parser.error("--bad: fractions in [0, 1)")
    if args.repeat < 1:
        parser.error("--repeat: at least 1")
    return args


def child_main(args: argparse.Namespace) -> int:
    result = PHASE_FUNCTIONS[args.phase](json.loads(args.phase_args))
    Path(args.phase_result).write_text(json.dumps(result, default=str))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.phase:
        return child_main(args)
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="flywheel-ingest-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    info = machine()
    print(f"== ingest + validation benchmark: {DATASET}, day {DAY}, sizes {args.sizes}, bad {args.bad}, "
          f"{args.repeat} rounds", flush=True)  # fmt: skip
    print(f"python {info['python']}, pyarrow {info['pyarrow']}, pandas {info['pandas']}, {info['cpus']} CPUs, "
          f"load average {info['load_average'][0]:.1f}; workdir {workdir}", flush=True)  # fmt: skip
    runs = []
    for rows in args.sizes:
        for bad in args.bad:
            run = run_one(rows, bad, workdir=workdir, postgres_uri=args.postgres_uri,
                          max_failed_row_fraction=args.max_failed_row_fraction, timeout_s=args.timeout,
                          keep=args.keep, seed=args.seed, repeat=args.repeat)  # fmt: skip
            runs.append(run)
            print("\n".join(["", *report_lines(run), ""]), flush=True)
            if args.json:  # after every run: a long run that dies still leaves its figures
                write_json(Path(args.json), info, runs)
    print(f"== all runs (seconds: the median of {args.repeat} rounds of the work in each child, imports not "
          "included; rows/s from it; peak RSS: the max over rounds; % of floor: rows/s over the pyarrow "
          "floor's of the same file)")  # fmt: skip
    print(HEADER)
    print("-" * len(HEADER))
    for run in runs:
        print("\n".join(table_lines(run)))
    for run in runs:
        for line in share_lines(run):
            print(f"  {run.rows:>12,} rows {run.bad_fraction:>4.0%} bad: {line}")
    print("targets (issue 11): peak RSS < 1.5 GiB at any size; all good >= 50% of the floor; "
          ">= 300k rows/s end to end with 1% bad (two stages, and the single pass)")  # fmt: skip
    for run in runs:
        for target, met, measured in run.targets():
            verdict = "n/a" if met is None else ("MET" if met else "NOT MET")
            print(f"  {run.rows:>12,} rows {run.bad_fraction:>4.0%} bad: {target}: {verdict} ({measured})")
    if args.json:
        print(f"figures written to {args.json}")
    return 0


def write_json(path: Path, info: dict[str, Any], runs: list[Run]) -> None:
    targets = {"peak_rss_mib_below": TARGET_PEAK_MIB, "all_good_floor_share_at_least": TARGET_FLOOR_SHARE,
               "bad_rows_per_s_at_least": TARGET_BAD_ROWS_PER_S}  # fmt: skip
    document = {"dataset": DATASET, "day": DAY.isoformat(), "machine": info, "targets": targets,
                "runs": [run.as_dict() for run in runs]}  # fmt: skip
    path.write_text(json.dumps(document, indent=2, default=str))


if __name__ == "__main__":
    sys.exit(main())
