"""The portal's CA, the client certificates it issues, and its published CRLs."""

from __future__ import annotations

import functools
import hashlib
from datetime import datetime

from cryptography import x509
from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.japan_time import japan_time

from .querysets import CertificateAuthorityQuerySet, CertificateQuerySet


class CertificateAction(models.TextChoices):
    """The certificates app's entries in the audit log (registered by CertificatesConfig.ready)."""

    CA_CREATED = "ca_created", _("CA created")
    CERTIFICATE_ISSUED = "certificate_issued", _("certificate issued")
    ISSUANCE_REFUSED = "issuance_refused", _("issuance refused")
    CERTIFICATE_FIRST_USED = "certificate_first_used", _("certificate first used")
    CERTIFICATE_SUPERSEDED = "certificate_superseded", _("certificate superseded")
    CERTIFICATE_REVOKED = "certificate_revoked", _("certificate revoked")
    CRL_PUBLISHED = "crl_published", _("CRL published")
    ONE_TIME_CODE_SENT = "one_time_code_sent", _("one-time code sent")
    ONE_TIME_CODE_FAILED = "one_time_code_failed", _("one-time code failed")
    ONE_TIME_CODE_ACCEPTED = "one_time_code_accepted", _("one-time code accepted")
    UNTRUSTED_PROXY_HEADER = "untrusted_proxy_header", _("client-certificate header from an untrusted address")


# The bank's own business: never about one contract, never shown in a contract's audit log.
BANK_ONLY_ACTIONS = frozenset({
    CertificateAction.CA_CREATED, CertificateAction.CRL_PUBLISHED, CertificateAction.UNTRUSTED_PROXY_HEADER,
})


class CertificateAuthority(models.Model):
    """One tier of the portal's two-tier CA.

    `encrypted_key_pem` is the key backend's reference to the private key: encrypted PKCS#8
    (certificates/keys.py), or a `pkcs11:` URI when the key lives in a token.
    """

    class Kind(models.TextChoices):
        ROOT = "root", _("root CA")
        ISSUING = "issuing", _("issuing CA")

    kind = models.CharField(_("kind"), max_length=8, choices=Kind.choices, unique=True)
    subject = models.CharField(_("subject"), max_length=255)
    certificate_pem = models.TextField(_("certificate (PEM)"))
    encrypted_key_pem = models.TextField(_("private key (encrypted PKCS#8)"))
    last_crl_number = models.PositiveBigIntegerField(_("last CRL number"), default=0)
    created_at = models.DateTimeField(_("created at"), default=timezone.now, editable=False)
    # The root's newest CRL, signed offline (`manage.py sign_root_crl`) and served at /pki/root.crl.
    crl_der = models.BinaryField(_("newest CRL (DER)"), null=True, blank=True)
    crl_next_update = models.DateTimeField(_("CRL next update"), null=True, blank=True)
    # Set on the issuing CA by the root's command only; the root's next CRL lists it.
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)
    revocation_reason = models.CharField(_("revocation reason"), max_length=32, blank=True)

    objects = CertificateAuthorityQuerySet.as_manager()

    class Meta:
        verbose_name = _("certificate authority")
        verbose_name_plural = _("certificate authorities")

    def __str__(self) -> str:
        return self.subject

    @property
    def certificate(self) -> x509.Certificate:
        return _parsed_certificate(self.certificate_pem)

    def stopped_at(self, now: datetime) -> str | None:
        """"revoked" or "expired" when this CA may certify nothing more at `now`, else None.

        Revoked only by the root's operator (`manage.py sign_root_crl --revoke-issuing-ca`).
        """
        if self.revoked_at is not None:
            return "revoked"
        if now >= self.certificate.not_valid_after_utc:
            return "expired"
        return None


@functools.lru_cache(maxsize=8)
def _parsed_certificate(pem: str) -> x509.Certificate:
    """A CA certificate is parsed once per process (keyed by its PEM, so a new one is parsed anew)."""
    return x509.load_pem_x509_certificate(pem.encode())


class DelegatedKey(models.Model):
    """A key the issuing CA certifies for one task of its own, kept in the key backend like the CA keys.

    `encrypted_key_pem` holds the backend's reference: the encrypted PKCS#8 itself, or the token's key ID.

    Today one role: the OCSP responder, whose short-lived certificate signs every OCSP answer so that
    the issuing CA's key signs only certificates and CRLs. A renewal adds a row; the newest is used.
    """

    class Role(models.TextChoices):
        OCSP_RESPONDER = "ocsp-responder", _("OCSP responder")

    role = models.CharField(_("role"), max_length=32, choices=Role.choices)
    issuer = models.ForeignKey(CertificateAuthority, on_delete=models.PROTECT, related_name="+")
    certificate_pem = models.TextField(_("certificate (PEM)"))
    encrypted_key_pem = models.TextField(_("private key (encrypted PKCS#8)"))
    not_before = models.DateTimeField(_("valid from"))
    not_after = models.DateTimeField(_("valid until"))
    created_at = models.DateTimeField(_("created at"), default=timezone.now, editable=False)

    class Meta:
        verbose_name = _("delegated key")
        verbose_name_plural = _("delegated keys")
        ordering = ["-not_after"]
        indexes = [models.Index(fields=["role", "-not_after"], name="delegated_key_newest")]

    def __str__(self) -> str:
        return f"{self.get_role_display()} until {japan_time(self.not_after)}"

    @property
    def certificate(self) -> x509.Certificate:
        return _parsed_certificate(self.certificate_pem)  # once per process, as the CA's: every OCSP answer has it


class RevocationReason(models.TextChoices):
    """RFC 5280 reason codes that a bank uses (certificateHold is not offered)."""

    UNSPECIFIED = "unspecified", _("unspecified")
    KEY_COMPROMISE = "key_compromise", _("key compromise")
    AFFILIATION_CHANGED = "affiliation_changed", _("affiliation changed")
    SUPERSEDED = "superseded", _("superseded")
    CESSATION_OF_OPERATION = "cessation_of_operation", _("cessation of operation")
    PRIVILEGE_WITHDRAWN = "privilege_withdrawn", _("privilege withdrawn")
    # Never chosen by an operator: set on every certificate of the issuing CA when its key is compromised.
    CA_COMPROMISE = "ca_compromise", _("CA compromise")

    @property
    def x509_reason(self) -> x509.ReasonFlags:
        return x509.ReasonFlags[self.value]

    @classmethod
    def for_one_certificate(cls) -> list[tuple[str, str]]:
        """The reasons an operator may give for one certificate (not the CA's)."""
        return [(value, label) for value, label in cls.choices if value != cls.CA_COMPROMISE]

    @classmethod
    def of_certificates_under_a_revoked_ca(cls, ca_reason: str) -> RevocationReason:
        """A certificate's reason when its issuing CA is revoked: cACompromise for the CA's key (RFC 5280 5.3.1)."""
        reason = cls(ca_reason)
        return cls.CA_COMPROMISE if reason in (cls.KEY_COMPROMISE, cls.CA_COMPROMISE) else reason


def certificate_fingerprint(der: bytes) -> str:
    """The SHA-256 of a certificate's DER, in hex: Certificate.fingerprint_sha256, by which a presented
    certificate is found."""
    return hashlib.sha256(der).hexdigest()


class Certificate(models.Model):
    """A client certificate of one ID."""

    class Channel(models.TextChoices):
        OBTAIN = "obtain", _("obtained from the login screen")
        RENEWAL = "renewal", _("renewal")
        OPERATOR = "operator", _("issued by an operator")
        # A bank operator's own certificate for the operators' site (manage.py issue_operator_certificate).
        OPERATOR_ACCESS = "operator_access", _("operator's access to the operators' site")

    class State(models.TextChoices):
        VALID = "valid", _("valid")
        NOT_YET_VALID = "not_yet_valid", _("not yet valid")
        EXPIRED = "expired", _("expired")
        REVOKED = "revoked", _("revoked")

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="certificates", verbose_name=_("ID")
    )
    issuer = models.ForeignKey(CertificateAuthority, on_delete=models.PROTECT, related_name="+")
    serial_number = models.CharField(_("serial number"), max_length=64, unique=True)
    subject = models.CharField(_("subject"), max_length=255)
    public_key_sha256 = models.CharField(_("public key SHA-256"), max_length=64, unique=True)
    fingerprint_sha256 = models.CharField(_("SHA-256 fingerprint"), max_length=64, unique=True)
    not_before = models.DateTimeField(_("valid from"))
    not_after = models.DateTimeField(_("valid until"))
    der = models.BinaryField(_("certificate (DER)"))
    issued_via = models.CharField(_("issued via"), max_length=16, choices=Channel.choices)
    first_used_at = models.DateTimeField(_("first used at"), null=True, blank=True)
    superseded_at = models.DateTimeField(_("superseded at"), null=True, blank=True)
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)
    revocation_reason = models.CharField(
        _("revocation reason"), max_length=32, choices=RevocationReason.choices, blank=True
    )

    objects = CertificateQuerySet.as_manager()

    class Meta:
        verbose_name = _("certificate")
        verbose_name_plural = _("certificates")
        ordering = ["-not_before"]
        indexes = [
            models.Index(fields=["owner", "-not_before"], name="cert_owner_newest"),
            # The daily reminder job reads live certificates by expiry.
            models.Index(
                fields=["not_after"], name="cert_live_by_expiry",
                condition=Q(revoked_at__isnull=True, superseded_at__isnull=True),
            ),
        ]
        constraints = [
            models.CheckConstraint(name="cert_validity_is_ordered", condition=Q(not_before__lt=models.F("not_after"))),
            models.CheckConstraint(
                name="cert_revocation_has_a_reason",
                condition=Q(revoked_at__isnull=True, revocation_reason="")
                | Q(revoked_at__isnull=False) & ~Q(revocation_reason=""),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.serial_number} ({self.subject})"

    def state_at(self, now: datetime | None = None) -> Certificate.State:
        now = now or timezone.now()
        if self.revoked_at is not None:
            return self.State.REVOKED
        if now >= self.not_after:
            return self.State.EXPIRED
        if now < self.not_before:
            return self.State.NOT_YET_VALID
        return self.State.VALID

    @property
    def state(self) -> Certificate.State:
        return self.state_at()

    def is_valid_at(self, now: datetime) -> bool:
        return self.state_at(now) == self.State.VALID

    @property
    def x509(self) -> x509.Certificate:
        return x509.load_der_x509_certificate(bytes(self.der))

    @property
    def pem(self) -> str:
        from cryptography.hazmat.primitives.serialization import Encoding

        return self.x509.public_bytes(Encoding.PEM).decode()

    @property
    def fingerprint_display(self) -> str:
        return ":".join(self.fingerprint_sha256[i : i + 2] for i in range(0, 64, 2))


class RevocationList(models.Model):
    """A CRL signed by the issuing CA; the newest one is served at /pki/crl."""

    number = models.PositiveBigIntegerField(_("CRL number"), unique=True)
    this_update = models.DateTimeField(_("this update"))
    next_update = models.DateTimeField(_("next update"))
    der = models.BinaryField(_("CRL (DER)"))

    class Meta:
        verbose_name = _("certificate revocation list")
        verbose_name_plural = _("certificate revocation lists")
        ordering = ["-number"]

    def __str__(self) -> str:
        return f"CRL #{self.number}"


class OneTimeCode(models.Model):
    """A six-digit code e-mailed to an ID's registered address to prove it before obtaining a certificate.

    Only a keyed hash of the code is stored (a six-digit code alone is guessed in a million tries,
    so a plain hash of it would protect nothing once the table leaked).
    """

    class Purpose(models.TextChoices):
        OBTAIN = "obtain", _("obtaining a certificate")

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="one_time_codes", verbose_name=_("ID")
    )
    purpose = models.CharField(_("purpose"), max_length=16, choices=Purpose.choices)
    salt = models.CharField(_("salt"), max_length=32)
    code_hash = models.CharField(_("code hash"), max_length=64)
    created_at = models.DateTimeField(_("created at"))
    expires_at = models.DateTimeField(_("expires at"))
    # Entries of this code so far, right or wrong (certificates.otp claims each with a compare-and-set UPDATE).
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    used_at = models.DateTimeField(_("used at"), null=True, blank=True)

    class Meta:
        verbose_name = _("one-time code")
        verbose_name_plural = _("one-time codes")
        ordering = ["-created_at"]
        indexes = [
            # The per-ID rate limit counts an ID's codes of the last hour.
            models.Index(fields=["user", "-created_at"], name="otp_user_newest"),
        ]

    def __str__(self) -> str:
        return f"{self.user} {japan_time(self.created_at)}"
