"""The validation stage's error type."""

from __future__ import annotations


class ValidationError(RuntimeError):
    """A partition could not be validated (missing raw data, broken invariant, bad suite)."""
