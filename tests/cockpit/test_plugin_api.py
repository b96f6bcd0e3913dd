"""The Flywheel plugin in a running Airflow 3.3 API server (the embedded stack, real auth).

Starts Airflow standalone and MLflow on free loopback ports under a temporary home (about a
minute), writes one ledger summary into the stack's lake, then checks: the plugin is listed with
its views and no import error; the page needs authentication (401/403 and nothing else for an
anonymous caller) and answers an authenticated one (Bearer token or the UI's ``_token`` cookie)
with its headings; an unknown day is a readable 404.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
import requests
from mlflywheel import ledger
from mlflywheel.devstack.stack import ADMIN_USER, EmbeddedStack, free_port
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
    answer = requests.post(
        f"{stack.api_url}/auth/token", json={"username": ADMIN_USER, "password": stack.password}, timeout=30
    )
    answer.raise_for_status()
    return answer.json()["access_token"]


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
