"""Helpers for tests against a real PostgreSQL server: a throwaway database per test module.

Not a conftest: test modules define their own fixture around :func:`temporary_database`
(``tests/integration/conftest.py`` belongs to the S3 fixtures). The server is
``FLYWHEEL_TEST_POSTGRES_ADMIN_URI`` (default: local trust auth as ``postgres``); tests skip
when it cannot be reached.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest

ADMIN_URI = os.environ.get(
    "FLYWHEEL_TEST_POSTGRES_ADMIN_URI", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def _admin_connection():  # type: ignore[no-untyped-def]
    import psycopg2

    try:
        conn = psycopg2.connect(ADMIN_URI, connect_timeout=5)
    except psycopg2.OperationalError as exc:
        pytest.skip(f"no PostgreSQL server at {ADMIN_URI}: {str(exc).strip()}")
    conn.autocommit = True  # CREATE/DROP DATABASE cannot run inside a transaction
    return conn


def database_uri(name: str) -> str:
    """``ADMIN_URI`` pointed at database ``name``."""
    return urlunsplit(urlsplit(ADMIN_URI)._replace(path=f"/{name}"))


@contextlib.contextmanager
def temporary_database(prefix: str = "flywheel_test") -> Iterator[str]:
    """Create a fresh database (random suffix), yield its URI, drop it WITH (FORCE) afterwards."""
    from psycopg2 import sql

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    conn = _admin_connection()
    try:
        with conn.cursor() as cursor:
            cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield database_uri(name)
        finally:
            with conn.cursor() as cursor:
                # FORCE: a connection a failed test left open must not keep the database alive.
                drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                cursor.execute(drop)
    finally:
        conn.close()


def execute(uri: str, statement: object, params: tuple | None = None) -> list[tuple]:
    """Run one statement in its own transaction; the fetched rows (empty if none)."""
    import psycopg2

    conn = psycopg2.connect(uri, connect_timeout=5)
    try:
        with conn, conn.cursor() as cursor:
            cursor.execute(statement, params)
            return cursor.fetchall() if cursor.description else []
    finally:
        conn.close()
