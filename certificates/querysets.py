"""Named states of certificates, so that views and jobs read like sentences."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.db import connections
from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone

from accounts.japan_time import japan_day_start
from accounts.sessions import SessionAsRead, session_statement
from accounts.statements import Columns, fetch_all, fetch_one


@dataclass(frozen=True)
class NewestValidAsRead:
    """The owner's current certificate (or None) as the request's one statement read it at `at`."""

    at: datetime
    certificate: object | None


# Set on the owner that presented() returns; certificates.expiry.newest_valid_certificate uses it.
NEWEST_VALID_AS_READ = "newest_valid_certificate_as_read"


@functools.cache
def _presented_statement(model, db: str) -> tuple[str, Columns, Columns, Columns, Columns]:
    """Built once per process and database (accounts/statements.py)."""
    owner_model = model._meta.get_field("owner").related_model
    c, u = Columns(model, "c", db), Columns(owner_model, "u", db)
    k, x = Columns(model, "k", db), Columns(model, "x", db)  # the current certificate; the subquery finding it
    session_join, session = session_statement(db, "s")
    # Only the models' own table and column names are written in; every value is a parameter. The
    # first LEFT JOIN is the owner's current certificate: the valid one that expires last
    # (certificates.expiry); the second, the request's session row (accounts.sessions).
    sql = (
        f"SELECT {c.sql}, {u.sql}, {k.sql}, {session.sql} FROM {c.table} "  # noqa: S608
        f"INNER JOIN {u.table} ON {u[owner_model._meta.pk.column]} = {c['owner_id']} "
        f"LEFT OUTER JOIN {k.table} ON {k['id']} = (SELECT {x['id']} FROM {x.table} "
        f"WHERE {x['owner_id']} = {c['owner_id']} AND {x['revoked_at']} IS NULL "
        f"AND {x['not_before']} <= %s AND {x['not_after']} > %s "
        f"ORDER BY {x['not_after']} DESC, {x['id']} DESC LIMIT 1) "
        f"{session_join} "
        f"WHERE {c['fingerprint_sha256']} = %s"
    )
    return sql, c, u, k, session


class CertificateAuthorityQuerySet(QuerySet):
    def of_kind(self, kind: str):
        """The CA of that kind (root or issuing), or None: read on every issuance and OCSP answer, so that a
        changed key reference is seen at once, with a statement built once per process."""
        sql, columns = _authority_statement(self.model, self.db)
        row = fetch_one(self.db, sql, [kind])
        return None if row is None else columns.instance(self.db, row)


@functools.cache
def _authority_statement(model, db: str) -> tuple[str, Columns]:
    a = Columns(model, "a", db)
    return f"SELECT {a.sql} FROM {a.table} WHERE {a['kind']} = %s", a  # noqa: S608 (names from the model)


@functools.cache
def _live_for_issuance_statement(model, db: str) -> tuple[str, Columns]:
    c = Columns(model, "c", db)
    return (
        f"SELECT {c.sql} FROM {c.table} WHERE {c['public_key_sha256']} = %s "  # noqa: S608 (names from the model)
        f"OR ({c['owner_id']} = %s AND {c['revoked_at']} IS NULL AND {c['not_after']} > %s)",
        c,
    )


class CertificateQuerySet(QuerySet):
    def presented(self, fingerprint_sha256: str, now: datetime, session_key: str | None = None):
        """The certificate with this fingerprint, its owner, the owner's current certificate at `now`
        and, given the request's session key, that session's row: (certificate or None, SessionAsRead or None).

        One statement, what every request with a client certificate reads: its state (revoked,
        expired) comes from the database each time, nothing of it is kept between requests. The
        owner carries the current certificate (NEWEST_VALID_AS_READ) for the notices page.
        """
        sql, presented, owner, current, session = _presented_statement(self.model, self.db)
        at = connections[self.db].ops.adapt_datetimefield_value(now)
        values = fetch_one(self.db, sql, [at, at, session_key, at, fingerprint_sha256])
        if values is None:
            return None, None
        certificate = presented.instance(self.db, values[:presented.width])
        end = presented.width + owner.width
        certificate.owner = owner.instance(self.db, values[presented.width:end])
        newest = None
        if values[end] is not None:
            newest = certificate if values[end] == certificate.pk else current.instance(
                self.db, values[end:end + current.width])
        setattr(certificate.owner, NEWEST_VALID_AS_READ, NewestValidAsRead(at=now, certificate=newest))
        as_read = None
        if session_key is not None:
            row = values[end + current.width:]
            as_read = SessionAsRead(session_key, None if row[0] is None else session.instance(self.db, row))
        return certificate, as_read

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
        return self.valid(now).order_by("-not_after", "-id")  # as Certificate.objects.presented reads it

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

    def live_for_issuance(self, owner, public_key_sha256: str, now: datetime) -> list:
        """All an issuance checks, in one read: any certificate for this public key (anyone's), and
        the owner's certificates neither revoked nor expired at `now` (in use, or awaiting first use).
        Unordered: the caller looks at all of them. A list, read with a statement built once per process."""
        sql, columns = _live_for_issuance_statement(self.model, self.db)
        at = connections[self.db].ops.adapt_datetimefield_value(now)
        return [columns.instance(self.db, row) for row in fetch_all(self.db, sql, [public_key_sha256, owner.pk, at])]

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
