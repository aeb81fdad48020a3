"""{% load japan_time %}: `{{ moment|japan_time }}` and `{{ day|japan_date }}` (see accounts/japan_time.py)."""

from __future__ import annotations

from datetime import date, datetime

from django import template

from accounts import japan_time as formats

register = template.Library()


@register.filter
def japan_time(moment: datetime | None) -> str:
    return "" if moment is None else formats.japan_time(moment)


@register.filter
def japan_date(day: date | datetime | None) -> str:
    return "" if day is None else formats.japan_date(day)
