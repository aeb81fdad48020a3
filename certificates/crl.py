"""The certificate revocation lists.

The issuing CA's CRL is re-signed on every revocation and before its nextUpdate (hourly job).
The root's CRL is signed for a long validity by its offline operator (`manage.py sign_root_crl`)
and only served from the database here.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts import audit

from . import ca
from .models import Certificate, CertificateAction, CertificateAuthority, RevocationList, RevocationReason


def _is_fresh(crl: RevocationList | None, now: datetime) -> bool:
    return crl is not None and crl.next_update - timedelta(hours=settings.CRL_REFRESH_MARGIN_HOURS) > now


def _crl_builder(
    signer: ca.UnlockedCA, *, number: int, now: datetime, next_update: datetime
) -> x509.CertificateRevocationListBuilder:
    """What both tiers' CRLs carry: the issuer, the update times, the CRL number and the key identifier."""
    return (
        x509.CertificateRevocationListBuilder()
        .issuer_name(signer.certificate.subject)
        .last_update(now)
        .next_update(next_update)
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(signer.key_identifier, critical=False)
    )


def _revoked_entry(serial: int, revoked_at: datetime, reason: str) -> x509.RevokedCertificate:
    """A CRL entry; the reason is left out when unspecified (RFC 5280 5.3.1)."""
    entry = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(revoked_at)
    if reason != RevocationReason.UNSPECIFIED:
        entry = entry.add_extension(x509.CRLReason(RevocationReason(reason).x509_reason), critical=False)
    return entry.build()


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
        builder = _crl_builder(issuing, number=number, now=now, next_update=next_update)
        revoked = Certificate.objects.revoked().filter(not_after__gt=now).values_list(
            "serial_number", "revoked_at", "revocation_reason"
        )
        for serial, revoked_at, reason in revoked.iterator():
            builder = builder.add_revoked_certificate(_revoked_entry(int(serial, 16), revoked_at, reason))
        crl = issuing.sign_crl(builder)
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


class RootCrlMissing(Exception):
    """No CRL of the root has been signed yet, or the newest one has expired: run `manage.py sign_root_crl`."""


def sign_root_crl(*, days: int, now: datetime | None = None) -> CertificateAuthority:
    """Sign the root's CRL with the offline root key; the only signature the root makes after `init_ca`.

    It lists the issuing CA once that is revoked (services.revoke_issuing_ca, which the root's
    operator runs in the same transaction: nobody else can withdraw the issuing CA).
    """
    now = now or timezone.now()
    with transaction.atomic():
        root = ca.unlock(CertificateAuthority.Kind.ROOT)
        record = CertificateAuthority.objects.select_for_update().get(pk=root.record.pk)
        issuing = CertificateAuthority.objects.select_for_update().get(kind=CertificateAuthority.Kind.ISSUING)
        number = record.last_crl_number + 1
        next_update = now + timedelta(days=days)
        builder = _crl_builder(root, number=number, now=now, next_update=next_update)
        if issuing.revoked_at is not None:
            builder = builder.add_revoked_certificate(
                _revoked_entry(issuing.certificate.serial_number, issuing.revoked_at, issuing.revocation_reason)
            )
        crl = root.sign_crl(builder)
        record.last_crl_number = number
        record.crl_der = crl.public_bytes(serialization.Encoding.DER)
        record.crl_next_update = next_update
        record.save(update_fields=["last_crl_number", "crl_der", "crl_next_update"])
        audit.record(CertificateAction.CRL_PUBLISHED, ca=record.subject, number=number,
                     next_update=next_update.isoformat())
        return record


def current_root_crl(*, now: datetime | None = None) -> x509.CertificateRevocationList:
    """The root's newest CRL as signed offline; never re-signed here, since no service holds the root key."""
    now = now or timezone.now()
    root = CertificateAuthority.objects.filter(kind=CertificateAuthority.Kind.ROOT).first()
    if root is None:
        raise ca.CANotInitialised("The certificate authority does not exist yet: run `manage.py init_ca`.")
    if root.crl_der is None or root.crl_next_update <= now:
        raise RootCrlMissing(
            "The root CA has no current CRL: its operator must run `manage.py sign_root_crl` (deploy/README.md)."
        )
    return x509.load_der_x509_crl(bytes(root.crl_der))
