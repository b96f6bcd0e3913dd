"""The role table as data: its FAB names, the accounts read from the environment, the approval
assignment and the auth manager that reads it. (Real Airflow answers each door for each role in
tests/integration/test_access_fab.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflywheel.orchestration import access

ROOT = Path(__file__).resolve().parents[2]


def _fab_names() -> tuple[set[str], set[str]]:
    from airflow.providers.fab.www.security import permissions

    resources = {v for k, v in vars(permissions).items() if k.startswith("RESOURCE_") and isinstance(v, str)}
    actions = {v for k, v in vars(permissions).items() if k.startswith("ACTION_") and isinstance(v, str)}
    return resources, actions


def test_every_permission_names_a_fab_action_and_resource():
    resources, actions = _fab_names()
    dag_ids = {path.stem for path in (ROOT / "dags").glob("*.py")}
    for role in access.ROLES.values():
        for action, resource in role.permissions:
            assert action in actions, (role.name, action)
            if resource.startswith(("DAG:", "DAG Run:")):
                assert resource.split(":", 1)[1] in dag_ids, (role.name, resource)  # a DAG of this project
            else:
                assert resource in resources, (role.name, resource)


def test_roles_grant_what_the_table_says_and_no_more():
    perms = {key: role.permissions for key, role in access.ROLES.items()}
    # Nobody but the admin touches connections, variables, configuration, users or roles.
    for key, granted in perms.items():
        assert not {r for _, r in granted} & {"Connections", "Variables", "Configurations", "Users", "Roles"}, key
    # The viewer changes nothing but its own password and profile.
    assert {p for p in perms[access.VIEWER] if p[0] != "can_read" and p[0] != "menu_access"} == {
        ("can_edit", "My Password"), ("can_edit", "My Profile")}  # fmt: skip
    # Only the operator may create runs of any DAG; the approver only runs of rollback.
    assert ("can_create", "DAG Runs") in perms[access.OPERATOR]
    assert ("can_create", "DAG Runs") not in perms[access.APPROVER] | perms[access.SERVICE]
    assert {r for a, r in perms[access.APPROVER] if a == "can_create"} == {"DAG Run:rollback"}
    # The service account: train only, nothing global but reading approval requests and the home page.
    assert {r for _, r in perms[access.SERVICE]} == {"DAG:train", "DAG Run:train", "HITL Detail", "Website"}
    assert access.ROLES[access.ADMIN].name == "Admin" and not access.ROLES[access.ADMIN].managed


def test_doors_name_known_roles_and_every_role_has_a_column():
    assert set(access.TABLE_ROLES) == set(access.ROLES)
    for door in access.DOORS:
        assert door.allowed <= set(access.ROLES), door.name
        assert access.ADMIN in door.allowed or door.name == "answer a promotion approval", door.name
    assert len({d.name for d in access.DOORS}) == len(access.DOORS)


def test_readme_carries_the_generated_tables():
    readme = (ROOT / "README.md").read_text()
    assert access.roles_table() in readme, "README's roles table is stale: python -m mlflywheel.orchestration.access table"
    assert access.doors_table() in readme, "README's doors table is stale: python -m mlflywheel.orchestration.access table"


# --- accounts from the environment ------------------------------------------------------------
def test_users_from_env():
    users = access.users_from_env({
        "AIRFLOW_ADMIN_PASSWORD": "a1", "AIRFLOW_SERVICE_PASSWORD": "s1",
        "AIRFLOW_USERS": "alice:approver:p1, bob:operator:p2\ncarol:viewer:p:with:colons",
    })  # fmt: skip
    assert [(u.username, u.role, u.password, u.machine) for u in users] == [
        ("admin", "admin", "a1", False), ("flywheel-service", "service", "s1", True),
        ("alice", "approver", "p1", False), ("bob", "operator", "p2", False), ("carol", "viewer", "p:with:colons", False),
    ]  # fmt: skip
    assert "p1" not in repr(users)


def test_users_from_env_leaves_out_accounts_without_a_password():
    assert access.users_from_env({"AIRFLOW_ADMIN_USER": "root"}) == []
    named = access.users_from_env({"AIRFLOW_ADMIN_USER": "root", "AIRFLOW_ADMIN_PASSWORD": "x"})
    assert [u.username for u in named] == ["root"]


def test_users_from_env_reports_every_problem_without_passwords():
    with pytest.raises(access.AccessConfigError) as caught:
        access.users_from_env({
            "AIRFLOW_ADMIN_PASSWORD": "secret-a",
            "AIRFLOW_USERS": "alice:boss:secret-b bob:viewer mallory:service:secret-c admin:viewer:secret-d /x:viewer:secret-e",
        })  # fmt: skip
    message = str(caught.value)
    assert "unknown role 'boss'" in message
    assert "entry 2: expected name:role:password" in message
    assert "the service role is for AIRFLOW_SERVICE_USER only" in message
    assert "'admin' is named twice" in message
    assert "'/x': a name of letters" in message
    assert "secret" not in message


# --- approvals assigned to a role -------------------------------------------------------------
def test_approval_assignees():
    assert access.approval_assignees("") is None
    assert access.approval_assignees(" , ") is None
    assert access.approval_assignees("approver, Release Managers") == [
        {"id": "role:approver", "name": "approver (role)"},
        {"id": "role:Release Managers", "name": "Release Managers (role)"},
    ]


def test_flywheel_auth_manager_is_fab_and_keeps_its_name():
    """Airflow's DAG processor syncs DAG-level FAB permissions only when the auth manager's path
    contains "FabAuthManager"; the subclass keeps the word."""
    from airflow.providers.fab.auth_manager.fab_auth_manager import FabAuthManager
    from mlflywheel.devstack.stack import FAB_AUTH_MANAGER
    from mlflywheel.orchestration.auth_manager import FlywheelFabAuthManager, assigned_roles

    assert issubclass(FlywheelFabAuthManager, FabAuthManager)
    assert "FabAuthManager" in FAB_AUTH_MANAGER
    assert FAB_AUTH_MANAGER == f"{FlywheelFabAuthManager.__module__}.{FlywheelFabAuthManager.__name__}"
    assert assigned_roles({"7", "role:approver", "roles:x"}) == {"approver"}


def test_train_assigns_its_approval_to_the_configured_roles(monkeypatch: pytest.MonkeyPatch):
    """The DAG file passes FLYWHEEL_APPROVER_ROLES to the approval operator."""
    import importlib.util

    monkeypatch.setenv("FLYWHEEL_APPROVER_ROLES", "approver")
    spec = importlib.util.spec_from_file_location("train_dag_under_test", ROOT / "dags" / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    approval = module.approve_promotion
    assert approval.assigned_users == [{"id": "role:approver", "name": "approver (role)"}]
