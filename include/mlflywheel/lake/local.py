"""The lake on a local disk: :class:`LocalLake`. Each object is written to a temporary file in
its folder and moved into place with ``os.replace``, which is atomic on one filesystem. A spool
file on the lake's filesystem is hard-linked into place instead of copied (no byte moves)."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from mlflywheel import faults
from mlflywheel.lake import keys  # the keys submodule only (it needs just lake.errors)
from mlflywheel.lake.base import Lake
from mlflywheel.lake.errors import LakeError

# A hard link that fails with these means "not here" (another filesystem, links refused or not
# supported, too many links): the file is copied instead.
_LINK_REFUSED = frozenset({errno.EXDEV, errno.EPERM, errno.EACCES, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP})


class LocalLake(Lake):
    """The lake as a folder on a local disk (the embedded default)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.uri = self.root.resolve().as_uri()

    @classmethod
    def from_uri(cls, uri: str, **options: Any) -> LocalLake:
        parsed = urlparse(uri)
        return cls(parsed.path if parsed.scheme else uri)

    def _path(self, key: str) -> Path:
        return self.root / self.checked_key(key)

    def put_bytes(self, key: str, data: bytes) -> None:
        self._write(key, lambda fh: fh.write(data))

    def put_file(self, key: str, path: str | os.PathLike[str]) -> None:
        """The file at ``path`` as the object ``key``; the caller must not write to ``path``
        afterwards (it may now be the object's own file: a spool file is handed over, not lent)."""
        if self._link(key, Path(path)):
            return

        def copy(fh: Any) -> None:
            with open(path, "rb") as source:
                shutil.copyfileobj(source, fh, length=4 * 1024 * 1024)

        self._write(key, copy)

    def _link(self, key: str, source: Path) -> bool:
        """Hard-link ``source`` to a temporary name beside the object, sync it and move it into place,
        as :meth:`_write` does with a copy; False (nothing done) where the filesystem refuses the link."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f"{keys.TEMP_PREFIX}{uuid.uuid4().hex}"
        try:
            os.link(source, tmp)
        except OSError as exc:
            if exc.errno in _LINK_REFUSED:
                return False
            raise
        try:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)  # the spool file's bytes were written, not synced
            finally:
                os.close(fd)
            faults.point("lake.put.partial")  # the bytes are on disk, not yet in place
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return True

    def _write(self, key: str, fill: Any) -> None:
        """A temporary file beside the object, filled by ``fill(file)``, synced, then moved into place."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=keys.TEMP_PREFIX)
        try:
            with os.fdopen(fd, "wb") as fh:
                fill(fh)
                fh.flush()
                os.fsync(fh.fileno())
            faults.point("lake.put.partial")  # the bytes are on disk, not yet in place
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise LakeError(f"no object {self.url(key)}") from None

    @contextlib.contextmanager
    def local_file(self, key: str) -> Iterator[Path]:
        # The object's own file: objects are replaced whole (os.replace), never written in place.
        path = self._path(key)
        if not path.is_file():
            raise LakeError(f"no object {self.url(key)}")
        yield path

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
            if path.is_file() and not path.name.startswith(keys.TEMP_PREFIX):
                out.append(path.relative_to(self.root).as_posix())
        return sorted(out)

    def remove_incomplete(self, prefix: str) -> None:
        """Delete the ``.tmp-*`` files of writes killed before their rename under ``prefix``."""
        base = self._path(prefix.rstrip("/")) if prefix.rstrip("/") else self.root
        if base.is_dir():
            for path in base.rglob(keys.TEMP_PREFIX + "*"):
                if path.is_file():
                    path.unlink(missing_ok=True)

    def delete_prefix(self, prefix: str) -> None:
        path = self._path(prefix.rstrip("/"))
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists():
            path.unlink()
