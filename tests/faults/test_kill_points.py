"""Kill points: a real process SIGKILLs itself at every write step of ingest, validation (zones,
report, ledger in the lake and in PostgreSQL) and promotion (tags, aliases); after each kill,
readers see the old state or the new one, never a mix, and the next run repairs it and leaves
no garbage (issue 9, item 6).

The steps are not guessed: a first run traces every step it reaches (``FLYWHEEL_FAULT_TRACE``),
then a fresh copy of the starting state is killed at each ``step#n`` in turn
(:mod:`mlflywheel.faults`). The stages run in children forked by ``crash_harness.py``, which pays
for the imports once.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflywheel import ledger
from mlflywheel.datasets.landing import land_bytes, land_frame
from mlflywheel.datasets.upstreams.faults import apply_fault
from mlflywheel.datasets.upstreams.transactions import generate_day
from mlflywheel.lake import LocalLake, keys
from mlflywheel.lake.base import _versions_named

pytestmark = pytest.mark.slow  # minutes: a fresh subprocess per kill point

DAY = dt.date(2026, 11, 5)
DATASET = "transactions"
HERE = Path(__file__).resolve().parent
INCLUDE = HERE.parents[1] / "include"
SIGKILL = 9


class Harness:
    def __init__(self) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(INCLUDE), os.environ.get("PYTHONPATH", "")])}
        env.pop("FLYWHEEL_FAULT_POINT", None)
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "crash_harness.py")], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            text=True, env=env,
        )  # fmt: skip

    def run(self, **request) -> dict:
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, "the crash harness died"
        return json.loads(line)

    def ok(self, **request) -> None:
        answer = self.run(**request)
        assert answer == {"signal": 0, "code": 0}, (request, answer)

    def steps(self, tmp: Path, **request) -> list[str]:
        """``step#n`` of every step a run reaches, in order."""
        trace = tmp / "trace.txt"
        trace.unlink(missing_ok=True)
        self.ok(**request, trace=str(trace))
        seen: Counter[str] = Counter()
        out = []
        for step in trace.read_text().split():
            seen[step] += 1
            out.append(f"{step}#{seen[step]}")
        return out

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    h = Harness()
    yield h
    h.close()


@pytest.fixture(scope="module")
def pg_uri() -> Iterator[str | None]:
    sys.path.insert(0, str(HERE.parent / "integration"))
    try:
        from postgres_fixtures import temporary_database
    finally:
        sys.path.pop(0)
    try:
        with temporary_database("flywheel_kill") as uri:
            yield uri
    except pytest.skip.Exception:
        yield None


# --- what a reader sees -----------------------------------------------------------------------
def visible(lake: LocalLake) -> str:
    """The run whose result readers see for the partition, after checking it is one whole commit:
    zones, counts, ids, report and ledger summary all from the same run."""
    summary = ledger.read_summary(lake, DATASET, DAY)
    assert summary is not None
    run_id = summary["run_id"]
    validated = lake.manifest(keys.VALIDATED, DATASET, DAY)
    quarantine = lake.manifest(keys.QUARANTINE, DATASET, DAY)
    rows_v = len(lake.read_frame(keys.VALIDATED, DATASET, DAY)) if validated else 0
    assert rows_v == summary["rows_validated"]
    assert validated is None or validated["run_id"] == run_id
    if quarantine is not None:
        assert quarantine["run_id"] == run_id
        if keys.DATA_FILE in quarantine["files"]:
            q = lake.read_frame(keys.QUARANTINE, DATASET, DAY)
            assert len(q) == summary["rows_quarantined"]
            if validated:
                v_ids = set(lake.read_frame(keys.VALIDATED, DATASET, DAY)["transaction_id"].dropna())
                assert not v_ids & set(q["transaction_id"].dropna())  # no id in both zones
    else:
        assert summary["rows_quarantined"] == 0
    page = lake.get_bytes(summary["report_key"]).decode()
    assert run_id in page and summary["status"] in page
    return run_id


def garbage(lake: LocalLake) -> list[str]:
    """``.tmp-*`` files anywhere, and version folders no reader may still use."""
    found = [str(p.relative_to(lake.root)) for p in lake.root.rglob(keys.TEMP_PREFIX + "*")]
    record = lake.commit_record(DATASET, DAY)
    if record is not None and "commit" in record:
        named = _versions_named(record) | {record["commit"]["previous_id"]}
        folders = [keys.partition_prefix(z, DATASET, DAY) for z in keys.COMMITTED_ZONES]
        folders.append(keys.validation_report_prefix(DATASET, DAY))
        for folder in folders:
            for key in lake.list_keys(folder + "/"):
                first = key[len(folder) + 1 :].split("/")[0]
                if not first.startswith(keys.VERSION_PREFIX) or first[2:] not in named:
                    found.append(key)
    raw_versions = {k.split("/")[3] for k in lake.list_keys(keys.partition_prefix(keys.RAW, DATASET, DAY) + "/")
                    if "/v=" in k}  # fmt: skip
    if len(raw_versions) > 2:
        found.append(f"raw versions {sorted(raw_versions)}")
    return found


def pg_row(pg_uri: str | None, table: str) -> dict | None:
    if pg_uri is None:
        return None
    from mlflywheel.ledger_postgres import PostgresLedgerSink

    return PostgresLedgerSink(pg_uri, table).read(DATASET, DAY)


# --- ingest and validation --------------------------------------------------------------------
@pytest.fixture(scope="module")
def validated_a(tmp_path_factory, harness, pg_uri) -> dict:
    """A lake whose partition holds delivery A, ingested and validated by run-A."""
    root = tmp_path_factory.mktemp("a") / "lake"
    lake = LocalLake(root)
    land_frame(lake, _spec(), DAY, generate_day(DAY, 300, seed=5))
    pg = {"ledger_uri": pg_uri, "ledger_table": "kill_template"} if pg_uri else {}
    harness.ok(stage="ingest", lake=str(root), day=DAY.isoformat(), run_id="run-A", **pg)
    harness.ok(stage="validate", lake=str(root), day=DAY.isoformat(), run_id="run-A", **pg)
    assert visible(lake) == "run-A"
    return {"root": root, "record": ledger.read_summary(lake, DATASET, DAY)}


def _spec():
    from mlflywheel.datasets import get_spec

    return get_spec(DATASET)


def _fresh(template: Path, work: Path, pg_uri: str | None, table: str, record: dict) -> LocalLake:
    """A copy of the starting state: the lake's folder, and the ledger table's row of its commit."""
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(template, work)
    if pg_uri:
        from mlflywheel.ledger_postgres import PostgresLedgerSink

        PostgresLedgerSink(pg_uri, table).record(record)
    return LocalLake(work)


def _kill_everywhere(harness, tmp_path, pg_uri, template: Path, record: dict, *, stage: str, run_id: str,
                     check_killed, check_repaired) -> list[str]:  # fmt: skip
    table = f"kill_{stage}_{run_id}".replace("-", "_").lower()
    work = tmp_path / "work"
    pg = {"ledger_uri": pg_uri, "ledger_table": table} if pg_uri else {}
    _fresh(template, work, pg_uri, table, record)
    steps = harness.steps(tmp_path, stage=stage, lake=str(work), day=DAY.isoformat(), run_id=run_id, **pg)
    assert steps
    for step in steps:
        lake = _fresh(template, work, pg_uri, table, record)
        answer = harness.run(stage=stage, lake=str(work), day=DAY.isoformat(), run_id=run_id, fault=step, **pg)
        assert answer["signal"] == SIGKILL, (step, answer)
        check_killed(lake, step, pg_row(pg_uri, table))
        harness.ok(stage=stage, lake=str(work), day=DAY.isoformat(), run_id=run_id, **pg)  # the retry
        check_repaired(lake, step, pg_row(pg_uri, table))
        assert garbage(lake) == [], step
    return steps


def _ledger_agrees(lake: LocalLake, row: dict | None, allowed: set[str]) -> None:
    if row is not None:
        assert row["run_id"] in allowed
        assert row["rows_in"] == row["rows_validated"] + row["rows_quarantined"]


def test_validation_killed_at_every_write_step(harness, tmp_path, pg_uri, validated_a):
    # Starting state: A validated and committed; delivery B (some rows with wrong types) ingested.
    template = tmp_path / "template"
    shutil.copytree(validated_a["root"], template)
    lake = LocalLake(template)
    land_frame(lake, _spec(), DAY, apply_fault(generate_day(DAY, 300, seed=6), "wrong_types", seed=1))
    harness.ok(stage="ingest", lake=str(template), day=DAY.isoformat(), run_id="run-B")

    def killed(lake, step, row):
        assert visible(lake) in {"run-A", "run-B"}, step
        _ledger_agrees(lake, row, {"run-A", "run-B"})

    def repaired(lake, step, row):
        assert visible(lake) == "run-B", step
        summary = ledger.read_summary(lake, DATASET, DAY)
        assert summary["status"] == "partially_quarantined"
        if row is not None:
            assert row["run_id"] == "run-B"
            assert row["validation_summary"]["commit"]["id"] == summary["commit"]["id"]

    steps = _kill_everywhere(harness, tmp_path, pg_uri, template, validated_a["record"], stage="validate",
                             run_id="run-B", check_killed=killed, check_repaired=repaired)  # fmt: skip
    names = {s.split("#")[0] for s in steps}
    assert {"lake.put", "lake.put.partial", "commit.record", "lake.remove_incomplete"} <= names
    assert ("ledger.sink" in names) == (pg_uri is not None)


def test_ingest_of_an_unreadable_redelivery_killed_at_every_write_step(harness, tmp_path, pg_uri, validated_a):
    template = tmp_path / "template"
    shutil.copytree(validated_a["root"], template)
    # A Parquet file where a CSV is expected: unreadable (a BOM'd UTF-16 text would be read).
    land_bytes(LocalLake(template), _spec(), DAY, b"PAR1" + bytes(range(256)) * 4)

    def killed(lake, step, row):
        run = visible(lake)
        assert run in {"run-A", "run-C"}, step
        if run == "run-C":
            assert lake.manifest(keys.RAW, DATASET, DAY) is None  # nothing of the old delivery left
        _ledger_agrees(lake, row, {"run-A", "run-C"})

    def repaired(lake, step, row):
        assert visible(lake) == "run-C", step
        assert ledger.read_summary(lake, DATASET, DAY)["status"] == "quarantined"
        assert lake.list_partitions(keys.VALIDATED, DATASET) == []
        assert row is None or row["run_id"] == "run-C"

    steps = _kill_everywhere(harness, tmp_path, pg_uri, template, validated_a["record"], stage="ingest",
                             run_id="run-C", check_killed=killed, check_repaired=repaired)  # fmt: skip
    assert "commit.record#1" in steps


def test_ingest_of_a_readable_redelivery_killed_at_every_write_step(harness, tmp_path, pg_uri, validated_a):
    template = tmp_path / "template"
    shutil.copytree(validated_a["root"], template)
    land_frame(LocalLake(template), _spec(), DAY, generate_day(DAY, 120, seed=9))

    def raw_run(lake):
        manifest = lake.manifest(keys.RAW, DATASET, DAY)
        assert len(lake.read_frame(keys.RAW, DATASET, DAY)) == manifest["rows_in"]
        return manifest["run_id"]

    def killed(lake, step, row):
        assert raw_run(lake) in {"run-A", "run-D"}, step
        assert visible(lake) == "run-A"  # the committed result is untouched by ingest

    def repaired(lake, step, row):
        assert raw_run(lake) == "run-D" and visible(lake) == "run-A"

    steps = _kill_everywhere(harness, tmp_path, pg_uri, template, validated_a["record"], stage="ingest",
                             run_id="run-D", check_killed=killed, check_repaired=repaired)  # fmt: skip
    assert "publish.manifest#1" in steps


# --- promotion ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def registry_template(tmp_path_factory) -> dict:
    """A registry (SQLite) with version 1 champion and version 2 awaiting approval against it."""
    from mlflow.tracking import MlflowClient

    root = tmp_path_factory.mktemp("registry")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    env = {"FLYWHEEL_DATA_DIR": str(root), "FLYWHEEL_LAKE_URI": (root / "lake").as_uri(),
           "FLYWHEEL_MLFLOW_TRACKING_URI": uri, "FLYWHEEL_MLFLOW_ARTIFACT_ROOT": str(root / "artifacts")}  # fmt: skip
    name = f"flywheel-{DATASET}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model(name)
    for _ in range(2):
        client.create_model_version(name, source=(root / "artifacts").as_uri())
    client.set_model_version_tag(name, "1", "flywheel.gate.decision", "promoted")
    client.set_registered_model_alias(name, "champion", "1")
    for key, value in {"decision": "awaiting_approval", "verdict": "promoted", "gate_passed": "true",
                       "champion_version": "1", "reasons": "better"}.items():  # fmt: skip
        client.set_model_version_tag(name, "2", f"flywheel.gate.{key}", value)
    return {"db": root / "mlflow.db", "env": env, "uri": uri, "name": name}


def _registry_state(reg: dict, db: Path) -> dict:
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{db}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)

    def alias(name):
        try:
            return str(client.get_model_version_by_alias(reg["name"], name).version)
        except Exception:  # noqa: BLE001 - a missing alias
            return None

    return {"champion": alias("champion"), "previous": alias("previous_champion"),
            "decision": client.get_model_version(reg["name"], "2").tags.get("flywheel.gate.decision")}  # fmt: skip


def _registry_copy(reg: dict, work: Path) -> dict:
    # A new folder each time: MLflow keeps an engine per database URI in this process, and a file
    # overwritten under it can be read stale.
    work.mkdir(parents=True)
    shutil.copyfile(reg["db"], work / "mlflow.db")
    return {**reg["env"], "FLYWHEEL_MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}"}


def test_approval_and_rollback_killed_at_every_write_step(harness, tmp_path, registry_template):
    reg = registry_template
    steps = harness.steps(tmp_path, stage="approve", version="2", env=_registry_copy(reg, tmp_path / "traced"))
    assert {"registry.tag#1", "registry.tag.partial#1", "registry.alias#1", "registry.alias#2",
            "promote.record#1"} <= set(steps)  # fmt: skip
    for index, step in enumerate(steps):
        work = tmp_path / f"approval-{index}"
        env = _registry_copy(reg, work)
        answer = harness.run(stage="approve", version="2", env=env, fault=step)
        assert answer["signal"] == SIGKILL, (step, answer)
        state = _registry_state(reg, work / "mlflow.db")
        # Old or new, never a mix: "promoted" only with the alias moved; previous never the champion.
        assert state["champion"] in {"1", "2"}, (step, state)
        assert state["previous"] != state["champion"], (step, state)
        assert state["decision"] in {"awaiting_approval", "promoting", "promoted"}, (step, state)
        if state["decision"] == "promoted":
            assert state["champion"] == "2" and state["previous"] == "1", (step, state)
        # The next call settles it: promoted with its previous_champion, or promotion_failed.
        harness.ok(stage="finish", env=env)
        state = _registry_state(reg, work / "mlflow.db")
        if state["champion"] == "2":
            assert (state["decision"], state["previous"]) == ("promoted", "1"), (step, state)
            harness.ok(stage="rollback", env=env)  # a real one step back, not a no-op
            assert _registry_state(reg, work / "mlflow.db")["champion"] == "1"
        else:
            assert state["decision"] in {"awaiting_approval", "promotion_failed"}, (step, state)
            assert harness.run(stage="rollback", env=env)["code"] == 1  # refused: nothing to go back to
            assert _registry_state(reg, work / "mlflow.db")["champion"] == "1"

    # Rollback itself, killed at each of its steps, from a completed promotion.
    promoted = tmp_path / "promoted"
    harness.ok(stage="approve", version="2", env=_registry_copy(reg, promoted))
    reg_promoted = {**reg, "db": promoted / "mlflow.db"}
    steps = harness.steps(tmp_path, stage="rollback", env=_registry_copy(reg_promoted, tmp_path / "traced-rb"))
    assert "registry.alias#2" in steps
    for index, step in enumerate(steps):
        work = tmp_path / f"rollback-{index}"
        env = _registry_copy(reg_promoted, work)
        assert harness.run(stage="rollback", env=env, fault=step)["signal"] == SIGKILL
        state = _registry_state(reg, work / "mlflow.db")
        assert state["champion"] in {"1", "2"}, (step, state)
        if state["champion"] == "2":
            harness.ok(stage="rollback", env=env)  # not done yet: the retry does it
        else:
            assert harness.run(stage="rollback", env=env)["code"] == 1  # done: a second one is refused
        state = _registry_state(reg, work / "mlflow.db")
        assert state["champion"] == "1" and state["previous"] is None, (step, state)


# --- S3: a multipart upload killed between its parts -------------------------------------------
S3_FILE = "data.bin"
S3_BIG = 5 * 1024 * 1024 + 300_000  # two parts: S3's smallest part (5 MiB) and a tail
S3_MULTIPART_THRESHOLD = 1024 * 1024  # the manifest (a few hundred bytes) stays a single PUT


def _payload(seed: int) -> bytes:
    sys.path.insert(0, str(HERE))
    try:
        from crash_harness import payload
    finally:
        sys.path.pop(0)
    return payload(seed, S3_BIG)


def _s3_uploads(s3_client, bucket: str) -> list[str]:
    return [u["Key"] for u in s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]


def _s3_visible(lake, s3_client, bucket: str, payloads: dict[str, bytes]) -> tuple[str | None, str | None]:
    """(run, version) readers see for the partition, after checking that the file they resolve and
    every data object in the bucket is one whole payload (S3 never shows a partial object)."""
    for obj in s3_client.list_objects_v2(Bucket=bucket).get("Contents", []):
        if obj["Key"].endswith(S3_FILE):
            body = s3_client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            assert body in payloads.values(), (obj["Key"], len(body))
    manifest = lake.manifest(keys.RAW, DATASET, DAY)
    if manifest is None:
        return None, None
    assert lake.partition_file(keys.RAW, DATASET, DAY, S3_FILE) == payloads[manifest["run_id"]]
    return manifest["run_id"], manifest["version"]


@pytest.mark.parametrize("start", ["no partition yet", "an older partition"])
def test_s3_multipart_upload_killed_at_every_write_step(harness, tmp_path, s3_server, s3_client, start):
    """A partition whose file goes up as a two-part multipart upload to a real S3-compatible
    server (moto on loopback), killed at every step, the one between its parts included: readers see
    the old partition (or none) or the new one, never a partial object; the retry aborts the
    unfinished upload and leaves no garbage."""
    import uuid

    from mlflywheel.lake import open_lake

    env = {k: os.environ[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION",
                                      "NO_PROXY", "no_proxy") if k in os.environ}  # fmt: skip
    payloads = {"run-old": _payload(1), "run-new": _payload(2)}

    def publish(bucket: str, run_id: str, **extra) -> dict:
        seed = 1 if run_id == "run-old" else 2
        return harness.run(stage="publish", lake=f"s3://{bucket}/lake", s3_endpoint=s3_server, env=env,
                           zone=keys.RAW, day=DAY.isoformat(), run_id=run_id, files={S3_FILE: [seed, S3_BIG]},
                           multipart_threshold=S3_MULTIPART_THRESHOLD, **extra)  # fmt: skip

    def fresh() -> tuple[str, object]:
        bucket = f"flywheel-kill-{uuid.uuid4().hex[:12]}"
        s3_client.create_bucket(Bucket=bucket)
        if start == "an older partition":
            assert publish(bucket, "run-old") == {"signal": 0, "code": 0}
        return bucket, open_lake(f"s3://{bucket}/lake", s3_endpoint_url=s3_server)

    def drop(bucket: str) -> None:  # moto keeps objects in memory: free them
        for upload in s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
            s3_client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
        for obj in s3_client.list_objects_v2(Bucket=bucket).get("Contents", []):
            s3_client.delete_object(Bucket=bucket, Key=obj["Key"])
        s3_client.delete_bucket(Bucket=bucket)

    bucket, _ = fresh()
    trace = tmp_path / "trace.txt"
    assert publish(bucket, "run-new", trace=str(trace)) == {"signal": 0, "code": 0}
    drop(bucket)
    seen: Counter[str] = Counter()
    steps = []
    for step in trace.read_text().split():
        seen[step] += 1
        steps.append(f"{step}#{seen[step]}")
    assert {"lake.put#1", "lake.put.partial#1", "publish.manifest#1", "lake.remove_incomplete#1"} <= set(steps)
    assert seen["lake.put.partial"] == 1  # the data file alone goes up in parts
    before = "run-old" if start == "an older partition" else None
    for step in steps:
        bucket, lake = fresh()
        assert publish(bucket, "run-new", fault=step)["signal"] == SIGKILL, step
        run, version = _s3_visible(lake, s3_client, bucket, payloads)
        assert run in {before, "run-new"}, (step, run)
        if step == "lake.put.partial#1":
            assert run == before and len(_s3_uploads(s3_client, bucket)) == 1  # parts stored, no object
        assert publish(bucket, "run-new") == {"signal": 0, "code": 0}, step  # the retry
        run_after, version_after = _s3_visible(lake, s3_client, bucket, payloads)
        assert run_after == "run-new", step
        assert _s3_uploads(s3_client, bucket) == [], step  # the killed upload was aborted
        folder = keys.partition_prefix(keys.RAW, DATASET, DAY) + "/"
        left = {k[len(folder):].split("/")[0] for k in lake.list_keys(folder)}
        assert left <= {keys.MANIFEST, f"{keys.VERSION_PREFIX}{version_after}", f"{keys.VERSION_PREFIX}{version}"}, (
            step, left)  # the new version, the one readers saw before the retry, nothing else  # fmt: skip
        assert not [k for k in lake.list_keys("") if keys.TEMP_PREFIX in k], step
        drop(bucket)


# --- the automatic gate (promotion_mode=gate) ---------------------------------------------------
GATE_EXTRA_DAYS = [dt.date(2026, 11, 11), dt.date(2026, 11, 12)]


@pytest.fixture(scope="module")
def gate_world(tmp_path_factory) -> Iterator[dict]:
    """Two versions trained for real (in this process): ``good`` on labels that follow the features,
    ``noise`` on labels that do not; two registries of them: nothing promoted yet (the very first
    promotion), and ``noise`` champion (a promotion over an existing champion). Promotion only reads
    the lake and the model artifacts, so each kill gets a fresh copy of the registry's database."""
    from mlflywheel import registry
    from mlflywheel.devstack.synthetic import write_validated
    from mlflywheel.settings import Settings
    from mlflywheel.training.entrypoint import parse_args, run_training
    from mlflywheel.training.snapshot import build_snapshot

    root = tmp_path_factory.mktemp("gate")
    env = {"FLYWHEEL_DATA_DIR": str(root), "FLYWHEEL_LAKE_URI": (root / "lake").as_uri(),
           "FLYWHEEL_MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
           "FLYWHEEL_MLFLOW_ARTIFACT_ROOT": str(root / "artifacts"), "FLYWHEEL_REFERENCE_SAMPLE_SIZE": "50",
           "FLYWHEEL_GATE_BOOTSTRAP_SAMPLES": "300"}  # fmt: skip
    spec = _spec()
    good_end, noise_end = dt.date(2026, 11, 10), dt.date(2026, 11, 3)
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        lake = LocalLake(root / "lake")
        write_validated(lake, spec, [good_end - dt.timedelta(days=i) for i in range(3)], 300, seed=21)
        write_validated(lake, spec, [noise_end - dt.timedelta(days=i) for i in range(3)], 200, seed=22, signal=0.0)
        good_snap = build_snapshot(lake, spec, end_day=good_end, window_days=3, min_rows=100)["snapshot_id"]
        noise_snap = build_snapshot(lake, spec, end_day=noise_end, window_days=3, min_rows=100)["snapshot_id"]
        write_validated(lake, spec, GATE_EXTRA_DAYS, 300, seed=23)  # the gate's later days
        good = run_training(parse_args(["--snapshot-id", good_snap, "--epochs", "2", "--batch-size", "64"]))
        noise = run_training(parse_args(["--snapshot-id", noise_snap, "--epochs", "1", "--batch-size", "64"]))
        first = root / "first"
        first.mkdir()
        shutil.copyfile(root / "mlflow.db", first / "mlflow.db")
        over = root / "over"
        over.mkdir()
        shutil.copyfile(root / "mlflow.db", over / "mlflow.db")
        settings = Settings.from_env(mlflow_tracking_uri=f"sqlite:///{over / 'mlflow.db'}")
        registry.tag_version(settings, noise["version"], {"flywheel.gate.decision": "promoted"})
        registry.set_champion(settings, noise["version"], reason="the champion before this test")
    yield {"env": env, "snapshot": good_snap, "good": str(good["version"]), "noise": str(noise["version"]),
           "first": first / "mlflow.db", "over": over / "mlflow.db", "name": f"flywheel-{DATASET}"}  # fmt: skip


def _gate_state(world: dict, db: Path) -> dict:
    """Aliases (as stored, not as read through the package) and every version's decision tags."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{db}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    aliases = {a: str(v) for a, v in client.get_registered_model(world["name"]).aliases.items()}
    tags = {v: client.get_model_version(world["name"], v).tags for v in (world["good"], world["noise"])}
    return {"champion": aliases.get("champion"), "previous": aliases.get("previous_champion"),
            "decision": tags[world["good"]].get("flywheel.gate.decision"),
            "noise_decision": tags[world["noise"]].get("flywheel.gate.decision"), "tags": tags[world["good"]]}  # fmt: skip


@pytest.mark.parametrize("start", ["first promotion", "over a champion"])
def test_gate_promotion_killed_at_every_write_step(harness, tmp_path, gate_world, start):
    """``evaluate_and_promote`` in gate mode (the train DAG's automatic path) killed at every step it
    passes: the champion is the old one or the new one, ``promoted`` is never recorded before the
    alias moved, ``previous_champion`` never names the champion; what a kill leaves is settled by a
    rollback, and the task's retry finishes the promotion with the gate's own record."""
    world = gate_world
    good, noise = world["good"], world["noise"]
    old = noise if start == "over a champion" else None
    template = world["over"] if old else world["first"]

    def fresh(folder: Path, source: Path = template) -> dict:
        # A new folder each time: MLflow keeps an engine per database URI in this process, and a
        # file overwritten under it could be read stale.
        folder.mkdir(parents=True)
        shutil.copyfile(source, folder / "mlflow.db")
        return {**world["env"], "FLYWHEEL_MLFLOW_TRACKING_URI": f"sqlite:///{folder / 'mlflow.db'}"}

    request = {"stage": "promote", "version": good, "snapshot_id": world["snapshot"]}
    steps = harness.steps(tmp_path, **request, env=fresh(tmp_path / "traced"))
    done = _gate_state(world, tmp_path / "traced" / "mlflow.db")
    assert (done["champion"], done["previous"], done["decision"]) == (good, old, "promoted")  # the gate passes
    expected = {"registry.tag#1", "registry.tag.partial#1", "registry.tag#2", "registry.alias#1",
                "promote.record#1", "registry.tag#3"} | ({"registry.alias#2"} if old else set())  # fmt: skip
    assert expected <= set(steps), steps
    for index, step in enumerate(steps):
        work = tmp_path / f"killed-{index}"
        env = fresh(work)
        assert harness.run(**request, env=env, fault=step)["signal"] == SIGKILL, step
        state = _gate_state(world, work / "mlflow.db")
        # Old or new, never a mix.
        assert state["champion"] in {old, good}, (step, state)
        assert state["previous"] in {None, old}, (step, state)
        assert state["previous"] is None or state["previous"] != state["champion"], (step, state)
        assert state["decision"] in {None, "promoting", "promoted"}, (step, state)
        if state["decision"] == "promoted":  # only once the alias moved, and previous_champion with it
            assert (state["champion"], state["previous"]) == (good, old), (step, state)
        if state["champion"] == good:  # moved: the record says how to finish it
            assert state["decision"] in {"promoting", "promoted"}, (step, state)
            assert state["tags"]["flywheel.champion.replaced"] == (old or "none"), (step, state)
        assert state["noise_decision"] == ("promoted" if old else None), (step, state)  # untouched

        # A rollback from this state: it settles the record first, then goes back (or refuses).
        side = tmp_path / f"rolled-back-{index}"
        rolled = harness.run(stage="rollback", env=fresh(side, work / "mlflow.db"))
        after = _gate_state(world, side / "mlflow.db")
        if state["champion"] == good:
            assert after["decision"] == "promoted", (step, after)
            if old:  # one step back to the old champion
                assert rolled["code"] == 0 and (after["champion"], after["previous"]) == (old, None), (step, after)
            else:  # nothing to go back to: refused, the first champion stays
                assert rolled["code"] == 1 and after["champion"] == good, (step, after)
        else:
            assert rolled["code"] == 1 and after["champion"] == old, (step, after)  # nothing to undo
            assert after["decision"] in {None, "promotion_failed"}, (step, after)

        # The task's retry: the promotion completes, with the gate's comparison on record.
        harness.ok(**request, env=env)
        state = _gate_state(world, work / "mlflow.db")
        assert (state["champion"], state["previous"], state["decision"]) == (good, old, "promoted"), (step, state)
        tags = state["tags"]
        assert tags["flywheel.gate.champion_version"] == (old or "none"), (step, tags)
        assert tags["flywheel.gate.verdict"] == "promoted" and tags["flywheel.gate.holdout_rows"], (step, tags)
        assert tags["flywheel.champion.replaced"] == (old or "none"), (step, tags)
        if old:
            assert tags["flywheel.gate.interval_low"] and tags["flywheel.gate.champion_metrics"] != "none"


# --- a version gated again: its new decision never beside the old decision's evidence -----------
RECORD_PREFIXES = ("flywheel.gate.", "flywheel.approval.")
LIFECYCLE = {"promoting", "promoted", "promotion_failed"}  # the decisions a promotion passes through


def _reader_record(world: dict, db: Path, version: str) -> dict:
    """The decision record of ``version`` as the package's readers see it (``registry`` views)."""
    from mlflywheel import registry
    from mlflywheel.settings import Settings

    settings = Settings.from_env(world["env"], mlflow_tracking_uri=f"sqlite:///{db}")
    return {k: v for k, v in registry.version_tags(settings, version).items() if k.startswith(RECORD_PREFIXES)}


def _raw_tags(world: dict, db: Path, version: str) -> dict:
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{db}"
    return dict(MlflowClient(tracking_uri=uri, registry_uri=uri).get_model_version(world["name"], version).tags)


def _evidence(record: dict) -> dict:
    """A record less what changes between two runs of the same decision (its time, its lifecycle)."""
    return {k: v for k, v in record.items()
            if k not in ("flywheel.gate.decided_at", "flywheel.gate.decision", "flywheel.gate.promotion_error")}  # fmt: skip


def test_regate_of_an_already_gated_version_killed_at_every_write_step(harness, tmp_path, gate_world):
    """A version already gated (approval mode on a smaller holdout, then rejected by a person: a
    decision, its evidence and a person's answer) is gated again in gate mode, killed at every
    step. Readers see the old record whole or the new one with its own evidence, never a mix
    (nor the old answer beside the new decision); the task's retry finishes with the new record
    alone, and no bookkeeping or stale tag is left behind."""
    world = gate_world
    good, noise = world["good"], world["noise"]

    def fresh(folder: Path, source: Path) -> dict:
        folder.mkdir(parents=True)
        shutil.copyfile(source, folder / "mlflow.db")
        return {**world["env"], "FLYWHEEL_MLFLOW_TRACKING_URI": f"sqlite:///{folder / 'mlflow.db'}"}

    # The first decision: against the noise champion, on the snapshot's holdout alone, rejected.
    base = tmp_path / "base"
    small = {"FLYWHEEL_GATE_HOLDOUT_EXTRA_DAYS": "0", "FLYWHEEL_GATE_MIN_HOLDOUT_ROWS": "50",
             "FLYWHEEL_GATE_MIN_HOLDOUT_POSITIVES": "5"}  # fmt: skip
    env = fresh(base, world["over"])
    harness.ok(stage="promote", version=good, snapshot_id=world["snapshot"], mode="approval",
               decided_by="first-gate", env={**env, **small})  # fmt: skip
    harness.ok(stage="approve", version=good, answer="rejected", env=env)
    old = _reader_record(world, base / "mlflow.db", good)
    assert old["flywheel.gate.decision"] == "rejected" and old["flywheel.approval.answer"] == "rejected", old
    assert old["flywheel.gate.holdout_days"] == "[]" and old["flywheel.gate.mode"] == "approval", old

    request = {"stage": "promote", "version": good, "snapshot_id": world["snapshot"]}
    steps = harness.steps(tmp_path, **request, env=fresh(tmp_path / "traced", base / "mlflow.db"))
    new = _reader_record(world, tmp_path / "traced" / "mlflow.db", good)
    assert new["flywheel.gate.decision"] == "promoted" and new["flywheel.gate.mode"] == "gate", new
    assert not [k for k in new if k.startswith("flywheel.approval.")], new  # the old answer went with its record
    differing = {k for k in _evidence(old).keys() | _evidence(new).keys() if old.get(k) != new.get(k)}
    assert {"flywheel.gate.holdout_rows", "flywheel.gate.holdout_days", "flywheel.gate.candidate_metrics",
            "flywheel.approval.answer"} <= differing, differing  # a mix would show  # fmt: skip
    assert {"registry.tag#1", "registry.tag.partial#1", "registry.tag.commit#1", "registry.alias#1",
            "promote.record#1"} <= set(steps), steps  # fmt: skip

    for index, step in enumerate(steps):
        work = tmp_path / f"killed-{index}"
        env = fresh(work, base / "mlflow.db")
        assert harness.run(**request, env=env, fault=step)["signal"] == SIGKILL, step
        seen = _reader_record(world, work / "mlflow.db", good)
        state = _gate_state(world, work / "mlflow.db")
        if seen == old:  # the old record, whole: its decision, its evidence, its answer
            assert state["champion"] == noise, (step, state)
        else:  # the new record, whole, at some point of its promotion
            assert _evidence(seen) == _evidence(new), (step, seen)
            assert seen["flywheel.gate.decision"] in LIFECYCLE, (step, seen)
        if state["champion"] == good:  # the alias moved only after the new record was complete
            assert _evidence(seen) == _evidence(new), (step, seen)

        # The next call repairs what the kill left: the records as readers saw them, made real.
        side = tmp_path / f"finished-{index}"
        harness.ok(stage="finish", env=fresh(side, work / "mlflow.db"))
        raw = {k: v for k, v in _raw_tags(world, side / "mlflow.db", good).items() if k.startswith(RECORD_PREFIXES)}
        assert not [k for k in _raw_tags(world, side / "mlflow.db", good) if k.startswith("flywheel.record.")], step
        assert raw == _reader_record(world, side / "mlflow.db", good), step
        assert raw == old or _evidence(raw) == _evidence(new), (step, raw)

        # The task's retry: the new decision, alone, and the promotion done.
        harness.ok(**request, env=env)
        final = _reader_record(world, work / "mlflow.db", good)
        raw_final = _raw_tags(world, work / "mlflow.db", good)
        assert final["flywheel.gate.decision"] == "promoted" and _evidence(final) == _evidence(new), (step, final)
        assert {k: v for k, v in raw_final.items() if k.startswith(RECORD_PREFIXES)} == final, step
        assert not [k for k in raw_final if k.startswith("flywheel.record.")], step  # no bookkeeping left
        state = _gate_state(world, work / "mlflow.db")
        assert (state["champion"], state["previous"]) == (good, noise), (step, state)
