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
from .querysets import NEWEST_VALID_AS_READ


@dataclass(frozen=True)
class RenewalDue:
    certificate: Certificate
    expires_at: datetime  # in Japan time
    days_left: int  # calendar days in Japan time; 0 on the expiry date itself


def newest_valid_certificate(user: User, *, now: datetime) -> Certificate | None:
    """The ID's newest valid certificate at `now` (Certificate.objects.newest_valid), a renewal as soon as issued."""
    # Read with the request's certificate (Certificate.objects.presented) moments before: used when
    # still so at `now`. A certificate's notBefore is an hour before its issuance, so none becomes
    # valid in between.
    read = getattr(user, NEWEST_VALID_AS_READ, None)
    if read is not None and read.at <= now and (read.certificate is None or read.certificate.is_valid_at(now)):
        return read.certificate
    # The plain manager filtered by owner builds less than the related manager.
    return Certificate.objects.filter(owner=user).newest_valid(now).first()


def renewal_due(user: User, *, now: datetime | None = None) -> RenewalDue | None:
    """The ID's newest valid certificate with its days left, if it is inside the renewal window at `now`."""
    now = now or timezone.now()
    return renewal_due_for(newest_valid_certificate(user, now=now), now=now)


def renewal_due_for(certificate: Certificate | None, *, now: datetime) -> RenewalDue | None:
    """As renewal_due, for the newest valid certificate the caller already has."""
    if certificate is None:
        return None
    left = days_left(certificate.not_after, now)
    if left > settings.RENEWAL_WINDOW_DAYS:
        return None
    return RenewalDue(certificate=certificate, expires_at=certificate.not_after.astimezone(JAPAN), days_left=left)
