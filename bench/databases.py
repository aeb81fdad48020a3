"""A database of its own for each benchmark run, so that two runs (or two people) never collide."""

from __future__ import annotations

import os
import uuid
from urllib.parse import urlsplit

from tests.support.net import reachable


def postgres_server_url() -> str | None:
    """BENCH_DATABASE_URL or DATABASE_URL when PostgreSQL, else the local server if it answers."""
    url = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("DATABASE_URL") or ""
    if not url.startswith("postgres"):
        url = "postgres://postgres@127.0.0.1:5432/postgres"
    parts = urlsplit(url)
    return url if reachable(parts.hostname or "127.0.0.1", parts.port or 5432) else None


def create_database(server_url: str, purpose: str) -> str:
    """A new empty database named for this run (purpose, process and a random tag); returns its URL."""
    import psycopg

    name = f"certportal_bench_{purpose}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    base, _, _old = server_url.partition("?")[0].rpartition("/")
    return f"{base}/{name}"


def drop_database(server_url: str, database_url: str) -> None:
    import psycopg

    name = database_url.rpartition("/")[2]
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
