"""The key backend's signatures: joined as DER by hand, verified unless the process holds that very key."""

from __future__ import annotations

import subprocess

import pytest
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.core.exceptions import ImproperlyConfigured

from certificates import ca as portal_ca
from certificates import keys
from certificates.crl import publish_crl
from certificates.models import Certificate
from certificates.services import issue_certificate
from tests.support.pki import make_csr

pytestmark = pytest.mark.django_db


def test_an_issued_certificate_is_the_der_asn1crypto_writes_and_verifies_with_the_issuing_ca(ca, bob):
    certificate = issue_certificate(user=bob, csr=make_csr()[0], via=Certificate.Channel.OPERATOR).certificate
    der = bytes(certificate.der)
    parsed = asn1_x509.Certificate.load(der)
    assert parsed.dump(force=True) == der  # canonical DER, as the asn1crypto path wrote it
    assert parsed["signature_algorithm"]["algorithm"].native == "sha384_ecdsa"
    assert parsed["signature_algorithm"]["parameters"].native is None
    certificate.x509.verify_directly_issued_by(portal_ca.unlock().certificate)


def test_the_crl_is_read_by_openssl_and_verifies(ca, tmp_path):
    crl_file, ca_file = tmp_path / "crl.der", tmp_path / "ca.pem"
    crl_file.write_bytes(bytes(publish_crl().der))
    ca_file.write_bytes(portal_ca.unlock().certificate.public_bytes(serialization.Encoding.PEM))
    result = subprocess.run(["openssl", "crl", "-inform", "DER", "-in", str(crl_file), "-CAfile", str(ca_file),
                             "-noout"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "verify OK" in result.stderr + result.stdout


def test_the_encrypted_backend_holds_the_key_only_of_its_own_certificate(ca):
    issuing = portal_ca.unlock()
    backend = keys.backend()
    reference = issuing.record.encrypted_key_pem
    assert backend.holds_key_for(keys.ISSUING, reference, issuing.certificate.public_key())
    stranger = ec.generate_private_key(ec.SECP384R1()).public_key()
    assert not backend.holds_key_for(keys.ISSUING, reference, stranger)


def test_a_key_that_is_not_the_cas_is_still_refused(ca):
    issuing = portal_ca.unlock()
    stranger = ec.generate_private_key(ec.SECP384R1()).public_key()
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "x")])
    builder = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(stranger)
        .serial_number(1).not_valid_before(issuing.certificate.not_valid_before_utc)
        .not_valid_after(issuing.certificate.not_valid_after_utc)
    )
    with pytest.raises(ImproperlyConfigured, match="does not verify"):
        keys.signed_certificate(builder, key_name=keys.ISSUING, reference=issuing.record.encrypted_key_pem,
                                issuer_public_key=stranger)
