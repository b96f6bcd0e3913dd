"""Server-side HTML of the cockpit: the read model's dicts through the Jinja2 templates beside this file.

Every page function returns ``(status, html)`` through :func:`respond`: an unknown day, run or
version is a readable 404 page, a bad query parameter a 400 page, and any other failure a 500
page that says what failed (the stack trace goes to the server's log, never to the page).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from mlflywheel.cockpit import plot, readmodel
from mlflywheel.cockpit.readmodel import BadRequest, NotFound

if TYPE_CHECKING:  # pragma: no cover
    import jinja2

    from mlflywheel.lake import Lake
    from mlflywheel.settings import Settings

log = logging.getLogger("mlflywheel.cockpit")

TEMPLATES = Path(__file__).resolve().parent / "templates"
DAG_SECTIONS = {"train": "models", "drift_check": "drift", "ingest": "ledger", "rollback": "models"}


def _number(value: Any, digits: int = 4) -> str:
    if value is None or value == "":
        return "n/a"
    try:
        return f"{float(value):.{digits}f}"
    except (TypeError, ValueError):
        return str(value)


def _pvalue(value: Any) -> str:
    if value is None:
        return "n/a"
    try:
        return f"{float(value):.2g}"
    except (TypeError, ValueError):
        return str(value)


def _signed(value: Any, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    try:
        return f"{float(value):+.{digits}f}"
    except (TypeError, ValueError):
        return str(value)


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(number=_number, pvalue=_pvalue, signed=_signed, url=lambda s: quote(str(s), safe=""))
    return env


def render(template: str, **context: Any) -> str:
    return environment().get_template(template).render(**context)


def respond(page: Callable[[], str], *, base: str = "") -> tuple[int, str]:
    """Run ``page``; map the read model's errors to readable pages with their HTTP status."""
    try:
        return 200, page()
    except NotFound as exc:
        return 404, error_page(404, "Not found", str(exc), base=base)
    except BadRequest as exc:
        return 400, error_page(400, "Bad request", str(exc), base=base)
    except Exception as exc:  # a page never shows a stack trace
        log.exception("cockpit page failed")
        return 500, error_page(
            500, "The page could not be built", f"{type(exc).__name__}: {exc}", base=base
        )


def error_page(status: int, title: str, message: str, *, base: str = "") -> str:
    return render("error.html", status=status, title=title, message=message, base=base)


def without_answer_links(record: dict[str, Any]) -> dict[str, Any]:
    """A version record without its link to answer the approval (for a viewer who may not answer)."""
    return {**record, "required_action_url": ""} if record.get("required_action_url") else record


def _models_for(models: dict[str, Any], may_answer: bool) -> dict[str, Any]:
    """The models section as the viewer may act on it: the answer links only for those who may answer."""
    if may_answer:
        return models
    out = dict(models)
    for key in ("champion", "previous"):
        if out.get(key):
            out[key] = without_answer_links(out[key])
    for key in ("awaiting", "timeline", "refused"):
        if key in out:
            out[key] = [without_answer_links(r) for r in out[key]]
    return out


# --- pages ---------------------------------------------------------------------------------
# ``may_answer``: whether the caller may answer approval requests (the plugin asks Airflow's auth
# manager); the link to answer one is the only action a page offers, shown only to them.
def overview_page(settings: Settings, lake: Lake, *, days: str | None = None, versions: str | None = None,
                  base: str = "", may_answer: bool = False) -> str:  # fmt: skip
    """The Flywheel page: champion, versions, drift history (with the plot), ledger."""
    day_count = readmodel.parse_count(days, default=readmodel.DEFAULT_DAYS, name="days")
    version_count = readmodel.parse_count(
        versions, default=readmodel.DEFAULT_VERSIONS, name="versions", maximum=10_000
    )
    data = readmodel.overview(settings, lake, days=day_count, versions=version_count)
    data["models"] = _models_for(data["models"], may_answer)
    return render(
        "overview.html", data=data, base=base, svg=plot.svg(data["drift"]["points"]),
        sections=("models", "drift", "ledger"), title=f"Flywheel: {settings.dataset}",
    )  # fmt: skip


def dag_page(settings: Settings, lake: Lake, dag_id: str, *, days: str | None = None, base: str = "",
             may_answer: bool = False) -> str:  # fmt: skip
    """A DAG's tab: the part of the page that DAG feeds."""
    section = DAG_SECTIONS.get(dag_id)
    if section is None:
        raise NotFound(f"the Flywheel cockpit has no view for DAG {dag_id!r}")
    day_count = readmodel.parse_count(days, default=readmodel.DEFAULT_DAYS, name="days")
    data: dict[str, Any] = {"dataset": settings.dataset, "days": day_count}
    svg = ""
    if section == "models":
        data["models"] = _models_for(readmodel.models(settings), may_answer)
    elif section == "drift":
        data["drift"] = readmodel.drift_history(
            lake, settings.dataset, days=day_count, retrains=readmodel.retrains(settings)
        )
        svg = plot.svg(data["drift"]["points"])
    else:
        data["ledger"] = readmodel.ledger(lake, settings.dataset, days=day_count)
    return render("overview.html", data=data, base=base, svg=svg, sections=(section,),
                  title=f"Flywheel: {dag_id} ({settings.dataset})")  # fmt: skip


def run_page(settings: Settings, lake: Lake, dag_id: str, run_id: str, *,
             data_interval_end: dt.datetime | None = None, base: str = "", may_answer: bool = False) -> str:  # fmt: skip
    """A DAG run's tab: a train run's gate decision, a drift_check run's day report, an ingest
    run's partition summary with its first quarantined rows."""
    if dag_id == "train":
        record = readmodel.train_run(settings, run_id)
        record = record if may_answer else without_answer_links(record)
        return render("version.html", v=record, base=base, run_id=run_id,
                      title=f"train run {run_id}: version {record['version']}")  # fmt: skip
    if dag_id == "drift_check":
        day = readmodel.drift_run_day(run_id, data_interval_end)
        return drift_day_page(settings, lake, day.isoformat(), base=base, run_id=run_id)
    if dag_id == "ingest":
        data = readmodel.ingest_run(lake, settings.dataset, run_id)
        return render("ingest_run.html", data=data, r=data["row"], base=base, run_id=run_id,
                      title=f"ingest run {run_id}")  # fmt: skip
    raise NotFound(f"the Flywheel cockpit has no view for runs of DAG {dag_id!r}")


def drift_day_page(settings: Settings, lake: Lake, day: str, *, base: str = "", run_id: str = "") -> str:
    checked = readmodel.parse_day(day)
    data = readmodel.drift_day(lake, settings.dataset, checked, retrains=readmodel.retrains(settings))
    return render("drift_day.html", data=data, r=data["row"], base=base, run_id=run_id,
                  mlflow_run=readmodel.run_link(settings, data["row"]["mlflow_run_id"]),
                  title=f"drift check {day}")  # fmt: skip


def partition_page(settings: Settings, lake: Lake, day: str, *, base: str = "") -> str:
    summary = readmodel.partition_summary(lake, settings.dataset, readmodel.parse_day(day))
    data = readmodel.partition_with_quarantine(lake, settings.dataset, summary)
    return render("ingest_run.html", data=data, r=data["row"], base=base, run_id="",
                  title=f"partition {day}")  # fmt: skip


def version_page(settings: Settings, version: str, *, base: str = "", may_answer: bool = False) -> str:
    record = readmodel.version_detail(settings, version)
    record = record if may_answer else without_answer_links(record)
    return render("version.html", v=record, base=base, run_id="", title=f"version {record['version']}")


def validation_report(settings: Settings, lake: Lake, day: str) -> str:
    """The partition's validation report as the validation stage wrote it (self-contained HTML)."""
    return readmodel.validation_report_html(lake, settings.dataset, readmodel.parse_day(day))


def drift_report(settings: Settings, lake: Lake, day: str) -> str:
    """The day's drift report as the drift check wrote it (self-contained HTML)."""
    return readmodel.drift_report_html(lake, settings.dataset, readmodel.parse_day(day))
