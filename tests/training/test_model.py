"""Preprocessor, network and training loop on a few hundred synthetic rows."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest
import torch
from mlflywheel.datasets import get_spec
from mlflywheel.devstack.synthetic import synthetic_frame
from mlflywheel.training.loop import binary_metrics, evaluate, make_tensors, train_model
from mlflywheel.training.model import Preprocessor, TabularNet, build_model, embedding_dim, pos_weight_for

SPEC = get_spec("transactions")
DAY = dt.date(2026, 11, 10)


@pytest.fixture(scope="module")
def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    return synthetic_frame(SPEC, DAY, 400, seed=5), synthetic_frame(
        SPEC, DAY + dt.timedelta(days=1), 200, seed=5
    )


def test_preprocessor_round_trip_and_transform(frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    train, other = frames
    pre = Preprocessor.fit(SPEC, train)
    restored = Preprocessor.from_dict(json.loads(json.dumps(pre.to_dict())))
    assert restored == pre
    cat, num = pre.transform(other)
    cat2, num2 = restored.transform(other)
    assert torch.equal(cat, cat2) and torch.equal(num, num2)
    assert cat.dtype == torch.long and cat.shape == (200, len(SPEC.categorical_features))
    # One column per numeric feature plus a missing indicator for the nullable one.
    assert num.dtype == torch.float32 and num.shape == (200, len(SPEC.numeric_features) + 1)
    assert pre.missing_indicators == ["distance_from_home_km"]
    assert torch.isfinite(num).all()
    assert cat.min() >= 1  # every value is in the vocabulary
    assert pre.cardinalities == [len(SPEC.column(c).categories) + 1 for c in SPEC.categorical_features]


def test_standardisation_uses_train_statistics(frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    train, _ = frames
    pre = Preprocessor.fit(SPEC, train)
    _, num = pre.transform(train)
    amount = num[:, pre.numeric.index("amount")].double()
    assert abs(float(amount.mean())) < 1e-4 and abs(float(amount.std(unbiased=False)) - 1) < 1e-3
    distance = train["distance_from_home_km"]
    assert distance.isna().any()
    assert pre.means["distance_from_home_km"] == pytest.approx(distance.mean())


def test_unknown_and_missing_values() -> None:
    pre = Preprocessor.fit(SPEC, synthetic_frame(SPEC, DAY, 50, seed=1))
    row = synthetic_frame(SPEC, DAY, 2, seed=2)
    row.loc[0, "currency"] = "JPY"  # outside the vocabulary
    row.loc[1, "currency"] = None
    row.loc[0, "distance_from_home_km"] = np.nan
    row.loc[1, "distance_from_home_km"] = 5.0
    row["account_age_days"] = pd.array([pd.NA, 3], dtype="Int64")
    cat, num = pre.transform(row)
    assert cat[:, 0].tolist() == [0, 0]  # unknown and null both map to index 0
    dist = pre.numeric.index("distance_from_home_km")
    assert num[0, dist] == pytest.approx(0.0)  # imputed with the train mean -> 0 after scaling
    assert num[:, -1].tolist() == [1.0, 0.0]  # missing indicator
    assert torch.isfinite(num).all()
    with pytest.raises(KeyError, match="amount"):
        pre.transform(row.drop(columns=["amount"]))


def test_network_shapes_and_pos_weight() -> None:
    net = TabularNet([4, 9], 5, hidden=(16, 8), dropout=0.0)
    logits = net(torch.tensor([[0, 1], [3, 8]]), torch.zeros(2, 5))
    assert logits.shape == (2,)
    assert TabularNet.from_config(json.loads(json.dumps(net.config()))).config() == net.config()
    assert embedding_dim(4) >= 2 and embedding_dim(10_000) == 16
    assert pos_weight_for(np.array([0, 0, 0, 1])) == 3.0
    assert pos_weight_for(np.array([0] * 1000 + [1])) == 50.0  # capped
    assert pos_weight_for(np.array([0, 0])) == 1.0


def test_train_learns_is_seeded_and_keeps_best(frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    train, val = frames
    pre = Preprocessor.fit(SPEC, train)
    t_train, t_val = make_tensors(pre, train, SPEC.target), make_tensors(pre, val, SPEC.target)

    def run() -> tuple[TabularNet, dict]:
        net = build_model(pre, seed=7)
        history = train_model(net, t_train, t_val, epochs=2, lr=5e-3, batch_size=64, seed=7, device="cpu")
        return net, history

    net_a, hist_a = run()
    net_b, hist_b = run()
    assert [e["train_loss"] for e in hist_a["epochs"]] == [e["train_loss"] for e in hist_b["epochs"]]
    for pa, pb in zip(net_a.parameters(), net_b.parameters(), strict=True):
        assert torch.equal(pa, pb)
    best = max(hist_a["epochs"], key=lambda e: e["val_pr_auc"])
    assert hist_a["best_epoch"] == best["epoch"]
    assert hist_a["best_val_pr_auc"] == pytest.approx(best["val_pr_auc"])
    metrics = evaluate(net_a, pre, val, SPEC.target)
    assert metrics["pr_auc"] == pytest.approx(best["val_pr_auc"])  # the best epoch's weights
    assert metrics["roc_auc"] > 0.7  # the synthetic signal is learnable in 2 epochs
    assert metrics["rows"] == 200 and metrics["positives"] == int(val[SPEC.target].sum())


def test_binary_metrics_edge_cases() -> None:
    one_class = binary_metrics(np.zeros(5), np.full(5, 0.1))
    assert np.isnan(one_class["pr_auc"]) and np.isnan(one_class["roc_auc"])
    assert np.isnan(binary_metrics(np.array([0, 1]), np.array([0.1, np.nan]))["pr_auc"])
    perfect = binary_metrics(np.array([0, 1, 0, 1]), np.array([0.1, 0.9, 0.2, 0.8]))
    assert perfect["pr_auc"] == 1.0 and perfect["roc_auc"] == 1.0
