"""Japan-time calendar days, as customers read a certificate's expiry date.

The one place that turns an instant into a Japan-time date and a date back into the instant
its day starts; the reminders, the notices screen, the admin's filters and the dashboard
all count days through it, so that "30 days left" means the same day everywhere.
"""

from __future__ import annotations

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from django.utils import timezone

JAPAN = ZoneInfo("Asia/Tokyo")


def japan_date(moment: datetime) -> date:
    """The Japan-time calendar date of `moment`."""
    return moment.astimezone(JAPAN).date()


def japan_day_start(day: date) -> datetime:
    """00:00 Japan time on `day`, as an aware instant."""
    return datetime.combine(day, time.min, tzinfo=JAPAN)


def japan_today(now: datetime | None = None) -> date:
    return japan_date(now or timezone.now())
