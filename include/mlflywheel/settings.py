"""One typed settings object, read from ``FLYWHEEL_*`` environment variables.

Defaults give the embedded stack: the lake on local disk, MLflow on a local SQLite
store, Airflow standalone on 127.0.0.1:8080. Every field ``foo_bar`` is read from
``FLYWHEEL_FOO_BAR``. Standard library only: DAG files import this at parse time.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path

PREFIX = "FLYWHEEL_"


class SettingsError(ValueError):
    """A FLYWHEEL_* variable has a value that cannot be used."""


def _default_data_dir() -> Path:
    # In a source checkout (editable install) data lives beside the project; elsewhere
    # (a training image, a wheel install) under the user's home.
    root = Path(__file__).resolve().parents[2]
    if (root / "pyproject.toml").exists():
        return root / "data"
    return Path.home() / ".flywheel"


@dataclass(frozen=True)
class Settings:
    # --- where things live -------------------------------------------------------------
    data_dir: Path = field(default_factory=_default_data_dir)
    lake_uri: str = ""  # file:///... or s3://bucket/prefix; default: <data_dir>/lake
    s3_endpoint_url: str = ""  # for S3-compatible servers; empty = AWS
    mlflow_tracking_uri: str = ""  # default: sqlite:///<data_dir>/mlflow/mlflow.db
    mlflow_artifact_root: str = ""  # default: <data_dir>/mlflow/artifacts
    mlflow_experiment: str = "flywheel"
    model_name: str = ""  # default: flywheel-<dataset>
    dataset: str = "transactions"  # the dataset's name: a built-in spec, or the name in dataset_spec
    dataset_spec: str = ""  # path (or lake URI) of a dataset spec file (YAML); see datasets.load_spec

    # --- sources and the ingestion ledger ------------------------------------------------
    source: str = "landing"  # landing (files delivered to landing/) | postgres (a source table)
    source_postgres_uri: str = ""  # postgresql://user@host:5432/db of the source table
    source_table: str = ""  # table (optionally schema-qualified) holding the dataset's rows
    ledger_uri: str = ""  # postgresql://... adds a ledger table beside the lake's summaries
    ledger_table: str = "flywheel_ingest_ledger"

    # --- Airflow -----------------------------------------------------------------------
    airflow_api_url: str = "http://127.0.0.1:8080"
    airflow_conn_id: str = "flywheel_airflow_api"
    start_date: str = "2026-11-01"  # first data interval of the scheduled DAGs (UTC)
    ingest_schedule: str = "0 0 * * *"
    train_schedule: str = "0 2 * * *"
    drift_schedule: str = "0 4 * * *"
    landing_poke_seconds: int = 30
    landing_timeout_hours: float = 6.0
    task_retries: int = 2
    retry_delay_seconds: int = 30

    # --- training ----------------------------------------------------------------------
    training_backend: str = "local"  # local | kubernetes
    training_timeout_minutes: int = 120
    window_days: int = 14
    epochs: int = 8
    learning_rate: float = 2e-3
    batch_size: int = 1024  # an upper bound: small training splits get smaller batches
    min_steps_per_epoch: int = 8  # batch size is capped so that an epoch has at least this many steps
    seed: int = 42
    split_fractions: str = "0.7,0.15,0.15"  # train, validation, holdout (by time)
    min_training_rows: int = 500
    reference_sample_size: int = 2000

    # --- Kubernetes training backend (FLYWHEEL_TRAINING_BACKEND=kubernetes) -----------------
    k8s_namespace: str = "flywheel"
    k8s_image: str = "ghcr.io/flywheel/flywheel-training:0.1.0"
    k8s_image_pull_policy: str = "IfNotPresent"
    k8s_service_account: str = "flywheel-training"
    k8s_gpus: int = 1
    k8s_cpu_request: str = "4"
    k8s_cpu_limit: str = "8"
    k8s_memory_request: str = "16Gi"
    k8s_memory_limit: str = "32Gi"
    k8s_node_selector: str = '{"nvidia.com/gpu.present": "true"}'  # JSON object
    k8s_tolerations: str = '[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]'  # JSON
    k8s_secrets: str = "flywheel-mlflow,flywheel-s3"  # Kubernetes secrets exposed to the pod as env
    k8s_pool: str = "gpu"  # Airflow pool: one slot per GPU training pod
    k8s_startup_timeout_seconds: int = 900  # room for GPU node scale-up and a large image pull
    k8s_conn_id: str = "kubernetes_default"
    k8s_in_cluster: bool = True

    # --- promotion gate ----------------------------------------------------------------
    gate_metric: str = "pr_auc"
    gate_margin: float = 0.002
    gate_min_holdout_rows: int = 200  # fewer holdout rows than this: the gate records "undecided"
    gate_min_holdout_positives: int = 10  # likewise for positive labels
    gate_bootstrap_samples: int = 1000  # paired bootstrap of the gate metric's difference
    gate_confidence: float = 0.9  # two-sided level of the difference's interval
    gate_holdout_extra_days: int = 7  # validated days after the training window added to the holdout
    floor_pr_auc: float = 0.2
    floor_roc_auc: float = 0.7
    promotion_mode: str = "gate"  # train's default: gate | shadow | approval (a person approves in the UI)
    approval_timeout_hours: float = 24.0  # no answer by then: nothing promoted

    # --- validation --------------------------------------------------------------------
    max_failed_row_fraction: float = 0.2  # above this the whole partition is quarantined

    # --- drift -------------------------------------------------------------------------
    drift_backend: str = "alibi"  # alibi (BSL 1.1, non-production) | scipy (BSD)
    drift_p_value: float = 0.05
    drift_correction: str = "bonferroni"  # bonferroni | fdr
    drift_window_days: int = 1
    drift_max_rows: int = 5000
    drift_cooldown_hours: float = 24.0
    drift_retrain_window_days: int = 7  # most days a drift retrain looks back (never before the event)
    drift_retrain_wait_days: int = 2  # post-event days of data a drift retrain waits for
    drift_retrain_max_attempts: int = 1  # retrains of one drift event while none is promoted

    def __post_init__(self) -> None:
        # Derived defaults that depend on data_dir or dataset.
        # A relative data folder is taken from the working directory, once, here: every URI
        # derived from it must be absolute (a file URI cannot be relative).
        object.__setattr__(self, "data_dir", Path(self.data_dir).expanduser().resolve())
        if not self.lake_uri:
            object.__setattr__(self, "lake_uri", (Path(self.data_dir) / "lake").as_uri())
        if not self.mlflow_tracking_uri:
            db = Path(self.data_dir) / "mlflow" / "mlflow.db"
            object.__setattr__(self, "mlflow_tracking_uri", f"sqlite:///{db}")
        if not self.mlflow_artifact_root:
            object.__setattr__(self, "mlflow_artifact_root", str(Path(self.data_dir) / "mlflow" / "artifacts"))
        if not self.model_name:
            object.__setattr__(self, "model_name", f"flywheel-{self.dataset}")
        self._check()

    def _check(self) -> None:
        choices = {
            "training_backend": ("local", "kubernetes"),
            "drift_backend": ("alibi", "scipy"),
            "drift_correction": ("bonferroni", "fdr"),
            "gate_metric": ("pr_auc", "roc_auc"),
            "source": ("landing", "postgres"),
            "promotion_mode": ("gate", "shadow", "approval"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise SettingsError(
                    f"{PREFIX}{name.upper()}={getattr(self, name)!r}: expected one of {', '.join(allowed)}"
                )
        fractions = self.split_fraction_values
        if len(fractions) != 3 or any(f <= 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
            raise SettingsError(
                f"{PREFIX}SPLIT_FRACTIONS={self.split_fractions!r}: expected three positive numbers summing to 1"
            )
        if self.source == "postgres" and not (self.source_postgres_uri and self.source_table):
            raise SettingsError(
                f"{PREFIX}SOURCE=postgres needs {PREFIX}SOURCE_POSTGRES_URI and {PREFIX}SOURCE_TABLE"
            )
        if not 0 < self.drift_p_value < 1:
            raise SettingsError(f"{PREFIX}DRIFT_P_VALUE must be in (0, 1), got {self.drift_p_value}")
        if self.approval_timeout_hours <= 0:
            raise SettingsError(
                f"{PREFIX}APPROVAL_TIMEOUT_HOURS must be above 0, got {self.approval_timeout_hours}"
            )
        if self.drift_retrain_max_attempts < 1:
            raise SettingsError(
                f"{PREFIX}DRIFT_RETRAIN_MAX_ATTEMPTS must be at least 1, got {self.drift_retrain_max_attempts}"
            )

    @property
    def split_fraction_values(self) -> tuple[float, ...]:
        try:
            return tuple(float(x) for x in self.split_fractions.split(","))
        except ValueError as exc:
            raise SettingsError(f"{PREFIX}SPLIT_FRACTIONS={self.split_fractions!r}: {exc}") from None

    @classmethod
    def from_env(cls, env: typing.Mapping[str, str] | None = None, **overrides: typing.Any) -> Settings:
        """Build settings from ``env`` (default ``os.environ``); ``overrides`` win."""
        env = os.environ if env is None else env
        hints = typing.get_type_hints(cls)
        values: dict[str, typing.Any] = {}
        for f in dataclasses.fields(cls):
            key = PREFIX + f.name.upper()
            if key in env and env[key] != "":
                values[f.name] = _parse(key, env[key], hints[f.name])
        values.update(overrides)
        return cls(**values)

    def to_env(self) -> dict[str, str]:
        """The FLYWHEEL_* variables that reproduce these settings in another process."""
        return {PREFIX + f.name.upper(): str(getattr(self, f.name)) for f in dataclasses.fields(self)}


def _parse(key: str, raw: str, kind: typing.Any) -> typing.Any:
    try:
        if kind is bool:
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError("expected true or false")
        if kind is Path:
            return Path(raw).expanduser()
        return kind(raw)
    except ValueError as exc:
        raise SettingsError(f"{key}={raw!r}: {exc}") from None
