"""The promotion gate is pure: exhaustive checks over grids of metric values."""

from __future__ import annotations

import ast
import itertools
import json
import math
from pathlib import Path

import pytest
from mlflywheel import gate
from mlflywheel.gate import Floors, decide

FLOORS = Floors(min_pr_auc=0.2, min_roc_auc=0.7)
GRID = [0.0, 0.1, 0.19, 0.2, 0.201, 0.3, 0.5, 0.69, 0.7, 0.71, 0.8, 0.9, 0.95, 0.999, 1.0]
MARGINS = [0.0, 0.002, 0.01, 0.05]


def m(pr: float, roc: float) -> dict[str, float]:
    return {"pr_auc": pr, "roc_auc": roc, "log_loss": 0.3, "rows": 100, "positives": 10}


def test_module_is_pure() -> None:
    source = Path(gate.__file__).read_text()
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert imported <= {"__future__", "json", "math", "dataclasses", "typing"}, imported


def test_no_champion_promotes_iff_floors_pass() -> None:
    for pr, roc in itertools.product(GRID, GRID):
        d = decide(m(pr, roc), None, floors=FLOORS)
        passes = pr >= FLOORS.min_pr_auc and roc >= FLOORS.min_roc_auc
        assert d.promote is passes, (pr, roc, d.reasons)
        assert d.reasons, "every decision explains itself"


def test_each_failing_floor_is_a_reason() -> None:
    d = decide(m(0.1, 0.5), None, floors=FLOORS)
    assert not d.promote
    assert len(d.reasons) == 2
    assert any("pr_auc 0.1000 is below the floor 0.2000" in r for r in d.reasons)
    assert any("roc_auc 0.5000 is below the floor 0.7000" in r for r in d.reasons)
    d = decide(m(0.5, 0.5), m(0.1, 0.5), floors=FLOORS)
    assert not d.promote and len(d.reasons) == 1 and "roc_auc" in d.reasons[0]


@pytest.mark.parametrize("metric", ["pr_auc", "roc_auc"])
@pytest.mark.parametrize("margin", MARGINS)
def test_worse_candidate_never_replaces_champion(metric: str, margin: float) -> None:
    for cand_pr, cand_roc, champ_pr, champ_roc in itertools.product(GRID, GRID, GRID[::2], GRID[::2]):
        cand, champ = m(cand_pr, cand_roc), m(champ_pr, champ_roc)
        d = decide(cand, champ, floors=FLOORS, metric=metric, margin=margin)
        if cand[metric] < champ[metric]:
            assert not d.promote, (cand, champ, d.reasons)
        floors_pass = cand_pr >= FLOORS.min_pr_auc and cand_roc >= FLOORS.min_roc_auc
        expected = floors_pass and cand[metric] >= champ[metric] + margin
        assert d.promote is expected, (cand, champ, margin, d.reasons)
        if d.promote:
            assert cand[metric] - champ[metric] >= margin - 1e-12


def test_margin_boundary_and_reason_numbers() -> None:
    champ = m(0.5, 0.8)
    assert decide(m(0.502, 0.8), champ, floors=FLOORS, margin=0.002).promote
    rejected = decide(m(0.5015, 0.8), champ, floors=FLOORS, margin=0.002)
    assert not rejected.promote
    assert rejected.reasons == ["candidate pr_auc 0.5015 < champion 0.5000 + margin 0.0020"]
    equal = decide(m(0.5, 0.8), champ, floors=FLOORS, margin=0.0)
    assert equal.promote  # ties pass only with zero margin
    assert not decide(m(0.5, 0.8), champ, floors=FLOORS, margin=0.002).promote


@pytest.mark.parametrize("bad", [math.nan, math.inf, None, "x"])
def test_nan_or_missing_candidate_metrics_reject(bad: object) -> None:
    for key in ("pr_auc", "roc_auc"):
        cand = m(0.9, 0.9)
        cand[key] = bad  # type: ignore[assignment]
        for champion in (None, m(0.1, 0.1)):
            d = decide(cand, champion, floors=Floors(0.0, 0.0))
            assert not d.promote
            assert any(key in r and "NaN" in r for r in d.reasons)
    d = decide({}, None, floors=FLOORS)
    assert not d.promote and len(d.reasons) == 2


def test_nan_champion_metric_keeps_champion() -> None:
    d = decide(m(0.9, 0.9), m(math.nan, 0.9), floors=FLOORS)
    assert not d.promote and "cannot compare" in d.reasons[0]


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError):
        decide(m(0.5, 0.8), None, floors=FLOORS, metric="accuracy")
    with pytest.raises(ValueError):
        decide(m(0.5, 0.8), None, floors=FLOORS, margin=-0.1)


def test_as_tags_are_strings_and_json() -> None:
    d = decide(m(0.6, 0.9), {**m(0.5, 0.8), "log_loss": math.nan}, floors=FLOORS)
    tags = d.as_tags()
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items())
    assert tags["flywheel.gate.decision"] == "promoted"
    assert tags["flywheel.gate.metric"] == "pr_auc"
    assert json.loads(tags["flywheel.gate.candidate_metrics"])["pr_auc"] == 0.6
    assert json.loads(tags["flywheel.gate.champion_metrics"])["log_loss"] is None  # NaN -> null
    assert "0.6000 >= champion 0.5000" in tags["flywheel.gate.reasons"]
    rejected = decide(m(0.1, 0.9), None, floors=FLOORS).as_tags()
    assert rejected["flywheel.gate.decision"] == "rejected"
    assert rejected["flywheel.gate.champion_metrics"] == "none"
    assert json.dumps(d.as_dict())
