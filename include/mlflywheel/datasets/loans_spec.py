"""Spec of the second dataset: loan applications labelled with whether the loan defaulted.

It exists to prove that a dataset plugs in by declaration only: its upstream is a committed
CSV (``datasets/data/loans.csv``) replayed one day at a time by
:mod:`mlflywheel.datasets.upstreams.csv_replay`.
"""

from __future__ import annotations

from mlflywheel.datasets.spec import Column, DatasetSpec

EMPLOYMENT_TYPES = ("salaried", "self_employed", "contract", "unemployed", "retired")
PURPOSES = ("home", "car", "education", "debt_consolidation", "business", "medical", "other")
REGIONS = ("north", "south", "east", "west", "central")
TERMS_MONTHS = (12, 24, 36, 48, 60, 120, 240, 360)

LOANS = DatasetSpec(
    name="loans",
    description="Loan applications, one partition per UTC day, labelled defaulted (1) or repaid (0).",
    columns=(
        Column("application_id", "string", description="unique id of the application"),
        Column("applied_at", "datetime", description="when the application was submitted (UTC)"),
        Column("applicant_income", "float", min=0.0, max=5_000_000.0, description="yearly income"),
        Column("loan_amount", "float", min=500.0, max=2_000_000.0, description="amount applied for"),
        Column("term_months", "int", min=min(TERMS_MONTHS), max=max(TERMS_MONTHS)),
        Column("employment_type", "string", categories=EMPLOYMENT_TYPES),
        Column("purpose", "string", categories=PURPOSES),
        Column("region", "string", categories=REGIONS),
        Column("credit_score", "int", min=300, max=850),
        Column("defaulted", "int", min=0, max=1, description="label: 1 if the loan defaulted"),
    ),
    id_column="application_id",
    timestamp_column="applied_at",
    target="defaulted",
    categorical_features=("employment_type", "purpose", "region"),
    numeric_features=("applicant_income", "loan_amount", "term_months", "credit_score"),
)
