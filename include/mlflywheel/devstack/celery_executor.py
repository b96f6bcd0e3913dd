"""Airflow's Celery executor for the test stack: a Redis broker and one worker process per queue set.

Production runs workers on separate hosts (compose: ``airflow-worker`` and ``airflow-worker-gpu``),
and Airflow records each task instance's ``hostname``. Here the workers share one machine, so each
worker process reports its own name instead (Airflow's ``[core] hostname_callable`` set to
:func:`worker_hostname` in that worker's environment): the task instances then say which worker
ran them, as they would across hosts.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

#: The variable a worker process's name travels in (read by :func:`worker_hostname`).
WORKER_NAME_ENV = "DEVSTACK_CELERY_WORKER_NAME"
DEFAULT_QUEUE = "default"  # Airflow's [operators] default_queue


@dataclass(frozen=True)
class CeleryWorker:
    """One ``airflow celery worker`` process: its name and the queues it consumes."""

    name: str
    queues: tuple[str, ...] = (DEFAULT_QUEUE,)
    concurrency: int = 2


def worker_hostname() -> str:
    """Airflow's ``hostname_callable`` for the workers of the test stack: the worker's name."""
    return os.environ.get(WORKER_NAME_ENV) or socket.getfqdn()


def executor_env(broker_url: str, result_backend_db_uri: str, key_prefix: str) -> dict[str, str]:
    """Airflow's configuration for the Celery executor (set on every component).

    ``key_prefix`` keeps this stack's queues apart from any other user of the same Redis.
    """
    return {
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CELERY__BROKER_URL": broker_url,
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + result_backend_db_uri,
        "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__GLOBAL_KEYPREFIX": key_prefix,
        "AIRFLOW__OPERATORS__DEFAULT_QUEUE": DEFAULT_QUEUE,
    }


def worker_command(airflow: str, worker: CeleryWorker) -> list[str]:
    return [
        airflow, "celery", "worker",
        "--queues", ",".join(worker.queues),
        "--concurrency", str(worker.concurrency),
        "--celery-hostname", f"{worker.name}@%h",
    ]  # fmt: skip


def worker_env(worker: CeleryWorker, log_server_port: int) -> dict[str, str]:
    """What differs between two workers on one machine: the name they report, the log server's port."""
    return {
        WORKER_NAME_ENV: worker.name,
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": f"{__name__}.worker_hostname",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(log_server_port),
    }


def forget_queues(broker_url: str, key_prefix: str) -> int:
    """Delete this stack's keys from the broker (its queues and bindings) once it has stopped."""
    import redis

    client = redis.Redis.from_url(broker_url, socket_timeout=5, socket_connect_timeout=5)
    keys = list(client.scan_iter(match=key_prefix + "*"))
    return client.delete(*keys) if keys else 0
