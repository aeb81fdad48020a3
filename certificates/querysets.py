"""Named states of certificates, so that views and jobs read like sentences."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone


class CertificateQuerySet(QuerySet):
    def not_revoked(self) -> CertificateQuerySet:
        return self.filter(revoked_at__isnull=True)

    def revoked(self) -> CertificateQuerySet:
        return self.filter(revoked_at__isnull=False)

    def valid(self, now: datetime | None = None) -> CertificateQuerySet:
        """Usable for login at `now`: started, not expired, not revoked."""
        now = now or timezone.now()
        return self.filter(revoked_at__isnull=True, not_before__lte=now, not_after__gt=now)  # one filter(): one clone

    def in_use(self, now: datetime | None = None) -> CertificateQuerySet:
        """Valid at `now` and already used to log in: the ID renews it rather than obtaining another.

        One issued but never used (a file lost half-way) is not in use; issuing a new one revokes it.
        """
        return self.valid(now).filter(first_used_at__isnull=False)

    def expired(self, now: datetime | None = None) -> CertificateQuerySet:
        return self.filter(not_after__lte=now or timezone.now())

    def current(self) -> CertificateQuerySet:
        """Each ID's newest live certificate: not revoked, not superseded, nothing newer issued."""
        newer = self.model.objects.filter(
            owner=OuterRef("owner"), not_before__gt=OuterRef("not_before"), revoked_at__isnull=True
        )
        return self.filter(revoked_at__isnull=True, superseded_at__isnull=True).exclude(Exists(newer))

    def expiring_within(self, days: int, now: datetime | None = None) -> CertificateQuerySet:
        """Unexpired at `now` and expiring before `now` + `days`."""
        now = now or timezone.now()
        return self.filter(not_after__gt=now, not_after__lte=now + timedelta(days=days))

    def for_login_id(self, login_id: str) -> CertificateQuerySet:
        return self.filter(owner__login_id=login_id)

    def live_for_issuance(self, owner, public_key_sha256: str, now: datetime) -> CertificateQuerySet:
        """All an issuance checks, in one read: any certificate for this public key (anyone's), and
        the owner's certificates neither revoked nor expired at `now` (in use, or awaiting first use).
        Unordered: the caller looks at all of them."""
        return self.filter(
            Q(public_key_sha256=public_key_sha256) | Q(owner=owner, revoked_at__isnull=True, not_after__gt=now)
        ).order_by()

    def awaiting_first_use(self) -> CertificateQuerySet:
        return self.not_revoked().filter(first_used_at__isnull=True)

    def due_for_reminder(self, threshold_days: int, today: date, now: datetime | None = None) -> CertificateQuerySet:
        """Current certificates that expire within `threshold_days` Japan-time calendar days of
        `today` (days left = expiry date - today, 0..threshold) and are still unexpired at `now`.

        "Within", not "exactly": a day the reminder job missed is caught up the next day.
        """
        now = now or timezone.now()
        last_day_end = datetime.combine(today + timedelta(days=threshold_days + 1), time.min)
        return self.current().filter(
            not_after__gt=now, not_after__lt=timezone.make_aware(last_day_end, timezone.get_default_timezone())
        )
