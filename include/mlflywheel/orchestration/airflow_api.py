"""A small client for Airflow 3's public REST API (``/api/v2``), with retries and timeouts.

Tasks in Airflow 3 have no metadata-database access, so anything a task wants from the
scheduler (a backfill, the list of active backfills) goes through this API. Used also by the
demo runner to unpause DAGs, trigger runs and read their states. Depends on ``requests`` only.
"""

from __future__ import annotations

import logging
import time
from time import monotonic
from typing import Any

import requests

log = logging.getLogger("mlflywheel.orchestration")


class AirflowApiError(RuntimeError):
    def __init__(self, message: str, status: int | None = None, body: Any = None):
        super().__init__(message)
        self.status = status
        self.body = body


class AirflowApi:
    """Authenticated calls to one Airflow API server.

    Transient failures (connection errors, 5xx, 429) are retried with exponential backoff;
    4xx answers are raised at once as :class:`AirflowApiError` carrying the status and body.

    Bounded: each attempt waits at most ``connect_timeout`` to connect and ``timeout`` for each
    read, and one call (all its attempts and sleeps) at most ``budget`` seconds, so a hung API
    server fails the call in under a minute with an error naming the URL.
    """

    def __init__(
        self,
        base_url: str,
        username: str,
        password: str,
        *,
        timeout: float = 15.0,
        connect_timeout: float = 5.0,
        retries: int = 4,
        backoff: float = 1.0,
        budget: float = 50.0,
    ):
        self.base_url = base_url.rstrip("/")
        self.username = username
        self.password = password
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.retries = retries
        self.backoff = backoff
        self.budget = budget
        self._token: str | None = None
        self._session = requests.Session()

    # --- plumbing ----------------------------------------------------------------------
    def _fetch_token(self) -> str:
        body = self._send("POST", "/auth/token", json={"username": self.username, "password": self.password})
        token = body.get("access_token") if isinstance(body, dict) else None
        if not token:
            raise AirflowApiError("Airflow /auth/token answered without an access_token", body=body)
        return token

    def _send(self, method: str, path: str, *, auth: bool = False, **kwargs: Any) -> Any:
        url = self.base_url + path
        delay = self.backoff
        deadline = monotonic() + self.budget
        caller_headers = dict(kwargs.pop("headers", None) or {})  # kept for every retry, never modified
        for attempt in range(1, self.retries + 2):
            headers = dict(caller_headers)
            if auth:
                headers["Authorization"] = f"Bearer {self.token()}"
            left = deadline - monotonic()
            # The last attempt gets what is left of the budget, never more than the timeouts.
            timeout = (min(self.connect_timeout, max(left, 0.1)), min(self.timeout, max(left, 0.1)))
            try:
                resp = self._session.request(method, url, timeout=timeout, headers=headers, **kwargs)
            except requests.RequestException as exc:
                left = deadline - monotonic()
                if attempt > self.retries or left <= delay:
                    raise AirflowApiError(
                        f"{method} {url} failed after {attempt} attempt(s) in {self.budget - left:.1f} s "
                        f"(budget {self.budget:g} s, {self.connect_timeout:g} s to connect, "
                        f"{self.timeout:g} s to read): {exc}"
                    ) from exc
                log.warning("%s %s failed (%s); retry %d in %.1fs", method, url, exc, attempt, delay)
                time.sleep(delay)
                delay *= 2
                continue
            if resp.status_code == 401 and auth and attempt <= self.retries:
                self._token = None  # expired token: fetch a new one and try again
                continue
            if resp.status_code >= 500 or resp.status_code == 429:
                if attempt > self.retries or deadline - monotonic() <= delay:
                    raise AirflowApiError(
                        f"{method} {url} -> {resp.status_code}: {resp.text[:500]}", resp.status_code, resp.text
                    )
                log.warning("%s %s -> %s; retry %d in %.1fs", method, url, resp.status_code, attempt, delay)
                time.sleep(delay)
                delay *= 2
                continue
            if resp.status_code >= 400:
                try:
                    body = resp.json()
                except ValueError:
                    body = resp.text
                raise AirflowApiError(f"{method} {url} -> {resp.status_code}: {body}", resp.status_code, body)
            if not resp.content:
                return None
            return resp.json()
        raise AssertionError("unreachable")

    def token(self) -> str:
        """A bearer token for this client's user (fetched once, renewed on a 401 by requests)."""
        if self._token is None:
            self._token = self._fetch_token()
        return self._token

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """An authenticated call to ``/api/v2`` + ``path``."""
        return self._send(method, "/api/v2" + path, auth=True, **kwargs)

    # --- DAGs and runs -----------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        return self._send("GET", "/api/v2/monitor/health")

    def get_dag(self, dag_id: str) -> dict[str, Any]:
        return self.request("GET", f"/dags/{dag_id}")

    def set_paused(self, dag_id: str, paused: bool) -> dict[str, Any]:
        return self.request("PATCH", f"/dags/{dag_id}", json={"is_paused": paused})

    def trigger(self, dag_id: str, *, logical_date: str | None, conf: dict[str, Any] | None = None) -> dict:
        body: dict[str, Any] = {"logical_date": logical_date, "conf": conf or {}}
        return self.request("POST", f"/dags/{dag_id}/dagRuns", json=body)

    def dag_runs(self, dag_id: str, **params: Any) -> list[dict[str, Any]]:
        params.setdefault("limit", 100)
        return self.request("GET", f"/dags/{dag_id}/dagRuns", params=params)["dag_runs"]

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        path = f"/dags/{dag_id}/dagRuns/{requests.utils.quote(run_id, safe='')}/taskInstances"
        return self.request("GET", path)["task_instances"]

    def hitl_detail(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> dict[str, Any]:
        """A human-in-the-loop request of a task instance, with its answer once given."""
        quoted = requests.utils.quote(run_id, safe="")
        return self.request("GET", f"/dags/{dag_id}/dagRuns/{quoted}/taskInstances/{task_id}/{map_index}/hitlDetails")

    def import_errors(self) -> list[dict[str, Any]]:
        return self.request("GET", "/importErrors")["import_errors"]

    # --- backfills ---------------------------------------------------------------------
    def create_backfill(
        self,
        dag_id: str,
        *,
        from_date: str,
        to_date: str,
        conf: dict[str, Any] | None = None,
        reprocess_behavior: str = "completed",
        max_active_runs: int = 1,
    ) -> dict[str, Any]:
        """``POST /api/v2/backfills``. Airflow answers 409 while a backfill of the DAG is active."""
        body = {
            "dag_id": dag_id,
            "from_date": from_date,
            "to_date": to_date,
            "run_backwards": False,
            "dag_run_conf": conf or {},
            "reprocess_behavior": reprocess_behavior,
            "max_active_runs": max_active_runs,
        }
        return self.request("POST", "/backfills", json=body)

    def backfills(self, dag_id: str) -> list[dict[str, Any]]:
        return self.request("GET", "/backfills", params={"dag_id": dag_id, "limit": 100})["backfills"]

    def active_backfills(self, dag_id: str) -> list[dict[str, Any]]:
        return [b for b in self.backfills(dag_id) if not b.get("completed_at")]


def api_from_connection(conn_id: str) -> AirflowApi:
    """A client for the API server named by the Airflow connection ``conn_id`` (inside a task)."""
    from airflow.sdk import BaseHook

    conn = BaseHook.get_connection(conn_id)
    scheme = conn.schema or "http"
    return AirflowApi(f"{scheme}://{conn.host}:{conn.port}", conn.login, conn.password)
