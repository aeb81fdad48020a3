"""One way to write a time: every screen, e-mail and admin page writes Japan time as the notices screen does."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from django.conf import settings
from django.template import Context, Template
from django.utils import translation
from django.utils.formats import localize

from accounts.japan_time import JAPAN, japan_date, japan_time

# 2027-12-01 06:59:30 UTC is 15:59 on 1 December in Japan.
MOMENT = datetime(2027, 12, 1, 6, 59, 30, tzinfo=UTC)


def test_a_time_is_written_in_japan_time_to_the_minute_and_says_so_in_each_language():
    assert japan_time(MOMENT, "ja") == "2027年12月1日 15:59（日本時間）"
    assert japan_time(MOMENT, "en") == "1 December 2027, 15:59 (Japan time)"
    assert japan_date(date(2027, 1, 9), "ja") == "2027年1月9日"
    assert japan_date(date(2027, 1, 9), "en") == "9 January 2027"


def test_a_moment_just_before_midnight_utc_is_already_the_next_day_in_japan():
    late = datetime(2027, 2, 28, 15, 0, tzinfo=UTC)
    assert japan_time(late, "en") == "1 March 2027, 00:00 (Japan time)"
    assert japan_date(late, "ja") == "2027年3月1日"


@pytest.mark.parametrize("language", ["ja", "en"])
def test_the_template_filters_write_the_active_language(language):
    template = Template(
        "{% load japan_time %}{{ moment|japan_time }} / {{ moment|japan_date }} / {{ none|japan_time }}"
    )
    with translation.override(language):
        written = template.render(Context({"moment": MOMENT, "none": None}))
    assert written == f"{japan_time(MOMENT, language)} / {japan_date(MOMENT, language)} / "


@pytest.mark.parametrize("language", ["ja", "en"])
def test_the_admin_sites_write_times_the_same_way(language):
    with translation.override(language):
        admin_written = localize(MOMENT.astimezone(JAPAN))
        admin_date = localize(MOMENT.astimezone(JAPAN).date())
    assert admin_written == japan_time(MOMENT, language)
    assert admin_date == japan_date(MOMENT, language)


def test_no_template_writes_a_date_or_time_its_own_way():
    """Every template (screens, e-mails, admin pages) goes through the japan_time filters."""
    base = Path(settings.BASE_DIR)
    templates = [*base.glob("templates/**/*.html"), *base.glob("templates/**/*.txt"),
                 *base.glob("*/templates/**/*.html"), *base.glob("screens/**/*.html"), *base.glob("*/jinja2/**/*.html")]
    assert len(templates) > 20
    own_ways = {
        str(path.relative_to(base)): found
        for path in templates
        if (found := re.findall(r"\|\s*(?:date|time)\s*:|\{%\s*now\b|\.(?:strftime|isoformat)\(", path.read_text()))
    }
    assert own_ways == {}


def test_no_screen_admin_or_email_code_formats_a_time_its_own_way():
    """Python code that customers or the admin sites read goes through accounts.japan_time.

    Management commands write for operators at a console (ISO dates there) and are left out.
    """
    base = Path(settings.BASE_DIR)
    modules = [
        path for app in ("accounts", "certificates", "notices", "certportal") for path in (base / app).rglob("*.py")
        if "migrations" not in path.parts and "management" not in path.parts and path.name != "japan_time.py"
    ]
    assert len(modules) > 30
    own_ways = {
        str(path.relative_to(base)): found
        for path in modules
        if (found := re.findall(r"strftime\(|:%[YmdHM]", path.read_text()))
    }
    assert own_ways == {}
