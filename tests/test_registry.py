"""Registry helpers against a file-based MLflow (SQLite + local artifacts)."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import numpy as np
import pytest
from mlflywheel import registry
from mlflywheel.datasets import get_spec
from mlflywheel.devstack.synthetic import write_validated
from mlflywheel.lake import LocalLake
from mlflywheel.settings import Settings
from mlflywheel.training.entrypoint import parse_args, run_training
from mlflywheel.training.snapshot import build_snapshot, load_snapshot

SPEC = get_spec("transactions")
END = dt.date(2026, 11, 10)


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("FLYWHEEL_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("FLYWHEEL_MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'db' / 'mlflow.db'}")
    monkeypatch.setenv("FLYWHEEL_REFERENCE_SAMPLE_SIZE", "40")
    return Settings.from_env()


def test_empty_registry(settings: Settings) -> None:
    client = registry.configure_mlflow(settings)
    assert (Path(settings.data_dir) / "db").is_dir()  # SQLite's folder is created
    assert client.tracking_uri == settings.mlflow_tracking_uri
    assert registry.champion(settings) is None
    assert registry.previous_champion(settings) is None
    assert registry.list_versions(settings) == []
    assert registry.find_version_by_run_tag(settings, "flywheel.airflow_dag_run_id", "x") is None
    with pytest.raises(registry.RegistryError, match="no version 3"):
        registry.load_model(settings, "3")


def test_versions_aliases_tags_and_reference(settings: Settings) -> None:
    lake = LocalLake(Path(settings.data_dir) / "lake")
    write_validated(lake, SPEC, [END - dt.timedelta(days=i) for i in range(2)], 150, seed=4)
    snapshot_id = build_snapshot(lake, SPEC, end_day=END, window_days=2, min_rows=100)["snapshot_id"]
    versions = []
    for run_tag in ("dag-run-a", "dag-run-b"):
        args = parse_args(
            [
                "--snapshot-id",
                snapshot_id,
                "--epochs",
                "1",
                "--batch-size",
                "64",
                "--tag",
                f"flywheel.airflow_dag_run_id={run_tag}",
            ]
        )
        versions.append(run_training(args)["version"])
    assert versions == ["1", "2"]
    assert [str(v.version) for v in registry.list_versions(settings)] == ["1", "2"]
    assert (
        str(registry.find_version_by_run_tag(settings, "flywheel.airflow_dag_run_id", "dag-run-b").version)
        == "2"
    )

    assert registry.set_champion(settings, "1", reason="first") == {
        "champion": "1",
        "previous_champion": None,
    }
    assert registry.set_champion(settings, "2", reason="better") == {
        "champion": "2",
        "previous_champion": "1",
    }
    assert registry.set_champion(settings, "2", reason="again") == {
        "champion": "2",
        "previous_champion": None,
    }
    assert str(registry.champion(settings).version) == "2"
    assert str(registry.previous_champion(settings).version) == "1"  # unchanged by the no-op
    assert registry.get_version(settings, "2").tags["flywheel.champion.reason"] == "again"
    with pytest.raises(registry.RegistryError):
        registry.set_champion(settings, "9", reason="missing")

    registry.tag_version(
        settings, "1", {"flywheel.note": "x" * 6000, "flywheel.count": 3, "flywheel.none": None}
    )
    tags = registry.get_version(settings, "1").tags
    assert len(tags["flywheel.note"]) == registry.TAG_VALUE_LIMIT and tags["flywheel.count"] == "3"

    model = registry.load_model(settings, "2")
    _, splits = load_snapshot(lake, snapshot_id)
    proba = model.predict_proba(splits["validation"])
    assert proba.dtype == np.float64 and np.all((proba >= 0) & (proba <= 1))
    reference = registry.load_reference(settings, "2")
    assert len(reference) == 40 and "score" in reference.columns
    assert set(SPEC.features) <= set(reference.columns)


def test_the_mlflow_login_follows_the_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """MLflow reads its login from the environment on each request: the settings' login is put
    there, and settings without one send none (a process may act as two accounts in turn)."""
    for variable in registry.MLFLOW_CREDENTIAL_ENV:
        monkeypatch.delenv(variable, raising=False)
    base = {"FLYWHEEL_DATA_DIR": str(tmp_path), "FLYWHEEL_MLFLOW_TRACKING_URI": "http://127.0.0.1:9"}
    service = Settings.from_env(base, mlflow_tracking_username="flywheel",
                                mlflow_tracking_password="service-password-01")  # fmt: skip
    registry.configure_mlflow(service)
    assert (os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"]) == (
        "flywheel", "service-password-01")  # fmt: skip
    registry.configure_mlflow(Settings.from_env(base))
    assert "MLFLOW_TRACKING_USERNAME" not in os.environ and "MLFLOW_TRACKING_PASSWORD" not in os.environ
    # A login the process was started with (not set from settings) is left alone.
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "from-the-shell")
    registry.configure_mlflow(Settings.from_env(base))
    assert os.environ["MLFLOW_TRACKING_USERNAME"] == "from-the-shell"


@pytest.mark.parametrize(
    ("error_code", "status", "expected"),
    [
        ("UNAUTHENTICATED", None, "refused user 'flywheel': not authenticated (401)"),
        ("PERMISSION_DENIED", None, "refused user 'flywheel': permission denied (403)"),
        ("", 403, "permission denied (403)"),  # an artifact download: requests' HTTPError
        ("RESOURCE_DOES_NOT_EXIST", None, None),
        ("", 500, None),
    ],
)
def test_refusals_become_clear_errors(tmp_path: Path, error_code: str, status: int | None,
                                      expected: str | None) -> None:  # fmt: skip
    settings = Settings.from_env(
        {"FLYWHEEL_DATA_DIR": str(tmp_path), "FLYWHEEL_MLFLOW_TRACKING_URI": "https://ci:token@mlflow.example"},
        mlflow_tracking_username="flywheel", mlflow_tracking_password="service-password-01",
    )  # fmt: skip

    class Refused(Exception):
        def __init__(self) -> None:
            super().__init__("API request failed")
            self.error_code = error_code
            self.response = type("Response", (), {"status_code": status})()

    @registry._explain_refusals
    def call(settings: Settings) -> None:
        raise Refused()

    with pytest.raises(Exception) as info:  # either kind: that is the point
        call(settings)
    if expected is None:
        assert type(info.value) is Refused
    else:
        assert isinstance(info.value, registry.RegistryAuthError) and expected in str(info.value)
        assert "MLflow at https://ci:***@mlflow.example" in str(info.value) and "token" not in str(info.value)
        assert "service-password-01" not in str(info.value)


def test_mlflow_s3_artifact_client_takes_the_s3_bounds_from_the_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MLflow builds its own boto3 client for s3:// artifacts; after configure_mlflow that client has
    the FLYWHEEL_S3_* timeouts and attempts, MLflow's own options kept, and follows a change."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", "http://127.0.0.1:9")
    for connect, read, attempts in ((2.0, 7.0, 4), (3.0, 9.0, 2)):
        settings = Settings.from_env(
            {"FLYWHEEL_DATA_DIR": str(tmp_path)}, mlflow_tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
            s3_connect_timeout_seconds=connect, s3_read_timeout_seconds=read, s3_max_attempts=attempts,
        )  # fmt: skip
        registry.configure_mlflow(settings)
        client = get_artifact_repository("s3://flywheel-mlflow/experiments/1")._get_s3_client()
        config = client.meta.config
        assert (config.connect_timeout, config.read_timeout) == (connect, read)
        assert config.retries == {"total_max_attempts": attempts, "mode": "standard"}
        assert config.signature_version == "s3v4"  # MLflow's own choice survives the merge
        assert client.meta.endpoint_url == "http://127.0.0.1:9"


class _Killed(BaseException):
    """Stands for SIGKILL in-process: no ``except Exception`` clean-up runs."""


def _one_version(settings: Settings) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri, registry_uri=settings.mlflow_tracking_uri)
    registry.configure_mlflow(settings)
    client.create_registered_model(settings.model_name)
    client.create_model_version(settings.model_name, source=(Path(settings.data_dir) / "artifacts").as_uri())


def _raw(settings: Settings) -> dict[str, str]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri, registry_uri=settings.mlflow_tracking_uri)
    return dict(client.get_model_version(settings.model_name, "1").tags)


@pytest.mark.parametrize("kill_at", ["registry.tag.partial", "registry.tag.commit"])
def test_a_record_write_cut_off_reads_as_the_record_before_it_and_is_undone_next(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, kill_at: str
) -> None:
    """Several tags are one record: cut off half-way (or with every tag written but not committed),
    readers still see the previous record whole, stale keys included; the next write undoes it."""
    from mlflywheel import faults

    _one_version(settings)
    old = {"flywheel.gate.decision": "rejected", "flywheel.gate.rows": "100", "flywheel.gate.note": "n" * 12_000,
           "flywheel.approval.answer": "rejected", "flywheel.other": "kept"}  # fmt: skip
    registry.tag_version(settings, "1", old)
    new = {"flywheel.gate.decision": "promoting", "flywheel.gate.rows": "700", "flywheel.gate.note": "m"}

    def point(step: str) -> None:
        if step == kill_at:
            raise _Killed(step)

    monkeypatch.setattr(faults, "point", point)
    with pytest.raises(_Killed):
        registry.tag_version(settings, "1", new, replace_prefixes=("flywheel.gate.", "flywheel.approval."))
    monkeypatch.undo()
    expected_old = {**old, "flywheel.gate.note": "n" * registry.TAG_VALUE_LIMIT}
    raw = _raw(settings)
    assert raw["flywheel.gate.decision"] == "promoting" and registry.UNDO_TAG in raw  # half written on disk
    assert int(raw[registry.UNDO_TAG]) > 1  # the 5000-character old value needs more than one undo part
    for view in (registry.version_tags(settings, "1"), registry.list_versions(settings)[0].tags,
                 registry.get_version(settings, "1").tags):  # fmt: skip
        assert view == expected_old  # readers: the old record, whole

    assert registry.repair_unfinished_writes(settings) == ["1"]
    assert _raw(settings) == expected_old  # undone on disk, bookkeeping gone
    registry.tag_version(settings, "1", new, replace_prefixes=("flywheel.gate.", "flywheel.approval."))
    assert _raw(settings) == {**new, "flywheel.other": "kept"}  # the new record alone: stale keys removed


def test_a_failed_record_write_is_undone_at_once(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.tracking import MlflowClient

    _one_version(settings)
    registry.tag_version(settings, "1", {"flywheel.a": "1", "flywheel.b": "1"})
    real = MlflowClient.set_model_version_tag

    def flaky(self, name, version, key, value):  # type: ignore[no-untyped-def]
        if key == "flywheel.b":
            raise RuntimeError("server error")
        return real(self, name, version, key, value)

    monkeypatch.setattr(MlflowClient, "set_model_version_tag", flaky)
    with pytest.raises(RuntimeError, match="server error"):
        registry.tag_version(settings, "1", {"flywheel.a": "2", "flywheel.b": "2"})
    monkeypatch.undo()
    assert _raw(settings) == {"flywheel.a": "1", "flywheel.b": "1"}  # nothing half-done left behind
