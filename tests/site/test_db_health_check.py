"""The database health check: no SELECT 1 on an idle connection, and a connection the server ended is replaced."""

from __future__ import annotations

import select
import time

import pytest
from django.core import signals
from django.db import connection

from tests.support.net import uses_postgresql

pytestmark = [
    pytest.mark.skipif(not uses_postgresql(), reason="the health check is PostgreSQL's (DATABASE_URL=postgres://...)"),
    pytest.mark.django_db(transaction=True),
]


def _new_request() -> None:
    """What gunicorn's worker does between two requests, as far as the database is concerned."""
    signals.request_finished.send(sender=None)
    signals.request_started.send(sender=None)


def test_a_request_on_an_idle_kept_connection_sends_no_select_1(monkeypatch):
    assert connection.settings_dict["CONN_HEALTH_CHECKS"]
    connection.ensure_connection()
    _new_request()
    raw = connection.connection

    def refuse(*args, **kwargs):
        raise AssertionError("the health check sent a statement")

    monkeypatch.setattr(raw, "cursor", refuse)
    assert connection.is_usable()
    monkeypatch.undo()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 2")
        assert cursor.fetchone() == (2,)
    assert connection.connection is raw  # the same connection, kept


def test_a_connection_the_server_ended_is_replaced_before_the_next_request_uses_it():
    connection.ensure_connection()
    old_pid = connection.connection.info.backend_pid
    with connection._nodb_cursor() as other:
        other.execute("SELECT pg_terminate_backend(%s)", [old_pid])
    poller = select.poll()
    poller.register(connection.connection.fileno(), select.POLLIN | select.POLLHUP)
    deadline = time.monotonic() + 10
    while not poller.poll(100) and time.monotonic() < deadline:
        pass
    _new_request()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        assert cursor.fetchone()[0] != old_pid
