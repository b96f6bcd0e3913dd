"""Extra links on the task instances of Flywheel's DAGs: which button a task shows, and where it goes.

The Airflow plugin (``plugins/flywheel_plugin.py``) registers one global operator extra link per
name in :data:`NAMES` and asks :func:`task_link` for its URL; a link that does not concern a task
answers ``""`` (Airflow then shows no button). Everything here is plain Python: the plugin passes
the run's data interval in (Airflow's metadata DB is its business), the registry is asked only for a
train run's model version, with a time limit and a short memory.

+---------------+-------------------------------------+---------------------------------------------+
| DAG           | tasks                               | links                                       |
+===============+=====================================+=============================================+
| train         | train_model, evaluate_and_promote   | Model version (cockpit), MLflow run (UI)    |
| drift_check   | check_drift                         | Drift report (cockpit day page)             |
| ingest        | validate                            | Validation report, Quarantine (partition)   |
+---------------+-------------------------------------+---------------------------------------------+

URLs into the cockpit are paths on the API server's own origin (``/flywheel/...``, where the plugin
mounts its app): the UI opens same-origin links in the same tab, with the user's session. The MLflow
run link appears only when the tracking URI is an MLflow server (http/https): the embedded default,
a SQLite store, has no UI to open.

Standard library only at import time: the plugin imports this module in every Airflow process.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote

if TYPE_CHECKING:  # pragma: no cover
    from mlflywheel.settings import Settings

log = logging.getLogger("mlflywheel.cockpit.links")

PREFIX = "/flywheel"  # where the plugin mounts the cockpit on the API server

MODEL_VERSION = "Model version"
MLFLOW_RUN = "MLflow run"
DRIFT_REPORT = "Drift report"
VALIDATION_REPORT = "Validation report"
QUARANTINE = "Quarantine"
NAMES = (MODEL_VERSION, MLFLOW_RUN, DRIFT_REPORT, VALIDATION_REPORT, QUARANTINE)

# (dag_id, task_id) -> the links its task instances show (the task ids of dags/*.py)
TASK_LINKS: dict[tuple[str, str], tuple[str, ...]] = {
    ("train", "train_model"): (MODEL_VERSION, MLFLOW_RUN),
    ("train", "evaluate_and_promote"): (MODEL_VERSION, MLFLOW_RUN),
    ("drift_check", "check_drift"): (DRIFT_REPORT,),
    ("ingest", "validate"): (VALIDATION_REPORT, QUARANTINE),
}
# DAGs whose links need the run's data interval (the day the run worked on)
INTERVAL_DAGS = ("drift_check", "ingest")
TRAIN_DAG = "train"

LOOKUP_TIMEOUT_S = 3.0  # a links request never waits longer on the registry's answer
COLD_START_S = 60.0  # ... but the first lookup in a process first imports MLflow's client (seconds)
FOUND_TTL_S = 300.0  # a train run's registered version is remembered this long
MISSING_TTL_S = 10.0  # "nothing registered (yet)" or a failed lookup: asked again after this
_CACHE_LIMIT = 1000
_DAY_IN_TEXT = re.compile(r"(\d{4}-\d{2}-\d{2})")


@dataclass(frozen=True)
class Training:
    """What a train run registered: the model version and the MLflow run that trained it."""

    version: str
    mlflow_run_id: str | None = None


@dataclass(frozen=True)
class RunFacts:
    """What the links of one task instance depend on, besides the settings."""

    run_id: str
    data_interval_start: dt.datetime | None = None
    data_interval_end: dt.datetime | None = None
    training: Training | None = None  # train runs only: None when nothing is registered (yet)


# --- the mapping ---------------------------------------------------------------------------
def concerns(name: str, dag_id: str, task_id: str) -> bool:
    """Whether link ``name`` is a button on the task instances of ``dag_id.task_id``."""
    return name in TASK_LINKS.get((dag_id, task_id), ())


def link(
    name: str, dag_id: str, task_id: str, facts: RunFacts, settings: Settings, *, base: str = PREFIX
) -> str:
    """The URL of link ``name`` on a task instance of ``dag_id.task_id``; ``""`` where it does not apply."""
    from mlflywheel.cockpit import readmodel

    if not concerns(name, dag_id, task_id):
        return ""
    base = base.rstrip("/")
    if name == MODEL_VERSION:
        if facts.training is not None:
            return f"{base}/version/{quote(facts.training.version, safe='')}"
        # Nothing registered (yet), or the registry did not answer in time: the run's tab says which.
        return f"{base}/dag/{quote(dag_id, safe='')}/run/{quote(facts.run_id, safe='')}"
    if name == MLFLOW_RUN:
        run = facts.training.mlflow_run_id if facts.training is not None else None
        return readmodel.run_link(settings, run) or ""
    day = run_day(dag_id, facts)
    if day is None:
        return ""
    if name == DRIFT_REPORT:
        return f"{base}/drift/{day.isoformat()}"
    if name == VALIDATION_REPORT:
        return f"{base}/report/validation/{day.isoformat()}"
    if name == QUARANTINE:
        return f"{base}/partition/{day.isoformat()}"
    return ""  # pragma: no cover - every name in TASK_LINKS is handled above


def links(
    dag_id: str, task_id: str, facts: RunFacts, settings: Settings, *, base: str = PREFIX
) -> dict[str, str]:
    """Every Flywheel link of a task instance, ``""`` for those that do not apply."""
    return {name: link(name, dag_id, task_id, facts, settings, base=base) for name in NAMES}


def run_day(dag_id: str, facts: RunFacts) -> dt.date | None:
    """The day a run worked on, as its DAG computes it (``mlflywheel.orchestration.dag_support``):
    ``ingest`` owns the partition of its interval's start, ``drift_check`` checks the day before its
    interval's end. Without the interval, from the date in the run's id; None when there is none."""
    if dag_id == "drift_check":
        from mlflywheel.cockpit import readmodel

        try:
            return readmodel.drift_run_day(facts.run_id, _utc(facts.data_interval_end))
        except readmodel.NotFound:
            return None
    if dag_id == "ingest":
        start = _utc(facts.data_interval_start)
        if start is not None:
            return start.date()
        match = _DAY_IN_TEXT.search(facts.run_id)  # scheduled__<interval start>
        if match:
            try:
                return dt.date.fromisoformat(match.group(1))
            except ValueError:
                return None
    return None


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    return value.astimezone(dt.UTC) if value is not None and value.tzinfo is not None else value


# --- what a task instance's links need, gathered only for the tasks they concern ----------
def task_link(
    name: str,
    dag_id: str,
    task_id: str,
    run_id: str,
    settings: Settings,
    *,
    interval: Callable[[], tuple[dt.datetime | None, dt.datetime | None]],
    base: str = PREFIX,
    lookup: Callable[[Settings, str], Training | None] | None = None,
) -> str:
    """:func:`link` for one task instance: ``interval()`` gives its run's data interval (asked only
    for ``drift_check`` and ``ingest``), the registry gives a train run's version (asked only for
    ``train``, through :func:`training_of_run`)."""
    if not concerns(name, dag_id, task_id):
        return ""
    start, end = interval() if dag_id in INTERVAL_DAGS else (None, None)
    training = training_of_run(settings, run_id, lookup=lookup) if dag_id == TRAIN_DAG else None
    facts = RunFacts(run_id=run_id, data_interval_start=start, data_interval_end=end, training=training)
    return link(name, dag_id, task_id, facts, settings, base=base)


def find_training(settings: Settings, run_id: str) -> Training | None:
    """The newest model version whose training run carries the tag of train run ``run_id``
    (the lookup the gate itself uses: ``candidate_version_for_run``)."""
    from mlflywheel import registry
    from mlflywheel.cockpit.readmodel import TRAIN_RUN_TAG

    try:
        registry.configure_mlflow(settings)  # imports MLflow: a one-time cost, not the registry's answer time
    finally:
        _client_ready.set()
    version = registry.find_version_by_run_tag(settings, TRAIN_RUN_TAG, run_id)
    if version is None:
        return None
    return Training(version=str(version.version), mlflow_run_id=version.run_id or None)


_lock = threading.Lock()
_lookups: dict[tuple[str, str, str], tuple[float, Future]] = {}
_pool: ThreadPoolExecutor | None = None
_client_ready = threading.Event()  # find_training has imported MLflow's client in this process


def training_of_run(
    settings: Settings,
    run_id: str,
    *,
    lookup: Callable[[Settings, str], Training | None] | None = None,
    timeout: float = LOOKUP_TIMEOUT_S,
) -> Training | None:
    """What train run ``run_id`` registered, or None: nothing (yet), a failed lookup, or a registry
    that did not answer within ``timeout`` seconds (MLflow's client retries for minutes; a page of
    buttons must not wait for it), after the seconds that the process's first lookup spends importing
    MLflow (up to :data:`COLD_START_S`). One lookup serves every link of a task instance and
    concurrent requests; a found version is remembered for :data:`FOUND_TTL_S`, a miss for
    :data:`MISSING_TTL_S`."""
    global _pool
    key = (settings.mlflow_tracking_uri, settings.model_name, run_id)
    now = time.monotonic()
    with _lock:
        cached = _lookups.get(key)
        if cached is None or _expired(cached, now):
            if _pool is None:
                _pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="flywheel-links")
            if len(_lookups) >= _CACHE_LIMIT:
                _lookups.clear()
            cached = (now, _pool.submit(lookup or find_training, settings, run_id))
            _lookups[key] = cached
    try:
        if lookup is None and not _client_ready.is_set():
            _client_ready.wait(COLD_START_S)  # the first lookup's import, then the registry's own limit
        return cached[1].result(timeout=timeout)
    except FutureTimeout:
        log.warning("the registry did not answer within %.0fs for train run %s", timeout, run_id)
    except Exception:  # a link falls back to the run's tab; the log says what failed
        log.warning("looking up the model version of train run %s failed", run_id, exc_info=True)
    return None


def _expired(entry: tuple[float, Future], now: float) -> bool:
    started, future = entry
    if not future.done():
        return False  # in flight: wait for it instead of piling lookups on a slow registry
    found = future.exception() is None and future.result() is not None
    return now - started > (FOUND_TTL_S if found else MISSING_TTL_S)


def clear_cache() -> None:
    """Forget remembered lookups (tests; after a registry was reset)."""
    with _lock:
        _lookups.clear()
        _client_ready.clear()
