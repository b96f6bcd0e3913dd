"""The lake's interface: byte-level primitives, and atomic partition publishing built on them.

Publishing writes the data files under a fresh version folder, then the commit point last in a
single atomic put: ``_MANIFEST.json`` for a partition published alone (:meth:`Lake.publish_partition`,
raw), the partition's commit record for its result across zones (:meth:`Lake.commit_partition`:
validated and quarantined rows, validation report and ledger summary together). Readers trust only
the commit point, so a crash mid-write never exposes a half-written or mixed partition and a re-run
replaces the partition instead of adding to it; the next publish or commit collects what killed
runs left behind. The same
protocol works on a local disk (``os.replace``) and on S3 (a PUT is atomic per object). Key
layouts come from :mod:`mlflywheel.lake.keys`; backends live in their own modules and are chosen
by :func:`mlflywheel.lake.open_lake`, so this module imports none of them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import logging
import os
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from mlflywheel import faults
from mlflywheel.lake import keys  # the keys submodule only (it needs just lake.errors)
from mlflywheel.lake.errors import LakeError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

log = logging.getLogger("mlflywheel.lake")


@dataclass(frozen=True)
class LakeObject:
    """An object already in the lake, to be published under another key by a copy inside the lake
    (a hard link on a local lake, a server-side copy on S3): its bytes do not travel."""

    key: str


# A file to publish: its bytes, a local file streamed to the lake (large partitions are written
# to a local spool file first, so their size never has to fit in memory), or an object already in
# the lake (an all-good day's raw data file published as its validated file).
FileContent: TypeAlias = "bytes | os.PathLike[str] | LakeObject"


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

    # --- streaming -----------------------------------------------------------------------
    def put_file(self, key: str, path: str | os.PathLike[str]) -> None:
        """Write the local file at ``path`` as one object, atomically. Backends stream it from
        disk (a local lake may hard-link it: the file is handed over, so nothing may write to it
        afterwards); this default reads it whole (fine only for a backend with small objects)."""
        self.put_bytes(key, Path(path).read_bytes())

    def copy_object(self, source: str, key: str) -> None:
        """Write the object ``source``'s bytes as the object ``key``, atomically. This default goes
        through :meth:`local_file` and :meth:`put_file` (a local lake: a hard link of the object's
        own file); a backend that can copy inside the store does so."""
        with self.local_file(source) as path:
            self.put_file(key, path)

    @contextlib.contextmanager
    def local_file(self, key: str) -> Iterator[Path]:
        """A local path holding the object's bytes, valid inside the ``with`` block, for readers
        that stream (Parquet row groups, CSV blocks). This default copies the object to a
        temporary file; a local lake yields the object's own file (versions never change)."""
        with tempfile.TemporaryDirectory(prefix="flywheel-read-") as folder:
            path = Path(folder) / "object"
            path.write_bytes(self.get_bytes(key))
            yield path

    @contextlib.contextmanager
    def partition_local_file(self, zone: str, dataset: str, day: dt.date, name: str) -> Iterator[Path]:
        """:meth:`local_file` of a published partition's file (resolved through its manifest)."""
        with self.local_file(self._partition_file_key(zone, dataset, day, name)) as path:
            yield path

    def remove_incomplete(self, prefix: str) -> None:
        """Remove what killed writes left under ``prefix`` that no reader can see (a local lake's
        ``.tmp-*`` files, an S3 lake's unfinished multipart uploads). Nothing by default."""

    # --- partitions --------------------------------------------------------------------
    def _put(self, key: str, data: FileContent) -> None:
        faults.point("lake.put")
        if isinstance(data, bytes | bytearray | memoryview):
            self.put_bytes(key, bytes(data))
        elif isinstance(data, LakeObject):
            self.copy_object(data.key, key)
        else:
            self.put_file(key, data)

    def _delete(self, prefix: str) -> None:
        faults.point("lake.delete")
        self.delete_prefix(prefix)

    def publish_partition(
        self,
        zone: str,
        dataset: str,
        day: dt.date,
        files: dict[str, FileContent],
        meta: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Atomically replace partition ``zone/dataset/dt=day`` with ``files`` (one zone alone: raw).

        Returns the manifest. The zones of a partition's result (validated, quarantine) are
        published together by :meth:`commit_partition` instead; once a partition has a commit
        record, publishing one of them alone is refused (readers would not see it).
        """
        if zone in keys.COMMITTED_ZONES:
            record = self._committed(dataset, day)
            if record is not None:  # the partition has a commit: this zone changes through it
                return self._recommit_zone(record, zone, dataset, day, files, meta)
        base = keys.partition_prefix(zone, dataset, day)
        previous = self._manifest_file(zone, dataset, day)
        version = keys.new_version()
        for name, data in files.items():
            self._put(keys.partition_file_key(zone, dataset, day, version, name), data)
        manifest = _zone_manifest(zone, dataset, day, version, files, meta)
        faults.point("publish.manifest")
        self.put_json(keys.manifest_key(zone, dataset, day), manifest)  # the commit point
        keep = {version} | ({previous["version"]} if previous else set())
        self._collect(base + "/", keep, loose_kept={keys.MANIFEST})
        return manifest

    def commit_partition(
        self,
        dataset: str,
        day: dt.date,
        record: dict[str, Any],
        *,
        zones: dict[str, tuple[dict[str, FileContent], dict[str, Any] | None] | None],
        report: dict[str, bytes] | None = None,
        commit_id: str | None = None,
    ) -> dict[str, Any]:
        """Publish a partition's result in one commit: its validated and quarantined rows, its
        report files and ``record`` (the ledger summary) switch together, or not at all.

        ``zones`` maps each of :data:`keys.COMMITTED_ZONES` to ``(files, meta)`` or None (the zone
        has no partition in this commit; a zone left out is None too). Every file is written under
        a fresh version folder ``v=<commit_id>/`` (zones' folders, and the report's folder under
        ``reports/validation/``), then ``record`` is written last, in one atomic put, at
        :func:`keys.partition_commit_key` with a ``commit`` entry naming those versions: that put
        is the commit point. Readers resolve the zones and the report through it
        (:meth:`manifest`, ``record["report_key"]``), so they see the old commit or the new one,
        never a mix. Then garbage is collected (see :meth:`_collect_commit_garbage`).

        One writer per partition at a time (Airflow runs one task per partition and stage).
        Returns the record as written.
        """
        unknown = set(zones) - set(keys.COMMITTED_ZONES)
        if unknown:
            raise LakeError(f"commit_partition takes zones {keys.COMMITTED_ZONES}, not {sorted(unknown)}")
        previous = self._committed(dataset, day)
        commit_id = commit_id or keys.new_version()
        committed: dict[str, Any] = {}
        for zone in keys.COMMITTED_ZONES:
            entry = zones.get(zone)
            if entry is None:
                committed[zone] = None
                continue
            files, meta = entry
            for name, data in files.items():
                self._put(keys.partition_file_key(zone, dataset, day, commit_id, name), data)
            committed[zone] = _zone_manifest(zone, dataset, day, commit_id, files, meta)
        report = report or {}
        for name, data in report.items():
            self._put(keys.validation_report_key(dataset, day, name, version=commit_id), data)
        out = {k: v for k, v in record.items() if k != "commit"}
        if keys.REPORT_HTML in report:
            out["report_key"] = keys.validation_report_key(dataset, day, keys.REPORT_HTML, version=commit_id)
        else:
            out.pop("report_key", None)  # an earlier commit's report does not describe this one
        out["commit"] = {
            "id": commit_id,
            "committed_at": dt.datetime.now(dt.UTC).isoformat(),
            "zones": committed,
            "report_files": sorted(report),
            "previous_id": previous["commit"]["id"] if previous else None,
        }
        faults.point("commit.record")
        self.put_json(keys.partition_commit_key(dataset, day), out)  # the commit point
        self._collect_commit_garbage(dataset, day, out, previous)
        return out

    def _recommit_zone(
        self,
        record: dict[str, Any],
        zone: str,
        dataset: str,
        day: dt.date,
        files: dict[str, FileContent],
        meta: dict[str, Any] | None,
    ) -> dict[str, Any]:
        """A new commit of a committed partition in which only ``zone`` changes (a zone published
        alone by a tool or a test); the other zone, the report and the summary are carried over."""
        commit_id = keys.new_version()
        for name, data in files.items():
            self._put(keys.partition_file_key(zone, dataset, day, commit_id, name), data)
        manifest = _zone_manifest(zone, dataset, day, commit_id, files, meta)
        out = dict(record)
        out["commit"] = {
            **record["commit"],
            "id": commit_id,
            "committed_at": dt.datetime.now(dt.UTC).isoformat(),
            "zones": {**record["commit"]["zones"], zone: manifest},
            "report_id": record["commit"].get("report_id", record["commit"]["id"]),
            "previous_id": record["commit"]["id"],
        }
        faults.point("commit.record")
        self.put_json(keys.partition_commit_key(dataset, day), out)  # the commit point
        self._collect_commit_garbage(dataset, day, out, record)
        return manifest

    def _collect_commit_garbage(
        self, dataset: str, day: dt.date, record: dict[str, Any], previous: dict[str, Any] | None
    ) -> None:
        """After a commit: the garbage of a partition's result is everything in its zones' and
        report's folders that neither this commit nor the one before it names (versions of older
        commits, versions and ``.tmp-*`` files of killed runs, the pre-commit layout's
        ``_MANIFEST.json`` and unversioned report files).

        The rule: the current commit and the previous one are kept, so a reader that resolved the
        previous record just before the switch can still read it; a reader still holding a version
        two commits later gets "no object" and resolves again.
        """
        keep = _versions_named(record) | (_versions_named(previous) if previous else set())
        for zone in keys.COMMITTED_ZONES:
            self._collect(keys.partition_prefix(zone, dataset, day) + "/", keep)
        self._collect(keys.validation_report_prefix(dataset, day) + "/", keep)
        commit_folder = keys.partition_commit_key(dataset, day).rsplit("/", 1)[0] + "/"
        self.remove_incomplete(commit_folder)

    def _collect(self, prefix: str, keep: set[str], loose_kept: frozenset[str] | set[str] = frozenset()) -> None:
        """Delete under folder ``prefix`` the version folders not in ``keep`` and loose objects not
        in ``loose_kept``; then what killed writes left there (:meth:`remove_incomplete`)."""
        doomed: set[str] = set()
        for key in self.list_keys(prefix):
            first, sep, _ = key[len(prefix) :].partition("/")
            if sep and first.startswith(keys.VERSION_PREFIX):
                if first[len(keys.VERSION_PREFIX) :] not in keep:
                    doomed.add(prefix + first + "/")
            elif not sep and first not in loose_kept:
                doomed.add(prefix + first)
        for target in sorted(doomed):
            self._delete(target)
        faults.point("lake.remove_incomplete")
        self.remove_incomplete(prefix)

    def clear_partition(self, zone: str, dataset: str, day: dt.date) -> None:
        """Remove a partition published alone (manifest first, so readers never see a partial one).

        A committed zone (validated, quarantine) is cleared by a commit that names it None."""
        base = keys.partition_prefix(zone, dataset, day)
        manifest = keys.manifest_key(zone, dataset, day)
        if self.exists(manifest):
            self._delete(manifest)
        self._delete(base + "/")
        self.remove_incomplete(base + "/")

    def commit_record(self, dataset: str, day: dt.date) -> dict[str, Any] | None:
        """The partition's commit record (its ledger summary), or None."""
        key = keys.partition_commit_key(dataset, day)
        return self.get_json(key) if self.exists(key) else None

    def _committed(self, dataset: str, day: dt.date) -> dict[str, Any] | None:
        """The commit record if it was written by :meth:`commit_partition` (it has ``commit``)."""
        record = self.commit_record(dataset, day)
        return record if record is not None and isinstance(record.get("commit"), dict) else None

    def _manifest_file(self, zone: str, dataset: str, day: dt.date) -> dict[str, Any] | None:
        key = keys.manifest_key(zone, dataset, day)
        return self.get_json(key) if self.exists(key) else None

    def manifest(self, zone: str, dataset: str, day: dt.date) -> dict[str, Any] | None:
        """The partition's manifest (version, files, meta), or None if it has none.

        For a committed zone it comes from the partition's commit record when there is one; else
        (a partition published alone, or before commits existed) from ``_MANIFEST.json``.
        """
        if zone in keys.COMMITTED_ZONES:
            record = self._committed(dataset, day)
            if record is not None:
                return record["commit"]["zones"].get(zone)
        return self._manifest_file(zone, dataset, day)

    def _partition_file_key(self, zone: str, dataset: str, day: dt.date, name: str) -> str:
        manifest = self.manifest(zone, dataset, day)
        if manifest is None:
            raise LakeError(f"no published partition {keys.partition_prefix(zone, dataset, day)}")
        if name not in manifest["files"]:
            raise LakeError(f"partition {keys.partition_prefix(zone, dataset, day)} has no file {name!r}")
        return keys.partition_file_key(zone, dataset, day, manifest["version"], name)

    def partition_object(self, zone: str, dataset: str, day: dt.date, name: str) -> LakeObject:
        """A published partition's file (resolved through its manifest) as a :class:`LakeObject`
        to publish elsewhere without moving its bytes."""
        return LakeObject(self._partition_file_key(zone, dataset, day, name))

    def partition_file(self, zone: str, dataset: str, day: dt.date, name: str) -> bytes:
        return self.get_bytes(self._partition_file_key(zone, dataset, day, name))

    def read_frame(self, zone: str, dataset: str, day: dt.date, name: str = keys.DATA_FILE) -> pd.DataFrame:
        return frame_from_parquet(self.partition_file(zone, dataset, day, name))

    def list_partitions(self, zone: str, dataset: str) -> list[dt.date]:
        """Days with a published partition in ``zone`` (a manifest, or a commit that names the
        zone); a folder ``dt=...`` that is not a day is skipped with a warning."""
        days: set[dt.date] = set()
        prefix = keys.dataset_prefix(zone, dataset)
        for key in self.list_keys(prefix):
            day = keys.manifest_day(key, zone, dataset)
            if day is not None:
                days.add(day)
            elif key.endswith("/" + keys.MANIFEST) and key.count("/") == 3:
                log.warning("lake %s: skipping %s, its folder is not a day (dt=YYYY-MM-DD)", self.uri, key)
        if zone in keys.COMMITTED_ZONES:
            for day, record in self._commit_records(dataset):
                if isinstance(record.get("commit"), dict):
                    days.discard(day)  # the commit decides, not a leftover _MANIFEST.json
                    if record["commit"]["zones"].get(zone) is not None:
                        days.add(day)
        return sorted(days)

    def _commit_records(self, dataset: str) -> list[tuple[dt.date, dict[str, Any]]]:
        prefix = keys.ledger_prefix(dataset)
        out = []
        for key in self.list_keys(prefix):
            folder, _, name = key[len(prefix) :].partition("/")
            if name != keys.SUMMARY_JSON:
                continue
            day = keys.folder_day(folder)
            if day is None:
                log.warning("lake %s: skipping %s, its folder is not a day (dt=YYYY-MM-DD)", self.uri, key)
                continue
            out.append((day, self.get_json(key)))
        return out


def _versions_named(record: dict[str, Any]) -> set[str]:
    """The versions a commit record names: its zones' and its report's."""
    commit = record.get("commit") or {}
    named = {commit.get("id"), commit.get("report_id")}
    named |= {m["version"] for m in (commit.get("zones") or {}).values() if m}
    return named - {None}


def _zone_manifest(
    zone: str, dataset: str, day: dt.date, version: str, files: dict[str, FileContent], meta: dict[str, Any] | None
) -> dict[str, Any]:
    return {
        "zone": zone,
        "dataset": dataset,
        "partition": day.isoformat(),
        "version": version,
        "files": sorted(files),
        "published_at": dt.datetime.now(dt.UTC).isoformat(),
        **(meta or {}),
    }


# Options of the pipeline's streaming Parquet writers (the raw, validated and quarantined spool
# files). A column's dictionary stops at 64 KiB (pyarrow's default: 1 MiB): a column of a few hundred
# values stays dictionary-encoded, one of nearly unique values (ids, times, amounts) falls back to
# plain encoding after 64 KiB instead of hashing 1 MiB of values in each row group first. Measured
# on 1M rows of the transactions spec: about 25% less time to write, and a smaller file. The
# benchmark's pyarrow floor writes with the same options.
PARQUET_WRITER_OPTIONS: dict[str, Any] = {"dictionary_pagesize_limit": 64 * 1024}


def frame_to_parquet(df: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    df.to_parquet(buf, index=False, engine="pyarrow")
    return buf.getvalue()


def frame_from_parquet(data: bytes, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """The frame in ``data``; only ``columns`` (in that order) when given."""
    import pandas as pd

    return pd.read_parquet(io.BytesIO(data), engine="pyarrow", columns=list(columns) if columns else None)
