"""The main job: the whole continuous-training loop on the embedded stack (``make demo``).

    python -m mlflywheel.demo run   [--days 21] [--rows-per-day 2000] [--keep-running] ...
    python -m mlflywheel.demo up    # start the embedded stack and leave it running (make up)
    python -m mlflywheel.demo down  # stop it (make down)

``run`` lands a scripted scenario (three weeks of card transactions, drift over the last days,
one corrupt partition, one late one, one with bad rows), starts Airflow (SQLite, supervised components) and an
MLflow server, unpauses the DAGs and lets Airflow's scheduler do the work:

1. ``ingest`` catches up on every day (the late partition is delivered while it waits);
2. ``train`` runs its latest scheduled interval and promotes the first model through the gate.
   The demo trains weekly, on the weekday the drift began (``FLYWHEEL_TRAIN_SCHEDULE``), so
   that run is the one of the drift's first morning: the champion has never seen the drift,
   as in production when the world changes after the last retrain;
3. ``drift_check`` (unpaused once a champion exists) checks its latest day, and a backfill of it
   catches up on the week before: the stable days pass, the first drifting day opens a drift
   event (the data drifted, and on the labelled drifting days the champion's own performance
   fell), and once the post-event wait is over a check creates a backfill of ``train`` through
   the REST API, with the window on the post-event days; the retrained candidate meets the gate.

It then prints a summary, writes it as JSON, stops every process it started (unless
``--keep-running``) and exits 0 only if the loop closed: drift detected, backfill created, a
retrained model evaluated by the gate.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import logging
import shutil
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlflywheel.devstack.production import ProductionBackends, seed_postgres_source
from mlflywheel.devstack.stack import PROJECT_ROOT, EmbeddedStack, StackError, stop_from_pid_file
from mlflywheel.orchestration.airflow_api import AirflowApiError

log = logging.getLogger("mlflywheel.demo")

DEFAULT_HOME = PROJECT_ROOT / "data" / "demo"
TERMINAL = {"success", "failed"}
GATE_OUTCOMES = ("promoted", "rejected", "undecided", "shadow")  # any recorded gate decision


class DemoFailed(RuntimeError):
    pass


def _wait(what: str, check, *, timeout: float, stack: EmbeddedStack, every: float = 10.0) -> Any:
    """Poll ``check()`` until it returns something truthy; log progress; fail at once when a
    process of the stack exits, and after ``timeout`` with the runs that did not finish."""
    deadline = time.monotonic() + timeout
    last_note = ""
    while time.monotonic() < deadline:
        stack.check_alive()
        value, note = check()
        if value:
            return value
        if note != last_note:
            log.info("waiting for %s: %s", what, note)
            last_note = note
        time.sleep(every)
    try:
        stuck = "; ".join(_unfinished(stack.api())) or "no unfinished run"
    except AirflowApiError as exc:  # the timeout is the failure to report, not this
        stuck = f"(could not list the runs: {exc})"
    raise DemoFailed(f"timed out after {timeout:.0f}s waiting for {what} ({last_note}); unfinished: {stuck}")


def _unfinished(api: Any, dag_ids: tuple[str, ...] = ("ingest", "train", "drift_check")) -> list[str]:
    """Each unfinished run with its unfinished tasks and their states (what a stall waits on)."""
    found = []
    for dag_id in dag_ids:
        for run in api.dag_runs(dag_id):
            if run["state"] in TERMINAL:
                continue
            tasks = [f"{t['task_id']}={t['state']}" for t in api.task_instances(dag_id, run["dag_run_id"])
                     if t["state"] not in ("success", "failed", "skipped", "upstream_failed")]  # fmt: skip
            found.append(f"{dag_id}/{run['dag_run_id']} {run['state']} [{', '.join(tasks)}]")
    return found


def run_demo(
    *,
    home: Path = DEFAULT_HOME,
    days: int = 21,
    rows_per_day: int = 2000,
    drift_days: int = 4,
    api_port: int = 8080,
    mlflow_port: int = 5000,
    keep_running: bool = False,
    summary_path: Path | None = None,
    timeout_minutes: float = 45,
    extra_env: dict[str, str] | None = None,
    backends: ProductionBackends | None = None,
) -> dict[str, Any]:
    """Run the scenario end to end; returns the summary (``summary["loop_closed"]``).

    With ``backends`` the same loop runs on PostgreSQL, S3 and an MLflow server on both.
    """
    stop_from_pid_file(home)  # a stack left by `make up` on this home
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)
    summary_path = summary_path or home / "summary.json"
    deadline = time.monotonic() + timeout_minutes * 60

    scenario, lake = land_demo_scenario(home, days, rows_per_day, drift_days, backends)
    env = {
        **train_schedule_env(scenario),
        "FLYWHEEL_START_DATE": scenario.start.isoformat(),
        "FLYWHEEL_LANDING_POKE_SECONDS": "10",
        "FLYWHEEL_RETRY_DELAY_SECONDS": "10",
        "FLYWHEEL_DATASET": scenario.dataset,
        **(backends.env() if backends else {}),
        **(extra_env or {}),
    }
    (home / "demo-env.json").write_text(json.dumps(env))  # `make up` reopens this home with it
    stack = EmbeddedStack(home=home, api_port=api_port, mlflow_port=mlflow_port, extra_env=env)
    if backends:
        stack.airflow_db_uri = backends.airflow_db_uri
        stack.mlflow_backend_uri = backends.mlflow_backend_uri
        stack.mlflow_artifacts_destination = backends.mlflow_artifacts_destination
        stack.lake_uri = backends.lake_uri
        stack.celery_broker_url = backends.celery_broker_url
        stack.celery_workers = backends.celery_workers()
        stack.mlflow_auth = backends.mlflow_auth
    summary: dict[str, Any] = {"loop_closed": False, "home": str(home)}
    try:
        stack.start()
        stack.wait_for_dags(["ingest", "train", "drift_check", "rollback"])
        drive_loop(stack, lake, scenario, remaining=lambda: max(60.0, deadline - time.monotonic()))
    except (DemoFailed, StackError) as exc:
        summary["error"] = str(exc)
        summary["problems"] = stack.problems()  # the logs' error lines, for whoever reads the summary
        log.error("%s", exc)
    finally:
        _finish(stack, lake, summary, summary_path, keep_running=keep_running)
    print(render_summary(summary))
    print(f"summary written to {summary_path}")
    return summary


def train_schedule_env(scenario: Any) -> dict[str, str]:
    """Weekly training on the drift's first weekday (02:00 UTC): the latest scheduled ``train``
    run is then the one of the drift's first morning, whose window ends the day before it."""
    if scenario.drift is None:
        return {}
    weekday = scenario.drift.start.isoweekday() % 7  # cron: 0 is Sunday
    return {"FLYWHEEL_TRAIN_SCHEDULE": f"0 2 * * {weekday}"}


def land_demo_scenario(
    home: Path, days: int, rows_per_day: int, drift_days: int, backends: ProductionBackends | None
) -> tuple[Any, Any]:
    """The demo scenario, landed in the lake (or seeded into the PostgreSQL source table)."""
    from mlflywheel.datasets.upstreams.scenario import demo_scenario, land_scenario
    from mlflywheel.lake import LocalLake, open_lake

    end = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    scenario = demo_scenario(end, days=days, rows_per_day=rows_per_day, drift_days=drift_days)
    if backends:
        lake = open_lake(backends.lake_uri, s3_endpoint_url=backends.s3_endpoint_url)
        scenario = dataclasses.replace(scenario, late_days=())
        landed = []
        log.info("source table %s seeded with %d rows", backends.source_table, seed_postgres_source(backends, scenario))
    else:
        lake = LocalLake(home / "lake")
        landed = land_scenario(lake, scenario, include_late=False)
    log.info(
        "scenario: %d days %s..%s, %d rows/day, drift from %s, faults %s, late %s; landed %d now",
        scenario.days, scenario.start, scenario.end, rows_per_day, scenario.drift.start if scenario.drift else None,
        {str(k): v for k, v in scenario.faults.items()}, [str(d) for d in scenario.late_days], len(landed),
    )  # fmt: skip
    return scenario, lake


def drive_loop(
    stack: EmbeddedStack, lake: Any, scenario: Any, *, remaining: Callable[[], float], checked_days: int = 7
) -> None:
    """Unpause the DAGs in turn and wait for each step of the loop to happen."""
    api = stack.api()
    settings = stack.settings()
    # 1. ingest catches up; the late partition arrives while its sensor waits.
    api.set_paused("ingest", False)
    api.set_paused("train", False)
    log.info("unpaused ingest and train; the scheduler takes it from here (UI: %s)", stack.api_url)
    threading.Thread(target=_deliver_late, args=(lake, scenario), daemon=True).start()
    _wait("ingest catch-up", lambda: _ingest_progress(api, scenario.days), timeout=remaining(), stack=stack)

    # 2. the latest scheduled train run (the drift's first morning) promotes the first champion.
    first_train = _wait("the first train run", lambda: _first_finished(api, "train"), timeout=remaining(), stack=stack)
    if first_train["state"] != "success":
        raise DemoFailed(f"train run {first_train['dag_run_id']} failed: see the task logs in the UI")
    from mlflywheel import registry

    champion = registry.champion(settings)
    if champion is None:
        raise DemoFailed("the first train run finished but promoted no champion (see its gate decision)")
    log.info("champion: version %s", champion.version)

    # 3. drift_check runs its latest interval, and a backfill catches it up on the days before
    #    (the stack was not running then): the checks open a drift event on its first day and
    #    request one retraining once the post-event wait is over.
    api.set_paused("drift_check", False)
    latest = _wait("drift_check", lambda: _first_finished(api, "drift_check"), timeout=remaining(), stack=stack)
    if latest["state"] != "success":
        raise DemoFailed(f"drift_check run {latest['dag_run_id']} failed: see the task logs in the UI")
    first_checked = scenario.end - dt.timedelta(days=checked_days - 1)
    api.create_backfill(
        "drift_check",
        from_date=f"{first_checked + dt.timedelta(days=1)}T00:00:00+00:00",  # a check fires the day after
        to_date=f"{scenario.end}T23:59:59+00:00",
        reprocess_behavior="none",
    )
    log.info("backfill of drift_check over %s..%s created", first_checked, scenario.end - dt.timedelta(days=1))
    runs = _wait("the drift checks", lambda: _backfill_done(api, "drift_check"), timeout=remaining(), stack=stack)
    failed = [r["dag_run_id"] for r in runs if r["state"] != "success"]
    if failed:
        raise DemoFailed(f"drift_check runs {failed} failed: see the task logs in the UI")
    if any(r["status"] == "drift" for r in _drift_reports(lake, settings.dataset)):
        _wait("the retraining backfill", lambda: _backfill_progress(api), timeout=remaining(), stack=stack)


def _deliver_late(lake: Any, scenario: Any) -> None:
    from mlflywheel.datasets.upstreams.scenario import land_day

    time.sleep(45)
    for day in scenario.late_days:
        land_day(lake, scenario, day)
        log.info("late partition %s delivered", day)


def _ingest_progress(api: Any, days: int) -> tuple[Any, str]:
    runs = api.dag_runs("ingest")
    states: dict[str, int] = {}
    for r in runs:
        states[r["state"]] = states.get(r["state"], 0) + 1
    done = sum(states.get(s, 0) for s in TERMINAL)
    return (done >= days and runs), f"{done}/{days} ingest runs finished {states}"


def _first_finished(api: Any, dag_id: str) -> tuple[Any, str]:
    runs = [r for r in api.dag_runs(dag_id) if r["state"] in TERMINAL]
    return (runs[0] if runs else None), f"{dag_id} run in progress"


def _backfill_done(api: Any, dag_id: str) -> tuple[Any, str]:
    """All runs of ``dag_id`` once its latest backfill completed and every run finished."""
    backfills = api.backfills(dag_id)
    runs = api.dag_runs(dag_id)
    done = [r for r in runs if r["state"] in TERMINAL]
    finished = bool(backfills) and backfills[-1].get("completed_at") and len(done) == len(runs)
    return (runs if finished else None), f"{len(done)}/{len(runs)} {dag_id} runs finished"


def _backfill_progress(api: Any) -> tuple[Any, str]:
    backfills = api.backfills("train")
    if not backfills:
        return None, "no backfill created"
    b = backfills[-1]
    runs = [r for r in api.dag_runs("train") if r.get("run_type") == "backfill"]
    finished = b.get("completed_at") and runs and all(r["state"] in TERMINAL for r in runs)
    return (b if finished else None), f"backfill {b['id']}: {[r['state'] for r in runs]}"


def _finish(
    stack: EmbeddedStack, lake: Any, summary: dict[str, Any], summary_path: Path, *, keep_running: bool
) -> None:
    """Collect and write the summary, then stop the stack (unless asked to keep it)."""
    try:
        summary.update(collect_summary(stack, lake))
    except Exception as exc:  # the summary must not hide the original failure
        log.exception("could not collect the summary")
        summary.setdefault("error", f"summary failed: {exc}")
    summary["loop_closed"] = loop_closed(summary)
    summary_path.write_text(json.dumps(summary, indent=2, default=str))
    if keep_running and stack.processes:
        log.info("stack left running: Airflow %s (admin/admin), MLflow %s; `make down` stops it",
                 stack.api_url, stack.mlflow_url)  # fmt: skip
    else:
        stack.stop()


def _drift_reports(lake: Any, dataset: str) -> list[dict[str, Any]]:
    from mlflywheel.lake import keys

    found = [k for k in lake.list_keys(keys.drift_reports_prefix(dataset)) if k.endswith("/" + keys.REPORT_JSON)]
    return [lake.get_json(k) for k in sorted(found)]


def collect_summary(stack: EmbeddedStack, lake: Any) -> dict[str, Any]:
    from mlflywheel import ledger, promote

    settings = stack.settings()
    out: dict[str, Any] = {"airflow_url": stack.api_url, "mlflow_url": stack.mlflow_url,
                           "cockpit_url": f"{stack.api_url}/plugin/flywheel"}  # the plugin's nav view
    parts = ledger.list_summaries(lake, settings.dataset)
    out["partitions"] = [
        {k: p.get(k) for k in ("partition", "status", "rows_in", "rows_validated", "rows_quarantined", "reasons")}
        for p in parts
    ]
    out["partition_totals"] = {
        "partitions": len(parts),
        "validated": sum(p["status"] == "validated" for p in parts),
        "partially_quarantined": sum(p["status"] == "partially_quarantined" for p in parts),
        "quarantined": sum(p["status"] == "quarantined" for p in parts),
        "rows_in": sum(p["rows_in"] for p in parts),
        "rows_validated": sum(p["rows_validated"] for p in parts),
        "rows_quarantined": sum(p["rows_quarantined"] for p in parts),
    }
    out["drift_reports"] = [
        {k: r.get(k) for k in ("day", "status", "triggers", "reason", "champion_version", "backend",
                               "drifted_features", "prediction_drift", "performance", "report_key", "html_key")}
        for r in _drift_reports(lake, settings.dataset)
    ]  # fmt: skip
    if stack.processes:
        api = stack.api()
        out["backfills"] = api.backfills("train")
        out["train_runs"] = [
            {k: r.get(k) for k in ("dag_run_id", "run_type", "state", "logical_date", "conf")}
            for r in api.dag_runs("train")
        ]
        from mlflywheel import registry

        history = promote.champion_history(settings)
        for event in history:
            # What made the training run: the schedule, an operator, or drift_check's backfill.
            run_id = registry.get_version(settings, event["version"]).run_id
            tags = registry.run_tags(settings, run_id)
            event["trigger"] = tags.get("flywheel.trigger", "")
            event["training_reason"] = tags.get("flywheel.reason", "")
            event["run_id"] = run_id
        out["model_versions"] = history

        champion = registry.champion(settings)
        out["champion"] = champion.version if champion else None
    return out


def loop_closed(summary: dict[str, Any]) -> bool:
    drift = any(r.get("status") == "drift" for r in summary.get("drift_reports", []))
    backfill = bool(summary.get("backfills"))
    retrained = [
        v for v in summary.get("model_versions", [])
        if v.get("trigger") == "drift_check" and v.get("decision") in GATE_OUTCOMES
    ]  # fmt: skip
    summary["checks"] = {"drift_detected": drift, "backfill_created": backfill, "retrained_model_gated": bool(retrained)}
    return drift and backfill and bool(retrained)


def render_summary(s: dict[str, Any]) -> str:
    lines = ["", "=== Flywheel demo summary ==="]
    t = s.get("partition_totals") or {}
    if t:
        lines.append(
            f"partitions: {t['partitions']} ({t['validated']} validated, {t['partially_quarantined']} partially "
            f"quarantined, {t['quarantined']} quarantined); rows in {t['rows_in']} = validated "
            f"{t['rows_validated']} + quarantined {t['rows_quarantined']}"
        )
    for p in s.get("partitions", []):
        if p["status"] != "validated":
            lines.append(f"  {p['partition']} {p['status']}: {p['rows_quarantined']}/{p['rows_in']} rows, {p['reasons']}")
    for v in s.get("model_versions", []):
        lines.append(
            f"model v{v.get('version')} ({v.get('trigger') or '?'}): {v.get('event')} {v.get('decision')} - "
            f"{v.get('reasons')}"
        )
    lines.append(f"champion now: v{s.get('champion')}")
    for r in s.get("drift_reports", []):
        lines.append(
            f"drift {r['day']}: {r['status']} {r.get('triggers') or ''} {r.get('drifted_features') or ''} "
            f"({r.get('html_key')})"
        )
    for b in s.get("backfills", []):
        lines.append(f"backfill {b['id']} of train {b['from_date']}..{b['to_date']} completed_at={b.get('completed_at')}")
    for r in s.get("train_runs", []):
        lines.append(f"train run {r['dag_run_id']} ({r['run_type']}): {r['state']}")
    if s.get("cockpit_url"):
        lines.append(f"cockpit: {s['cockpit_url']} (Airflow UI, admin/admin); MLflow: {s.get('mlflow_url')}")
    lines.append(f"checks: {s.get('checks')}")
    if s.get("error"):
        lines.append(f"error: {s['error']}")
        lines += ["error lines in the stack's logs:"] + [f"  {line}" for line in s.get("problems") or ["(none)"]]
    lines.append("LOOP CLOSED" if s.get("loop_closed") else "LOOP NOT CLOSED")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlflywheel.demo", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command")
    run = sub.add_parser("run", help="run the scenario end to end (default)")
    run.add_argument("--home", type=Path, default=DEFAULT_HOME, help="where the stack keeps everything")
    run.add_argument("--days", type=int, default=21, help="days of history")
    run.add_argument("--rows-per-day", type=int, default=2000)
    run.add_argument("--drift-days", type=int, default=4, help="drift over the last N days")
    run.add_argument("--api-port", type=int, default=8080)
    run.add_argument("--mlflow-port", type=int, default=5000)
    run.add_argument("--keep-running", action="store_true", help="leave the stack (UI) running afterwards")
    run.add_argument("--summary", type=Path, default=None, help="JSON summary path (default <home>/summary.json)")
    run.add_argument("--timeout-minutes", type=float, default=45)
    up = sub.add_parser("up", help="start the embedded stack on --home and leave it running")
    up.add_argument("--home", type=Path, default=DEFAULT_HOME)
    up.add_argument("--api-port", type=int, default=8080)
    up.add_argument("--mlflow-port", type=int, default=5000)
    down = sub.add_parser("down", help="stop a stack started by up or --keep-running")
    down.add_argument("--home", type=Path, default=DEFAULT_HOME)
    args = parser.parse_args(argv if argv is not None else sys.argv[1:] or ["run"])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    if args.command == "down":
        stopped = stop_from_pid_file(args.home)
        print("stack stopped" if stopped else f"no stack running from {args.home}")
        return 0
    if args.command == "up":
        env_file = args.home / "demo-env.json"
        env = json.loads(env_file.read_text()) if env_file.exists() else {}
        stack = EmbeddedStack(home=args.home, api_port=args.api_port, mlflow_port=args.mlflow_port, extra_env=env)
        stack.start()
        print(f"Airflow UI {stack.api_url} (admin/admin), MLflow {stack.mlflow_url}; `make down` stops them")
        return 0
    summary = run_demo(
        home=args.home,
        days=args.days,
        rows_per_day=args.rows_per_day,
        drift_days=args.drift_days,
        api_port=args.api_port,
        mlflow_port=args.mlflow_port,
        keep_running=args.keep_running,
        summary_path=args.summary,
        timeout_minutes=args.timeout_minutes,
    )
    return 0 if summary["loop_closed"] else 1


if __name__ == "__main__":
    sys.exit(main())
