"""The promotion gate is pure: exhaustive checks over grids of metric values."""

from __future__ import annotations

import ast
import itertools
import json
import math
from pathlib import Path

import pytest
from mlflywheel import gate
from mlflywheel.gate import Evidence, EvidenceMinimum, Floors, decide

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


# --- decisions on evidence ------------------------------------------------------------------------

MINIMUM = EvidenceMinimum(rows=200, positives=10)
DIFFS = [-0.3, -0.01, -0.002, 0.0, 0.001, 0.002, 0.0021, 0.01, 0.3]
BOUNDS = [-0.2, -0.01, -0.001, 0.0, 0.001, 0.002, 0.003, 0.05, 0.4]


def ev(
    rows: int = 1000, positives: int = 50, low: float | None = -0.01, high: float | None = 0.01
) -> Evidence:
    return Evidence(rows=rows, positives=positives, low=low, high=high, confidence=0.9)


def expected_outcome(
    cand: dict, champ: dict | None, evidence: Evidence, margin: float, metric: str = "pr_auc"
) -> str:
    """The rule written out independently of gate.py, for the exhaustive checks."""
    if evidence.rows < MINIMUM.rows or evidence.positives < MINIMUM.positives:
        return "undecided"
    if not all(isinstance(cand.get(k), float) and math.isfinite(cand[k]) for k in ("pr_auc", "roc_auc")):
        return "rejected"
    if cand["pr_auc"] < FLOORS.min_pr_auc or cand["roc_auc"] < FLOORS.min_roc_auc:
        return "rejected"
    if champ is None:
        return "promoted"
    if not math.isfinite(champ[metric]):
        return "rejected"
    if evidence.low is None or evidence.high is None:
        return "undecided"
    if evidence.high < margin:
        return "rejected"
    if cand[metric] - champ[metric] >= margin and evidence.low > 0:
        return "promoted"
    return "undecided"


@pytest.mark.parametrize("margin", [0.0, 0.002])
def test_exhaustive_on_evidence(margin: float) -> None:
    champ = m(0.5, 0.8)
    seen = set()
    for diff, low, high in itertools.product(DIFFS, BOUNDS, BOUNDS):
        if low > high:
            continue
        cand = m(0.5 + diff, 0.8)
        for rows, positives in ((1000, 50), (199, 50), (1000, 9), (200, 10), (0, 0)):
            evidence = ev(rows, positives, low, high)
            d = decide(cand, champ, floors=FLOORS, margin=margin, evidence=evidence, minimum=MINIMUM)
            want = expected_outcome(cand, champ, evidence, margin)
            assert d.decision == want, (diff, low, high, rows, positives, d.reasons)
            assert d.promote is (want == "promoted") and d.reasons
            seen.add(want)
            if d.promote:  # never promoted by noise: the point and the interval both clear their bar
                assert cand["pr_auc"] - champ["pr_auc"] >= margin - 1e-12 and low > 0
    assert seen == {"promoted", "rejected", "undecided"}


def test_too_little_evidence_is_undecided_whatever_the_metrics() -> None:
    for pr, roc in itertools.product(GRID, GRID):
        for champion in (None, m(0.1, 0.5), m(0.99, 0.99)):
            for evidence in (ev(199, 50, 0.1, 0.2), ev(1000, 9, -0.2, -0.1), ev(51, 3)):
                d = decide(m(pr, roc), champion, floors=FLOORS, evidence=evidence, minimum=MINIMUM)
                assert d.decision == "undecided" and not d.promote
                assert all(r.startswith("too little evidence") for r in d.reasons)
    both = decide(m(0.9, 0.9), None, floors=FLOORS, evidence=ev(51, 3), minimum=MINIMUM)
    assert both.reasons == [
        "too little evidence: holdout has 51 rows, at least 200 needed",
        "too little evidence: holdout has 3 positives, at least 10 needed",
    ]
    edge = decide(m(0.9, 0.9), None, floors=FLOORS, evidence=ev(200, 10), minimum=MINIMUM)
    assert edge.decision == "promoted"  # the minimum itself is enough


def test_first_model_floors_only_on_enough_evidence() -> None:
    for pr, roc in itertools.product(GRID, GRID):
        d = decide(m(pr, roc), None, floors=FLOORS, evidence=ev(low=None, high=None), minimum=MINIMUM)
        passes = pr >= FLOORS.min_pr_auc and roc >= FLOORS.min_roc_auc
        assert d.decision == ("promoted" if passes else "rejected"), (pr, roc, d.reasons)


def test_reasons_on_evidence() -> None:
    champ = m(0.5, 0.8)
    promoted = decide(m(0.6, 0.8), champ, floors=FLOORS, evidence=ev(low=0.03, high=0.17), minimum=MINIMUM)
    expected = "candidate pr_auc 0.6000 - champion 0.5000 = 0.1000 >= margin 0.0020; "
    assert promoted.reasons == [expected + "90% interval [0.0300, 0.1700] lies above 0"]
    noisy = decide(m(0.6, 0.8), champ, floors=FLOORS, evidence=ev(low=-0.02, high=0.2), minimum=MINIMUM)
    assert noisy.decision == "undecided" and "reaches 0" in noisy.reasons[0] and "noise" in noisy.reasons[0]
    short = decide(m(0.501, 0.8), champ, floors=FLOORS, evidence=ev(low=0.0005, high=0.003), minimum=MINIMUM)
    assert (
        short.decision == "undecided"
        and "< margin" in short.reasons[0]
        and "reaches the margin" in short.reasons[0]
    )
    worse = decide(m(0.4, 0.8), champ, floors=FLOORS, evidence=ev(low=-0.15, high=-0.05), minimum=MINIMUM)
    assert worse.decision == "rejected" and "lies below the margin 0.0020" in worse.reasons[0]
    unknown = decide(m(0.6, 0.8), champ, floors=FLOORS, evidence=ev(low=None, high=None), minimum=MINIMUM)
    assert unknown.decision == "undecided" and "no interval" in unknown.reasons[0]


def test_skewed_interval_keeps_the_champion() -> None:
    # A percentile interval need not hold the point estimate; when both rules hold, rejection wins.
    d = decide(m(0.6, 0.8), m(0.5, 0.8), floors=FLOORS, evidence=ev(low=0.0005, high=0.001), minimum=MINIMUM)
    assert d.decision == "rejected"


def test_nan_metrics_with_evidence() -> None:
    d = decide(m(math.nan, 0.9), m(0.5, 0.8), floors=FLOORS, evidence=ev(), minimum=MINIMUM)
    assert d.decision == "rejected" and "NaN" in d.reasons[0]
    d = decide(m(0.9, 0.9), m(math.nan, 0.8), floors=FLOORS, evidence=ev(low=0.1, high=0.2), minimum=MINIMUM)
    assert d.decision == "rejected" and "cannot compare" in d.reasons[0]


def test_evidence_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="come together"):
        decide(m(0.5, 0.8), None, floors=FLOORS, evidence=ev())
    with pytest.raises(ValueError, match="come together"):
        decide(m(0.5, 0.8), None, floors=FLOORS, minimum=MINIMUM)
    for bad in (
        {"rows": -1, "positives": 0},
        {"rows": 10, "positives": 11},
        {"rows": 10.0, "positives": 1},
        {"rows": True, "positives": 0},
        {"rows": 10, "positives": 1, "low": 0.2, "high": 0.1},
        {"rows": 10, "positives": 1, "confidence": 1.0},
        {"rows": 10, "positives": 1, "confidence": 0.0},
    ):
        with pytest.raises(ValueError):
            Evidence(**bad)
    with pytest.raises(ValueError):
        EvidenceMinimum(rows=-1, positives=0)


def test_evidence_tags_and_dict() -> None:
    d = decide(m(0.6, 0.9), m(0.5, 0.8), floors=FLOORS, evidence=ev(low=0.03, high=0.17), minimum=MINIMUM)
    tags = d.as_tags()
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items())
    assert tags["flywheel.gate.decision"] == tags["flywheel.gate.verdict"] == "promoted"
    assert tags["flywheel.gate.difference"] == "0.1000"
    assert (tags["flywheel.gate.interval_low"], tags["flywheel.gate.interval_high"]) == ("0.0300", "0.1700")
    assert tags["flywheel.gate.confidence"] == "0.9"
    assert (tags["flywheel.gate.holdout_rows"], tags["flywheel.gate.holdout_positives"]) == ("1000", "50")
    assert (tags["flywheel.gate.min_holdout_rows"], tags["flywheel.gate.min_holdout_positives"]) == (
        "200",
        "10",
    )
    shadow = d.as_tags(outcome="shadow")
    assert shadow["flywheel.gate.decision"] == "shadow" and shadow["flywheel.gate.verdict"] == "promoted"
    record = json.loads(json.dumps(d.as_dict()))
    assert record["evidence"] == {"rows": 1000, "positives": 50, "interval": [0.03, 0.17], "confidence": 0.9}
    assert record["difference"] == pytest.approx(0.1) and record["minimum"] == {"rows": 200, "positives": 10}
    plain = decide(m(0.6, 0.9), None, floors=FLOORS)
    assert plain.as_dict()["evidence"] is None and "flywheel.gate.interval_low" not in plain.as_tags()
