"""The cockpit's read model and pages, on records written by the real stages (no Airflow).

A small world: four scenario days landed, ingested and validated (one with null-damaged rows,
one corrupt file), drift checks run by ``run_drift_check`` (one before any champion, one against
a stand-in champion, as in tests/drift), and model versions gated by ``promote.record_and_move``
on a SQLite MLflow store: v1 promoted, v2 promoted over it, v3 rejected, v4 undecided. Versions
are registered without model files (the cockpit only reads their tags). Then a long history: 730
ledger summaries and drift reports written in their real formats, rendered within the page
limits without opening a partition.
"""

from __future__ import annotations

import copy
import datetime as dt
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cockpit_records import FakeModel, gate_version, register_version
from mlflywheel import ledger, promote, registry
from mlflywheel.cockpit import pages, plot, readmodel
from mlflywheel.datasets import get_spec
from mlflywheel.datasets.upstreams.scenario import Scenario, land_day
from mlflywheel.drift.check import run_drift_check
from mlflywheel.ingest import ingest_partition
from mlflywheel.lake import LocalLake, keys
from mlflywheel.settings import Settings
from mlflywheel.validation import validate_partition

SPEC = get_spec("transactions")
START = dt.date(2026, 10, 1)
DAYS = [START + dt.timedelta(days=i) for i in range(4)]
NULLS_DAY, CORRUPT_DAY = DAYS[1], DAYS[2]


def run_id_of(day: dt.date) -> str:
    return f"scheduled__{day.isoformat()}T00:00:00+00:00"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("cockpit")
    env = {
        "FLYWHEEL_DATA_DIR": str(root),
        "FLYWHEEL_LAKE_URI": (root / "lake").as_uri(),
        "FLYWHEEL_MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        "FLYWHEEL_MLFLOW_ARTIFACT_ROOT": str(root / "artifacts"),
        "FLYWHEEL_DRIFT_BACKEND": "scipy",
        "FLYWHEEL_DRIFT_WINDOW_DAYS": "1",
    }
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        settings = Settings.from_env()
        lake = LocalLake(root / "lake")
        scenario = Scenario(dataset="transactions", start=START, days=len(DAYS), rows_per_day=300, seed=5,
                            faults={NULLS_DAY: "nulls", CORRUPT_DAY: "corrupt_file"}, fault_fraction=0.05)  # fmt: skip
        for day in DAYS:
            land_day(lake, scenario, day)
            ingest_partition(lake, SPEC, day, run_id=run_id_of(day))
            validate_partition(lake, SPEC, day, run_id=run_id_of(day))

        # A check before any champion: skipped, with its reason.
        run_drift_check(settings, lake, SPEC, day=DAYS[0])
        # A check against a stand-in champion (the registry boundary faked, as in tests/drift).
        reference = lake.read_frame(keys.VALIDATED, SPEC.name, DAYS[0])
        sample = reference[list(SPEC.features)].assign(score=FakeModel().predict_proba(reference)[:, 1])
        with pytest.MonkeyPatch.context() as fake:
            fake.setattr(registry, "champion", lambda s: types.SimpleNamespace(version="1"))
            fake.setattr(registry, "load_reference", lambda s, v: sample.copy())
            fake.setattr(registry, "load_model", lambda s, v: FakeModel())
            fake.setattr(registry, "version_tags", lambda s, v: {})
            checked = run_drift_check(settings, lake, SPEC, day=DAYS[3])

        versions = {}
        for number, (name, metrics, interval, rows) in enumerate([
            ("first", {"pr_auc": 0.50, "roc_auc": 0.86}, None, 1000),
            ("better", {"pr_auc": 0.56, "roc_auc": 0.88}, (0.02, 0.09), 1000),
            ("worse", {"pr_auc": 0.40, "roc_auc": 0.80}, (-0.20, -0.10), 1000),
            ("tiny", {"pr_auc": 0.60, "roc_auc": 0.90}, None, 50),
        ], start=1):  # fmt: skip
            airflow_run = f"scheduled__2026-10-0{number}T02:00:00+00:00"
            version = register_version(settings, airflow_run)
            gate_version(settings, version, metrics, airflow_run_id=airflow_run, interval=interval, rows=rows,
                         positives=min(60, rows // 10))
            versions[name] = (version, airflow_run)
        # The retrain drift_check asked for after the drift event its check of DAYS[3] opened (not gated yet).
        event_id = f"{SPEC.name}:champion-v1:{DAYS[3].isoformat()}"
        retrain_run = "backfill__2026-10-05T02:00:00+00:00"
        versions["retrain"] = (register_version(settings, retrain_run, trigger="drift_check", drift_event_id=event_id),
                               retrain_run)  # fmt: skip
        readmodel.clear_cache()
        yield {"settings": settings, "lake": lake, "versions": versions, "checked": checked, "root": root}


# --- ledger --------------------------------------------------------------------------------
def test_ledger_rows_come_from_the_stages_summaries(world: dict) -> None:
    data = readmodel.ledger(world["lake"], SPEC.name)
    assert [r["day"] for r in data["rows"]] == [d.isoformat() for d in reversed(DAYS)]
    by_day = {r["day"]: r for r in data["rows"]}
    for r in data["rows"]:
        assert r["rows_in"] == r["rows_validated"] + r["rows_quarantined"]
    assert by_day[NULLS_DAY.isoformat()]["status"] == "partially_quarantined"
    assert by_day[NULLS_DAY.isoformat()]["top_reasons"] and by_day[NULLS_DAY.isoformat()]["rows_quarantined"] > 0
    corrupt = by_day[CORRUPT_DAY.isoformat()]
    assert corrupt["status"] == "quarantined" and any("unreadable" in r for r, _ in corrupt["top_reasons"])
    assert data["totals"]["rows_in"] == sum(r["rows_in"] for r in data["rows"])
    assert data["empty_reason"] is None


def test_validation_report_and_unknown_day(world: dict) -> None:
    settings, lake = world["settings"], world["lake"]
    html = pages.validation_report(settings, lake, NULLS_DAY.isoformat())
    assert "<html" in html.lower() and NULLS_DAY.isoformat() in html
    status, page = pages.respond(lambda: pages.validation_report(settings, lake, "2020-01-01"))
    assert status == 404 and "was not ingested" in page and "Traceback" not in page
    status, page = pages.respond(lambda: pages.validation_report(settings, lake, "not-a-day"))
    assert status == 404 and "expected YYYY-MM-DD" in page
    status, page = pages.respond(lambda: pages.drift_report(settings, lake, "2020-01-01"))
    assert status == 404 and "no drift check ran" in page


def test_ingest_run_shows_the_partition_and_its_first_quarantined_rows(world: dict) -> None:
    data = readmodel.ingest_run(world["lake"], SPEC.name, run_id_of(NULLS_DAY), limit=5)
    assert data["summary"]["partition"] == NULLS_DAY.isoformat()
    assert 0 < len(data["quarantined_rows"]) <= 5
    assert data["columns"][0] == keys.QUARANTINE_REASONS_COLUMN
    assert all(row[0] for row in data["quarantined_rows"])  # every row says why
    whole = readmodel.ingest_run(world["lake"], SPEC.name, run_id_of(CORRUPT_DAY))
    assert whole["quarantined_rows"] == [] and "whole file" in whole["quarantine_note"]
    with pytest.raises(readmodel.NotFound, match="no partition"):
        readmodel.ingest_run(world["lake"], SPEC.name, "scheduled__2019-01-01T00:00:00+00:00")
    status, page = pages.respond(
        lambda: pages.run_page(world["settings"], world["lake"], "ingest", run_id_of(NULLS_DAY))
    )
    assert status == 200 and "Quarantined rows" in page and keys.QUARANTINE_REASONS_COLUMN in page
    # The partition page (the Quarantine extra link) shows the same rows, found by day.
    status, partition = pages.respond(
        lambda: pages.partition_page(world["settings"], world["lake"], NULLS_DAY.isoformat())
    )
    assert status == 200 and "Quarantined rows" in partition and data["quarantined_rows"][0][0] in partition


# --- drift ---------------------------------------------------------------------------------
def test_drift_history_from_real_reports(world: dict) -> None:
    data = readmodel.drift_history(world["lake"], SPEC.name)
    assert [r["day"] for r in data["rows"]] == [DAYS[3].isoformat(), DAYS[0].isoformat()]
    skipped, checked = data["rows"][1], data["rows"][0]
    assert skipped["status"] == "skipped" and "no champion" in skipped["summary"]
    assert checked["status"] == world["checked"]["status"] and checked["champion_version"] == "1"
    assert checked["prediction_p_value"] == world["checked"]["prediction_drift"]["p_value"]
    assert checked["retraining"]  # says something, whatever the state
    assert checked["retrained_versions"] == []  # without the registry's records
    linked = readmodel.drift_history(world["lake"], SPEC.name, retrains=readmodel.retrains(world["settings"]))
    assert linked["rows"][0]["retrained_versions"] == [{"version": world["versions"]["retrain"][0],
                                                        "decision": "not gated"}]  # fmt: skip
    assert linked["rows"][1]["retrained_versions"] == []
    points = data["points"]
    assert [p["day"] for p in points] == [DAYS[0].isoformat(), DAYS[3].isoformat()]
    assert set(points[1]["features"]) == {f["name"] for f in world["checked"]["data_drift"]["features"]}
    svg = plot.svg(points)
    assert svg.startswith("<svg") and "threshold" in svg and "<polyline" in svg


def test_drift_run_tab_and_day_page(world: dict) -> None:
    settings, lake = world["settings"], world["lake"]
    run_id = f"scheduled__{(DAYS[3] + dt.timedelta(days=1)).isoformat()}T04:00:00+00:00"
    assert readmodel.drift_run_day(run_id) == DAYS[3]
    status, page = pages.respond(lambda: pages.run_page(settings, lake, "drift_check", run_id))
    assert status == 200 and f"Drift check {DAYS[3].isoformat()}" in page and "<table id=\"features\">" in page
    assert f'retrained for this event: <a href="/version/{world["versions"]["retrain"][0]}">' in page
    status, page = pages.respond(lambda: pages.drift_day_page(settings, lake, "2031-01-01"))
    assert status == 404 and "no drift check ran" in page


# --- models --------------------------------------------------------------------------------
def test_models_champion_previous_and_timeline(world: dict) -> None:
    settings, versions = world["settings"], world["versions"]
    data = readmodel.models(settings)
    champion, previous = data["champion"], data["previous"]
    assert champion["version"] == versions["better"][0] and champion["status"] == "champion"
    assert previous["version"] == versions["first"][0] and previous["status"] == "previous champion"
    assert champion["decided_by"] == f"airflow:train/{versions['better'][1]}"
    assert champion["candidate_value"] == pytest.approx(0.56) and champion["old_champion_value"] == pytest.approx(0.50)
    assert champion["old_champion_version"] == versions["first"][0]
    assert champion["interval"] == [pytest.approx(0.02), pytest.approx(0.09)]
    assert champion["floors"] == {"pr_auc": settings.floor_pr_auc, "roc_auc": settings.floor_roc_auc}
    assert champion["margin"] == pytest.approx(settings.gate_margin) and champion["reasons"]
    assert champion["champion_since"] and champion["trigger"] == "schedule"
    statuses = {r["version"]: r["status"] for r in data["timeline"]}
    assert statuses[versions["worse"][0]] == "rejected" and statuses[versions["tiny"][0]] == "undecided"
    assert [r["version"] for r in data["timeline"]] == ["5", "4", "3", "2", "1"]
    assert statuses[versions["retrain"][0]] == "not gated"
    assert data["timeline"][0]["trigger"] == "drift_check"
    assert [r["decision"] for r in data["refused"]] == ["undecided", "rejected"]
    assert champion["version_url"] is None  # a SQLite store has no MLflow UI to link to


def test_mlflow_links_only_for_an_http_tracking_uri(world: dict) -> None:
    http = Settings.from_env(mlflow_tracking_uri="http://127.0.0.1:5000/")
    assert readmodel.mlflow_ui_url(http) == "http://127.0.0.1:5000"
    assert readmodel.version_link(http, "3") == f"http://127.0.0.1:5000/#/models/{http.model_name}/versions/3"
    assert readmodel.run_link(http, "abc") == "http://127.0.0.1:5000/#/runs/abc"
    assert readmodel.mlflow_ui_url(world["settings"]) is None
    # Credentials in the tracking URI never reach a link the pages render.
    secret = Settings.from_env(mlflow_tracking_uri="https://ops:s3cret@mlflow.example:8443/base/?token=t0k")
    assert readmodel.mlflow_ui_url(secret) == "https://mlflow.example:8443/base"


def test_train_run_tab_finds_the_version_by_its_run(world: dict) -> None:
    settings, lake = world["settings"], world["lake"]
    version, run_id = world["versions"]["worse"]
    record = readmodel.train_run(settings, run_id)
    assert record["version"] == version and record["decision"] == "rejected"
    retrain, retrain_run = world["versions"]["retrain"]
    assert readmodel.train_run(settings, retrain_run)["version"] == retrain  # found before any gate
    status, page = pages.respond(lambda: pages.run_page(settings, lake, "train", run_id))
    assert status == 200 and f"model version {version}" in page and "rejected" in page
    status, page = pages.respond(lambda: pages.run_page(settings, lake, "train", "manual__nothing"))
    assert status == 404 and "no model version" in page
    status, page = pages.respond(lambda: pages.version_page(settings, "999"))
    assert status == 404 and "has no version 999" in page


def test_overview_page_renders_every_section(world: dict) -> None:
    settings, lake = world["settings"], world["lake"]
    status, page = pages.respond(lambda: pages.overview_page(settings, lake, base="/flywheel"))
    assert status == 200
    for heading in ("Champion", "Model versions", "Drift history", "Ingestion ledger"):
        assert heading in page
    assert 'id="pvalue-plot"' in page and "<svg" in page
    assert f'href="/flywheel/report/validation/{NULLS_DAY.isoformat()}"' in page
    # Offline and self-contained: one small inline script (routing links to Airflow's own pages in the
    # parent UI, which the sandboxed plugin iframe cannot navigate), nothing loaded from elsewhere.
    assert page.count("<script") == 1 and "<script src" not in page and "data-airflow-page" in page
    status, page = pages.respond(lambda: pages.overview_page(settings, lake, days="zero"))
    assert status == 400 and "days must be a whole number" in page
    status, page = pages.respond(lambda: pages.dag_page(settings, lake, "drift_check"))
    assert status == 200 and "Drift history" in page and "Ingestion ledger" not in page
    status, page = pages.respond(lambda: pages.dag_page(settings, lake, "someone_elses_dag"))
    assert status == 404


def test_rollback_shows_in_the_timeline(world: dict) -> None:
    settings = Settings.from_env(model_name="flywheel-cockpit-rollback")
    first = register_version(settings, "manual__a")
    gate_version(settings, first, {"pr_auc": 0.5, "roc_auc": 0.86}, airflow_run_id="manual__a")
    second = register_version(settings, "manual__b")
    gate_version(settings, second, {"pr_auc": 0.56, "roc_auc": 0.88}, airflow_run_id="manual__b",
                 interval=(0.02, 0.09))  # fmt: skip
    promote.rollback(settings, reason="bad in production", decided_by="airflow:rollback/manual__c")
    data = readmodel.models(settings)
    assert data["champion"]["version"] == first and data["previous"] is None
    statuses = {r["version"]: r["status"] for r in data["timeline"]}
    assert statuses == {first: "champion", second: "rolled back"}
    assert data["rollbacks"] and data["rollbacks"][-1]["reasons"] == "bad in production"
    page = pages.overview_page(settings, world["lake"])
    assert "rolled back" in page and "bad in production" in page



def test_approvals_show_who_answered_and_what_waits(world: dict) -> None:
    settings = Settings.from_env(model_name="flywheel-cockpit-approval")
    first = register_version(settings, "manual__first")
    gate_version(settings, first, {"pr_auc": 0.5, "roc_auc": 0.86}, airflow_run_id="manual__first", mode="approval")
    promote.apply_approval(settings, candidate_version=first, answer="approved", responded_by="ada",
                           responded_at="2026-11-28T10:00:00+00:00")  # fmt: skip
    refused = register_version(settings, "manual__refused")
    gate_version(settings, refused, {"pr_auc": 0.58, "roc_auc": 0.88}, airflow_run_id="manual__refused",
                 interval=(0.02, 0.09), mode="approval")  # fmt: skip
    promote.apply_approval(settings, candidate_version=refused, answer="rejected", responded_by="bob")
    waiting = register_version(settings, "manual__waiting")
    gate_version(settings, waiting, {"pr_auc": 0.59, "roc_auc": 0.89}, airflow_run_id="manual__waiting",
                 interval=(0.03, 0.1), mode="approval")  # fmt: skip

    data = readmodel.models(settings)
    assert data["champion"]["version"] == first
    assert data["champion"]["approval"] == {"answer": "approved", "by": "ada", "at": "2026-11-28T10:00:00+00:00"}
    assert [r["version"] for r in data["awaiting"]] == [waiting]
    assert data["awaiting"][0]["required_action_url"] == (
        "/dags/train/runs/manual__waiting/tasks/approve_promotion/required_actions"
    )
    assert [r["version"] for r in data["refused"]] == [refused]
    page = pages.overview_page(settings, world["lake"], may_answer=True)
    assert 'id="awaiting"' in page and "Required Actions" in page
    assert 'href="/dags/train/runs/manual__waiting/tasks/approve_promotion/required_actions"' in page
    assert "approved by ada" in page and "rejected by bob" in page


def test_the_answer_link_is_offered_only_to_who_may_answer(world: dict) -> None:
    """The cockpit's one action: the link to answer a waiting approval. A caller the plugin found
    unable to answer (Airflow's checks) sees that it waits, not the link."""
    settings = Settings.from_env(model_name="flywheel-cockpit-approval-links")
    waiting = register_version(settings, "manual__waits")
    gate_version(settings, waiting, {"pr_auc": 0.59, "roc_auc": 0.89}, airflow_run_id="manual__waits",
                 interval=(0.03, 0.1), mode="approval")  # fmt: skip
    link = 'href="/dags/train/runs/manual__waits/tasks/approve_promotion/required_actions"'
    may, may_not = (pages.overview_page(settings, world["lake"], may_answer=answer) for answer in (True, False))
    assert link in may and link not in may_not
    assert 'id="awaiting"' in may_not and "an approver's" in may_not
    for render in (lambda answer: pages.version_page(settings, waiting, may_answer=answer),
                   lambda answer: pages.run_page(settings, world["lake"], "train", "manual__waits", may_answer=answer),
                   lambda answer: pages.dag_page(settings, world["lake"], "train", may_answer=answer)):  # fmt: skip
        assert link in render(True)
        assert link not in render(False)
    assert "awaiting an approver's answer" in pages.version_page(settings, waiting, may_answer=False)

# --- empty states --------------------------------------------------------------------------
def test_empty_states_say_why(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, mlflow_tracking_uri=f"sqlite:///{tmp_path / 'empty.db'}")
    lake = LocalLake(tmp_path / "lake")
    status, page = pages.respond(lambda: pages.overview_page(settings, lake))
    assert status == 200
    assert 'id="no-champion"' in page and "no registered version" in page
    assert 'id="no-drift"' in page and "no drift check has run" in page
    assert 'id="no-ledger"' in page and "no partition of transactions has been ingested" in page


# --- a long history ------------------------------------------------------------------------
class CountingLake(LocalLake):
    """The local lake, recording every object it reads."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.reads: list[str] = []

    def get_bytes(self, key: str) -> bytes:
        self.reads.append(key)
        return super().get_bytes(key)


def test_two_years_render_within_limits_without_reading_partitions(world: dict, tmp_path: Path) -> None:
    lake = CountingLake(tmp_path / "lake")
    real_summary = world["lake"].get_json(keys.ledger_summary_key(SPEC.name, NULLS_DAY))
    real_report = world["lake"].get_json(keys.drift_report_key(SPEC.name, DAYS[3]))
    last = dt.date(2026, 11, 27)
    history = [last - dt.timedelta(days=i) for i in range(730)][::-1]
    rng = np.random.default_rng(0)
    for i, day in enumerate(history):
        summary = {**real_summary, "partition": day.isoformat(), "run_id": run_id_of(day),
                   "report_key": keys.validation_report_key(SPEC.name, day)}  # fmt: skip
        ledger.write_summary(lake, summary)
        report = copy.deepcopy(real_report)
        report["day"] = day.isoformat()
        report["status"] = "drift" if i % 97 == 0 else "no_drift"
        for feature in report["data_drift"]["features"]:
            feature["p_value"] = float(rng.uniform(1e-9, 1.0))
        lake.put_json(keys.drift_report_key(SPEC.name, day), report)
    # Real partitions exist too: the pages must never open them.
    for day in history[-3:]:
        lake.publish_partition(keys.VALIDATED, SPEC.name, day, {keys.DATA_FILE: b"not for the cockpit"})
    lake.reads.clear()  # publishing reads the partitions' commit records; the pages are measured
    settings = Settings(data_dir=tmp_path, lake_uri=(tmp_path / "lake").as_uri(),
                        mlflow_tracking_uri=f"sqlite:///{tmp_path / 'empty.db'}")  # fmt: skip
    readmodel.clear_cache()

    started = time.perf_counter()
    status, page = pages.respond(lambda: pages.overview_page(settings, lake))
    elapsed = time.perf_counter() - started
    assert status == 200, page
    partitions = tuple(keys.dataset_prefix(z, SPEC.name) for z in (keys.RAW, keys.VALIDATED, keys.QUARANTINE))
    assert not [k for k in lake.reads if k.startswith(partitions)]
    summaries = [k for k in lake.reads if k.startswith(keys.ledger_prefix(SPEC.name))]
    assert len(summaries) == readmodel.DEFAULT_DAYS  # only the days shown
    assert page.count("/flywheel/report/validation/") == 0  # base "" here
    assert page.count("/report/validation/") == readmodel.DEFAULT_DAYS
    assert page.count('<tr><td><a href="/drift/') == readmodel.DEFAULT_DAYS
    assert "730 checked days" in page and "730 partitions" in page
    assert len(page) < 1_500_000 and elapsed < 20, (len(page), elapsed)
    svg = page[page.index("<svg") : page.index("</svg>")]
    assert svg.count("<polyline") == len(real_report["data_drift"]["features"]) + 1  # + threshold
    assert svg.count('class="drift-day"') >= 1

    # A second view reads the shown days again but the plot's older points come from memory.
    lake.reads.clear()
    pages.overview_page(settings, lake, days="30")
    reports = [k for k in lake.reads if k.startswith(keys.drift_reports_prefix(SPEC.name))]
    assert len(reports) <= 30 + 2


def test_a_failure_is_a_readable_500_without_a_trace(world: dict) -> None:
    def broken() -> str:
        raise ConnectionError("MLflow at http://127.0.0.1:1 refused the connection")

    status, page = pages.respond(broken, base="/flywheel")
    assert status == 500 and "ConnectionError: MLflow at http://127.0.0.1:1 refused" in page
    assert "Traceback" not in page and 'href="/flywheel/"' in page


def test_ingest_dag_tab_shows_the_ledger_only(world: dict) -> None:
    status, page = pages.respond(lambda: pages.dag_page(world["settings"], world["lake"], "ingest", days="2"))
    assert status == 200 and "Ingestion ledger" in page and "Drift history" not in page
    assert page.count('<tr><td><a href="/partition/') == 2  # the last two days only


class _Backfills:
    """The two calls request_retraining makes to Airflow's REST API (a real server: tests/e2e)."""

    def __init__(self) -> None:
        self.created: list[dict[str, Any]] = []

    def active_backfills(self, dag_id: str) -> list[dict[str, Any]]:
        return []

    def create_backfill(self, dag_id: str, **kwargs: Any) -> dict[str, Any]:
        self.created.append({"id": 40 + len(self.created), "dag_id": dag_id, **kwargs})
        return self.created[-1]


def test_drift_row_says_what_drift_check_did_about_retraining(world: dict, tmp_path: Path) -> None:
    from mlflywheel.orchestration.retraining import request_retraining

    lake = LocalLake(tmp_path / "lake")
    report = {**world["checked"], "status": "drift"}  # the real report, as a drifting day's
    lake.put_json(report["report_key"], report)
    outcome = request_retraining(_Backfills(), lake, report, cooldown_hours=24, retrain_window_days=7, wait_days=0)
    assert outcome["action"] == "backfill_created"
    row = readmodel.drift_history(lake, SPEC.name)["rows"][0]
    assert row["retraining"] == (f"backfill 40 of train created (drift event {outcome['event_id']}; window of 1 "
                                 f"day(s) ending {DAYS[3].isoformat()})")  # fmt: skip
    again = request_retraining(_Backfills(), lake, report, cooldown_hours=24, retrain_window_days=7, wait_days=0)
    assert again["action"] == "none"  # once per event: the same day checked again records why not
    assert readmodel.drift_history(lake, SPEC.name)["rows"][0]["retraining"] == f"no backfill: {again['reason']}"


@pytest.mark.parametrize(
    ("versions", "awaiting", "says"),
    [(0, 0, "no registered version"), (3, 1, "1 passed the gate and await approval"), (3, 0, "none was promoted")],
)
def test_no_champion_reason_names_versions_waiting_for_approval(versions: int, awaiting: int, says: str) -> None:
    reason = readmodel.no_champion_reason("flywheel-transactions", versions, awaiting)
    assert says in reason
