"""The Flywheel plugin in a running Airflow 3.3 API server (the embedded stack, real auth).

Starts Airflow (SQLite) and MLflow on free loopback ports under a temporary home (about a
minute), writes one ledger summary into the stack's lake, then checks: the plugin is listed with
its views and no import error; the page needs authentication (401/403 and nothing else for an
anonymous caller) and answers an authenticated one (Bearer token or the UI's ``_token`` cookie)
with its headings; an unknown day is a readable 404. Then the extra links on task instances: runs of
``ingest``, ``drift_check`` and ``train`` triggered through the REST API (their DAGs stay paused, so
nothing runs; the task instances exist), one of them with a version registered under its id; the
links endpoint answers the Flywheel buttons of the tasks they concern, none on the others, and
every cockpit link opens its page for a logged-in user.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
import requests
from cockpit_records import register_version
from mlflywheel import ledger, registry
from mlflywheel.cockpit import links
from mlflywheel.devstack.stack import EmbeddedStack, free_port
from mlflywheel.lake import keys, lake_from_settings

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

DAY = dt.date(2026, 11, 20)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
    home = tmp_path_factory.mktemp("flywheel-plugin")
    running = EmbeddedStack(home=home, api_port=free_port(), mlflow_port=free_port())
    running.start()
    try:
        settings = running.settings()
        ledger.write_summary(lake_from_settings(settings), {
            "dataset": settings.dataset, "partition": DAY.isoformat(), "status": "partially_quarantined",
            "rows_in": 100, "rows_validated": 97, "rows_quarantined": 3,
            "reasons": {"amount out of range": 2, "channel not in vocabulary": 1},
            "partition_failures": [], "run_id": "scheduled__2026-11-20T00:00:00+00:00",
            "report_key": keys.validation_report_key(settings.dataset, DAY),
        })  # fmt: skip
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def token(stack: EmbeddedStack) -> str:
    return stack.api().token()


def test_plugin_is_listed_with_its_views(stack: EmbeddedStack, token: str) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    errors = requests.get(f"{stack.api_url}/api/v2/plugins/importErrors", headers=headers, timeout=30).json()
    assert errors["total_entries"] == 0, errors
    plugins = requests.get(f"{stack.api_url}/api/v2/plugins", headers=headers, timeout=30).json()["plugins"]
    flywheel = next(p for p in plugins if p["name"] == "flywheel")
    views = {v["destination"]: v for v in flywheel["external_views"]}
    assert set(views) == {"nav", "dag", "dag_run"}
    assert views["nav"]["href"] == "/flywheel/" and views["nav"]["name"] == "Flywheel"
    assert "{DAG_ID}" in views["dag"]["href"] and "{RUN_ID}" in views["dag_run"]["href"]
    assert flywheel["fastapi_apps"][0]["url_prefix"] == "/flywheel"
    # Global extra links, listed by class ("<flywheel_plugin.ModelVersionLink object>"), one per name.
    listed = flywheel["global_operator_extra_links"]
    classes = ("ModelVersionLink", "MlflowRunLink", "DriftReportLink", "ValidationReportLink", "QuarantineLink")
    assert len(listed) == len(classes) and all(any(f".{c} " in e for e in listed) for c in classes), listed


def test_anonymous_callers_get_nothing(stack: EmbeddedStack) -> None:
    for path in ("/flywheel/", f"/flywheel/report/validation/{DAY.isoformat()}", "/flywheel/dag/train"):
        answer = requests.get(f"{stack.api_url}{path}", timeout=30)
        assert answer.status_code in (401, 403), (path, answer.status_code)
        assert "Ingestion ledger" not in answer.text
    forged = requests.get(f"{stack.api_url}/flywheel/", cookies={"_token": "forged"}, timeout=30)
    assert forged.status_code in (401, 403)


def test_page_for_an_authenticated_user(stack: EmbeddedStack, token: str) -> None:
    for auth in ({"headers": {"Authorization": f"Bearer {token}"}}, {"cookies": {"_token": token}}):
        answer = requests.get(f"{stack.api_url}/flywheel/", timeout=60, **auth)
        assert answer.status_code == 200, answer.text[:500]
        page = answer.text
        for heading in ("Champion", "Drift history", "Ingestion ledger"):
            assert heading in page
        assert "no champion yet" in page and "no drift check has run" in page  # empty states say why
        assert f'href="/flywheel/report/validation/{DAY.isoformat()}"' in page
        assert "amount out of range (2)" in page


def test_unknown_day_is_a_readable_404(stack: EmbeddedStack, token: str) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    answer = requests.get(f"{stack.api_url}/flywheel/report/validation/2001-01-01", headers=headers, timeout=30)
    assert answer.status_code == 404
    assert "was not ingested" in answer.text and "Traceback" not in answer.text
    answer = requests.get(f"{stack.api_url}/flywheel/drift/yesterday", headers=headers, timeout=30)
    assert answer.status_code == 404 and "expected YYYY-MM-DD" in answer.text
    answer = requests.get(f"{stack.api_url}/flywheel/?days=-3", headers=headers, timeout=30)
    assert answer.status_code == 400 and "days must be between" in answer.text


def test_dag_run_tab_of_a_train_run_that_registered_nothing(stack: EmbeddedStack, token: str) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    run_id = "manual__2026-11-28T02:00:00+00:00"
    answer = requests.get(f"{stack.api_url}/flywheel/dag/train/run/{run_id}", headers=headers, timeout=60)
    assert answer.status_code == 404 and "no model version" in answer.text


# --- extra links on task instances -----------------------------------------------------------
LINK_RUNS = {  # dag_id -> (run id, data interval start, end): run ids without a date, so the day
    # can only come from the run's data interval in Airflow's metadata DB
    "ingest": ("manual__links-ingest", "2026-11-20T00:00:00Z", "2026-11-21T00:00:00Z"),
    "drift_check": ("manual__links-drift", "2026-11-20T04:00:00Z", "2026-11-21T04:00:00Z"),
    "train": ("manual__links-train", "2026-11-20T02:00:00Z", "2026-11-21T02:00:00Z"),
}
UNTRAINED_RUN = "manual__links-train-untrained"  # a train run that registered nothing
VALIDATION_HTML = "<html><body><h1>validation report of the links test</h1></body></html>"


@pytest.fixture(scope="module")
def link_runs(stack: EmbeddedStack) -> dict[str, Any]:
    """Records for the links' pages, a version registered by the train run, and the DAG runs."""
    settings = stack.settings()
    lake = lake_from_settings(settings)
    lake.put_bytes(keys.validation_report_key(settings.dataset, DAY), VALIDATION_HTML.encode())
    lake.put_json(keys.drift_report_key(settings.dataset, DAY), {
        "dataset": settings.dataset, "day": DAY.isoformat(), "status": "no_drift", "triggers": [],
        "drifted_features": [], "champion_version": "1", "data_drift": {"threshold": 0.05, "features": []},
        "prediction_drift": None, "performance": None, "summary": "no drift",
    })  # fmt: skip
    version = register_version(settings, LINK_RUNS["train"][0])
    mlflow_run = registry.get_version(settings, version).run_id

    stack.wait_for_dags(list(LINK_RUNS))
    api = stack.api()
    runs = [(dag_id, *run) for dag_id, run in LINK_RUNS.items()]
    runs.append(("train", UNTRAINED_RUN, "2026-11-21T02:00:00Z", "2026-11-22T02:00:00Z"))
    for dag_id, run_id, start, end in runs:
        # The DAGs are paused (AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION): the runs stay queued, but
        # their task instances exist, which is all the links endpoint needs.
        api.request("POST", f"/dags/{dag_id}/dagRuns", json={
            "dag_run_id": run_id, "logical_date": end, "data_interval_start": start, "data_interval_end": end,
        })  # fmt: skip
    return {"version": version, "mlflow_run": mlflow_run}


def task_links(stack: EmbeddedStack, token: str, dag_id: str, run_id: str, task_id: str) -> dict[str, str | None]:
    answer = requests.get(
        f"{stack.api_url}/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task_id}/links",
        headers={"Authorization": f"Bearer {token}"}, timeout=60,
    )  # fmt: skip
    assert answer.status_code == 200, (dag_id, task_id, answer.status_code, answer.text[:500])
    return answer.json()["extra_links"]


def flywheel_links(found: dict[str, str | None]) -> dict[str, str]:
    """The Flywheel buttons the UI shows: the links with a URL (Airflow answers null for the others)."""
    return {name: url for name, url in found.items() if name in links.NAMES and url}


def test_task_instances_show_the_flywheel_links(stack: EmbeddedStack, token: str, link_runs: dict) -> None:
    day = DAY.isoformat()
    train_links = {"Model version": f"/flywheel/version/{link_runs['version']}",
                   "MLflow run": f"{stack.mlflow_url}/#/runs/{link_runs['mlflow_run']}"}  # fmt: skip
    expected = {
        ("ingest", "validate"): {"Validation report": f"/flywheel/report/validation/{day}",
                                 "Quarantine": f"/flywheel/partition/{day}"},
        ("drift_check", "check_drift"): {"Drift report": f"/flywheel/drift/{day}"},
        ("train", "train_model"): train_links,
        ("train", "evaluate_and_promote"): train_links,
    }  # fmt: skip
    for (dag_id, task_id), want in expected.items():
        found = task_links(stack, token, dag_id, LINK_RUNS[dag_id][0], task_id)
        assert set(links.NAMES) <= set(found), found  # every global link is asked for on every task
        assert flywheel_links(found) == want, (dag_id, task_id, found)


def test_other_task_instances_show_no_flywheel_link(stack: EmbeddedStack, token: str, link_runs: dict) -> None:
    others = [("ingest", "wait_for_landing"), ("ingest", "ingest_raw"), ("drift_check", "wait_for_partition"),
              ("drift_check", "request_retraining"), ("drift_check", "regate_undecided"),
              ("train", "wait_for_window"), ("train", "build_snapshot")]  # fmt: skip
    for dag_id, task_id in others:
        assert flywheel_links(task_links(stack, token, dag_id, LINK_RUNS[dag_id][0], task_id)) == {}, task_id


def test_a_train_run_that_registered_nothing_links_its_tab(stack: EmbeddedStack, token: str, link_runs: dict) -> None:
    found = flywheel_links(task_links(stack, token, "train", UNTRAINED_RUN, "train_model"))
    assert found == {"Model version": f"/flywheel/dag/train/run/{quote(UNTRAINED_RUN, safe='')}"}  # no MLflow run


def test_following_the_links_opens_their_pages(stack: EmbeddedStack, token: str, link_runs: dict) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    day = DAY.isoformat()
    pages = {
        ("ingest", "validate", "Validation report"): "validation report of the links test",
        ("ingest", "validate", "Quarantine"): "amount out of range",
        ("drift_check", "check_drift", "Drift report"): f"Drift check {day}",
        ("train", "train_model", "Model version"): f"model version {link_runs['version']}",
    }
    for (dag_id, task_id, name), content in pages.items():
        url = task_links(stack, token, dag_id, LINK_RUNS[dag_id][0], task_id)[name]
        assert url and url.startswith("/flywheel/"), url  # same origin: the UI opens it in place
        answer = requests.get(f"{stack.api_url}{url}", headers=headers, timeout=60)
        assert answer.status_code == 200, (url, answer.status_code, answer.text[:500])
        assert content in answer.text, (url, answer.text[:1000])
        assert requests.get(f"{stack.api_url}{url}", timeout=30).status_code in (401, 403)  # behind the login
    # The MLflow link opens the stack's MLflow UI (a single-page app: the run is in the fragment).
    mlflow_link = task_links(stack, token, "train", LINK_RUNS["train"][0], "train_model")["MLflow run"]
    assert mlflow_link and requests.get(mlflow_link, timeout=30).status_code == 200
    errors = requests.get(f"{stack.api_url}/api/v2/plugins/importErrors", headers=headers, timeout=30).json()
    assert errors["total_entries"] == 0, errors
