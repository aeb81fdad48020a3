"""Named states of certificates, so that views and jobs read like sentences."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from accounts.japan_time import japan_day_start


class CertificateQuerySet(QuerySet):
    def not_revoked(self) -> CertificateQuerySet:
        return self.filter(revoked_at__isnull=True)

    def revoked(self) -> CertificateQuerySet:
        return self.filter(revoked_at__isnull=False)

    def valid(self, now: datetime | None = None) -> CertificateQuerySet:
        """Usable for login at `now`: started, not expired, not revoked."""
        now = now or timezone.now()
        return self.filter(revoked_at__isnull=True, not_before__lte=now, not_after__gt=now)  # one filter(): one clone

    def in_state(self, state: str, now: datetime | None = None) -> CertificateQuerySet:
        """In the Certificate.State `state` at `now`: Certificate.state_at in SQL."""
        now = now or timezone.now()
        if state == "valid":
            return self.valid(now)
        if state == "not_yet_valid":
            return self.not_revoked().filter(not_before__gt=now)
        if state == "expired":
            return self.not_revoked().expired(now)
        if state == "revoked":
            return self.revoked()
        raise ValueError(f"no certificate state {state!r}")

    def in_use(self, now: datetime | None = None) -> CertificateQuerySet:
        """The certificate an ID is using: valid at `now` and already used to log in. The ID renews it
        rather than obtaining another.

        One issued but never used (a file lost half-way) is not in use; issuing a new one revokes it.
        """
        return self.valid(now).filter(first_used_at__isnull=False)

    def newest_valid(self, now: datetime | None = None) -> CertificateQuerySet:
        """Valid at `now`, the latest expiry first: `.first()` is an ID's newest valid certificate, a
        renewal as soon as it is issued, used or not (the notices screen's guidance is about it)."""
        return self.valid(now).order_by("-not_after")

    def expired(self, now: datetime | None = None) -> CertificateQuerySet:
        return self.filter(not_after__lte=now or timezone.now())

    def newest_issued(self) -> CertificateQuerySet:
        """Each ID's newest certificate neither revoked nor superseded (expired ones included): nothing
        newer issued to it."""
        newer = self.model.objects.filter(
            owner=OuterRef("owner"), not_before__gt=OuterRef("not_before"), revoked_at__isnull=True
        )
        return self.filter(revoked_at__isnull=True, superseded_at__isnull=True).exclude(Exists(newer))

    def live(self, now: datetime | None = None) -> CertificateQuerySet:
        """The certificates IDs rely on (relied_on), not yet expired at `now`: what reminders, the
        dashboard and the metrics count."""
        return self.relied_on().filter(not_after__gt=now or timezone.now())

    def relied_on(self) -> CertificateQuerySet:
        """Each ID's certificate until a newer one is first used: live, and no newer live certificate of
        the ID has been used to log in. A renewal never used (its file lost, never imported) leaves the
        old certificate relied on, so its reminders keep coming; the renewal counts once it is used."""
        newer_in_use = self.model.objects.filter(
            owner=OuterRef("owner"), not_before__gt=OuterRef("not_before"), revoked_at__isnull=True,
            first_used_at__isnull=False,
        )
        return self.filter(revoked_at__isnull=True, superseded_at__isnull=True).exclude(Exists(newer_in_use))

    def renewed_unused(self, certificate) -> CertificateQuerySet:
        """Newer live certificates of `certificate`'s ID that were never used: a renewal not yet imported."""
        return self.filter(
            owner_id=certificate.owner_id, not_before__gt=certificate.not_before, revoked_at__isnull=True,
            first_used_at__isnull=True,
        )

    def live_for_issuance(self, owner, public_key_sha256: str, now: datetime) -> CertificateQuerySet:
        """All an issuance checks, in one read: any certificate for this public key (anyone's), and
        the owner's certificates neither revoked nor expired at `now` (in use, or awaiting first use).
        Unordered: the caller looks at all of them."""
        return self.filter(
            Q(public_key_sha256=public_key_sha256) | Q(owner=owner, revoked_at__isnull=True, not_after__gt=now)
        ).order_by()

    def awaiting_first_use(self) -> CertificateQuerySet:
        return self.not_revoked().filter(first_used_at__isnull=True)

    def expiring_on_japan_days(self, first: date, last: date) -> CertificateQuerySet:
        """Expiring on a Japan-time calendar day from `first` to `last`, both included."""
        return self.filter(not_after__gte=japan_day_start(first)).expiring_by_japan_day(last)

    def expiring_by_japan_day(self, last: date) -> CertificateQuerySet:
        """Expiring on or before the Japan-time calendar day `last` (expired ones included)."""
        return self.filter(not_after__lt=japan_day_start(last + timedelta(days=1)))

    def lasting_beyond_japan_day(self, last: date) -> CertificateQuerySet:
        """Still valid after the Japan-time calendar day `last` has ended."""
        return self.filter(not_after__gte=japan_day_start(last + timedelta(days=1)))

    def due_for_reminder(self, threshold_days: int, today: date, now: datetime | None = None) -> CertificateQuerySet:
        """Relied-on certificates (a renewal never used does not count) that expire within
        `threshold_days` Japan-time calendar days of `today` (days left = expiry date - today,
        0..threshold) and are still unexpired at `now`.

        "Within", not "exactly": a day the reminder job missed is caught up the next day.
        Customers' certificates only: an operator renews theirs with manage.py issue_operator_certificate.
        """
        return self.live(now).exclude(issued_via=self.model.Channel.OPERATOR_ACCESS).expiring_by_japan_day(
            today + timedelta(days=threshold_days)
        )
