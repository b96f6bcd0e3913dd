"""MLflow registry helpers: the only place that knows how versions, aliases and tags are used.

Conventions:
  * one registered model per dataset (``settings.model_name``);
  * alias ``champion`` is the model in service, ``previous_champion`` the one it replaced
    (what a rollback restores);
  * decisions and lineage are model-version tags under ``flywheel.*``.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pandas as pd
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.tracking import MlflowClient

    from mlflywheel.settings import Settings

CHAMPION = "champion"
PREVIOUS_CHAMPION = "previous_champion"
TAG_VALUE_LIMIT = 5000  # MLflow's limit on a model-version tag value
REFERENCE_PATH = "reference/reference.parquet"


class RegistryError(RuntimeError):
    """A registry operation that cannot be done (missing version, no previous champion)."""


def configure_mlflow(settings: Settings) -> MlflowClient:
    """Point MLflow at the settings' tracking and registry URI; return a client."""
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    import mlflow
    from mlflow.tracking import MlflowClient

    uri = settings.mlflow_tracking_uri
    if uri.startswith("sqlite:///"):
        # SQLite will not create the folder of its database file.
        Path(uri[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _is_missing(exc: Exception) -> bool:
    code = getattr(exc, "error_code", "")
    return code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND") or "not found" in str(exc).lower()


def get_version(settings: Settings, version: str) -> ModelVersion:
    client = configure_mlflow(settings)
    try:
        return client.get_model_version(settings.model_name, str(version))
    except Exception as exc:
        if _is_missing(exc):
            raise RegistryError(f"{settings.model_name} has no version {version}") from exc
        raise


def get_alias(settings: Settings, alias: str) -> ModelVersion | None:
    """The version behind ``alias``, or None if the alias (or the model) does not exist."""
    client = configure_mlflow(settings)
    try:
        return client.get_model_version_by_alias(settings.model_name, alias)
    except Exception as exc:
        if _is_missing(exc):
            return None
        raise


def champion(settings: Settings) -> ModelVersion | None:
    return get_alias(settings, CHAMPION)


def previous_champion(settings: Settings) -> ModelVersion | None:
    return get_alias(settings, PREVIOUS_CHAMPION)


def list_versions(settings: Settings) -> list[ModelVersion]:
    """All versions of the model, oldest first (empty if the model is not registered)."""
    client = configure_mlflow(settings)
    versions = client.search_model_versions(f"name = '{_quote(settings.model_name)}'")
    return sorted(versions, key=lambda v: int(v.version))


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


def load_model(settings: Settings, version: str) -> LoadedModel:
    configure_mlflow(settings)
    import mlflow.pyfunc

    get_version(settings, version)  # a clear error for a missing version
    # suppress_warnings skips MLflow's scan of every installed package for requirement
    # mismatches (~5 s); the model runs where mlflywheel and its pins are installed.
    model = mlflow.pyfunc.load_model(f"models:/{settings.model_name}/{version}", suppress_warnings=True)
    return LoadedModel(settings.model_name, str(version), model)


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


def tag_version(settings: Settings, version: str, tags: dict[str, Any]) -> None:
    client = configure_mlflow(settings)
    for key, value in tags.items():
        text = "" if value is None else str(value)
        client.set_model_version_tag(settings.model_name, str(version), key, text[:TAG_VALUE_LIMIT])


def set_champion(settings: Settings, version: str, *, reason: str) -> dict[str, Any]:
    """Move ``champion`` to ``version``; the replaced champion becomes ``previous_champion``.

    Tags on the new champion come first and the ``champion`` alias moves last, so a crash
    never leaves an unexplained champion.
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
    if previous is not None:
        client.set_registered_model_alias(settings.model_name, PREVIOUS_CHAMPION, previous)
    client.set_registered_model_alias(settings.model_name, CHAMPION, version)
    return {"champion": version, "previous_champion": previous}


def _quote(value: str) -> str:
    return str(value).replace("'", "\\'")
