"""The certificate revocation list: signed by the issuing CA, re-signed on every revocation."""

from __future__ import annotations

from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from . import ca
from .models import Certificate, CertificateAuthority, RevocationList, RevocationReason


def _is_fresh(crl: RevocationList | None, now: datetime) -> bool:
    return crl is not None and crl.next_update - timedelta(hours=settings.CRL_REFRESH_MARGIN_HOURS) > now


def publish_crl(*, now: datetime | None = None, unless_fresh: bool = False) -> RevocationList:
    """Sign a new CRL listing every revoked certificate that has not yet expired.

    With `unless_fresh`, the newest CRL is returned instead if it is fresh once the lock is held:
    requests that all found it due, and waited for each other here, sign one new CRL between them.
    """
    now = now or timezone.now()
    with transaction.atomic():
        issuing = ca.unlock(CertificateAuthority.Kind.ISSUING)
        # Serialises publishers, so CRL numbers strictly increase.
        record = CertificateAuthority.objects.select_for_update().get(pk=issuing.record.pk)
        if unless_fresh:
            latest = RevocationList.objects.order_by("-number").first()
            if _is_fresh(latest, now):
                return latest
        number = record.last_crl_number + 1
        next_update = now + timedelta(hours=settings.CRL_VALIDITY_HOURS)
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(issuing.certificate.subject)
            .last_update(now)
            .next_update(next_update)
            .add_extension(x509.CRLNumber(number), critical=False)
            .add_extension(issuing.key_identifier, critical=False)
        )
        revoked = Certificate.objects.revoked().filter(not_after__gt=now).values_list(
            "serial_number", "revoked_at", "revocation_reason"
        )
        for serial, revoked_at, reason in revoked.iterator():
            entry = x509.RevokedCertificateBuilder().serial_number(int(serial, 16)).revocation_date(revoked_at)
            if reason != RevocationReason.UNSPECIFIED:
                entry = entry.add_extension(
                    x509.CRLReason(RevocationReason(reason).x509_reason), critical=False
                )
            builder = builder.add_revoked_certificate(entry.build())
        crl = ca.sign_with(issuing, builder)
        record.last_crl_number = number
        record.save(update_fields=["last_crl_number"])
        return RevocationList.objects.create(
            number=number, this_update=now, next_update=next_update,
            der=crl.public_bytes(serialization.Encoding.DER),
        )


def current_crl(*, now: datetime | None = None) -> RevocationList:
    """The newest CRL, re-signed first if its nextUpdate is near or past."""
    now = now or timezone.now()
    latest = RevocationList.objects.order_by("-number").first()
    if _is_fresh(latest, now):
        return latest
    return publish_crl(now=now, unless_fresh=True)
