"""Bank operators' own client certificates: the first half of their login to the operators' site.

They come from the portal's CA like customers' certificates, with OPERATOR_UNIT as their
organizational unit (services.subject_for), so that nginx lets only them through to /operator/.
They are issued only by a command run on the server (manage.py issue_operator_certificate),
never over the web, and each issuance is audited with the OS account that ran it. Renewing is
issuing again: the first login with the new certificate revokes the older ones, as for customers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from accounts.models import User

from . import ca
from .models import Certificate
from .services import Issuance, issue_certificate

# PKCS#12 as the enrollment page writes it: PBES2 (PBKDF2-HMAC-SHA-256, AES-256-CBC), SHA-256 MAC.
PKCS12_KDF_ROUNDS = 200_000
MIN_PKCS12_PASSWORD_LENGTH = 12


def issue_operator_certificate(
    *, operator: User, csr: bytes | str, issued_by: str, now: datetime | None = None
) -> Issuance:
    """Certify an operator's key from their CSR (made on their own machine: the key never leaves it)."""
    return issue_certificate(user=operator, csr=csr, via=Certificate.Channel.OPERATOR_ACCESS, now=now,
                             issued_by=issued_by)


@dataclass(frozen=True)
class OperatorBundle:
    certificate: Certificate
    pkcs12: bytes


def issue_operator_pkcs12(
    *, operator: User, password: str, issued_by: str, now: datetime | None = None
) -> OperatorBundle:
    """A new key, its certificate and the CA chain in a password-protected PKCS#12 file to import.

    The key exists unencrypted only in this process's memory.
    """
    if len(password) < MIN_PKCS12_PASSWORD_LENGTH:
        raise ValueError(f"The file's password must be at least {MIN_PKCS12_PASSWORD_LENGTH} characters.")
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, operator.login_id)]))
        .sign(key, hashes.SHA256())
    )
    issuance = issue_operator_certificate(
        operator=operator, csr=csr.public_bytes(serialization.Encoding.PEM), issued_by=issued_by, now=now
    )
    issuer = ca.unlock().certificate
    encryption = (
        serialization.PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(PKCS12_KDF_ROUNDS)
        .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
        .hmac_hash(hashes.SHA256())
        .build(password.encode())
    )
    bundle = pkcs12.serialize_key_and_certificates(
        name=operator.login_id.encode(), key=key, cert=issuance.certificate.x509, cas=[issuer],
        encryption_algorithm=encryption,
    )
    return OperatorBundle(certificate=issuance.certificate, pkcs12=bundle)


def write_private_file(path: Path, data: bytes) -> None:
    """Write `data` readable by this OS account only (0600), whatever the umask, replacing any old file."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
    finally:
        os.close(fd)
