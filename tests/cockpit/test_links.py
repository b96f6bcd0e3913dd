"""The extra links on Flywheel's task instances (``mlflywheel.cockpit.links``), without an Airflow server.

Every link of every task it concerns, ``""`` for every other task and DAG and for the MLflow run
when MLflow has no UI; the day a run worked on as its DAG computes it; the registry lookup of a
train run's version (real MLflow on SQLite), asked once, remembered, and never waited on for long;
and the plugin's registration of one global link per name.
"""

from __future__ import annotations

import ast
import datetime as dt
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from cockpit_records import register_version
from mlflywheel.cockpit import links
from mlflywheel.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
HTTP = Settings.from_env({}, mlflow_tracking_uri="http://mlflow.example:5000/")
SQLITE = Settings.from_env({}, mlflow_tracking_uri="sqlite:////tmp/flywheel-links-test/mlflow.db")
UTC = dt.UTC
TRAINED = links.Training(version="7", mlflow_run_id="abc123")
TRAIN_RUN = "scheduled__2026-11-21T02:00:00+00:00"


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    links.clear_cache()
    yield
    links.clear_cache()


def facts(run_id: str = TRAIN_RUN, **kw) -> links.RunFacts:
    return links.RunFacts(run_id=run_id, **kw)


# --- the mapping ---------------------------------------------------------------------------
@pytest.mark.parametrize("task", ["train_model", "evaluate_and_promote"])
def test_train_tasks_link_the_model_version_and_the_mlflow_run(task: str) -> None:
    got = links.links("train", task, facts(training=TRAINED), HTTP)
    assert got == {
        "Model version": "/flywheel/version/7",
        "MLflow run": "http://mlflow.example:5000/#/runs/abc123",
        "Drift report": "",
        "Validation report": "",
        "Quarantine": "",
    }


def test_no_mlflow_run_link_when_mlflow_has_no_ui() -> None:
    got = links.links("train", "train_model", facts(training=TRAINED), SQLITE)
    assert got["MLflow run"] == ""
    assert got["Model version"] == "/flywheel/version/7"  # the cockpit's page needs no MLflow UI


def test_a_train_run_that_registered_nothing_links_its_cockpit_tab() -> None:
    got = links.links("train", "train_model", facts(training=None), HTTP)
    assert got["Model version"] == "/flywheel/dag/train/run/scheduled__2026-11-21T02%3A00%3A00%2B00%3A00"
    assert got["MLflow run"] == ""
    assert links.link("MLflow run", "train", "train_model", facts(training=links.Training("3")), HTTP) == ""


def test_drift_check_links_the_checked_days_drift_page() -> None:
    end = dt.datetime(2026, 11, 21, 4, 0, tzinfo=UTC)
    got = links.links("drift_check", "check_drift", facts("manual__whatever", data_interval_end=end), HTTP)
    assert got == {"Model version": "", "MLflow run": "", "Drift report": "/flywheel/drift/2026-11-20",
                   "Validation report": "", "Quarantine": ""}  # fmt: skip


def test_drift_day_without_an_interval_comes_from_the_run_id() -> None:
    scheduled = facts("scheduled__2026-11-21T04:00:00+00:00")
    assert (
        links.link("Drift report", "drift_check", "check_drift", scheduled, HTTP)
        == "/flywheel/drift/2026-11-20"
    )
    assert links.link("Drift report", "drift_check", "check_drift", facts("manual__no-date"), HTTP) == ""


def test_ingest_validate_links_the_partitions_report_and_quarantine() -> None:
    start = dt.datetime(2026, 11, 20, tzinfo=UTC)
    got = links.links("ingest", "validate", facts("manual__x", data_interval_start=start,
                                                 data_interval_end=start + dt.timedelta(days=1)), HTTP)  # fmt: skip
    assert got == {"Model version": "", "MLflow run": "", "Drift report": "",
                   "Validation report": "/flywheel/report/validation/2026-11-20",
                   "Quarantine": "/flywheel/partition/2026-11-20"}  # fmt: skip


def test_ingest_day_is_the_utc_day_of_the_interval_start_else_the_run_ids_date() -> None:
    # An aware interval in another zone is the same instant: the partition is its UTC day.
    start = dt.datetime(2026, 11, 20, 1, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert links.run_day("ingest", facts("x", data_interval_start=start)) == dt.date(2026, 11, 19)
    assert links.run_day("ingest", facts("scheduled__2026-11-20T00:00:00+00:00")) == dt.date(2026, 11, 20)
    assert links.run_day("ingest", facts("manual__2026-13-45")) is None
    assert links.link("Quarantine", "ingest", "validate", facts("manual__no-date"), HTTP) == ""


UNRELATED = [
    ("train", "wait_for_window"), ("train", "build_snapshot"),
    ("drift_check", "wait_for_partition"), ("drift_check", "request_retraining"), ("drift_check", "regate_undecided"),
    ("ingest", "wait_for_landing"), ("ingest", "extract_from_postgres"), ("ingest", "ingest_raw"),
    ("rollback", "rollback_champion"), ("some_other_dag", "validate"), ("some_other_dag", "train_model"),
]  # fmt: skip


@pytest.mark.parametrize(("dag_id", "task_id"), UNRELATED)
def test_no_link_on_other_tasks_and_dags(dag_id: str, task_id: str) -> None:
    everything = facts(
        "scheduled__2026-11-20T00:00:00+00:00", training=TRAINED,
        data_interval_start=dt.datetime(2026, 11, 20, tzinfo=UTC), data_interval_end=dt.datetime(2026, 11, 21, tzinfo=UTC),
    )  # fmt: skip
    assert links.links(dag_id, task_id, everything, HTTP) == dict.fromkeys(links.NAMES, "")
    assert not any(links.concerns(name, dag_id, task_id) for name in links.NAMES)


def test_a_base_path_prefixes_the_cockpit_links() -> None:
    got = links.links("ingest", "validate", facts("scheduled__2026-11-20T00:00:00+00:00"), HTTP,
                      base="/airflow/flywheel/")  # fmt: skip
    assert got["Quarantine"] == "/airflow/flywheel/partition/2026-11-20"


def test_the_linked_tasks_are_real_tasks_of_the_dags() -> None:
    """Every (dag_id, task_id) of the table exists in dags/*.py (or is the training backend's task)."""

    def strings(tree: ast.AST, keyword: str) -> list[str]:
        return [node.value.value for node in ast.walk(tree) if isinstance(node, ast.keyword)
                and node.arg == keyword and isinstance(node.value, ast.Constant)]  # fmt: skip

    declared: dict[str, set[str]] = {}
    for path in (ROOT / "dags").glob("*.py"):
        tree = ast.parse(path.read_text())
        tasks = {
            node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef) and node.decorator_list
        }
        for dag_id in strings(tree, "dag_id"):
            declared.setdefault(dag_id, set()).update(tasks)
    backend = ROOT / "include" / "mlflywheel" / "orchestration" / "training_backends" / "local.py"
    declared["train"].update(strings(ast.parse(backend.read_text()), "task_id"))
    for dag_id, task_id in links.TASK_LINKS:
        assert task_id in declared.get(dag_id, set()), (dag_id, task_id, declared.get(dag_id))


# --- gathering the facts of one task instance ---------------------------------------------
def test_task_link_asks_only_for_what_the_task_needs() -> None:
    asked: list[str] = []

    def interval():
        asked.append("interval")
        return dt.datetime(2026, 11, 20, tzinfo=UTC), dt.datetime(2026, 11, 21, tzinfo=UTC)

    def lookup(settings: Settings, run_id: str) -> links.Training | None:
        asked.append(f"registry:{run_id}")
        return TRAINED

    args = {"interval": interval, "lookup": lookup}
    assert links.task_link("Model version", "ingest", "ingest_raw", "r1", HTTP, **args) == ""
    assert links.task_link("Model version", "rollback", "rollback_champion", "r1", HTTP, **args) == ""
    assert asked == []  # unrelated tasks cost nothing
    assert (
        links.task_link("Quarantine", "ingest", "validate", "r1", HTTP, **args)
        == "/flywheel/partition/2026-11-20"
    )
    assert asked == ["interval"]
    assert (
        links.task_link("Drift report", "drift_check", "check_drift", "r2", HTTP, **args)
        == "/flywheel/drift/2026-11-20"
    )
    assert asked == ["interval", "interval"]
    asked.clear()
    assert (
        links.task_link("Model version", "train", "train_model", "t1", HTTP, **args) == "/flywheel/version/7"
    )
    assert links.task_link("MLflow run", "train", "train_model", "t1", HTTP, **args).endswith(
        "/#/runs/abc123"
    )
    assert links.task_link("MLflow run", "train", "evaluate_and_promote", "t1", HTTP, **args).endswith(
        "/#/runs/abc123"
    )
    assert asked == ["registry:t1"]  # one lookup for every link of the run


def test_a_miss_is_asked_again_and_a_found_version_is_remembered(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = iter([None, TRAINED, links.Training("8")])
    calls: list[str] = []

    def lookup(settings: Settings, run_id: str) -> links.Training | None:
        calls.append(run_id)
        return next(answers)

    monkeypatch.setattr(links, "MISSING_TTL_S", 0.0)
    assert links.training_of_run(HTTP, "t", lookup=lookup) is None  # still training
    time.sleep(0.01)
    assert links.training_of_run(HTTP, "t", lookup=lookup) == TRAINED  # registered since
    assert links.training_of_run(HTTP, "t", lookup=lookup) == TRAINED  # remembered
    assert calls == ["t", "t"]


def test_a_slow_or_failing_registry_never_holds_the_links_up() -> None:
    release = threading.Event()

    def slow(settings: Settings, run_id: str) -> links.Training | None:
        release.wait(10)
        return TRAINED

    started = time.monotonic()
    try:
        assert links.training_of_run(HTTP, "slow", lookup=slow, timeout=0.2) is None
        assert links.task_link("Model version", "train", "train_model", "slow", HTTP,
                               interval=lambda: (None, None), lookup=slow) == "/flywheel/dag/train/run/slow"  # fmt: skip
        assert time.monotonic() - started < links.LOOKUP_TIMEOUT_S + 2
    finally:
        release.set()
    assert links.training_of_run(HTTP, "slow", lookup=slow) == TRAINED  # the lookup in flight answered

    def broken(settings: Settings, run_id: str) -> links.Training | None:
        raise ConnectionError("registry down")

    assert links.training_of_run(HTTP, "broken", lookup=broken) is None


def test_the_first_lookup_waits_for_mlflows_import_not_only_the_time_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflywheel import registry

    def slow_import(settings: Settings) -> None:
        time.sleep(0.5)  # MLflow's cold import in a fresh API server takes seconds

    monkeypatch.setattr(registry, "configure_mlflow", slow_import)
    monkeypatch.setattr(registry, "find_version_by_run_tag",
                        lambda settings, key, value: SimpleNamespace(version=4, run_id="r4"))  # fmt: skip
    assert links.training_of_run(HTTP, "cold", timeout=0.1) == links.Training("4", "r4")

    def no_mlflow(settings: Settings) -> None:
        raise ImportError("no mlflow here")

    links.clear_cache()
    monkeypatch.setattr(registry, "configure_mlflow", no_mlflow)
    started = time.monotonic()
    assert links.training_of_run(HTTP, "broken") is None
    assert time.monotonic() - started < links.LOOKUP_TIMEOUT_S + 2


def test_find_training_reads_the_registry(tmp_path: Path) -> None:
    """The real lookup on MLflow (SQLite): the version tagged with the train run's id, and its run."""
    settings = Settings.from_env({}, data_dir=tmp_path, mlflow_tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
                                 mlflow_artifact_root=str(tmp_path / "artifacts"))  # fmt: skip
    version = register_version(settings, TRAIN_RUN)
    found = links.find_training(settings, TRAIN_RUN)
    assert found is not None and found.version == version and found.mlflow_run_id
    assert links.find_training(settings, "manual__never-trained") is None


# --- the plugin's registration ---------------------------------------------------------------
def test_the_plugin_registers_one_global_link_per_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT / "plugins"))
    sys.modules.pop("flywheel_plugin", None)
    plugin = pytest.importorskip("flywheel_plugin")
    registered = plugin.FlywheelPlugin.global_operator_extra_links
    assert [link.name for link in registered] == list(links.NAMES)
    assert len({type(link) for link in registered}) == len(links.NAMES)  # /api/v2/plugins lists them by class

    monkeypatch.setattr(
        plugin, "_run_interval", lambda dag_id, run_id: (dt.datetime(2026, 11, 20, tzinfo=UTC), None)
    )
    key = SimpleNamespace(dag_id="ingest", task_id="validate", run_id="manual__x", map_index=-1, try_number=1)
    by_name = {link.name: link for link in registered}
    assert by_name["Quarantine"].get_link(None, ti_key=key) == "/flywheel/partition/2026-11-20"
    assert by_name["Model version"].get_link(None, ti_key=key) == ""
    other = SimpleNamespace(dag_id="rollback", task_id="rollback_champion", run_id="manual__x")
    assert all(link.get_link(None, ti_key=other) == "" for link in registered)

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(plugin.links, "task_link", broken)
    assert by_name["Quarantine"].get_link(None, ti_key=key) == ""  # never an exception into the API
