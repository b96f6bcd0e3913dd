"""Settings read from ``FLYWHEEL_*`` variables: parsing per field type, checks, derived defaults, round trip.

Every test passes an explicit ``env`` mapping (never ``os.environ``, which conftest sets up), so the
results do not depend on the machine running them.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from mlflywheel.settings import PREFIX, Settings, SettingsError


@pytest.fixture()
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


def env_for(data_dir: Path, **variables: str) -> dict[str, str]:
    """An environment with FLYWHEEL_DATA_DIR set and ``variables`` given by field name."""
    env = {f"{PREFIX}DATA_DIR": str(data_dir)}
    env.update({PREFIX + name.upper(): value for name, value in variables.items()})
    return env


# --- parsing by field type ---------------------------------------------------------------------


def test_defaults_without_variables(data_dir: Path) -> None:
    s = Settings.from_env(env_for(data_dir))
    assert s.data_dir == data_dir
    assert s.dataset == "transactions"
    assert s.training_backend == "local"
    assert s.epochs == 8 and s.learning_rate == 2e-3
    assert s.k8s_in_cluster is True
    assert s.keep_raw is True  # two stages, raw kept, unless asked otherwise
    assert s.split_fraction_values == (0.7, 0.15, 0.15)


def test_int_float_str_fields_are_parsed_to_their_types(data_dir: Path) -> None:
    s = Settings.from_env(
        env_for(
            data_dir, epochs="3", learning_rate="0.5", landing_timeout_hours="1.25", mlflow_experiment="exp-x"
        )
    )
    assert s.epochs == 3 and type(s.epochs) is int
    assert s.learning_rate == 0.5 and type(s.learning_rate) is float
    assert s.landing_timeout_hours == 1.25
    assert s.mlflow_experiment == "exp-x"
    # A whole number is accepted for a float field and becomes a float.
    assert type(Settings.from_env(env_for(data_dir, gate_margin="0")).gate_margin) is float


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1", True), ("true", True), ("TRUE", True), ("Yes", True), ("on", True),
        ("0", False), ("false", False), ("False", False), ("NO", False), ("off", False),
    ],
)  # fmt: skip
def test_bool_field_accepts_the_usual_words(data_dir: Path, raw: str, expected: bool) -> None:
    s = Settings.from_env(env_for(data_dir, k8s_in_cluster=raw))
    assert s.k8s_in_cluster is expected


def test_path_field_becomes_a_path_with_home_expanded(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    s = Settings.from_env({f"{PREFIX}DATA_DIR": "~/fw-data"})
    assert isinstance(s.data_dir, Path)
    assert s.data_dir == tmp_path / "home" / "fw-data"


def test_keep_raw_false_asks_for_the_single_pass(data_dir: Path) -> None:
    assert Settings.from_env(env_for(data_dir, keep_raw="false")).keep_raw is False
    assert Settings.from_env(env_for(data_dir, keep_raw="true")).keep_raw is True


def test_empty_variable_is_ignored(data_dir: Path) -> None:
    s = Settings.from_env(env_for(data_dir, epochs="", dataset="", k8s_in_cluster="", lake_uri=""))
    assert s.epochs == 8
    assert s.dataset == "transactions"
    assert s.k8s_in_cluster is True
    assert s.lake_uri == (data_dir / "lake").as_uri()


def test_unrelated_variables_are_ignored(data_dir: Path) -> None:
    env = env_for(data_dir)
    env.update({"EPOCHS": "99", "FLYWHEEL_NOT_A_FIELD": "x", "flywheel_epochs": "99"})
    assert Settings.from_env(env).epochs == 8


def test_overrides_win_over_the_environment(data_dir: Path) -> None:
    env = env_for(data_dir, epochs="3", dataset="loans")
    s = Settings.from_env(env, epochs=11, training_backend="kubernetes")
    assert s.epochs == 11
    assert s.training_backend == "kubernetes"
    assert s.dataset == "loans"  # not overridden: still from the environment


def test_bad_variable_fails_even_when_overridden(data_dir: Path) -> None:
    # Variables are parsed before overrides are applied: a bad value fails even when overridden.
    with pytest.raises(SettingsError, match="FLYWHEEL_EPOCHS"):
        Settings.from_env(env_for(data_dir, epochs="many"), epochs=5)


@pytest.mark.parametrize(
    ("field", "raw"),
    [
        ("epochs", "eight"),
        ("epochs", "1.5"),
        ("batch_size", "1e3x"),
        ("learning_rate", "fast"),
        ("drift_cooldown_hours", "1h"),
        ("k8s_in_cluster", "maybe"),
        ("k8s_in_cluster", "2"),
        ("keep_raw", "sometimes"),
    ],
)
def test_bad_value_raises_settings_error_naming_the_variable(data_dir: Path, field: str, raw: str) -> None:
    key = PREFIX + field.upper()
    with pytest.raises(SettingsError) as info:
        Settings.from_env(env_for(data_dir, **{field: raw}))
    assert key in str(info.value)
    assert repr(raw) in str(info.value)


def test_settings_error_is_a_value_error() -> None:
    assert issubclass(SettingsError, ValueError)


def test_settings_are_frozen(data_dir: Path) -> None:
    s = Settings.from_env(env_for(data_dir))
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.epochs = 1  # type: ignore[misc]


# --- checks ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "good", "bad"),
    [
        ("training_backend", ("local", "kubernetes"), "docker"),
        ("drift_backend", ("alibi", "scipy"), "evidently"),
        ("drift_correction", ("bonferroni", "fdr"), "holm"),
        ("gate_metric", ("pr_auc", "roc_auc"), "accuracy"),
        ("source", ("landing",), "s3"),
        ("source_validation", ("lake",), "spark"),
    ],
)
def test_choice_fields(data_dir: Path, field: str, good: tuple[str, ...], bad: str) -> None:
    for value in good:
        assert getattr(Settings.from_env(env_for(data_dir, **{field: value})), field) == value
    with pytest.raises(SettingsError, match=PREFIX + field.upper()) as info:
        Settings.from_env(env_for(data_dir, **{field: bad}))
    assert repr(bad) in str(info.value)
    for value in good:
        assert value in str(info.value)  # the message lists the allowed values
    # Choices are case-sensitive.
    with pytest.raises(SettingsError):
        Settings.from_env(env_for(data_dir, **{field: good[0].upper()}))


def test_choice_is_checked_for_overrides_and_direct_construction_too(data_dir: Path) -> None:
    with pytest.raises(SettingsError, match="FLYWHEEL_GATE_METRIC"):
        Settings.from_env(env_for(data_dir), gate_metric="f1")
    with pytest.raises(SettingsError, match="FLYWHEEL_DRIFT_BACKEND"):
        Settings(data_dir=data_dir, drift_backend="nope")


def test_drift_retrain_max_attempts_is_at_least_one(data_dir: Path) -> None:
    assert Settings.from_env(env_for(data_dir)).drift_retrain_max_attempts == 1  # one retrain per event
    assert Settings.from_env(env_for(data_dir, drift_retrain_max_attempts="3")).drift_retrain_max_attempts == 3
    with pytest.raises(SettingsError, match="FLYWHEEL_DRIFT_RETRAIN_MAX_ATTEMPTS"):
        Settings.from_env(env_for(data_dir, drift_retrain_max_attempts="0"))


@pytest.mark.parametrize("value", ["0.8,0.1,0.1", "0.6, 0.2, 0.2", "0.5,0.25,0.25"])
def test_split_fractions_accepted(data_dir: Path, value: str) -> None:
    s = Settings.from_env(env_for(data_dir, split_fractions=value))
    assert len(s.split_fraction_values) == 3
    assert sum(s.split_fraction_values) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "value",
    [
        "0.5,0.5",  # two parts
        "0.5,0.25,0.15,0.1",  # four parts
        "0.7,0.2,0.2",  # sums to 1.1
        "0.7,0.1,0.1",  # sums to 0.9
        "1.0,0.0,0.0",  # zero parts
        "1.2,-0.1,-0.1",  # negative parts
        "0.7,x,0.15",  # not numbers
        "0.7;0.15;0.15",  # wrong separator
    ],
)
def test_split_fractions_rejected(data_dir: Path, value: str) -> None:
    with pytest.raises(SettingsError, match="FLYWHEEL_SPLIT_FRACTIONS") as info:
        Settings.from_env(env_for(data_dir, split_fractions=value))
    assert repr(value) in str(info.value)


def test_postgres_source_needs_uri_and_table(data_dir: Path) -> None:
    uri = "postgresql://flywheel@127.0.0.1:5432/source"
    for partial in ({}, {"source_postgres_uri": uri}, {"source_table": "public.transactions"}):
        with pytest.raises(SettingsError) as info:
            Settings.from_env(env_for(data_dir, source="postgres", **partial))
        message = str(info.value)
        assert "FLYWHEEL_SOURCE_POSTGRES_URI" in message and "FLYWHEEL_SOURCE_TABLE" in message
    s = Settings.from_env(env_for(data_dir, source="postgres", source_postgres_uri=uri, source_table="t"))
    assert (s.source, s.source_postgres_uri, s.source_table) == ("postgres", uri, "t")
    # The landing source does not need them.
    assert Settings.from_env(env_for(data_dir, source="landing")).source_table == ""


def test_source_validation_in_postgres_needs_the_postgres_source(data_dir: Path) -> None:
    uri = "postgresql://flywheel@127.0.0.1:5432/source"
    assert Settings.from_env(env_for(data_dir)).source_validation == "lake"  # the default
    pg = {"source": "postgres", "source_postgres_uri": uri, "source_table": "t"}
    for mode in ("lake", "postgres"):
        assert Settings.from_env(env_for(data_dir, source_validation=mode, **pg)).source_validation == mode
    with pytest.raises(SettingsError, match="FLYWHEEL_SOURCE_VALIDATION=postgres .* needs FLYWHEEL_SOURCE=postgres"):
        Settings.from_env(env_for(data_dir, source_validation="postgres"))  # files delivered to landing


@pytest.mark.parametrize("value", ["0", "1", "-0.1", "1.5", "nan"])
def test_drift_p_value_outside_open_unit_interval_is_rejected(data_dir: Path, value: str) -> None:
    with pytest.raises(SettingsError, match="FLYWHEEL_DRIFT_P_VALUE"):
        Settings.from_env(env_for(data_dir, drift_p_value=value))


@pytest.mark.parametrize("value", ["0.0001", "0.05", "0.9999"])
def test_drift_p_value_inside_interval_is_accepted(data_dir: Path, value: str) -> None:
    assert Settings.from_env(env_for(data_dir, drift_p_value=value)).drift_p_value == float(value)


# --- derived defaults --------------------------------------------------------------------------


def test_derived_defaults_follow_data_dir_and_dataset(data_dir: Path) -> None:
    s = Settings.from_env(env_for(data_dir, dataset="loans"))
    assert s.lake_uri == (data_dir / "lake").as_uri()
    assert s.lake_uri.startswith("file:///")
    assert s.mlflow_tracking_uri == f"sqlite:///{data_dir / 'mlflow' / 'mlflow.db'}"
    assert s.mlflow_tracking_uri.startswith("sqlite:////")  # absolute path: four slashes
    assert s.mlflow_artifact_root == str(data_dir / "mlflow" / "artifacts")
    assert s.model_name == "flywheel-loans"


def test_explicit_values_replace_derived_defaults(data_dir: Path) -> None:
    s = Settings.from_env(
        env_for(
            data_dir,
            lake_uri="s3://bucket/lake",
            mlflow_tracking_uri="http://127.0.0.1:5000",
            mlflow_artifact_root="s3://bucket/mlflow",
            model_name="fraud",
        )
    )
    assert s.lake_uri == "s3://bucket/lake"
    assert s.mlflow_tracking_uri == "http://127.0.0.1:5000"
    assert s.mlflow_artifact_root == "s3://bucket/mlflow"
    assert s.model_name == "fraud"


def test_derived_defaults_from_direct_construction(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path, dataset="loans")
    assert s.lake_uri == (tmp_path / "lake").as_uri()
    assert s.model_name == "flywheel-loans"
    assert Settings(data_dir=tmp_path).model_name == "flywheel-transactions"


def test_relative_data_dir_is_usable_or_a_settings_error(data_dir: Path) -> None:
    try:
        s = Settings.from_env({f"{PREFIX}DATA_DIR": "relative/data"})
    except SettingsError as exc:
        assert "FLYWHEEL_DATA_DIR" in str(exc)
    else:
        assert s.lake_uri.startswith("file:///")


# --- to_env ------------------------------------------------------------------------------------


def test_to_env_names_every_field_with_string_values(data_dir: Path) -> None:
    s = Settings.from_env(env_for(data_dir))
    env = s.to_env()
    assert set(env) == {PREFIX + f.name.upper() for f in dataclasses.fields(Settings)}
    assert all(isinstance(v, str) for v in env.values())
    assert env["FLYWHEEL_DATA_DIR"] == str(data_dir)
    assert env["FLYWHEEL_K8S_IN_CLUSTER"] == "True"
    assert env["FLYWHEEL_LAKE_URI"] == (data_dir / "lake").as_uri()  # derived values are written out


def test_to_env_round_trips_defaults(data_dir: Path) -> None:
    s = Settings.from_env(env_for(data_dir))
    assert Settings.from_env(s.to_env()) == s


def test_to_env_round_trips_non_default_values(data_dir: Path) -> None:
    s = Settings.from_env(
        env_for(
            data_dir,
            dataset="loans",
            source="postgres",
            source_postgres_uri="postgresql://u@127.0.0.1:5432/db",
            source_table="public.loans",
            training_backend="kubernetes",
            k8s_in_cluster="false",
            epochs="3",
            learning_rate="0.000123456789",
            gate_margin="0.1",
            drift_p_value="0.01",
            drift_correction="fdr",
            split_fractions="0.6,0.2,0.2",
            k8s_node_selector='{"pool": "gpu"}',
            s3_endpoint_url="http://127.0.0.1:9000",
        )
    )
    again = Settings.from_env(s.to_env())
    assert again == s
    assert again.k8s_in_cluster is False and again.learning_rate == 0.000123456789
    # The round trip survives a second pass too (derived values were written out explicitly).
    assert Settings.from_env(again.to_env()) == s


def test_to_env_round_trips_an_emptied_field(data_dir: Path) -> None:
    # An empty k8s_secrets means "expose no secrets to the training pod".
    s = Settings(data_dir=data_dir, k8s_secrets="")
    assert Settings.from_env(s.to_env()) == s
    for name in ("k8s_node_selector", "k8s_tolerations", "dataset_spec", "source_table"):
        emptied = Settings(data_dir=data_dir, **{name: ""})
        assert Settings.from_env(emptied.to_env()) == emptied, name


def test_blank_variable_sets_a_text_field_to_empty_while_an_empty_one_is_unset(data_dir: Path) -> None:
    # ${VAR:-} in a compose file gives "": the default applies. Only blanks mean "empty on purpose".
    assert Settings.from_env(env_for(data_dir, k8s_secrets="")).k8s_secrets == "flywheel-mlflow,flywheel-s3"
    assert Settings.from_env(env_for(data_dir, k8s_secrets="  ")).k8s_secrets == ""


# --- every value checked when loaded (issue 9, item 10) ------------------------------------------


@pytest.mark.parametrize(
    ("field", "raw"),
    [
        ("floor_pr_auc", "nan"), ("floor_pr_auc", "1.5"), ("floor_pr_auc", "-0.1"),
        ("floor_roc_auc", "inf"), ("floor_roc_auc", "NaN"),
        ("gate_margin", "-0.01"), ("gate_margin", "nan"), ("gate_margin", "1"),
        ("max_failed_row_fraction", "7"), ("max_failed_row_fraction", "-0.5"), ("max_failed_row_fraction", "nan"),
        ("gate_confidence", "0"), ("gate_confidence", "1"), ("gate_confidence", "nan"),
        ("learning_rate", "0"), ("learning_rate", "-1e-3"), ("learning_rate", "inf"),
        ("landing_timeout_hours", "0"), ("landing_timeout_hours", "-inf"),
        ("approval_timeout_hours", "nan"),
        ("drift_cooldown_hours", "-1"), ("drift_cooldown_hours", "nan"),
        ("epochs", "0"), ("window_days", "0"), ("batch_size", "0"), ("min_steps_per_epoch", "0"),
        ("min_training_rows", "0"), ("reference_sample_size", "0"), ("seed", "-1"), ("training_step", "fast"),
        ("landing_poke_seconds", "0"), ("task_retries", "-1"), ("retry_delay_seconds", "-5"),
        ("training_timeout_minutes", "0"), ("k8s_gpus", "-1"), ("k8s_startup_timeout_seconds", "0"),
        ("gate_min_holdout_rows", "0"), ("gate_min_holdout_positives", "0"), ("gate_bootstrap_samples", "0"),
        ("gate_holdout_extra_days", "-1"),
        ("drift_window_days", "0"), ("drift_max_rows", "0"), ("drift_retrain_window_days", "0"),
        ("drift_retrain_wait_days", "-1"),
        ("dataset", " "), ("dataset", "../etc"), ("mlflow_experiment", " "), ("ledger_table", " "),
        ("airflow_conn_id", " "), ("airflow_api_url", "localhost:8080"), ("airflow_api_url", "ftp://x"),
        ("lake_uri", "gs://bucket/lake"), ("lake_uri", "s3:///no-bucket"),
        ("s3_endpoint_url", "minio:9000"), ("s3_endpoint_url", "http://minio:9000/?token=abc"),
        ("s3_endpoint_url", "http://key:secret@minio:9000"),
        ("source_postgres_uri", "mysql://u@h/db"), ("ledger_uri", "http://h/db"),
        ("start_date", "2026-13-01"), ("start_date", "yesterday"),
        ("ingest_schedule", "every day"), ("train_schedule", "0 2 * *"), ("drift_schedule", " "),
        ("k8s_namespace", "Flywheel_NS"), ("k8s_image", " "), ("k8s_image_pull_policy", "Sometimes"),
        ("k8s_service_account", "Bad Account"), ("k8s_cpu_request", "four"), ("k8s_cpu_limit", "-8"),
        ("k8s_memory_request", "16 GB"), ("k8s_memory_limit", "lots"),
        ("k8s_node_selector", "gpu=true"), ("k8s_node_selector", '{"gpu": true}'),
        ("k8s_tolerations", '{"key": "gpu"}'), ("k8s_tolerations", "[1, 2]"),
        ("k8s_secrets", "flywheel-s3,Bad_Name"), ("k8s_pool", " "), ("k8s_conn_id", " "),
        ("s3_connect_timeout_seconds", "0"), ("s3_connect_timeout_seconds", "nan"),
        ("s3_read_timeout_seconds", "-1"), ("s3_read_timeout_seconds", "inf"), ("s3_max_attempts", "0"),
        ("mlflow_http_timeout_seconds", "0"), ("mlflow_http_max_retries", "-1"),
        ("mlflow_http_max_retries", "11"), ("mlflow_http_backoff_factor", "-1"),
        ("postgres_connect_timeout_seconds", "1"), ("postgres_statement_timeout_seconds", "0"),
        ("approver_roles", "approver,role:x"), ("approver_roles", "a/b"),
        ("postgres_extract_timeout_seconds", "0"),
        ("postgres_liveness_interval_seconds", "0"), ("postgres_liveness_interval_seconds", "nan"),
        ("postgres_liveness_timeout_seconds", "1"), ("postgres_liveness_timeout_seconds", "2.5"),
    ],
)  # fmt: skip
def test_out_of_range_value_is_refused_naming_variable_value_and_what_is_allowed(
    data_dir: Path, field: str, raw: str
) -> None:
    key = PREFIX + field.upper()
    with pytest.raises(SettingsError) as info:
        Settings.from_env(env_for(data_dir, **{field: raw}))
    message = str(info.value)
    assert key in message
    assert info.value.problems and all(key in p for p in info.value.problems)
    assert "expected" in message  # says what is allowed


def test_every_field_has_a_deliberate_check() -> None:
    from mlflywheel.settings import CHECKS

    assert set(CHECKS) == {f.name for f in dataclasses.fields(Settings)}


def test_all_bad_values_are_reported_together(data_dir: Path) -> None:
    env = env_for(
        data_dir, floor_pr_auc="nan", gate_margin="-0.1", max_failed_row_fraction="7", epochs="eight", seed="-3"
    )
    with pytest.raises(SettingsError) as info:
        Settings.from_env(env)
    problems = info.value.problems
    assert len(problems) == 5, problems
    for key, shown in [
        ("FLYWHEEL_FLOOR_PR_AUC", "nan"),
        ("FLYWHEEL_GATE_MARGIN", "-0.1"),
        ("FLYWHEEL_MAX_FAILED_ROW_FRACTION", "7"),
        ("FLYWHEEL_EPOCHS", "'eight'"),
        ("FLYWHEEL_SEED", "-3"),
    ]:
        (line,) = [p for p in problems if p.startswith(key + "=")]
        assert shown in line and "expected" in line
    assert str(info.value).count("\n") >= 5  # one line per problem


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("floor_pr_auc", "0"), ("floor_pr_auc", "1"), ("gate_margin", "0"), ("max_failed_row_fraction", "0"),
        ("max_failed_row_fraction", "1"), ("task_retries", "0"), ("retry_delay_seconds", "0"), ("seed", "0"),
        ("k8s_gpus", "0"), ("drift_cooldown_hours", "0"), ("gate_holdout_extra_days", "0"),
        ("drift_retrain_wait_days", "0"), ("ingest_schedule", "@daily"), ("train_schedule", "*/15 2-4 * * 1-5"),
        ("k8s_cpu_request", "500m"), ("k8s_memory_limit", "1.5Gi"), ("k8s_memory_request", "128974848"),
        ("k8s_node_selector", "{}"), ("k8s_tolerations", "[]"), ("k8s_secrets", " "),
        ("lake_uri", "s3://bucket"), ("lake_uri", "/srv/lake"), ("s3_endpoint_url", "https://s3.example:9000"),
        ("source_postgres_uri", "postgres://u@h:5432/db"), ("ledger_uri", "postgresql://u@h/db?sslmode=require"),
        ("dataset", "my_data.v2"), ("mlflow_http_max_retries", "0"), ("s3_read_timeout_seconds", "0.5"),
        ("approver_roles", "approver, Release Managers"), ("approver_roles", " "),
        ("postgres_liveness_interval_seconds", "0.5"), ("postgres_liveness_timeout_seconds", "2"),
    ],
)  # fmt: skip
def test_edge_values_inside_the_range_are_accepted(data_dir: Path, field: str, value: str) -> None:
    Settings.from_env(env_for(data_dir, **{field: value}))


def test_direct_construction_checks_types_and_ranges(data_dir: Path) -> None:
    with pytest.raises(SettingsError, match=r"FLYWHEEL_EPOCHS='3': expected an integer"):
        Settings(data_dir=data_dir, epochs="3")  # type: ignore[arg-type]
    with pytest.raises(SettingsError, match="FLYWHEEL_K8S_IN_CLUSTER"):
        Settings(data_dir=data_dir, k8s_in_cluster="false")  # type: ignore[arg-type]
    with pytest.raises(SettingsError, match="FLYWHEEL_FLOOR_PR_AUC=nan"):
        Settings(data_dir=data_dir, floor_pr_auc=float("nan"))
    with pytest.raises(SettingsError, match="FLYWHEEL_EPOCHS"):
        Settings(data_dir=data_dir, epochs=True)  # a bool is not a count
    # A whole number for a float field is taken, as a float.
    s = Settings(data_dir=data_dir, floor_pr_auc=0)
    assert s.floor_pr_auc == 0.0 and type(s.floor_pr_auc) is float


def test_nan_floor_can_no_longer_disable_the_gate(data_dir: Path) -> None:
    # The case: nan compared False with everything, so no candidate ever fell below the floor.
    for raw in ("nan", "NaN", "inf", "-inf"):
        with pytest.raises(SettingsError, match="FLYWHEEL_FLOOR_PR_AUC"):
            Settings.from_env(env_for(data_dir, floor_pr_auc=raw))


# --- secrets never in repr or logs (issue 9, item 12) ----------------------------------------------

SECRET = "s3cr3t-Pa55"


def secret_settings(data_dir: Path) -> Settings:
    return Settings.from_env(
        env_for(
            data_dir,
            source="postgres",
            source_postgres_uri=f"postgresql://flywheel:{SECRET}@db:5432/source",
            source_table="t",
            ledger_uri=f"host=db dbname=ledger user=flywheel password={SECRET}",
            mlflow_tracking_uri=f"https://ci:{SECRET}@mlflow.example/?token={SECRET}",
            dataset_spec=f"https://specs.example/x.yaml?X-Amz-Security-Token={SECRET}&region=eu",
            lake_uri="s3://bucket/lake",
        )
    )


def test_repr_and_str_hide_passwords_and_tokens(data_dir: Path) -> None:
    s = secret_settings(data_dir)
    for text in (repr(s), str(s), f"{s}", f"{s!r}"):
        assert SECRET not in text
        assert "postgresql://flywheel:***@db:5432/source" in text
        assert "X-Amz-Security-Token=***&region=eu" in text
    # The object itself still holds the real values.
    assert SECRET in s.source_postgres_uri


def test_redacted_env_is_for_logs_and_to_env_keeps_real_values(data_dir: Path) -> None:
    s = secret_settings(data_dir)
    assert SECRET in s.to_env()["FLYWHEEL_SOURCE_POSTGRES_URI"]  # the child process needs it
    shown = s.redacted_env()
    assert set(shown) == set(s.to_env())
    assert SECRET not in repr(shown)
    assert shown["FLYWHEEL_LEDGER_URI"] == "host=db dbname=ledger user=flywheel password=***"
    assert shown["FLYWHEEL_LAKE_URI"] == "s3://bucket/lake"


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("postgresql://u:pw@h:5432/db", "postgresql://u:***@h:5432/db"),
        ("postgresql://u@h:5432/db?sslmode=require", "postgresql://u@h:5432/db?sslmode=require"),
        ("https://h/?token=abc&sslmode=require", "https://h/?token=***&sslmode=require"),
        ("https://h/path?sig=abc#frag", "https://h/path?sig=***#***"),
        ("https://:pw@h/", "https://:***@h/"),
        ("host=h password='a b' user=u", "host=h password=*** user=u"),
        ("s3://bucket/lake", "s3://bucket/lake"),
        ("/plain/path", "/plain/path"),
        ("http://[::1", "***"),
        ("", ""),
    ],
)
def test_redact(value: str, shown: str) -> None:
    from mlflywheel.settings import redact

    assert redact(value) == shown


# --- the MLflow login (issue 12) ------------------------------------------------------------------

MLFLOW_PASSWORD = "mlflow-service-password-0123"


def test_mlflow_password_is_a_secret_field(data_dir: Path) -> None:
    s = Settings.from_env(
        env_for(data_dir, mlflow_tracking_username="flywheel", mlflow_tracking_password=MLFLOW_PASSWORD)
    )
    assert s.mlflow_tracking_password == MLFLOW_PASSWORD
    assert s.to_env()["FLYWHEEL_MLFLOW_TRACKING_PASSWORD"] == MLFLOW_PASSWORD  # for a child process
    assert Settings.from_env(s.to_env()) == s
    for text in (repr(s), str(s), repr(s.redacted_env())):
        assert MLFLOW_PASSWORD not in text
    assert s.redacted_env()["FLYWHEEL_MLFLOW_TRACKING_PASSWORD"] == "***"
    assert s.redacted_env()["FLYWHEEL_MLFLOW_TRACKING_USERNAME"] == "flywheel"
    assert "mlflow_tracking_password='***'" in repr(s)


def test_a_bad_mlflow_password_is_refused_without_showing_it(data_dir: Path) -> None:
    short = "short-pw"  # MLflow refuses passwords under 12 characters
    with pytest.raises(SettingsError) as info:
        Settings.from_env(env_for(data_dir, mlflow_tracking_username="flywheel", mlflow_tracking_password=short))
    assert "FLYWHEEL_MLFLOW_TRACKING_PASSWORD='***': expected a password of at least 12 characters" in str(info.value)
    assert short not in str(info.value)


@pytest.mark.parametrize(
    "variables",
    [{"mlflow_tracking_username": "flywheel"}, {"mlflow_tracking_password": MLFLOW_PASSWORD}],
)
def test_mlflow_username_and_password_go_together(data_dir: Path, variables: dict[str, str]) -> None:
    with pytest.raises(SettingsError, match="go together: set both") as info:
        Settings.from_env(env_for(data_dir, **variables))
    assert MLFLOW_PASSWORD not in str(info.value)


def test_mlflow_login_is_off_by_default_and_names_no_colon(data_dir: Path) -> None:
    s = Settings.from_env(env_for(data_dir))
    assert (s.mlflow_tracking_username, s.mlflow_tracking_password) == ("", "")
    assert s.mlflow_experiments == ("flywheel", "flywheel-drift")
    with pytest.raises(SettingsError, match="FLYWHEEL_MLFLOW_TRACKING_USERNAME='a:b': expected an MLflow user name"):
        Settings.from_env(env_for(data_dir, mlflow_tracking_username="a:b", mlflow_tracking_password=MLFLOW_PASSWORD))
