"""The lake on S3 (or an S3-compatible server such as MinIO): :class:`S3Lake`.

Keys are stored under ``s3://<bucket>/<prefix>/``. Each object is written with one PUT
(or one multipart upload for large objects), and S3 makes an object visible only
once that write completes, so the base class's partition protocol (data files under a
fresh version folder, ``_MANIFEST.json`` last) stays atomic here without extra work. A multipart
upload that fails is aborted; one whose process was killed stays behind, invisible to readers,
until the next publish or commit of its partition aborts it (:meth:`S3Lake.remove_incomplete`).

Credentials come from the standard AWS chain (``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY``, a profile, an instance role); nothing here names a secret.

Every call has a bounded time: connect and read timeouts and a number of attempts
(``FLYWHEEL_S3_CONNECT_TIMEOUT_SECONDS``, ``_S3_READ_TIMEOUT_SECONDS``, ``_S3_MAX_ATTEMPTS``), so a
hung endpoint fails the call within :meth:`S3Lake.call_budget_seconds` (under a minute by default)
with a :class:`LakeError` naming the endpoint and the object, instead of the ~9 minutes botocore's
defaults allowed.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from mlflywheel import faults
from mlflywheel.lake.base import Lake
from mlflywheel.lake.errors import LakeError
from mlflywheel.settings import Settings, redact

DEFAULT_REGION = "us-east-1"
DELETE_BATCH = 1000  # the most keys one DeleteObjects call accepts
MIN_PART_BYTES = 5 * 1024 * 1024  # S3's smallest part (all but the last)
MAX_PARTS = 10_000  # S3's most parts in one upload
_MISSING_KEY_CODES = {"404", "NoSuchKey", "NotFound"}


def _error_code(exc: Exception) -> str:
    """The S3 error code of a botocore ``ClientError`` (``""`` for anything else)."""
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


class S3Lake(Lake):
    """A :class:`~mlflywheel.lake.Lake` backed by one S3 bucket and key prefix."""

    # Class attributes so a test (or a deployment) can tune them without a new constructor
    # argument; objects at or above the threshold go up as a managed multipart upload.
    multipart_threshold: int = 64 * 1024 * 1024
    multipart_chunksize: int = 16 * 1024 * 1024  # S3 needs >= 5 MiB parts (raised to that)
    multipart_max_concurrency: int = 4
    copy_object_max_bytes: int = 5 * 1024**3  # S3's largest CopyObject; larger copies go by parts

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        client: Any = None,
        settings: Settings | None = None,
    ) -> None:
        if not bucket:
            raise LakeError("an s3:// lake URI needs a bucket: s3://bucket/prefix")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url or None
        # Timeouts and attempts from the settings (default: the FLYWHEEL_S3_* variables).
        settings = settings if settings is not None else Settings.from_env()
        self.connect_timeout = settings.s3_connect_timeout_seconds
        self.read_timeout = settings.s3_read_timeout_seconds
        self.max_attempts = settings.s3_max_attempts
        self.uri = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self.client = client if client is not None else self._make_client()
        self._bucket_checked = False  # set once the bucket is known to exist

    @classmethod
    def from_uri(
        cls, uri: str, *, s3_endpoint_url: str = "", settings: Settings | None = None, **options: Any
    ) -> S3Lake:
        parsed = urlparse(uri)
        return cls(parsed.netloc, parsed.path.lstrip("/"), endpoint_url=s3_endpoint_url or None, settings=settings)

    def call_budget_seconds(self) -> float:
        """The longest one call can take against an endpoint that never answers.

        Each attempt waits at most connect + read timeout; botocore's standard mode sleeps a
        random time below min(20, 2^n) seconds before retry n.
        """
        backoff = sum(min(20.0, 2.0**n) for n in range(self.max_attempts - 1))
        return self.max_attempts * (self.connect_timeout + self.read_timeout) + backoff

    def _make_client(self) -> Any:
        import boto3
        from botocore.config import Config

        options: dict[str, Any] = {
            # Ride out throttling and 5xx, within a bounded time (see call_budget_seconds).
            "retries": {"total_max_attempts": self.max_attempts, "mode": "standard"},
            "connect_timeout": self.connect_timeout,
            "read_timeout": self.read_timeout,
        }
        if self.endpoint_url:
            # S3-compatible servers rarely do virtual-host buckets, and many older ones reject
            # the flexible checksums botocore sends by default since 1.36.
            options["s3"] = {"addressing_style": "path"}
            options["request_checksum_calculation"] = "when_required"
            options["response_checksum_validation"] = "when_required"
        region = os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION
        return boto3.client(
            "s3", endpoint_url=self.endpoint_url, region_name=region, config=Config(**options)
        )

    # --- keys and errors ---------------------------------------------------------------
    def _key(self, key: str) -> str:
        """The bucket key of lake key ``key`` (same validity rules as the local lake)."""
        key = self.checked_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _where(self) -> str:
        # The endpoint may carry a token in its query string: never print it.
        return f"endpoint {redact(self.endpoint_url)}" if self.endpoint_url else "AWS S3"

    def _timeout_hint(self, exc: Exception) -> str:
        """For a timeout or unreachable endpoint: the budget spent and the settings that set it."""
        from botocore.exceptions import ConnectionError as BotoConnectionError
        from botocore.exceptions import HTTPClientError

        # Connect timeouts and refused connections, read timeouts and dropped connections.
        if not isinstance(exc, (BotoConnectionError, HTTPClientError)):
            return ""
        return (
            f" (gave up after {self.max_attempts} attempt(s), {self.connect_timeout:g} s to connect and "
            f"{self.read_timeout:g} s to read each: FLYWHEEL_S3_CONNECT_TIMEOUT_SECONDS, "
            f"FLYWHEEL_S3_READ_TIMEOUT_SECONDS, FLYWHEEL_S3_MAX_ATTEMPTS)"
        )

    def _missing_bucket(self) -> LakeError:
        return LakeError(
            f"S3 bucket {self.bucket!r} does not exist at {self._where()} "
            f"(lake {self.uri}); create it or fix the lake URI / FLYWHEEL_S3_ENDPOINT_URL"
        )

    def _fail(self, action: str, key: str, exc: Exception) -> LakeError:
        """A LakeError for a failed call, naming the object and the endpoint."""
        if _error_code(exc) == "NoSuchBucket":
            return self._missing_bucket()
        detail = redact(str(exc)) if self.endpoint_url else str(exc)
        return LakeError(f"S3 {action} {self.url(key)} failed at {self._where()}: {detail}{self._timeout_hint(exc)}")

    def check_bucket(self) -> None:
        """Raise :class:`LakeError` unless the bucket exists and is reachable (checked once)."""
        if self._bucket_checked:
            return
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            # A one-key LIST under the lake prefix, not HeadBucket: it needs only the permission
            # the lake needs anyway (ListBucket, possibly limited to the prefix).
            self.client.list_objects_v2(
                Bucket=self.bucket, Prefix=f"{self.prefix}/" if self.prefix else "", MaxKeys=1
            )
        except ClientError as exc:
            if _error_code(exc) in {"404", "NoSuchBucket", "NotFound"}:
                raise self._missing_bucket() from None
            raise LakeError(f"S3 bucket {self.bucket!r} at {self._where()} is not usable: {exc}") from exc
        except BotoCoreError as exc:
            raise LakeError(
                f"S3 bucket {self.bucket!r} at {self._where()} is not reachable: "
                f"{redact(str(exc))}{self._timeout_hint(exc)}"
            ) from exc
        self._bucket_checked = True

    # --- primitives --------------------------------------------------------------------
    def put_bytes(self, key: str, data: bytes) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        bucket_key = self._key(key)
        try:
            if len(data) < self.multipart_threshold:
                self.client.put_object(Bucket=self.bucket, Key=bucket_key, Body=data)
            else:
                self._put_multipart(bucket_key, len(data), lambda start, size: data[start : start + size])
        except (ClientError, BotoCoreError) as exc:
            raise self._fail("put", key, exc) from exc
        self._bucket_checked = True

    def put_file(self, key: str, path: str | os.PathLike[str]) -> None:
        """The file streamed from disk: one PUT when small, else a multipart upload reading one part
        at a time (memory holds at most ``multipart_max_concurrency`` parts)."""
        from botocore.exceptions import BotoCoreError, ClientError

        bucket_key = self._key(key)
        length = os.path.getsize(path)
        try:
            if length < self.multipart_threshold:
                with open(path, "rb") as fh:
                    self.client.put_object(Bucket=self.bucket, Key=bucket_key, Body=fh.read())
            else:
                with open(path, "rb") as fh:
                    self._put_multipart(bucket_key, length, lambda start, size: os.pread(fh.fileno(), size, start))
        except (ClientError, BotoCoreError) as exc:
            raise self._fail("put", key, exc) from exc
        self._bucket_checked = True

    @contextlib.contextmanager
    def local_file(self, key: str) -> Iterator[Path]:
        """The object downloaded in blocks to a temporary file (deleted after the block)."""
        with tempfile.TemporaryDirectory(prefix="flywheel-read-") as folder:
            path = Path(folder) / "object"
            with open(path, "wb") as fh:
                self._get_object(key, lambda body: fh.writelines(body.iter_chunks(chunk_size=4 * 1024 * 1024)))
            yield path

    def copy_object(self, source: str, key: str) -> None:
        """A server-side copy (the bytes stay in the store): one ``CopyObject`` up to S3's 5 GiB
        limit on it, else a multipart upload whose parts are copied ranges of ``source``."""
        from botocore.exceptions import BotoCoreError, ClientError

        bucket_key, origin = self._key(key), {"Bucket": self.bucket, "Key": self._key(source)}
        try:
            try:
                length = int(self.client.head_object(**origin)["ContentLength"])
            except ClientError as exc:
                if _error_code(exc) in _MISSING_KEY_CODES:
                    raise LakeError(f"no object {self.url(source)} to copy to {self.url(key)}") from None
                raise
            if length <= self.copy_object_max_bytes:
                self.client.copy_object(Bucket=self.bucket, Key=bucket_key, CopySource=origin)
            else:

                def copy_part(upload: dict[str, Any], number: int, start: int, size: int) -> dict[str, Any]:
                    end = min(start + size, length) - 1
                    response = self.client.upload_part_copy(
                        **upload, PartNumber=number, CopySource=origin, CopySourceRange=f"bytes={start}-{end}"
                    )
                    return {"PartNumber": number, "ETag": response["CopyPartResult"]["ETag"]}

                self._multipart(bucket_key, length, copy_part, checksums=False)
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(f"copy {source!r} to", key, exc) from exc
        self._bucket_checked = True

    def _put_multipart(self, bucket_key: str, length: int, read: Callable[[int, int], bytes]) -> None:
        """The bytes ``read(start, size)`` gives, sent as the parts of one multipart upload."""
        # As boto3's managed transfer does: CRC32 part checksums when the client sends checksums.
        checksum = self.client.meta.config.request_checksum_calculation == "when_supported"
        extra = {"ChecksumAlgorithm": "CRC32"} if checksum else {}

        def send(upload: dict[str, Any], number: int, start: int, size: int) -> dict[str, Any]:
            response = self.client.upload_part(**upload, PartNumber=number, Body=read(start, size), **extra)
            part = {"PartNumber": number, "ETag": response["ETag"]}
            if "ChecksumCRC32" in response:
                part["ChecksumCRC32"] = response["ChecksumCRC32"]
            return part

        self._multipart(bucket_key, length, send, checksums=checksum)

    def _multipart(
        self,
        bucket_key: str,
        length: int,
        send_part: Callable[[dict[str, Any], int, int, int], dict[str, Any]],
        *,
        checksums: bool,
    ) -> None:
        """One multipart upload of ``length`` bytes: ``send_part(upload, number, start, size)``
        stores a part and returns its entry; the first part, then the rest in parallel, then
        completion.

        The object appears only on completion, so readers never see a partial one. A failure
        aborts the upload; a kill leaves it to :meth:`remove_incomplete` (fault point
        ``lake.put.partial``: a part is stored, the object is not).
        """
        size = max(self.multipart_chunksize, MIN_PART_BYTES, -(-length // MAX_PARTS))
        offsets = list(range(0, length, size))
        target = {"Bucket": self.bucket, "Key": bucket_key}
        extra = {"ChecksumAlgorithm": "CRC32"} if checksums else {}
        upload_id = self.client.create_multipart_upload(**target, **extra)["UploadId"]
        upload = {**target, "UploadId": upload_id}

        def send(number: int) -> dict[str, Any]:
            return send_part(upload, number, offsets[number - 1], size)

        try:
            parts = [send(1)]
            faults.point("lake.put.partial")
            if len(offsets) > 1:
                workers = max(1, min(self.multipart_max_concurrency, len(offsets) - 1))
                with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="s3-part") as pool:
                    parts += pool.map(send, range(2, len(offsets) + 1))
            self.client.complete_multipart_upload(**target, UploadId=upload_id, MultipartUpload={"Parts": parts})
        except BaseException:
            with contextlib.suppress(Exception):  # best effort: remove_incomplete catches what is left
                self.client.abort_multipart_upload(**target, UploadId=upload_id)
            raise

    def get_bytes(self, key: str) -> bytes:
        return self._get_object(key, lambda body: body.read())

    def _get_object(self, key: str, consume: Callable[[Any], Any]) -> Any:
        """``consume(body)`` of the object's streaming body; S3 errors as :class:`LakeError`."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return consume(self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"])
        except ClientError as exc:
            if _error_code(exc) in _MISSING_KEY_CODES:
                raise LakeError(f"no object {self.url(key)}") from None
            raise self._fail("get", key, exc) from exc
        except BotoCoreError as exc:
            raise self._fail("get", key, exc) from exc

    def exists(self, key: str) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if _error_code(exc) in _MISSING_KEY_CODES:
                # HEAD answers a bare 404 for a missing bucket too: tell the two apart.
                self.check_bucket()
                return False
            raise self._fail("head", key, exc) from exc
        except BotoCoreError as exc:
            raise self._fail("head", key, exc) from exc
        self._bucket_checked = True
        return True

    def list_keys(self, prefix: str) -> list[str]:
        """Keys under ``prefix`` as a folder (or the one key equal to it), sorted, lake-relative."""
        from botocore.exceptions import BotoCoreError, ClientError

        folder = prefix.rstrip("/")
        # Ask S3 for the literal prefix, then keep folder semantics like the local lake:
        # "a/b" matches "a/b" and "a/b/..." but not "a/bc" (one LIST, no extra HEAD).
        s3_prefix = self._key(folder) if folder else (f"{self.prefix}/" if self.prefix else "")
        strip = len(self.prefix) + 1 if self.prefix else 0
        keys: list[str] = []
        try:
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=s3_prefix):
                for obj in page.get("Contents", []):
                    rel = obj["Key"][strip:]
                    if rel.endswith("/"):  # a console-made "folder" marker, not an object
                        continue
                    if not folder or rel == folder or rel.startswith(folder + "/"):
                        keys.append(rel)
        except (ClientError, BotoCoreError) as exc:
            raise self._fail("list", prefix, exc) from exc
        self._bucket_checked = True
        return sorted(keys)

    def remove_incomplete(self, prefix: str) -> None:
        """Abort the multipart uploads under folder ``prefix`` that killed writes never finished
        (their parts cost storage but no reader sees them)."""
        from botocore.exceptions import BotoCoreError, ClientError

        folder = prefix.rstrip("/")
        s3_prefix = self._key(folder) + "/" if folder else (f"{self.prefix}/" if self.prefix else "")
        try:
            paginator = self.client.get_paginator("list_multipart_uploads")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=s3_prefix):
                for upload in page.get("Uploads", []):
                    self.client.abort_multipart_upload(
                        Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                    )
        except (ClientError, BotoCoreError) as exc:
            raise self._fail("abort uploads under", prefix, exc) from exc

    def delete_prefix(self, prefix: str) -> None:
        """Delete every object under ``prefix`` as a folder, and the object named ``prefix``."""
        from botocore.exceptions import BotoCoreError, ClientError

        keys = self.list_keys(prefix)
        for start in range(0, len(keys), DELETE_BATCH):
            batch = keys[start : start + DELETE_BATCH]
            try:
                response = self.client.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": self._key(k)} for k in batch], "Quiet": True},
                )
            except (ClientError, BotoCoreError) as exc:
                raise self._fail("delete", prefix, exc) from exc
            errors = response.get("Errors") or []
            if errors:
                first = errors[0]
                raise LakeError(
                    f"S3 delete under {self.url(prefix)} failed for {len(errors)} object(s), "
                    f"e.g. {first.get('Key')}: {first.get('Code')} {first.get('Message')}"
                )
