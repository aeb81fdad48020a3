"""The session idle timeout, without a database write on every request.

Django can refresh a session's expiry on every request (SESSION_SAVE_EVERY_REQUEST), but
that is one write transaction per page view. Instead the session is touched at most once
a minute: its server-side expiry (SESSION_COOKIE_AGE, the idle timeout) then trails the
last activity by at most SESSION_REFRESH_SECONDS.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

LAST_SEEN_KEY = "certportal_last_seen"


class IdleTimeoutMiddleware:
    """Goes right after SessionMiddleware."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        session = request.session
        if not session.is_empty() and not session.modified:
            now = int(time.time())
            if now - session.get(LAST_SEEN_KEY, 0) >= settings.SESSION_REFRESH_SECONDS:
                session[LAST_SEEN_KEY] = now  # saved by SessionMiddleware, with a new expiry
        return response
