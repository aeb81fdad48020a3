"""The portal's own two-tier CA: creating it once and signing with its keys.

The keys are reached only through the key backend (certificates/keys.py): encrypted
PKCS#8 in the database under a secret per key, or inside a PKCS#11 token. The root key
signs only at `init_ca` and `sign_root_crl`; every other signature is the issuing CA's.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from accounts import audit

from . import keys
from .models import CertificateAction, CertificateAuthority, DelegatedKey

ROOT_VALIDITY = timedelta(days=20 * 365)
ISSUING_VALIDITY = timedelta(days=10 * 365)
# notBefore in the certificate is this much before the issuance: a customer's PC whose clock is
# a little behind would otherwise not offer the certificate it has just saved.
CLOCK_SKEW_ALLOWANCE = timedelta(hours=1)
# The CA keys are P-384: signatures use the hash of the same strength.
SIGNATURE_HASH = keys.SIGNATURE_HASH


class CANotInitialised(Exception):
    """`manage.py init_ca` has not been run on this database."""


class IssuingCAStopped(Exception):
    """The issuing CA is revoked or has expired: it certifies nothing more, not even an OCSP responder."""


@dataclass(frozen=True)
class Signer:
    """A certificate with its key held in memory: only `make run`'s local TLS CA (never the client CA)."""

    certificate: x509.Certificate
    private_key: ec.EllipticCurvePrivateKey

    def sign_certificate(self, builder: x509.CertificateBuilder) -> x509.Certificate:
        return builder.sign(self.private_key, SIGNATURE_HASH())

    @property
    def key_identifier(self) -> x509.AuthorityKeyIdentifier:
        ski = self.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


@dataclass(frozen=True)
class UnlockedCA:
    """A CA certificate and the reference of its key; it signs through the key backend."""

    record: CertificateAuthority
    certificate: x509.Certificate

    @property
    def key_name(self) -> str:
        return self.record.kind

    def sign_certificate(self, builder: x509.CertificateBuilder) -> x509.Certificate:
        return keys.signed_certificate(
            builder, key_name=self.key_name, reference=self.record.encrypted_key_pem,
            issuer_public_key=self.certificate.public_key(),
        )

    def sign_crl(self, builder: x509.CertificateRevocationListBuilder) -> x509.CertificateRevocationList:
        return keys.signed_crl(
            builder, key_name=self.key_name, reference=self.record.encrypted_key_pem,
            issuer_public_key=self.certificate.public_key(),
        )

    @property
    def key_identifier(self) -> x509.AuthorityKeyIdentifier:
        ski = self.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def _name(common_name: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, settings.CA_ORGANIZATION),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])


def _builder(
    *, subject: x509.Name, issuer_name: x509.Name, public_key, not_before: datetime, not_after: datetime,
    is_ca: bool, path_length: int | None = None,
) -> x509.CertificateBuilder:
    """What every certificate the portal makes carries: a random serial (159 bits), its dates, CA rights
    or none, key usage (certificate and CRL signing for a CA, signing only otherwise), its key identifier."""
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=path_length), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=not is_ca, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=is_ca, crl_sign=is_ca,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def _ca_builder(
    *, subject: x509.Name, issuer_name: x509.Name, public_key, not_before: datetime, not_after: datetime,
    path_length: int,
) -> x509.CertificateBuilder:
    """Every CA certificate, the portal's two tiers and make run's TLS CA alike: CA rights to `path_length`."""
    return _builder(subject=subject, issuer_name=issuer_name, public_key=public_key, not_before=not_before,
                    not_after=not_after, is_ca=True, path_length=path_length)


def _ca_certificate(
    *, subject: x509.Name, key_name: str, reference: str, issuer: UnlockedCA | None, path_length: int,
    now: datetime, lifetime: timedelta, extended_key_usage: list[x509.ObjectIdentifier] | None = None,
) -> x509.Certificate:
    public_key = keys.backend().public_key(key_name, reference)
    builder = _ca_builder(
        subject=subject, issuer_name=issuer.certificate.subject if issuer else subject, public_key=public_key,
        not_before=now, not_after=now + lifetime, path_length=path_length,
    )
    if extended_key_usage:
        builder = builder.add_extension(x509.ExtendedKeyUsage(extended_key_usage), critical=False)
    if issuer is None:
        return keys.signed_certificate(builder, key_name=key_name, reference=reference, issuer_public_key=public_key)
    builder = builder.add_extension(issuer.key_identifier, critical=False).add_extension(
        # Where relying parties find the root's CRL, signed offline by `manage.py sign_root_crl`.
        _distribution_point(settings.ROOT_CRL_URL), critical=False
    )
    return issuer.sign_certificate(builder)


def _distribution_point(url: str) -> x509.CRLDistributionPoints:
    return x509.CRLDistributionPoints([
        x509.DistributionPoint(
            full_name=[x509.UniformResourceIdentifier(url)], relative_name=None, reasons=None, crl_issuer=None,
        )
    ])


def create_ca(*, now: datetime | None = None) -> tuple[CertificateAuthority, bool]:
    """Create the root and issuing CA once. Returns the issuing CA and whether it was created."""
    now = now or timezone.now()
    with transaction.atomic():
        existing = CertificateAuthority.objects.select_for_update().filter(kind=CertificateAuthority.Kind.ISSUING)
        if existing:
            return existing[0], False
        backend = keys.backend()
        root_key = backend.generate(keys.ROOT)
        root_name = _name(f"{settings.CA_ORGANIZATION} Root CA")
        root_cert = _ca_certificate(
            subject=root_name, key_name=keys.ROOT, reference=root_key, issuer=None, path_length=1, now=now,
            lifetime=ROOT_VALIDITY,
        )
        root = CertificateAuthority.objects.create(
            kind=CertificateAuthority.Kind.ROOT,
            subject=root_name.rfc4514_string(),
            certificate_pem=root_cert.public_bytes(serialization.Encoding.PEM).decode(),
            encrypted_key_pem=root_key,
            created_at=now,
        )
        issuing_key = backend.generate(keys.ISSUING)
        issuing_name = _name(f"{settings.CA_ORGANIZATION} Client Certificate CA")
        issuing_cert = _ca_certificate(
            subject=issuing_name, key_name=keys.ISSUING, reference=issuing_key,
            issuer=UnlockedCA(record=root, certificate=root_cert),
            path_length=0, now=now, lifetime=ISSUING_VALIDITY,
            # What it may certify: client certificates, and the responder that signs its OCSP answers.
            extended_key_usage=[ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.OCSP_SIGNING],
        )
        issuing = CertificateAuthority.objects.create(
            kind=CertificateAuthority.Kind.ISSUING,
            subject=issuing_name.rfc4514_string(),
            certificate_pem=issuing_cert.public_bytes(serialization.Encoding.PEM).decode(),
            encrypted_key_pem=issuing_key,
            created_at=now,
        )
        audit.record(CertificateAction.CA_CREATED, root=root.subject, issuing=issuing.subject)
    return issuing, True


def unlock(kind: str = CertificateAuthority.Kind.ISSUING) -> UnlockedCA:
    """The CA of that kind, ready to sign through the key backend."""
    record = CertificateAuthority.objects.of_kind(kind)
    if record is None:
        raise CANotInitialised("The certificate authority does not exist yet: run `manage.py init_ca`.")
    return UnlockedCA(record=record, certificate=record.certificate)


def _end_entity(
    issuer: UnlockedCA, *, subject: x509.Name, public_key, not_before: datetime, not_after: datetime,
    usage: x509.ObjectIdentifier,
) -> x509.CertificateBuilder:
    """Every end-entity certificate the issuing CA signs: no CA rights, one extended key usage, and the
    issuer's key identifier."""
    return (
        _builder(subject=subject, issuer_name=issuer.certificate.subject, public_key=public_key,
                 not_before=not_before, not_after=not_after, is_ca=False)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(issuer.key_identifier, critical=False)
    )


def held_for_issuance(pk: int) -> CertificateAuthority:
    """The CA's row as committed now, key-share locked to the end of the transaction (PostgreSQL).

    FOR KEY SHARE blocks only FOR UPDATE (the root's revocation, a CRL's signing), never another
    issuance. SQLite needs no lock: a writing transaction there excludes every other.
    """
    if connection.vendor == "postgresql":
        table = CertificateAuthority._meta.db_table
        return CertificateAuthority.objects.raw(f"SELECT * FROM {table} WHERE id = %s FOR KEY SHARE", [pk])[0]  # noqa: S608
    return CertificateAuthority.objects.get(pk=pk)


def certify_ocsp_responder(*, issuer: UnlockedCA, now: datetime, lifetime: timedelta) -> DelegatedKey:
    """A new key (in the key backend) and delegated OCSP responder certificate (RFC 6960 4.2.2.2).

    id-pkix-ocsp-nocheck: clients do not ask about the responder itself, which is why its
    certificate is short-lived rather than revocable.
    """
    stopped = issuer.record.stopped_at(now)
    if stopped is not None:
        raise IssuingCAStopped(f"The issuing CA is {stopped}: no OCSP responder is certified any more.")
    backend = keys.backend()
    reference = backend.generate(keys.OCSP_RESPONDER)
    public_key = backend.public_key(keys.OCSP_RESPONDER, reference)
    not_after = min(now + lifetime, issuer.certificate.not_valid_after_utc)
    certificate = issuer.sign_certificate(
        _end_entity(
            issuer, subject=_name(f"{settings.CA_ORGANIZATION} OCSP Responder"), public_key=public_key,
            not_before=now, not_after=not_after, usage=ExtendedKeyUsageOID.OCSP_SIGNING,
        ).add_extension(x509.OCSPNoCheck(), critical=False)
    )
    return DelegatedKey.objects.create(
        role=DelegatedKey.Role.OCSP_RESPONDER,
        issuer=issuer.record,
        certificate_pem=certificate.public_bytes(serialization.Encoding.PEM).decode(),
        encrypted_key_pem=reference,
        not_before=now,
        not_after=not_after,
        created_at=now,
    )


def chain_pem() -> str:
    """The issuing CA then the root, in PEM: what a client or nginx needs to verify."""
    cas = {ca.kind: ca for ca in CertificateAuthority.objects.all()}
    if CertificateAuthority.Kind.ISSUING not in cas:
        raise CANotInitialised("The certificate authority does not exist yet: run `manage.py init_ca`.")
    return cas[CertificateAuthority.Kind.ISSUING].certificate_pem + cas[CertificateAuthority.Kind.ROOT].certificate_pem


def spki_sha256(public_key) -> str:
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def crl_url() -> str:
    return settings.CRL_URL


def issuing_certificate() -> x509.Certificate:
    """The issuing CA's certificate (served at the CA-issuers address of every client certificate)."""
    record = CertificateAuthority.objects.of_kind(CertificateAuthority.Kind.ISSUING)
    if record is None:
        raise CANotInitialised("The certificate authority does not exist yet: run `manage.py init_ca`.")
    return record.certificate


def sign_client_certificate(
    *, ca: UnlockedCA, public_key, subject: x509.Name, not_before: datetime, not_after: datetime
) -> x509.Certificate:
    """Everything but the public key is the portal's choice; nothing is copied from the CSR.

    notBefore is backdated by CLOCK_SKEW_ALLOWANCE; the portal's own records keep the issuance time.
    """
    builder = (
        _end_entity(
            ca, subject=subject, public_key=public_key, not_before=not_before - CLOCK_SKEW_ALLOWANCE,
            not_after=not_after, usage=ExtendedKeyUsageOID.CLIENT_AUTH,
        )
        .add_extension(_distribution_point(crl_url()), critical=False)
        .add_extension(
            x509.AuthorityInformationAccess([
                x509.AccessDescription(AuthorityInformationAccessOID.OCSP,
                                       x509.UniformResourceIdentifier(settings.OCSP_URL)),
                x509.AccessDescription(AuthorityInformationAccessOID.CA_ISSUERS,
                                       x509.UniformResourceIdentifier(settings.CA_ISSUERS_URL)),
            ]),
            critical=False,
        )
        .add_extension(
            x509.CertificatePolicies([
                x509.PolicyInformation(x509.ObjectIdentifier(settings.CERTIFICATE_POLICY_OID), None)
            ]),
            critical=False,
        )
    )
    return ca.sign_certificate(builder)


def create_tls_ca(*, now: datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A self-signed CA for `make run`'s server certificate only: never the client-issuing CA.

    Its key is an in-memory one kept in make run's own folder, not a key of the key backend.
    """
    key = ec.generate_private_key(ec.SECP384R1())
    public_key = key.public_key()
    subject = _name(f"{settings.CA_ORGANIZATION} Local TLS CA (make run)")
    builder = _ca_builder(
        subject=subject, issuer_name=subject, public_key=public_key, not_before=now,
        not_after=now + timedelta(days=3 * 365), path_length=0,
    ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    return builder.sign(key, SIGNATURE_HASH()), key


def sign_server_certificate(
    *, ca: Signer, public_key, hostnames: list[str], now: datetime, days: int = 397
) -> x509.Certificate:
    """The TLS server certificate for `make run`'s gunicorn, from its local TLS CA (create_tls_ca)."""
    import ipaddress

    names: list[x509.GeneralName] = []
    for host in hostnames:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, settings.CA_ORGANIZATION),
            x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0]),
        ]))
        .issuer_name(ca.certificate.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(min(now + timedelta(days=days), ca.certificate.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(ca.key_identifier, critical=False)
    )
    return ca.sign_certificate(builder)
