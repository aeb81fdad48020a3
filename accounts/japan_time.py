"""Japan time: the one place that counts its calendar days and writes its dates and times.

Customers read a certificate's expiry as a Japan-time date, so every count of days (the
reminders, the notices screen, the admin sites' filters and the dashboard) goes through
`japan_day`, `japan_day_start` and `days_left`, so that "30 days left" means the same day
everywhere. Every screen and e-mail writes a moment one way, to the minute and named:
「2027年12月1日 15:59（日本時間）」 / "1 December 2027, 15:59 (Japan time)"; customers compare
what the notices screen, the issued screen and the reminder e-mails say, so a time written
three ways reads as three different times. Templates use the `japan_time` library's filters.
"""

from __future__ import annotations

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from django.utils import timezone, translation

JAPAN = ZoneInfo("Asia/Tokyo")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")  # English whatever the process's C locale


# --- calendar days ---------------------------------------------------------------------------


def japan_day(moment: datetime) -> date:
    """The Japan-time calendar date of `moment`."""
    return moment.astimezone(JAPAN).date()


def japan_day_start(day: date) -> datetime:
    """00:00 Japan time on `day`, as an aware instant."""
    return datetime.combine(day, time.min, tzinfo=JAPAN)


def japan_today(now: datetime | None = None) -> date:
    return japan_day(now or timezone.now())


def days_left(until: datetime, today: date | datetime) -> int:
    """Japan-time calendar days from `today` (a day, or a moment's day) to `until`'s day (0 on it)."""
    if isinstance(today, datetime):
        today = japan_day(today)
    return (japan_day(until) - today).days


# --- writing dates and times -----------------------------------------------------------------


def _japanese(language: str | None) -> bool:
    return (language or translation.get_language() or "ja").startswith("ja")


def japan_date(day: date | datetime, language: str | None = None) -> str:
    """2027年12月1日 / 1 December 2027 (a datetime is first put in Japan time)."""
    if isinstance(day, datetime):
        day = japan_day(day)
    if _japanese(language):
        return f"{day.year}年{day.month}月{day.day}日"
    return f"{day.day} {MONTHS[day.month - 1]} {day.year}"


def japan_time(moment: datetime, language: str | None = None) -> str:
    """2027年12月1日 15:59（日本時間） / 1 December 2027, 15:59 (Japan time); `language` defaults to the active one."""
    local = moment.astimezone(JAPAN)
    if _japanese(language):
        return f"{japan_date(local, language)} {local:%H:%M}（日本時間）"
    return f"{japan_date(local, language)}, {local:%H:%M} (Japan time)"
