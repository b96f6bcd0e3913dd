"""Flywheel's Airflow plugin: registration and routing only.

Registers a FastAPI app (mounted by the API server under ``/flywheel``) and external views: a
"Flywheel" entry in the navigation, and tabs on the ``train`` / ``drift_check`` / ``ingest`` DAG
pages and on their runs. Every route sits behind Airflow's own authentication (the API server
mounts plugin apps without it): a bearer token, or the UI's ``_token`` cookie in the same-origin
iframe. What the pages show comes from :mod:`mlflywheel.cockpit` (no logic here).

Also registers global operator extra links (TaskFlow tasks take no ``extra_links``): buttons on
the task instances of ``train``, ``drift_check`` and ``ingest`` (model version, MLflow run, drift
report, validation report, quarantine). The API server calls ``get_link`` for every task of every
DAG; which task shows which button, and where it goes, is :mod:`mlflywheel.cockpit.links`.

Access: the whole app needs Airflow's Plugins view permission; each page also needs read access
to the DAG its records belong to (train, drift_check, ingest; a run's tab: that DAG's runs). The
one action a page offers, the link to answer a waiting approval, is shown only to callers who
may answer it (:func:`mlflywheel.orchestration.access.may_answer_approvals`).
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import ClassVar

from airflow.api_fastapi.auth.managers.models.resource_details import AccessView, DagAccessEntity
from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag, requires_access_view
from airflow.plugins_manager import AirflowPlugin
from airflow.sdk import BaseOperatorLink
from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse
from mlflywheel.cockpit import links
from mlflywheel.orchestration.service_guard import ServiceAccountGuard

log = logging.getLogger("flywheel.plugin")

PREFIX = "/flywheel"

app = FastAPI(
    title="Flywheel cockpit",
    dependencies=[Depends(requires_access_view(AccessView.PLUGINS))],
    docs_url=None,
    redoc_url=None,
    openapi_url=None,
)


def _context():
    from mlflywheel.lake import lake_from_settings
    from mlflywheel.settings import Settings

    settings = Settings.from_env()
    return settings, lake_from_settings(settings)


def _may_answer(user) -> bool:
    """Whether the caller may answer approval requests (Airflow's checks); no on any failure."""
    try:
        from mlflywheel.orchestration.access import may_answer_approvals
        from mlflywheel.settings import Settings

        return may_answer_approvals(user, Settings.from_env().approver_roles)
    except Exception:
        log.warning("could not check whether %s may answer approvals", user, exc_info=True)
        return False


# Each page also needs read access to the DAG whose records it shows (Airflow's own checks).
READS_TRAIN = [Depends(requires_access_dag("GET", param_dag_id="train"))]
READS_DRIFT_CHECK = [Depends(requires_access_dag("GET", param_dag_id="drift_check"))]
READS_INGEST = [Depends(requires_access_dag("GET", param_dag_id="ingest"))]


def _html(page, *, status: int | None = None) -> HTMLResponse:
    from mlflywheel.cockpit.pages import respond

    code, body = respond(page, base=PREFIX)
    return HTMLResponse(body, status_code=status if status and code == 200 else code)


@app.get("/", response_class=HTMLResponse, dependencies=READS_TRAIN + READS_DRIFT_CHECK + READS_INGEST)
def overview(request: Request, user: GetUserDep) -> HTMLResponse:
    from mlflywheel.cockpit import pages

    def page() -> str:
        settings, lake = _context()
        query = request.query_params
        return pages.overview_page(settings, lake, days=query.get("days"), versions=query.get("versions"),
                                   base=PREFIX, may_answer=_may_answer(user))  # fmt: skip

    return _html(page)


@app.get("/dag/{dag_id}", response_class=HTMLResponse, dependencies=[Depends(requires_access_dag("GET"))])
def dag_tab(dag_id: str, request: Request, user: GetUserDep) -> HTMLResponse:
    from mlflywheel.cockpit import pages

    def page() -> str:
        settings, lake = _context()
        return pages.dag_page(settings, lake, dag_id, days=request.query_params.get("days"), base=PREFIX,
                              may_answer=_may_answer(user))  # fmt: skip

    return _html(page)


@app.get("/dag/{dag_id}/run/{run_id:path}", response_class=HTMLResponse,
         dependencies=[Depends(requires_access_dag("GET", DagAccessEntity.RUN))])  # fmt: skip
def run_tab(dag_id: str, run_id: str, user: GetUserDep) -> HTMLResponse:
    from mlflywheel.cockpit import pages

    def page() -> str:
        settings, lake = _context()
        return pages.run_page(settings, lake, dag_id, run_id, data_interval_end=_interval_end(dag_id, run_id),
                              base=PREFIX, may_answer=_may_answer(user))  # fmt: skip

    return _html(page)


@app.get("/drift/{day}", response_class=HTMLResponse, dependencies=READS_DRIFT_CHECK)
def drift_day(day: str) -> HTMLResponse:
    from mlflywheel.cockpit import pages

    return _html(lambda: pages.drift_day_page(*_context(), day, base=PREFIX))


@app.get("/partition/{day}", response_class=HTMLResponse, dependencies=READS_INGEST)
def partition(day: str) -> HTMLResponse:
    from mlflywheel.cockpit import pages

    return _html(lambda: pages.partition_page(*_context(), day, base=PREFIX))


@app.get("/version/{version}", response_class=HTMLResponse, dependencies=READS_TRAIN)
def version(version: str, user: GetUserDep) -> HTMLResponse:
    from mlflywheel.cockpit import pages

    return _html(lambda: pages.version_page(_context()[0], version, base=PREFIX, may_answer=_may_answer(user)))


@app.get("/report/validation/{day}", response_class=HTMLResponse, dependencies=READS_INGEST)
def validation_report(day: str) -> HTMLResponse:
    from mlflywheel.cockpit import pages

    return _html(lambda: pages.validation_report(*_context(), day))


@app.get("/report/drift/{day}", response_class=HTMLResponse, dependencies=READS_DRIFT_CHECK)
def drift_report(day: str) -> HTMLResponse:
    from mlflywheel.cockpit import pages

    return _html(lambda: pages.drift_report(*_context(), day))


def _interval_end(dag_id: str, run_id: str) -> dt.datetime | None:
    """The run's data interval end (a hint for the drift_check tab; None when unknown, and the
    read model falls back to the run id's timestamp)."""
    return _run_interval(dag_id, run_id)[1]


def _run_interval(dag_id: str, run_id: str) -> tuple[dt.datetime | None, dt.datetime | None]:
    """The run's data interval from Airflow's metadata DB (the API server may read it);
    ``(None, None)`` when the run is unknown or the read fails."""
    try:
        from airflow.models.dagrun import DagRun
        from airflow.utils.session import create_session

        with create_session() as session:
            run = session.query(DagRun).filter(DagRun.dag_id == dag_id, DagRun.run_id == run_id).one_or_none()
            return (run.data_interval_start, run.data_interval_end) if run is not None else (None, None)
    except Exception:  # only a hint: the cockpit falls back to the run id's timestamp
        log.debug("no data interval for %s/%s", dag_id, run_id, exc_info=True)
        return None, None


def _views() -> list[dict]:
    # One view per destination serves every cockpit DAG: the UI fills in {DAG_ID} / {RUN_ID};
    # other DAGs' tabs answer with a readable 404 page.
    return [
        {"name": "Flywheel", "href": f"{PREFIX}/", "destination": "nav", "url_route": "flywheel",
         "nav_top_level": True},
        {"name": "Flywheel", "href": f"{PREFIX}/dag/{{DAG_ID}}", "destination": "dag", "url_route": "flywheel-dag"},
        {"name": "Flywheel", "href": f"{PREFIX}/dag/{{DAG_ID}}/run/{{RUN_ID}}", "destination": "dag_run",
         "url_route": "flywheel-run"},
    ]  # fmt: skip


def _public_prefix() -> str:
    """Where the browser finds the cockpit: ``PREFIX`` under the path of ``[api] base_url`` (empty
    unless Airflow is served under a sub-path behind a proxy)."""
    from urllib.parse import urlparse

    from airflow.configuration import conf

    return urlparse(conf.get("api", "base_url", fallback="") or "").path.rstrip("/") + PREFIX


def _task_link(name: str, ti_key) -> str:
    """The URL of Flywheel link ``name`` on task instance ``ti_key``; "" where it does not apply or
    cannot be built (an exception here would fail the UI's whole links request)."""
    if not links.concerns(name, ti_key.dag_id, ti_key.task_id):
        return ""
    try:
        from mlflywheel.settings import Settings

        return links.task_link(
            name, ti_key.dag_id, ti_key.task_id, ti_key.run_id, Settings.from_env(),
            interval=lambda: _run_interval(ti_key.dag_id, ti_key.run_id), base=_public_prefix(),
        )  # fmt: skip
    except Exception:
        log.warning("no %r link for %s", name, ti_key, exc_info=True)
        return ""


class _FlywheelLink(BaseOperatorLink):
    """A global extra link: asked for on every task, a button only where ``links`` says so."""

    name: ClassVar[str] = ""

    def get_link(self, operator, *, ti_key) -> str:
        return _task_link(self.name, ti_key)


class ModelVersionLink(_FlywheelLink):
    name = links.MODEL_VERSION


class MlflowRunLink(_FlywheelLink):
    name = links.MLFLOW_RUN


class DriftReportLink(_FlywheelLink):
    name = links.DRIFT_REPORT


class ValidationReportLink(_FlywheelLink):
    name = links.VALIDATION_REPORT


class QuarantineLink(_FlywheelLink):
    name = links.QUARANTINE


class FlywheelPlugin(AirflowPlugin):
    name = "flywheel"
    fastapi_apps: ClassVar[list[dict]] = [{"app": app, "url_prefix": PREFIX, "name": "Flywheel cockpit"}]
    fastapi_root_middlewares: ClassVar[list[dict]] = [
        {"middleware": ServiceAccountGuard, "name": "Flywheel: the service account creates backfills, triggers nothing"}
    ]
    external_views: ClassVar[list[dict]] = _views()
    global_operator_extra_links: ClassVar[list[BaseOperatorLink]] = [
        ModelVersionLink(), MlflowRunLink(), DriftReportLink(), ValidationReportLink(), QuarantineLink(),
    ]  # fmt: skip
