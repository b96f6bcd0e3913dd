"""The training benchmarks' reports on the CPU: the graph bound is n/a without CUDA, the project's
rows are ratios of the eager loop instead, and the entrypoint's phases come out in running order."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def throughput():
    yield load("training_throughput")
    sys.modules.pop("training_throughput", None)


@pytest.fixture(scope="module")
def entrypoint_run():
    yield load("entrypoint_run")
    sys.modules.pop("entrypoint_run", None)


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU report")
def test_cpu_report_has_no_graph_bound_and_ratios_to_eager(throughput, capsys: pytest.CaptureFixture) -> None:
    assert throughput.main(["--device", "cpu", "--rows", "600", "--batch-size", "128", "--epochs", "1"]) == 0
    out = capsys.readouterr().out
    assert "-- 600 rows, batch 128: bound = eager" in out
    graph_row = next(line for line in out.splitlines() if line.startswith("graph "))
    assert graph_row.endswith("n/a (no CUDA)")
    for method in ("eager", "project+val", "project"):
        assert any(line.startswith(f"{method} ") for line in out.splitlines()), method
    assert "step=eager" in out  # auto on the CPU
    assert "project/eager = " in out and "project+val/eager = " in out


def test_child_run_prints_one_json_line(throughput, capsys: pytest.CaptureFixture) -> None:
    args = [
        "--device",
        "cpu",
        "--rows",
        "400",
        "--batch-size",
        "64,128",
        "--epochs",
        "1",
        "--project-only",
        "--json",
    ]
    assert throughput.main(args) == 0
    rows = json.loads(capsys.readouterr().out.strip())
    assert [(r["method"], r["batch"]) for r in rows] == [
        ("project+val", 64), ("project", 64), ("project+val", 128), ("project", 128),
    ]  # fmt: skip
    assert all(r["seconds"] > 0 and r["rows"] == 400 for r in rows)


def test_phase_table_orders_phases_and_shows_the_rest(entrypoint_run) -> None:
    phases = {"mlflow_register": 0.1, "train": 2.0, "import": 1.0, "mlflow_setup": 0.5, "load": 0.4}
    runs = [
        entrypoint_run.EntrypointRun("before", 0, 9.0),
        entrypoint_run.EntrypointRun("after", 0, 5.0, {"phases": phases}),
    ]
    lines = entrypoint_run.phase_table(runs).splitlines()
    assert [line.split()[0] for line in lines[1:]] == [
        "process", "import", "load", "train", "mlflow_setup", "mlflow_register", "mlflow", "outside",
    ]  # fmt: skip
    assert lines[-2].split()[-1] == "0.60"  # all of MLflow
    assert lines[-1].split()[-1] == "1.00"  # 5.0 s of wall outside the 4.0 s of phases
    assert lines[-1].split()[-2] == "-"  # a run that reports no phases
