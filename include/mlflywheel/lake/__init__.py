"""The lake: object storage behind one small interface (:class:`Lake`), chosen by URI scheme.

* :mod:`.keys`: zones, partition layout, markers, meta columns, day windows (every key comes
  from there);
* :mod:`.base`: the interface and the atomic partition protocol;
* :mod:`.local` (``file://`` or a plain path) and :mod:`.s3` (``s3://bucket/prefix``): the
  backends, registered by scheme in :data:`BACKENDS` and imported only when opened (boto3 loads
  only for an S3 lake).
"""

from __future__ import annotations

import importlib
from typing import Any
from urllib.parse import urlparse

from mlflywheel.lake.base import PARQUET_WRITER_OPTIONS, Lake, frame_from_parquet, frame_to_parquet
from mlflywheel.lake.errors import LakeError
from mlflywheel.lake.keys import MANIFEST, SUCCESS_MARKER, ZONES, partition_prefix
from mlflywheel.lake.local import LocalLake

__all__ = [
    "BACKENDS",
    "MANIFEST",
    "PARQUET_WRITER_OPTIONS",
    "SUCCESS_MARKER",
    "ZONES",
    "Lake",
    "LakeError",
    "LocalLake",
    "frame_from_parquet",
    "frame_to_parquet",
    "lake_from_settings",
    "open_lake",
    "partition_prefix",
]

# URI scheme -> "module:class"; each class is built as cls.from_uri(parsed_uri, **options).
BACKENDS: dict[str, str] = {
    "": "mlflywheel.lake.local:LocalLake",
    "file": "mlflywheel.lake.local:LocalLake",
    "s3": "mlflywheel.lake.s3:S3Lake",
}


def open_lake(uri: str, *, s3_endpoint_url: str = "", **options: Any) -> Lake:
    """Open the lake named by a ``file://`` or ``s3://`` URI (or a plain path)."""
    parsed = urlparse(uri)
    target = BACKENDS.get(parsed.scheme)
    if target is None:
        raise LakeError(f"unsupported lake URI {uri!r}: use file:///path or s3://bucket/prefix")
    module, _, name = target.partition(":")
    backend = getattr(importlib.import_module(module), name)
    return backend.from_uri(uri, s3_endpoint_url=s3_endpoint_url, **options)


def lake_from_settings(settings: Any) -> Lake:
    # The settings also give the S3 backend its timeouts and attempts.
    return open_lake(settings.lake_uri, s3_endpoint_url=settings.s3_endpoint_url, settings=settings)
