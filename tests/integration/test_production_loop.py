"""The core loop on the production backends that can run here.

Airflow's metadata on the real PostgreSQL server, the Celery executor with the machine's Redis as
broker and two workers as separate processes, one consuming only the `gpu` queue that training is
routed to (as compose's `airflow-worker` and `airflow-worker-gpu`); api-server, scheduler,
dag-processor and triggerer as separate processes. MLflow's tracking server with its backend
store on PostgreSQL and artifacts on S3, behind its basic-auth app (the loop writes as the service
account), the lake on S3 (moto's S3-compatible HTTP server on
loopback), ingest extracting from a PostgreSQL source table, the ledger in a PostgreSQL table.
Training runs on the local backend (no Kubernetes API server can run here).

Asserts the same closed loop as the demo, and that the ledger table, the lake and the model
registry agree.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import sqlite3
import uuid
from pathlib import Path

import psycopg2
import pytest
from mlflywheel.demo import run_demo
from mlflywheel.devstack.production import ProductionBackends
from mlflywheel.devstack.stack import free_port
from postgres_fixtures import temporary_database

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(3000)]

REDIS_URL = "redis://127.0.0.1:6379/0"  # the machine's Redis (.ci/run makes sure it answers)


@pytest.fixture(scope="module")
def databases():
    """A fresh database for each role, dropped afterwards."""
    with contextlib.ExitStack() as stack:
        yield {
            role: stack.enter_context(temporary_database(f"flywheel_it_{role}"))
            for role in ("airflow", "mlflow", "source", "ledger")
        }


@pytest.fixture(scope="module")
def production_run(tmp_path_factory, s3_server, databases):
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_server)
    bucket = f"flywheel-it-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    backends = ProductionBackends(
        airflow_db_uri=databases["airflow"].replace("postgresql://", "postgresql+psycopg2://"),
        mlflow_backend_uri=databases["mlflow"].replace("postgresql://", "postgresql+psycopg2://"),
        mlflow_artifacts_destination=f"s3://{bucket}/mlflow",
        lake_uri=f"s3://{bucket}/lake",
        s3_endpoint_url=s3_server,
        source_postgres_uri=databases["source"],
        source_table="public.card_transactions",
        ledger_uri=databases["ledger"],
        celery_broker_url=REDIS_URL,
        training_queue="gpu",
    )
    home = tmp_path_factory.mktemp("flywheel-prod")
    summary = run_demo(
        home=home,
        days=21,
        rows_per_day=1500,
        api_port=free_port(),
        mlflow_port=free_port(),
        timeout_minutes=40,
        backends=backends,
    )
    return summary, backends, s3, bucket


def test_loop_closed_on_production_backends(production_run):
    summary, *_ = production_run
    assert summary.get("error") is None, summary.get("error")
    assert summary["checks"] == {"drift_detected": True, "backfill_created": True, "retrained_model_gated": True}


def test_ledger_table_and_lake_agree(production_run):
    summary, backends, _, _ = production_run
    from mlflywheel.lake import open_lake

    lake = open_lake(backends.lake_uri, s3_endpoint_url=backends.s3_endpoint_url)
    with psycopg2.connect(backends.ledger_uri) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT partition::text, rows_in, rows_validated, rows_quarantined, status FROM flywheel_ingest_ledger"
            " WHERE dataset = 'transactions' ORDER BY partition"
        )
        table = {row[0]: row[1:] for row in cur.fetchall()}
    lake_summaries = {p["partition"]: p for p in summary["partitions"]}
    assert len(table) == 21 and set(table) == set(lake_summaries)
    for partition, (rows_in, validated, quarantined, status) in table.items():
        s = lake_summaries[partition]
        assert (rows_in, validated, quarantined, status) == (
            s["rows_in"], s["rows_validated"], s["rows_quarantined"], s["status"]
        )  # fmt: skip
        assert rows_in == validated + quarantined
        day = dt.date.fromisoformat(partition)
        manifest = lake.manifest("validated", "transactions", day)
        if validated:
            assert manifest is not None and manifest["rows"] == validated
    # The source table held every row; the ledger accounts for every one of them.
    with psycopg2.connect(backends.source_postgres_uri) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM public.card_transactions")
        assert cur.fetchone()[0] == sum(v[0] for v in table.values())


def test_registry_lineage_matches_the_lake(production_run):
    summary, backends, s3, bucket = production_run
    from mlflywheel.lake import open_lake

    lake = open_lake(backends.lake_uri, s3_endpoint_url=backends.s3_endpoint_url)
    for version in summary["model_versions"]:
        manifest = json.loads(lake.get_bytes(f"snapshots/transactions/{version['snapshot_id']}/manifest.json"))
        for part in manifest["partitions"]:
            published = lake.manifest("validated", "transactions", dt.date.fromisoformat(part["partition"]))
            assert published is not None and published["version"] == part["version"]
    # MLflow's artifacts went to S3 through the tracking server.
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="mlflow/")
    assert listed.get("KeyCount", 0) > 0


def test_training_ran_on_the_gpu_worker_and_everything_else_on_the_general_one(production_run):
    """Celery: train_model went to the `gpu` queue and ran on the worker that consumes it; every
    other task ran on the general worker (each worker reports its own name as the hostname)."""
    _, backends, _, _ = production_run
    with psycopg2.connect(backends.airflow_db_uri.replace("+psycopg2", "")) as conn, conn.cursor() as cur:
        # Every task that ran (the latest try of each task instance, and earlier tries).
        cur.execute(
            "SELECT dag_id, task_id, queue, hostname FROM task_instance WHERE state IN ('success', 'failed')"
            " UNION ALL SELECT dag_id, task_id, queue, hostname FROM task_instance_history"
            " WHERE state IN ('success', 'failed')"
        )
        ran = cur.fetchall()
    training = [r for r in ran if r[1] == "train_model"]
    others = [r for r in ran if r[1] != "train_model"]
    assert len(training) >= 2, training  # the first champion and the drift retrain
    assert {(queue, host) for _, _, queue, host in training} == {("gpu", "worker-gpu")}
    assert {"ingest", "train", "drift_check"} <= {dag for dag, *_ in others}
    assert {(queue, host) for _, _, queue, host in others} == {("default", "worker")}


def test_the_loop_wrote_to_mlflow_as_the_service_account(production_run):
    """MLflow ran its basic-auth app: the accounts exist, and the experiments the loop created
    (training runs, drift reports) belong to the service account (MLflow grants a creator MANAGE)."""
    summary, backends, _, _ = production_run
    assert backends.mlflow_auth is not None
    database = Path(summary["home"]) / "mlflow" / "basic_auth.db"
    with contextlib.closing(sqlite3.connect(database)) as db:
        users = {name for (name,) in db.execute("SELECT username FROM users")}
        grants = db.execute(
            "SELECT u.username, p.resource_type, p.resource_pattern, p.permission FROM users u"
            " JOIN user_role_assignments a ON a.user_id = u.id JOIN role_permissions p ON p.role_id = a.role_id"
        ).fetchall()
    assert users == {"admin", "flywheel", "viewer"}
    service = {(kind, pattern) for user, kind, pattern, permission in grants if user == "flywheel" and permission == "MANAGE"}
    assert ("registered_model", "flywheel-transactions") in service
    assert len({pattern for kind, pattern in service if kind == "experiment"}) >= 2  # training and drift
    assert not [grant for grant in grants if grant[0] == "viewer"]  # the viewer reads by the default only
