"""S3Lake against a real S3-compatible HTTP server (moto on loopback): what only S3 has.

The lake contract itself runs on both backends in ``tests/test_lake.py``.
"""

from __future__ import annotations

import datetime as dt
import os

import pytest
from mlflywheel import ledger
from mlflywheel.lake import LakeError, open_lake
from mlflywheel.lake import s3 as lake_s3
from mlflywheel.lake.s3 import S3Lake

DAY = dt.date(2026, 11, 3)


def test_open_lake_gives_path_style_s3_lake(s3_lake, s3_bucket, s3_server, s3_client):
    assert isinstance(s3_lake, S3Lake)
    assert s3_lake.uri == f"s3://{s3_bucket}/lake"
    assert s3_lake.client.meta.config.s3["addressing_style"] == "path"
    # Bounded by the settings (FLYWHEEL_S3_*): botocore counts the first try as an attempt.
    assert s3_lake.client.meta.config.retries == {"total_max_attempts": 3, "mode": "standard"}
    assert (s3_lake.client.meta.config.connect_timeout, s3_lake.client.meta.config.read_timeout) == (5.0, 12.0)
    s3_lake.put_text("state/a.txt", "hi")
    # Lake keys are stored under the lake's prefix in the bucket.
    assert s3_client.get_object(Bucket=s3_bucket, Key="lake/state/a.txt")["Body"].read() == b"hi"
    assert s3_lake.url("state/a.txt") == f"s3://{s3_bucket}/lake/state/a.txt"
    # Slashes around the prefix never double up; an empty prefix is the bucket root.
    assert S3Lake(s3_bucket, "/lake/", client=s3_client).get_bytes("state/a.txt") == b"hi"
    root = S3Lake(s3_bucket, "", client=s3_client)
    assert root.uri == f"s3://{s3_bucket}"
    assert root.list_keys("") == ["lake/state/a.txt"]


def test_delete_prefix_batches(s3_lake, monkeypatch):
    monkeypatch.setattr(lake_s3, "DELETE_BATCH", 2)  # 5 keys -> 3 DeleteObjects calls
    for i in range(5):
        s3_lake.put_bytes(f"state/many/{i}", b"x")
    calls = []
    real_delete = s3_lake.client.delete_objects

    def counting_delete(**kwargs):
        calls.append(len(kwargs["Delete"]["Objects"]))
        return real_delete(**kwargs)

    monkeypatch.setattr(s3_lake.client, "delete_objects", counting_delete)
    s3_lake.delete_prefix("state/many/")
    assert calls == [2, 2, 1]
    assert s3_lake.list_keys("state/") == []


def test_multipart_upload_round_trips(s3_lake, s3_client, s3_bucket, monkeypatch):
    # S3 parts are at least 5 MiB (boto3 clamps the chunk size), so 5 MiB + a tail is 2 parts.
    monkeypatch.setattr(S3Lake, "multipart_threshold", 1024 * 1024)
    monkeypatch.setattr(S3Lake, "multipart_chunksize", 5 * 1024 * 1024)
    payload = os.urandom(5 * 1024 * 1024 + 12_345)
    s3_lake.put_bytes("snapshots/big.bin", payload)
    s3_lake.put_bytes("snapshots/small.bin", b"tiny")
    assert s3_lake.get_bytes("snapshots/big.bin") == payload
    big_etag = s3_client.head_object(Bucket=s3_bucket, Key="lake/snapshots/big.bin")["ETag"]
    small_etag = s3_client.head_object(Bucket=s3_bucket, Key="lake/snapshots/small.bin")["ETag"]
    assert big_etag.strip('"').endswith("-2")  # a multipart ETag: "<md5 of part md5s>-<parts>"
    assert "-" not in small_etag  # below the threshold: a single PutObject


def test_multipart_upload_with_part_checksums_round_trips(s3_server, s3_bucket, s3_client, monkeypatch):
    # A client that sends checksums (botocore's default against AWS): CRC32 per part, as boto3's
    # managed transfer does, and the completion names them.
    import boto3
    from botocore.config import Config

    monkeypatch.setattr(S3Lake, "multipart_threshold", 1024 * 1024)
    monkeypatch.setattr(S3Lake, "multipart_chunksize", 5 * 1024 * 1024)
    client = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1", config=Config(
        s3={"addressing_style": "path"}, request_checksum_calculation="when_supported"))  # fmt: skip
    lake = S3Lake(s3_bucket, "lake", endpoint_url=s3_server, client=client)
    payload = os.urandom(5 * 1024 * 1024 + 1)
    lake.put_bytes("snapshots/big.bin", payload)
    assert lake.get_bytes("snapshots/big.bin") == payload
    head = s3_client.head_object(Bucket=s3_bucket, Key="lake/snapshots/big.bin", ChecksumMode="ENABLED")
    assert head["ETag"].strip('"').endswith("-2") and head["ChecksumCRC32"]
    assert s3_client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []


def test_an_unfinished_multipart_upload_is_aborted_by_the_next_publish(s3_lake, s3_bucket, s3_client):
    # What a process killed between the parts of an upload leaves: an upload with a stored part,
    # no object. Readers never see it; the partition's next publish aborts it.
    from mlflywheel.lake import keys

    s3_lake.publish_partition(keys.RAW, "transactions", DAY, {"data.bin": b"old"})
    key = f"lake/{keys.partition_file_key(keys.RAW, 'transactions', DAY, keys.new_version(), 'data.bin')}"
    upload = s3_client.create_multipart_upload(Bucket=s3_bucket, Key=key)["UploadId"]
    s3_client.upload_part(Bucket=s3_bucket, Key=key, UploadId=upload, PartNumber=1, Body=b"x" * 1024)
    elsewhere = "lake/state/other.bin"  # another folder's upload, maybe still in flight: left alone
    other = s3_client.create_multipart_upload(Bucket=s3_bucket, Key=elsewhere)["UploadId"]
    assert s3_lake.partition_file(keys.RAW, "transactions", DAY, "data.bin") == b"old"
    assert not s3_lake.exists(key.removeprefix("lake/"))

    s3_lake.publish_partition(keys.RAW, "transactions", DAY, {"data.bin": b"new"})
    uploads = s3_client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", [])
    assert [(u["Key"], u["UploadId"]) for u in uploads] == [(elsewhere, other)]
    assert s3_lake.partition_file(keys.RAW, "transactions", DAY, "data.bin") == b"new"


def test_missing_bucket_is_a_clear_error(s3_server, monkeypatch):
    lake = open_lake("s3://flywheel-no-such-bucket/lake", s3_endpoint_url=s3_server)
    expected = rf"bucket 'flywheel-no-such-bucket' does not exist at endpoint {s3_server}"
    with pytest.raises(LakeError, match=expected):
        lake.put_bytes("state/a", b"x")
    with pytest.raises(LakeError, match=expected):
        lake.get_bytes("state/a")
    with pytest.raises(LakeError, match=expected):
        lake.exists("state/a")  # a bare 404 from HEAD, not "the object is missing"
    with pytest.raises(LakeError, match=expected):
        lake.list_keys("state/")
    monkeypatch.setattr(S3Lake, "multipart_threshold", 1)
    with pytest.raises(LakeError, match=expected):
        lake.put_bytes("state/b", b"x" * 16)  # the managed-transfer path too


def test_ingest_and_validate_on_s3(s3_lake):
    from mlflywheel.datasets import get_spec
    from mlflywheel.datasets.landing import land_frame
    from mlflywheel.datasets.upstreams.transactions import generate_day
    from mlflywheel.ingest import ingest_partition
    from mlflywheel.validation import validate_partition

    spec = get_spec("transactions")
    land_frame(s3_lake, spec, DAY, generate_day(DAY, 300, seed=1))
    ingested = ingest_partition(s3_lake, spec, DAY, run_id="s3-run")
    assert ingested["rows_in"] == 300
    summary = validate_partition(s3_lake, spec, DAY, run_id="s3-run")
    assert summary["rows_validated"] + summary["rows_quarantined"] == summary["rows_in"] == 300
    assert ledger.read_summary(s3_lake, spec.name, DAY) == summary
    assert s3_lake.list_partitions("raw", spec.name) == [DAY]
    if summary["rows_validated"]:
        assert len(s3_lake.read_frame("validated", spec.name, DAY)) == summary["rows_validated"]


def _calls(lake: S3Lake) -> list[tuple[str, str]]:
    """(operation, key) of every S3 call the lake's client makes from now on."""
    seen: list[tuple[str, str]] = []

    def record(params, model, **_):
        seen.append((model.name, str(params.get("Key", ""))))

    lake.client.meta.events.register("provide-client-params.s3.*", record)
    return seen


def test_a_copy_larger_than_copy_objects_limit_goes_by_copied_parts(s3_lake, s3_bucket, s3_client, monkeypatch):
    monkeypatch.setattr(S3Lake, "copy_object_max_bytes", 1024 * 1024)  # S3's is 5 GiB
    monkeypatch.setattr(S3Lake, "multipart_chunksize", 5 * 1024 * 1024)
    payload = os.urandom(10 * 1024 * 1024 + 7)
    s3_lake.put_bytes("snapshots/big.bin", payload)
    s3_lake.put_bytes("snapshots/small.bin", b"x" * 1000)
    calls = _calls(s3_lake)
    s3_lake.copy_object("snapshots/big.bin", "snapshots/big-copy.bin")
    s3_lake.copy_object("snapshots/small.bin", "snapshots/small-copy.bin")
    assert s3_lake.get_bytes("snapshots/big-copy.bin") == payload
    assert s3_lake.get_bytes("snapshots/small-copy.bin") == b"x" * 1000
    ops = [op for op, _ in calls]
    assert ops.count("UploadPartCopy") == 3 and ops.count("CopyObject") == 1  # 5 + 5 MiB + 7 bytes; one call
    assert "UploadPart" not in ops and "PutObject" not in ops  # no byte went through this process
    head = s3_client.head_object(Bucket=s3_bucket, Key="lake/snapshots/big-copy.bin")
    assert head["ETag"].strip('"').endswith("-3")
    assert s3_client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []


def test_a_copy_killed_between_its_parts_leaves_no_object(s3_lake, s3_bucket, s3_client, monkeypatch):
    from mlflywheel import faults

    monkeypatch.setattr(S3Lake, "copy_object_max_bytes", 1024 * 1024)
    monkeypatch.setattr(S3Lake, "multipart_chunksize", 5 * 1024 * 1024)
    s3_lake.put_bytes("snapshots/big.bin", os.urandom(6 * 1024 * 1024))

    def crash(name: str) -> None:
        if name == "lake.put.partial":
            raise KeyboardInterrupt(name)  # a kill: not an error the code may handle

    monkeypatch.setattr(faults, "point", crash)
    with pytest.raises(KeyboardInterrupt):
        s3_lake.copy_object("snapshots/big.bin", "snapshots/copy.bin")
    assert not s3_lake.exists("snapshots/copy.bin")


def test_an_all_good_day_on_s3_is_validated_by_a_server_side_copy(s3_lake):
    """The validated file of a day whose rows all pass is the raw data file, copied inside the
    store: the validation uploads no byte of it."""
    from mlflywheel.datasets import get_spec
    from mlflywheel.datasets.landing import land_frame
    from mlflywheel.datasets.upstreams.transactions import generate_day
    from mlflywheel.ingest import ingest_partition
    from mlflywheel.lake import keys
    from mlflywheel.validation import validate_partition

    spec = get_spec("transactions")
    frame = generate_day(DAY, 400, seed=3)
    land_frame(s3_lake, spec, DAY, frame)
    ingest_partition(s3_lake, spec, DAY, run_id="s3-run")
    calls = _calls(s3_lake)
    summary = validate_partition(s3_lake, spec, DAY, run_id="s3-run")
    assert summary["status"] == "validated" and summary["rows_validated"] == 400
    raw_key = s3_lake.partition_object(keys.RAW, spec.name, DAY, keys.DATA_FILE).key
    validated = [key for op, key in calls if key.endswith(f"/{keys.DATA_FILE}") and "validated/" in key]
    assert validated and {op for op, key in calls if key in validated} == {"CopyObject"}
    assert s3_lake.get_bytes(validated[0].removeprefix("lake/")) == s3_lake.get_bytes(raw_key)
    assert s3_lake.read_frame("validated", spec.name, DAY)[spec.id_column].tolist() == frame[spec.id_column].tolist()
