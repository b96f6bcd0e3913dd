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


@pytest.mark.xfail(
    strict=True,
    reason="bug: to_env writes '' for a field set to the empty string, and from_env ignores empty "
    "variables, so a non-empty default (here k8s_secrets) comes back instead",
)
def test_to_env_round_trips_an_emptied_field(data_dir: Path) -> None:
    # An empty k8s_secrets means "expose no secrets to the training pod".
    s = Settings(data_dir=data_dir, k8s_secrets="")
    assert Settings.from_env(s.to_env()) == s
