"""Sources: upstream systems that flywheel pulls a day's rows from into the landing zone.

With ``FLYWHEEL_SOURCE=landing`` (the default) an upstream delivers files to ``landing/``
itself and nothing is pulled. With ``FLYWHEEL_SOURCE=postgres`` the day's rows of
``FLYWHEEL_SOURCE_TABLE`` are extracted into ``landing/`` (file + ``_SUCCESS``), after which
ingest runs unchanged. Standard library only here: DAG files import this at parse time, and
psycopg2 is imported only when a Postgres source is actually used.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from mlflywheel.datasets.spec import DatasetSpec
from mlflywheel.lake import Lake

__all__ = ["pull_to_landing", "pulls_from_source"]


def pulls_from_source(settings: Any) -> bool:
    """True when flywheel must pull the day's rows itself (not wait for a delivered file)."""
    return settings.source != "landing"


def pull_to_landing(lake: Lake, spec: DatasetSpec, day: dt.date, settings: Any) -> dict[str, Any] | None:
    """Land ``day`` from the configured source; None when the source is ``landing`` (delivered files)."""
    if settings.source == "landing":
        return None
    if settings.source == "postgres":
        from mlflywheel.sources.postgres import extract_partition_to_landing  # psycopg2 only when used

        return extract_partition_to_landing(
            lake, spec, day, postgres_uri=settings.source_postgres_uri, table=settings.source_table
        )
    raise ValueError(f"unknown source {settings.source!r}")  # Settings already rejects this
