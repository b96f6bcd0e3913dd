"""The lake's interface: byte-level primitives, and atomic partition publishing built on them.

Publishing writes the data files under a fresh version folder, then ``_MANIFEST.json`` last in a
single atomic put. Readers trust only the manifest, so a crash mid-write never exposes a
half-written partition and a re-run replaces the partition instead of adding to it. The same
protocol works on a local disk (``os.replace``) and on S3 (a PUT is atomic per object). Key
layouts come from :mod:`mlflywheel.lake.keys`; backends live in their own modules and are chosen
by :func:`mlflywheel.lake.open_lake`, so this module imports none of them.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import uuid
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

from mlflywheel.lake import keys  # the submodule, not the package: no import circle
from mlflywheel.lake.errors import LakeError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd


class Lake(ABC):
    """Byte-level storage primitives; everything else is built on these."""

    uri: str

    @classmethod
    @abstractmethod
    def from_uri(cls, uri: str, **options: Any) -> Lake:
        """Open the lake at ``uri`` (how :func:`mlflywheel.lake.open_lake` builds a backend)."""

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

    @staticmethod
    def checked_key(key: str) -> str:
        """``key`` if it is a valid lake key (relative, no ``..``); else :class:`LakeError`."""
        if key.startswith("/") or ".." in key.split("/"):
            raise LakeError(f"invalid lake key {key!r}")
        return key

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
        base = keys.partition_prefix(zone, dataset, day)
        version = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
        for name, data in files.items():
            self.put_bytes(keys.partition_file_key(zone, dataset, day, version, name), data)
        manifest = {
            "zone": zone,
            "dataset": dataset,
            "partition": day.isoformat(),
            "version": version,
            "files": sorted(files),
            "published_at": dt.datetime.now(dt.UTC).isoformat(),
            **(meta or {}),
        }
        self.put_json(keys.manifest_key(zone, dataset, day), manifest)  # the commit point
        current = keys.version_folder(version) + "/"
        for key in self.list_keys(base + "/"):
            rel = key[len(base) + 1 :]
            if rel.startswith(keys.VERSION_PREFIX) and not rel.startswith(current):
                self.delete_prefix(f"{base}/{rel.split('/', 1)[0]}/")
        return manifest

    def clear_partition(self, zone: str, dataset: str, day: dt.date) -> None:
        """Remove a partition (manifest first, so readers never see a partial one)."""
        base = keys.partition_prefix(zone, dataset, day)
        manifest = keys.manifest_key(zone, dataset, day)
        if self.exists(manifest):
            self.delete_prefix(manifest)
        self.delete_prefix(base + "/")

    def manifest(self, zone: str, dataset: str, day: dt.date) -> dict[str, Any] | None:
        key = keys.manifest_key(zone, dataset, day)
        return self.get_json(key) if self.exists(key) else None

    def partition_file(self, zone: str, dataset: str, day: dt.date, name: str) -> bytes:
        manifest = self.manifest(zone, dataset, day)
        if manifest is None:
            raise LakeError(f"no published partition {keys.partition_prefix(zone, dataset, day)}")
        if name not in manifest["files"]:
            raise LakeError(f"partition {keys.partition_prefix(zone, dataset, day)} has no file {name!r}")
        return self.get_bytes(keys.partition_file_key(zone, dataset, day, manifest["version"], name))

    def read_frame(self, zone: str, dataset: str, day: dt.date, name: str = keys.DATA_FILE) -> pd.DataFrame:
        return frame_from_parquet(self.partition_file(zone, dataset, day, name))

    def list_partitions(self, zone: str, dataset: str) -> list[dt.date]:
        """Days with a published partition (a manifest) in ``zone``."""
        days = set()
        for key in self.list_keys(keys.dataset_prefix(zone, dataset)):
            day = keys.manifest_day(key, zone, dataset)
            if day is not None:
                days.add(day)
        return sorted(days)


def frame_to_parquet(df: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    df.to_parquet(buf, index=False, engine="pyarrow")
    return buf.getvalue()


def frame_from_parquet(data: bytes) -> pd.DataFrame:
    import pandas as pd

    return pd.read_parquet(io.BytesIO(data), engine="pyarrow")
