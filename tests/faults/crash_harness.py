"""A process that runs one stage of the loop per request in a forked child, armed to kill itself.

Started once by the kill-point tests: it imports the package (pandas, Great Expectations, MLflow,
the model class promotion loads) once, then for each JSON request on stdin forks a child that arms
:mod:`mlflywheel.faults`, runs the stage against the lake (local or S3; and ledger table, MLflow
registry) named in the request and exits; the
parent answers ``{"signal": n, "code": n}`` on stdout. The parent never runs a stage itself, so
every child starts from the same clean state; each child is a real process that SIGKILLs itself
at the step it was armed for (no cleanup runs).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import sys
import traceback

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import torch  # noqa: F401 - the model's imports, loaded once here rather than in every child
from mlflywheel import faults, ingest, promote, validation
from mlflywheel.datasets import get_spec
from mlflywheel.lake import LocalLake, open_lake
from mlflywheel.training import model, pyfunc_model  # noqa: F401


def payload(seed: int, size: int) -> bytes:
    """The bytes a ``publish`` request writes (the test computes the same to compare)."""
    return random.Random(seed).randbytes(size)


def run_stage(request: dict) -> None:
    stage = request["stage"]
    for key, value in request.get("env", {}).items():
        os.environ[key] = value
    if stage == "publish":  # one partition published alone (as ingest publishes raw), on any lake
        from mlflywheel.lake.s3 import S3Lake

        S3Lake.multipart_threshold = request.get("multipart_threshold", S3Lake.multipart_threshold)
        lake = open_lake(request["lake"], s3_endpoint_url=request.get("s3_endpoint", ""))
        files = {name: payload(seed, size) for name, (seed, size) in request["files"].items()}
        lake.publish_partition(request["zone"], request.get("dataset", "transactions"),
                               dt.date.fromisoformat(request["day"]), files, {"run_id": request["run_id"]})  # fmt: skip
        return
    if stage in ("ingest", "validate"):
        lake = LocalLake(request["lake"])
        spec = get_spec(request.get("dataset", "transactions"))
        day = dt.date.fromisoformat(request["day"])
        sink = None
        if request.get("ledger_uri"):
            from mlflywheel.ledger_postgres import PostgresLedgerSink

            sink = PostgresLedgerSink(request["ledger_uri"], request["ledger_table"])
        if stage == "ingest":
            ingest.ingest_partition(lake, spec, day, run_id=request["run_id"], ledger_sink=sink)
        else:
            validation.validate_partition(lake, spec, day, run_id=request["run_id"], ledger_sink=sink)
        return
    from mlflywheel.settings import Settings

    settings = Settings.from_env()
    if stage == "promote":  # the train DAG's gate (default: promotion_mode=gate, the automatic one)
        promote.evaluate_and_promote(settings, candidate_version=request["version"],
                                     snapshot_id=request["snapshot_id"], mode=request.get("mode", "gate"),
                                     decided_by=request.get("decided_by", "crash-test"))  # fmt: skip
    elif stage == "approve":
        promote.apply_approval(settings, candidate_version=request["version"],
                               answer=request.get("answer", "approved"), responded_by="crash-test")  # fmt: skip
    elif stage == "finish":
        promote.finish_interrupted(settings)
    elif stage == "rollback":
        promote.rollback(settings, reason="crash test")
    else:
        raise ValueError(f"unknown stage {stage!r}")


def main() -> None:
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                faults.arm(request.get("fault"), request.get("trace"))
                run_stage(request)
            except BaseException:  # noqa: BLE001 - reported through the exit code and stderr
                traceback.print_exc()
                code = 1
            sys.stderr.flush()
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        answer = {"signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0,
                  "code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None}  # fmt: skip
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
