"""Spec files: the built-ins load from YAML, every check names the file and the field, one loader.

Each check has a test with its exact error text: the text is what a user reads first.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from mlflywheel.datasets import (
    BUILT_IN_SPECS_DIR,
    DatasetSpec,
    SpecFileError,
    built_in_names,
    get_spec,
    load_spec,
    load_spec_file,
    spec_from_dict,
    spec_from_manifest,
    spec_to_dict,
)
from mlflywheel.datasets.spec import Column, DriftPolicy, Expectation, PerformancePolicy
from mlflywheel.datasets.spec_file import parse_spec_text
from mlflywheel.settings import Settings

BASE: dict[str, Any] = {
    "name": "sensors",
    "description": "readings of a few sensors",
    "columns": [
        {"name": "when", "dtype": "datetime"},
        {"name": "site", "dtype": "string", "categories": ["north", "south"]},
        {"name": "weekday", "dtype": "int", "categories": [0, 1, 2, 3, 4, 5, 6]},
        {"name": "temp", "dtype": "float", "nullable": True, "min": -50.0, "max": 60.0},
        {"name": "alarm", "dtype": "int", "min": 0, "max": 1},
    ],
    "timestamp_column": "when",
    "target": "alarm",
    "categorical_features": ["site", "weekday"],
    "numeric_features": ["temp"],
}


def write(tmp_path: Path, data: Any, name: str = "sensors.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


def error_of(tmp_path: Path, change: Any) -> str:
    """The error loading BASE after ``change(data)``, with the file's path cut to ``F``."""
    data = copy.deepcopy(BASE)
    change(data)
    path = write(tmp_path, data)
    with pytest.raises(SpecFileError) as info:
        load_spec_file(path)
    text = str(info.value)
    assert text.startswith(f"{path}: ")
    return "F: " + text[len(f"{path}: "):]


# --- built-ins -------------------------------------------------------------------------------


def test_built_ins_are_the_shipped_spec_files() -> None:
    assert built_in_names() == ["loans", "transactions"]
    assert sorted(p.name for p in BUILT_IN_SPECS_DIR.glob("*.yaml")) == ["loans.yaml", "transactions.yaml"]
    with pytest.raises(KeyError, match="unknown dataset 'nope'; built-in: loans, transactions. For your own"):
        get_spec("nope")


@pytest.mark.parametrize("name", ["transactions", "loans"])
def test_built_in_round_trips_through_yaml_and_json(name: str, tmp_path: Path) -> None:
    spec = get_spec(name)
    plain = spec_to_dict(spec)
    assert spec_from_dict(json.loads(json.dumps(plain)), source="json") == spec
    again = load_spec_file(write(tmp_path, plain, f"{name}.yaml"))
    assert again == spec
    assert spec_to_dict(again) == plain


def test_built_in_facts_survive_the_move_to_yaml() -> None:
    transactions, loans = get_spec("transactions"), get_spec("loans")
    assert transactions.id_column == "transaction_id" and transactions.target == "is_fraud"
    assert transactions.column("merchant_category").categories == (
        "grocery", "electronics", "travel", "restaurants", "fuel", "online_services", "fashion", "gambling",
    )  # fmt: skip
    assert transactions.column("account_age_days") == Column(
        "account_age_days", "int", min=0, max=20_000, description="age of the card account"
    )
    assert isinstance(transactions.column("account_age_days").min, int)  # reasons read "[0, 20000]"
    assert transactions.column("distance_from_home_km").nullable
    assert loans.column("term_months") == Column("term_months", "int", min=12, max=360)
    assert loans.features == ("employment_type", "purpose", "region",
                              "applicant_income", "loan_amount", "term_months", "credit_score")  # fmt: skip
    assert transactions.drift == DriftPolicy() and loans.performance == PerformancePolicy()


def test_every_key_of_the_dataclasses_is_a_file_key(tmp_path: Path) -> None:
    """All fields set to non-defaults, in YAML, come back as written."""
    data = copy.deepcopy(BASE)
    data.update(
        id_column="reading",
        landing_format="parquet",
        extra_expectations=[
            {"type": "expect_column_mean_to_be_between", "kwargs": {"column": "temp", "min_value": -5},
             "row_level": False, "reason": "mean temperature implausible"},
        ],
        drift={"monitored": ["site", "temp"], "exclude": ["weekday"], "p_value": 0.01, "effect_size": "ks",
               "effect_threshold": 0.15, "min_drifted_features": 2, "min_drifted_share": 0.5,
               "prediction_drift": False, "reference": "sample", "window_days": 7,
               "seasonality": "day_of_week", "seasonal_period_days": 7},
        performance={"enabled": False, "tolerance": 0.05, "min_rows": 50, "min_positives": 5,
                     "window_days": 3, "label_delay_days": 2},
    )  # fmt: skip
    data["columns"].insert(0, {"name": "reading", "dtype": "string", "description": "reading id"})
    spec = load_spec_file(write(tmp_path, data))
    assert spec.id_column == "reading" and spec.landing_format == "parquet"
    assert spec.extra_expectations == (
        Expectation("expect_column_mean_to_be_between", {"column": "temp", "min_value": -5}, False,
                    "mean temperature implausible"),
    )  # fmt: skip
    assert spec.drift == DriftPolicy(("site", "temp"), ("weekday",), 0.01, "ks", 0.15, 2, 0.5, False, "sample",
                                     7, "day_of_week", 7)  # fmt: skip
    assert spec.performance == PerformancePolicy(False, 0.05, 50, 5, 3, 2)
    assert spec.column("weekday").categories == (0, 1, 2, 3, 4, 5, 6)
    assert spec_from_dict(json.loads(json.dumps(spec_to_dict(spec))), source="x") == spec
    # Every field of every dataclass is in the plain form, so the manifest carries all of it.
    for cls, plain in ((DatasetSpec, spec_to_dict(spec)), (DriftPolicy, spec_to_dict(spec)["drift"])):
        assert set(plain) == {f.name for f in dataclasses.fields(cls)}


def test_optional_keys_default() -> None:
    spec = parse_spec_text(yaml.safe_dump({k: v for k, v in BASE.items() if k != "description"}), source="s")
    assert spec.description == "" and spec.id_column is None and spec.row_id_column == "_row_id"
    assert spec.drift == DriftPolicy() and spec.extra_expectations == ()
    assert "expect_column_values_to_be_unique" not in [e.type for e in spec.expectations()]


# --- the file layer: shape -----------------------------------------------------------------------


def test_not_yaml(tmp_path: Path) -> None:
    path = write(tmp_path, "name: [unclosed\n")
    with pytest.raises(SpecFileError, match=f"^{path}: not valid YAML: while parsing a flow sequence"):
        load_spec_file(path)


def test_key_given_twice(tmp_path: Path) -> None:
    path = write(tmp_path, "name: a\nname: b\n")
    with pytest.raises(SpecFileError, match=f"^{path}: not valid YAML: .*key 'name' appears twice in one mapping"):
        load_spec_file(path)


def test_not_a_mapping(tmp_path: Path) -> None:
    assert error_of(tmp_path, lambda d: d.clear()) == "F: name: missing required key 'name'"
    path = write(tmp_path, "- a\n- b\n")
    with pytest.raises(SpecFileError) as info:
        load_spec_file(path)
    assert str(info.value) == f"{path}: expected a mapping of DatasetSpec keys, got a list"


def test_unknown_keys_everywhere(tmp_path: Path) -> None:
    assert error_of(tmp_path, lambda d: d.update(timestamp="when")) == (
        "F: timestamp: unknown key (did you mean 'timestamp_column'?); known keys: name, description, columns, "
        "id_column, timestamp_column, target, categorical_features, numeric_features, landing_format, "
        "extra_expectations, drift, performance, max_text_length, reject_formulas"
    )
    assert error_of(tmp_path, lambda d: d["columns"][1].update(nulable=True)) == (
        "F: columns[1].nulable: unknown key (did you mean 'nullable'?); known keys: name, dtype, nullable, "
        "min, max, categories, description, multiline, max_length, reject_formulas"
    )
    assert error_of(tmp_path, lambda d: d.update(drift={"monitor": ["site"]})).startswith(
        "F: drift.monitor: unknown key (did you mean 'monitored'?); known keys: monitored, exclude, p_value,"
    )
    assert error_of(tmp_path, lambda d: d.update(performance={"delay": 1})).startswith(
        "F: performance.delay: unknown key; known keys: enabled, tolerance,"
    )


def test_missing_required_keys(tmp_path: Path) -> None:
    assert error_of(tmp_path, lambda d: d.pop("target")) == "F: target: missing required key 'target'"
    assert error_of(tmp_path, lambda d: d["columns"][0].pop("dtype")) == (
        "F: columns[0].dtype: missing required key 'dtype'"
    )


def test_bad_dtype(tmp_path: Path) -> None:
    assert error_of(tmp_path, lambda d: d["columns"][0].update(dtype="integer")) == (
        "F: columns[0].dtype: expected one of string, int, float, datetime, got 'integer'"
    )


def test_value_types(tmp_path: Path) -> None:
    assert error_of(tmp_path, lambda d: d["columns"][3].update(nullable="maybe")) == (
        "F: columns[3].nullable: expected true or false, got 'maybe' (str)"
    )
    assert error_of(tmp_path, lambda d: d["columns"][3].update(min="abc")) == (
        "F: columns[3].min: expected a number, got 'abc' (str)"
    )
    assert error_of(tmp_path, lambda d: d.update(categorical_features="site")) == (
        "F: categorical_features: expected a list, got 'site' (str)"
    )
    assert error_of(tmp_path, lambda d: d.update(landing_format="json")) == (
        "F: landing_format: expected one of csv, parquet, got 'json'"
    )
    assert error_of(tmp_path, lambda d: d.update(description=None)) == (
        "F: description: expected text, got nothing (null) (YAML reads an empty value, ~ and null as nothing: "
        "quote it to keep it text)"
    )


def test_yaml_booleans_in_a_vocabulary(tmp_path: Path) -> None:
    path = write(tmp_path, yaml.safe_dump(BASE, sort_keys=False).replace("- north\n", "- yes\n", 1))
    with pytest.raises(SpecFileError) as info:
        load_spec_file(path)
    assert str(info.value) == (
        f"{path}: columns[1].categories[0]: expected text or a whole number, got true/false (True) "
        "(YAML reads yes, no, on, off, true and false as true/false: quote it to keep it text)"
    )


def test_expectation_arguments_must_travel_as_json(tmp_path: Path) -> None:
    expectation = {"type": "expect_x", "kwargs": {"min_value": dt.date(2024, 1, 1)}, "row_level": False,
                   "reason": "r"}  # fmt: skip
    assert error_of(tmp_path, lambda d: d.update(extra_expectations=[expectation])) == (
        "F: extra_expectations[0].kwargs.min_value: expected text, a number, true/false, a list or a mapping, "
        "got datetime.date(2024, 1, 1) (date) (quote dates and times in YAML)"
    )


# --- the dataclasses' checks, named by field -----------------------------------------------------


def test_roles_must_be_columns(tmp_path: Path) -> None:
    assert error_of(tmp_path, lambda d: d.update(id_column="uuid")) == (
        "F: id_column: dataset 'sensors': id_column 'uuid' is not a column"
    )
    assert error_of(tmp_path, lambda d: d.update(target="label")) == (
        "F: target: dataset 'sensors': target 'label' is not a column"
    )
    assert error_of(tmp_path, lambda d: d.update(categorical_features=["site", "colour"])) == (
        "F: categorical_features: dataset 'sensors': categorical_features 'colour' is not a column"
    )


def test_timestamp_must_be_datetime(tmp_path: Path) -> None:
    assert error_of(tmp_path, lambda d: d.update(timestamp_column="site")) == (
        "F: timestamp_column: dataset 'sensors': timestamp column must have dtype datetime"
    )


def test_target_must_be_int_and_not_a_feature(tmp_path: Path) -> None:
    assert error_of(tmp_path, lambda d: d["columns"][4].update(dtype="float")) == (
        "F: target: dataset 'sensors': target 'alarm' must have dtype int (0/1 labels), not float"
    )
    assert error_of(tmp_path, lambda d: d.update(numeric_features=["temp", "alarm"])) == (
        "F: target: dataset 'sensors': target 'alarm' cannot also be a feature"
    )


def test_numeric_features_must_be_numbers(tmp_path: Path) -> None:
    assert error_of(tmp_path, lambda d: d.update(numeric_features=["site"])) == (
        "F: numeric_features: dataset 'sensors': numeric feature 'site' must be int or float"
    )


def test_categorical_feature_needs_categories(tmp_path: Path) -> None:
    assert error_of(tmp_path, lambda d: d["columns"][1].pop("categories")) == (
        "F: categorical_features: dataset 'sensors': categorical feature 'site' needs categories"
    )


def test_categories_must_match_the_column_type(tmp_path: Path) -> None:
    assert error_of(tmp_path, lambda d: d["columns"][2].update(categories=["0", "1"])) == (
        "F: columns[2].categories: column 'weekday': categories of an int column must be whole numbers, "
        "got '0' (str) (write them without quotes)"
    )
    assert error_of(tmp_path, lambda d: d["columns"][1].update(categories=["north", 7])) == (
        "F: columns[1].categories: column 'site': categories of a string column must be text, got 7 (int) "
        "(quote it in YAML to keep it text)"
    )
    assert error_of(tmp_path, lambda d: d["columns"][3].update(categories=[1.5])) == (
        "F: columns[3].categories[0]: expected text or a whole number, got 1.5 (float)"
    )
    assert error_of(tmp_path, lambda d: d["columns"][0].update(categories=["a"])) == (
        "F: columns[0].categories: column 'when': categories are for string or int columns, not datetime"
    )
    assert error_of(tmp_path, lambda d: d["columns"][1].update(categories=["a", "a"])) == (
        "F: columns[1].categories: column 'site': categories has duplicates"
    )


def test_int_categories_for_an_int_column_are_fine(tmp_path: Path) -> None:
    spec = load_spec_file(write(tmp_path, BASE))
    assert spec.column("weekday").categories == (0, 1, 2, 3, 4, 5, 6)
    (in_set,) = [e for e in spec.expectations() if e.kwargs.get("column") == "weekday" and "in_set" in e.type]
    assert in_set.kwargs["value_set"] == [0, 1, 2, 3, 4, 5, 6]


def test_ranges(tmp_path: Path) -> None:
    assert error_of(tmp_path, lambda d: d["columns"][3].update(min=100.0)) == (
        "F: columns[3].min: column 'temp': min 100.0 is above max 60.0"
    )
    assert error_of(tmp_path, lambda d: d["columns"][1].update(min=0)) == (
        "F: columns[1].min: column 'site': min and max apply to int and float columns, not string"
    )


def test_drift_policy_names_features(tmp_path: Path) -> None:
    assert error_of(tmp_path, lambda d: d.update(drift={"monitored": ["when"]})) == (
        "F: drift.monitored: dataset 'sensors': drift.monitored names 'when', which is not a feature "
        "(features: site, weekday, temp)"
    )
    assert error_of(tmp_path, lambda d: d.update(drift={"exclude": ["nope"]})) == (
        "F: drift.exclude: dataset 'sensors': drift.exclude names 'nope', which is not a feature "
        "(features: site, weekday, temp)"
    )


def test_policy_values(tmp_path: Path) -> None:
    assert error_of(tmp_path, lambda d: d.update(drift={"effect_size": "huge"})) == (
        "F: drift.effect_size: drift policy: effect_size must be one of ('psi', 'wasserstein', 'ks')"
    )
    assert error_of(tmp_path, lambda d: d.update(performance={"min_rows": 0})) == (
        "F: performance.min_rows: performance policy: min_rows must be >= 1"
    )


def test_column_names_and_dataset_name(tmp_path: Path) -> None:
    assert error_of(tmp_path, lambda d: d["columns"][1].update(name="_site")) == (
        "F: columns: dataset 'sensors': column name '_site' is not allowed: names starting with '_' are the "
        "pipeline's meta columns"
    )
    assert error_of(tmp_path, lambda d: d["columns"].append({"name": "site", "dtype": "string"})) == (
        "F: columns: dataset 'sensors': duplicate column names"
    )
    assert error_of(tmp_path, lambda d: d.update(name="my/data")) == (
        "F: name: dataset 'my/data': name must be letters, digits, '_' or '-', starting with a letter or digit"
    )


def test_id_column_rules(tmp_path: Path) -> None:
    def nullable_id(d: dict[str, Any]) -> None:
        d["columns"].append({"name": "reading", "dtype": "string", "nullable": True})
        d["id_column"] = "reading"

    assert error_of(tmp_path, nullable_id) == "F: id_column: dataset 'sensors': id column 'reading' cannot be nullable"
    assert error_of(tmp_path, lambda d: d.update(id_column="temp")) == (
        "F: id_column: dataset 'sensors': id column must have dtype string or int, not float"
    )


# --- one loader for every process ----------------------------------------------------------------


def test_load_spec_uses_the_built_in_without_a_file() -> None:
    assert load_spec(Settings(dataset="loans")) is get_spec("loans")


def test_load_spec_reads_a_path_or_file_uri(tmp_path: Path) -> None:
    path = write(tmp_path, BASE)
    assert load_spec(Settings(data_dir=tmp_path, dataset="sensors", dataset_spec=str(path))).name == "sensors"
    assert load_spec(Settings(data_dir=tmp_path, dataset="sensors", dataset_spec=path.as_uri())).name == "sensors"


def test_load_spec_refuses_a_name_that_differs_from_the_setting(tmp_path: Path) -> None:
    path = write(tmp_path, BASE)
    with pytest.raises(SpecFileError) as info:
        load_spec(Settings(data_dir=tmp_path, dataset="transactions", dataset_spec=str(path)))
    assert str(info.value) == (
        f"{path}: name: the spec is named 'sensors' but FLYWHEEL_DATASET is 'transactions'; set "
        "FLYWHEEL_DATASET=sensors (the name drives lake paths, the model name and DAG tags)"
    )


def test_missing_spec_file(tmp_path: Path) -> None:
    with pytest.raises(SpecFileError, match=f"^{tmp_path}/nope.yaml: no such spec file$"):
        load_spec(Settings(data_dir=tmp_path, dataset="sensors", dataset_spec=str(tmp_path / "nope.yaml")))


def test_load_spec_reads_s3(tmp_path: Path, s3_server: str, s3_bucket: str, s3_client: Any) -> None:
    s3_client.put_object(Bucket=s3_bucket, Key="specs/sensors.yaml", Body=yaml.safe_dump(BASE).encode())
    settings = Settings(
        data_dir=tmp_path, dataset="sensors", dataset_spec=f"s3://{s3_bucket}/specs/sensors.yaml",
        s3_endpoint_url=s3_server,
    )  # fmt: skip
    assert load_spec(settings) == load_spec_file(write(tmp_path, BASE))
    missing = dataclasses.replace(settings, dataset_spec=f"s3://{s3_bucket}/specs/other.yaml")
    with pytest.raises(SpecFileError, match=f"s3://{s3_bucket}/specs/other.yaml: cannot read the spec file: no object"):
        load_spec(missing)


def test_spec_from_manifest_embedded_or_built_in(tmp_path: Path) -> None:
    spec = load_spec_file(write(tmp_path, BASE))
    manifest = json.loads(json.dumps({"snapshot_id": "s-1", "dataset": "sensors", "spec": spec_to_dict(spec)}))
    assert spec_from_manifest(manifest) == spec
    assert spec_from_manifest({"snapshot_id": "old", "dataset": "loans"}) is get_spec("loans")
    with pytest.raises(ValueError, match="snapshot old: its manifest embeds no spec and 'sensors' is not a built-in"):
        spec_from_manifest({"snapshot_id": "old", "dataset": "sensors"})
    broken = {**manifest, "spec": {**manifest["spec"], "target": "nope"}}
    with pytest.raises(SpecFileError, match="^snapshot s-1 manifest: target: dataset 'sensors': target 'nope'"):
        spec_from_manifest(broken)
