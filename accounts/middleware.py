"""Send an ID that holds a temporary password to the password change page until it has chosen its own."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlencode

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import Resolver404, resolve, reverse
from django.utils.cache import add_never_cache_headers

# What an ID with a temporary password may still reach: the change page itself, logging out
# (the portal's and both admin sites', all named "logout"), switching language.
ALLOWED_URL_NAMES = frozenset({"password-change", "logout", "set_language"})


class PasswordChangeRequiredMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and user.must_change_password and not self._allowed(request):
            query = urlencode({"next": request.get_full_path()}) if request.method == "GET" else ""
            return HttpResponseRedirect(reverse("password-change") + (f"?{query}" if query else ""))
        return self.get_response(request)

    @staticmethod
    def _allowed(request: HttpRequest) -> bool:
        static_url = "/" + settings.STATIC_URL.lstrip("/")
        if request.path_info.startswith(static_url):
            return True
        try:
            match = resolve(request.path_info)
        except Resolver404:
            return False
        return match.url_name in ALLOWED_URL_NAMES


class NoStoreForSessionsMiddleware:
    """Cache-Control: no-store on every answer to a logged-in session or one with state (an enrollment).

    Such pages name the customer, its certificates or its contract's IDs; on a shared PC neither the
    browser's cache nor a proxy may keep them for the next person. Anonymous public answers (the
    login screen before a session exists, the CA and the CRL) keep their own caching.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        user = getattr(request, "user", None)
        session = getattr(request, "session", None)
        if (user is not None and user.is_authenticated) or (session is not None and not session.is_empty()):
            add_never_cache_headers(response)
        return response
