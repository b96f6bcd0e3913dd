"""The Kubernetes training backend, rendered without a cluster.

The train DAG is parsed with ``FLYWHEEL_TRAINING_BACKEND=kubernetes``; its ``train_model``
operator's templates are rendered with a run context (snapshot id from ``build_snapshot``'s
XCom, hyperparameters from Params, the run id) and the V1Pod it would create is built with
``build_pod_request_obj(context, dry_run=True)`` (``dry_run`` skips asking a Kubernetes API
whether Airflow runs in-cluster; nothing else changes). The pod is then checked field by field.

NOT tested here (there is no API server): that the pod is admitted and scheduled, that a
GPU is actually allocated (device plugin, node selector and tolerations matching real nodes),
the image pull, the secrets' existence and contents, the startup timeout during a node
scale-up, eviction and retries, log streaming, and deferrable mode. The image itself
(docker/training.Dockerfile) is not built here either.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mlflywheel.orchestration.training_backends.kubernetes import (
    build_training_pod_operator,
    snapshot_id_template,
)
from mlflywheel.settings import Settings, SettingsError
from mlflywheel.training.command import RUN_TAG, training_command

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TRAIN_DAG = PROJECT_ROOT / "dags" / "train.py"
HEAVY = ("torch", "mlflow", "pandas", "numpy", "sklearn", "boto3", "great_expectations", "alibi_detect")
PLANTED_SECRET = "planted-secret-value-must-not-leak"
MLFLOW_PASSWORD = "planted-mlflow-password-must-not-leak"

K8S_ENV = {
    "FLYWHEEL_TRAINING_BACKEND": "kubernetes",
    "FLYWHEEL_LAKE_URI": "s3://flywheel-lake/prod",
    "FLYWHEEL_S3_ENDPOINT_URL": "http://minio.storage:9000",
    "FLYWHEEL_MLFLOW_TRACKING_URI": "http://mlflow.mlops:5000",
    "FLYWHEEL_MLFLOW_EXPERIMENT": "flywheel-prod",
    "FLYWHEEL_K8S_NAMESPACE": "ml-training",
    "FLYWHEEL_K8S_IMAGE": "registry.example/flywheel-training:1.2.3",
    "FLYWHEEL_K8S_SERVICE_ACCOUNT": "trainer",
    "FLYWHEEL_K8S_GPUS": "2",
    "FLYWHEEL_K8S_CPU_REQUEST": "6",
    "FLYWHEEL_K8S_CPU_LIMIT": "12",
    "FLYWHEEL_K8S_MEMORY_REQUEST": "24Gi",
    "FLYWHEEL_K8S_MEMORY_LIMIT": "48Gi",
    "FLYWHEEL_K8S_NODE_SELECTOR": '{"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}',
    "FLYWHEEL_K8S_TOLERATIONS": (
        '[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},'
        ' {"key": "spot", "operator": "Equal", "value": "true", "effect": "NoExecute",'
        ' "tolerationSeconds": 60}]'
    ),
    "FLYWHEEL_K8S_SECRETS": "flywheel-mlflow, flywheel-s3",
    "FLYWHEEL_K8S_POOL": "h100",
    "FLYWHEEL_K8S_STARTUP_TIMEOUT_SECONDS": "1200",
    "FLYWHEEL_TRAINING_TIMEOUT_MINUTES": "90",
    "FLYWHEEL_TASK_RETRIES": "3",
    # Present in the DAG processor's environment; must never reach the pod spec.
    "AWS_SECRET_ACCESS_KEY": PLANTED_SECRET,
    # The worker's own MLflow login (an MLflow server with authentication): the pod gets its own
    # from the secret flywheel-mlflow, never a copy of this one.
    "FLYWHEEL_MLFLOW_TRACKING_USERNAME": "flywheel",
    "FLYWHEEL_MLFLOW_TRACKING_PASSWORD": MLFLOW_PASSWORD,
}
RUN_ID = "manual__2026-11-25T02:00:00+00:00"
SNAPSHOT_ID = "transactions-20261124-14d-abc123"


@dataclass
class FakeTaskInstance:
    """Just what template rendering and the pod labels read from a task instance."""

    dag_id: str
    task_id: str
    snapshot: dict[str, Any]
    map_index: int = -1
    try_number: int = 1

    def xcom_pull(self, task_ids: str | None = None, key: str = "return_value", **_: Any) -> Any:
        assert task_ids == "build_snapshot" and key == "return_value", (task_ids, key)
        return self.snapshot


@pytest.fixture(scope="module")
def train_dag() -> Any:
    """The real train DAG file, parsed with the kubernetes backend."""
    from airflow.dag_processing.dagbag import DagBag

    with pytest.MonkeyPatch.context() as patch:
        for key, value in K8S_ENV.items():
            patch.setenv(key, value)
        bag = DagBag(dag_folder=str(TRAIN_DAG))
    assert bag.import_errors == {}
    return bag.dags["train"]


def default_params(dag: Any, **overrides: Any) -> dict[str, Any]:
    params = {key: dag.params[key] for key in dag.params}
    params.update(overrides)
    return params


def render_pod(operator: Any, params: dict[str, Any], run_id: str = RUN_ID) -> tuple[Any, Any]:
    """Render a copy of ``operator`` for one run; return ``(rendered operator, V1Pod)``."""
    operator = copy.deepcopy(operator)  # rendering mutates the operator in place
    ti = FakeTaskInstance(operator.dag_id, operator.task_id, {"snapshot_id": SNAPSHOT_ID, "rows": 1234})
    context = {
        "ti": ti,
        "task_instance": ti,
        "params": params,
        "run_id": run_id,
        "dag": operator.dag,
        "task": operator,
    }
    operator.render_template_fields(context)
    return operator, operator.build_pod_request_obj(context, dry_run=True)


@pytest.fixture(scope="module")
def rendered(train_dag) -> tuple[Any, Any, dict[str, Any]]:
    params = default_params(train_dag, epochs=12, learning_rate=0.0005, batch_size=4096, seed=7)
    operator, pod = render_pod(train_dag.get_task("train_model"), params)
    return operator, pod, params


def container_of(pod: Any) -> Any:
    assert len(pod.spec.containers) == 1, "no sidecar: do_xcom_push is off"
    return pod.spec.containers[0]


# --- the DAG -------------------------------------------------------------------------------------


def test_train_model_is_a_pod_between_snapshot_and_gate(train_dag):
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
    from mlflywheel.orchestration.training_backends.kubernetes import TrainingPodOperator

    op = train_dag.get_task("train_model")
    assert isinstance(op, KubernetesPodOperator)
    assert type(op) is TrainingPodOperator  # importable by the path the serialized DAG records
    assert op.upstream_task_ids == {"build_snapshot"}
    assert op.downstream_task_ids == {"evaluate_and_promote"}
    assert op.owner == "flywheel"
    assert op.doc_md


def test_operator_level_fields(train_dag):
    op = train_dag.get_task("train_model")
    assert op.pool == "h100" and op.pool_slots == 1
    assert op.startup_timeout_seconds == 1200
    assert op.execution_timeout == dt.timedelta(minutes=90)
    assert op.active_deadline_seconds == 90 * 60
    assert op.retries == 3
    assert op.on_finish_action.value == "delete_pod"
    assert op.get_logs is True
    assert op.do_xcom_push is False  # results travel through MLflow
    assert op.in_cluster is True and op.kubernetes_conn_id == "kubernetes_default"
    assert op.automount_service_account_token is False


def test_dag_serializes_for_the_scheduler(train_dag):
    from airflow.serialization.serialized_objects import DagSerialization

    data = DagSerialization.to_dict(train_dag)
    restored = DagSerialization.from_dict(data)
    task = restored.get_task("train_model")
    assert task.upstream_task_ids == {"build_snapshot"}
    assert task.pool == "h100"


def test_dag_parses_without_heavy_imports():
    """The DAG processor parses train.py often: the kubernetes backend adds only the provider."""
    code = (
        "import importlib.util, json, sys\n"
        f"spec = importlib.util.spec_from_file_location('train', {str(TRAIN_DAG)!r})\n"
        "spec.loader.exec_module(importlib.util.module_from_spec(spec))\n"
        "pod = 'airflow.providers.cncf.kubernetes.operators.pod'\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "print(json.dumps({'heavy': heavy, 'pod': pod in sys.modules}))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        capture_output=True,
        text=True,
        env={**os.environ, **K8S_ENV},
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out == {"heavy": [], "pod": True}


# --- the rendered pod ----------------------------------------------------------------------------


def test_command_is_the_local_backends_command(rendered):
    _operator, pod, params = rendered
    container = container_of(pod)
    expected = training_command(SNAPSHOT_ID, params, RUN_ID)
    assert [*container.command, *container.args] == expected
    assert container.command == ["python", "-m", "mlflywheel.training"]
    args = container.args
    assert args[args.index("--snapshot-id") + 1] == SNAPSHOT_ID  # from build_snapshot's XCom
    assert args[args.index("--epochs") + 1] == "12"  # from the run's Params
    assert args[args.index("--batch-size") + 1] == "4096"
    assert f"{RUN_TAG}={RUN_ID}" in args
    # A null Param (no drift event) leaves no empty tag behind, exactly like the local backend.
    assert not any(a.startswith("flywheel.drift_event_id") for a in args)


def test_drift_triggered_run_carries_its_tags(train_dag):
    params = default_params(train_dag, reason="drift: amount", trigger="drift_check", drift_event_id="evt-7")
    _, pod = render_pod(train_dag.get_task("train_model"), params, run_id="backfill__2026-11-25")
    args = container_of(pod).args
    expected = training_command(SNAPSHOT_ID, params, "backfill__2026-11-25")
    assert [*container_of(pod).command, *args] == expected
    assert "flywheel.drift_event_id=evt-7" in args and "flywheel.trigger=drift_check" in args


def test_image_namespace_service_account_labels(rendered):
    _, pod, _ = rendered
    container = container_of(pod)
    assert container.image == "registry.example/flywheel-training:1.2.3"
    assert container.image_pull_policy == "IfNotPresent"
    assert pod.metadata.namespace == "ml-training"
    assert pod.spec.service_account_name == "trainer"
    assert pod.spec.automount_service_account_token is False
    assert pod.metadata.labels["app"] == "flywheel"
    assert pod.metadata.labels["component"] == "training"
    assert pod.metadata.labels["dag_id"] == "train"
    assert pod.metadata.labels["task_id"] == "train_model"
    assert pod.metadata.name.startswith("flywheel-train")
    assert pod.spec.restart_policy == "Never"
    assert pod.spec.active_deadline_seconds == 90 * 60


def test_resources_gpu_node_selector_tolerations(rendered):
    _, pod, _ = rendered
    resources = container_of(pod).resources
    assert resources.requests == {"cpu": "6", "memory": "24Gi"}
    assert resources.limits == {"cpu": "12", "memory": "48Gi", "nvidia.com/gpu": "2"}
    assert pod.spec.node_selector == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    tolerations = [t.to_dict() for t in pod.spec.tolerations]
    assert tolerations == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "value": None, "effect": "NoSchedule",
         "toleration_seconds": None},
        {"key": "spot", "operator": "Equal", "value": "true", "effect": "NoExecute",
         "toleration_seconds": 60},
    ]  # fmt: skip


def test_security_contexts(rendered):
    _, pod, _ = rendered
    pod_sc = pod.spec.security_context
    assert pod_sc.run_as_non_root is True
    assert pod_sc.run_as_user == 10001 and pod_sc.run_as_group == 10001 and pod_sc.fs_group == 10001
    assert pod_sc.seccomp_profile.type == "RuntimeDefault"
    sc = container_of(pod).security_context
    assert sc.allow_privilege_escalation is False
    assert sc.read_only_root_filesystem is True
    assert sc.run_as_non_root is True
    assert sc.capabilities.drop == ["ALL"] and not sc.capabilities.add
    assert not sc.privileged


def test_scratch_volumes(rendered):
    _, pod, _ = rendered
    volumes = {v.name: v for v in pod.spec.volumes}
    mounts = {m.mount_path: m for m in container_of(pod).volume_mounts}
    assert set(mounts) == {"/tmp", "/dev/shm"}
    tmp = volumes[mounts["/tmp"].name]
    shm = volumes[mounts["/dev/shm"].name]
    assert tmp.empty_dir is not None and tmp.empty_dir.medium is None  # node disk
    assert shm.empty_dir is not None and shm.empty_dir.medium == "Memory"
    assert not any(m.read_only for m in mounts.values())


def test_env_is_plain_config_and_secrets_come_from_refs(rendered):
    _, pod, _ = rendered
    container = container_of(pod)
    env = {e.name: e.value for e in container.env}
    assert env["FLYWHEEL_LAKE_URI"] == "s3://flywheel-lake/prod"
    assert env["FLYWHEEL_S3_ENDPOINT_URL"] == env["MLFLOW_S3_ENDPOINT_URL"] == "http://minio.storage:9000"
    assert env["FLYWHEEL_MLFLOW_TRACKING_URI"] == "http://mlflow.mlops:5000"
    assert env["FLYWHEEL_MLFLOW_EXPERIMENT"] == "flywheel-prod"
    assert env["FLYWHEEL_MODEL_NAME"] == "flywheel-transactions"
    assert env["FLYWHEEL_DATASET"] == "transactions"
    assert env["FLYWHEEL_REFERENCE_SAMPLE_SIZE"] == "2000"
    assert env["MLFLOW_DISABLE_TELEMETRY"] == "true"
    assert env["HOME"] == "/tmp" and env["FLYWHEEL_DATA_DIR"].startswith("/tmp/")
    # Credentials: only references to secrets, never values.
    assert all(e.value_from is None for e in container.env)
    assert not [k for k in env if any(w in k for w in ("SECRET", "PASSWORD", "TOKEN", "ACCESS_KEY"))]
    assert [e.secret_ref.name for e in container.env_from] == ["flywheel-mlflow", "flywheel-s3"]
    assert all(e.config_map_ref is None for e in container.env_from)
    assert PLANTED_SECRET not in json.dumps(pod.to_dict(), default=str)


def test_mlflow_login_comes_from_the_secret_never_from_the_worker(rendered):
    """Issue 12: the MLflow password is in no env value of the pod spec; the pod reads the login
    (FLYWHEEL_MLFLOW_TRACKING_USERNAME / _PASSWORD) from the Kubernetes secret flywheel-mlflow."""
    operator, pod, _ = rendered
    container = container_of(pod)
    names = {e.name for e in container.env}
    assert not names & {"FLYWHEEL_MLFLOW_TRACKING_USERNAME", "FLYWHEEL_MLFLOW_TRACKING_PASSWORD",
                        "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"}  # fmt: skip
    assert MLFLOW_PASSWORD not in json.dumps(pod.to_dict(), default=str)
    assert MLFLOW_PASSWORD not in json.dumps([str(e) for e in operator.env_vars])
    assert "flywheel-mlflow" in [e.secret_ref.name for e in container.env_from]


def test_a_login_without_secrets_for_the_pod_is_warned_about(caplog):
    settings = Settings.from_env({**K8S_ENV, "FLYWHEEL_K8S_SECRETS": " "})
    with caplog.at_level("WARNING", logger="mlflywheel.orchestration"):
        op = build_in_dag(settings)
    assert op.env_from == []
    assert "K8S_SECRETS names no secret" in caplog.text and MLFLOW_PASSWORD not in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="mlflywheel.orchestration"):
        build_in_dag(Settings.from_env(K8S_ENV))
    assert "names no secret" not in caplog.text


# --- settings edge cases (operator built in a throwaway DAG) -------------------------------------


def build_in_dag(settings: Settings) -> Any:
    from airflow.sdk import DAG

    with DAG(dag_id="k8s_throwaway", schedule=None, start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC)):
        return build_training_pod_operator(settings, snapshot_id_template=snapshot_id_template())


def test_zero_gpus_means_no_gpu_limit():
    settings = Settings.from_env({**K8S_ENV, "FLYWHEEL_K8S_GPUS": "0"})
    op = build_in_dag(settings)
    assert "nvidia.com/gpu" not in op.container_resources.limits
    assert op.container_resources.limits == {"cpu": "12", "memory": "48Gi"}


@pytest.mark.parametrize(
    ("variable", "value", "match"),
    [
        # Refused when the settings are loaded (every DAG, not only the pod's, sees them).
        ("FLYWHEEL_K8S_TOLERATIONS", '[{"key": "gpu",', "FLYWHEEL_K8S_TOLERATIONS=.*expected a JSON list"),
        ("FLYWHEEL_K8S_TOLERATIONS", '{"key": "gpu"}', "FLYWHEEL_K8S_TOLERATIONS=.*expected a JSON list"),
        ("FLYWHEEL_K8S_NODE_SELECTOR", "gpu=true", "FLYWHEEL_K8S_NODE_SELECTOR=.*expected a JSON object"),
        ("FLYWHEEL_K8S_NODE_SELECTOR", '{"gpu": true}', "FLYWHEEL_K8S_NODE_SELECTOR=.*of string values"),
        ("FLYWHEEL_K8S_SECRETS", "flywheel-s3,Bad_Name", "FLYWHEEL_K8S_SECRETS=.*Bad_Name"),
        ("FLYWHEEL_K8S_GPUS", "-1", "FLYWHEEL_K8S_GPUS=-1: expected an integer of at least 0"),
        # Refused when the pod is built.
        ("FLYWHEEL_K8S_TOLERATIONS", '[{"keys": "gpu"}]', "unknown toleration field.*keys"),
        (
            "FLYWHEEL_MLFLOW_TRACKING_URI",
            f"postgresql://mlflow:{PLANTED_SECRET}@db:5432/mlflow",
            "FLYWHEEL_MLFLOW_TRACKING_URI=.*carries a credential",
        ),
        (
            "FLYWHEEL_S3_ENDPOINT_URL",  # refused when loaded already: botocore takes no query string
            f"https://s3.example:9000/?X-Amz-Security-Token={PLANTED_SECRET}",
            "FLYWHEEL_S3_ENDPOINT_URL=.*expected .*without user, password or query string",
        ),
        (
            "FLYWHEEL_DATASET_SPEC",
            f"https://specs.example/spec.yaml?X-Amz-Signature={PLANTED_SECRET}",
            "FLYWHEEL_DATASET_SPEC=.*carries a credential",
        ),
        (
            "FLYWHEEL_MLFLOW_TRACKING_URI",
            f"https://mlflow.example/?token={PLANTED_SECRET}&sslmode=require",
            "FLYWHEEL_MLFLOW_TRACKING_URI=.*carries a credential",
        ),
    ],
)
def test_bad_settings_fail_clearly(variable, value, match):
    with pytest.raises(SettingsError, match=match) as info:
        build_in_dag(Settings.from_env({**K8S_ENV, variable: value}))
    assert PLANTED_SECRET not in str(info.value)


def test_query_string_token_never_reaches_the_pod_spec(train_dag):
    """Issue 9: a token in FLYWHEEL_S3_ENDPOINT_URL's query string was copied into the pod's env."""
    env = {**K8S_ENV, "FLYWHEEL_S3_ENDPOINT_URL": f"http://minio.storage:9000/?token={PLANTED_SECRET}"}
    with pytest.raises(SettingsError) as info:
        build_in_dag(Settings.from_env(env))
    assert "secret" in str(info.value) and PLANTED_SECRET not in str(info.value)
    # The same DAG file parsed with that setting: the pod is not built, and the import error
    # Airflow shows in its UI does not print the token either.
    from airflow.dag_processing.dagbag import DagBag

    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        bag = DagBag(dag_folder=str(TRAIN_DAG))
    assert "train" not in bag.dags
    assert bag.import_errors and PLANTED_SECRET not in json.dumps(bag.import_errors)


def test_empty_selector_tolerations_and_secrets_are_allowed():
    settings = Settings.from_env(
        {**K8S_ENV, "FLYWHEEL_K8S_NODE_SELECTOR": " ", "FLYWHEEL_K8S_TOLERATIONS": " ",
         "FLYWHEEL_K8S_SECRETS": " "}
    )
    op = build_in_dag(settings)
    assert op.node_selector == {} and op.tolerations == [] and op.env_from == []
