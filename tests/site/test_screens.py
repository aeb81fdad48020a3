"""The screens' Jinja2 environment (certportal/jinja2.py): what a template may call does what Django's own does."""

from __future__ import annotations

import re
import struct
from collections import ChainMap, Counter
from pathlib import Path

import pytest
from django.conf import settings
from django.middleware.csrf import CSRF_ALLOWED_CHARS, CSRF_SECRET_LENGTH, _unmask_cipher_token
from django.template import engines
from django.template.defaultfilters import linebreaks_filter
from django.templatetags.static import static
from django.urls import clear_script_prefix, reverse, set_script_prefix
from django.utils import translation
from django.utils.safestring import mark_safe
from markupsafe import Markup

from certportal.jinja2 import (
    _random_csrf_positions,
    interpolate,
    languages,
    linebreaks,
    page_language,
    static_url,
    url,
)
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


@pytest.mark.parametrize("text", [
    "one line", "two\nlines", "windows\r\nline\r\n\r\nbreaks", "old mac\rline", "a\n\n\n\nfar apart", "\n\nleading",
    "trailing\n\n", "", "<script>alert('x')</script> & \"quoted\"",
    "日曜日 2:00〜4:00 は停止します。\nご迷惑をおかけします。",
])
def test_linebreaks_writes_what_djangos_filter_writes(text):
    assert str(linebreaks(text)) == linebreaks_filter(text, autoescape=True)
    marked = Markup("<b>kept</b>\nbold")  # markup already: Django does not escape it either
    assert str(linebreaks(marked)) == linebreaks_filter(mark_safe(str(marked)), autoescape=True)


def screen_messages() -> set[str]:
    """Every literal _("…") of the customers' screens."""
    found = set()
    for template in [*Path(settings.BASE_DIR, "screens").rglob("*.html"),
                     *Path(settings.BASE_DIR, "accounts", "jinja2").rglob("*.html")]:
        found.update(re.findall(r'_\("((?:[^"\\]|\\.)*)"\)', template.read_text()))
    return found


@pytest.mark.parametrize("language", ["ja", "en"])
def test_a_pages_translations_are_djangos_in_the_pages_language(rf, language):
    messages = screen_messages()
    assert len(messages) > 50
    other = "en" if language == "ja" else "ja"
    with translation.override(other):  # the other language first, so that a mix-up would show
        page_language(rf.get("/"))["_"]("Log out")
    with translation.override(language):
        context = page_language(rf.get("/"))
        assert context["current_language"] == language
        translate = context["_"]
        for message in sorted(messages):
            assert translate(message) == translation.gettext(message), message
    assert translate("Corporate internet banking") == ("法人インターネットバンキング" if language == "ja" else
                                                       "Corporate internet banking")


def test_a_page_with_translation_deactivated_shows_the_messages_untranslated(rf):
    with translation.override(None):
        assert page_language(rf.get("/"))["_"]("Corporate internet banking") == "Corporate internet banking"


def write_mo(path: Path, messages: dict[str, str]) -> None:
    """A GNU .mo catalogue of `messages`, as msgfmt writes it (with the header that names the charset)."""
    entries = sorted({"": "Content-Type: text/plain; charset=UTF-8\n", **messages}.items())
    texts = [text.encode() for text, _ in entries] + [translated.encode() for _, translated in entries]
    count, tables = len(entries), 7 * 4
    data_start = tables + 2 * count * 8
    table, data = b"", b""
    for text in texts:  # the originals' table, then the translations' (length, offset) table
        table += struct.pack("<2I", len(text), data_start + len(data))
        data += text + b"\0"
    path.write_bytes(struct.pack("<7I", 0x950412DE, 0, count, tables, tables + count * 8, 0, 0) + table + data)


def test_a_new_catalogue_is_read_after_the_locale_paths_change(rf, settings, tmp_path):
    with translation.override("ja"):
        assert page_language(rf.get("/"))["_"]("Log out") != "さようなら"
    catalogue = tmp_path / "ja" / "LC_MESSAGES"
    catalogue.mkdir(parents=True)
    write_mo(catalogue / "django.mo", {"Log out": "さようなら"})
    settings.LOCALE_PATHS = [tmp_path, *settings.LOCALE_PATHS]
    with translation.override("ja"):
        assert page_language(rf.get("/"))["_"]("Log out") == "さようなら"


def test_a_second_page_masks_the_same_secret_anew_renews_the_cookie_and_django_accepts_it(ca, behind_proxy):
    client = CertificateClient(enforce_csrf_checks=True)
    first = client.get(reverse("login"))  # no cookie yet: Django's own token and a new cookie
    secret = first.cookies[settings.CSRF_COOKIE_NAME].value
    second = client.get(reverse("login"))  # the cookie sent: the page masks its secret
    token = csrf_tokens(second)[0]
    assert token != csrf_tokens(first)[0] and len(token) == 64 and token.isalnum() and token.isascii()
    assert _unmask_cipher_token(token) == secret
    assert second.cookies[settings.CSRF_COOKIE_NAME].value == secret  # sent again: its expiry renewed
    switched = client.post(reverse("set_language"), {"language": "en", "next": "/", "csrfmiddlewaretoken": token})
    assert switched.status_code == 302


def test_the_masks_characters_are_drawn_evenly_from_djangos_alphabet():
    drawn = "".join(CSRF_ALLOWED_CHARS[p] for _ in range(3000) for p in _random_csrf_positions(CSRF_SECRET_LENGTH))
    assert set(drawn) <= set(CSRF_ALLOWED_CHARS)
    counts = Counter(drawn)
    expected = len(drawn) / len(CSRF_ALLOWED_CHARS)  # 1548 each
    chi_square = sum((counts[c] - expected) ** 2 / expected for c in CSRF_ALLOWED_CHARS)
    # 61 degrees of freedom: above 110 happens by chance about once in 10,000 runs. A plain byte % 62
    # would favour the first 8 characters by a quarter and score in the hundreds.
    assert chi_square < 110, chi_square


def test_a_templates_globals_read_as_jinja2s_chain_map():
    env = engines["jinja2"].env
    template = env.from_string("{{ answer }} {{ url('logout') }}", globals={"answer": 42, "url": lambda name: name})
    assert template.render() == "42 logout"  # its own globals over the environment's
    assert env.from_string("{{ url('logout') }}").render() == reverse("logout")  # the environment's untouched
    merged = env.make_globals({"answer": 42})
    assert dict(merged) == dict(ChainMap({"answer": 42}, env.globals))
    assert merged.get("missing", "default") == "default" and "missing" not in merged
    with pytest.raises(KeyError):
        merged["missing"]
