"""docker-compose.yaml: valid Compose, consistent in itself, with .env.example and with the code.

No Docker engine runs where these tests run, so the stack is never started here: the file is
parsed, validated against the Compose Specification's JSON schema (vendored beside this file,
compose-spec/compose-spec schema/compose-spec.json, Apache-2.0), and checked field by field:
pinned images, health checks, dependency conditions, variables, secrets, the hosts and ports
the code is pointed at, the FLYWHEEL_* settings, buckets, databases and the GPU profile.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml
from mlflywheel.settings import PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yaml"
ENV_EXAMPLE = ROOT / ".env.example"
SCHEMA_FILE = Path(__file__).with_name("compose-spec.json")
DOCKERFILE = ROOT / "docker" / "airflow.Dockerfile"
POSTGRES_INIT = ROOT / "docker" / "postgres-init"

AIRFLOW_SERVICES = (
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
)
# Names of variables that hold secrets (in .env and in the containers' environments); a name
# ending in _FILE holds the path of a file, not a secret.
SECRET_NAME = re.compile(r"^(?!.*_FILE$).*(PASSWORD|SECRET|FERNET|TOKEN|_KEY$|_KEY_ID$)", re.IGNORECASE)
# The settings the DAGs need in production: without them they fall back to local-disk defaults.
PRODUCTION_SETTINGS = ("lake_uri", "s3_endpoint_url", "mlflow_tracking_uri", "mlflow_artifact_root",
                       "airflow_api_url", "ledger_uri")  # fmt: skip
# Variables whose value is a URL the code (or Airflow, or MLflow) connects to.
SERVICE_URL_VARIABLES = (
    "FLYWHEEL_MLFLOW_TRACKING_URI",
    "FLYWHEEL_S3_ENDPOINT_URL",
    "FLYWHEEL_AIRFLOW_API_URL",
    "FLYWHEEL_LEDGER_URI",
    "FLYWHEEL_SOURCE_POSTGRES_URI",
    "MLFLOW_S3_ENDPOINT_URL",
    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
)
DEFAULT_PORTS = {"http": 80, "https": 443, "postgresql": 5432, "postgresql+psycopg2": 5432}


# --- Compose interpolation (the subset of the spec the file may use) ---------------------------
# $$ is a literal $; ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error},
# ${VAR:+alt}, ${VAR+alt} and $VAR are references.
REFERENCE = re.compile(r"\$(?:\{(?P<braced>[^}]*)\}|(?P<named>[A-Za-z_][A-Za-z0-9_]*)|(?P<escaped>\$))")
BRACED = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>.*))?$", re.DOTALL)


@dataclasses.dataclass(frozen=True)
class Ref:
    name: str
    op: str  # "", ":-", "-", ":?", "?", ":+", "+"
    arg: str


def references(value: str) -> list[Ref]:
    refs = []
    for match in REFERENCE.finditer(value):
        if match.group("escaped"):
            continue
        if match.group("named"):
            refs.append(Ref(match.group("named"), "", ""))
            continue
        braced = BRACED.match(match.group("braced"))
        assert braced, f"malformed interpolation ${{{match.group('braced')}}} in {value!r}"
        refs.append(Ref(braced["name"], braced["op"] or "", braced["arg"] or ""))
    return refs


def interpolate(value: str, env: dict[str, str]) -> str:
    def substitute(match: re.Match) -> str:
        if match.group("escaped"):
            return "$"
        if match.group("named"):
            return env.get(match.group("named"), "")
        ref = references(match.group(0))[0]
        is_set, is_non_empty = ref.name in env, bool(env.get(ref.name))
        present = is_non_empty if ref.op.startswith(":") else is_set
        if ref.op.endswith("-"):
            return env[ref.name] if present else ref.arg
        if ref.op.endswith("?"):
            if not present:
                raise KeyError(f"required variable {ref.name} is missing: {ref.arg}")
            return env[ref.name]
        if ref.op.endswith("+"):
            return ref.arg if present else ""
        return env.get(ref.name, "")

    return REFERENCE.sub(substitute, value)


def interpolate_tree(node: Any, env: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {key: interpolate_tree(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate_tree(value, env) for value in node]
    if isinstance(node, str):
        return interpolate(node, env)
    return node


def strings(node: Any) -> Iterator[str]:
    """Every string value of the loaded file (comments are not values: they are skipped)."""
    if isinstance(node, dict):
        for value in node.values():
            yield from strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from strings(value)
    elif isinstance(node, str):
        yield node


def parse_env_file(path: Path) -> dict[str, str]:
    env = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep and re.fullmatch(r"[A-Z_][A-Z0-9_]*", key), (
            f"{path.name}:{number}: not KEY=VALUE: {line!r}"
        )
        assert key not in env, f"{path.name}:{number}: {key} defined twice"
        env[key] = value
    return env


# --- fixtures ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def env_example() -> dict[str, str]:
    return parse_env_file(ENV_EXAMPLE)


@pytest.fixture(scope="module")
def resolved(compose, env_example) -> dict[str, Any]:
    """The file as Compose would see it with .env copied from .env.example."""
    return interpolate_tree(compose, env_example)


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def one_shot_services(compose) -> set[str]:
    """Services others wait for to *complete*: init jobs, not long-running servers."""
    return {
        name
        for service in compose["services"].values()
        if isinstance(service.get("depends_on"), dict)
        for name, dep in service["depends_on"].items()
        if dep.get("condition") == "service_completed_successfully"
    }


def command_text(service: dict[str, Any], key: str) -> str:
    value = service.get(key) or ""
    return " ".join(value) if isinstance(value, list) else str(value)


def listening_ports(service: dict[str, Any]) -> set[int]:
    """Container ports a service listens on, from its ports, expose, command and health check."""
    ports: set[int] = set()
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            ports.add(int(entry["target"]))
        else:
            ports.add(int(str(entry).split("/")[0].rsplit(":", 1)[-1]))
    ports.update(int(str(entry).split("/")[0]) for entry in service.get("expose") or [])
    command = command_text(service, "entrypoint") + " " + command_text(service, "command")
    ports.update(int(p) for p in re.findall(r"(?:--port|-port|-s3\.port)[= ](\d+)", command))
    health = " ".join((service.get("healthcheck") or {}).get("test") or [])
    ports.update(int(p) for p in re.findall(r"(?:localhost|127\.0\.0\.1):(\d+)", health))
    ports.update(int(p) for p in re.findall(r"pg_isready .*-p (\d+)", health))
    return ports


def option(service: dict[str, Any], flag: str) -> str:
    command = service["command"]
    assert isinstance(command, list) and flag in command, f"{flag} not in {command}"
    return command[command.index(flag) + 1]


# --- the file is Compose -------------------------------------------------------------------------
def test_vendored_schema_is_the_compose_specification():
    schema = json.loads(SCHEMA_FILE.read_text())
    assert schema["$schema"] == "https://json-schema.org/draft-07/schema"
    assert schema["$id"] == "compose_spec.json"
    assert schema["title"] == "Compose Specification"
    jsonschema.Draft7Validator.check_schema(schema)


def test_valid_against_compose_specification(compose):
    schema = json.loads(SCHEMA_FILE.read_text())
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(compose), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors)


def test_expected_services(compose):
    services = set(compose["services"])
    assert {"postgres", "seaweedfs", "bucket-init", "mlflow", "mlflow-init", *AIRFLOW_SERVICES} <= services


def test_images_are_pinned(compose):
    for name, service in compose["services"].items():
        image = service.get("image")
        if image is None:
            assert "build" in service, f"{name}: neither image nor build"
            continue
        assert "$" not in image, f"{name}: image {image!r} depends on a variable"
        if "@sha256:" in image:
            continue
        repository, _, tag = image.rpartition(":")
        assert repository and "/" not in tag, f"{name}: image {image!r} has no tag"
        assert tag != "latest", f"{name}: image {image!r} is not pinned"
        assert re.search(r"\d", tag), f"{name}: tag {tag!r} names no version"


def test_builds_point_at_existing_files(compose):
    builds = [(name, s["build"]) for name, s in compose["services"].items() if "build" in s]
    assert builds
    for name, build in builds:
        context = ROOT / build["context"]
        assert context.is_dir(), f"{name}: build context {context}"
        assert (context / build["dockerfile"]).is_file(), f"{name}: {build['dockerfile']}"


def test_bind_mounts_exist(compose):
    for name, service in compose["services"].items():
        for volume in service.get("volumes") or []:
            source = volume.split(":")[0] if isinstance(volume, str) else volume.get("source", "")
            if source.startswith((".", "/")):
                assert (ROOT / source).exists(), f"{name}: bind mount source {source} does not exist"
            else:
                assert source in (compose.get("volumes") or {}), f"{name}: undeclared volume {source}"


# --- health and start order ----------------------------------------------------------------------
def test_long_running_services_have_healthchecks(compose):
    one_shots = one_shot_services(compose)
    assert {"bucket-init", "airflow-init", "mlflow-init"} <= one_shots
    for name, service in compose["services"].items():
        if name in one_shots:
            assert service.get("restart") == "no", f"{name}: a one-shot job must not restart"
            continue
        health = service.get("healthcheck") or {}
        assert health.get("test") and not health.get("disable"), f"{name}: no health check"
        assert service.get("restart") in ("always", "unless-stopped"), f"{name}: restart policy"


def test_depends_on_conditions(compose):
    services = compose["services"]
    one_shots = one_shot_services(compose)
    for name, service in services.items():
        depends_on = service.get("depends_on") or {}
        assert isinstance(depends_on, dict), f"{name}: depends_on without conditions"
        for dep, spec in depends_on.items():
            assert dep in services, f"{name} depends on unknown service {dep}"
            assert dep != name
            expected = "service_completed_successfully" if dep in one_shots else "service_healthy"
            assert spec["condition"] == expected, f"{name} -> {dep}: {spec['condition']}, expected {expected}"
            if services[dep].get("profiles"):
                assert set(services[dep]["profiles"]) <= set(service.get("profiles") or []), (
                    f"{name} depends on {dep}, which only runs with a profile"
                )

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"dependency cycle: {' -> '.join(path + (name,))}"
        for dep in services[name].get("depends_on") or {}:
            visit(dep, path + (name,))

    for name in services:
        visit(name, ())


# --- variables and secrets -----------------------------------------------------------------------
def test_every_variable_is_in_env_example(compose, env_example):
    used = {ref.name for value in strings(compose) for ref in references(value)}
    assert used, "no ${VAR} in the compose file?"
    assert not used - set(env_example), f"not in .env.example: {sorted(used - set(env_example))}"
    assert not set(env_example) - used, f"unused in .env.example: {sorted(set(env_example) - used)}"


def test_env_example_holds_placeholders_only(env_example):
    secrets = {key: value for key, value in env_example.items() if SECRET_NAME.search(key)}
    assert len(secrets) >= 8
    for key, value in secrets.items():
        assert value.startswith("change-me"), f".env.example: {key} must hold a change-me placeholder"
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert ".env" in ignored, ".env must be git-ignored"


def test_secret_variables_are_required(compose):
    for value in strings(compose):
        for ref in references(value):
            if SECRET_NAME.search(ref.name):
                assert ref.op == ":?", f"${{{ref.name}}} must be required: ${{{ref.name}:?message}}"


def _masked(value: str) -> tuple[str, dict[str, Ref]]:
    """``value`` with each reference replaced by a plain token (so URLs and JSON still parse)."""
    table: dict[str, Ref] = {}

    def token(match: re.Match) -> str:
        if match.group("escaped"):
            return "$"
        key = f"REF{len(table)}REF"
        table[key] = references(match.group(0))[0]
        return key

    return REFERENCE.sub(token, value), table


def _is_required_reference(text: str, table: dict[str, Ref]) -> bool:
    return text in table and table[text].op == ":?"


def test_no_literal_secrets(compose, env_example):
    raw = COMPOSE_FILE.read_text()
    for placeholder in (v for k, v in env_example.items() if SECRET_NAME.search(k)):
        assert placeholder not in raw, f"the placeholder {placeholder!r} is written into the compose file"
    checked_urls = checked_json = 0
    for name, service in compose["services"].items():
        for key, value in environment(service).items():
            masked, table = _masked(value)
            if SECRET_NAME.search(key):
                assert _is_required_reference(masked, table), f"{name}: {key} must be exactly ${{VAR:?...}}"
            for url in re.findall(r"[a-z][a-z0-9+.-]*://[^\s'\"]+", masked):
                password = urlsplit(url).password
                checked_urls += 1
                if password is not None:
                    assert _is_required_reference(password, table), f"{name}: {key} has a literal password"
            if masked.lstrip().startswith("{"):
                checked_json += 1
                for field, field_value in json.loads(masked).items():
                    if SECRET_NAME.search(field):
                        assert _is_required_reference(str(field_value), table), f"{name}: {key}.{field}"
    assert checked_urls and checked_json


# --- the code is pointed at services that exist and listen there ---------------------------------
def _airflow_env(resolved) -> dict[str, str]:
    return environment(resolved["services"]["airflow-scheduler"])


@pytest.mark.parametrize("variable", SERVICE_URL_VARIABLES)
def test_urls_name_services_that_listen(resolved, variable):
    services = resolved["services"]
    url = urlsplit(_airflow_env(resolved)[variable])
    assert url.hostname in services, f"{variable}: no service named {url.hostname!r}"
    port = url.port or DEFAULT_PORTS[url.scheme]
    assert port in listening_ports(services[url.hostname]), (
        f"{variable}: {url.hostname} does not listen on {port}"
    )


def test_every_url_in_the_file_names_a_service(resolved):
    services = resolved["services"]
    seen = 0
    for name, service in services.items():
        for key, value in environment(service).items():
            for raw in re.findall(r"(?:https?|postgresql(?:\+psycopg2)?)://[^\s'\"]+", value):
                url = urlsplit(raw)
                seen += 1
                assert url.hostname in services, f"{name}: {key} points at unknown host {url.hostname}"
                port = url.port or DEFAULT_PORTS[url.scheme]
                assert port in listening_ports(services[url.hostname]), (
                    f"{name}: {key} -> {url.hostname}:{port}"
                )
    assert seen >= len(SERVICE_URL_VARIABLES)


def test_airflow_api_connection(resolved):
    env = _airflow_env(resolved)
    settings = Settings.from_env(env)
    conn = json.loads(env["AIRFLOW_CONN_" + settings.airflow_conn_id.upper()])
    api = urlsplit(settings.airflow_api_url)
    assert (conn["conn_type"], conn["schema"]) == ("http", api.scheme)
    assert (conn["host"], conn["port"]) == (api.hostname, api.port)
    assert conn["host"] in resolved["services"] and conn["port"] in listening_ports(
        resolved["services"][conn["host"]]
    )
    execution = urlsplit(env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"])
    assert (execution.hostname, execution.port, execution.path) == (api.hostname, api.port, "/execution/")
    # The connection's user is the service account that airflow-init creates, with its password;
    # never the admin (a person).
    init = environment(resolved["services"]["airflow-init"])
    assert (conn["login"], conn["password"]) == (init["AIRFLOW_SERVICE_USER"], init["AIRFLOW_SERVICE_PASSWORD"])
    assert conn["login"] != init["AIRFLOW_ADMIN_USER"] and conn["password"] != init["AIRFLOW_ADMIN_PASSWORD"]


# --- users and roles (FAB) -----------------------------------------------------------------------
def test_airflow_runs_on_the_fab_auth_manager_with_roles_applied_at_start(compose, resolved):
    from mlflywheel.devstack.stack import FAB_AUTH_MANAGER
    from mlflywheel.orchestration import access

    env = _airflow_env(resolved)
    assert env["AIRFLOW__CORE__AUTH_MANAGER"] == FAB_AUTH_MANAGER
    assert not [k for k in env if k.startswith("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER")]
    # Approval requests go to the approver role, a role the access module defines.
    assert Settings.from_env(env).approver_roles == access.APPROVER
    # airflow-init migrates (FAB's tables too), then applies the roles and users, before any
    # other Airflow service starts (they wait for it to complete).
    script = " ".join(compose["services"]["airflow-init"]["command"])
    migrate, apply = script.index("airflow db migrate"), script.index("python -m mlflywheel.orchestration.access apply")
    assert migrate < apply
    for name in AIRFLOW_SERVICES[1:]:
        condition = compose["services"][name]["depends_on"]["airflow-init"]["condition"]
        assert condition == "service_completed_successfully", name
    # The accounts of .env parse: the admin and the service account.
    users = access.users_from_env(environment(resolved["services"]["airflow-init"]))
    assert {(u.role, u.machine) for u in users} == {(access.ADMIN, False), (access.SERVICE, True)}


def test_user_passwords_reach_airflow_init_only(resolved):
    for name, service in resolved["services"].items():
        env = environment(service)
        for key in ("AIRFLOW_ADMIN_PASSWORD", "AIRFLOW_USERS"):
            assert (key in env) == (name == "airflow-init"), f"{name}: {key}"


def test_env_example_adds_no_people_by_default(env_example):
    assert env_example["AIRFLOW_USERS"] == "", "AIRFLOW_USERS would hold real passwords: keep it empty"


# --- the settings the code reads -----------------------------------------------------------------
def test_flywheel_variables_are_settings(compose):
    fields = {PREFIX + f.name.upper() for f in dataclasses.fields(Settings)}
    for name, service in compose["services"].items():
        unknown = {key for key in environment(service) if key.startswith(PREFIX)} - fields
        assert not unknown, f"{name}: not Settings fields: {sorted(unknown)}"


def test_airflow_services_share_one_environment(resolved):
    services = resolved["services"]
    airflow = [name for name in services if name.startswith("airflow-")]
    assert set(AIRFLOW_SERVICES) <= set(airflow)
    reference = _airflow_env(resolved)
    for name in airflow:
        env = environment(services[name])
        assert {k: env.get(k) for k in reference} == reference, (
            f"{name}: environment differs from the scheduler's"
        )


def test_settings_from_the_compose_environment(resolved):
    env = _airflow_env(resolved)
    settings = Settings.from_env(env)  # raises SettingsError on any unusable value
    for field in PRODUCTION_SETTINGS:
        assert env.get(PREFIX + field.upper()), f"{PREFIX}{field.upper()} is not provided"
    assert settings.lake_uri.startswith("s3://")
    assert settings.mlflow_artifact_root.startswith("s3://")
    assert settings.mlflow_tracking_uri.startswith("http://")
    assert settings.ledger_uri.startswith("postgresql://")
    assert settings.training_backend == "local"
    assert settings.drift_backend == "scipy", "alibi-detect is BSL 1.1: non-production use only"
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql")
    for offline in ("MLFLOW_DISABLE_TELEMETRY", "GX_ANALYTICS_ENABLED", "HF_HUB_OFFLINE",
                    "AIRFLOW__USAGE_DATA_COLLECTION__ENABLED"):  # fmt: skip
        assert offline in env and offline in environment(resolved["services"]["mlflow"])


def test_settings_suit_the_kubernetes_backend(resolved):
    """The same settings pass the pod's checks: nothing secret, nothing on the Airflow host's disk."""
    from mlflywheel.orchestration.training_backends import kubernetes

    settings = Settings.from_env(_airflow_env(resolved), training_backend="kubernetes")
    assert kubernetes.unreachable_from_pod(settings) == []
    pod_env = kubernetes.pod_env(settings)  # raises if a setting embeds a password
    assert pod_env["FLYWHEEL_LAKE_URI"] == settings.lake_uri
    # The pod logs in to MLflow with the login of its Kubernetes secret, never a copy of the worker's.
    assert settings.mlflow_tracking_password and settings.mlflow_tracking_password not in pod_env.values()
    assert not {"FLYWHEEL_MLFLOW_TRACKING_USERNAME", "FLYWHEEL_MLFLOW_TRACKING_PASSWORD"} & set(pod_env)


def test_buckets_are_created(resolved):
    services = resolved["services"]
    env = _airflow_env(resolved)
    init = environment(services["bucket-init"])
    created = set(init["BUCKETS"].split())
    needed = {
        urlsplit(env["FLYWHEEL_LAKE_URI"]).netloc,
        urlsplit(env["FLYWHEEL_MLFLOW_ARTIFACT_ROOT"]).netloc,
        urlsplit(option(services["mlflow"], "--artifacts-destination")).netloc,
    }
    assert needed <= created, f"buckets not created by bucket-init: {needed - created}"
    endpoint = env["FLYWHEEL_S3_ENDPOINT_URL"]
    assert init["S3_ENDPOINT_URL"] == env["MLFLOW_S3_ENDPOINT_URL"] == endpoint
    assert environment(services["mlflow"])["MLFLOW_S3_ENDPOINT_URL"] == endpoint


def test_databases_and_roles_are_created(resolved, compose):
    script = "\n".join(p.read_text() for p in sorted(POSTGRES_INIT.iterdir()) if p.suffix in (".sh", ".sql"))
    databases = set(re.findall(r"CREATE DATABASE (\w+)", script))
    roles = set(re.findall(r"CREATE ROLE (\w+)", script))
    assert {"airflow", "mlflow", "mlflow_auth", "flywheel_source", "flywheel_ledger"} <= databases
    urls = [
        urlsplit(value)
        for service in resolved["services"].values()
        for value in environment(service).values()
        if value.startswith("postgresql")
    ]
    assert len(urls) >= 4
    for url in urls:
        assert url.path.lstrip("/") in databases, f"{url.path} is not created by {POSTGRES_INIT}"
        assert url.username in roles, f"role {url.username} is not created"
    postgres = compose["services"]["postgres"]
    assert "./docker/postgres-init:/docker-entrypoint-initdb.d:ro" in postgres["volumes"]
    for variable in set(re.findall(r"\b(\w+_DB_PASSWORD)\b", script)):
        assert variable in environment(postgres), f"postgres does not receive {variable}"


# --- MLflow behind its basic-auth app (issues 9 and 12) -------------------------------------------
def test_mlflow_runs_the_basic_auth_app_with_its_config_from_env(resolved, tmp_path):
    from mlflywheel import mlflow_accounts

    mlflow = resolved["services"]["mlflow"]
    assert option(mlflow, "--app-name") == "basic-auth"
    entrypoint = mlflow["entrypoint"]
    assert entrypoint[:5] == ["/usr/bin/dumb-init", "--", "bash", "-c", entrypoint[4]] and entrypoint[5] == "mlflow"
    script = entrypoint[4]
    assert 'server-config --out "${MLFLOW_AUTH_CONFIG_PATH}" && exec mlflow "$@"' in script
    env = environment(mlflow)
    for variable in ("MLFLOW_AUTH_ADMIN_USERNAME", "MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY",
                     "MLFLOW_AUTH_DATABASE_URI", "MLFLOW_AUTH_CONFIG_PATH"):  # fmt: skip
        assert env.get(variable), f"mlflow: {variable} is not set"
    # What the entrypoint writes before the server starts: the user store and READ for everyone else.
    config_file = tmp_path / "basic_auth.ini"
    assert mlflow_accounts.main(["server-config", "--out", str(config_file)], env=env) == 0
    text = config_file.read_text()
    assert f"database_uri = {env['MLFLOW_AUTH_DATABASE_URI']}" in text
    assert "default_permission = READ" in text and f"admin_username = {env['MLFLOW_AUTH_ADMIN_USERNAME']}" in text
    assert urlsplit(env["MLFLOW_AUTH_DATABASE_URI"]).path == "/mlflow_auth"  # apart from the tracking store
    assert len(env["MLFLOW_AUTH_ADMIN_PASSWORD"]) >= 12  # MLflow refuses to create a shorter one


def test_airflow_logs_in_to_mlflow_as_the_service_account(resolved, env_example):
    services = resolved["services"]
    for name in AIRFLOW_SERVICES:
        settings = Settings.from_env(environment(services[name]))
        assert settings.mlflow_tracking_username == env_example["MLFLOW_SERVICE_USER"], name
        assert settings.mlflow_tracking_password == env_example["MLFLOW_SERVICE_PASSWORD"], name
        # The admin's and the viewer's passwords reach no Airflow process.
        values = set(environment(services[name]).values())
        assert env_example["MLFLOW_ADMIN_PASSWORD"] not in values and env_example["MLFLOW_VIEWER_PASSWORD"] not in values
    for name in ("airflow-scheduler", "airflow-worker", "airflow-worker-gpu", "airflow-apiserver"):
        assert services[name]["depends_on"]["mlflow-init"]["condition"] == "service_completed_successfully", name


def test_mlflow_init_creates_the_accounts_the_others_use(resolved):
    services = resolved["services"]
    init = services["mlflow-init"]
    assert init["entrypoint"] == ["python", "-m", "mlflywheel.mlflow_accounts"] and init["command"] == ["ensure"]
    assert init["depends_on"] == {"mlflow": {"condition": "service_healthy"}}
    env, server_env = environment(init), environment(services["mlflow"])
    # The admin it logs in as is the one the server creates; the service account is Airflow's.
    assert (env["MLFLOW_AUTH_ADMIN_USERNAME"], env["MLFLOW_AUTH_ADMIN_PASSWORD"]) == (
        server_env["MLFLOW_AUTH_ADMIN_USERNAME"], server_env["MLFLOW_AUTH_ADMIN_PASSWORD"])  # fmt: skip
    init_settings, airflow_settings = Settings.from_env(env), Settings.from_env(_airflow_env(resolved))
    for field in ("mlflow_tracking_uri", "mlflow_tracking_username", "mlflow_tracking_password", "model_name",
                  "mlflow_experiments"):  # fmt: skip
        assert getattr(init_settings, field) == getattr(airflow_settings, field), field
    assert env["MLFLOW_VIEWER_USERNAME"] and len(env["MLFLOW_VIEWER_PASSWORD"]) >= 12
    assert env["MLFLOW_VIEWER_USERNAME"] != init_settings.mlflow_tracking_username


# --- Airflow, GPU, image --------------------------------------------------------------------------
def test_airflow_mounts_and_api(compose):
    services = compose["services"]
    for name in AIRFLOW_SERVICES:
        volumes = services[name]["volumes"]
        for mount in ("./dags:/opt/airflow/dags:ro", "./plugins:/opt/airflow/plugins:ro",
                      "./include:/opt/flywheel/include:ro"):  # fmt: skip
            assert mount in volumes, f"{name}: missing {mount}"
    apiserver = services["airflow-apiserver"]
    assert "/api/v2/monitor/health" in " ".join(apiserver["healthcheck"]["test"])
    assert 8080 in listening_ports(apiserver)


def test_gpu_profile_reserves_an_nvidia_gpu(compose):
    gpu_services = {n: s for n, s in compose["services"].items() if "gpu" in (s.get("profiles") or [])}
    assert gpu_services, "no service under the gpu profile"
    for name, service in gpu_services.items():
        devices = service["deploy"]["resources"]["reservations"]["devices"]
        assert any(
            d.get("driver") == "nvidia"
            and "gpu" in d["capabilities"]
            and (d.get("count") == "all" or int(d["count"]) >= 1)
            for d in devices
        ), f"{name}: no nvidia GPU reserved"
        # A Celery worker that consumes only the training queue holds the GPU, with a CUDA torch.
        assert service["command"].split()[:2] == ["celery", "worker"]
        assert option_value(service["command"].split(), "--queues") == "gpu"
        assert "download.pytorch.org/whl/cpu" not in service["build"]["args"]["TORCH_INDEX_URL"]
        assert service["image"] != compose["services"]["airflow-scheduler"]["image"]
    for name, service in compose["services"].items():
        if name not in gpu_services:
            assert "deploy" not in service, f"{name}: GPU reservations belong to the gpu profile"


def test_dockerfile_matches_the_lock():
    lock = dict(
        line.split("==", 1)
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    text = DOCKERFILE.read_text()
    base = re.search(r"^FROM (\S+)", text, re.MULTILINE).group(1)
    assert base == f"apache/airflow:{lock['apache-airflow']}-python3.11"
    assert f"ARG TORCH_VERSION={lock['torch']}" in text
    assert "ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in text
    assert "-r /opt/flywheel/requirements.txt" in text
    assert re.findall(r"^USER (\S+)", text, re.MULTILINE)[-1] == "airflow"
    ignore = (DOCKERFILE.parent / (DOCKERFILE.name + ".dockerignore")).read_text().split()
    for needed in ("!requirements.txt", "!pyproject.toml", "!README.md", "!include/"):
        assert needed in ignore


def option_value(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args else None


def test_celery_executor_with_redis_and_two_kinds_of_worker(resolved, compose):
    """Celery: Redis as broker (password from .env), results in Airflow's PostgreSQL database, a
    general worker on the default queue and, under the gpu profile, one on the training queue."""
    services = resolved["services"]
    env = _airflow_env(resolved)
    broker = urlsplit(env["AIRFLOW__CELERY__BROKER_URL"])
    assert broker.scheme == "redis" and broker.hostname == "redis" and broker.password
    assert 6379 in listening_ports(services["redis"]) or "6379" in [str(p) for p in services["redis"]["expose"]]
    assert "--requirepass" in services["redis"]["command"]
    backend = env["AIRFLOW__CELERY__RESULT_BACKEND"]
    assert backend == "db+" + env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    general = compose["services"]["airflow-worker"]["command"].split()
    assert option_value(general, "--queues") == env["AIRFLOW__OPERATORS__DEFAULT_QUEUE"] == "default"
    gpu = compose["services"]["airflow-worker-gpu"]["command"].split()
    assert option_value(gpu, "--queues") == "gpu" and option_value(gpu, "--concurrency") == "1"
    # The training queue names a queue some worker consumes (default: the general worker's).
    consumed = {option_value(s["command"].split(), "--queues") for n, s in compose["services"].items()
                if n.startswith("airflow-worker")}  # fmt: skip
    assert Settings.from_env(env).training_queue in consumed
    for name in ("airflow-scheduler", "airflow-worker", "airflow-worker-gpu"):
        assert "redis" in compose["services"][name]["depends_on"], f"{name} does not wait for the broker"
    assert not any("scheduler" in n and "gpu" in n for n in compose["services"]), "no second scheduler"
