"""Send an ID that holds a temporary password to the password change page until it has chosen its own; the
headers that keep private answers out of caches, and the site's Content-Security-Policy."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from urllib.parse import urlencode

from csp.constants import HEADER, HEADER_REPORT_ONLY
from csp.middleware import CheckableLazyObject, CSPMiddleware, PolicyParts
from csp.utils import build_policy
from django.conf import settings
from django.conf.urls.i18n import is_language_prefix_patterns_used
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.middleware import locale
from django.urls import Resolver404, resolve, reverse
from django.utils import translation
from django.utils.cache import add_never_cache_headers, patch_vary_headers
from django.utils.http import http_date

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
            if response.has_header("Cache-Control") or response.has_header("Expires"):
                add_never_cache_headers(response)  # Django merges them with what the view set
            else:  # the same two headers, without parsing an empty Cache-Control twice on every page
                response.headers["Cache-Control"] = _never_cache_control()
                response.headers["Expires"] = _http_date_of(int(time.time()))
        return response


@functools.lru_cache(maxsize=1)
def _http_date_of(second: int) -> str:
    """Expires: now, as Django writes it, formatted once a second rather than on every page."""
    return http_date(second)


@functools.cache
def _never_cache_control() -> str:
    """The Cache-Control that Django's add_never_cache_headers gives a response that had none."""
    response = HttpResponse()
    add_never_cache_headers(response)
    return response.headers["Cache-Control"]


# What django-csp's get_policy_parts gives for a response that changes nothing of the site's policy.
_SITE_POLICY_ONLY = PolicyParts()
# django-csp's two headers: the header, the response attribute exempting from it, the setting that configures it.
_POLICY_HEADERS = (
    (HEADER, "_csp_exempt", "CONTENT_SECURITY_POLICY", False),
    (HEADER_REPORT_ONLY, "_csp_exempt_ro", "CONTENT_SECURITY_POLICY_REPORT_ONLY", True),
)


class ContentSecurityPolicyMiddleware(CSPMiddleware):
    """django-csp's, giving each response the site's own policy as django-csp built it once per process.

    django-csp builds the header from the settings anew for every response, the costliest middleware
    on 重要なお知らせ (README, Benchmarks). A response needs another policy only through django-csp
    itself (a nonce asked for, a decorator's policy, DEBUG's error pages): django-csp still builds those.
    """

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        if settings.DEBUG or getattr(request, "_csp_nonce", None) is not None or any(
            self.get_policy_parts(request=request, response=response, report_only=report_only) != _SITE_POLICY_ONLY
            for report_only in (False, True)
        ):
            return super().process_response(request, response)
        for header, exempt, setting, report_only in _POLICY_HEADERS:
            policy = _site_policy(report_only)
            excluded = (getattr(settings, setting, None) or {}).get("EXCLUDE_URL_PREFIXES") or ()
            if policy and header not in response and not getattr(response, exempt, False) \
                    and not request.path_info.startswith(tuple(excluded)):
                response[header] = policy
        # As django-csp does once its header is written: a nonce asked for later is an error, not a silent gap.
        request.csp_nonce = CheckableLazyObject(self._csp_nonce_post_response)
        return response


@functools.cache
def _site_policy(report_only: bool) -> str:
    """django-csp's header from the settings alone, as it builds it for a response that changes nothing."""
    return build_policy(report_only=report_only)


@receiver(setting_changed)
def _forget_site_policy(*, setting: str, **kwargs: object) -> None:
    if setting.startswith("CONTENT_SECURITY_POLICY"):
        _site_policy.cache_clear()


class LocaleMiddleware(locale.LocaleMiddleware):
    """Django's, without its two lookups of a language code in the path when no URL starts with one.

    The portal's URLs have no language prefix (no i18n_patterns). Django still looks for a language
    in the path's first segment ("notices") twice per request, and fails each time with an exception.
    Its answer is then unused: the language comes from the cookie, Accept-Language or the default, and
    the response gets the same Vary and Content-Language as from Django's. With language-prefixed
    URLs, every request goes to Django's own middleware.
    """

    def process_request(self, request: HttpRequest) -> None:
        if _language_prefixed_urls(request):
            return super().process_request(request)
        translation.activate(translation.get_language_from_request(request))
        request.LANGUAGE_CODE = translation.get_language()
        return None

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        if _language_prefixed_urls(request):
            return super().process_response(request, response)
        patch_vary_headers(response, ("Accept-Language",))
        response.headers.setdefault("Content-Language", translation.get_language())
        return response


def _language_prefixed_urls(request: HttpRequest) -> bool:
    return is_language_prefix_patterns_used(getattr(request, "urlconf", settings.ROOT_URLCONF))[0]
