"""The Airflow REST client against a real HTTP server on loopback that plays scripted answers.

The server (``http.server.ThreadingHTTPServer`` on 127.0.0.1, any free port, in a thread) records
every request it gets; each test scripts the answers per (method, path) and checks what the client
sent, how often, and what it made of the answers. Backoff is 0.01 s and the client's sleeps are
recorded, so retries are checked exactly and the tests stay fast.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import types
from collections import defaultdict, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from mlflywheel.orchestration import airflow_api
from mlflywheel.orchestration.airflow_api import AirflowApi, AirflowApiError

USER, PASSWORD = "admin", "s3cret"
TOKEN_PATH = "/auth/token"
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


@dataclass(frozen=True)
class Answer:
    status: int = 200
    body: Any = None  # dict/list: JSON; str/bytes: as is; None: no body
    drop: bool = False  # close the connection without answering
    delay: float = 0.0  # seconds to wait before answering


DROP = Answer(drop=True)


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    json: Any

    @property
    def bearer(self) -> str | None:
        value = self.headers.get("authorization")
        return value.removeprefix("Bearer ") if value and value.startswith("Bearer ") else value


@dataclass
class Script:
    """Scripted answers per (method, path); POST /auth/token hands out tok-1, tok-2, ... by default."""

    url: str = ""
    answers: dict[tuple[str, str], deque[Answer]] = field(default_factory=lambda: defaultdict(deque))
    seen: list[Seen] = field(default_factory=list)
    tokens_issued: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, method: str, path: str, *answers: Answer) -> None:
        with self.lock:
            self.answers[(method, path)].extend(answers)

    def answer_for(self, request: Seen) -> Answer:
        with self.lock:
            self.seen.append(request)
            queue = self.answers.get((request.method, request.path))
            if queue:
                return queue.popleft()
            if (request.method, request.path) == ("POST", TOKEN_PATH):
                self.tokens_issued += 1
                return Answer(201, {"access_token": f"tok-{self.tokens_issued}"})
            return Answer(404, {"detail": f"unscripted {request.method} {request.path}"})

    def calls(self, method: str | None = None, path: str | None = None) -> list[Seen]:
        with self.lock:
            return [s for s in self.seen if (method in (None, s.method)) and (path in (None, s.path))]

    def unused(self) -> dict[tuple[str, str], int]:
        with self.lock:
            return {route: len(queue) for route, queue in self.answers.items() if queue}


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        split = urlsplit(self.path)
        request = Seen(
            method=self.command,
            path=split.path,
            query=parse_qs(split.query),
            headers={k.lower(): v for k, v in self.headers.items()},
            json=json.loads(raw) if raw else None,
        )
        answer = self.server.script.answer_for(request)
        if answer.delay:
            time.sleep(answer.delay)
        if answer.drop:
            self.close_connection = True
            return
        if isinstance(answer.body, dict | list):
            data, ctype = json.dumps(answer.body).encode(), "application/json"
        elif isinstance(answer.body, str):
            data, ctype = answer.body.encode(), "text/plain"
        else:
            data, ctype = answer.body or b"", "application/octet-stream"
        self.send_response(answer.status)
        if answer.status != 204:
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data:
            self.wfile.write(data)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _handle

    def log_message(self, fmt: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    script: Script

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up on a slow answer is expected here


@pytest.fixture()
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Script]:
    # A proxy from the environment must not see (or intercept) the loopback calls.
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    httpd = _Server(("127.0.0.1", 0), _Handler)
    host, port = httpd.server_address[:2]
    httpd.script = Script(url=f"http://{host}:{port}")
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    try:
        yield httpd.script
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture()
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The client's backoff sleeps, in order (they still sleep, briefly)."""
    recorded: list[float] = []

    def sleep(seconds: float) -> None:
        recorded.append(seconds)
        time.sleep(seconds)

    monkeypatch.setattr(airflow_api, "time", types.SimpleNamespace(sleep=sleep))
    return recorded


def make_api(url: str, **options: Any) -> AirflowApi:
    options.setdefault("timeout", 5.0)
    options.setdefault("retries", 3)
    options.setdefault("backoff", 0.01)
    return AirflowApi(url, USER, PASSWORD, **options)


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- authentication ------------------------------------------------------------------------------


def test_token_is_fetched_once_and_sent_as_bearer(server: Script, sleeps: list[float]) -> None:
    server.add("GET", "/api/v2/dags/ingest", Answer(200, {"dag_id": "ingest", "is_paused": False}))
    server.add("GET", "/api/v2/dags/train", Answer(200, {"dag_id": "train", "is_paused": True}))
    api = make_api(server.url)
    assert api.get_dag("ingest") == {"dag_id": "ingest", "is_paused": False}
    assert api.get_dag("train") == {"dag_id": "train", "is_paused": True}

    token_calls = server.calls("POST", TOKEN_PATH)
    assert len(token_calls) == 1
    assert token_calls[0].json == {"username": USER, "password": PASSWORD}
    assert token_calls[0].bearer is None  # the token call itself carries no token
    dag_calls = server.calls("GET")
    assert [c.path for c in dag_calls] == ["/api/v2/dags/ingest", "/api/v2/dags/train"]
    assert [c.headers["authorization"] for c in dag_calls] == ["Bearer tok-1", "Bearer tok-1"]
    assert [c.method for c in server.seen] == ["POST", "GET", "GET"]
    assert sleeps == []


def test_health_is_not_authenticated(server: Script) -> None:
    server.add("GET", "/api/v2/monitor/health", Answer(200, {"metadatabase": {"status": "healthy"}}))
    assert make_api(server.url).health() == {"metadatabase": {"status": "healthy"}}
    assert [(c.method, c.path, c.bearer) for c in server.seen] == [("GET", "/api/v2/monitor/health", None)]


def test_trailing_slash_of_base_url_is_dropped(server: Script) -> None:
    server.add("GET", "/api/v2/monitor/health", Answer(200, {"ok": True}))
    assert make_api(server.url + "/").health() == {"ok": True}
    assert server.seen[0].path == "/api/v2/monitor/health"


def test_401_refreshes_the_token_once_and_retries(server: Script, sleeps: list[float]) -> None:
    server.add("GET", "/api/v2/dags/ingest", Answer(401, {"detail": "token expired"}), Answer(200, {"ok": 1}))
    api = make_api(server.url)
    assert api.get_dag("ingest") == {"ok": 1}
    assert [(c.method, c.path, c.bearer) for c in server.seen] == [
        ("POST", TOKEN_PATH, None),
        ("GET", "/api/v2/dags/ingest", "tok-1"),
        ("POST", TOKEN_PATH, None),
        ("GET", "/api/v2/dags/ingest", "tok-2"),
    ]
    assert sleeps == []  # a stale token is not a reason to wait
    # The new token is kept for later calls.
    server.add("GET", "/api/v2/dags/train", Answer(200, {}))
    api.get_dag("train")
    assert server.seen[-1].bearer == "tok-2" and server.tokens_issued == 2


def test_persistent_401_ends_in_an_error(server: Script) -> None:
    server.add("GET", "/api/v2/dags/ingest", *[Answer(401, {"detail": "no"})] * 3)
    with pytest.raises(AirflowApiError) as info:
        make_api(server.url, retries=2).get_dag("ingest")
    assert info.value.status == 401 and info.value.body == {"detail": "no"}
    # Bounded: one token per attempt, retries + 1 attempts.
    assert len(server.calls("GET")) == 3 and server.tokens_issued == 3
    assert server.unused() == {}


def test_rejected_credentials_raise_at_once(server: Script, sleeps: list[float]) -> None:
    server.add("POST", TOKEN_PATH, Answer(401, {"detail": "Invalid credentials"}))
    with pytest.raises(AirflowApiError) as info:
        make_api(server.url).get_dag("ingest")
    assert info.value.status == 401
    assert info.value.body == {"detail": "Invalid credentials"}
    assert [(c.method, c.path) for c in server.seen] == [("POST", TOKEN_PATH)]
    assert sleeps == []


def test_token_answer_without_access_token_is_an_error(server: Script) -> None:
    server.add("POST", TOKEN_PATH, Answer(201, {"token_type": "bearer"}))
    with pytest.raises(AirflowApiError, match="access_token") as info:
        make_api(server.url).get_dag("ingest")
    assert info.value.body == {"token_type": "bearer"}
    assert server.calls("GET") == []


def test_token_endpoint_5xx_is_retried(server: Script, sleeps: list[float]) -> None:
    server.add("POST", TOKEN_PATH, Answer(503, "starting"))
    server.add("GET", "/api/v2/dags/ingest", Answer(200, {"dag_id": "ingest"}))
    assert make_api(server.url).get_dag("ingest") == {"dag_id": "ingest"}
    assert len(server.calls("POST", TOKEN_PATH)) == 2
    assert server.calls("GET")[0].bearer == "tok-1"
    assert sleeps == [0.01]


# --- retries -------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 504, 429])
def test_transient_status_is_retried_with_backoff_then_succeeds(
    server: Script, sleeps: list[float], status: int
) -> None:
    busy = Answer(status, "busy")
    server.add("GET", "/api/v2/dags/ingest", busy, busy, Answer(200, {"a": 1}))
    assert make_api(server.url, retries=3).get_dag("ingest") == {"a": 1}
    assert len(server.calls("GET", "/api/v2/dags/ingest")) == 3
    assert sleeps == [0.01, 0.02]  # exponential: doubles each time
    assert server.tokens_issued == 1  # a retry keeps the token


def test_mixed_transient_answers_share_one_backoff(server: Script, sleeps: list[float]) -> None:
    server.add("GET", "/api/v2/dags/ingest", Answer(503), Answer(429, {"detail": "slow down"}), Answer(500),
               Answer(200, {"ok": True}))  # fmt: skip
    assert make_api(server.url, retries=3).get_dag("ingest") == {"ok": True}
    assert sleeps == [0.01, 0.02, 0.04]


@pytest.mark.parametrize("status", [503, 429])
def test_retries_exhausted_raise_with_the_status(server: Script, sleeps: list[float], status: int) -> None:
    server.add("GET", "/api/v2/dags/ingest", *[Answer(status, "still busy")] * 4)
    with pytest.raises(AirflowApiError) as info:
        make_api(server.url, retries=2).get_dag("ingest")
    assert info.value.status == status
    assert info.value.body == "still busy"
    assert f"GET {server.url}/api/v2/dags/ingest -> {status}" in str(info.value)
    assert len(server.calls("GET")) == 3  # the first try and two retries
    assert sleeps == [0.01, 0.02]
    assert server.unused() == {("GET", "/api/v2/dags/ingest"): 1}


def test_zero_retries_means_one_attempt(server: Script, sleeps: list[float]) -> None:
    server.add("GET", "/api/v2/dags/ingest", Answer(502), Answer(200, {}))
    with pytest.raises(AirflowApiError) as info:
        make_api(server.url, retries=0).get_dag("ingest")
    assert info.value.status == 502
    assert len(server.calls("GET")) == 1 and sleeps == []


@pytest.mark.parametrize("status", [400, 403, 404, 409, 422])
def test_client_error_is_raised_at_once_with_the_parsed_body(
    server: Script, sleeps: list[float], status: int
) -> None:
    body = {"detail": [{"loc": ["body", "from_date"], "msg": "invalid"}], "status": status}
    server.add("POST", "/api/v2/backfills", Answer(status, body), Answer(200, {"id": 1}))
    with pytest.raises(AirflowApiError) as info:
        make_api(server.url).create_backfill("train", from_date="2026-11-01", to_date="2026-11-02")
    assert info.value.status == status
    assert info.value.body == body
    assert f"-> {status}" in str(info.value)
    assert len(server.calls("POST", "/api/v2/backfills")) == 1  # not retried
    assert sleeps == []


def test_client_error_with_a_text_body_keeps_the_text(server: Script) -> None:
    server.add("GET", "/api/v2/dags/nope", Answer(404, "<html>not found</html>"))
    with pytest.raises(AirflowApiError) as info:
        make_api(server.url).get_dag("nope")
    assert info.value.status == 404 and info.value.body == "<html>not found</html>"


def test_connection_refused_is_retried_then_raised(sleeps: list[float]) -> None:
    url = f"http://127.0.0.1:{free_loopback_port()}"
    with pytest.raises(AirflowApiError) as info:
        make_api(url, retries=2).health()
    assert info.value.status is None
    assert f"GET {url}/api/v2/monitor/health failed" in str(info.value)
    assert isinstance(info.value.__cause__, requests.ConnectionError)
    assert sleeps == [0.01, 0.02]


def test_dropped_connection_is_retried_then_succeeds(server: Script, sleeps: list[float]) -> None:
    server.add("GET", "/api/v2/dags/ingest", DROP, Answer(200, {"dag_id": "ingest"}))
    assert make_api(server.url).get_dag("ingest") == {"dag_id": "ingest"}
    assert len(server.calls("GET")) == 2 and sleeps == [0.01]


def test_slow_answer_times_out_and_is_retried(server: Script, sleeps: list[float]) -> None:
    late = Answer(200, {"late": True}, delay=0.5)
    server.add("GET", "/api/v2/monitor/health", late, Answer(200, {"ok": True}))
    assert make_api(server.url, timeout=0.1).health() == {"ok": True}
    assert len(server.calls("GET")) == 2 and sleeps == [0.01]


def test_caller_headers_survive_a_retry(server: Script) -> None:
    server.add("GET", "/api/v2/dags/ingest", Answer(503), Answer(200, {}))
    make_api(server.url).request("GET", "/dags/ingest", headers={"X-Request-Id": "abc"})
    assert [c.headers.get("x-request-id") for c in server.calls("GET")] == ["abc", "abc"]


def test_caller_headers_dict_is_not_modified(server: Script) -> None:
    server.add("GET", "/api/v2/dags/ingest", Answer(200, {}))
    headers = {"X-Request-Id": "abc"}
    make_api(server.url).request("GET", "/dags/ingest", headers=headers)
    assert server.calls("GET")[0].headers.get("x-request-id") == "abc"
    assert headers == {"X-Request-Id": "abc"}


# --- endpoints -----------------------------------------------------------------------------------


def test_create_backfill_sends_the_documented_body(server: Script) -> None:
    server.add("POST", "/api/v2/backfills", Answer(200, {"id": 7}), Answer(200, {"id": 8}))
    api = make_api(server.url)
    answer = api.create_backfill("train", from_date="2026-11-01T00:00:00Z", to_date="2026-11-03T00:00:00Z")
    assert answer == {"id": 7}
    assert server.calls("POST", "/api/v2/backfills")[0].json == {
        "dag_id": "train",
        "from_date": "2026-11-01T00:00:00Z",
        "to_date": "2026-11-03T00:00:00Z",
        "run_backwards": False,
        "dag_run_conf": {},
        "reprocess_behavior": "completed",
        "max_active_runs": 1,
    }
    api.create_backfill(
        "train",
        from_date="a",
        to_date="b",
        conf={"reason": "drift"},
        reprocess_behavior="failed",
        max_active_runs=3,
    )
    second = server.calls("POST", "/api/v2/backfills")[1].json
    assert second["dag_run_conf"] == {"reason": "drift"}
    assert second["reprocess_behavior"] == "failed" and second["max_active_runs"] == 3
    assert second["run_backwards"] is False


def test_create_backfill_conflict_carries_status_and_body(server: Script) -> None:
    server.add("POST", "/api/v2/backfills", Answer(409, {"detail": "There is already a running backfill"}))
    with pytest.raises(AirflowApiError) as info:
        make_api(server.url).create_backfill("train", from_date="a", to_date="b")
    assert info.value.status == 409
    assert info.value.body == {"detail": "There is already a running backfill"}


def test_active_backfills_filters_completed_ones(server: Script) -> None:
    backfills = [
        {"id": 1, "dag_id": "train", "completed_at": "2026-11-02T00:00:00Z"},
        {"id": 2, "dag_id": "train", "completed_at": None},
        {"id": 3, "dag_id": "train"},
        {"id": 4, "dag_id": "train", "completed_at": ""},
        {"id": 5, "dag_id": "train", "completed_at": "2026-11-03T00:00:00Z"},
    ]
    server.add("GET", "/api/v2/backfills", Answer(200, {"backfills": backfills, "total_entries": 5}),
               Answer(200, {"backfills": backfills, "total_entries": 5}))  # fmt: skip
    api = make_api(server.url)
    assert [b["id"] for b in api.active_backfills("train")] == [2, 3, 4]
    assert [b["id"] for b in api.backfills("train")] == [1, 2, 3, 4, 5]
    call = server.calls("GET", "/api/v2/backfills")[0]
    assert call.query == {"dag_id": ["train"], "limit": ["100"]}
    assert call.bearer == "tok-1"


@pytest.mark.parametrize("status", [200, 204])
def test_empty_body_returns_none(server: Script, status: int) -> None:
    server.add("PATCH", "/api/v2/dags/ingest", Answer(status))
    assert make_api(server.url).set_paused("ingest", False) is None
    assert server.calls("PATCH")[0].json == {"is_paused": False}


def test_trigger_and_run_listings(server: Script) -> None:
    server.add("POST", "/api/v2/dags/ingest/dagRuns", Answer(200, {"dag_run_id": "r1"}), Answer(200, {}))
    server.add("GET", "/api/v2/dags/ingest/dagRuns", Answer(200, {"dag_runs": [{"dag_run_id": "r1"}]}),
               Answer(200, {"dag_runs": []}))  # fmt: skip
    server.add("GET", "/api/v2/importErrors", Answer(200, {"import_errors": [], "total_entries": 0}))
    api = make_api(server.url)

    assert api.trigger("ingest", logical_date="2026-11-03T00:00:00Z", conf={"k": "v"}) == {"dag_run_id": "r1"}
    api.trigger("ingest", logical_date=None)
    posts = server.calls("POST", "/api/v2/dags/ingest/dagRuns")
    assert [p.json for p in posts] == [
        {"logical_date": "2026-11-03T00:00:00Z", "conf": {"k": "v"}},
        {"logical_date": None, "conf": {}},
    ]
    assert api.dag_runs("ingest") == [{"dag_run_id": "r1"}]
    assert api.dag_runs("ingest", state="failed", limit=5) == []
    gets = server.calls("GET", "/api/v2/dags/ingest/dagRuns")
    assert [g.query for g in gets] == [{"limit": ["100"]}, {"state": ["failed"], "limit": ["5"]}]
    assert api.import_errors() == []
    assert server.tokens_issued == 1
    assert server.unused() == {}
