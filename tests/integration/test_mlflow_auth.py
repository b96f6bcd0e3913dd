"""MLflow behind its basic-auth app (issues 9 and 12), against a real ``mlflow server --app-name basic-auth``.

One server on loopback for the module (SQLite stores, artifacts served by the server), with the
accounts :mod:`mlflywheel.mlflow_accounts` creates: the service account writes through the
project's own registry functions and training entrypoint; the viewer reads everything and is
refused (403) every write; a request without a login, or with a wrong password, is refused (401)
at once, with an error naming the server.
"""

from __future__ import annotations

import datetime as dt
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from mlflywheel import mlflow_accounts, registry
from mlflywheel.datasets import get_spec
from mlflywheel.devstack.mlflow_auth import MlflowBasicAuth, running_basic_auth_server
from mlflywheel.devstack.stack import free_port
from mlflywheel.devstack.synthetic import write_validated
from mlflywheel.lake import LocalLake
from mlflywheel.mlflow_accounts import Account
from mlflywheel.settings import Settings
from mlflywheel.training.entrypoint import parse_args, run_training
from mlflywheel.training.snapshot import build_snapshot

SPEC = get_spec("transactions")
END = dt.date(2026, 11, 10)
MODEL = "flywheel-transactions"
EXPERIMENTS = ("flywheel", "flywheel-drift")


@pytest.fixture(scope="module")
def auth() -> MlflowBasicAuth:
    return MlflowBasicAuth.generated()


@pytest.fixture(scope="module")
def server_folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("mlflow-auth")


@pytest.fixture(scope="module")
def server(server_folder, auth) -> Iterator[str]:
    with running_basic_auth_server(server_folder, auth, port=free_port(), model_name=MODEL,
                                   experiments=EXPERIMENTS) as url:  # fmt: skip
        yield url


def access_log_lines(server_folder: Path, pattern: str) -> int:
    """Requests the server logged (uvicorn's access log) whose line matches ``pattern``."""
    text = (server_folder / "mlflow-server.log").read_text(errors="replace")
    return len(re.findall(pattern, text))


def requests_logged_until_now(server: str, server_folder: Path) -> None:
    """Return once every request made so far is in the access log: a marker request is logged last."""
    marker = f"/health?marker={uuid.uuid4().hex}"
    requests.get(server + marker, timeout=10)
    for _ in range(200):
        if access_log_lines(server_folder, re.escape(marker)):
            return
        time.sleep(0.05)
    raise AssertionError("the marker request never reached the access log")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("flywheel-data")


def settings_as(data_dir: Path, server: str, account: Account | None, **values: Any) -> Settings:
    login = {"mlflow_tracking_username": account.username, "mlflow_tracking_password": account.password} if account else {}
    return Settings.from_env(
        {"FLYWHEEL_DATA_DIR": str(data_dir)},
        mlflow_tracking_uri=server,
        mlflow_artifact_root="mlflow-artifacts:/",
        reference_sample_size=40,
        **login,
        **values,
    )


@pytest.fixture(scope="module")
def trained(server, auth, data_dir) -> dict[str, Any]:
    """The service account's path: a training run through the real entrypoint, a second version,
    the champion moved twice, a tag, a rollback's alias moves and a report run, all with the login from settings."""
    service = settings_as(data_dir, server, auth.service)
    lake = LocalLake(Path(service.data_dir) / "lake")
    write_validated(lake, SPEC, [END - dt.timedelta(days=i) for i in range(2)], 150, seed=4)
    snapshot_id = build_snapshot(lake, SPEC, end_day=END, window_days=2, min_rows=100)["snapshot_id"]
    with pytest.MonkeyPatch.context() as patch:
        for key, value in service.to_env().items():
            patch.setenv(key, value)
        args = parse_args(["--snapshot-id", snapshot_id, "--epochs", "1", "--batch-size", "64",
                           "--tag", "flywheel.airflow_dag_run_id=dag-run-a"])  # fmt: skip
        versions = [run_training(args)["version"]]
    # A second version of the same run's model (a second training run adds nothing to what is tested).
    run_id = registry.get_version(service, "1").run_id
    client = registry.configure_mlflow(service)
    versions.append(str(client.create_model_version(MODEL, f"runs:/{run_id}/model", run_id=run_id).version))
    moves = [registry.set_champion(service, "1", reason="first"), registry.set_champion(service, "2", reason="better")]
    registry.tag_version(service, "2", {"flywheel.gate.decision": "promoted"})
    registry.restore_champion(service, "1")  # the rollback: champion back, previous_champion deleted
    registry.set_champion(service, "2", reason="again")
    report_run = registry.log_report_run(service, experiment=service.mlflow_experiments[1], tags={"day": "x"},
                                         params={"p": 1}, metrics={"m": 0.5}, texts={"report.json": "{}"})  # fmt: skip
    return {"versions": versions, "moves": moves, "report_run": report_run, "service": service}


# --- no login --------------------------------------------------------------------------------------


def test_a_request_without_login_is_refused_401(server, data_dir):
    answer = requests.post(f"{server}/api/2.0/mlflow/experiments/search", json={"max_results": 5}, timeout=10)
    assert answer.status_code == 401
    assert requests.get(f"{server}/health", timeout=10).status_code == 200  # health checks stay open
    with pytest.raises(registry.RegistryAuthError) as info:
        registry.champion(settings_as(data_dir, server, None))
    assert f"MLflow at {server} refused a request without credentials" in str(info.value)
    assert "401" in str(info.value)


# --- the service account ---------------------------------------------------------------------------


def test_service_account_trains_registers_promotes_and_rolls_back(trained):
    service = trained["service"]
    assert trained["versions"] == ["1", "2"]
    assert trained["moves"] == [{"champion": "1", "previous_champion": None},
                                {"champion": "2", "previous_champion": "1"}]  # fmt: skip
    assert str(registry.champion(service).version) == "2"
    assert registry.version_tags(service, "2")["flywheel.gate.decision"] == "promoted"
    assert registry.version_tags(service, "2")["flywheel.champion.reason"] == "again"
    assert str(registry.find_version_by_run_tag(service, "flywheel.airflow_dag_run_id", "dag-run-a").version) == "2"
    assert registry.run_tags(service, trained["report_run"])["day"] == "x"
    assert len(registry.load_reference(service, "2")) == 40  # the artifact went through the server


# --- the viewer ------------------------------------------------------------------------------------


def test_viewer_reads_everything(trained, server, auth, data_dir):
    viewer = settings_as(data_dir, server, auth.viewer)
    client = registry.configure_mlflow(viewer)
    assert {e.name for e in client.search_experiments()} >= set(EXPERIMENTS)
    assert client.get_registered_model(MODEL).name == MODEL
    champion = registry.champion(viewer)
    assert str(champion.version) == "2" and champion.tags["flywheel.gate.decision"] == "promoted"
    assert [str(v.version) for v in registry.list_versions(viewer)] == ["1", "2"]
    assert len(registry.load_reference(viewer, "2")) == 40


def _refused_403(call) -> str:
    from mlflow.exceptions import MlflowException

    with pytest.raises(MlflowException) as info:
        call()
    assert info.value.error_code == "PERMISSION_DENIED", str(info.value)
    return str(info.value)


def test_viewer_writes_nothing_of_flywheels(trained, server, auth, data_dir):
    viewer = settings_as(data_dir, server, auth.viewer)
    client = registry.configure_mlflow(viewer)
    experiment_id = client.get_experiment_by_name("flywheel").experiment_id
    run_id = registry.get_version(viewer, "2").run_id
    _refused_403(lambda: client.create_run(experiment_id))
    _refused_403(lambda: client.log_metric(run_id, "pr_auc", 0.99))
    _refused_403(lambda: client.set_registered_model_alias(MODEL, "champion", "1"))
    _refused_403(lambda: client.delete_registered_model_alias(MODEL, "champion"))
    _refused_403(lambda: client.create_model_version(MODEL, f"runs:/{run_id}/model", run_id=run_id))
    _refused_403(lambda: client.set_model_version_tag(MODEL, "2", "flywheel.gate.decision", "rejected"))
    # Through the project's own functions: a clear error naming the server and the user.
    with pytest.raises(registry.RegistryAuthError, match=rf"MLflow at {re.escape(server)} refused user 'viewer': permission denied \(403\)"):
        registry.set_champion(viewer, "1", reason="viewer tries")
    with pytest.raises(registry.RegistryAuthError, match="403"):
        registry.log_report_run(viewer, experiment="flywheel-drift", tags={}, params={}, metrics={}, texts={})
    service = trained["service"]
    assert str(registry.champion(service).version) == "2"
    assert registry.version_tags(service, "2")["flywheel.gate.decision"] == "promoted"


def test_viewer_may_create_an_experiment_of_its_own(trained, server, auth, data_dir):
    """What the README says of viewers: without workspaces MLflow lets any user create experiments
    (it owns them); that gives it nothing on Flywheel's."""
    client = registry.configure_mlflow(settings_as(data_dir, server, auth.viewer))
    own = client.create_experiment("viewer-scratch")
    client.create_run(own)
    _refused_403(lambda: client.create_run(client.get_experiment_by_name("flywheel").experiment_id))


# --- wrong password --------------------------------------------------------------------------------


def test_wrong_password_is_one_refused_request_with_a_clear_error(server, server_folder, auth, data_dir):
    wrong = Account(auth.service.username, "not-the-password-0000")
    # Retries allowed by the settings: a 401 is still asked once (MLflow retries 429 and 5xx only).
    settings = settings_as(data_dir, server, wrong, mlflow_http_max_retries=5)
    refused_alias_lookup = r'"GET /api/2\.0/mlflow/registered-models/alias\?[^"]*alias=champion[^"]*" 401'
    requests_logged_until_now(server, server_folder)
    before = access_log_lines(server_folder, refused_alias_lookup)
    with pytest.raises(registry.RegistryAuthError) as info:
        registry.champion(settings)
    requests_logged_until_now(server, server_folder)
    assert access_log_lines(server_folder, refused_alias_lookup) == before + 1
    message = str(info.value)
    assert f"MLflow at {server} refused user 'flywheel': not authenticated (401)" in message
    assert "FLYWHEEL_MLFLOW_TRACKING_PASSWORD" in message and wrong.password not in message


# --- the accounts (mlflywheel.mlflow_accounts) -----------------------------------------------------


def can_log_in(server: str, account: Account) -> bool:
    answer = requests.get(f"{server}/api/2.0/mlflow/users/current", auth=(account.username, account.password), timeout=10)
    return answer.status_code == 200


def test_ensure_is_idempotent_and_rotates_passwords(server, auth):
    again = auth.ensure_accounts(server, model_name=MODEL, experiments=EXPERIMENTS)
    assert again == {"flywheel": "unchanged", "viewer": "unchanged"}
    rotated = Account("viewer", "rotated-viewer-password-1")
    outcome = mlflow_accounts.ensure_accounts(server, auth.admin, auth.service, [rotated],
                                              model_name=MODEL, experiments=EXPERIMENTS)  # fmt: skip
    assert outcome["viewer"] == "password set"
    assert can_log_in(server, rotated) and not can_log_in(server, auth.viewer)
    mlflow_accounts.ensure_accounts(server, auth.admin, auth.service, [auth.viewer], model_name=MODEL,
                                    experiments=EXPERIMENTS)  # fmt: skip
    assert can_log_in(server, auth.viewer)


def test_service_account_gets_flywheels_experiments_made_by_others(server, auth, data_dir):
    """An experiment that existed before authentication (here: made by the admin) is granted too."""
    admin = settings_as(data_dir, server, auth.admin, mlflow_experiment="made-before-auth")
    registry.ensure_experiment(admin, "made-before-auth")
    service = settings_as(data_dir, server, auth.service, mlflow_experiment="made-before-auth")
    with pytest.raises(registry.RegistryAuthError, match="403"):
        registry.log_report_run(service, experiment="made-before-auth", tags={}, params={}, metrics={}, texts={})
    outcome = mlflow_accounts.ensure_accounts(server, auth.admin, auth.service, [], model_name=MODEL,
                                              experiments=service.mlflow_experiments)  # fmt: skip
    assert "granted MANAGE on experiment" in outcome["flywheel"]
    assert registry.log_report_run(service, experiment="made-before-auth", tags={}, params={}, metrics={"m": 1.0},
                                   texts={})  # fmt: skip


def test_command_line_ensure_and_a_new_viewer(server, auth, capsys):
    env = {
        "FLYWHEEL_MLFLOW_TRACKING_URI": server,
        "FLYWHEEL_MLFLOW_TRACKING_USERNAME": auth.service.username,
        "FLYWHEEL_MLFLOW_TRACKING_PASSWORD": auth.service.password,
        "MLFLOW_AUTH_ADMIN_USERNAME": auth.admin.username,
        "MLFLOW_AUTH_ADMIN_PASSWORD": auth.admin.password,
        "MLFLOW_VIEWER_USERNAME": auth.viewer.username,
        "MLFLOW_VIEWER_PASSWORD": auth.viewer.password,
    }
    assert mlflow_accounts.main(["ensure"], env=env) == 0
    assert capsys.readouterr().out.splitlines() == ["flywheel: unchanged", "viewer: unchanged"]
    analyst = Account("analyst", "analyst-password-0001")
    assert mlflow_accounts.main(["set-password", "analyst"], env={**env, "MLFLOW_NEW_PASSWORD": analyst.password}) == 1
    assert "no MLflow user 'analyst'" in capsys.readouterr().err
    assert mlflow_accounts.main(["set-password", "analyst", "--create"],
                                env={**env, "MLFLOW_NEW_PASSWORD": analyst.password}) == 0  # fmt: skip
    assert can_log_in(server, analyst)
    assert mlflow_accounts.main(["ensure"], env={**env, "MLFLOW_AUTH_ADMIN_PASSWORD": "wrong-admin-password"}) == 1
    err = capsys.readouterr().err
    assert f"MLflow at {server} refused the admin 'admin' (401)" in err and "wrong-admin-password" not in err


def test_server_config_file(tmp_path):
    out = tmp_path / "auth" / "basic_auth.ini"
    env = {"MLFLOW_AUTH_DATABASE_URI": "postgresql+psycopg2://mlflow:db-secret@postgres:5432/mlflow_auth"}
    assert mlflow_accounts.main(["server-config", "--out", str(out)], env=env) == 0
    import configparser

    config = configparser.ConfigParser()
    config.read(out)
    assert dict(config["mlflow"]) == {
        "default_permission": "READ",
        "database_uri": env["MLFLOW_AUTH_DATABASE_URI"],
        "admin_username": "admin",
        "authorization_function": "mlflow.server.auth:authenticate_request_basic_auth",
    }
    assert out.stat().st_mode & 0o777 == 0o600
    assert mlflow_accounts.main(["server-config", "--out", str(out)], env={}) == 1
