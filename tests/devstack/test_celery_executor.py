"""The test stack's Celery executor: configuration, worker commands and the broker's clean-up."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

from mlflywheel.devstack import celery_executor
from mlflywheel.devstack.celery_executor import CeleryWorker
from mlflywheel.devstack.production import ProductionBackends

REDIS_URL = "redis://127.0.0.1:6379/0"


def test_each_worker_reports_its_own_name_as_the_hostname():
    worker = CeleryWorker("worker-gpu", ("gpu",), concurrency=1)
    env = {**os.environ, **celery_executor.worker_env(worker, 8799)}
    # Airflow resolves hostname_callable by import path in the task process: do the same.
    code = (
        "from airflow.sdk.api.client import get_hostname; print(get_hostname())"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "worker-gpu"
    assert env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"] == "8799"


def test_worker_command_consumes_only_its_queues():
    cmd = celery_executor.worker_command("airflow", CeleryWorker("worker-gpu", ("gpu",), concurrency=1))
    assert cmd[:3] == ["airflow", "celery", "worker"]
    assert cmd[cmd.index("--queues") + 1] == "gpu"
    assert cmd[cmd.index("--concurrency") + 1] == "1"


def test_executor_env_keeps_results_in_the_metadata_database():
    env = celery_executor.executor_env(REDIS_URL, "postgresql+psycopg2://u@h/db", "flywheel-1:")
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"] == "db+postgresql+psycopg2://u@h/db"
    assert env["AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__GLOBAL_KEYPREFIX"] == "flywheel-1:"


def test_production_backends_add_a_worker_for_the_training_queue():
    base = dict.fromkeys(
        ("airflow_db_uri", "mlflow_backend_uri", "mlflow_artifacts_destination", "lake_uri", "s3_endpoint_url",
         "source_postgres_uri", "source_table", "ledger_uri"), "x")  # fmt: skip
    with_gpu = ProductionBackends(**base, celery_broker_url=REDIS_URL, training_queue="gpu")
    assert [(w.name, w.queues) for w in with_gpu.celery_workers()] == [
        ("worker", ("default",)), ("worker-gpu", ("gpu",))
    ]  # fmt: skip
    assert with_gpu.env()["FLYWHEEL_TRAINING_QUEUE"] == "gpu"
    assert [w.name for w in ProductionBackends(**base).celery_workers()] == ["worker"]
    assert "FLYWHEEL_TRAINING_QUEUE" not in ProductionBackends(**base).env()


def test_forget_queues_deletes_only_this_stacks_keys():
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_timeout=5)
    mine, other = f"flywheel-test-{uuid.uuid4().hex[:6]}:", f"flywheel-other-{uuid.uuid4().hex[:6]}:"
    client.set(mine + "_kombu.binding.gpu", "1")
    client.rpush(mine + "gpu", "task")
    client.set(other + "_kombu.binding.gpu", "1")
    try:
        assert celery_executor.forget_queues(REDIS_URL, mine) == 2
        assert list(client.scan_iter(match=mine + "*")) == []
        assert client.exists(other + "_kombu.binding.gpu")
    finally:
        client.delete(other + "_kombu.binding.gpu")
