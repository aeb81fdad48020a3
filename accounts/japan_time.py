"""The one way every screen and e-mail writes a date or a time: Japan time, to the minute, named.

「2027年12月1日 15:59（日本時間）」 / "1 December 2027, 15:59 (Japan time)". Customers compare
what the notices screen, the issued screen and the reminder e-mails say, so a time written
three ways reads as three different times. Templates use the `japan_time` library's filters.
"""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from django.utils import translation

JAPAN = ZoneInfo("Asia/Tokyo")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")  # English whatever the process's C locale


def _japanese(language: str | None) -> bool:
    return (language or translation.get_language() or "ja").startswith("ja")


def japan_date(day: date | datetime, language: str | None = None) -> str:
    """2027年12月1日 / 1 December 2027 (a datetime is first put in Japan time)."""
    if isinstance(day, datetime):
        day = day.astimezone(JAPAN).date()
    if _japanese(language):
        return f"{day.year}年{day.month}月{day.day}日"
    return f"{day.day} {MONTHS[day.month - 1]} {day.year}"


def japan_time(moment: datetime, language: str | None = None) -> str:
    """2027年12月1日 15:59（日本時間） / 1 December 2027, 15:59 (Japan time); `language` defaults to the active one."""
    local = moment.astimezone(JAPAN)
    if _japanese(language):
        return f"{japan_date(local, language)} {local:%H:%M}（日本時間）"
    return f"{japan_date(local, language)}, {local:%H:%M} (Japan time)"
