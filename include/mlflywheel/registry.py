"""The one door to MLflow: runs, experiments, versions, aliases, tags, model and reference loading.

No other module imports MLflow (except the model class it loads,
:mod:`mlflywheel.training.pyfunc_model`); a test checks it. Conventions:
  * one registered model per dataset (``settings.model_name``);
  * alias ``champion`` is the model in service, ``previous_champion`` the one it replaced
    (what a rollback restores);
  * decisions and lineage are model-version tags under ``flywheel.*``; a write of several tags
    (a gate's decision and its evidence) is one record to readers (:func:`tag_version`): they
    see the tags as they were before it or as it left them, never a mix, even if it is killed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import logging
import math
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from mlflywheel import faults
from mlflywheel.settings import PREFIX, redact

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pandas as pd
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.tracking import MlflowClient

    from mlflywheel.settings import Settings

log = logging.getLogger("mlflywheel.registry")

CHAMPION = "champion"
PREVIOUS_CHAMPION = "previous_champion"
TAG_VALUE_LIMIT = 5000  # MLflow's limit on a model-version tag value
MODEL_ARTIFACT = "model"
REFERENCE_ARTIFACT_DIR = "reference"
REFERENCE_FILE = "reference.parquet"
REFERENCE_PATH = f"{REFERENCE_ARTIFACT_DIR}/{REFERENCE_FILE}"


class RegistryError(RuntimeError):
    """A registry operation that cannot be done (missing version, no previous champion)."""


class RegistryAuthError(RegistryError):
    """The MLflow server refused the credentials (401) or the operation (403)."""


class ArtifactStoreUnavailable(RegistryError):
    """MLflow's S3 artifact store did not answer within the FLYWHEEL_S3_* bounds (a hung or
    unreachable endpoint): transient, the task's retries take over."""


# MLflow's own knobs (read on every request) for the FLYWHEEL_MLFLOW_HTTP_* settings.
MLFLOW_HTTP_ENV = {
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "mlflow_http_timeout_seconds",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "mlflow_http_max_retries",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "mlflow_http_backoff_factor",
}
MLFLOW_HTTP_BACKOFF_JITTER = 1.0  # MLflow's default: at most this much added to each backoff
# MLflow reads the basic-auth login from these variables on every request.
MLFLOW_CREDENTIAL_ENV = {
    "MLFLOW_TRACKING_USERNAME": "mlflow_tracking_username",
    "MLFLOW_TRACKING_PASSWORD": "mlflow_tracking_password",
}
_credentials_set: dict[str, str] = {}  # what configure_mlflow last put into os.environ
_artifact_client_bounds: tuple[float, float, int] | None = None  # what _bound_artifact_s3_client installed
S3_BOUND_SETTINGS = ("s3_connect_timeout_seconds", "s3_read_timeout_seconds", "s3_max_attempts")


def mlflow_call_budget_seconds(settings: Settings) -> float:
    """The longest one MLflow REST call can take against a server that never answers.

    Each try waits at most the timeout to connect and again to read; urllib3 sleeps nothing
    before the first retry and factor x 2^(n-1) (+ jitter) before retry n after that.
    """
    retries, factor = settings.mlflow_http_max_retries, settings.mlflow_http_backoff_factor
    backoff = sum(factor * 2.0 ** (n - 1) + MLFLOW_HTTP_BACKOFF_JITTER for n in range(2, retries + 1))
    return (retries + 1) * 2 * settings.mlflow_http_timeout_seconds + backoff


def configure_mlflow(settings: Settings) -> MlflowClient:
    """Point MLflow at the settings' tracking and registry URI; return a client.

    Also bounds every MLflow REST call (MLflow's defaults, 120 s and 7 retries, let an
    unreachable server hold a task for minutes): see :func:`mlflow_call_budget_seconds`.
    A call that runs out fails with MLflow's error, which names the URL it called. Artifacts
    behind the server's proxy (``mlflow-artifacts:``) go through the same REST client, so the
    same bound; artifacts written straight to S3 (``s3://``) go through MLflow's own boto3
    client, bounded here by the ``FLYWHEEL_S3_*`` settings (:func:`_bound_artifact_s3_client`).
    """
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    for variable, name in MLFLOW_HTTP_ENV.items():
        os.environ[variable] = str(getattr(settings, name))
    _set_credentials(settings)
    _bound_artifact_s3_client(settings)
    import mlflow
    from mlflow.tracking import MlflowClient

    uri = settings.mlflow_tracking_uri
    if uri.startswith("sqlite:///"):
        # SQLite will not create the folder of its database file.
        Path(uri[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _bound_artifact_s3_client(settings: Settings) -> None:
    """Give MLflow's S3 artifact client the lake's timeouts and attempts (``FLYWHEEL_S3_*``).

    MLflow builds that client itself (``S3ArtifactRepository``: ``boto3.client("s3", config=...)``
    on boto3's default session) with a ``Config`` of its own that sets no timeout: botocore's
    defaults, 60 s to connect and 60 s to read on each of 3 attempts, apply, minutes per call on
    a hung endpoint. MLflow offers no variable for them, and botocore reads timeouts from no
    variable (``AWS_MAX_ATTEMPTS`` and ``AWS_RETRY_MODE`` cover the retries only). The documented
    hook that reaches the client is botocore's ``Session.set_default_client_config``: every
    client the session creates merges its own ``Config`` over this one, so MLflow's choices
    (signature, addressing) stay and our timeouts and retries fill in what it leaves unset.
    boto3's default session is replaced (``boto3.setup_default_session``, also public) by one
    carrying it; an explicit ``Config`` (the lake's) still wins on its own values.
    """
    global _artifact_client_bounds
    bounds = tuple(getattr(settings, name) for name in S3_BOUND_SETTINGS)
    if bounds == _artifact_client_bounds:
        return
    import boto3
    import botocore.session
    from botocore.config import Config

    connect_timeout, read_timeout, attempts = bounds
    core = botocore.session.get_session()
    core.set_default_client_config(
        Config(
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"total_max_attempts": attempts, "mode": "standard"},
        )
    )
    boto3.setup_default_session(botocore_session=core)
    # MLflow caches its S3 clients for up to 5 minutes; one made under other bounds would outlive
    # the change (this matters to a process that switches settings, such as a test run).
    from mlflow.store.artifact import s3_artifact_repo

    cached = getattr(s3_artifact_repo, "_cached_get_s3_client", None)
    if hasattr(cached, "cache_clear"):
        cached.cache_clear()
    _artifact_client_bounds = bounds  # type: ignore[assignment]


def _artifact_store_unavailable(settings: Settings, exc: BaseException) -> ArtifactStoreUnavailable | None:
    """A clear error for a timeout or unreachable endpoint of MLflow's S3 artifact client, else None."""
    from botocore.exceptions import ConnectionError as BotoConnectionError
    from botocore.exceptions import HTTPClientError

    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, (BotoConnectionError, HTTPClientError)):
        cause = cause.__cause__ or cause.__context__
    if cause is None:
        return None
    endpoint = os.environ.get("MLFLOW_S3_ENDPOINT_URL") or settings.s3_endpoint_url
    where = f"endpoint {redact(endpoint)}" if endpoint else "AWS S3"
    return ArtifactStoreUnavailable(
        f"MLflow's artifact store at {where} did not answer: {redact(str(cause))} (gave up after "
        f"{settings.s3_max_attempts} attempt(s), {settings.s3_connect_timeout_seconds:g} s to connect and "
        f"{settings.s3_read_timeout_seconds:g} s to read each: {PREFIX}S3_CONNECT_TIMEOUT_SECONDS, "
        f"{PREFIX}S3_READ_TIMEOUT_SECONDS, {PREFIX}S3_MAX_ATTEMPTS)"
    )


def _set_credentials(settings: Settings) -> None:
    """The settings' MLflow login into MLflow's variables; settings without one send none.

    Only a value this function set is removed (a process may switch settings: a test, a tool
    acting as two accounts); variables the process was started with are left alone otherwise.
    """
    for variable, name in MLFLOW_CREDENTIAL_ENV.items():
        value = getattr(settings, name)
        if value:
            os.environ[variable] = _credentials_set[variable] = value
        elif variable in _credentials_set and os.environ.get(variable) == _credentials_set.pop(variable):
            del os.environ[variable]


def _refusal(settings: Settings, exc: BaseException) -> RegistryAuthError | None:
    """A clear error for MLflow's 401 or 403 (naming the server, the user and what to check), else None."""
    status = getattr(getattr(exc, "response", None), "status_code", None)  # artifact downloads: HTTPError
    code = getattr(exc, "error_code", "") or {401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED"}.get(status, "")
    server, user = redact(settings.mlflow_tracking_uri), settings.mlflow_tracking_username
    if code == "UNAUTHENTICATED":
        who = f"user {user!r}" if user else "a request without credentials"
        return RegistryAuthError(
            f"MLflow at {server} refused {who}: not authenticated (401). Check {PREFIX}MLFLOW_TRACKING_USERNAME "
            f"and {PREFIX}MLFLOW_TRACKING_PASSWORD (the service account's login; README: MLflow authentication)"
        )
    if code == "PERMISSION_DENIED":
        return RegistryAuthError(
            f"MLflow at {server} refused user {user!r}: permission denied (403) for {exc}. Training and "
            f"promotion write with the service account; other accounts may only read"
        )
    return None


def _explain_refusals(function: Callable[..., Any]) -> Callable[..., Any]:
    """Turn MLflow's 401/403 in ``function(settings, ...)`` into a :class:`RegistryAuthError`, and a
    hung or unreachable S3 artifact store into an :class:`ArtifactStoreUnavailable`.

    MLflow retries neither refusal, so the error comes at once instead of after the retry budget.
    """

    @functools.wraps(function)
    def wrapper(settings: Settings, *args: Any, **kwargs: Any) -> Any:
        try:
            return function(settings, *args, **kwargs)
        except RegistryError:
            raise
        except Exception as exc:
            clear = _refusal(settings, exc) or _artifact_store_unavailable(settings, exc)
            if clear is None:
                raise
            raise clear from exc

    return wrapper


def _artifact_location(root: str, folder: str = "") -> str:
    """A URI (s3://, mlflow-artifacts:/, file://) is kept as is; a plain path becomes a file URI."""
    if urlparse(root).scheme:
        return f"{root.rstrip('/')}/{folder}" if folder else root
    path = Path(root).expanduser().resolve()
    return (path / folder if folder else path).as_uri()


@_explain_refusals
def ensure_experiment(settings: Settings, name: str, *, own_folder: bool = False) -> str:
    """The id of experiment ``name``, created under the settings' artifact root if missing.

    ``own_folder`` puts its artifacts in a sub-folder named after it (reports beside models).
    Behind a server's artifact proxy (``mlflow-artifacts:``) the server places each experiment
    in a folder of its own, ``<experiment id>/``: MLflow's basic-auth app finds the experiment of
    an upload by that folder, and refuses uploads elsewhere (the location is left to the server).
    """
    from mlflow.exceptions import MlflowException

    client = configure_mlflow(settings)
    existing = client.get_experiment_by_name(name)
    if existing is not None:
        return existing.experiment_id
    location = None
    if urlparse(settings.mlflow_artifact_root).scheme != "mlflow-artifacts":
        location = _artifact_location(settings.mlflow_artifact_root, name if own_folder else "")
    try:
        return client.create_experiment(name, artifact_location=location)
    except MlflowException:
        # Another process may have created it between our lookup and create.
        existing = client.get_experiment_by_name(name)
        if existing is None:
            raise
        return existing.experiment_id


@_explain_refusals
def run_tags(settings: Settings, run_id: str) -> dict[str, str]:
    """The tags of tracking run ``run_id``."""
    return dict(configure_mlflow(settings).get_run(run_id).data.tags)


@_explain_refusals
def log_report_run(
    settings: Settings,
    *,
    experiment: str,
    tags: Mapping[str, str],
    params: Mapping[str, Any],
    metrics: Mapping[str, float],
    texts: Mapping[str, str],
) -> str:
    """One finished run holding a report (params, metrics, text artifacts); returns its id.

    The run is marked FAILED if any write fails, so a half-logged report is never "finished".
    """
    client = configure_mlflow(settings)
    run = client.create_run(ensure_experiment(settings, experiment, own_folder=True), tags=dict(tags))
    run_id = run.info.run_id
    try:
        for key, value in params.items():
            client.log_param(run_id, key, value)
        for key, value in metrics.items():
            client.log_metric(run_id, key, value)
        for artifact_file, text in texts.items():
            client.log_text(run_id, text, artifact_file)
    except BaseException:
        client.set_terminated(run_id, status="FAILED")
        raise
    client.set_terminated(run_id, status="FINISHED")
    return run_id


@dataclass
class TrainingRecord:
    """Everything a training run records, gathered by the entrypoint, written by
    :func:`record_training_run` in one MLflow run."""

    tags: dict[str, str]
    params: dict[str, Any]
    metrics: dict[str, float]
    epoch_metrics: list[tuple[int, dict[str, float]]]
    dicts: dict[str, Any]  # artifact path -> JSON-serialisable object (manifest, history)
    reference: pd.DataFrame  # train features + the model's score: the drift reference
    write_model_files: Callable[[Path], dict[str, str]]  # writes the model's files, returns pyfunc artifacts
    python_model: Any  # the pyfunc PythonModel instance
    version_tags: dict[str, str] = field(default_factory=dict)
    # The run's dataset input, described rather than scanned (MLflow's own schema inference and
    # digest visit every value: 8.5 s for 196k rows here). None: no dataset input.
    train_input: DatasetInput | None = None


@dataclass
class DatasetInput:
    """A training split as the run's dataset input: where it is, a content digest, its columns."""

    name: str
    source: str  # URI of the data (the snapshot)
    digest: str  # content digest (a snapshot id's hash covers its partition versions and spec)
    columns: list[tuple[str, str, bool]]  # (name, spec dtype: string|int|float|datetime, nullable)


_MLFLOW_TYPES = {"string": "string", "int": "long", "float": "double", "datetime": "datetime"}


@_explain_refusals
def record_training_run(
    settings: Settings, record: TrainingRecord, timings: dict[str, float] | None = None
) -> tuple[str, str]:
    """Log ``record`` as one run and register its model; returns ``(run_id, version)``.

    Registering is the very last step, so a failure anywhere earlier leaves no version behind.
    ``timings`` receives the seconds of each part: ``mlflow_setup`` (import, store, database
    creation on a first SQLite use, experiment), ``mlflow_log`` (run, params, metrics, JSON
    artifacts, dataset input), ``mlflow_model`` (model and reference sample), ``mlflow_register``.
    """
    timings = {} if timings is None else timings
    with _timed(timings, "mlflow_setup"):
        import mlflow

        configure_mlflow(settings)
        experiment_id = ensure_experiment(settings, settings.mlflow_experiment)
    logging_started = time.perf_counter()
    with mlflow.start_run(experiment_id=experiment_id, tags=record.tags) as run:
        mlflow.log_params(record.params)
        mlflow.log_metrics(_finite_only(record.metrics))  # an undefined metric is left out, not NaN
        for step, values in record.epoch_metrics:
            mlflow.log_metrics(_finite_only(values), step=step)
        for artifact_file, obj in record.dicts.items():
            mlflow.log_dict(obj, artifact_file)
        if record.train_input is not None:
            _log_dataset_input(record.train_input)
        timings["mlflow_log"] = time.perf_counter() - logging_started
        with _timed(timings, "mlflow_model"):
            model_uri = _log_model_and_reference(record)
        with _timed(timings, "mlflow_register"):
            version = mlflow.register_model(
                model_uri,
                settings.model_name,
                tags={**{k: str(v)[:TAG_VALUE_LIMIT] for k, v in record.version_tags.items()},
                      "flywheel.run_id": run.info.run_id},
            )  # fmt: skip
    return run.info.run_id, str(version.version)


@contextmanager
def _timed(timings: dict[str, float], key: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        timings[key] = timings.get(key, 0.0) + time.perf_counter() - started


def _finite_only(values: Mapping[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in values.items() if math.isfinite(float(v))}


def _log_model_and_reference(record: TrainingRecord) -> str:
    """Log the reference sample and the pyfunc model; return the model's URI."""
    import mlflow

    with tempfile.TemporaryDirectory(prefix="flywheel-train-") as tmp:
        tmp_dir = Path(tmp)
        ref_path = tmp_dir / REFERENCE_FILE
        record.reference.to_parquet(ref_path, index=False)
        mlflow.log_artifact(str(ref_path), artifact_path=REFERENCE_ARTIFACT_DIR)
        artifacts = record.write_model_files(tmp_dir / "model_files")
        # No signature on purpose: MLflow's schema enforcement rejects the validated frames'
        # nullable Int64 columns; the model preprocesses any frame itself.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "no input example" nag
            info = mlflow.pyfunc.log_model(
                name=MODEL_ARTIFACT,
                python_model=record.python_model,
                artifacts=artifacts,
                pip_requirements=_pip_requirements(),
            )
    return info.model_uri


def _pip_requirements() -> list[str]:
    # Explicit pins: MLflow's requirement inference would re-import the model (slow).
    import mlflow
    import numpy
    import pandas
    import torch

    return [
        f"mlflow=={mlflow.__version__}",
        f"torch=={torch.__version__.split('+')[0]}",
        f"pandas=={pandas.__version__}",
        f"numpy=={numpy.__version__}",
        "pyarrow",
        "scikit-learn",
    ]


def _log_dataset_input(described: DatasetInput) -> None:
    """Record the train split as the run's dataset input (best effort: lineage is also in tags)."""
    import mlflow
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.types import ColSpec, DataType, Schema

    try:
        schema = Schema([
            ColSpec(DataType[_MLFLOW_TYPES.get(dtype, "string")], name, required=not nullable)
            for name, dtype, nullable in described.columns
        ])  # fmt: skip
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # source ambiguity
            source = resolve_dataset_source(described.source)
        dataset = MetaDataset(source, name=described.name, digest=described.digest, schema=schema)
        mlflow.log_input(dataset, context="training")
    except Exception as exc:  # noqa: BLE001 - lineage is also in tags; MLflow internals vary
        log.warning("could not log the dataset input: %s", exc)


def _is_missing(exc: Exception) -> bool:
    code = getattr(exc, "error_code", "")
    return code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND") or "not found" in str(exc).lower()


@_explain_refusals
def get_version(settings: Settings, version: str) -> ModelVersion:
    client = configure_mlflow(settings)
    try:
        return CommittedVersion(client.get_model_version(settings.model_name, str(version)))  # type: ignore[return-value]
    except Exception as exc:
        if _is_missing(exc):
            raise RegistryError(f"{settings.model_name} has no version {version}") from exc
        raise


@_explain_refusals
def version_tags(settings: Settings, version: str) -> dict[str, str]:
    """The tags of model version ``version`` (``flywheel.snapshot_id``, ``flywheel.metrics``, ...)."""
    return dict(get_version(settings, version).tags or {})


@_explain_refusals
def get_alias(settings: Settings, alias: str) -> ModelVersion | None:
    """The version behind ``alias``, or None if the alias (or the model) does not exist."""
    client = configure_mlflow(settings)
    try:
        return CommittedVersion(client.get_model_version_by_alias(settings.model_name, alias))  # type: ignore[return-value]
    except Exception as exc:
        if _is_missing(exc):
            return None
        raise


def champion(settings: Settings) -> ModelVersion | None:
    return get_alias(settings, CHAMPION)


@_explain_refusals
def previous_champion(settings: Settings) -> ModelVersion | None:
    """The version a rollback restores; None if there is none, or if the alias names the champion
    itself (what a move interrupted after the champion alias leaves: nothing to go back to)."""
    previous = get_alias(settings, PREVIOUS_CHAMPION)
    if previous is None:
        return None
    current = champion(settings)
    if current is not None and str(current.version) == str(previous.version):
        return None
    return previous


@_explain_refusals
def list_versions(settings: Settings) -> list[ModelVersion]:
    """All versions of the model, oldest first (empty if the model is not registered)."""
    client = configure_mlflow(settings)
    return [CommittedVersion(v) for v in _raw_versions(client, settings)]  # type: ignore[misc]


def _raw_versions(client: MlflowClient, settings: Settings) -> list[ModelVersion]:
    versions = client.search_model_versions(f"name = '{_quote(settings.model_name)}'")
    return sorted(versions, key=lambda v: int(v.version))


@_explain_refusals
def find_version_by_run_tag(settings: Settings, key: str, value: str) -> ModelVersion | None:
    """The newest version whose training run has tag ``key == value`` (for idempotent retries)."""
    client = configure_mlflow(settings)
    experiment = client.get_experiment_by_name(settings.mlflow_experiment)
    if experiment is None:
        return None
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`{key}` = '{_quote(value)}'",
        max_results=100,
    )
    run_ids = {run.info.run_id for run in runs}
    if not run_ids:
        return None
    matches = [v for v in list_versions(settings) if v.run_id in run_ids]
    return matches[-1] if matches else None


class LoadedModel:
    """A registered version loaded for scoring: ``predict_proba(df) -> np.ndarray``."""

    def __init__(self, name: str, version: str, pyfunc_model: Any) -> None:
        self.name = name
        self.version = str(version)
        self.pyfunc = pyfunc_model
        # Our own wrapper: call it directly, skipping pyfunc schema enforcement, so callers
        # can pass validated frames (nullable ints, extra columns) as they are.
        self._python_model = pyfunc_model.unwrap_python_model()

    def predict_proba(self, df: pd.DataFrame) -> np.ndarray:
        import numpy as np

        return np.asarray(self._python_model.predict_proba(df), dtype=np.float64)

    def __repr__(self) -> str:
        return f"LoadedModel({self.name!r}, version={self.version!r})"


@_explain_refusals
def load_model(settings: Settings, version: str) -> LoadedModel:
    configure_mlflow(settings)
    import mlflow.pyfunc

    get_version(settings, version)  # a clear error for a missing version
    # suppress_warnings skips MLflow's scan of every installed package for requirement
    # mismatches (~5 s); the model runs where mlflywheel and its pins are installed.
    model = mlflow.pyfunc.load_model(f"models:/{settings.model_name}/{version}", suppress_warnings=True)
    return LoadedModel(settings.model_name, str(version), model)


@_explain_refusals
def load_reference(settings: Settings, version: str) -> pd.DataFrame:
    """The reference sample logged with the version's run (train features + ``score``)."""
    configure_mlflow(settings)
    import mlflow
    import pandas as pd

    model_version = get_version(settings, version)
    if not model_version.run_id:
        raise RegistryError(f"{settings.model_name} version {version} has no training run")
    with tempfile.TemporaryDirectory(prefix="flywheel-ref-") as tmp:
        path = mlflow.artifacts.download_artifacts(
            run_id=model_version.run_id, artifact_path=REFERENCE_PATH, dst_path=tmp
        )
        return pd.read_parquet(path)


# --- tags written as one record ------------------------------------------------------------------
# MLflow writes one tag at a time. While a write of several tags is under way (or after it was
# killed), UNDO_TAG says how many parts UNDO_PART_PREFIX holds: together, the JSON of the values the
# write changes as they were before it (null: the tag did not exist). Readers apply it, so they see
# the tags as before the write until the write removes UNDO_TAG, its commit point.
UNDO_TAG = "flywheel.record.undo"
UNDO_PART_PREFIX = f"{UNDO_TAG}."


def committed_tags(tags: Mapping[str, str] | None) -> dict[str, str]:
    """``tags`` as of the last completed :func:`tag_version`: the values an unfinished (or killed)
    write changed are read as they were before it, and the bookkeeping tags are left out."""
    raw = dict(tags or {})
    view = {k: v for k, v in raw.items() if k != UNDO_TAG and not k.startswith(UNDO_PART_PREFIX)}
    before = _undo_record(raw)
    for key, value in (before or {}).items():
        if value is None:
            view.pop(key, None)
        else:
            view[key] = value
    return view


def _undo_record(raw: Mapping[str, str]) -> dict[str, str | None] | None:
    """The values before an unfinished write, or None when no write is unfinished."""
    parts = raw.get(UNDO_TAG)
    if parts is None:
        return None  # parts without UNDO_TAG: a write killed before it began; nothing to undo
    text = "".join(raw.get(f"{UNDO_PART_PREFIX}{index}", "") for index in range(int(parts)))
    return json.loads(text)  # the parts are all written before UNDO_TAG: never a partial text


class CommittedVersion:
    """A model version as readers see it: MLflow's ``ModelVersion`` whose ``tags`` are the
    :func:`committed_tags` (every other attribute is the version's own)."""

    def __init__(self, version: ModelVersion) -> None:
        self._version = version
        self.tags = committed_tags(version.tags)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._version, name)

    def __repr__(self) -> str:
        return f"CommittedVersion({self._version!r})"


@_explain_refusals
def tag_version(
    settings: Settings, version: str, tags: dict[str, Any], *, replace_prefixes: tuple[str, ...] = ()
) -> None:
    """Write ``tags`` on ``version`` as one record: readers see all of them or none.

    ``replace_prefixes``: the tags make a new record of these namespaces (e.g. ``flywheel.gate.``),
    so the version's other tags under them, left by an earlier record, are removed in the same
    write: no stale evidence beside a new decision. Values are cut at :data:`TAG_VALUE_LIMIT`.

    More than one change: the old values are saved first (:data:`UNDO_TAG`), the tags written,
    stale ones removed, and :data:`UNDO_TAG` removed last, the commit point. A write left
    unfinished (killed, or failed mid-way) is undone by the next write to the version, or by
    :func:`repair_unfinished_writes`; readers never need that to see a consistent record.
    """
    client = configure_mlflow(settings)
    name, version = settings.model_name, str(version)
    faults.point("registry.tag")
    raw = dict(client.get_model_version(name, version).tags or {})
    if UNDO_TAG in raw or any(k.startswith(UNDO_PART_PREFIX) for k in raw):
        raw = _undo_unfinished(client, name, version, raw)
    new = {key: ("" if value is None else str(value))[:TAG_VALUE_LIMIT] for key, value in tags.items()}
    changed = {key: value for key, value in new.items() if raw.get(key) != value}
    stale = [key for key in raw if replace_prefixes and key.startswith(replace_prefixes) and key not in new]
    if len(changed) + len(stale) <= 1:  # one tag write is atomic on its own
        for key, value in changed.items():
            client.set_model_version_tag(name, version, key, value)
        for key in stale:
            client.delete_model_version_tag(name, version, key)
        return
    before = {key: raw.get(key) for key in [*changed, *stale]}
    text = json.dumps(before, sort_keys=True)
    parts = [text[i : i + TAG_VALUE_LIMIT] for i in range(0, len(text), TAG_VALUE_LIMIT)]
    for index, part in enumerate(parts):
        client.set_model_version_tag(name, version, f"{UNDO_PART_PREFIX}{index}", part)
    client.set_model_version_tag(name, version, UNDO_TAG, str(len(parts)))  # readers keep the old values
    try:
        for index, (key, value) in enumerate(changed.items()):
            if index == 1:
                faults.point("registry.tag.partial")  # one tag written, the others not
            client.set_model_version_tag(name, version, key, value)
        for key in stale:
            client.delete_model_version_tag(name, version, key)
        faults.point("registry.tag.commit")  # all written; readers still see the old values
    except Exception:
        with contextlib.suppress(Exception):  # best effort: a later write or repair undoes it too
            _undo_unfinished(client, name, version, dict(client.get_model_version(name, version).tags or {}))
        raise
    client.delete_model_version_tag(name, version, UNDO_TAG)  # the commit point: readers see the new values
    for index in range(len(parts)):
        client.delete_model_version_tag(name, version, f"{UNDO_PART_PREFIX}{index}")


def _undo_unfinished(client: MlflowClient, name: str, version: str, raw: dict[str, str]) -> dict[str, str]:
    """Put back the values an unfinished write changed, then drop its bookkeeping; the tags after.

    Idempotent, so a repair killed half-way is finished by the next one: the values are restored
    while :data:`UNDO_TAG` still tells readers to read them as restored.
    """
    before = _undo_record(raw)
    tags = dict(raw)
    for key, value in (before or {}).items():
        if value is None:
            if key in tags:
                client.delete_model_version_tag(name, version, key)
                del tags[key]
        elif tags.get(key) != value:
            client.set_model_version_tag(name, version, key, value)
            tags[key] = value
    if UNDO_TAG in tags:
        client.delete_model_version_tag(name, version, UNDO_TAG)
        del tags[UNDO_TAG]
    for key in [k for k in tags if k.startswith(UNDO_PART_PREFIX)]:
        client.delete_model_version_tag(name, version, key)
        del tags[key]
    log.warning("%s version %s: an unfinished tag write was undone (%d tag(s) restored)", name, version,
                len(before or {}))  # fmt: skip
    return tags


@_explain_refusals
def repair_unfinished_writes(settings: Settings) -> list[str]:
    """Undo every tag write a kill left unfinished (readers already read around them); the versions."""
    client = configure_mlflow(settings)
    repaired = []
    for found in _raw_versions(client, settings):
        raw = dict(found.tags or {})
        if UNDO_TAG in raw or any(k.startswith(UNDO_PART_PREFIX) for k in raw):
            _undo_unfinished(client, settings.model_name, str(found.version), raw)
            repaired.append(str(found.version))
    return repaired


@_explain_refusals
def set_champion(settings: Settings, version: str, *, reason: str) -> dict[str, Any]:
    """Move ``champion`` to ``version``; the replaced champion becomes ``previous_champion``.

    Order: tags on the new champion (including ``flywheel.champion.replaced``, the version it
    replaces), then the ``champion`` alias (the commit point), then ``previous_champion``. A failure
    before the champion moves changes no alias; one after it leaves ``previous_champion`` behind
    by one move (never equal to the champion: :func:`previous_champion` reads such an alias as
    None), and the ``replaced`` tag says what it should be (``promote.finish_interrupted``).
    """
    client = configure_mlflow(settings)
    version = str(version)
    get_version(settings, version)
    current = champion(settings)
    previous = str(current.version) if current is not None and str(current.version) != version else None
    tag_version(
        settings,
        version,
        {
            "flywheel.champion.since": dt.datetime.now(dt.UTC).isoformat(),
            "flywheel.champion.reason": reason,
            "flywheel.champion.replaced": previous or "none",
        },
    )
    faults.point("registry.alias")
    client.set_registered_model_alias(settings.model_name, CHAMPION, version)
    if previous is not None:
        faults.point("registry.alias")
        client.set_registered_model_alias(settings.model_name, PREVIOUS_CHAMPION, previous)
    return {"champion": version, "previous_champion": previous}


@_explain_refusals
def restore_champion(settings: Settings, version: str) -> None:
    """Rollback's alias move: ``champion`` -> ``version``, and ``previous_champion`` removed
    (killed in between, ``previous_champion`` equals the champion and reads as None)."""
    client = configure_mlflow(settings)
    faults.point("registry.alias")
    client.set_registered_model_alias(settings.model_name, CHAMPION, str(version))
    faults.point("registry.alias")
    client.delete_registered_model_alias(settings.model_name, PREVIOUS_CHAMPION)


@_explain_refusals
def delete_alias(settings: Settings, alias: str) -> bool:
    """Remove ``alias`` if it exists; returns whether it did."""
    if get_alias(settings, alias) is None:
        return False
    configure_mlflow(settings).delete_registered_model_alias(settings.model_name, alias)
    return True


def _quote(value: str) -> str:
    return str(value).replace("'", "\\'")
