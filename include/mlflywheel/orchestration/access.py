"""Who may do what in Airflow: Flywheel's roles as data, applied to the FAB auth manager at start.

One place for the whole access model of the compose stack (Airflow's FAB auth manager):

- :data:`ROLES`: each role's FAB permissions, ``(action, resource)`` pairs, per DAG where needed.
- :data:`DOORS`: every Airflow door the loop and its people use (REST actions, the Flywheel pages,
  the approval answer) and the roles that may pass it. The README's roles table is rendered from it
  (:func:`doors_table`) and the access tests drive real Airflow through it, so the documentation,
  the tests and the permissions cannot drift apart.
- :func:`apply`: creates or updates the roles (exactly the table: a permission removed here is
  revoked there) and the users named in the environment; idempotent, run by compose's
  ``airflow-init`` and by the tests as ``python -m mlflywheel.orchestration.access apply``.

FAB couples some rights, and the tables say so instead of hiding it: whoever may trigger a DAG (or
create its backfill) or answer its approval request needs ``can_edit`` on that DAG, which in FAB
also lets them pause and unpause it (Flywheel's auth manager takes that back from everyone but
:data:`DAG_EDITOR_ROLES`); creating a backfill of a DAG is the same permission as triggering it
(Airflow 3.3 authorises both as creating the DAG's runs; the plugin's
:mod:`~mlflywheel.orchestration.service_guard` refuses the service account's triggers).

The data half imports nothing from Airflow (the README renderer and the unit tests use it); FAB is
imported inside :func:`apply` only.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field

log = logging.getLogger("mlflywheel.access")

# --- roles -------------------------------------------------------------------------------------
VIEWER, OPERATOR, APPROVER, ADMIN, SERVICE = "viewer", "operator", "approver", "admin", "service"
#: FAB's built-in administrator role: FAB itself grants it every permission at each start.
FAB_ADMIN_ROLE = "Admin"
#: The roles that may edit a DAG itself (pause / unpause it): FlywheelFabAuthManager refuses the rest.
DAG_EDITOR_ROLES = frozenset({OPERATOR, FAB_ADMIN_ROLE})
#: The DAGs an operator runs, and the DAG an approver may trigger (to roll back).
OPERATED_DAGS = ("ingest", "train", "drift_check")
ROLLBACK_DAG = "rollback"
TRAIN_DAG = "train"
#: The account drift_check's backfill requests authenticate as (its connection names it).
DEFAULT_SERVICE_USER = "flywheel-service"

# FAB resource names (airflow.providers.fab.www.security.permissions spells the same strings;
# tests/orchestration/test_access.py checks each against the installed provider).
WEBSITE, DAGS, DAG_RUNS, TASK_INSTANCES = "Website", "DAGs", "DAG Runs", "Task Instances"
HITL = "HITL Detail"
READ, EDIT, CREATE, MENU = "can_read", "can_edit", "can_create", "menu_access"


def dag(dag_id: str) -> str:
    """FAB's resource for one DAG (``DAG:<dag_id>``)."""
    return f"DAG:{dag_id}"


def dag_run(dag_id: str) -> str:
    """FAB's resource for one DAG's runs (``DAG Run:<dag_id>``): create or read only that DAG's runs."""
    return f"DAG Run:{dag_id}"


Permission = tuple[str, str]

#: Reading the loop: DAGs, runs, task instances and logs, code, versions, XComs, assets, approval
#: requests, import errors and the Flywheel pages (the plugin; its menu entry), one's own profile.
READ_PERMISSIONS: tuple[Permission, ...] = (
    (READ, WEBSITE),
    (READ, DAGS), (READ, DAG_RUNS), (READ, TASK_INSTANCES), (READ, "Task Logs"),
    (READ, "DAG Code"), (READ, "DAG Dependencies"), (READ, "DAG Versions"), (READ, "DAG Warnings"),
    (READ, "XComs"), (READ, "Assets"), (READ, "Asset Aliases"), (READ, HITL),
    (READ, "ImportError"), (READ, "Plugins"),
    (READ, "My Password"), (EDIT, "My Password"), (READ, "My Profile"), (EDIT, "My Profile"),
    (MENU, "Browse"), (MENU, DAGS), (MENU, DAG_RUNS), (MENU, TASK_INSTANCES), (MENU, "Assets"),
    (MENU, "Docs"), (MENU, "Documentation"), (MENU, "Plugins"),
)  # fmt: skip

#: Trigger, backfill, clear and re-run the loop's DAGs (and only those: can_edit per DAG).
OPERATE_PERMISSIONS: tuple[Permission, ...] = (
    (CREATE, DAG_RUNS), (EDIT, DAG_RUNS), (EDIT, TASK_INSTANCES),
    *((EDIT, dag(dag_id)) for dag_id in OPERATED_DAGS),
)  # fmt: skip

#: Answer train's approval requests (HITL: can_edit on the requests and on train) and roll back
#: (runs of `rollback` only: DAG Run:rollback, never DAG Runs, so train stays untriggerable).
APPROVE_PERMISSIONS: tuple[Permission, ...] = (
    (EDIT, HITL), (MENU, HITL), (EDIT, dag(TRAIN_DAG)),
    (CREATE, dag_run(ROLLBACK_DAG)), (EDIT, dag(ROLLBACK_DAG)),
)  # fmt: skip

#: drift_check's client: create backfills of train, list them, read train's approval answer.
SERVICE_PERMISSIONS: tuple[Permission, ...] = (
    (READ, WEBSITE),  # FAB grants it to every custom role at each start: listed so apply agrees
    (READ, dag(TRAIN_DAG)), (EDIT, dag(TRAIN_DAG)),
    (READ, dag_run(TRAIN_DAG)), (CREATE, dag_run(TRAIN_DAG)),
    (READ, HITL),
)  # fmt: skip


@dataclass(frozen=True)
class Role:
    name: str  # the FAB role's name
    summary: str  # one line for the README's roles table
    permissions: frozenset[Permission] = field(default_factory=frozenset)
    managed: bool = True  # False: FAB's own role, kept complete by FAB; apply leaves it alone


ROLES: dict[str, Role] = {
    VIEWER: Role(VIEWER, "reads DAGs, runs, logs and the Flywheel pages; triggers nothing",
                 frozenset(READ_PERMISSIONS)),
    OPERATOR: Role(OPERATOR, "viewer + triggers ingest / train / drift_check, creates their backfills, "
                   "clears and re-runs their tasks", frozenset(READ_PERMISSIONS + OPERATE_PERMISSIONS)),
    APPROVER: Role(APPROVER, "viewer + answers train's promotion approvals (the requests are assigned to "
                   "this role) and rolls back (triggers rollback)",
                   frozenset(READ_PERMISSIONS + APPROVE_PERMISSIONS)),
    ADMIN: Role(FAB_ADMIN_ROLE, "everything, including connections, variables, users and roles "
                "(FAB's Admin role); answers approvals only if also given the approver role",
                managed=False),
    SERVICE: Role(SERVICE, f"the service account ({DEFAULT_SERVICE_USER}) of drift_check's backfill "
                  "requests: creates backfills of train, reads train's runs and approval answers",
                  frozenset(SERVICE_PERMISSIONS)),
}  # fmt: skip


def approval_assignees(role_names: str) -> list[dict[str, str]] | None:
    """The HITL ``assigned_users`` of an approval request answered by members of ``role_names``
    (comma-separated; empty: not assigned, anyone the auth manager lets answer may).

    Airflow 3.3 assigns requests to user ids only; :class:`..auth_manager.FlywheelFabAuthManager`
    reads an id ``role:<name>`` as "any member of that role", so the request names the role and a
    user added to it later may answer too."""
    names = [n.strip() for n in role_names.split(",") if n.strip()]
    return [{"id": f"{ROLE_ASSIGNEE_PREFIX}{n}", "name": f"{n} (role)"} for n in names] or None


ROLE_ASSIGNEE_PREFIX = "role:"


def may_answer_approvals(user, approver_roles: str) -> bool:
    """Whether ``user`` (of the API server's auth manager) may answer train's approval requests:
    the checks Airflow's answer endpoint makes (``can_edit`` on HITL Detail and on train, then the
    request's assignment). For the cockpit, which offers the answer link only to them. Runs in
    the API server; imports Airflow there."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails

    manager = get_auth_manager()
    if not manager.is_authorized_dag(method="PUT", access_entity=DagAccessEntity.HITL_DETAIL,
                                     details=DagDetails(id=TRAIN_DAG), user=user):  # fmt: skip
        return False
    assignees = approval_assignees(approver_roles)
    return not assignees or manager.is_authorized_hitl_task(assigned_users={a["id"] for a in assignees}, user=user)


# --- doors -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Door:
    """One thing a person or the loop does in Airflow, and the roles that may do it."""

    name: str  # what it is, for people (README)
    method: str
    path: str  # under the API server's root; {run} / {backfill} filled in by the tests
    allowed: frozenset[str]  # keys of ROLES
    body: Mapping | None = None
    note: str = ""


ALL = frozenset(ROLES)
READERS = frozenset({VIEWER, OPERATOR, APPROVER, ADMIN})
_RUN = "/api/v2/dags/{dag}/dagRuns"

DOORS: tuple[Door, ...] = (
    Door("list DAGs", "GET", "/api/v2/dags", ALL, note="the service account sees train only"),
    Door("read a DAG's runs (ingest)", "GET", "/api/v2/dags/ingest/dagRuns", READERS),
    Door("read a DAG's runs (train)", "GET", "/api/v2/dags/train/dagRuns", ALL),
    Door("read task instances", "GET", "/api/v2/dags/ingest/dagRuns/{run}/taskInstances", READERS),
    Door("read a task's log", "GET", "/api/v2/dags/ingest/dagRuns/{run}/taskInstances/wait_for_landing/logs/{try}",
         READERS),
    Door("read the DAG's code", "GET", "/api/v2/dagSources/ingest", READERS),
    Door("trigger ingest", "POST", "/api/v2/dags/ingest/dagRuns", frozenset({OPERATOR, ADMIN})),
    Door("trigger train", "POST", "/api/v2/dags/train/dagRuns", frozenset({OPERATOR, ADMIN}),
         note="FAB: the same permission as a backfill of train; Flywheel's plugin refuses the service account"),
    Door("trigger drift_check", "POST", "/api/v2/dags/drift_check/dagRuns", frozenset({OPERATOR, ADMIN})),
    Door("trigger rollback (roll back)", "POST", "/api/v2/dags/rollback/dagRuns", frozenset({APPROVER, ADMIN})),
    Door("clear a task (re-run it)", "POST", "/api/v2/dags/ingest/clearTaskInstances", frozenset({OPERATOR, ADMIN})),
    Door("mark a run failed", "PATCH", "/api/v2/dags/ingest/dagRuns/{run}", frozenset({OPERATOR, ADMIN})),
    Door("create a backfill of train", "POST", "/api/v2/backfills", frozenset({OPERATOR, ADMIN, SERVICE})),
    Door("create a backfill of ingest", "POST", "/api/v2/backfills", frozenset({OPERATOR, ADMIN})),
    Door("list train's backfills", "GET", "/api/v2/backfills?dag_id=train", ALL),
    Door("cancel a backfill of train", "PUT", "/api/v2/backfills/{backfill}/cancel", frozenset({OPERATOR, ADMIN})),
    Door("pause / unpause ingest", "PATCH", "/api/v2/dags/ingest", frozenset({OPERATOR, ADMIN})),
    Door("pause / unpause train", "PATCH", "/api/v2/dags/train", frozenset({OPERATOR, ADMIN}),
         note="FAB would allow whoever triggers train or answers its approvals; Flywheel's auth manager does not"),
    Door("read approval requests", "GET", "/api/v2/dags/train/dagRuns/{run}/hitlDetails", ALL),
    Door("answer a promotion approval", "PATCH",
         "/api/v2/dags/train/dagRuns/{run}/taskInstances/approve_promotion/-1/hitlDetails", frozenset({APPROVER}),
         note="assigned to the approver role; anyone else: 403"),
    Door("read connections", "GET", "/api/v2/connections", frozenset({ADMIN})),
    Door("edit a connection", "PATCH", "/api/v2/connections/flywheel_airflow_api", frozenset({ADMIN})),
    Door("read variables", "GET", "/api/v2/variables", frozenset({ADMIN})),
    Door("create a variable", "POST", "/api/v2/variables", frozenset({ADMIN})),
    Door("list users", "GET", "/auth/fab/v1/users", frozenset({ADMIN})),
    Door("the Flywheel page", "GET", "/flywheel/", READERS),
    Door("the Flywheel tab of train", "GET", "/flywheel/dag/train", READERS),
    Door("the Flywheel tab of an ingest run", "GET", "/flywheel/dag/ingest/run/{run}", READERS),
    Door("the plugins list (Flywheel menu entry)", "GET", "/api/v2/plugins", READERS),
)  # fmt: skip

TABLE_ROLES = (VIEWER, OPERATOR, APPROVER, ADMIN, SERVICE)


def roles_table() -> str:
    """The README's table of roles (Markdown)."""
    lines = ["| role | FAB role | may |", "| --- | --- | --- |"]
    lines += [f"| `{key}` | `{ROLES[key].name}` | {ROLES[key].summary} |" for key in TABLE_ROLES]
    return "\n".join(lines)


def doors_table() -> str:
    """The README's table of doors by role (Markdown): yes, or 403."""
    header = "| door | " + " | ".join(f"`{r}`" for r in TABLE_ROLES) + " |"
    lines = [header, "|" + " --- |" * (len(TABLE_ROLES) + 1)]
    for door in DOORS:
        cells = " | ".join("yes" if r in door.allowed else "403" for r in TABLE_ROLES)
        note = f" ({door.note})" if door.note else ""
        lines.append(f"| {door.name}{note} | {cells} |")
    return "\n".join(lines)


# --- users from the environment ---------------------------------------------------------------
_USER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]*")


@dataclass(frozen=True)
class UserSpec:
    username: str
    role: str  # a key of ROLES
    password: str = field(repr=False)
    machine: bool = False  # the service account: its password always follows the environment


class AccessConfigError(ValueError):
    pass


def users_from_env(env: Mapping[str, str]) -> list[UserSpec]:
    """The accounts the environment names (compose's ``.env``):

    - ``AIRFLOW_ADMIN_USER`` (default ``admin``) / ``AIRFLOW_ADMIN_PASSWORD``: role admin;
    - ``AIRFLOW_SERVICE_USER`` (default ``flywheel-service``) / ``AIRFLOW_SERVICE_PASSWORD``: the
      service account of drift_check's backfills (its connection carries the same pair);
    - ``AIRFLOW_USERS``: more people, ``name:role:password`` separated by blanks or commas.

    An unset password leaves that account out. Every problem is reported at once; no password is
    ever part of a message."""
    problems: list[str] = []
    users: list[UserSpec] = []
    fixed = (
        ("AIRFLOW_ADMIN_USER", "admin", "AIRFLOW_ADMIN_PASSWORD", ADMIN, False),
        ("AIRFLOW_SERVICE_USER", DEFAULT_SERVICE_USER, "AIRFLOW_SERVICE_PASSWORD", SERVICE, True),
    )
    for user_var, default, password_var, role, machine in fixed:
        if env.get(password_var):
            users.append(UserSpec(env.get(user_var) or default, role, env[password_var], machine))
    for index, entry in enumerate(re.split(r"[\s,]+", env.get("AIRFLOW_USERS", "").strip())):
        if not entry:
            continue
        parts = entry.split(":", 2)
        if len(parts) != 3 or not all(parts):
            problems.append(f"AIRFLOW_USERS entry {index + 1}: expected name:role:password")
            continue
        name, role, password = parts
        if role == SERVICE:
            problems.append(f"AIRFLOW_USERS entry {index + 1} ({name}): the service role is for "
                            "AIRFLOW_SERVICE_USER only")  # fmt: skip
            continue
        users.append(UserSpec(name, role, password))
    seen: set[str] = set()
    for user in users:
        if not _USER_NAME.fullmatch(user.username):
            problems.append(f"user {user.username!r}: a name of letters, digits and _ . @ - expected")
        if user.role not in ROLES:
            problems.append(f"user {user.username!r}: unknown role {user.role!r} (roles: {', '.join(ROLES)})")
        if user.username.lower() in seen:
            problems.append(f"user {user.username!r} is named twice")
        seen.add(user.username.lower())
    if problems:
        raise AccessConfigError("; ".join(problems))
    return users


# --- apply -------------------------------------------------------------------------------------
@dataclass
class ApplyReport:
    roles_created: list[str] = field(default_factory=list)
    granted: list[tuple[str, str, str]] = field(default_factory=list)  # (role, action, resource)
    revoked: list[tuple[str, str, str]] = field(default_factory=list)
    users_created: list[str] = field(default_factory=list)
    users_updated: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"role created: {r}" for r in self.roles_created]
        out += [f"granted {r}: {a} on {res}" for r, a, res in self.granted]
        out += [f"revoked {r}: {a} on {res}" for r, a, res in self.revoked]
        out += [f"user created: {u}" for u in self.users_created]
        out += [f"user updated: {u}" for u in self.users_updated]
        return out or ["nothing to change"]


def apply(users: list[UserSpec] | None = None, *, reset_passwords: bool = False) -> ApplyReport:
    """Bring the FAB roles and the named users in Airflow's metadata DB in line with this module.

    Needs Airflow's configuration (``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN``, a migrated database).
    FAB's own roles are synced first (what ``airflow sync-perm`` does), then each managed role is
    given exactly its permissions. A user who does not exist is created with its role; one who does
    gets its role set to exactly that role. Passwords: set at creation; afterwards only the service
    account's follows the environment (its connection is rotated with it), people's stay as they
    changed them unless ``reset_passwords``."""
    from airflow.providers.fab.auth_manager.cli_commands.utils import get_application_builder

    report = ApplyReport()
    with get_application_builder() as appbuilder:
        security = appbuilder.sm
        appbuilder.add_permissions(update_perms=True)
        security.sync_roles()
        for role in ROLES.values():
            if role.managed:
                _apply_role(security, role, report)
        for user in users or []:
            _apply_user(security, user, report, reset_password=reset_passwords or user.machine)
        security.session.commit()
    return report


def _apply_role(security, role: Role, report: ApplyReport) -> None:
    fab_role = security.find_role(role.name)
    if fab_role is None:
        fab_role = security.add_role(role.name)
        report.roles_created.append(role.name)
    current = {(p.action.name, p.resource.name): p for p in fab_role.permissions if p.action and p.resource}
    for action, resource in sorted(role.permissions - set(current)):
        permission = security.create_permission(action, resource)
        security.add_permission_to_role(fab_role, permission)
        report.granted.append((role.name, action, resource))
    for key in sorted(set(current) - role.permissions):
        security.remove_permission_from_role(fab_role, current[key])
        report.revoked.append((role.name, *key))


def _apply_user(security, user: UserSpec, report: ApplyReport, *, reset_password: bool) -> None:
    fab_role = security.find_role(ROLES[user.role].name)
    existing = security.find_user(username=user.username)
    if existing is None:
        created = security.add_user(user.username, user.username, user.role, f"{user.username}@flywheel.invalid",
                                    fab_role, user.password)  # fmt: skip
        if not created:
            raise RuntimeError(f"FAB could not create user {user.username!r}")
        report.users_created.append(f"{user.username} ({user.role})")
        return
    changed = []
    if {r.name for r in existing.roles} != {fab_role.name}:
        existing.roles = [fab_role]
        security.update_user(existing)
        changed.append(f"role {user.role}")
    if reset_password and not security.check_password(user.username, user.password):
        security.reset_password(existing.id, user.password)
        changed.append("password")
    if changed:
        report.users_updated.append(f"{user.username}: {', '.join(changed)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlflywheel.orchestration.access", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("apply", help="create/update the roles and the users named in the environment")
    run.add_argument("--reset-passwords", action="store_true",
                     help="also set people's passwords to the environment's (the service account's always are)")
    sub.add_parser("table", help="print the README's roles and doors tables")
    args = parser.parse_args(argv)
    if args.command == "table":
        print(roles_table() + "\n\n" + doors_table())
        return 0
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        users = users_from_env(os.environ)
    except AccessConfigError as exc:
        print(f"access: {exc}", file=sys.stderr)
        return 2
    for line in apply(users, reset_passwords=args.reset_passwords).lines():
        print(f"access: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
