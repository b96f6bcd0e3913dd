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

    for name in ("FLYWHEEL_SOURCE", "FLYWHEEL_SOURCE_VALIDATION", "FLYWHEEL_LEDGER_URI"):
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
