"""Every CSR check refuses with a clear message in both languages and issues nothing."""

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa
from cryptography.x509.oid import NameOID
from django.utils import translation

from accounts.models import AuditEntry
from certificates.csr import CsrRejected
from certificates.models import Certificate, CertificateAction
from certificates.services import issue_certificate
from tests.support.pki import make_csr

pytestmark = pytest.mark.django_db


def refusal(user, csr) -> CsrRejected:
    with pytest.raises(CsrRejected) as caught:
        issue_certificate(user=user, csr=csr, via=Certificate.Channel.OPERATOR)
    assert not Certificate.objects.exists()
    assert AuditEntry.objects.filter(action=CertificateAction.ISSUANCE_REFUSED, subject=user).exists()
    return caught.value


def messages(error: CsrRejected) -> tuple[str, str]:
    with translation.override("ja"):
        ja = str(error.message)
    with translation.override("en"):
        en = str(error.message)
    return ja, en


def test_it_refuses_input_that_is_not_a_csr(ca, bob):
    error = refusal(bob, b"-----BEGIN CERTIFICATE REQUEST-----\nbm90IGEgY3Ny\n-----END CERTIFICATE REQUEST-----\n")
    assert error.code == "not_a_csr"
    ja, en = messages(error)
    assert "CSR" in en and ja != en


def test_it_refuses_random_bytes(ca, bob):
    assert refusal(bob, b"\x30\x03\x02\x01\x00garbage").code == "not_a_csr"


def test_it_refuses_a_csr_whose_signature_does_not_match(ca, bob):
    pem, _key = make_csr()
    der = bytearray(x509.load_pem_x509_csr(pem).public_bytes(serialization.Encoding.DER))
    der[-3] ^= 0x55  # flip bits inside the signature value
    assert refusal(bob, bytes(der)).code == "bad_signature"


def der(tag: int, body: bytes) -> bytes:
    length = len(body).to_bytes((len(body).bit_length() + 7) // 8 or 1, "big")
    return bytes([tag]) + (length if len(body) < 128 else bytes([0x80 | len(length)]) + length) + body


def sha1_signed_csr() -> bytes:
    """A CSR signed with ECDSA-with-SHA1, as old tools still make them (cryptography no longer signs with SHA-1)."""
    key = ec.generate_private_key(ec.SECP256R1())
    tbs = x509.load_pem_x509_csr(make_csr(key)[0]).tbs_certrequest_bytes
    ecdsa_with_sha1 = der(0x30, der(0x06, bytes.fromhex("2a8648ce3d0401")))  # 1.2.840.10045.4.1
    return der(0x30, tbs + ecdsa_with_sha1 + der(0x03, b"\x00" + key.sign(tbs, ec.ECDSA(hashes.SHA1()))))


def test_it_refuses_a_sha1_signed_csr_for_what_it_is(ca, bob):
    error = refusal(bob, sha1_signed_csr())
    assert error.code == "broken_signature_hash"
    ja, en = messages(error)
    assert "signed with SHA-1, which is no longer accepted" in en
    assert "SHA-1" in ja and ja != en


def test_it_refuses_a_1024_bit_rsa_key(ca, bob):
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    error = refusal(bob, make_csr(key)[0])
    assert error.code == "rsa_size"
    assert "1024" in messages(error)[1]


def test_it_refuses_an_rsa_key_over_4096_bits(ca, bob):
    key = rsa.generate_private_key(public_exponent=65537, key_size=4104)
    assert refusal(bob, make_csr(key)[0]).code == "rsa_size"


def test_it_refuses_an_rsa_exponent_other_than_65537(ca, bob):
    key = rsa.generate_private_key(public_exponent=3, key_size=2048)
    assert refusal(bob, make_csr(key)[0]).code == "rsa_exponent"


def test_it_refuses_the_p521_curve(ca, bob):
    key = ec.generate_private_key(ec.SECP521R1())
    error = refusal(bob, make_csr(key, hash_algorithm=hashes.SHA512())[0])
    assert error.code == "ec_curve"
    assert "secp521r1" in messages(error)[1]


def test_it_refuses_the_secp256k1_curve(ca, bob):
    key = ec.generate_private_key(ec.SECP256K1())
    assert refusal(bob, make_csr(key)[0]).code == "ec_curve"


def test_it_refuses_an_ed25519_key(ca, bob):
    key = ed25519.Ed25519PrivateKey.generate()
    csr = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")])
    ).sign(key, None)
    assert refusal(bob, csr.public_bytes(serialization.Encoding.PEM)).code == "key_type"


def test_it_refuses_a_dsa_key(ca, bob):
    key = dsa.generate_private_key(key_size=2048)
    assert refusal(bob, make_csr(key)[0]).code == "key_type"


def test_it_refuses_input_over_16_kib_without_parsing_it(ca, bob):
    pem, _key = make_csr()
    padded = pem + b"\n" * (16 * 1024 + 1 - len(pem))
    assert len(padded) == 16 * 1024 + 1
    error = refusal(bob, padded)
    assert error.code == "too_large"
    ja, en = messages(error)
    assert "16 KiB" in en and "16 KiB" in ja


def test_it_accepts_exactly_16_kib(ca, bob):
    pem, _key = make_csr()
    padded = pem + b"\n" * (16 * 1024 - len(pem))
    assert issue_certificate(user=bob, csr=padded, via=Certificate.Channel.OPERATOR).created


def test_it_accepts_rsa_2048_and_4096_and_p384(ca, alice, bob, charlie, rsa_2048_key):
    for user, key in (
        (alice, rsa_2048_key),
        (bob, rsa.generate_private_key(public_exponent=65537, key_size=4096)),
        (charlie, ec.generate_private_key(ec.SECP384R1())),
    ):
        assert issue_certificate(user=user, csr=make_csr(key)[0], via=Certificate.Channel.OPERATOR).created
    assert Certificate.objects.count() == 3


def test_it_refuses_a_key_that_another_id_already_has_a_certificate_for(ca, bob, charlie):
    pem, key = make_csr()
    issue_certificate(user=bob, csr=pem, via=Certificate.Channel.OPERATOR)
    with pytest.raises(CsrRejected) as caught:
        issue_certificate(user=charlie, csr=make_csr(key)[0], via=Certificate.Channel.OPERATOR)
    assert caught.value.code == "key_reused"
    assert Certificate.objects.count() == 1


def test_the_same_csr_sent_again_returns_the_certificate_already_issued(ca, bob):
    pem, _key = make_csr()
    first = issue_certificate(user=bob, csr=pem, via=Certificate.Channel.OPERATOR)
    again = issue_certificate(user=bob, csr=pem, via=Certificate.Channel.OPERATOR)
    assert first.created and not again.created
    assert again.certificate.pk == first.certificate.pk
    assert Certificate.objects.count() == 1
