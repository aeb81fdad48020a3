"""An ID's certificate state, as the admin sites and the operators' CSV export name it.

One place for the state and its label: the contract administrators' list, the operators' ID
filter and the export all say "valid, renewal due" on the same Japan-time day as the notices screen.
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import models
from django.db.models import OuterRef, QuerySet, Subquery
from django.utils.translation import gettext_lazy as _

from accounts.japan_time import days_left

from .models import Certificate


class IDCertificateState(models.TextChoices):
    VALID = "valid", _("valid")
    RENEWAL_DUE = "renewal_due", _("valid, renewal due")
    NOT_YET_VALID = "not_yet_valid", _("not yet valid")
    EXPIRED = "expired", _("expired")
    REVOKED = "revoked", _("revoked")
    NONE = "none", _("none")


def with_certificate_state(queryset: QuerySet, now: datetime) -> QuerySet:
    """Annotate each ID with what `certificate_state` reads, in the same query (no query per row)."""
    mine = Certificate.objects.filter(owner=OuterRef("pk"))
    newest = mine.order_by("-not_before", "-pk")
    return queryset.annotate(
        certificate_valid_until=Subquery(mine.newest_valid(now).values("not_after")[:1]),
        newest_certificate_not_after=Subquery(newest.values("not_after")[:1]),
        newest_certificate_revoked_at=Subquery(newest.values("revoked_at")[:1]),
    )


def certificate_state(user, now: datetime) -> IDCertificateState:
    """The state of an ID annotated by `with_certificate_state`: its newest valid certificate's, else
    its newest certificate's. Renewal is due from RENEWAL_WINDOW_DAYS Japan-time days before expiry."""
    if user.certificate_valid_until is not None:
        if days_left(user.certificate_valid_until, now) <= settings.RENEWAL_WINDOW_DAYS:
            return IDCertificateState.RENEWAL_DUE
        return IDCertificateState.VALID
    if user.newest_certificate_not_after is None:
        return IDCertificateState.NONE
    if user.newest_certificate_revoked_at is not None:
        return IDCertificateState.REVOKED
    if user.newest_certificate_not_after <= now:
        return IDCertificateState.EXPIRED
    return IDCertificateState.NOT_YET_VALID
