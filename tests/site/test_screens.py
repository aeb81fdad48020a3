"""The screens' Jinja2 environment (certportal/jinja2.py): what a template may call does what Django's own does."""

from __future__ import annotations

import re

import pytest
from django.template import engines
from django.templatetags.static import static
from django.urls import clear_script_prefix, reverse, set_script_prefix
from django.utils import translation

from certportal.jinja2 import interpolate, languages, static_url, url
from tests.support.clients import CertificateClient, issue_for, signed_in


def test_url_is_django_reverse_under_any_script_prefix():
    assert url("logout") == reverse("logout")
    set_script_prefix("/bank/")
    try:
        assert url("logout") == reverse("logout") == "/bank/logout/"
    finally:
        clear_script_prefix()
    assert url("logout") == reverse("logout")


def test_url_with_arguments_reverses_them():
    assert url("renewal-done", "0A1B") == reverse("renewal-done", args=["0A1B"])


def test_interpolate_escapes_the_values_and_keeps_the_translations_markup():
    filled = interpolate("Expires on: <strong>%(expiry)s</strong>", expiry="<script>x</script>")
    assert str(filled) == "Expires on: <strong>&lt;script&gt;x&lt;/script&gt;</strong>"


@pytest.mark.parametrize(("language", "expected"), [
    ("ja", "法人インターネットバンキング"), ("en", "Corporate internet banking"),
])
def test_a_screen_string_is_translated_into_the_active_language(language, expected):
    template = engines["jinja2"].from_string('{{ _("Corporate internet banking") }}')
    with translation.override(language):
        assert template.render() == expected


def test_a_screen_escapes_what_it_is_given():
    assert engines["jinja2"].from_string("{{ value }}").render({"value": "<b>&</b>"}) == "&lt;b&gt;&amp;&lt;/b&gt;"


def csrf_tokens(page) -> list[str]:
    return re.findall(r'<input type="hidden" name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode())


def test_every_form_of_the_login_screen_carries_the_pages_one_token_which_django_accepts(ca, behind_proxy, alice):
    client = CertificateClient(enforce_csrf_checks=True)
    page = client.get(reverse("login"))
    tokens = csrf_tokens(page)
    assert len(tokens) == page.content.decode().count("<form") == 2  # the language switch and the login
    assert len(set(tokens)) == 1
    switched = client.post(reverse("set_language"), {"language": "en", "next": "/", "csrfmiddlewaretoken": tokens[0]})
    assert switched.status_code == 302
    refused = client.post(reverse("set_language"), {"language": "en", "next": "/", "csrfmiddlewaretoken": "x" * 64})
    assert refused.status_code == 403


def test_the_logout_form_of_a_logged_in_screen_carries_a_token_django_accepts(ca, behind_proxy, alice):
    certificate, _key = issue_for(alice)
    client = signed_in(alice, certificate)
    client.handler.enforce_csrf_checks = True  # as a browser's POST is checked
    page = client.get(reverse("important-notices"))
    tokens = csrf_tokens(page)
    assert len(tokens) == page.content.decode().count("<form") == 2 and len(set(tokens)) == 1
    came_from = page.wsgi_request.build_absolute_uri()  # over HTTPS Django also wants the page's own Referer
    logout = client.post(reverse("logout"), {"csrfmiddlewaretoken": tokens[-1]}, HTTP_REFERER=came_from)
    assert logout.status_code == 302
    assert client.get(reverse("important-notices")).status_code == 302  # logged out: back to the login


def test_static_is_djangos_and_follows_a_changed_static_url(settings):
    assert static_url("certportal/portal.css") == static("certportal/portal.css")
    settings.STATIC_URL = "https://cdn.bank.example/static/"
    assert static_url("certportal/portal.css") == "https://cdn.bank.example/static/certportal/portal.css"


def test_the_language_switch_offers_the_configured_languages_in_their_own_names(settings):
    assert languages() == (("ja", "日本語"), ("en", "English"))
    settings.LANGUAGES = [("ja", "Japanese")]
    assert languages() == (("ja", "日本語"),)
