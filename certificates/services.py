"""One entry point per certificate lifecycle operation: issue, revoke, supersede.

Each writes its audit entry in the same transaction as its change, so a certificate
and the record of its issuance exist together or not at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
from dateutil.relativedelta import relativedelta
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts import audit
from accounts.japan_time import japan_time
from accounts.models import User

from . import ca
from .crl import publish_crl
from .csr import CertificateRefused, CsrRejected, load_csr
from .models import Certificate, CertificateAction, CertificateAuthority, RevocationReason, certificate_fingerprint


class IssuanceRefused(CertificateRefused):
    pass


# Why nothing can be issued while the issuing CA is stopped (CertificateAuthority.stopped_at).
CA_STOPPED = {
    "revoked": ("issuing_ca_revoked", _(
        "The bank has revoked the certification authority that issues electronic certificates, so no certificate "
        "can be issued now. Please wait for the bank's notice."
    )),
    "expired": ("issuing_ca_expired", _(
        "The certification authority that issues electronic certificates has expired, so no certificate can be "
        "issued now. Please contact the bank."
    )),
}


def _refuse_if_the_ca_stopped(record: CertificateAuthority, now: datetime) -> None:
    stopped = record.stopped_at(now)
    if stopped is not None:
        raise IssuanceRefused(*CA_STOPPED[stopped])


class RevocationRefused(Exception):
    pass


@dataclass(frozen=True)
class Issuance:
    certificate: Certificate
    created: bool  # False when the same CSR was sent again and the earlier certificate returned


# The organizational unit of a bank operator's certificate. A customer's is its contract number
# (digits only), so the two never meet: nginx tells an operator's certificate by it
# (deploy/nginx.conf, map $certportal_operator) before a request for /operator/ reaches Django.
OPERATOR_UNIT = "Bank operators"


def subject_for(user: User) -> x509.Name:
    """The portal decides the subject from the ID; the CSR's subject is ignored."""
    return x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, settings.CA_ORGANIZATION),
        x509.NameAttribute(
            NameOID.ORGANIZATIONAL_UNIT_NAME, OPERATOR_UNIT if user.contract_id is None else user.contract.number
        ),
        x509.NameAttribute(NameOID.COMMON_NAME, user.login_id),
    ])


def validity_end(not_before: datetime) -> datetime:
    """One year (the configured months) from issuance, inclusive as X.509 counts it."""
    return not_before + relativedelta(months=settings.CERTIFICATE_VALIDITY_MONTHS) - timedelta(seconds=1)


def renew_instead(login_id: str) -> str:
    """Why 電子証明書取得 issues nothing to an ID whose certificate is in use: the identify page and
    issuance tell it in the same words."""
    return _(
        "The ID %(login_id)s still has a valid electronic certificate, so no new one is issued here. Log in "
        "with it and renew it from the important-notices screen."
    ) % {"login_id": login_id}


def issue_certificate(
    *,
    user: User,
    csr: bytes | str,
    via: Certificate.Channel,
    actor: User | None = None,
    now: datetime | None = None,
    remote_addr: str | None = None,
    issued_by: str | None = None,
    not_after: datetime | None = None,
) -> Issuance:
    """Issue a one-year client certificate for `user` from `csr` (shorter if `not_after` says so).

    One issuance at a time per ID: the ID's row is locked, and a certificate issued
    moments ago and not yet used holds the slot, so a double submit or a second tab
    gets the same certificate back (same CSR) or a clear refusal (another CSR). Obtaining
    (電子証明書取得) is for an ID with no certificate in use; one that has one renews it.
    Only the OPERATOR_ACCESS channel issues to a bank operator, and to nobody else.
    `issued_by` names who ran a command (the OS account) in the audit entry.
    """
    now = (now or timezone.now()).replace(microsecond=0)
    try:
        request = load_csr(csr)
        return _issue(user=user, request=request, via=via, actor=actor, now=now, remote_addr=remote_addr,
                      issued_by=issued_by, shorter_until=not_after)
    except CertificateRefused as refusal:
        audit.record(
            CertificateAction.ISSUANCE_REFUSED, subject=user, actor=actor, reason=refusal.code, via=str(via),
            remote_addr=remote_addr,
        )
        raise


def _issue(*, user, request, via, actor, now, remote_addr, issued_by=None, shorter_until=None) -> Issuance:
    public_key = request.public_key()
    key_hash = ca.spki_sha256(public_key)
    with transaction.atomic():
        user = User.objects.locked_with_contract(user.pk)
        if via == Certificate.Channel.OPERATOR_ACCESS:
            if not user.is_operator:
                raise IssuanceRefused("not_an_operator", _("Operators' certificates go only to bank operators."))
        elif user.contract_id is None:
            raise IssuanceRefused("not_a_customer_id", _("Certificates are issued only to customers' IDs."))
        if user.state == User.State.SUSPENDED:
            raise IssuanceRefused("id_suspended", _("This ID is suspended; certificates cannot be issued for it."))
        # One read for every check below: a certificate for this key (anyone's), and this ID's live ones.
        hold = timedelta(minutes=settings.PENDING_CERTIFICATE_HOLD_MINUTES)
        related = list(Certificate.objects.live_for_issuance(user, key_hash, now))
        if via == Certificate.Channel.OBTAIN and any(
            cert.owner_id == user.pk and cert.first_used_at is not None and cert.is_valid_at(now) for cert in related
        ):
            raise IssuanceRefused("has_valid_certificate", renew_instead(user.login_id))
        existing = next((cert for cert in related if cert.public_key_sha256 == key_hash), None)
        if existing is not None:
            # A double submit gets its certificate back; a key whose certificate was revoked or has
            # expired must be replaced, never certified again.
            if existing.owner_id == user.pk and existing.is_valid_at(now):
                return Issuance(certificate=existing, created=False)
            raise CsrRejected(
                "key_reused", _("This public key already has a certificate. Create a new key and try again.")
            )
        # No certificate for this key, so all of them are this ID's live ones: those not yet used are pending.
        pending = [cert for cert in related if cert.first_used_at is None]
        for cert in pending:
            cert.owner = user  # read above, locked: _revoke audits with it
        if any(cert.not_before > now - hold for cert in pending):
            raise IssuanceRefused(
                "issuance_in_progress",
                _("A certificate for this ID was issued moments ago. Use that one, or try again in a few minutes."),
            )
        issuer = ca.unlock()
        # On every channel (they all come here): a revoked or expired issuing CA certifies nothing.
        _refuse_if_the_ca_stopped(issuer.record, now)
        # Never beyond the issuing CA's own validity: nothing would verify it after that.
        not_after = min(validity_end(now), issuer.certificate.not_valid_after_utc)
        if shorter_until is not None:
            not_after = min(not_after, shorter_until.replace(microsecond=0))
        cert = ca.sign_client_certificate(
            ca=issuer, public_key=public_key, subject=subject_for(user), not_before=now, not_after=not_after,
        )
        der = cert.public_bytes(serialization.Encoding.DER)
        certificate = Certificate.objects.create(
            owner=user,
            issuer=issuer.record,
            serial_number=f"{cert.serial_number:X}",
            subject=cert.subject.rfc4514_string(),
            public_key_sha256=key_hash,
            fingerprint_sha256=certificate_fingerprint(der),
            not_before=now,
            not_after=not_after,
            der=der,
            issued_via=via,
        )
        audit.record(
            CertificateAction.CERTIFICATE_ISSUED, subject=user, actor=actor,
            certificate_serial=certificate.serial_number, via=str(via), remote_addr=remote_addr,
            issued_by=issued_by,
        )
        # An earlier certificate issued but never used (an abandoned renewal) can no longer be.
        for abandoned in pending:
            _revoke(abandoned, reason=RevocationReason.SUPERSEDED, by=actor, now=now)
        if pending:
            publish_crl(now=now)
        # Last, read again under a key-share lock on the CA's row: the root's revocation, which holds
        # that row for update, either waits for this issuance (and revokes its certificate too) or
        # committed first and is seen here, so the certificate is rolled back rather than left valid.
        # (The foreign key's own check would come only at COMMIT: Django defers it.)
        _refuse_if_the_ca_stopped(ca.held_for_issuance(issuer.record.pk), now)
    return Issuance(certificate=certificate, created=True)


def _revoke(certificate: Certificate, *, reason: RevocationReason, by: User | None, now: datetime) -> None:
    certificate.revoked_at = now
    certificate.revocation_reason = reason
    fields = ["revoked_at", "revocation_reason"]
    if reason == RevocationReason.SUPERSEDED:
        certificate.superseded_at = now
        fields.append("superseded_at")
    certificate.save(update_fields=fields)
    audit.record(
        CertificateAction.CERTIFICATE_REVOKED, subject=certificate.owner, actor=by,
        certificate_serial=certificate.serial_number, reason=str(reason),
    )


def revoke_certificate(
    *, certificate: Certificate, reason: RevocationReason | str, by: User | None, now: datetime | None = None
) -> Certificate:
    """Revoke with an RFC 5280 reason and publish a new CRL in the same transaction."""
    now = now or timezone.now()
    try:
        reason = RevocationReason(reason)
        if reason == RevocationReason.CA_COMPROMISE:
            raise ValueError(reason)  # only revoke_issuing_ca gives it
    except ValueError:
        choices = ", ".join(value for value, _label in RevocationReason.for_one_certificate())
        raise RevocationRefused(f"Unknown revocation reason {reason!r}; use one of: {choices}") from None
    with transaction.atomic():
        certificate = Certificate.objects.select_for_update().select_related("owner").get(pk=certificate.pk)
        if certificate.revoked_at is not None:
            raise RevocationRefused(_("%(serial)s was already revoked on %(when)s.") % {
                "serial": certificate.serial_number, "when": japan_time(certificate.revoked_at),
            })
        _revoke(certificate, reason=reason, by=by, now=now)
        publish_crl(now=now)
    return certificate


def supersede_older_certificates(*, newer: Certificate, now: datetime | None = None) -> list[Certificate]:
    """Once `newer` is first used to log in, the ID's older certificates are revoked as superseded."""
    now = now or timezone.now()
    if newer.first_used_at is not None:
        return []  # used before (first_used_at is never cleared): every login but the first takes no lock
    with transaction.atomic():
        newer = Certificate.objects.select_for_update().select_related("owner").get(pk=newer.pk)
        if newer.first_used_at is not None:
            return []
        newer.first_used_at = now
        newer.save(update_fields=["first_used_at"])
        audit.record(
            CertificateAction.CERTIFICATE_FIRST_USED, subject=newer.owner, certificate_serial=newer.serial_number
        )
        older = list(
            newer.owner.certificates.select_for_update()
            .not_revoked()
            .filter(not_before__lt=newer.not_before)
            .exclude(pk=newer.pk)
        )
        for certificate in older:
            _revoke(certificate, reason=RevocationReason.SUPERSEDED, by=None, now=now)
            audit.record(
                CertificateAction.CERTIFICATE_SUPERSEDED, subject=newer.owner,
                certificate_serial=certificate.serial_number, by_serial=newer.serial_number,
            )
        if older:
            publish_crl(now=now)
    return older


def revoke_issuing_ca(*, reason: RevocationReason | str, now: datetime | None = None) -> int:
    """Revoke the issuing CA and, with it, every certificate it issued that is not revoked yet.

    Run only by the root's operator (`manage.py sign_root_crl --revoke-issuing-ca`), inside the
    transaction that signs the root CRL listing the CA. Its certificates are revoked in the
    database too (cACompromise when the CA's key is compromised, else the CA's own reason), so
    login, OCSP (RFC 6960 2.7) and the CRL refuse them at once, and no reminder is sent for them.
    Returns how many certificates were revoked; 0 if the CA was already revoked.
    """
    now = (now or timezone.now()).replace(microsecond=0)
    reason = RevocationReason(reason)
    if reason == RevocationReason.CA_COMPROMISE:
        raise RevocationRefused("Revoke the issuing CA with key_compromise when its key is compromised.")
    with transaction.atomic():
        issuing = CertificateAuthority.objects.select_for_update().get(kind=CertificateAuthority.Kind.ISSUING)
        if issuing.revoked_at is not None:
            return 0
        issuing.revoked_at, issuing.revocation_reason = now, reason.value
        issuing.save(update_fields=["revoked_at", "revocation_reason"])
        audit.record(
            CertificateAction.CERTIFICATE_REVOKED, certificate_serial=f"{issuing.certificate.serial_number:X}",
            ca=issuing.subject, reason=issuing.revocation_reason,
        )
        leaf_reason = RevocationReason.of_certificates_under_a_revoked_ca(reason)
        # New issuance is blocked by the lock on the CA's row (see _issue), so this list is complete.
        certificates = list(
            Certificate.objects.select_for_update(of=("self",)).select_related("owner")
            .filter(issuer=issuing, revoked_at__isnull=True)
        )
        for certificate in certificates:
            _revoke(certificate, reason=leaf_reason, by=None, now=now)
    return len(certificates)
