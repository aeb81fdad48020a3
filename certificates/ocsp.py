"""OCSP (RFC 6960): the state of a certificate, read from the database at each request.

Answers are signed by a delegated responder certificate from the issuing CA, renewed before it
expires (hourly task, `manage.py renew_ocsp_responder`, or here under a lock when missing).
Nothing is cached: a revocation committed a moment ago is answered `revoked`.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509 import ocsp
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from . import ca, keys
from .models import Certificate, CertificateAuthority, DelegatedKey, RevocationReason

# RFC 8954: a responder may refuse nonces longer than 32 octets (they would let a client make
# the responder sign chosen data).
MAX_NONCE_LENGTH = 32
# Hash algorithms a CertID may use (SHA-1 is what OpenSSL, nginx and browsers send).
CERT_ID_HASHES = (hashes.SHA1, hashes.SHA256, hashes.SHA384, hashes.SHA512)


def _needs_renewal(record: DelegatedKey | None, now: datetime) -> bool:
    """Renewed once less than a third of its lifetime is left (10 of 30 days by default)."""
    if record is None:
        return True
    return record.not_after - now < (record.not_after - record.not_before) / 3


def _newest_responder(issuer: CertificateAuthority) -> DelegatedKey | None:
    return DelegatedKey.objects.filter(role=DelegatedKey.Role.OCSP_RESPONDER, issuer=issuer).first()


def renew_responder(*, now: datetime | None = None, force: bool = False) -> tuple[DelegatedKey, bool]:
    """The current responder key, certified anew first when due (or when `force`d). Returns it and whether new."""
    now = now or timezone.now()
    with transaction.atomic():
        issuing = ca.unlock(CertificateAuthority.Kind.ISSUING)
        # The issuing CA's row serialises renewals, so concurrent requests certify one key between them.
        CertificateAuthority.objects.select_for_update().get(pk=issuing.record.pk)
        current = _newest_responder(issuing.record)
        if not force and not _needs_renewal(current, now):
            return current, False
        lifetime = timedelta(days=settings.OCSP_RESPONDER_VALIDITY_DAYS)
        return ca.certify_ocsp_responder(issuer=issuing, now=now, lifetime=lifetime), True


def responder(*, now: datetime, issuing: CertificateAuthority | None = None) -> DelegatedKey:
    issuing = issuing or CertificateAuthority.objects.of_kind(CertificateAuthority.Kind.ISSUING)
    if issuing is None:
        raise ca.CANotInitialised("The certificate authority does not exist yet: run `manage.py init_ca`.")
    current = _newest_responder(issuing)
    # Lazily renewed only when missing or expired: the hourly task renews it well before.
    if current is None or current.not_after <= now:
        current, _created = renew_responder(now=now)
    return current


def _key_hash(certificate: x509.Certificate, algorithm: hashes.HashAlgorithm) -> bytes:
    """The hash of the issuer's subjectPublicKey BIT STRING contents, as a CertID carries it."""
    key = certificate.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        bits = key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    elif isinstance(key, rsa.RSAPublicKey):
        bits = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    else:  # pragma: no cover - the portal's CA keys are EC
        raise TypeError(f"unsupported CA key type {type(key).__name__}")
    return hashlib.new(algorithm.name, bits).digest()


def _is_our_issuer(request: ocsp.OCSPRequest, issuer: x509.Certificate, algorithm: hashes.HashAlgorithm) -> bool:
    name_hash = hashlib.new(algorithm.name, issuer.subject.public_bytes()).digest()
    return request.issuer_name_hash == name_hash and request.issuer_key_hash == _key_hash(issuer, algorithm)


def unsuccessful(status: ocsp.OCSPResponseStatus) -> bytes:
    return ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(serialization.Encoding.DER)


def respond(request_der: bytes, *, now: datetime | None = None) -> bytes:
    """The DER OCSP response to a DER OCSP request: good, revoked, unknown, or an error status."""
    now = now or timezone.now()
    try:
        request = ocsp.load_der_ocsp_request(request_der)
        algorithm = request.hash_algorithm
        nonce = next((ext.value.nonce for ext in request.extensions if isinstance(ext.value, x509.OCSPNonce)), None)
    except (ValueError, NotImplementedError, UnsupportedAlgorithm):
        # Not DER, several certificates in one request, or a hash we do not know.
        return unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
    if not isinstance(algorithm, CERT_ID_HASHES) or (nonce is not None and not 1 <= len(nonce) <= MAX_NONCE_LENGTH):
        return unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
    issuing = CertificateAuthority.objects.of_kind(CertificateAuthority.Kind.ISSUING)  # read once per answer
    if issuing is None:
        raise ca.CANotInitialised("The certificate authority does not exist yet: run `manage.py init_ca`.")
    try:
        signer = responder(now=now, issuing=issuing)
    except ca.IssuingCAStopped:
        # Its responder has expired and a revoked or expired CA certifies no new one: no signed
        # answer can be given any more (the root's CRL lists the revoked CA for every relying party).
        return unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED)
    if not _is_our_issuer(request, issuing.certificate, algorithm):
        # RFC 5019 2.2.3: a responder answers only for the CAs it serves.
        return unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED)

    revocation_time = revocation_reason = None
    certificate = Certificate.objects.filter(serial_number=f"{request.serial_number:X}").only(
        "revoked_at", "revocation_reason"
    ).first()
    if certificate is None:
        status = ocsp.OCSPCertStatus.UNKNOWN  # not a serial this CA issued
    elif certificate.revoked_at is None:
        status = ocsp.OCSPCertStatus.GOOD
    else:
        status = ocsp.OCSPCertStatus.REVOKED
        revocation_time = certificate.revoked_at
        reason = RevocationReason(certificate.revocation_reason)
        # As in the CRL: "unspecified" is expressed by leaving the reason out (RFC 5280 5.3.1).
        revocation_reason = None if reason == RevocationReason.UNSPECIFIED else reason.x509_reason

    builder = (
        ocsp.OCSPResponseBuilder()
        .add_response_by_hash(
            issuer_name_hash=request.issuer_name_hash, issuer_key_hash=request.issuer_key_hash,
            serial_number=request.serial_number, algorithm=algorithm, cert_status=status,
            this_update=now, next_update=now + timedelta(minutes=settings.OCSP_VALIDITY_MINUTES),
            revocation_time=revocation_time, revocation_reason=revocation_reason,
        )
    )
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    # Signed in the key backend (in the token with PKCS#11), with the responder's byKey ID and certificate.
    response = keys.signed_ocsp_response(
        builder, key_name=keys.OCSP_RESPONDER, reference=signer.encrypted_key_pem, responder=signer.certificate
    )
    return response.public_bytes(serialization.Encoding.DER)
