"""The service account may create backfills, not trigger runs: a middleware of the API server.

Airflow 3.3 authorises creating a DAG's backfill and triggering a run of it with one and the same
check (creating the DAG's runs), so no FAB permission lets drift_check's service account do the
first without the second. This middleware, added by the Flywheel plugin, refuses a direct trigger
(``POST .../dags/{dag_id}/dagRuns``) with 403 when every role of the caller is the service role;
everybody else, and every other request, goes through untouched to Airflow's own checks.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from mlflywheel.orchestration.access import SERVICE

log = logging.getLogger("mlflywheel.access")

TRIGGER_PATH = re.compile(r"/api/v2/dags/[^/]+/dagRuns/?$")


def service_only(user: Any) -> bool:
    """True when the user's roles are the service role alone (the drift check's account)."""
    roles = {role.name for role in (getattr(user, "roles", None) or [])}
    return roles == {SERVICE}


def is_trigger(method: str, path: str) -> bool:
    return method == "POST" and TRIGGER_PATH.search(path) is not None


async def _caller(request: Request) -> Any:
    """The caller as Airflow resolves it (bearer token first, then the UI's cookie); None if unknown."""
    from airflow.api_fastapi.core_api.security import resolve_user_from_token

    header = request.headers.get("authorization", "")
    token = header[7:] if header.lower().startswith("bearer ") else request.cookies.get("_token")
    if not token:
        return None
    try:
        return await resolve_user_from_token(token)
    except Exception:  # noqa: BLE001 - an unusable token is Airflow's to refuse, with its own answer
        return None


class ServiceAccountGuard:
    """A plain ASGI middleware: every request but a trigger passes through untouched (streams too)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and is_trigger(scope["method"], scope["path"]):
            user = await _caller(Request(scope))  # headers and cookies only; the body is left alone
            if user is not None and service_only(user):
                log.warning("refused a trigger by service account %s: %s", getattr(user, "username", "?"),
                            scope["path"])  # fmt: skip
                refusal = JSONResponse(
                    {"detail": "the service account may create backfills, not trigger runs (Flywheel's access model)"},
                    status_code=403,
                )
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)
