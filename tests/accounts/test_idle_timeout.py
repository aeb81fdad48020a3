"""The idle timeout refreshes a session at most once a minute, not on every request."""

from datetime import UTC, datetime, timedelta

import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.idle import LAST_SEEN_KEY
from tests.support.clients import operator_signed_in


def session_writes(client, path: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        client.get(path)
    return sum('UPDATE "django_session"' in q["sql"] or 'INSERT INTO "django_session"' in q["sql"]
               for q in queries.captured_queries)


def test_a_second_request_within_a_minute_writes_no_session(ca, behind_proxy, olivia, settings):
    with time_machine.travel(datetime.now(UTC), tick=False) as traveller:
        client = operator_signed_in(olivia)
        session_writes(client, "/operator/")
        traveller.shift(timedelta(seconds=settings.SESSION_REFRESH_SECONDS - 5))
        assert session_writes(client, "/operator/") == 0


def test_activity_after_a_minute_refreshes_the_session_expiry(ca, behind_proxy, olivia, settings):
    with time_machine.travel(datetime.now(UTC), tick=False) as traveller:
        client = operator_signed_in(olivia)
        session_writes(client, "/operator/")
        traveller.shift(timedelta(seconds=settings.SESSION_REFRESH_SECONDS + 1))
        assert session_writes(client, "/operator/") == 1
        assert client.session[LAST_SEEN_KEY] == int(datetime.now(UTC).timestamp())
        # 14 minutes idle after that refresh: still logged in; 15 more: gone.
        traveller.shift(timedelta(seconds=settings.SESSION_COOKIE_AGE - 60))
        assert client.get("/operator/").status_code == 200
        traveller.shift(timedelta(seconds=settings.SESSION_COOKIE_AGE + 1))
        assert client.get("/operator/")["Location"].startswith("/operator/login/")
