"""The ingest DAG's tasks follow the source settings: landing files, a PostgreSQL extract, or
validation inside PostgreSQL (``FLYWHEEL_SOURCE_VALIDATION=postgres``)."""

from __future__ import annotations

import collections
import datetime as dt
import types
from pathlib import Path

import pytest

INGEST = Path(__file__).resolve().parents[2] / "dags" / "ingest.py"
POSTGRES = {
    "FLYWHEEL_SOURCE": "postgres",
    "FLYWHEEL_SOURCE_POSTGRES_URI": "postgresql://flywheel@127.0.0.1:5432/source",
    "FLYWHEEL_SOURCE_TABLE": "public.transactions",
}


def _ingest_dag(monkeypatch, tmp_path, **env: str):
    from airflow.dag_processing.dagbag import DagBag

    for name in ("FLYWHEEL_SOURCE", "FLYWHEEL_SOURCE_VALIDATION", "FLYWHEEL_LEDGER_URI", "FLYWHEEL_KEEP_RAW"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    monkeypatch.setenv("FLYWHEEL_LAKE_URI", (tmp_path / "lake").as_uri())
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    bag = DagBag(dag_folder=str(INGEST))  # parses the file afresh, with this environment
    assert bag.import_errors == {}
    return bag.dags["ingest"]


@pytest.mark.parametrize(
    ("env", "tasks"),
    [
        ({}, {"wait_for_landing", "ingest_raw", "validate"}),
        (POSTGRES, {"extract_from_postgres", "ingest_raw", "validate"}),
        (
            {**POSTGRES, "FLYWHEEL_SOURCE_VALIDATION": "lake"},
            {"extract_from_postgres", "ingest_raw", "validate"},
        ),
        ({**POSTGRES, "FLYWHEEL_SOURCE_VALIDATION": "postgres"}, {"validate"}),
        ({"FLYWHEEL_KEEP_RAW": "false"}, {"wait_for_landing", "validate"}),
        ({**POSTGRES, "FLYWHEEL_KEEP_RAW": "false"}, {"extract_from_postgres", "validate"}),
        ({**POSTGRES, "FLYWHEEL_SOURCE_VALIDATION": "postgres", "FLYWHEEL_KEEP_RAW": "false"}, {"validate"}),
        ({"FLYWHEEL_KEEP_RAW": "true"}, {"wait_for_landing", "ingest_raw", "validate"}),
    ],
)
def test_the_settings_choose_the_tasks(monkeypatch, tmp_path, env, tasks):
    dag = _ingest_dag(monkeypatch, tmp_path, **env)
    assert set(dag.task_ids) == tasks
    validate = dag.get_task("validate")
    assert [o.name for o in validate.outlets] == ["flywheel_validated_transactions"]  # downstream unchanged
    assert validate.retries >= 1 and validate.execution_timeout is not None


def test_validate_in_postgres_runs_the_pushdown_on_the_interval(monkeypatch, tmp_path):
    from mlflywheel.validation import pushdown

    dag = _ingest_dag(monkeypatch, tmp_path, **POSTGRES, FLYWHEEL_SOURCE_VALIDATION="postgres")
    calls = []
    summary = {"partition": "2026-11-05", "status": "validated", "rows_in": 3, "rows_validated": 3,
               "rows_quarantined": 0, "run_id": "manual__1"}  # fmt: skip

    def fake(lake, spec, day, **kwargs):
        calls.append((spec.name, day, kwargs))
        return summary

    monkeypatch.setattr(pushdown, "validate_in_postgres", fake)
    events = collections.defaultdict(types.SimpleNamespace)
    start = dt.datetime(2026, 11, 5, tzinfo=dt.UTC)
    task = dag.get_task("validate")
    assert (
        task.python_callable(data_interval_start=start, run_id="manual__1", outlet_events=events) == summary
    )
    [(dataset, day, kwargs)] = calls
    assert (dataset, day) == ("transactions", dt.date(2026, 11, 5))
    assert (kwargs["postgres_uri"], kwargs["table"], kwargs["run_id"]) == (
        POSTGRES["FLYWHEEL_SOURCE_POSTGRES_URI"],
        "public.transactions",
        "manual__1",
    )
    assert kwargs["max_failed_row_fraction"] == 0.2 and kwargs["ledger_sink"] is None
    [event] = events.values()
    assert event.extra == {
        k: summary[k] for k in ("partition", "status", "rows_in", "rows_validated", "rows_quarantined")
    }


def test_without_raw_validate_runs_the_single_pass_after_the_landing(monkeypatch, tmp_path):
    from mlflywheel.validation import single_pass

    dag = _ingest_dag(monkeypatch, tmp_path, FLYWHEEL_KEEP_RAW="false", FLYWHEEL_PARTITION_CHUNK_ROWS="1000")
    task = dag.get_task("validate")
    assert task.upstream_task_ids == {"wait_for_landing"}
    calls = []
    summary = {"partition": "2026-11-05", "status": "partially_quarantined", "rows_in": 3, "rows_validated": 2,
               "rows_quarantined": 1, "run_id": "manual__1"}  # fmt: skip

    def fake(lake, spec, day, **kwargs):
        calls.append((spec.name, day, kwargs))
        return summary

    monkeypatch.setattr(single_pass, "validate_landed", fake)
    events = collections.defaultdict(types.SimpleNamespace)
    start = dt.datetime(2026, 11, 5, tzinfo=dt.UTC)
    assert task.python_callable(data_interval_start=start, run_id="manual__1", outlet_events=events) == summary
    [(dataset, day, kwargs)] = calls
    assert (dataset, day) == ("transactions", dt.date(2026, 11, 5))
    assert kwargs == {"run_id": "manual__1", "max_failed_row_fraction": 0.2, "ledger_sink": None,
                      "chunk_rows": 1000, "engine": "arrow"}  # fmt: skip
    [event] = events.values()
    assert event.extra == {
        k: summary[k] for k in ("partition", "status", "rows_in", "rows_validated", "rows_quarantined")
    }
