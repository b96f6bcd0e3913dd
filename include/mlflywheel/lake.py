"""The lake: object storage behind one small interface, and atomic partition publishing.

Zones (top-level prefixes):
  landing/     files as the upstream delivers them (plus a ``_SUCCESS`` marker when complete)
  raw/         the landing file normalised to the dataset schema, as Parquet
  validated/   rows that passed the expectation suite
  quarantine/  rows or whole partitions that failed, with reasons and the validation result
  reports/     ingest summaries, validation reports, drift reports (JSON + HTML)
  snapshots/   training snapshots (train / validation / holdout) with lineage
  state/       small state documents (drift events)

A partition lives at ``<zone>/<dataset>/dt=YYYY-MM-DD/``. Publishing writes the data files
under a fresh version folder, then writes ``_MANIFEST.json`` last in a single atomic put.
Readers trust only the manifest, so a crash mid-write never exposes a half-written partition
and a re-run replaces the partition instead of adding to it. The same protocol works on a
local disk (``os.replace``) and on S3 (a PUT is atomic per object).
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import shutil
import tempfile
import uuid
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

ZONES = ("landing", "raw", "validated", "quarantine", "reports", "snapshots", "state")
MANIFEST = "_MANIFEST.json"
SUCCESS_MARKER = "_SUCCESS"


class LakeError(RuntimeError):
    """A lake operation failed in a way the caller should see."""


class Lake(ABC):
    """Byte-level storage primitives; everything else is built on these."""

    uri: str

    @abstractmethod
    def put_bytes(self, key: str, data: bytes) -> None:
        """Write one object atomically (readers see the old object or the new one)."""

    @abstractmethod
    def get_bytes(self, key: str) -> bytes: ...

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def list_keys(self, prefix: str) -> list[str]:
        """All object keys under ``prefix`` (recursive), sorted."""

    @abstractmethod
    def delete_prefix(self, prefix: str) -> None: ...

    def url(self, key: str) -> str:
        return f"{self.uri.rstrip('/')}/{key}"

    # --- JSON / text helpers -----------------------------------------------------------
    def put_json(self, key: str, obj: Any) -> None:
        self.put_bytes(key, json.dumps(obj, indent=2, sort_keys=True, default=str).encode())

    def get_json(self, key: str) -> Any:
        return json.loads(self.get_bytes(key))

    def put_text(self, key: str, text: str) -> None:
        self.put_bytes(key, text.encode())

    # --- partitions --------------------------------------------------------------------
    def publish_partition(
        self,
        zone: str,
        dataset: str,
        day: dt.date,
        files: dict[str, bytes],
        meta: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Atomically replace partition ``zone/dataset/dt=day`` with ``files``.

        Returns the manifest. Older versions are removed after the manifest switch.
        """
        base = partition_prefix(zone, dataset, day)
        version = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
        for name, data in files.items():
            self.put_bytes(f"{base}/v={version}/{name}", data)
        manifest = {
            "zone": zone,
            "dataset": dataset,
            "partition": day.isoformat(),
            "version": version,
            "files": sorted(files),
            "published_at": dt.datetime.now(dt.UTC).isoformat(),
            **(meta or {}),
        }
        self.put_json(f"{base}/{MANIFEST}", manifest)  # the commit point
        for key in self.list_keys(base + "/"):
            rel = key[len(base) + 1 :]
            if rel.startswith("v=") and not rel.startswith(f"v={version}/"):
                self.delete_prefix(f"{base}/{rel.split('/', 1)[0]}/")
        return manifest

    def clear_partition(self, zone: str, dataset: str, day: dt.date) -> None:
        """Remove a partition (manifest first, so readers never see a partial one)."""
        base = partition_prefix(zone, dataset, day)
        if self.exists(f"{base}/{MANIFEST}"):
            self.delete_prefix(f"{base}/{MANIFEST}")
        self.delete_prefix(base + "/")

    def manifest(self, zone: str, dataset: str, day: dt.date) -> dict[str, Any] | None:
        key = f"{partition_prefix(zone, dataset, day)}/{MANIFEST}"
        return self.get_json(key) if self.exists(key) else None

    def partition_file(self, zone: str, dataset: str, day: dt.date, name: str) -> bytes:
        manifest = self.manifest(zone, dataset, day)
        if manifest is None:
            raise LakeError(f"no published partition {partition_prefix(zone, dataset, day)}")
        if name not in manifest["files"]:
            raise LakeError(f"partition {partition_prefix(zone, dataset, day)} has no file {name!r}")
        return self.get_bytes(f"{partition_prefix(zone, dataset, day)}/v={manifest['version']}/{name}")

    def read_frame(self, zone: str, dataset: str, day: dt.date, name: str = "data.parquet") -> pd.DataFrame:
        return frame_from_parquet(self.partition_file(zone, dataset, day, name))

    def list_partitions(self, zone: str, dataset: str) -> list[dt.date]:
        """Days with a published partition (a manifest) in ``zone``."""
        days = set()
        for key in self.list_keys(f"{zone}/{dataset}/"):
            parts = key.split("/")
            if len(parts) == 4 and parts[3] == MANIFEST and parts[2].startswith("dt="):
                days.add(dt.date.fromisoformat(parts[2][3:]))
        return sorted(days)


class LocalLake(Lake):
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.uri = self.root.resolve().as_uri()

    def _path(self, key: str) -> Path:
        if key.startswith("/") or ".." in key.split("/"):
            raise LakeError(f"invalid lake key {key!r}")
        return self.root / key

    def put_bytes(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise LakeError(f"no object {self.url(key)}") from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list_keys(self, prefix: str) -> list[str]:
        base = self._path(prefix.rstrip("/")) if prefix.rstrip("/") else self.root
        if base.is_file():
            return [prefix]
        if not base.is_dir():
            return []
        out = []
        for path in base.rglob("*"):
            if path.is_file() and not path.name.startswith(".tmp-"):
                out.append(path.relative_to(self.root).as_posix())
        return sorted(out)

    def delete_prefix(self, prefix: str) -> None:
        path = self._path(prefix.rstrip("/"))
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists():
            path.unlink()


def open_lake(uri: str, *, s3_endpoint_url: str = "") -> Lake:
    """Open the lake named by a ``file://`` or ``s3://`` URI (or a plain path)."""
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return LocalLake(parsed.path if parsed.scheme else uri)
    if parsed.scheme == "s3":
        from mlflywheel.lake_s3 import S3Lake  # boto3 only when asked for

        return S3Lake(parsed.netloc, parsed.path.lstrip("/"), endpoint_url=s3_endpoint_url or None)
    raise LakeError(f"unsupported lake URI {uri!r}: use file:///path or s3://bucket/prefix")


def lake_from_settings(settings: Any) -> Lake:
    return open_lake(settings.lake_uri, s3_endpoint_url=settings.s3_endpoint_url)


def partition_prefix(zone: str, dataset: str, day: dt.date) -> str:
    if zone not in ZONES:
        raise LakeError(f"unknown zone {zone!r}; zones are {', '.join(ZONES)}")
    return f"{zone}/{dataset}/dt={day.isoformat()}"


def frame_to_parquet(df: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    df.to_parquet(buf, index=False, engine="pyarrow")
    return buf.getvalue()


def frame_from_parquet(data: bytes) -> pd.DataFrame:
    import pandas as pd

    return pd.read_parquet(io.BytesIO(data), engine="pyarrow")
