"""The service-account guard: which requests it looks at, and whose it refuses (the real API server
runs it in tests/integration/test_access_fab.py, where the service account's trigger gets 403)."""

from __future__ import annotations

import types

import pytest
from mlflywheel.orchestration import access
from mlflywheel.orchestration.service_guard import is_trigger, service_only


def user(*roles: str) -> object:
    return types.SimpleNamespace(roles=[types.SimpleNamespace(name=r) for r in roles])


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("POST", "/api/v2/dags/train/dagRuns", True),
        ("POST", "/base/api/v2/dags/ingest/dagRuns/", True),
        ("GET", "/api/v2/dags/train/dagRuns", False),
        ("POST", "/api/v2/dags/~/dagRuns/list", False),  # the batch list is a read
        ("POST", "/api/v2/backfills", False),
        ("PATCH", "/api/v2/dags/train/dagRuns/r1", False),
    ],
)
def test_only_triggers_are_looked_at(method: str, path: str, expected: bool) -> None:
    assert is_trigger(method, path) is expected


def test_only_an_account_with_the_service_role_alone_is_refused() -> None:
    assert service_only(user(access.SERVICE))
    assert not service_only(user(access.SERVICE, access.OPERATOR))  # a person who also operates
    assert not service_only(user(access.OPERATOR))
    assert not service_only(user())
    assert not service_only(object())  # the simple auth manager's users carry no FAB roles
