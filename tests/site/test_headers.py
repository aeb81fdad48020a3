"""Headers of every page type: a strict Content-Security-Policy, a Permissions-Policy, no-store where private.

Chromium's side (no violation on any screen) is tests/e2e/test_accessibility.py.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path

import pytest
from csp.constants import NONCE, SELF
from csp.decorators import csp_exempt, csp_update
from csp.exceptions import CSPNonceError
from csp.utils import build_policy
from django.conf import settings
from django.http import HttpResponse
from django.middleware.locale import LocaleMiddleware as DjangoLocaleMiddleware
from django.test import Client, RequestFactory
from django.urls import reverse
from django.utils import translation
from django.utils.cache import add_never_cache_headers, patch_cache_control
from django.utils.http import parse_http_date

from accounts.middleware import ContentSecurityPolicyMiddleware, LocaleMiddleware, NoStoreForSessionsMiddleware
from tests.support.clients import CertificateClient, issue_for, operator_signed_in
from tests.support.personas import PASSWORD
from tests.support.pki import make_csr
from tests.support.servers import Browser

pytestmark = pytest.mark.usefixtures("ca", "behind_proxy")


def policy(response) -> dict[str, list[str]]:
    header = response.headers["Content-Security-Policy"]
    return {name: values for name, *values in (part.split() for part in header.split(";") if part.strip())}


def assert_strict(response, where: str) -> None:
    directives = policy(response)
    assert directives["default-src"] == ["'none'"], where
    assert directives["script-src"] == ["'self'"], where
    assert directives["style-src"] == ["'self'"], where
    assert directives["frame-ancestors"] == ["'none'"], where
    assert "unsafe" not in response.headers["Content-Security-Policy"], where
    permissions = response.headers["Permissions-Policy"]
    for feature in ("camera", "microphone", "geolocation", "payment", "usb"):
        assert f"{feature}=()" in permissions, (where, permissions)


@pytest.fixture
def administrator_browser(alice):
    certificate, _key = issue_for(alice)
    client = CertificateClient(certificate)
    assert client.post(reverse("login"), {"login_id": alice.login_id, "password": PASSWORD}).status_code == 302
    return client


def test_every_kind_of_page_sends_the_strict_policy_and_the_permissions_policy(administrator_browser, olivia):
    anonymous = CertificateClient()
    operator = operator_signed_in(olivia)
    answers = {
        "login": anonymous.get(reverse("login")),
        "obtain": anonymous.get(reverse("obtain-start")),
        "not found": anonymous.get("/no-such-page/"),
        "CA certificate": anonymous.get("/pki/ca.pem"),
        "notices": administrator_browser.get(reverse("important-notices")),
        "renewal": administrator_browser.get(reverse("renewal-start")),
        "contract site": administrator_browser.get("/manage/"),
        "operators' login": Client().get("/operator/login/"),
        "operators' site": operator.get("/operator/"),
    }
    for where, response in answers.items():
        assert response.status_code in (200, 404), (where, response.status_code)
        assert_strict(response, where)


def test_answers_to_a_logged_in_session_and_the_enrollment_api_are_never_stored(administrator_browser, olivia):
    issued = administrator_browser.post(reverse("renewal-issue"), data=json.dumps({"csr": make_csr()[0].decode()}),
                                        content_type="application/json", HTTP_ACCEPT="application/json")
    operator = operator_signed_in(olivia)
    for where, response in {
        "notices": administrator_browser.get(reverse("important-notices")),
        "password change": administrator_browser.get(reverse("password-change")),
        "issuing API": issued,
        "issued screen": administrator_browser.get(issued.json()["next"]),
        "contract site": administrator_browser.get("/manage/"),
        "operators' site": operator.get("/operator/"),
    }.items():
        assert response.status_code in (200, 201), (where, response.status_code)
        assert "no-store" in response.headers.get("Cache-Control", ""), where


def test_public_answers_without_a_session_keep_their_own_caching():
    assert CertificateClient().get("/pki/crl").headers["Cache-Control"] == "public, max-age=300"


def test_nginx_hides_its_version_and_its_error_page_keeps_to_a_policy_of_its_own():
    site = (Path(settings.BASE_DIR) / "deploy" / "nginx.conf").read_text()
    assert re.search(r"^server_tokens off;", site, re.M)
    page = (Path(settings.BASE_DIR) / "deploy" / "errors" / "certificate-error.html").read_text()
    styles = re.findall(r"<style>(.*?)</style>", page, re.S)
    allowed = re.search(r"style-src ([^;]*);", site.split("location = /certificate-error.html", 1)[1]).group(1)
    for style in styles:
        digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in allowed.split()
    assert "<script" not in page and "style=" not in page


def test_nginx_names_no_version_in_its_header_or_on_its_own_error_pages(nginx_portal):
    browser = Browser(nginx_portal)
    login = browser.get("/")
    assert login.status == 200
    assert login.headers["Server"] == "nginx"
    assert "script-src 'self'" in login.headers["Content-Security-Policy"]  # Django's, through nginx
    too_big = browser.request("POST", "/", headers={"Content-Type": "text/plain", "Content-Length": "100000"})
    assert too_big.status == 413
    assert too_big.headers["Server"] == "nginx"
    assert "<center>nginx</center>" in too_big.text


class TestThePolicyBuiltOnce:
    """accounts.middleware.ContentSecurityPolicyMiddleware: django-csp's header, built once and the same."""

    @staticmethod
    def answer(view, path: str = "/notices/"):
        request = RequestFactory().get(path)
        middleware = ContentSecurityPolicyMiddleware(view)
        return middleware(request), request

    def test_a_page_gets_the_policy_django_csp_builds_from_the_settings(self):
        response, _request = self.answer(lambda request: HttpResponse("page"))
        assert response.headers["Content-Security-Policy"] == build_policy()
        assert "Content-Security-Policy-Report-Only" not in response.headers  # none configured

    def test_a_changed_setting_is_seen_at_once(self, settings):
        self.answer(lambda request: HttpResponse("page"))
        settings.CONTENT_SECURITY_POLICY = {"DIRECTIVES": {"default-src": ["'self'"]}}
        response, _request = self.answer(lambda request: HttpResponse("page"))
        assert response.headers["Content-Security-Policy"] == "default-src 'self'"

    def test_a_views_own_policy_and_exemption_are_django_csps(self):
        updated, _request = self.answer(csp_update({"img-src": ["data:"]})(lambda request: HttpResponse("page")))
        assert "img-src 'self' data:" in updated.headers["Content-Security-Policy"]
        exempt, _request = self.answer(csp_exempt()(lambda request: HttpResponse("page")))
        assert "Content-Security-Policy" not in exempt.headers

    def test_a_nonce_asked_for_after_the_header_is_written_is_an_error(self):
        _response, request = self.answer(lambda request: HttpResponse("page"))
        with pytest.raises(CSPNonceError):
            str(request.csp_nonce)

    def test_a_nonce_asked_for_by_the_view_reaches_the_header(self, settings):
        settings.CONTENT_SECURITY_POLICY = {"DIRECTIVES": {"default-src": ["'none'"], "script-src": [SELF, NONCE]}}
        seen = {}

        def view(request):
            seen["nonce"] = str(request.csp_nonce)
            return HttpResponse("page")

        response, _request = self.answer(view)
        assert f"script-src 'self' 'nonce-{seen['nonce']}'" in response.headers["Content-Security-Policy"]


class TestNoStoreForSessions:
    """accounts.middleware.NoStoreForSessionsMiddleware: Django's never-cache headers on a session's answers."""

    @staticmethod
    def answer(view):
        request = RequestFactory().get("/notices/")
        request.user = type("LoggedIn", (), {"is_authenticated": True})()
        return NoStoreForSessionsMiddleware(view)(request)

    def test_a_page_gets_the_headers_django_gives_it(self):
        expected = HttpResponse("page")
        add_never_cache_headers(expected)
        response = self.answer(lambda request: HttpResponse("page"))
        assert response.headers["Cache-Control"] == expected.headers["Cache-Control"]
        assert abs(parse_http_date(response.headers["Expires"]) - parse_http_date(expected.headers["Expires"])) <= 1

    def test_a_views_own_caching_is_merged_as_django_merges_it(self):
        def cached_view(request):
            response = HttpResponse("page")
            patch_cache_control(response, max_age=300, public=True)
            return response

        directives = {d.strip() for d in self.answer(cached_view).headers["Cache-Control"].split(",")}
        assert {"no-store", "no-cache", "must-revalidate", "private", "max-age=0"} <= directives
        assert "public" not in directives and "max-age=300" not in directives


class TestTheLanguageChosenAsDjangoChoosesIt:
    """accounts.middleware.LocaleMiddleware: Django's choice of language and its headers, without path lookups."""

    @staticmethod
    def choose(middleware_class, path: str, urlconf: str | None, **headers):
        request = RequestFactory().get(path, **headers)
        if urlconf:
            request.urlconf = urlconf
        chosen = {}

        def view(request):
            chosen["active"], chosen["request"] = translation.get_language(), request.LANGUAGE_CODE
            return HttpResponse("page")

        with translation.override("ja"):
            response = middleware_class(view)(request)
        return chosen, response.headers.get("Vary"), response.headers.get("Content-Language")

    @pytest.mark.parametrize("headers", [
        {}, {"HTTP_ACCEPT_LANGUAGE": "en-US,en;q=0.9"}, {"HTTP_ACCEPT_LANGUAGE": "fr,ja;q=0.5"},
        {"HTTP_COOKIE": "django_language=en"}, {"HTTP_COOKIE": "django_language=xx", "HTTP_ACCEPT_LANGUAGE": "en"},
    ])
    @pytest.mark.parametrize("path", ["/notices/", "/en/notices/", "/"])
    def test_the_portals_urls_get_djangos_language_and_headers(self, headers, path):
        ours = self.choose(LocaleMiddleware, path, None, **headers)
        assert ours == self.choose(DjangoLocaleMiddleware, path, None, **headers)
        assert ours[0]["active"] in {"ja", "en"}

    def test_language_prefixed_urls_are_left_to_djangos_middleware(self):
        ours = self.choose(LocaleMiddleware, "/en/page/", "tests.support.prefixed_urls")
        assert ours == self.choose(DjangoLocaleMiddleware, "/en/page/", "tests.support.prefixed_urls")
        assert ours[0]["active"] == "en"  # from the path, which only Django's middleware reads
