"""Spec of the built-in dataset: daily card transactions with a fraud label."""

from __future__ import annotations

from mlflywheel.datasets.spec import Column, DatasetSpec

CURRENCIES = ("USD", "EUR", "GBP")
MERCHANT_CATEGORIES = (
    "grocery",
    "electronics",
    "travel",
    "restaurants",
    "fuel",
    "online_services",
    "fashion",
    "gambling",
)
COUNTRIES = ("US", "GB", "DE", "FR", "ES", "NG", "BR", "IN")
CHANNELS = ("pos", "online", "atm", "mobile")

TRANSACTIONS = DatasetSpec(
    name="transactions",
    description="Card transactions, one partition per UTC day, labelled is_fraud (1) or not (0).",
    columns=(
        Column("transaction_id", "string", description="unique id of the transaction"),
        Column("event_time", "datetime", description="when the card was used (UTC)"),
        Column("customer_id", "string", description="the card holder"),
        Column("amount", "float", min=0.0, max=50_000.0, description="amount in the transaction currency"),
        Column("currency", "string", categories=CURRENCIES),
        Column("merchant_category", "string", categories=MERCHANT_CATEGORIES),
        Column("country", "string", categories=COUNTRIES, description="merchant country"),
        Column("channel", "string", categories=CHANNELS),
        Column("account_age_days", "int", min=0, max=20_000, description="age of the card account"),
        Column("txn_count_24h", "int", min=0, max=1_000, description="card's transactions in the last 24 h"),
        Column(
            "distance_from_home_km",
            "float",
            nullable=True,
            min=0.0,
            max=20_100.0,
            description="distance of the merchant from the card holder's home; unknown for some channels",
        ),
        Column("is_fraud", "int", min=0, max=1, description="label: 1 if the transaction was fraud"),
    ),
    id_column="transaction_id",
    timestamp_column="event_time",
    target="is_fraud",
    categorical_features=("currency", "merchant_category", "country", "channel"),
    numeric_features=("amount", "account_age_days", "txn_count_24h", "distance_from_home_km"),
)
