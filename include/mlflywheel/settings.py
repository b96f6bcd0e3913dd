"""One typed settings object, read from ``FLYWHEEL_*`` environment variables.

Defaults give the embedded stack: the lake on local disk, MLflow on a local SQLite
store, Airflow on SQLite at 127.0.0.1:8080. Every field ``foo_bar`` is read from
``FLYWHEEL_FOO_BAR``. Standard library only: DAG files import this at parse time.

Every value is checked when the settings are built (from the environment or directly): its type,
its range (NaN and infinities are refused), its form. All the problems are reported together in
one :class:`SettingsError`, one line each, naming the variable, the value and what is allowed.

An empty variable means "unset" (the default applies, as ``${VAR:-}`` in a compose file gives);
a variable of only blanks sets a text field to the empty string (e.g. ``FLYWHEEL_K8S_SECRETS=" "``:
no secrets), which is also how :meth:`Settings.to_env` writes an emptied field.

Secrets: values may embed credentials (``postgresql://user:password@...``, ``?token=...``,
``password=...``), and the fields of :data:`SECRET_FIELDS` are secrets whole (the MLflow
password). ``repr``/``str``, error messages and :meth:`Settings.redacted_env` show them as ``***``
(:func:`redact`); :meth:`Settings.to_env` carries the real values, for a child process only.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import os
import re
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

PREFIX = "FLYWHEEL_"
REDACTED = "***"
BLANK = " "  # how to_env writes a text field emptied on purpose (an empty variable means unset)


class SettingsError(ValueError):
    """One or more FLYWHEEL_* variables have values that cannot be used (``problems``: one line each)."""

    def __init__(self, problems: str | list[str]):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        if len(self.problems) == 1:
            message = self.problems[0]
        else:
            message = f"{len(self.problems)} bad settings:\n" + "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(message)


# --- redaction -------------------------------------------------------------------------------------

# Query parameters known to carry no secret; every other parameter's value is redacted.
SAFE_QUERY_PARAMETERS = frozenset(
    {"sslmode", "connect_timeout", "application_name", "target_session_attrs", "gssencmode",
     "channel_binding", "region", "options"}
)  # fmt: skip
_DSN_PASSWORD = re.compile(r"(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


def redact(value: str) -> str:
    """``value`` with any embedded credential replaced by ``***``, for messages, logs and UIs.

    In a URI: the password of ``user:password@``, the value of every query parameter not known to
    be harmless (``?token=...``, ``X-Amz-Signature=...``; ``sslmode`` stays) and the fragment. In
    a libpq ``key=value`` string: ``password=``. An unparseable URI is shown as ``***`` altogether.
    Anything else is returned unchanged.
    """
    if not isinstance(value, str) or not value:
        return value
    if "://" not in value:
        return _DSN_PASSWORD.sub(lambda m: m.group(1) + REDACTED, value)
    try:
        parts = urlsplit(value)
        password = parts.password
    except ValueError:
        return REDACTED
    netloc = parts.netloc
    if password is not None:
        userinfo, _, host = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{REDACTED}@{host}"
    query = "&".join(_redact_parameter(item) for item in parts.query.split("&")) if parts.query else ""
    fragment = REDACTED if parts.fragment else ""
    return urlunsplit(parts._replace(netloc=netloc, query=query, fragment=fragment))


def _redact_parameter(item: str) -> str:
    name, sep, value = item.partition("=")
    if not sep or name.lower() in SAFE_QUERY_PARAMETERS:
        return item
    return f"{name}={REDACTED}" if value else item


def _default_data_dir() -> Path:
    # In a source checkout (editable install) data lives beside the project; elsewhere
    # (a training image, a wheel install) under the user's home.
    root = Path(__file__).resolve().parents[2]
    if (root / "pyproject.toml").exists():
        return root / "data"
    return Path.home() / ".flywheel"


@dataclass(frozen=True, repr=False)
class Settings:
    # --- where things live -------------------------------------------------------------
    data_dir: Path = field(default_factory=_default_data_dir)
    lake_uri: str = ""  # file:///... or s3://bucket/prefix; default: <data_dir>/lake
    s3_endpoint_url: str = ""  # for S3-compatible servers; empty = AWS
    # Bounded outages: every S3 call fails within attempts x (connect + read) + backoff (~54 s).
    s3_connect_timeout_seconds: float = 5.0
    s3_read_timeout_seconds: float = 12.0  # longest wait for the next bytes of an answer
    s3_max_attempts: int = 3  # botocore "standard" retries; the first try counts
    mlflow_tracking_uri: str = ""  # default: sqlite:///<data_dir>/mlflow/mlflow.db
    mlflow_artifact_root: str = ""  # default: <data_dir>/mlflow/artifacts
    mlflow_experiment: str = "flywheel"
    # An MLflow server with authentication (its basic-auth app): the service account's login.
    # Empty: no credentials sent (the embedded default). The password is a secret field.
    mlflow_tracking_username: str = ""
    mlflow_tracking_password: str = ""
    # MLflow REST calls: (retries + 1) x 2 x timeout + backoff (0 s, 2 s, ...) at most (~51 s by default).
    mlflow_http_timeout_seconds: int = 8  # whole seconds (MLflow), to connect and again to read
    mlflow_http_max_retries: int = 2
    mlflow_http_backoff_factor: int = 1
    model_name: str = ""  # default: flywheel-<dataset>
    dataset: str = "transactions"  # the dataset's name: a built-in spec, or the name in dataset_spec
    dataset_spec: str = ""  # path (or lake URI) of a dataset spec file (YAML); see datasets.load_spec

    # --- sources and the ingestion ledger ------------------------------------------------
    source: str = "landing"  # landing (files delivered to landing/) | postgres (a source table)
    source_postgres_uri: str = ""  # postgresql://user@host:5432/db of the source table
    source_table: str = ""  # table (optionally schema-qualified) holding the dataset's rows
    # Where a postgres source's day is validated: lake (extract -> ingest -> validate, the default)
    # | postgres (the suite runs inside PostgreSQL; only the result reaches the lake).
    source_validation: str = "lake"
    ledger_uri: str = ""  # postgresql://... adds a ledger table beside the lake's summaries
    ledger_table: str = "flywheel_ingest_ledger"
    postgres_connect_timeout_seconds: int = 10  # source and ledger; libpq's minimum is 2
    # Each statement of the ledger and the loop's own short queries; the client gives up on a silent
    # server after this + the connect timeout (mlflywheel.postgres.transaction), 40 s by default.
    postgres_statement_timeout_seconds: int = 30
    # A day's source extract (one COPY) and bulk loads may stream for minutes: a limit of their own.
    postgres_extract_timeout_seconds: int = 600
    # A long statement (the extract, bulk loads) silent for the interval gets a liveness probe on a new
    # connection; a server that does not answer it within the timeout is hung and the statement is cut
    # off (mlflywheel.postgres): a hung server costs interval + timeout, 15 s by default, not 610 s.
    postgres_liveness_interval_seconds: float = 5.0
    postgres_liveness_timeout_seconds: int = 10

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
    # Airflow queue of the local backend's train_model (Celery: "gpu" sends it to the GPU worker);
    # empty: the executor's default queue
    training_queue: str = ""
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
    training_step: str = "auto"  # auto (a CUDA graph on CUDA, eager elsewhere) | graph | eager

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
    # Roles whose members answer approval requests (FAB auth manager, comma-separated); empty: the request
    # is not assigned, and whoever the auth manager lets answer may (the embedded stack's simple auth manager).
    approver_roles: str = ""

    # --- validation --------------------------------------------------------------------
    max_failed_row_fraction: float = 0.2  # above this the whole partition is quarantined
    # Rows per chunk of ingest and validation: peak memory follows the chunk, not the partition.
    partition_chunk_rows: int = 250_000
    # How row-level expectations are evaluated: arrow (vectorised, the same rules) | gx (Great
    # Expectations on each chunk, slower: the reference the arrow engine is tested against).
    validation_engine: str = "arrow"
    # true: ingest writes the day's raw partition and validation reads it (two stages); false: one
    # streaming pass from the landed file to validated and quarantine, raw holds nothing for the day.
    keep_raw: bool = True

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
        problems = self._check_types()
        if problems:  # ranges and derived defaults need the right types first
            raise SettingsError(problems)
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
        problems = self._check()
        if problems:
            raise SettingsError(problems)

    def _check_types(self) -> list[str]:
        """Type problems; a whole number given for a float field becomes a float here."""
        hints = typing.get_type_hints(type(self))
        problems = []
        for f in dataclasses.fields(self):
            value, kind = getattr(self, f.name), hints[f.name]
            if kind is float and isinstance(value, int) and not isinstance(value, bool):
                object.__setattr__(self, f.name, float(value))
            elif kind is Path and isinstance(value, str):
                continue  # turned into a Path below
            elif not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                problems.append(f"{_shown(f.name, value)}: expected {_TYPE_WORDS[kind]}, got {type(value).__name__}")
        return problems

    def _check(self) -> list[str]:
        """Every field against its rule in :data:`CHECKS`, then the rules across fields."""
        problems = []
        for name, check in CHECKS.items():
            if not check.ok(getattr(self, name)):
                problems.append(f"{_shown(name, getattr(self, name))}: expected {check.allowed}")
        if self.source == "postgres" and not (self.source_postgres_uri and self.source_table):
            problems.append(f"{PREFIX}SOURCE=postgres needs {PREFIX}SOURCE_POSTGRES_URI and {PREFIX}SOURCE_TABLE")
        if self.source_validation == "postgres" and self.source != "postgres":
            problems.append(
                f"{PREFIX}SOURCE_VALIDATION=postgres validates a PostgreSQL source where it lives: it needs "
                f"{PREFIX}SOURCE=postgres (got {self.source!r})"
            )
        if bool(self.mlflow_tracking_username) != bool(self.mlflow_tracking_password):
            problems.append(
                f"{PREFIX}MLFLOW_TRACKING_USERNAME and {PREFIX}MLFLOW_TRACKING_PASSWORD go together: "
                "set both (an MLflow server with authentication) or neither"
            )
        return problems

    def __repr__(self) -> str:
        """Like the dataclass repr, with credentials redacted (settings end up in logs)."""
        shown = ", ".join(f"{f.name}={_redacted(getattr(self, f.name), f.name)!r}" for f in dataclasses.fields(self))
        return f"{type(self).__name__}({shown})"

    @property
    def mlflow_experiments(self) -> tuple[str, str]:
        """The MLflow experiments Flywheel writes: training runs, then drift reports."""
        return self.mlflow_experiment, f"{self.mlflow_experiment}-drift"

    @property
    def split_fraction_values(self) -> tuple[float, ...]:
        try:
            return tuple(float(x) for x in self.split_fractions.split(","))
        except ValueError as exc:
            raise SettingsError(f"{PREFIX}SPLIT_FRACTIONS={self.split_fractions!r}: {exc}") from None

    @classmethod
    def from_env(cls, env: typing.Mapping[str, str] | None = None, **overrides: typing.Any) -> Settings:
        """Build settings from ``env`` (default ``os.environ``); ``overrides`` win.

        An empty variable is ignored; blanks set a text field to ``""``. All bad values, those that
        do not parse and those out of range, are reported together in one :class:`SettingsError`.
        """
        env = os.environ if env is None else env
        hints = typing.get_type_hints(cls)
        values: dict[str, typing.Any] = {}
        problems: list[str] = []
        for f in dataclasses.fields(cls):
            key = PREFIX + f.name.upper()
            if key in env and env[key] != "":
                try:
                    values[f.name] = _parse(key, env[key], hints[f.name])
                except SettingsError as exc:
                    problems.extend(exc.problems)
        if problems:
            # Variables are parsed before overrides apply: a bad one fails even when overridden.
            # The fields that did parse are checked too, so that every problem is reported at once.
            try:
                cls(**{**values, **overrides})
            except SettingsError as exc:
                problems.extend(exc.problems)
            raise SettingsError(problems)
        values.update(overrides)
        return cls(**values)

    def to_env(self) -> dict[str, str]:
        """The FLYWHEEL_* variables that reproduce these settings in another process.

        The real values, credentials included: pass them to a child's environment, never to a
        log (use :meth:`redacted_env` there). An emptied text field is written as a blank.
        """
        return {PREFIX + f.name.upper(): _env_value(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def redacted_env(self) -> dict[str, str]:
        """:meth:`to_env` with credentials replaced by ``***``: what may be logged or rendered."""
        return {PREFIX + f.name.upper(): _env_value(_redacted(getattr(self, f.name), f.name))
                for f in dataclasses.fields(self)}  # fmt: skip


def _parse(key: str, raw: str, kind: typing.Any) -> typing.Any:
    if kind is str:
        return "" if not raw.strip() else raw
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
        raise SettingsError(f"{key}={redact(raw)!r}: expected {_TYPE_WORDS.get(kind, kind)} ({exc})") from None


# --- the rule of every field ----------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """What a field allows: ``ok(value)`` and the words for it (after "expected")."""

    allowed: str
    ok: Callable[[typing.Any], bool]


_TYPE_WORDS: dict[typing.Any, str] = {
    int: "an integer", float: "a number", str: "text", bool: "true or false", Path: "a path",
}  # fmt: skip


#: Fields whose whole value is a secret: shown as ``***`` whenever set.
SECRET_FIELDS = frozenset({"mlflow_tracking_password"})


def _shown(name: str, value: typing.Any) -> str:
    return f"{PREFIX}{name.upper()}={_redacted(value, name)!r}"


def _redacted(value: typing.Any, name: str = "") -> typing.Any:
    if name in SECRET_FIELDS and value:
        return REDACTED
    return redact(value) if isinstance(value, str) else value


def _env_value(value: typing.Any) -> str:
    return BLANK if value == "" else str(value)


def _number(low: float, high: float = math.inf, *, low_open: bool = False, high_open: bool = False) -> Check:
    """A finite number in the interval; NaN and infinities never pass."""
    left, right = ("(" if low_open else "["), (")" if high_open else "]")
    words = f"a finite number in {left}{low:g}, {high:g}{right}" if high != math.inf else (
        f"a finite number {'above' if low_open else 'at least'} {low:g}"
    )

    def ok(v: float) -> bool:
        return (
            math.isfinite(v)
            and (v > low if low_open else v >= low)
            and (v < high if high_open else v <= high)
        )

    return Check(words, ok)


def _integer(low: int, high: int | None = None) -> Check:
    words = f"an integer from {low} to {high}" if high is not None else f"an integer of at least {low}"
    return Check(words, lambda v: v >= low and (high is None or v <= high))


def _choice(*allowed: str) -> Check:
    return Check(f"one of {', '.join(allowed)}", lambda v: v in allowed)


def _text(words: str = "a non-empty value", pattern: str | None = None, *, empty: bool = False) -> Check:
    compiled = re.compile(pattern) if pattern else None

    def ok(v: str) -> bool:
        if v == "":
            return empty
        if v != v.strip():
            return False
        return compiled.fullmatch(v) is not None if compiled else True

    return Check(words + (" (or empty)" if empty else ""), ok)


def _uri(schemes: tuple[str, ...], words: str, *, host: bool = True, empty: bool = False) -> Check:
    def ok(v: str) -> bool:
        if v == "":
            return empty
        try:
            parts = urlsplit(v)
        except ValueError:
            return False
        return parts.scheme in schemes and (bool(parts.hostname) if host else True) and v == v.strip()

    return Check(words + (" (or empty)" if empty else ""), ok)


def _s3_endpoint(v: str) -> bool:
    if v == "":
        return True
    if not _uri(("http", "https"), "").ok(v):
        return False
    parts = urlsplit(v)
    return not (parts.query or parts.fragment or "@" in parts.netloc)


def _lake_uri(v: str) -> bool:
    try:
        parts = urlsplit(v)
    except ValueError:
        return False
    if parts.scheme == "s3":
        return bool(parts.netloc)
    return parts.scheme in ("", "file") and bool(parts.path)


def _iso_date(v: str) -> bool:
    try:
        dt.date.fromisoformat(v)
    except ValueError:
        return False
    return len(v) == 10


_CRON_FIELD = re.compile(r"[0-9*/,\-?LW#A-Za-z]+")
_CRON_ALIASES = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}


def _cron(v: str) -> bool:
    if v.strip() in _CRON_ALIASES:
        return True
    fields = v.split()
    return len(fields) in (5, 6) and all(_CRON_FIELD.fullmatch(f) for f in fields)


def _json(kind: type, item_ok: Callable[[typing.Any], bool]) -> Callable[[str], bool]:
    def ok(v: str) -> bool:
        if not v.strip():
            return True
        try:
            value = json.loads(v)
        except json.JSONDecodeError:
            return False
        items = value.values() if isinstance(value, dict) else value
        return isinstance(value, kind) and all(item_ok(item) for item in items)

    return ok


def _split_fractions(v: str) -> bool:
    try:
        values = [float(x) for x in v.split(",")]
    except ValueError:
        return False
    return len(values) == 3 and all(math.isfinite(x) and x > 0 for x in values) and abs(sum(values) - 1) <= 1e-6


_DNS_LABEL = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
_DNS_SUBDOMAIN = r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?"
_NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]*"
_QUANTITY = r"\+?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+|m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?"
_POSTGRES = ("postgresql", "postgres")
_PROBABILITY = _number(0, 1)


_DSN_ITEM = re.compile(r"\s*\w+\s*=\s*('(?:[^'\\]|\\.)*'|\S+)")


def _postgres_uri(v: str) -> bool:
    """A postgresql:// URI or a libpq ``key=value ...`` string (what psycopg2 accepts); empty is off."""
    if v == "":
        return True
    if "://" in v:
        return _uri(_POSTGRES, "", host=False).ok(v)
    rest = v
    while rest.strip():
        match = _DSN_ITEM.match(rest)
        if not match:
            return False
        rest = rest[match.end() :]
    return True


def _role_list(v: str) -> bool:
    return all(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_. -]{0,63}", n.strip()) for n in v.split(",") if n.strip())


def _secret_list(v: str) -> bool:
    return all(re.fullmatch(_DNS_SUBDOMAIN, n.strip()) for n in v.split(",") if n.strip())


#: The rule of every field (a test checks that none is missing): type first, then this.
CHECKS: dict[str, Check] = {
    # where things live
    "data_dir": Check("a folder path", lambda v: str(v) != ""),
    "lake_uri": Check("file:///path, a plain path or s3://bucket/prefix", _lake_uri),
    "s3_endpoint_url": Check(
        "an http(s)://host[:port] URL without user, password or query string (botocore refuses a query; "
        "credentials belong in the AWS_* variables or Kubernetes secrets) (or empty)",
        _s3_endpoint,
    ),
    "s3_connect_timeout_seconds": _number(0, 600, low_open=True),
    "s3_read_timeout_seconds": _number(0, 3600, low_open=True),
    "s3_max_attempts": _integer(1, 20),
    "mlflow_tracking_uri": _text("an MLflow tracking URI"),
    "mlflow_http_timeout_seconds": _integer(1, 3600),
    "mlflow_http_max_retries": _integer(0, 10),  # MLflow refuses more than 10
    "mlflow_http_backoff_factor": _integer(0, 120),  # MLflow refuses more than 120
    "mlflow_artifact_root": _text("an artifact location (path or URI)"),
    "mlflow_experiment": _text("an experiment name"),
    "mlflow_tracking_username": _text("an MLflow user name", r"[^\s:]+", empty=True),
    "mlflow_tracking_password": _text("a password of at least 12 characters (MLflow's rule)", r".{12,}", empty=True),
    "model_name": _text("a registered model name"),
    "dataset": _text("a dataset name (letters, digits, _ . -)", _NAME),
    "dataset_spec": _text("a path or URI", empty=True),
    # sources and the ledger
    "source": _choice("landing", "postgres"),
    "source_postgres_uri": Check("a postgresql:// URI or libpq key=value string (or empty)", _postgres_uri),
    "source_table": _text("a table name (schema.table)", empty=True),
    "source_validation": _choice("lake", "postgres"),
    "ledger_uri": Check("a postgresql:// URI or libpq key=value string (or empty)", _postgres_uri),
    "ledger_table": _text("a table name"),
    "postgres_connect_timeout_seconds": _integer(2, 3600),  # libpq takes 1 as 2
    "postgres_statement_timeout_seconds": _integer(1),
    "postgres_extract_timeout_seconds": _integer(1),
    "postgres_liveness_interval_seconds": _number(0, 3600, low_open=True),
    "postgres_liveness_timeout_seconds": _integer(2, 3600),  # a libpq connect timeout: 1 is taken as 2
    # Airflow
    "airflow_api_url": _uri(("http", "https"), "an http(s)://host[:port] URL"),
    "airflow_conn_id": _text("a connection id"),
    "start_date": Check("a date YYYY-MM-DD", _iso_date),
    "ingest_schedule": Check("a cron expression (5 fields) or @daily, @hourly, ...", _cron),
    "train_schedule": Check("a cron expression (5 fields) or @daily, @hourly, ...", _cron),
    "drift_schedule": Check("a cron expression (5 fields) or @daily, @hourly, ...", _cron),
    "landing_poke_seconds": _integer(1),
    "landing_timeout_hours": _number(0, low_open=True),
    "task_retries": _integer(0),
    "retry_delay_seconds": _integer(0),
    # training
    "training_backend": _choice("local", "kubernetes"),
    "training_queue": _text("an Airflow queue name (letters, digits, _ . -)", _NAME, empty=True),
    "training_timeout_minutes": _integer(1),
    "window_days": _integer(1),
    "epochs": _integer(1),
    "learning_rate": _number(0, low_open=True),
    "batch_size": _integer(1),
    "min_steps_per_epoch": _integer(1),
    "seed": _integer(0, 2**32 - 1),  # numpy's seed range
    "split_fractions": Check("three positive numbers summing to 1, e.g. 0.7,0.15,0.15", _split_fractions),
    "min_training_rows": _integer(1),
    "reference_sample_size": _integer(1),
    "training_step": _choice("auto", "graph", "eager"),
    # Kubernetes
    "k8s_namespace": _text("a Kubernetes namespace (lower-case DNS label)", _DNS_LABEL),
    "k8s_image": _text("a container image reference", r"\S+"),
    "k8s_image_pull_policy": _choice("Always", "IfNotPresent", "Never"),
    "k8s_service_account": _text("a service account name (lower-case DNS name)", _DNS_SUBDOMAIN),
    "k8s_gpus": _integer(0),
    "k8s_cpu_request": _text("a Kubernetes quantity such as 4 or 500m", _QUANTITY),
    "k8s_cpu_limit": _text("a Kubernetes quantity such as 8 or 1500m", _QUANTITY),
    "k8s_memory_request": _text("a Kubernetes quantity such as 16Gi", _QUANTITY),
    "k8s_memory_limit": _text("a Kubernetes quantity such as 32Gi", _QUANTITY),
    "k8s_node_selector": Check(
        'a JSON object of string values, e.g. {"pool": "gpu"} (or blank)', _json(dict, lambda v: isinstance(v, str))
    ),
    "k8s_tolerations": Check(
        "a JSON list of toleration objects (or blank)", _json(list, lambda v: isinstance(v, dict))
    ),
    "k8s_secrets": Check("comma-separated Kubernetes secret names (or blank)", _secret_list),
    "k8s_pool": _text("an Airflow pool name"),
    "k8s_startup_timeout_seconds": _integer(1),
    "k8s_conn_id": _text("a connection id"),
    "k8s_in_cluster": Check("true or false", lambda v: True),
    # promotion gate
    "gate_metric": _choice("pr_auc", "roc_auc"),
    "gate_margin": _number(0, 1, high_open=True),
    "gate_min_holdout_rows": _integer(1),
    "gate_min_holdout_positives": _integer(1),
    "gate_bootstrap_samples": _integer(1),
    "gate_confidence": _number(0, 1, low_open=True, high_open=True),
    "gate_holdout_extra_days": _integer(0),
    "floor_pr_auc": _PROBABILITY,
    "floor_roc_auc": _PROBABILITY,
    "promotion_mode": _choice("gate", "shadow", "approval"),
    "approval_timeout_hours": _number(0, low_open=True),
    "approver_roles": Check("comma-separated FAB role names (or blank)", _role_list),
    # validation
    "max_failed_row_fraction": _PROBABILITY,
    "partition_chunk_rows": _integer(1),
    "validation_engine": _choice("arrow", "gx"),
    "keep_raw": Check("true or false", lambda v: True),
    # drift
    "drift_backend": _choice("alibi", "scipy"),
    "drift_p_value": _number(0, 1, low_open=True, high_open=True),
    "drift_correction": _choice("bonferroni", "fdr"),
    "drift_window_days": _integer(1),
    "drift_max_rows": _integer(1),
    "drift_cooldown_hours": _number(0),
    "drift_retrain_window_days": _integer(1),
    "drift_retrain_wait_days": _integer(0),
    "drift_retrain_max_attempts": _integer(1),
}
