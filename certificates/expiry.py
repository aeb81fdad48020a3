"""When an ID's certificate is due for renewal, as the important-notices screen tells it.

The window is counted in calendar days in Japan time, as the customer reads the date: from
the day that is RENEWAL_WINDOW_DAYS before the expiry date until the certificate expires.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.utils import timezone

from accounts.japan_time import JAPAN, days_left
from accounts.models import User

from .models import Certificate


@dataclass(frozen=True)
class RenewalDue:
    certificate: Certificate
    expires_at: datetime  # in Japan time
    days_left: int  # calendar days in Japan time; 0 on the expiry date itself


def renewal_due(user: User, *, now: datetime | None = None) -> RenewalDue | None:
    """The ID's newest valid certificate with its days left, if it is inside the renewal window at `now`."""
    now = now or timezone.now()
    # On every 重要なお知らせ: the plain manager filtered by owner builds less than the related manager.
    newest = Certificate.objects.filter(owner=user).newest_valid(now).first()
    return renewal_due_for(newest, now=now)


def renewal_due_for(certificate: Certificate | None, *, now: datetime) -> RenewalDue | None:
    """As renewal_due, for the newest valid certificate the caller already has."""
    if certificate is None:
        return None
    left = days_left(certificate.not_after, now)
    if left > settings.RENEWAL_WINDOW_DAYS:
        return None
    return RenewalDue(certificate=certificate, expires_at=certificate.not_after.astimezone(JAPAN), days_left=left)
