"""The lake contract, on every backend (local disk, and S3 on a loopback server): byte primitives,
and the manifest as the commit point of a partition."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from mlflywheel.lake import MANIFEST, LakeError, LocalLake, frame_to_parquet, open_lake, partition_prefix

DAY = dt.date(2026, 11, 3)


@pytest.fixture()
def local_lake(tmp_path) -> LocalLake:
    return LocalLake(tmp_path / "lake")


@pytest.fixture(params=["local", "s3"])
def lake(request, tmp_path):
    """Each contract test runs against both backends."""
    if request.param == "local":
        return LocalLake(tmp_path / "lake")
    return request.getfixturevalue("s3_lake")


def test_put_get_exists_list_delete(lake):
    lake.put_bytes("landing/x/b.txt", b"two")
    lake.put_bytes("landing/x/a.txt", b"one")
    lake.put_bytes("landing/xy/c.txt", b"sibling")  # shares the string prefix, not the folder
    lake.put_json("state/doc.json", {"k": 1})
    assert lake.get_bytes("landing/x/a.txt") == b"one"
    assert lake.get_json("state/doc.json") == {"k": 1}
    assert lake.exists("landing/x/a.txt") and not lake.exists("landing/x/c.txt")
    assert lake.list_keys("landing/x/") == ["landing/x/a.txt", "landing/x/b.txt"]
    assert lake.list_keys("landing/x") == ["landing/x/a.txt", "landing/x/b.txt"]
    assert lake.list_keys("landing/x/a.txt") == ["landing/x/a.txt"]
    assert lake.list_keys("landing/") == ["landing/x/a.txt", "landing/x/b.txt", "landing/xy/c.txt"]
    assert lake.list_keys("") == [*lake.list_keys("landing/"), "state/doc.json"]
    assert lake.list_keys("nothing/") == []
    lake.put_bytes("landing/x/a.txt", b"replaced")
    assert lake.get_bytes("landing/x/a.txt") == b"replaced"

    lake.delete_prefix("landing/x/b.txt")  # a key exactly equal to the prefix
    assert lake.list_keys("landing/x/") == ["landing/x/a.txt"]
    lake.delete_prefix("landing/x/")
    assert lake.list_keys("landing/") == ["landing/xy/c.txt"]
    lake.delete_prefix("landing/nothing/")  # deleting nothing is fine
    with pytest.raises(LakeError, match=r"no object .*landing/x/a\.txt"):
        lake.get_bytes("landing/x/a.txt")


@pytest.mark.parametrize("key", ["../outside", "/etc/passwd", "raw/../../x", "a/../b"])
def test_invalid_keys_rejected(lake, key):
    with pytest.raises(LakeError, match="invalid lake key"):
        lake.put_bytes(key, b"x")
    with pytest.raises(LakeError):
        lake.exists(key)


def test_unknown_zone_rejected():
    with pytest.raises(LakeError, match="unknown zone"):
        partition_prefix("tmp", "transactions", DAY)


def test_publish_replaces_old_version(lake):
    first = lake.publish_partition("raw", "ds", DAY, {"data.bin": b"v1"}, meta={"rows_in": 1})
    second = lake.publish_partition("raw", "ds", DAY, {"data.bin": b"v2"}, meta={"rows_in": 2})
    assert first["version"] != second["version"]
    assert lake.manifest("raw", "ds", DAY)["rows_in"] == 2
    assert lake.partition_file("raw", "ds", DAY, "data.bin") == b"v2"
    def versions():
        return {k.split("/")[3] for k in lake.list_keys(partition_prefix("raw", "ds", DAY) + "/") if "/v=" in k}

    # The previous version stays one publish more (a reader may still be reading it), not longer.
    assert versions() == {f"v={first['version']}", f"v={second['version']}"}
    third = lake.publish_partition("raw", "ds", DAY, {"data.bin": b"v3"}, meta={"rows_in": 3})
    assert versions() == {f"v={second['version']}", f"v={third['version']}"}
    assert lake.list_partitions("raw", "ds") == [DAY]


def test_manifest_is_the_commit_point(lake):
    base = partition_prefix("raw", "ds", DAY)
    # A crash after the data files but before the manifest: the partition does not exist.
    lake.put_bytes(f"{base}/v=20260101T000000-deadbeef/data.bin", b"half-written")
    assert lake.list_partitions("raw", "ds") == []
    assert lake.manifest("raw", "ds", DAY) is None
    with pytest.raises(LakeError, match="no published partition"):
        lake.partition_file("raw", "ds", DAY, "data.bin")

    # Once published, a later crashed attempt leaves readers on the committed version...
    committed = lake.publish_partition("raw", "ds", DAY, {"data.bin": b"good"})
    lake.put_bytes(f"{base}/v=29990101T000000-cafecafe/data.bin", b"crashed re-run")
    assert lake.partition_file("raw", "ds", DAY, "data.bin") == b"good"
    assert lake.manifest("raw", "ds", DAY)["version"] == committed["version"]
    assert lake.list_partitions("raw", "ds") == [DAY]
    # ...and the next successful publish sweeps the orphans away.
    lake.publish_partition("raw", "ds", DAY, {"data.bin": b"better"})
    assert [k for k in lake.list_keys(base + "/") if "cafecafe" in k or "deadbeef" in k] == []


def test_partition_file_must_be_listed(lake):
    lake.publish_partition("raw", "ds", DAY, {"data.bin": b"x"})
    with pytest.raises(LakeError, match="has no file"):
        lake.partition_file("raw", "ds", DAY, "other.bin")


def test_clear_partition_and_read_frame(lake):
    frame = pd.DataFrame({"a": [1, 2], "b": ["x", None]})
    manifest = lake.publish_partition("validated", "ds", DAY, {"data.parquet": frame_to_parquet(frame)})
    # partition_file reads the object of the manifest's version.
    stored = lake.get_bytes(f"{partition_prefix('validated', 'ds', DAY)}/v={manifest['version']}/data.parquet")
    assert lake.partition_file("validated", "ds", DAY, "data.parquet") == stored
    pd.testing.assert_frame_equal(lake.read_frame("validated", "ds", DAY), frame)
    lake.clear_partition("validated", "ds", DAY)
    assert lake.list_partitions("validated", "ds") == []
    assert lake.list_keys("validated/ds/") == []


def test_list_partitions_sorted_and_per_dataset(lake):
    for day in (dt.date(2026, 11, 5), dt.date(2026, 11, 1)):
        lake.publish_partition("raw", "ds", day, {"f": b""})
    lake.publish_partition("raw", "other", DAY, {"f": b""})
    assert lake.list_partitions("raw", "ds") == [dt.date(2026, 11, 1), dt.date(2026, 11, 5)]


def test_open_lake_file_uri(tmp_path):
    lake = open_lake((tmp_path / "l").as_uri())
    assert isinstance(lake, LocalLake)
    lake.put_text("state/a.txt", "hi")
    assert open_lake(str(tmp_path / "l")).get_bytes("state/a.txt") == b"hi"
    with pytest.raises(LakeError, match="unsupported lake URI"):
        open_lake("ftp://host/x")


def test_no_temp_files_left(local_lake):
    local_lake.put_bytes("state/a", b"1")
    assert [p.name for p in (local_lake.root / "state").iterdir()] == ["a"]
    assert MANIFEST == "_MANIFEST.json"


# --- one commit point per partition across zones (issue 9, items 6, 8, 12) -------------------------
def _summary(status: str, rows_validated: int, rows_quarantined: int, run_id: str) -> dict:
    return {"dataset": "ds", "partition": DAY.isoformat(), "status": status, "run_id": run_id,
            "rows_in": rows_validated + rows_quarantined, "rows_validated": rows_validated,
            "rows_quarantined": rows_quarantined}  # fmt: skip


def test_list_partitions_skips_a_folder_that_is_not_a_day(lake, caplog):
    lake.publish_partition("raw", "ds", DAY, {"f": b""})
    lake.put_json("raw/ds/dt=not-a-date/_MANIFEST.json", {"version": "x", "files": []})
    with caplog.at_level("WARNING"):
        assert lake.list_partitions("raw", "ds") == [DAY]
    assert "dt=not-a-date" in caplog.text


def test_commit_switches_every_zone_and_the_record_at_once(lake):
    first = lake.commit_partition(
        "ds", DAY, _summary("validated", 3, 0, "run-1"),
        zones={"validated": ({"data.bin": b"v1"}, {"rows": 3}), "quarantine": None},
        report={"report.html": b"<p>validated 3</p>"},
    )  # fmt: skip
    assert lake.manifest("validated", "ds", DAY)["rows"] == 3
    assert lake.manifest("quarantine", "ds", DAY) is None
    assert lake.get_bytes(first["report_key"]) == b"<p>validated 3</p>"
    second_id = "29990101T000000-cafecafe"
    base = partition_prefix("quarantine", "ds", DAY)
    # A run killed after writing its new quarantine files but before its commit record:
    lake.put_bytes(f"{base}/v={second_id}/data.bin", b"q-new")
    assert lake.list_partitions("quarantine", "ds") == []  # readers still see the first commit
    assert lake.partition_file("validated", "ds", DAY, "data.bin") == b"v1"

    second = lake.commit_partition(
        "ds", DAY, _summary("quarantined", 0, 3, "run-2"),
        zones={"validated": None, "quarantine": ({"data.bin": b"q2"}, {"rows": 3})},
        report={"report.html": b"<p>quarantined 3</p>"},
    )  # fmt: skip
    assert lake.list_partitions("validated", "ds") == []
    assert lake.list_partitions("quarantine", "ds") == [DAY]
    assert lake.partition_file("quarantine", "ds", DAY, "data.bin") == b"q2"
    assert lake.get_bytes(second["report_key"]) == b"<p>quarantined 3</p>"
    assert lake.commit_record("ds", DAY)["run_id"] == "run-2"
    # The crashed run's orphan is gone; the first commit's files stay one more commit (a reader
    # that resolved it just before the switch may still be reading them).
    assert [k for k in lake.list_keys(base + "/") if second_id in k] == []
    assert lake.get_bytes(first["report_key"]) == b"<p>validated 3</p>"
    lake.commit_partition(
        "ds", DAY, _summary("validated", 3, 0, "run-3"),
        zones={"validated": ({"data.bin": b"v3"}, {"rows": 3}), "quarantine": None},
        report={"report.html": b"<p>validated 3 again</p>"},
    )  # fmt: skip
    assert not lake.exists(first["report_key"])  # two commits old: collected


def test_temp_files_of_killed_writes_are_collected(local_lake):
    lake = local_lake
    lake.publish_partition("raw", "ds", DAY, {"f": b"1"})
    folder = lake.root / partition_prefix("raw", "ds", DAY)
    (folder / ".tmp-killed-manifest").write_bytes(b"half")
    version = next(p for p in folder.iterdir() if p.name.startswith("v="))
    (version / ".tmp-killed-data").write_bytes(b"half")
    lake.publish_partition("raw", "ds", DAY, {"f": b"2"})
    lake.publish_partition("raw", "ds", DAY, {"f": b"3"})
    assert [p for p in folder.rglob(".tmp-*")] == []

    lake.commit_partition("ds", DAY, _summary("validated", 1, 0, "r"),
                          zones={"validated": ({"f": b"1"}, {}), "quarantine": None}, report={})  # fmt: skip
    commit_folder = lake.root / "reports" / "ingest" / "ds" / f"dt={DAY.isoformat()}"
    for where in (commit_folder, lake.root / partition_prefix("validated", "ds", DAY)):
        (where / ".tmp-killed").write_bytes(b"half")
    lake.commit_partition("ds", DAY, _summary("validated", 1, 0, "r2"),
                          zones={"validated": ({"f": b"2"}, {}), "quarantine": None}, report={})  # fmt: skip
    assert [p for p in lake.root.rglob(".tmp-*")] == []


def test_put_file_and_local_file_stream_a_file_through_the_lake(lake, tmp_path):
    """A spool file becomes one object (small: one PUT; large: a multipart upload read part by
    part) and comes back as a local file with the same bytes."""
    import os

    for size in (10, 11 * 1024 * 1024 + 7):
        source = tmp_path / f"spool-{size}.bin"
        source.write_bytes(os.urandom(size))
        if hasattr(lake, "multipart_threshold"):  # the large file: a multipart upload of 3 parts (5 MiB at least each)
            lake.multipart_threshold, lake.multipart_chunksize = 2 * 1024 * 1024, 1024 * 1024
        lake.put_file(f"landing/x/{size}.bin", source)
        assert lake.get_bytes(f"landing/x/{size}.bin") == source.read_bytes()
        with lake.local_file(f"landing/x/{size}.bin") as local:
            assert local.read_bytes() == source.read_bytes()
    with pytest.raises(LakeError, match="no object"), lake.local_file("landing/x/missing.bin"):
        pass


def test_local_put_file_hard_links_the_spool_file_into_place(local_lake, tmp_path):
    """On the lake's filesystem no byte is copied: the object is the spool file's inode."""
    source = tmp_path / "spool.bin"
    source.write_bytes(b"spooled bytes")
    local_lake.put_file("landing/x/a.bin", source)
    target = local_lake.root / "landing" / "x" / "a.bin"
    assert target.stat().st_ino == source.stat().st_ino and target.stat().st_nlink == 2
    source.unlink()  # the spool folder goes away: the object stays
    assert local_lake.get_bytes("landing/x/a.bin") == b"spooled bytes"
    assert [p.name for p in target.parent.iterdir()] == ["a.bin"]  # no temporary name left


@pytest.mark.parametrize("refusal", ["EXDEV", "EPERM"])
def test_local_put_file_copies_when_the_link_is_refused(local_lake, tmp_path, monkeypatch, refusal):
    """Another filesystem (EXDEV) or links not allowed (EPERM): the bytes are copied instead."""
    import errno
    import os

    calls = []

    def refuse(src, dst, *args, **kwargs):
        calls.append(dst)
        raise OSError(getattr(errno, refusal), os.strerror(getattr(errno, refusal)))

    monkeypatch.setattr(os, "link", refuse)
    source = tmp_path / "spool.bin"
    source.write_bytes(b"copied bytes")
    local_lake.put_file("landing/x/a.bin", source)
    target = local_lake.root / "landing" / "x" / "a.bin"
    assert calls, "the link was tried first"
    assert target.read_bytes() == b"copied bytes" and target.stat().st_ino != source.stat().st_ino
    assert [p.name for p in target.parent.iterdir()] == ["a.bin"]


def test_local_put_file_raises_what_the_link_cannot_explain(local_lake, tmp_path):
    """A missing spool file is an error, not a reason to copy (which would fail too, differently)."""
    with pytest.raises(FileNotFoundError):
        local_lake.put_file("landing/x/a.bin", tmp_path / "missing.bin")
    assert not local_lake.exists("landing/x/a.bin")
    assert [p for p in local_lake.root.rglob(".tmp-*")] == []


def test_local_put_file_killed_before_the_rename_leaves_only_a_temporary_name(local_lake, tmp_path, monkeypatch):
    from mlflywheel import faults

    def kill(name):
        if name == "lake.put.partial":
            raise KeyboardInterrupt(name)

    monkeypatch.setattr(faults, "point", kill)
    source = tmp_path / "spool.bin"
    source.write_bytes(b"x")
    with pytest.raises(KeyboardInterrupt):
        local_lake.put_file("landing/x/a.bin", source)
    assert not local_lake.exists("landing/x/a.bin")
    assert [p for p in local_lake.root.rglob(".tmp-*")] == []  # cleaned on the way out, as a copy is
    assert source.read_bytes() == b"x"


def test_publish_and_commit_take_spool_files(lake, tmp_path):
    """Partition files may be given as local paths; readers resolve them through the commit as usual."""
    spool = tmp_path / "rows.parquet"
    spool.write_bytes(frame_to_parquet(pd.DataFrame({"a": [1, 2, 3]})))
    lake.publish_partition("raw", "ds", DAY, {"data.parquet": spool}, meta={"rows_in": 3})
    assert lake.read_frame("raw", "ds", DAY)["a"].tolist() == [1, 2, 3]
    with lake.partition_local_file("raw", "ds", DAY, "data.parquet") as local:
        assert pd.read_parquet(local)["a"].tolist() == [1, 2, 3]
    lake.commit_partition(
        "ds", DAY, {"dataset": "ds"}, zones={"validated": ({"data.parquet": spool}, None), "quarantine": None}
    )
    assert lake.read_frame("validated", "ds", DAY)["a"].tolist() == [1, 2, 3]


def test_a_lake_object_is_published_by_a_copy_inside_the_lake(lake):
    """A partition file given as a LakeObject (another partition's file) is copied in the lake;
    the copy outlives the source's partition."""
    lake.publish_partition("raw", "ds", DAY, {"data.parquet": frame_to_parquet(pd.DataFrame({"a": [1, 2]}))})
    source = lake.partition_object("raw", "ds", DAY, "data.parquet")
    assert lake.get_bytes(source.key) == lake.partition_file("raw", "ds", DAY, "data.parquet")
    lake.commit_partition(
        "ds", DAY, {"dataset": "ds"}, zones={"validated": ({"data.parquet": source}, {"rows": 2}), "quarantine": None}
    )
    assert lake.read_frame("validated", "ds", DAY)["a"].tolist() == [1, 2]
    lake.clear_partition("raw", "ds", DAY)
    assert lake.read_frame("validated", "ds", DAY)["a"].tolist() == [1, 2]
    with pytest.raises(LakeError, match=r"no object .*landing/none\.bin"):
        lake.copy_object("landing/none.bin", "landing/copy.bin")
    assert not lake.exists("landing/copy.bin")
    with pytest.raises(LakeError, match="has no file"):
        lake.partition_object("validated", "ds", DAY, "other.parquet")
