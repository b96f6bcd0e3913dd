"""Accounts of an MLflow server that runs MLflow's basic-auth app (``mlflow server --app-name basic-auth``).

Who may do what (README, "MLflow authentication"):

* the **admin** (``MLFLOW_AUTH_ADMIN_USERNAME`` / ``MLFLOW_AUTH_ADMIN_PASSWORD``): MLflow creates it
  when the server first starts on an empty user store; it manages accounts, nothing else uses it;
* the **service account** (``FLYWHEEL_MLFLOW_TRACKING_USERNAME`` / ``_PASSWORD``): what Airflow's
  tasks and the training pod use. It creates the experiments and the registered model, and MLflow
  gives a creator MANAGE on what it creates; :func:`ensure_accounts` also grants it MANAGE on the
  registered model by name and on those of Flywheel's experiments that exist already (created
  before authentication was switched on, or by another account);
* **viewers**: no grant at all. The server's ``default_permission`` is READ, so every
  authenticated user reads every experiment, run, model and artifact and writes to none that is
  not its own (MLflow lets any user create experiments and models of its own: the basic-auth app
  has no read-only role without workspaces);
* anyone without a valid login: 401.

Idempotent: an existing account keeps its grants and gets the password it is given (so changing
a password in ``.env`` and running ``ensure`` again rotates it). The server's REST API is called
with ``requests``, bounded by the settings' MLflow timeout; this module does not import MLflow.

Command line (the compose stack's ``mlflow-init`` runs ``ensure``; the ``mlflow`` service runs
``server-config``)::

    python -m mlflywheel.mlflow_accounts ensure          # admin, service account, viewer from the env
    python -m mlflywheel.mlflow_accounts set-password NAME   # new password from MLFLOW_NEW_PASSWORD or a prompt
    python -m mlflywheel.mlflow_accounts server-config --out PATH   # the auth app's config file
"""

from __future__ import annotations

import argparse
import configparser
import getpass
import io
import logging
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlflywheel.settings import Settings, redact

log = logging.getLogger("mlflywheel.mlflow_accounts")

DEFAULT_PERMISSION = "READ"  # what an authenticated user may do where it holds no grant
SERVICE_PERMISSION = "MANAGE"  # the service account's grants (deleting an alias needs MANAGE)
MIN_PASSWORD_LENGTH = 12  # MLflow refuses shorter passwords
ADMIN_USERNAME_ENV = "MLFLOW_AUTH_ADMIN_USERNAME"  # the same variables the server bootstraps from
ADMIN_PASSWORD_ENV = "MLFLOW_AUTH_ADMIN_PASSWORD"
VIEWER_USERNAME_ENV = "MLFLOW_VIEWER_USERNAME"
VIEWER_PASSWORD_ENV = "MLFLOW_VIEWER_PASSWORD"
NEW_PASSWORD_ENV = "MLFLOW_NEW_PASSWORD"
AUTH_DATABASE_ENV = "MLFLOW_AUTH_DATABASE_URI"

USERS = "/api/2.0/mlflow/users"
CURRENT_USER = f"{USERS}/current"
GRANT = "/api/3.0/mlflow/users/permissions/grant"
PERMISSION = "/api/3.0/mlflow/users/permissions/get"
EXPERIMENT_BY_NAME = "/api/2.0/mlflow/experiments/get-by-name"


class AccountsError(RuntimeError):
    """The MLflow server refused or failed an account operation."""


@dataclass(frozen=True)
class Account:
    username: str
    password: str = field(repr=False)

    def __post_init__(self) -> None:
        if not self.username or ":" in self.username:
            raise AccountsError(f"an MLflow user name must be non-empty without ':', got {self.username!r}")
        if len(self.password) < MIN_PASSWORD_LENGTH:
            raise AccountsError(
                f"the password of MLflow user {self.username!r} is shorter than {MIN_PASSWORD_LENGTH} characters"
            )


# --- the server's side ----------------------------------------------------------------------------


def server_config(database_uri: str, admin_username: str = "admin", *, login_cache_seconds: int = 0) -> str:
    """The basic-auth app's config file (``MLFLOW_AUTH_CONFIG_PATH``): its user store and the default
    permission. No password: the server takes the admin's from ``MLFLOW_AUTH_ADMIN_PASSWORD``.

    ``login_cache_seconds`` > 0 lets each server worker skip the (deliberately slow) password hash
    check of a login it accepted that recently; a password changed through another worker is then
    still accepted there for up to that long. 0 (MLflow's default) checks every request.
    """
    config = configparser.ConfigParser()
    config["mlflow"] = {
        "default_permission": DEFAULT_PERMISSION,
        "database_uri": database_uri,
        "admin_username": admin_username,
        "authorization_function": "mlflow.server.auth:authenticate_request_basic_auth",
    }
    if login_cache_seconds:
        config["mlflow"]["auth_cache_ttl_seconds"] = str(login_cache_seconds)
    text = io.StringIO()
    config.write(text)
    return text.getvalue()


def write_server_config(path: Path, database_uri: str, admin_username: str = "admin", *,
                        login_cache_seconds: int = 0) -> Path:  # fmt: skip
    """Write :func:`server_config` to ``path``, readable by its owner only (the URI may hold a password)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(server_config(database_uri, admin_username, login_cache_seconds=login_cache_seconds))
    return path


# --- the admin's client ---------------------------------------------------------------------------


class AccountsClient:
    """The basic-auth app's REST API, as ``admin``; every call bounded by ``timeout_seconds``."""

    def __init__(self, tracking_uri: str, admin: Account, *, timeout_seconds: float = 8.0) -> None:
        import requests

        self.server = tracking_uri.rstrip("/")
        self.admin = admin
        self.timeout = timeout_seconds
        self.session = requests.Session()
        self.session.trust_env = False  # no proxy or .netrc from the environment between us and the server

    def call(self, method: str, path: str, *, auth: Account | None = None, ok: Iterable[int] = (200,),
             **kwargs: Any) -> tuple[int, dict[str, Any]]:  # fmt: skip
        """``(status, JSON body)``; a status outside ``ok`` raises :class:`AccountsError`."""
        import requests

        login = auth or self.admin
        try:
            response = self.session.request(
                method, self.server + path, auth=(login.username, login.password), timeout=self.timeout, **kwargs
            )
        except requests.RequestException as exc:
            raise AccountsError(f"MLflow at {redact(self.server)}: {method} {path} failed: {exc}") from exc
        if response.status_code not in set(ok):
            raise AccountsError(
                f"MLflow at {redact(self.server)} answered {response.status_code} to {method} {path} "
                f"as {login.username!r}: {_first_line(response)}"
            )
        try:
            body = response.json() if response.content else {}
        except ValueError:
            body = {}
        return response.status_code, body

    def user_exists(self, username: str) -> bool:
        status, _ = self.call("GET", f"{USERS}/get", params={"username": username}, ok=(200, 404))
        return status == 200

    def can_log_in(self, account: Account) -> bool:
        status, _ = self.call("GET", CURRENT_USER, auth=account, ok=(200, 401))
        return status == 200

    def create_user(self, account: Account) -> None:
        self.call("POST", f"{USERS}/create", json={"username": account.username, "password": account.password})

    def set_password(self, account: Account) -> None:
        self.call("PATCH", f"{USERS}/update-password",
                  json={"username": account.username, "password": account.password})  # fmt: skip

    def permission(self, username: str, resource_type: str, resource_id: str) -> str:
        """The user's effective permission on a resource (its grants, else the default)."""
        params = {"username": username, "resource_type": resource_type, "resource_id": resource_id}
        return str(self.call("GET", PERMISSION, params=params)[1].get("permission", ""))

    def grant(self, username: str, resource_type: str, resource_id: str, permission: str) -> None:
        body = {"username": username, "resource_type": resource_type, "resource_id": resource_id,
                "permission": permission}  # fmt: skip
        self.call("POST", GRANT, json=body)

    def experiment_id(self, name: str) -> str | None:
        status, body = self.call("GET", EXPERIMENT_BY_NAME, params={"experiment_name": name}, ok=(200, 404))
        return str(body["experiment"]["experiment_id"]) if status == 200 else None


def _first_line(response: Any) -> str:
    # MLflow's messages can carry SQL and parameters after the first line (a password hash, once).
    try:
        text = str(response.json().get("message", ""))
    except ValueError:
        text = response.text
    return (text.strip().splitlines() or [""])[0][:300]


# --- what ensure does -----------------------------------------------------------------------------


def ensure_user(client: AccountsClient, account: Account) -> str:
    """Create ``account`` or give it this password; returns ``created``, ``password set`` or ``unchanged``."""
    if not client.user_exists(account.username):
        client.create_user(account)
        return "created"
    if client.can_log_in(account):
        return "unchanged"
    client.set_password(account)
    return "password set"


def ensure_service_grants(client: AccountsClient, username: str, *, model_name: str,
                          experiments: Sequence[str]) -> list[str]:  # fmt: skip
    """MANAGE for the service account on the registered model (by name, existing or not) and on
    each of ``experiments`` that exists; what it creates later it owns anyway. Returns the grants made."""
    resources = [("registered_model", model_name)]
    for name in experiments:
        experiment_id = client.experiment_id(name)
        if experiment_id is not None:
            resources.append(("experiment", experiment_id))
    made = []
    for resource_type, resource_id in resources:
        if client.permission(username, resource_type, resource_id) != SERVICE_PERMISSION:
            client.grant(username, resource_type, resource_id, SERVICE_PERMISSION)
            made.append(f"{resource_type} {resource_id}")
    return made


def ensure_accounts(tracking_uri: str, admin: Account, service: Account, viewers: Sequence[Account] = (), *,
                    model_name: str, experiments: Sequence[str], timeout_seconds: float = 8.0) -> dict[str, str]:  # fmt: skip
    """The service account (with its grants) and the viewers, as ``admin``; what happened to each."""
    client = AccountsClient(tracking_uri, admin, timeout_seconds=timeout_seconds)
    if not client.can_log_in(admin):
        raise AccountsError(
            f"MLflow at {redact(client.server)} refused the admin {admin.username!r} (401): check "
            f"{ADMIN_USERNAME_ENV} / {ADMIN_PASSWORD_ENV} (the server reads them only when it creates the admin)"
        )
    outcome = {service.username: ensure_user(client, service)}
    grants = ensure_service_grants(client, service.username, model_name=model_name, experiments=experiments)
    if grants:
        outcome[service.username] += f"; granted {SERVICE_PERMISSION} on " + ", ".join(grants)
    for viewer in viewers:
        outcome[viewer.username] = ensure_user(client, viewer)
    return outcome


# --- command line ---------------------------------------------------------------------------------


def _account_from_env(env: dict[str, str], user_variable: str, password_variable: str,
                      default_user: str = "") -> Account | None:  # fmt: skip
    username, password = env.get(user_variable) or default_user, env.get(password_variable, "")
    if not password and not env.get(user_variable):
        return None
    if not password:
        raise AccountsError(f"{user_variable}={username} needs {password_variable}")
    return Account(username, password)


def _admin_from_env(env: dict[str, str]) -> Account:
    admin = _account_from_env(env, ADMIN_USERNAME_ENV, ADMIN_PASSWORD_ENV, "admin")
    if admin is None:
        raise AccountsError(f"set {ADMIN_PASSWORD_ENV} (and {ADMIN_USERNAME_ENV} unless it is 'admin')")
    return admin


def _ensure_from_env(env: dict[str, str]) -> dict[str, str]:
    settings = Settings.from_env(env)
    if not settings.mlflow_tracking_username:
        raise AccountsError("set FLYWHEEL_MLFLOW_TRACKING_USERNAME and FLYWHEEL_MLFLOW_TRACKING_PASSWORD")
    service = Account(settings.mlflow_tracking_username, settings.mlflow_tracking_password)
    viewer = _account_from_env(env, VIEWER_USERNAME_ENV, VIEWER_PASSWORD_ENV)
    return ensure_accounts(
        settings.mlflow_tracking_uri, _admin_from_env(env), service, [viewer] if viewer else [],
        model_name=settings.model_name, experiments=settings.mlflow_experiments,
        timeout_seconds=settings.mlflow_http_timeout_seconds,
    )  # fmt: skip


def main(argv: Sequence[str] | None = None, env: dict[str, str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlflywheel.mlflow_accounts", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("ensure", help="the service account (and its grants) and the viewer, as the admin")
    password = commands.add_parser("set-password", help="a user's new password (a viewer's, the admin's)")
    password.add_argument("username")
    password.add_argument("--create", action="store_true", help="create the user if it does not exist (a new viewer)")
    config = commands.add_parser("server-config", help=f"write the auth app's config file from {AUTH_DATABASE_ENV}")
    config.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    env = dict(os.environ if env is None else env)
    try:
        if args.command == "server-config":
            if not env.get(AUTH_DATABASE_ENV):
                raise AccountsError(f"set {AUTH_DATABASE_ENV} (the basic-auth app's user database)")
            write_server_config(args.out, env[AUTH_DATABASE_ENV], env.get(ADMIN_USERNAME_ENV) or "admin")
            print(f"wrote {args.out} (user store {redact(env[AUTH_DATABASE_ENV])})")
        elif args.command == "ensure":
            for username, what in _ensure_from_env(env).items():
                print(f"{username}: {what}")
        else:
            _set_password(args.username, env, create=args.create)
    except AccountsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def _set_password(username: str, env: dict[str, str], *, create: bool) -> None:
    settings = Settings.from_env(env)
    new = env.get(NEW_PASSWORD_ENV) or getpass.getpass(f"new password for {username}: ")
    client = AccountsClient(settings.mlflow_tracking_uri, _admin_from_env(env),
                            timeout_seconds=settings.mlflow_http_timeout_seconds)  # fmt: skip
    account = Account(username, new)
    if client.user_exists(username):
        client.set_password(account)
        print(f"{username}: password set")
    elif create:
        client.create_user(account)
        print(f"{username}: created")
    else:
        raise AccountsError(f"no MLflow user {username!r} (--create adds one)")


if __name__ == "__main__":
    sys.exit(main())
