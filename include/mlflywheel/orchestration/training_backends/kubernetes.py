"""The Kubernetes training backend: ``train_model`` as one GPU pod (``FLYWHEEL_TRAINING_BACKEND=kubernetes``).

The pod runs the training image (``docker/training.Dockerfile``) with exactly the command line
of the local backend (:func:`~mlflywheel.training.command.training_command`),
rendered by Airflow's Jinja at run time: the snapshot id comes from ``build_snapshot``'s XCom,
the hyperparameters from the DAG run's Params, the ``flywheel.airflow_dag_run_id`` tag from
``{{ run_id }}``.

Results do NOT travel through XCom (``do_xcom_push=False``; the provider has known bugs that
lose XCom in deferrable mode): the entrypoint tags its MLflow run and model version with the
DAG run id, and ``evaluate_and_promote`` looks the version up by that tag. So the operator may
run deferrable or not (``[operators] default_deferrable`` decides).

Failure semantics: the entrypoint registers the model version as its very last step, so a pod
that fails, is evicted or times out registers nothing; the champion is untouched and the task
fails with the pod's error (its log is streamed into the task log, its events logged).

What the pod gets:

* plain, non-secret configuration as ``FLYWHEEL_*`` env vars (lake, MLflow, dataset, ...);
* credentials ONLY through ``envFrom`` references to the Kubernetes secrets named in
  ``FLYWHEEL_K8S_SECRETS`` (the MLflow login as ``FLYWHEEL_MLFLOW_TRACKING_USERNAME`` and
  ``FLYWHEEL_MLFLOW_TRACKING_PASSWORD`` in the secret ``flywheel-mlflow``: the worker's own
  login is never copied into the spec); a setting that embeds a credential (a password in a URI, a token or
  any other query parameter not known to be harmless, a libpq ``password=``: whatever
  :func:`mlflywheel.settings.redact` would hide) is refused, so no secret value is ever written
  into the pod spec (which Airflow logs and renders in its UI);
* CPU/memory requests and limits and ``nvidia.com/gpu`` limits, the node selector and
  tolerations from the ``FLYWHEEL_K8S_*`` settings;
* a locked-down security context (non-root uid 10001, no privilege escalation, read-only
  root filesystem, all capabilities dropped, RuntimeDefault seccomp) with writable
  ``emptyDir`` scratch at ``/tmp`` and a memory-backed ``/dev/shm``.

The Airflow pool ``FLYWHEEL_K8S_POOL`` (one slot per pod) must exist; it caps concurrent GPU
pods at what the cluster's GPU quota allows.

Light at import time: the DAG processor imports this module whenever the kubernetes backend is
configured, so the provider and the Kubernetes client are imported inside the functions only.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import re
from typing import TYPE_CHECKING, Any

from mlflywheel.settings import PREFIX, Settings, SettingsError, redact
from mlflywheel.training.command import training_command

if TYPE_CHECKING:
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
    from kubernetes.client import models as k8s

log = logging.getLogger("mlflywheel.orchestration")

POD_NAME = "flywheel-train"
RUN_AS_ID = 10001  # the training image's non-root user (docker/training.Dockerfile)
POD_LABELS = {"app": "flywheel", "component": "training"}
SCRATCH_DIR = "/tmp"  # the only writable path: the root filesystem is read-only
SHM_DIR = "/dev/shm"
SHM_SIZE_LIMIT = "2Gi"  # memory-backed: counts against the container's memory limit
GPU_RESOURCE = "nvidia.com/gpu"
SECRET_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")  # DNS-1123 subdomain
TOLERATION_FIELDS = {  # JSON (Kubernetes spelling) -> V1Toleration argument
    "key": "key",
    "operator": "operator",
    "value": "value",
    "effect": "effect",
    "tolerationSeconds": "toleration_seconds",
}

# Params of the train DAG, as Jinja templates. ``or ''`` turns a null Param into an empty
# string (Jinja would render "None"); empty tags are then dropped like the local backend does.
PARAM_TEMPLATES: dict[str, str] = {
    "epochs": "{{ params.epochs }}",
    "learning_rate": "{{ params.learning_rate }}",
    "batch_size": "{{ params.batch_size }}",
    "seed": "{{ params.seed }}",
    "reason": "{{ params.reason or '' }}",
    "trigger": "{{ params.trigger or '' }}",
    "drift_event_id": "{{ params.drift_event_id or '' }}",
}
RUN_ID_TEMPLATE = "{{ run_id }}"


def snapshot_id_template(snapshot_task_id: str = "build_snapshot") -> str:
    """Jinja that renders to the snapshot id returned (as XCom) by ``snapshot_task_id``."""
    return f"{{{{ ti.xcom_pull(task_ids='{snapshot_task_id}')['snapshot_id'] }}}}"


# --- settings -> pod spec pieces ---------------------------------------------------------------


def _json_setting(settings: Settings, name: str) -> Any:
    raw = getattr(settings, name).strip()
    if not raw:
        return None
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise SettingsError(f"{PREFIX}{name.upper()} is not valid JSON ({exc}): {raw!r}") from None


def node_selector(settings: Settings) -> dict[str, str]:
    """``FLYWHEEL_K8S_NODE_SELECTOR``: a JSON object of label -> value."""
    value = _json_setting(settings, "k8s_node_selector")
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise SettingsError(
            f"{PREFIX}K8S_NODE_SELECTOR must be a JSON object of string values, "
            f"got {settings.k8s_node_selector!r}"
        )
    return dict(value)


def tolerations(settings: Settings) -> list[k8s.V1Toleration]:
    """``FLYWHEEL_K8S_TOLERATIONS``: a JSON list of tolerations in Kubernetes' spelling."""
    from kubernetes.client import models as k8s

    value = _json_setting(settings, "k8s_tolerations")
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise SettingsError(
            f"{PREFIX}K8S_TOLERATIONS must be a JSON list of objects, got {settings.k8s_tolerations!r}"
        )
    parsed = []
    for item in value:
        unknown = sorted(set(item) - set(TOLERATION_FIELDS))
        if unknown:
            raise SettingsError(
                f"{PREFIX}K8S_TOLERATIONS: unknown toleration field(s) {', '.join(unknown)}; "
                f"expected {', '.join(TOLERATION_FIELDS)}"
            )
        parsed.append(k8s.V1Toleration(**{TOLERATION_FIELDS[k]: v for k, v in item.items()}))
    return parsed


def secret_names(settings: Settings) -> list[str]:
    """``FLYWHEEL_K8S_SECRETS``: comma-separated names of secrets exposed to the pod as env."""
    names = [name.strip() for name in settings.k8s_secrets.split(",") if name.strip()]
    bad = [name for name in names if not SECRET_NAME.match(name)]
    if bad:
        raise SettingsError(f"{PREFIX}K8S_SECRETS: not valid Kubernetes secret names: {', '.join(bad)}")
    return names


def resources(settings: Settings) -> k8s.V1ResourceRequirements:
    """CPU/memory requests and limits, plus ``nvidia.com/gpu`` limits unless ``k8s_gpus`` is 0."""
    from kubernetes.client import models as k8s

    if settings.k8s_gpus < 0:
        raise SettingsError(f"{PREFIX}K8S_GPUS must be >= 0, got {settings.k8s_gpus}")
    limits = {"cpu": settings.k8s_cpu_limit, "memory": settings.k8s_memory_limit}
    if settings.k8s_gpus:
        # Extended resources are set as limits only; Kubernetes uses the limit as the request.
        limits[GPU_RESOURCE] = str(settings.k8s_gpus)
    return k8s.V1ResourceRequirements(
        requests={"cpu": settings.k8s_cpu_request, "memory": settings.k8s_memory_request},
        limits=limits,
    )


def _check_no_embedded_credential(name: str, value: str) -> None:
    """Refuse a value that holds anything :func:`redact` hides: it would land in the pod spec in plain text."""
    shown = redact(value)
    if shown != value:
        raise SettingsError(
            f"{PREFIX}{name.upper()}={shown!r} carries a credential (a password or a secret query "
            f"parameter), which would be written in plain text into the training pod's spec: drop it "
            f"from the value and provide the credential through one of the secrets in {PREFIX}K8S_SECRETS "
            f"(e.g. PGPASSWORD, AWS_SESSION_TOKEN, or {PREFIX}MLFLOW_TRACKING_USERNAME and _PASSWORD)"
        )


# The settings the entrypoint reads (directly or through the lake and the MLflow registry);
# training hyperparameters travel on the command line instead.
POD_SETTINGS = (
    "lake_uri",
    "s3_endpoint_url",
    "s3_connect_timeout_seconds",  # the pod's outside calls are bounded like the worker's
    "s3_read_timeout_seconds",
    "s3_max_attempts",
    "mlflow_tracking_uri",
    "mlflow_http_timeout_seconds",
    "mlflow_http_max_retries",
    "mlflow_http_backoff_factor",
    "mlflow_artifact_root",
    "mlflow_experiment",
    "model_name",
    "dataset",
    "dataset_spec",
    "reference_sample_size",
    "seed",
)


def pod_env(settings: Settings) -> dict[str, str]:
    """Plain configuration for the pod's environment: no secret values, ever."""
    env: dict[str, str] = {}
    for name in POD_SETTINGS:
        value = str(getattr(settings, name))
        _check_no_embedded_credential(name, value)
        if value:
            env[PREFIX + name.upper()] = value
    env.update(
        {
            f"{PREFIX}DATA_DIR": f"{SCRATCH_DIR}/flywheel",  # writable scratch, not the read-only root
            "HOME": SCRATCH_DIR,  # caches of torch, MLflow, matplotlib land on the scratch volume
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "DO_NOT_TRACK": "1",
            "PYTHONUNBUFFERED": "1",  # the task log follows the pod's output line by line
        }
    )
    if settings.s3_endpoint_url:
        # MLflow's S3 artifact client reads its endpoint from here, not from our setting.
        env["MLFLOW_S3_ENDPOINT_URL"] = settings.s3_endpoint_url
    return env


def unreachable_from_pod(settings: Settings) -> list[str]:
    """Settings that point at the Airflow host's local disk, which a pod cannot see."""
    problems = []
    if settings.lake_uri.startswith("file:"):
        problems.append(f"{PREFIX}LAKE_URI={redact(settings.lake_uri)}")
    tracking = settings.mlflow_tracking_uri
    if tracking.startswith(("sqlite:", "file:", "/", ".")):
        problems.append(f"{PREFIX}MLFLOW_TRACKING_URI={redact(tracking)}")
    return problems


def drop_empty_tags(arguments: list[str]) -> list[str]:
    """Remove ``--tag KEY=`` pairs whose value rendered empty (the local backend omits them)."""
    kept: list[str] = []
    index = 0
    while index < len(arguments):
        item = arguments[index]
        if item == "--tag" and index + 1 < len(arguments) and arguments[index + 1].partition("=")[2] == "":
            index += 2
            continue
        kept.append(item)
        index += 1
    return kept


# --- the operator ------------------------------------------------------------------------------


@functools.cache
def _training_pod_operator_class() -> type[KubernetesPodOperator]:
    """``KubernetesPodOperator`` whose rendered arguments drop empty tags, built on first use."""
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

    class TrainingPodOperator(KubernetesPodOperator):
        """Run ``python -m mlflywheel.training`` in a pod (see :mod:`mlflywheel.orchestration.training_backends.kubernetes`)."""

        def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
            super().render_template_fields(context, jinja_env)
            # Jinja renders list elements one by one and cannot remove one: a null Param
            # leaves "--tag key=" behind, which the local backend never passes.
            self.arguments = drop_empty_tags(list(self.arguments))

    # Importable as mlflywheel.orchestration.training_backends.kubernetes.TrainingPodOperator (module __getattr__).
    TrainingPodOperator.__module__ = __name__
    TrainingPodOperator.__qualname__ = "TrainingPodOperator"
    return TrainingPodOperator


def __getattr__(name: str) -> Any:
    if name == "TrainingPodOperator":
        return _training_pod_operator_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def build_training_pod_operator(
    settings: Settings, *, snapshot_id_template: str, task_id: str = "train_model"
) -> KubernetesPodOperator:
    """The ``train_model`` pod operator; call it inside a DAG context.

    ``snapshot_id_template`` is a Jinja string rendering to the snapshot id, e.g.
    :func:`snapshot_id_template`. Hyperparameters and tags are rendered from the DAG run's
    Params and run id, so the pod runs the same command line as the local backend.
    """
    from kubernetes.client import models as k8s

    problems = unreachable_from_pod(settings)
    if problems:
        log.warning("kubernetes training backend: a pod cannot reach %s", "; ".join(problems))
    if settings.mlflow_tracking_username and not secret_names(settings):
        log.warning(
            "kubernetes training backend: MLflow asks for a login (%sMLFLOW_TRACKING_USERNAME is set) but "
            "%sK8S_SECRETS names no secret: the pod would call MLflow without one and be refused (401)",
            PREFIX, PREFIX,
        )  # fmt: skip

    command = training_command(snapshot_id_template, dict(PARAM_TEMPLATES), RUN_ID_TEMPLATE)
    operator_class = _training_pod_operator_class()
    return operator_class(
        task_id=task_id,
        doc_md="Run `python -m mlflywheel.training` in a GPU pod; results are registered in MLflow.",
        name=POD_NAME,
        namespace=settings.k8s_namespace,
        image=settings.k8s_image,
        image_pull_policy=settings.k8s_image_pull_policy,
        service_account_name=settings.k8s_service_account,
        # The trainer never talks to the Kubernetes API: keep the token out of the pod.
        automount_service_account_token=False,
        cmds=command[:3],  # python -m mlflywheel.training (overrides the image's ENTRYPOINT)
        arguments=command[3:],
        env_vars=[k8s.V1EnvVar(name=k, value=v) for k, v in sorted(pod_env(settings).items())],
        env_from=[
            k8s.V1EnvFromSource(secret_ref=k8s.V1SecretEnvSource(name=name))
            for name in secret_names(settings)
        ],
        container_resources=resources(settings),
        node_selector=node_selector(settings),
        tolerations=tolerations(settings),
        security_context=k8s.V1PodSecurityContext(
            run_as_non_root=True,
            run_as_user=RUN_AS_ID,
            run_as_group=RUN_AS_ID,
            fs_group=RUN_AS_ID,
            seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault"),
        ),
        container_security_context=k8s.V1SecurityContext(
            allow_privilege_escalation=False,
            read_only_root_filesystem=True,
            run_as_non_root=True,
            capabilities=k8s.V1Capabilities(drop=["ALL"]),
        ),
        volumes=[
            k8s.V1Volume(name="scratch", empty_dir=k8s.V1EmptyDirVolumeSource()),
            # Worker processes share tensors through /dev/shm; the runtime's default 64 MiB is too small.
            k8s.V1Volume(
                name="shm", empty_dir=k8s.V1EmptyDirVolumeSource(medium="Memory", size_limit=SHM_SIZE_LIMIT)
            ),
        ],
        volume_mounts=[
            k8s.V1VolumeMount(name="scratch", mount_path=SCRATCH_DIR),
            k8s.V1VolumeMount(name="shm", mount_path=SHM_DIR),
        ],
        labels=dict(POD_LABELS),
        # A scale-down must not evict a training pod halfway through an epoch.
        annotations={"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"},
        in_cluster=settings.k8s_in_cluster,
        kubernetes_conn_id=settings.k8s_conn_id,
        pool=settings.k8s_pool,
        pool_slots=1,
        # GPU node scale-up plus a multi-GB image pull take far longer than the default 120 s.
        startup_timeout_seconds=settings.k8s_startup_timeout_seconds,
        execution_timeout=dt.timedelta(minutes=settings.training_timeout_minutes),
        # Also bounds the pod itself should the Airflow worker die while it runs.
        active_deadline_seconds=settings.training_timeout_minutes * 60,
        # A failed or evicted pod registered nothing (registration is the entrypoint's last
        # step), so a retry is safe: the champion is untouched until a later try succeeds.
        retries=settings.task_retries,
        get_logs=True,
        log_events_on_failure=True,  # e.g. "0/3 nodes are available: insufficient nvidia.com/gpu"
        do_xcom_push=False,  # results travel through MLflow, tagged with the DAG run id
        on_finish_action="delete_pod",
    )


def kubernetes_training_task(settings: Settings, snapshot: Any) -> Any:
    """``train_model`` as a pod, downstream of ``snapshot`` (the ``build_snapshot`` XComArg).

    Returns the operator's output (``None`` at run time: nothing is pushed), so that passing it
    to ``evaluate_and_promote`` wires the dependency.
    """
    snapshot_task_id = getattr(getattr(snapshot, "operator", None), "task_id", "build_snapshot")
    template = snapshot_id_template(snapshot_task_id)
    operator = build_training_pod_operator(settings, snapshot_id_template=template)
    snapshot >> operator
    return operator.output
