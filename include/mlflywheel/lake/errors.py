"""The lake's one error type (its own module, so keys and backends share it without a circle)."""

from __future__ import annotations


class LakeError(RuntimeError):
    """A lake operation failed in a way the caller should see."""
