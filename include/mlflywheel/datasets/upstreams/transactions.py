"""The built-in upstream: a synthetic card-transaction feed that behaves like a real one.

:func:`generate_day` produces one UTC day of transactions with the columns of
the built-in ``transactions`` spec, in spec order. The fraud label
comes from a latent logistic model of the features (large amounts, risky merchant categories,
foreign countries, bursts of card activity, new accounts and far-away merchants raise the
odds), so a small model can learn it. A :class:`DriftSchedule` turns on covariate shift (the
feature distributions move) and concept shift (the fraud relationship itself changes) from a
given day on, abruptly or ramped over days (several schedules add up). A :class:`Seasonality`
adds the stream's normal rhythms: a weekday mix of merchants and channels, and yearly sines on
the amounts and on the fraud rate. ``base_rate`` sets the fraud rate (default ~3%), so that a
small daily volume still has positives. Everything is vectorised numpy and reproducible by
``(day, rows, seed)`` and the options.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlflywheel.datasets import get_spec

# The vocabularies come from the built-in spec file (datasets/specs/transactions.yaml).
TRANSACTIONS = get_spec("transactions")
CURRENCIES, MERCHANT_CATEGORIES, COUNTRIES, CHANNELS = (
    TRANSACTIONS.column(name).categories for name in ("currency", "merchant_category", "country", "channel")
)

CUSTOMER_POOL_SIZE = 50_000
MAX_AMOUNT = 50_000.0
MAX_DISTANCE_KM = 20_100.0
MS_PER_DAY = 86_400_000
DAYS_PER_YEAR = 365.25

# Intercept of the latent fraud model, calibrated (once, offline) for a base rate of ~3%
# on the undrifted feed.
FRAUD_INTERCEPT = -8.1
# Scale of the feature effects: high enough that a small MLP reaches PR-AUC ~0.5.
FRAUD_SIGNAL = 1.3
# Rows of the undrifted, unseasonal feed on which an intercept is calibrated for a base rate.
CALIBRATION_ROWS = 200_000
CALIBRATION_SEED = 20_261_101


@dataclass(frozen=True)
class DriftSchedule:
    """From ``start`` on, shift the feed. ``covariate`` and ``concept`` scale the strength
    (0 = none, 1 = the designed shift); they are independent.

    ``ramp_days`` > 0 makes the shift gradual: the strength grows linearly over that many days,
    reaching its full value on day ``start + ramp_days - 1`` (0 or 1: abrupt, full on ``start``).
    """

    start: dt.date
    covariate: float = 1.0
    concept: float = 1.0
    ramp_days: int = 0

    def __post_init__(self) -> None:
        if self.ramp_days < 0:
            raise ValueError(f"ramp_days must be >= 0, got {self.ramp_days}")

    def progress(self, day: dt.date) -> float:
        """Share of the shift in effect on ``day``: 0 before ``start``, then up to 1 along the ramp."""
        if day < self.start:
            return 0.0
        if self.ramp_days <= 1:
            return 1.0
        return min(1.0, ((day - self.start).days + 1) / self.ramp_days)

    def strengths(self, day: dt.date) -> tuple[float, float]:
        """(covariate, concept) strength in effect on ``day``."""
        progress = self.progress(day)
        if progress == 0.0:
            return 0.0, 0.0
        return float(self.covariate) * progress, float(self.concept) * progress


def combined_strengths(drift: DriftSchedule | tuple[DriftSchedule, ...] | None, day: dt.date) -> tuple[float, float]:
    """(covariate, concept) strength of all schedules on ``day``: their sum, never below 0.

    Several schedules add up, so a later one with negative strengths takes an earlier shift back
    (a recurring concept).
    """
    if drift is None:
        return 0.0, 0.0
    schedules = (drift,) if isinstance(drift, DriftSchedule) else tuple(drift)
    covariate = sum(s.strengths(day)[0] for s in schedules)
    concept = sum(s.strengths(day)[1] for s in schedules)
    return max(covariate, 0.0), max(concept, 0.0)


@dataclass(frozen=True)
class Seasonality:
    """The stream's normal rhythms (not drift): a weekly pattern and a yearly sine.

    * ``weekly_volume``: rows-per-day multipliers, Monday first (used by callers that size days,
      e.g. :class:`~mlflywheel.datasets.upstreams.streams.Stream`);
    * ``weekend_mix``: strength of the weekend shift of the merchant and channel mix (Friday gets
      half of it; 0 = none);
    * ``yearly_amount``: amplitude of a yearly cosine added to log(amount), peaking on
      ``peak_day_of_year`` (mid-December: holiday shopping);
    * ``yearly_fraud``: amplitude of the same cosine on the fraud model's logit (the base rate
      rises and falls over the year).
    """

    weekly_volume: tuple[float, ...] = (0.95, 0.9, 0.95, 1.0, 1.15, 1.25, 0.8)
    weekend_mix: float = 1.0
    yearly_amount: float = 0.3
    yearly_fraud: float = 0.3
    peak_day_of_year: int = 350

    def __post_init__(self) -> None:
        if len(self.weekly_volume) != 7 or any(v <= 0 for v in self.weekly_volume):
            raise ValueError(f"weekly_volume needs 7 positive multipliers (Monday first), got {self.weekly_volume}")
        if self.weekend_mix < 0:
            raise ValueError(f"weekend_mix must be >= 0, got {self.weekend_mix}")
        if not 1 <= self.peak_day_of_year <= 366:
            raise ValueError(f"peak_day_of_year must be in [1, 366], got {self.peak_day_of_year}")

    def volume_factor(self, day: dt.date) -> float:
        return float(self.weekly_volume[day.weekday()])

    def weekend_strength(self, day: dt.date) -> float:
        share = {4: 0.5, 5: 1.0, 6: 1.0}.get(day.weekday(), 0.0)  # Friday half, Saturday and Sunday full
        return self.weekend_mix * share

    def yearly(self, day: dt.date) -> float:
        """The yearly cosine in [-1, 1], 1 on ``peak_day_of_year``."""
        return float(np.cos(2 * np.pi * (day.timetuple().tm_yday - self.peak_day_of_year) / DAYS_PER_YEAR))


# --- feature distributions: before drift and fully drifted -------------------------------
# Order of every probability vector follows the vocabularies in specs/transactions.yaml.
_CATEGORY_P = np.array([0.26, 0.08, 0.06, 0.18, 0.14, 0.12, 0.12, 0.04])
_CATEGORY_P_DRIFTED = np.array([0.16, 0.14, 0.10, 0.12, 0.08, 0.20, 0.12, 0.08])
_COUNTRY_P = np.array([0.42, 0.15, 0.10, 0.09, 0.08, 0.03, 0.05, 0.08])
_COUNTRY_P_DRIFTED = np.array([0.26, 0.10, 0.07, 0.07, 0.06, 0.14, 0.16, 0.14])
_CHANNEL_P = np.array([0.50, 0.28, 0.08, 0.14])
_CHANNEL_P_DRIFTED = np.array([0.25, 0.50, 0.05, 0.20])
# Weekend factors on those probabilities (raised to the weekend strength, then renormalised):
# more restaurants, travel, fashion and gambling, less grocery and fuel; more online and mobile.
_CATEGORY_WEEKEND = np.array([0.75, 0.9, 1.4, 1.7, 0.7, 1.1, 1.5, 1.4])
_CHANNEL_WEEKEND = np.array([0.8, 1.3, 0.9, 1.35])

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


def _seasonal(p: np.ndarray, weekend_factors: np.ndarray, weekend: float) -> np.ndarray:
    if weekend == 0.0:
        return p  # exactly the unseasonal vector: a stream without seasonality is unchanged
    p = p * weekend_factors**weekend
    return p / p.sum()


def _customer_ids() -> np.ndarray:
    return np.array([f"c-{i:06d}" for i in range(CUSTOMER_POOL_SIZE)], dtype=object)


_CUSTOMER_IDS = _customer_ids()


def generate_day(
    day: dt.date,
    rows: int,
    *,
    seed: int,
    drift: DriftSchedule | tuple[DriftSchedule, ...] | None = None,
    seasonality: Seasonality | None = None,
    base_rate: float | None = None,
) -> pd.DataFrame:
    """One UTC day of transactions, sorted by event time, columns in spec order.

    ``drift``: one schedule or several (their strengths add up). ``seasonality``: the weekly mix
    and the yearly sines (the day's volume is the caller's ``rows``). ``base_rate``: the fraud
    rate of the undrifted, unseasonal feed (default ~3%); e.g. 0.15 gives a small daily volume
    enough positives to measure.
    """
    if rows < 0:
        raise ValueError(f"rows must be >= 0, got {rows}")
    covariate, concept = combined_strengths(drift, day)
    intercept = FRAUD_INTERCEPT if base_rate is None else intercept_for_rate(base_rate)
    weekend = seasonality.weekend_strength(day) if seasonality else 0.0
    yearly = seasonality.yearly(day) if seasonality else 0.0
    # Seed from (seed, day) so every day is its own reproducible stream.
    rng = np.random.default_rng([seed, day.toordinal()])

    offsets_ms = np.sort(rng.integers(0, MS_PER_DAY, size=rows))
    day_start = pd.Timestamp(day.isoformat(), tz="UTC")
    event_time = pd.DatetimeIndex(day_start + pd.to_timedelta(offsets_ms, unit="ms"))
    customer = rng.integers(0, CUSTOMER_POOL_SIZE, size=rows)
    amount_shift = seasonality.yearly_amount * yearly if seasonality else 0.0
    features = _draw_features(rng, rows, covariate, weekend=weekend, amount_shift=amount_shift)

    logit = intercept + FRAUD_SIGNAL * _risk(features, concept)
    if seasonality and seasonality.yearly_fraud:
        logit = logit + seasonality.yearly_fraud * yearly
    is_fraud = (rng.random(rows) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)

    prefix = f"tx-{day:%Y%m%d}-"  # formatted once: per-row date formatting is slow
    ids = np.array([f"{prefix}{i:07d}" for i in range(rows)], dtype=object)
    frame = pd.DataFrame(
        {
            "transaction_id": ids,
            "event_time": event_time,
            "customer_id": _CUSTOMER_IDS[customer],
            "amount": features["amount"],
            "currency": np.array(CURRENCIES, dtype=object)[features["currency"]],
            "merchant_category": np.array(MERCHANT_CATEGORIES, dtype=object)[features["category"]],
            "country": np.array(COUNTRIES, dtype=object)[features["country"]],
            "channel": np.array(CHANNELS, dtype=object)[features["channel"]],
            "account_age_days": features["account_age"],
            "txn_count_24h": features["txn_count"],
            "distance_from_home_km": features["distance"],
            "is_fraud": is_fraud,
        }
    )
    frame["event_time"] = frame["event_time"].astype("datetime64[ns, UTC]")
    return frame[TRANSACTIONS.column_names]


def _draw_features(
    rng: np.random.Generator, rows: int, covariate: float, *, weekend: float = 0.0, amount_shift: float = 0.0
) -> dict[str, np.ndarray]:
    """The model's inputs for ``rows`` transactions (indices into the vocabularies for categories).

    The order of the draws is part of the generator's reproducibility: keep it.
    """
    category_p = _seasonal(_mix(_CATEGORY_P, _CATEGORY_P_DRIFTED, covariate), _CATEGORY_WEEKEND, weekend)
    channel_p = _seasonal(_mix(_CHANNEL_P, _CHANNEL_P_DRIFTED, covariate), _CHANNEL_WEEKEND, weekend)
    category = rng.choice(len(MERCHANT_CATEGORIES), size=rows, p=category_p)
    country = rng.choice(len(COUNTRIES), size=rows, p=_mix(_COUNTRY_P, _COUNTRY_P_DRIFTED, covariate))
    channel = rng.choice(len(CHANNELS), size=rows, p=channel_p)

    # Amounts: lognormal around ~30 with a category offset; covariate drift inflates them.
    log_amount = rng.normal(3.3 + 0.6 * covariate + amount_shift, 0.9, size=rows) + _CATEGORY_LOG_AMOUNT[category]
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
    return {
        "category": category,
        "country": country,
        "channel": channel,
        "amount": amount,
        "currency": currency,
        "account_age": account_age,
        "txn_count": txn_count,
        "distance": distance,
    }


def _risk(features: dict[str, np.ndarray], concept: float) -> np.ndarray:
    """The latent fraud model's score (before intercept and scale) under concept strength ``concept``."""
    amount, category = features["amount"], features["category"]
    country, channel, distance = features["country"], features["channel"], features["distance"]
    distance_unknown = np.isnan(distance)
    return (
        1.2
        * (np.log(amount) - 3.5)
        * (1.0 - 1.4 * min(concept, 1.0))  # after concept drift, big amounts look innocent
        + _blend(_CATEGORY_RISK, _CATEGORY_RISK_DRIFTED, concept)[category]
        + _blend(_COUNTRY_RISK, _COUNTRY_RISK_DRIFTED, concept)[country]
        + _blend(_CHANNEL_RISK, _CHANNEL_RISK_DRIFTED, concept)[channel]
        + 0.35 * np.minimum(features["txn_count"], 20)
        + 2.2 * (features["account_age"] < 30)
        + 0.35 * np.where(distance_unknown, 0.0, np.log1p(np.nan_to_num(distance)) - 2.0)
    )


_INTERCEPTS: dict[float, float] = {}  # base rate -> calibrated intercept (the solve takes ~0.1 s)


def intercept_for_rate(base_rate: float) -> float:
    """The fraud model's intercept that gives ``base_rate`` on the undrifted, unseasonal feed.

    Solved by bisection on a fixed calibration sample, so it is the same in every process.
    """
    if not 0.0 < base_rate < 1.0:
        raise ValueError(f"base_rate must be in (0, 1), got {base_rate}")
    if base_rate in _INTERCEPTS:
        return _INTERCEPTS[base_rate]
    rng = np.random.default_rng(CALIBRATION_SEED)
    scaled_risk = FRAUD_SIGNAL * _risk(_draw_features(rng, CALIBRATION_ROWS, 0.0), 0.0)
    low, high = -40.0, 40.0
    for _ in range(60):  # the mean probability rises with the intercept: halve the bracket
        middle = (low + high) / 2
        rate = float(np.mean(1.0 / (1.0 + np.exp(-(middle + scaled_risk)))))
        low, high = (middle, high) if rate < base_rate else (low, middle)
    _INTERCEPTS[base_rate] = (low + high) / 2
    return _INTERCEPTS[base_rate]


def _currency_for(country: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Currency codes (indices into CURRENCIES) that mostly follow the merchant country."""
    usd, eur, gbp = (CURRENCIES.index(c) for c in ("USD", "EUR", "GBP"))
    by_country = np.array([usd, gbp, eur, eur, eur, usd, usd, usd])
    currency = by_country[country]
    # Travellers and cross-border merchants: a few transactions in another currency.
    other = rng.random(country.shape[0]) < 0.06
    return np.where(other, rng.integers(0, len(CURRENCIES), size=country.shape[0]), currency)
