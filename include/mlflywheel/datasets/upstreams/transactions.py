"""The built-in upstream: a synthetic card-transaction feed that behaves like a real one.

:func:`generate_day` produces one UTC day of transactions with the columns of
:data:`~mlflywheel.datasets.transactions_spec.TRANSACTIONS`, in spec order. The fraud label
comes from a latent logistic model of the features (large amounts, risky merchant categories,
foreign countries, bursts of card activity, new accounts and far-away merchants raise the
odds), so a small model can learn it. A :class:`DriftSchedule` turns on covariate shift (the
feature distributions move) and concept shift (the fraud relationship itself changes) from a
given day on. Everything is vectorised numpy and reproducible by ``(day, rows, seed)``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlflywheel.datasets.transactions_spec import (
    CHANNELS,
    COUNTRIES,
    CURRENCIES,
    MERCHANT_CATEGORIES,
    TRANSACTIONS,
)

CUSTOMER_POOL_SIZE = 50_000
MAX_AMOUNT = 50_000.0
MAX_DISTANCE_KM = 20_100.0
MS_PER_DAY = 86_400_000

# Intercept of the latent fraud model, calibrated (once, offline) for a base rate of ~3%
# on the undrifted feed.
FRAUD_INTERCEPT = -8.1
# Scale of the feature effects: high enough that a small MLP reaches PR-AUC ~0.5.
FRAUD_SIGNAL = 1.3


@dataclass(frozen=True)
class DriftSchedule:
    """From ``start`` on, shift the feed. ``covariate`` and ``concept`` scale the strength
    (0 = none, 1 = the designed shift); they are independent."""

    start: dt.date
    covariate: float = 1.0
    concept: float = 1.0

    def strengths(self, day: dt.date) -> tuple[float, float]:
        """(covariate, concept) strength in effect on ``day``."""
        if day < self.start:
            return 0.0, 0.0
        return float(self.covariate), float(self.concept)


# --- feature distributions: before drift and fully drifted -------------------------------
# Order of every probability vector follows the vocabulary tuples in transactions_spec.
_CATEGORY_P = np.array([0.26, 0.08, 0.06, 0.18, 0.14, 0.12, 0.12, 0.04])
_CATEGORY_P_DRIFTED = np.array([0.16, 0.14, 0.10, 0.12, 0.08, 0.20, 0.12, 0.08])
_COUNTRY_P = np.array([0.42, 0.15, 0.10, 0.09, 0.08, 0.03, 0.05, 0.08])
_COUNTRY_P_DRIFTED = np.array([0.26, 0.10, 0.07, 0.07, 0.06, 0.14, 0.16, 0.14])
_CHANNEL_P = np.array([0.50, 0.28, 0.08, 0.14])
_CHANNEL_P_DRIFTED = np.array([0.25, 0.50, 0.05, 0.20])

# Typical amount per merchant category (log-scale offset added to the base lognormal).
_CATEGORY_LOG_AMOUNT = np.array([0.0, 1.6, 1.9, 0.3, 0.4, -0.2, 0.8, 0.9])

# --- the latent fraud model ---------------------------------------------------------------
_CATEGORY_RISK = np.array([-1.0, 1.6, 0.6, -0.8, -0.6, 0.4, 0.0, 2.2])
# After concept drift other categories carry the risk (fraudsters moved to groceries,
# fuel and online services; gambling/electronics are now guarded by the issuer).
_CATEGORY_RISK_DRIFTED = np.array([1.4, -0.8, 0.2, 0.4, 1.6, 1.8, 0.0, -1.0])
_COUNTRY_RISK = np.array([-0.4, -0.3, -0.2, -0.2, -0.1, 1.9, 1.5, 0.6])
_COUNTRY_RISK_DRIFTED = np.array([0.8, 0.9, -0.2, -0.2, 0.6, -0.6, -0.6, 0.4])
_CHANNEL_RISK = np.array([-0.6, 0.8, 0.3, 0.2])
_CHANNEL_RISK_DRIFTED = np.array([0.4, -0.5, 0.9, 0.5])


def _blend(before: np.ndarray, after: np.ndarray, strength: float) -> np.ndarray:
    return before + (after - before) * strength


def _mix(before: np.ndarray, after: np.ndarray, strength: float) -> np.ndarray:
    # Probabilities may only be interpolated, not extrapolated, to stay valid.
    p = _blend(before, after, min(max(strength, 0.0), 1.0))
    return p / p.sum()


def _customer_ids() -> np.ndarray:
    return np.array([f"c-{i:06d}" for i in range(CUSTOMER_POOL_SIZE)], dtype=object)


_CUSTOMER_IDS = _customer_ids()


def generate_day(
    day: dt.date,
    rows: int,
    *,
    seed: int,
    drift: DriftSchedule | None = None,
) -> pd.DataFrame:
    """One UTC day of transactions, sorted by event time, columns in spec order."""
    if rows < 0:
        raise ValueError(f"rows must be >= 0, got {rows}")
    covariate, concept = drift.strengths(day) if drift else (0.0, 0.0)
    # Seed from (seed, day) so every day is its own reproducible stream.
    rng = np.random.default_rng([seed, day.toordinal()])

    offsets_ms = np.sort(rng.integers(0, MS_PER_DAY, size=rows))
    day_start = pd.Timestamp(day.isoformat(), tz="UTC")
    event_time = pd.DatetimeIndex(day_start + pd.to_timedelta(offsets_ms, unit="ms"))

    customer = rng.integers(0, CUSTOMER_POOL_SIZE, size=rows)
    category = rng.choice(
        len(MERCHANT_CATEGORIES), size=rows, p=_mix(_CATEGORY_P, _CATEGORY_P_DRIFTED, covariate)
    )
    country = rng.choice(len(COUNTRIES), size=rows, p=_mix(_COUNTRY_P, _COUNTRY_P_DRIFTED, covariate))
    channel = rng.choice(len(CHANNELS), size=rows, p=_mix(_CHANNEL_P, _CHANNEL_P_DRIFTED, covariate))

    # Amounts: lognormal around ~30 with a category offset; covariate drift inflates them.
    log_amount = rng.normal(3.3 + 0.6 * covariate, 0.9, size=rows) + _CATEGORY_LOG_AMOUNT[category]
    amount = np.round(np.clip(np.exp(log_amount), 0.5, MAX_AMOUNT), 2)

    currency = _currency_for(country, rng)
    account_age = np.clip(rng.gamma(1.6, 700.0 * (1.0 - 0.4 * min(covariate, 1.0)), size=rows), 0, 20_000)
    account_age = account_age.astype(np.int64)
    txn_count = rng.poisson(2.0 + 2.0 * covariate, size=rows)
    bursts = rng.random(rows) < 0.04  # a few cards are in a burst of activity
    txn_count = np.clip(txn_count + bursts * rng.poisson(8.0, size=rows), 0, 1_000).astype(np.int64)

    foreign = country >= 5  # NG, BR, IN: far from most card holders
    log_distance = rng.normal(1.8, 1.1, size=rows) + foreign * 3.5 + 0.5 * covariate
    distance = np.round(np.clip(np.exp(log_distance), 0.0, MAX_DISTANCE_KM), 1)
    distance_unknown = channel == CHANNELS.index("online")  # no merchant location online
    distance = np.where(distance_unknown, np.nan, distance)

    risk = (
        1.2
        * (np.log(amount) - 3.5)
        * (1.0 - 1.4 * min(concept, 1.0))  # after concept drift, big amounts look innocent
        + _blend(_CATEGORY_RISK, _CATEGORY_RISK_DRIFTED, concept)[category]
        + _blend(_COUNTRY_RISK, _COUNTRY_RISK_DRIFTED, concept)[country]
        + _blend(_CHANNEL_RISK, _CHANNEL_RISK_DRIFTED, concept)[channel]
        + 0.35 * np.minimum(txn_count, 20)
        + 2.2 * (account_age < 30)
        + 0.35 * np.where(distance_unknown, 0.0, np.log1p(np.nan_to_num(distance)) - 2.0)
    )
    logit = FRAUD_INTERCEPT + FRAUD_SIGNAL * risk
    is_fraud = (rng.random(rows) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)

    prefix = f"tx-{day:%Y%m%d}-"  # formatted once: per-row date formatting is slow
    ids = np.array([f"{prefix}{i:07d}" for i in range(rows)], dtype=object)
    frame = pd.DataFrame(
        {
            "transaction_id": ids,
            "event_time": event_time,
            "customer_id": _CUSTOMER_IDS[customer],
            "amount": amount,
            "currency": np.array(CURRENCIES, dtype=object)[currency],
            "merchant_category": np.array(MERCHANT_CATEGORIES, dtype=object)[category],
            "country": np.array(COUNTRIES, dtype=object)[country],
            "channel": np.array(CHANNELS, dtype=object)[channel],
            "account_age_days": account_age,
            "txn_count_24h": txn_count,
            "distance_from_home_km": distance,
            "is_fraud": is_fraud,
        }
    )
    frame["event_time"] = frame["event_time"].astype("datetime64[ns, UTC]")
    return frame[TRANSACTIONS.column_names]


def _currency_for(country: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Currency codes (indices into CURRENCIES) that mostly follow the merchant country."""
    usd, eur, gbp = (CURRENCIES.index(c) for c in ("USD", "EUR", "GBP"))
    by_country = np.array([usd, gbp, eur, eur, eur, usd, usd, usd])
    currency = by_country[country]
    # Travellers and cross-border merchants: a few transactions in another currency.
    other = rng.random(country.shape[0]) < 0.06
    return np.where(other, rng.integers(0, len(CURRENCIES), size=country.shape[0]), currency)
