"""Airflow's FAB auth manager, with approval requests assignable to a role.

Airflow 3.3 assigns a human-in-the-loop request to user ids (``assigned_users``), and FAB's user
ids are database numbers that no DAG file can know. Flywheel assigns train's approval request to
the id ``role:approver`` (:func:`mlflywheel.orchestration.access.approval_assignees`); this class
reads such an id as "any member of that role". Everything else is FAB's: permissions still decide
who may answer at all (``can_edit`` on HITL Detail and on the DAG), the assignment then narrows it.

FAB couples pausing a DAG with triggering it and with answering its approvals (all ``can_edit`` on
the DAG). This class narrows that one coupling: editing a DAG itself (``PUT`` without a sub-entity:
pause and unpause) is left to the operator and Admin roles, so neither the service account nor an
approver can stop the loop's schedule.

Configured as ``AIRFLOW__CORE__AUTH_MANAGER=mlflywheel.orchestration.auth_manager.FlywheelFabAuthManager``.
The class name keeps ``FabAuthManager`` in it: Airflow's DAG processor syncs DAG-level FAB
permissions only when the configured auth manager's path contains that word.
"""

from __future__ import annotations

from airflow.providers.fab.auth_manager.fab_auth_manager import FabAuthManager

from mlflywheel.orchestration.access import DAG_EDITOR_ROLES, ROLE_ASSIGNEE_PREFIX


def assigned_roles(assigned_users: set[str]) -> set[str]:
    """The role names among a request's assignee ids (``role:<name>``)."""
    return {a[len(ROLE_ASSIGNEE_PREFIX):] for a in assigned_users if a.startswith(ROLE_ASSIGNEE_PREFIX)}


def role_names(user) -> set[str]:
    return {role.name for role in (getattr(user, "roles", None) or [])}


class FlywheelFabAuthManager(FabAuthManager):
    def is_authorized_dag(self, *, method, user, access_entity=None, details=None) -> bool:  # type: ignore[override]
        """FAB's answer, except that only :data:`DAG_EDITOR_ROLES` may edit a DAG itself (pause it)."""
        if method == "PUT" and access_entity is None and not role_names(user) & DAG_EDITOR_ROLES:
            return False
        return super().is_authorized_dag(method=method, user=user, access_entity=access_entity, details=details)

    def is_authorized_hitl_task(self, *, assigned_users: set[str], user) -> bool:  # type: ignore[override]
        """A user named among the assignees, or a member of an assigned role, may answer."""
        if super().is_authorized_hitl_task(assigned_users=assigned_users, user=user):
            return True
        return bool(role_names(user) & assigned_roles(assigned_users))
