"""CSRs, and OCSP requests to the portal's responder, made the way a client would make them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID
from django.utils import timezone

from certificates import ca as portal_ca


def make_csr(key=None, *, common_name: str = "anything", hash_algorithm=None) -> tuple[bytes, object]:
    """A PEM CSR and its private key; the subject is deliberately not the portal's choice."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .sign(key, hash_algorithm or hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM), key


def ocsp_request(certificate: x509.Certificate, *, nonce: bytes | None = None, algorithm=hashes.SHA1) -> bytes:
    """A DER OCSP request for `certificate`, as issued by the portal's issuing CA."""
    builder = ocsp.OCSPRequestBuilder().add_certificate(certificate, portal_ca.unlock().certificate, algorithm())
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


def unstored_certificate() -> x509.Certificate:
    """A certificate signed by the issuing CA whose serial the portal never recorded."""
    return portal_ca.sign_client_certificate(
        ca=portal_ca.unlock(), public_key=ec.generate_private_key(ec.SECP256R1()).public_key(),
        subject=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "stranger")]),
        not_before=timezone.now(), not_after=timezone.now() + timedelta(days=30),
    )


def self_signed_certificate(common_name: str, *, days: int = 30) -> tuple[x509.Certificate, object]:
    """A certificate (and its key) from no CA the portal knows: what a foreign client presents."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(now + timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    return certificate, key


def foreign_request() -> bytes:
    """A well-formed request about a certificate of a CA the portal is not."""
    foreign, _key = self_signed_certificate("elsewhere")
    request = ocsp.OCSPRequestBuilder().add_certificate(foreign, foreign, hashes.SHA1()).build()
    return request.public_bytes(serialization.Encoding.DER)


def ask(client, certificate: x509.Certificate, **kwargs) -> ocsp.OCSPResponse:
    response = client.post("/pki/ocsp", ocsp_request(certificate, **kwargs), content_type="application/ocsp-request")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/ocsp-response"
    return ocsp.load_der_ocsp_response(response.content)
