"""When an ID's certificate is due for renewal, as the important-notices screen tells it.

The window is counted in calendar days in Japan time, as the customer reads the date: from
the day that is RENEWAL_WINDOW_DAYS before the expiry date until the certificate expires.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.utils import timezone

from accounts.models import User

from .japan_time import JAPAN, japan_date
from .models import Certificate
from .querysets import CURRENT_AS_READ


@dataclass(frozen=True)
class RenewalDue:
    certificate: Certificate
    expires_at: datetime  # in Japan time
    days_left: int  # calendar days in Japan time; 0 on the expiry date itself


def current_certificate(user: User, *, now: datetime) -> Certificate | None:
    """The ID's newest certificate that is valid at `now` (a renewed one once issued)."""
    # Read with the request's certificate (Certificate.objects.presented) moments before: used when
    # still so at `now`. A certificate's notBefore is an hour before its issuance, so none becomes
    # valid in between.
    read = getattr(user, CURRENT_AS_READ, None)
    if read is not None and read.at <= now and (read.certificate is None or read.certificate.is_valid_at(now)):
        return read.certificate
    return Certificate.objects.valid(now).filter(owner=user).order_by("-not_after").first()


def days_left(certificate: Certificate, *, now: datetime) -> int:
    return (japan_date(certificate.not_after) - japan_date(now)).days


def renewal_due(user: User, *, now: datetime | None = None, window_days: int | None = None) -> RenewalDue | None:
    """The ID's current certificate with its days left, if it is inside the renewal window at `now`."""
    now = now or timezone.now()
    return renewal_due_for(current_certificate(user, now=now), now=now, window_days=window_days)


def renewal_due_for(
    certificate: Certificate | None, *, now: datetime, window_days: int | None = None
) -> RenewalDue | None:
    """As renewal_due, for a current certificate the caller already has."""
    window_days = settings.RENEWAL_WINDOW_DAYS if window_days is None else window_days
    if certificate is None:
        return None
    left = days_left(certificate, now=now)
    if left > window_days:
        return None
    return RenewalDue(certificate=certificate, expires_at=certificate.not_after.astimezone(JAPAN), days_left=left)
