"""The screens' Jinja2 environment (certportal/jinja2.py): what a template may call does what Django's own does."""

from __future__ import annotations

import pytest
from django.template import engines
from django.urls import clear_script_prefix, reverse, set_script_prefix
from django.utils import translation

from certportal.jinja2 import interpolate, url


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
