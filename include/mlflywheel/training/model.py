"""The model: a JSON-serialisable preprocessor and a small tabular network.

:class:`Preprocessor` is fitted on the train split only (so validation and holdout stay
unseen): categorical values map to indices of the spec's closed vocabulary (index 0 is
"unknown/other"), numerics are standardised with the train mean and standard deviation, and
nullable numerics are imputed with the train mean plus a 0/1 missing indicator.

:class:`TabularNet` embeds each categorical column, concatenates the numeric block and runs
an MLP to one logit. The labels are imbalanced (fraud is rare), so the loss is
``BCEWithLogitsLoss`` with ``pos_weight = negatives / positives`` (capped).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from mlflywheel.datasets.spec import DatasetSpec

POS_WEIGHT_CAP = 50.0


@dataclass
class Preprocessor:
    categorical: list[str]
    vocab: dict[str, list[str]]
    numeric: list[str]
    means: dict[str, float]
    stds: dict[str, float]
    missing_indicators: list[str]  # nullable numerics that get a 0/1 "was missing" column

    @classmethod
    def fit(cls, spec: DatasetSpec, train: pd.DataFrame) -> Preprocessor:
        means: dict[str, float] = {}
        stds: dict[str, float] = {}
        for col in spec.numeric_features:
            values = _as_float(train[col])
            finite = values[np.isfinite(values)]
            mean = float(finite.mean()) if finite.size else 0.0
            std = float(finite.std()) if finite.size > 1 else 1.0
            means[col] = mean
            # A constant column would divide by zero; leave it centred but unscaled.
            stds[col] = std if std > 1e-12 else 1.0
        return cls(
            categorical=list(spec.categorical_features),
            vocab={c: [category_key(v) for v in spec.column(c).categories or ()] for c in spec.categorical_features},
            numeric=list(spec.numeric_features),
            means=means,
            stds=stds,
            missing_indicators=[c for c in spec.numeric_features if spec.column(c).nullable],
        )

    @property
    def cardinalities(self) -> list[int]:
        """Embedding table sizes: the vocabulary plus index 0 for unknown values."""
        return [len(self.vocab[c]) + 1 for c in self.categorical]

    @property
    def n_numeric(self) -> int:
        return len(self.numeric) + len(self.missing_indicators)

    @property
    def input_columns(self) -> list[str]:
        return self.categorical + self.numeric

    def transform_numpy(self, df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """``(int64 [N, C], float32 [N, F])`` arrays; see :meth:`transform`."""
        missing = [c for c in self.input_columns if c not in df.columns]
        if missing:
            raise KeyError(f"input lacks feature columns: {', '.join(missing)}")
        n = len(df)
        cat = np.zeros((n, len(self.categorical)), dtype=np.int64)
        for j, col in enumerate(self.categorical):
            # Codes are -1 for values outside the vocabulary (and for nulls): shift to 0.
            cat[:, j] = category_codes(df[col], self.vocab[col]) + 1
        num = np.zeros((n, self.n_numeric), dtype=np.float32)
        for j, col in enumerate(self.numeric):
            values = _as_float(df[col])
            absent = ~np.isfinite(values)
            values = np.where(absent, self.means[col], values)
            num[:, j] = (values - self.means[col]) / self.stds[col]
        for k, col in enumerate(self.missing_indicators):
            num[:, len(self.numeric) + k] = ~np.isfinite(_as_float(df[col]))
        return cat, num

    def transform(self, df: pd.DataFrame) -> tuple[torch.Tensor, torch.Tensor]:
        """``(cat LongTensor [N, C], num FloatTensor [N, F])`` for :class:`TabularNet`."""
        cat, num = self.transform_numpy(df)
        return torch.from_numpy(cat), torch.from_numpy(num)

    def to_dict(self) -> dict[str, Any]:
        return {
            "categorical": list(self.categorical),
            "vocab": {k: list(v) for k, v in self.vocab.items()},
            "numeric": list(self.numeric),
            "means": dict(self.means),
            "stds": dict(self.stds),
            "missing_indicators": list(self.missing_indicators),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocessor:
        return cls(
            categorical=list(data["categorical"]),
            vocab={k: [category_key(c) for c in v] for k, v in data["vocab"].items()},
            numeric=list(data["numeric"]),
            means={k: float(v) for k, v in data["means"].items()},
            stds={k: float(v) for k, v in data["stds"].items()},
            missing_indicators=list(data["missing_indicators"]),
        )


def category_key(value: Any) -> str | None:
    """A category as the vocabulary's text key: ``3``, ``3.0`` and ``"3"`` are all ``"3"``.

    Vocabularies are kept as text (JSON-stable, the same whether a column is declared ``string``
    or ``int``); a whole number, however it arrives (Int64, float after a null, text), maps to
    its integer text. Nulls map to None.
    """
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, bool | np.bool_):
        return str(value)
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def category_keys(values: pd.Series) -> np.ndarray:
    """:func:`category_key` of every value (vectorised for text and integer columns; nulls in a
    text column may stay NaN or NA, which every lookup treats as missing, like None)."""
    if pd.api.types.is_integer_dtype(values):  # int64 or nullable Int64
        text = values.astype("Int64").astype(str).to_numpy(dtype=object)
        return np.where(values.isna().to_numpy(), None, text)
    if pd.api.types.is_object_dtype(values) or pd.api.types.is_string_dtype(values):
        array = values.to_numpy(dtype=object)
        if pd.api.types.infer_dtype(array, skipna=True) in ("string", "empty"):  # the usual case: text
            return array
    return np.array([category_key(v) for v in values.to_numpy(dtype=object)], dtype=object)


def category_codes(values: pd.Series, vocab: Sequence[str]) -> np.ndarray:
    """Position of each value's :func:`category_key` in ``vocab`` (int64), -1 for nulls and values
    outside it. Integer columns are looked up as integers (no text per row), text as text."""
    if not pd.api.types.is_integer_dtype(values):
        return pd.Categorical(category_keys(values), categories=list(vocab)).codes.astype(np.int64)
    int_positions = {int(key): j for j, key in enumerate(vocab) if key is not None and _is_int_key(key)}
    ints = values.astype("Int64")
    codes = np.full(len(ints), -1, dtype=np.int64)
    if int_positions:
        found = pd.Index(list(int_positions)).get_indexer(ints.to_numpy(dtype=np.int64, na_value=0))
        positions = np.fromiter(int_positions.values(), dtype=np.int64, count=len(int_positions))
        codes = np.where(found >= 0, positions[found], -1)
    codes[ints.isna().to_numpy()] = -1
    return codes


def _is_int_key(key: str) -> bool:
    # The text category_key gives a whole number: "3", "-2" (never "03" nor "+3").
    return key.lstrip("-").isdigit() and key.isascii() and str(int(key)) == key


def _as_float(series: pd.Series) -> np.ndarray:
    # Nullable ints (Int64) and floats alike -> float64 with NaN for missing.
    return pd.to_numeric(series, errors="coerce").astype("float64").to_numpy(na_value=np.nan)


def embedding_dim(cardinality: int) -> int:
    """Embedding width rule of thumb (fast.ai): grows sub-linearly, bounded to [2, 16]."""
    return int(min(16, max(2, round(1.6 * cardinality**0.56))))


class TabularNet(nn.Module):
    """Embeddings per categorical column + MLP on [embeddings, numerics] -> one logit."""

    def __init__(
        self,
        cardinalities: Sequence[int],
        n_numeric: int,
        *,
        emb_dims: Sequence[int] | None = None,
        hidden: Sequence[int] = (128, 64),
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.cardinalities = [int(c) for c in cardinalities]
        self.emb_dims = [int(d) for d in (emb_dims or [embedding_dim(c) for c in self.cardinalities])]
        if len(self.emb_dims) != len(self.cardinalities):
            raise ValueError("emb_dims must have one entry per categorical column")
        self.n_numeric = int(n_numeric)
        self.hidden = [int(h) for h in hidden]
        self.dropout = float(dropout)
        self.embeddings = nn.ModuleList(
            nn.Embedding(card, dim) for card, dim in zip(self.cardinalities, self.emb_dims, strict=True)
        )
        layers: list[nn.Module] = []
        width = sum(self.emb_dims) + self.n_numeric
        for size in self.hidden:
            layers += [nn.Linear(width, size), nn.ReLU(), nn.Dropout(self.dropout)]
            width = size
        layers.append(nn.Linear(width, 1))
        self.mlp = nn.Sequential(*layers)

    def forward(self, cat: torch.Tensor, num: torch.Tensor) -> torch.Tensor:
        parts = [emb(cat[:, j]) for j, emb in enumerate(self.embeddings)]
        parts.append(num)
        return self.mlp(torch.cat(parts, dim=1)).squeeze(1)

    def config(self) -> dict[str, Any]:
        """Constructor arguments, JSON-able, to rebuild the network around a state dict."""
        return {
            "cardinalities": self.cardinalities,
            "n_numeric": self.n_numeric,
            "emb_dims": self.emb_dims,
            "hidden": self.hidden,
            "dropout": self.dropout,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> TabularNet:
        return cls(
            config["cardinalities"],
            config["n_numeric"],
            emb_dims=config["emb_dims"],
            hidden=config["hidden"],
            dropout=config["dropout"],
        )


def pos_weight_for(labels: np.ndarray | torch.Tensor, cap: float = POS_WEIGHT_CAP) -> float:
    """``negatives / positives`` of the train labels, capped so rare labels don't explode."""
    y = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    positives = float((y == 1).sum())
    negatives = float((y == 0).sum())
    if positives == 0:
        return 1.0
    return float(min(cap, max(1.0, negatives / positives)))


def make_loss(pos_weight: float, device: torch.device | str = "cpu") -> nn.BCEWithLogitsLoss:
    if not math.isfinite(pos_weight) or pos_weight <= 0:
        raise ValueError(f"pos_weight must be positive and finite, got {pos_weight}")
    return nn.BCEWithLogitsLoss(pos_weight=torch.tensor(pos_weight, dtype=torch.float32, device=device))


def build_model(
    preprocessor: Preprocessor,
    *,
    hidden: Sequence[int] = (128, 64),
    dropout: float = 0.1,
    seed: int | None = None,
) -> TabularNet:
    """The network sized for ``preprocessor``; ``seed`` makes the initial weights reproducible."""
    if seed is not None:
        torch.manual_seed(seed)
    return TabularNet(preprocessor.cardinalities, preprocessor.n_numeric, hidden=hidden, dropout=dropout)
