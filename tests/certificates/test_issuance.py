"""Issuing a client certificate: the portal decides everything but the public key."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import time_machine
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID
from django.db import transaction
from django.utils import translation

from accounts.models import AuditEntry, User
from accounts.services import suspend_id
from certificates import ca as portal_ca
from certificates.crl import current_crl
from certificates.csr import CsrRejected
from certificates.models import Certificate, CertificateAction, CertificateAuthority, RevocationReason
from certificates.services import IssuanceRefused, issue_certificate, revoke_certificate
from certportal.run import prepare_tls, server_hostnames
from tests.support.pki import foreign_request, make_csr, ocsp_request, unstored_certificate

pytestmark = pytest.mark.django_db



LINT_PKIX_CERT = Path(sys.executable).parent / "lint_pkix_cert"  # installed with the dev dependencies
LINT_OCSP_RESPONSE = Path(sys.executable).parent / "lint_ocsp_response"
# pkilint's findings that a certificate, CRL or OCSP response must not have.
SERIOUS = ("FATAL", "ERROR", "CRITICAL", "WARNING")


def issue(user, csr=None, *, via=Certificate.Channel.OBTAIN, **kwargs) -> Certificate:
    csr = csr if csr is not None else make_csr()[0]
    return issue_certificate(user=user, csr=csr, via=via, **kwargs).certificate


def hostile_csr() -> bytes:
    """A CSR asking for another subject, a CA's basic constraints, a SAN and serverAuth."""
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([
            x509.NameAttribute(NameOID.COMMON_NAME, "evil"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Evil Corp"),
        ]))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("bank.example")]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM)


# --- what the certificate says -----------------------------------------------------------


def test_the_subject_and_extensions_come_from_the_portal_never_from_the_csr(ca, bob):
    cert = issue(bob, hostile_csr()).x509

    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "bob-user"
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value == "2000001"
    assert "evil" not in cert.subject.rfc4514_string().lower()
    basic = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.value.ca is False and basic.critical
    with pytest.raises(x509.ExtensionNotFound):
        cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.CLIENT_AUTH
    ]
    assert {ext.oid for ext in cert.extensions} == {
        x509.OID_BASIC_CONSTRAINTS, x509.OID_KEY_USAGE, x509.OID_EXTENDED_KEY_USAGE,
        x509.OID_SUBJECT_KEY_IDENTIFIER, x509.OID_AUTHORITY_KEY_IDENTIFIER, x509.OID_CRL_DISTRIBUTION_POINTS,
        x509.OID_AUTHORITY_INFORMATION_ACCESS, x509.OID_CERTIFICATE_POLICIES,
    }


def test_the_certificate_names_the_ocsp_responder_the_issuers_address_and_the_configured_policy(
    ca, bob, client, settings
):
    settings.CERTIFICATE_POLICY_OID = "1.3.6.1.4.1.99999.1.2"
    cert = issue(bob).x509

    access = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess)
    assert not access.critical
    addresses = {item.access_method: item.access_location.value for item in access.value}
    assert addresses == {
        AuthorityInformationAccessOID.OCSP: settings.OCSP_URL,
        AuthorityInformationAccessOID.CA_ISSUERS: settings.CA_ISSUERS_URL,
    }
    policies = cert.extensions.get_extension_for_class(x509.CertificatePolicies).value
    assert [policy.policy_identifier.dotted_string for policy in policies] == ["1.3.6.1.4.1.99999.1.2"]
    # The CA-issuers address serves the issuing CA in DER, which verifies the certificate.
    response = client.get(urlsplit(settings.CA_ISSUERS_URL).path)
    assert response["Content-Type"] == "application/pkix-cert"
    cert.verify_directly_issued_by(x509.load_der_x509_certificate(response.content))


def test_the_issuing_ca_may_certify_only_client_authentication_and_its_ocsp_responder(ca):
    usage = portal_ca.unlock().certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.OCSP_SIGNING]


def test_the_certificate_is_for_client_authentication_with_a_critical_digital_signature_key_usage(ca, bob):
    cert = issue(bob).x509

    assert cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value == x509.ExtendedKeyUsage(
        [ExtendedKeyUsageOID.CLIENT_AUTH]
    )
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical
    assert usage.value.digital_signature
    assert not usage.value.key_cert_sign and not usage.value.crl_sign and not usage.value.key_encipherment


def test_its_key_identifiers_link_it_to_its_own_key_and_to_the_issuing_ca(ca, bob):
    csr, key = make_csr()
    cert = issue(bob, csr).x509

    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    issuing_ski = ca.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == issuing_ski.digest
    assert cert.issuer == ca.certificate.subject
    assert cert.public_key() == key.public_key()


def test_it_names_the_configured_crl_distribution_point(ca, bob, settings):
    settings.CRL_URL = "https://portal.bank.example/pki/crl"
    cert = issue(bob).x509

    points = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert [name.value for point in points for name in point.full_name] == ["https://portal.bank.example/pki/crl"]


def test_serial_numbers_carry_at_least_64_random_bits(ca, contract_a):
    users = [
        User.objects.create_user(f"user-{n:02}", f"user{n}@alpha.example", None, contract=contract_a,
                                 role=User.Role.USER)
        for n in range(12)
    ]
    serials = [issue(user).x509.serial_number for user in users]

    assert len(set(serials)) == len(serials)
    assert all(serial.bit_length() >= 64 for serial in serials)
    # Stored as the hex the admin shows and revoke_certificate accepts.
    assert set(Certificate.objects.values_list("serial_number", flat=True)) == {f"{s:X}" for s in serials}


@pytest.mark.parametrize(
    ("issued_at", "expected_not_after"),
    [
        (datetime(2026, 11, 26, 1, 2, 3, tzinfo=UTC), datetime(2027, 11, 26, 1, 2, 2, tzinfo=UTC)),
        # A leap day: a year later there is no 29 February, so the year ends with 28 February.
        (datetime(2028, 2, 29, 3, 0, 0, tzinfo=UTC), datetime(2029, 2, 28, 2, 59, 59, tzinfo=UTC)),
    ],
)
def test_validity_is_exactly_one_year_from_issuance(ca, bob, issued_at, expected_not_after):
    with time_machine.travel(issued_at + timedelta(microseconds=654321), tick=False):
        certificate = issue(bob)

    cert = certificate.x509
    # Backdated an hour, for a customer's PC whose clock is a little behind; the record keeps the issuance.
    assert cert.not_valid_before_utc == issued_at - timedelta(hours=1)
    # X.509 validity is inclusive: the last valid second is one year minus a second after issuance.
    assert cert.not_valid_after_utc == expected_not_after
    assert certificate.not_before == issued_at
    assert certificate.not_after == expected_not_after


def test_a_certificate_never_outlives_the_issuing_ca(ca, bob):
    from certificates.ca import unlock

    ca_expires = unlock().certificate.not_valid_after_utc
    with time_machine.travel(ca_expires - timedelta(days=30), tick=False):
        certificate = issue(bob)
    assert certificate.not_after == certificate.x509.not_valid_after_utc == ca_expires


def test_certificates_are_signed_with_sha384_like_the_p384_ca_key(ca, bob):
    assert isinstance(issue(bob).x509.signature_hash_algorithm, hashes.SHA384)


def test_the_issuance_and_its_audit_entry_are_one_transaction(ca, bob):
    with pytest.raises(RuntimeError), transaction.atomic():
        issue(bob)
        assert AuditEntry.objects.filter(action=CertificateAction.CERTIFICATE_ISSUED, subject=bob).count() == 1
        raise RuntimeError("the caller's transaction fails after issuing")
    assert not Certificate.objects.exists()
    assert not AuditEntry.objects.filter(action=CertificateAction.CERTIFICATE_ISSUED).exists()

    certificate = issue(bob)
    entry = AuditEntry.objects.get(action=CertificateAction.CERTIFICATE_ISSUED)
    assert (entry.subject, entry.contract, entry.certificate_serial) == (bob, bob.contract, certificate.serial_number)
    assert entry.detail["via"] == Certificate.Channel.OBTAIN


# --- who gets one, and when ---------------------------------------------------------------


def test_a_different_csr_within_the_pending_hold_is_refused(ca, bob, settings):
    settings.PENDING_CERTIFICATE_HOLD_MINUTES = 10
    issued_at = datetime(2026, 11, 26, 1, 0, tzinfo=UTC)
    with time_machine.travel(issued_at, tick=False):
        first = issue(bob)
    with (
        time_machine.travel(issued_at + timedelta(minutes=9, seconds=59), tick=False),
        pytest.raises(IssuanceRefused) as caught,
    ):
        issue(bob)

    assert caught.value.code == "issuance_in_progress"
    with translation.override("en"):
        assert "issued moments ago" in str(caught.value.message)
    assert list(Certificate.objects.all()) == [first]
    assert AuditEntry.objects.filter(
        action=CertificateAction.ISSUANCE_REFUSED, subject=bob, detail__reason="issuance_in_progress"
    ).exists()


def test_after_the_hold_a_new_certificate_is_issued_and_the_abandoned_one_revoked_as_superseded(ca, bob, settings):
    settings.PENDING_CERTIFICATE_HOLD_MINUTES = 10
    issued_at = datetime(2026, 11, 26, 1, 0, tzinfo=UTC)
    with time_machine.travel(issued_at, tick=False):
        abandoned = issue(bob)
    later = issued_at + timedelta(minutes=10)
    with time_machine.travel(later, tick=False):
        newer = issue(bob)

    abandoned.refresh_from_db()
    assert newer.pk != abandoned.pk
    assert abandoned.revoked_at == later
    assert abandoned.revocation_reason == RevocationReason.SUPERSEDED
    assert newer.revoked_at is None
    assert AuditEntry.objects.filter(
        action=CertificateAction.CERTIFICATE_REVOKED, certificate_serial=abandoned.serial_number
    ).exists()
    with time_machine.travel(later, tick=False):
        crl = x509.load_der_x509_crl(bytes(current_crl().der))
    assert crl.get_revoked_certificate_by_serial_number(int(abandoned.serial_number, 16)) is not None


def test_a_certificate_already_in_use_does_not_hold_the_slot(ca, bob):
    from certificates.services import supersede_older_certificates

    used = issue(bob)
    supersede_older_certificates(newer=used)
    renewed = issue(bob, via=Certificate.Channel.RENEWAL)

    used.refresh_from_db()
    assert renewed.pk != used.pk
    assert used.revoked_at is None  # superseded only once the renewed one is used


def test_an_id_with_a_certificate_in_use_renews_it_rather_than_obtaining_another(ca, bob):
    from certificates.services import supersede_older_certificates

    used = issue(bob)
    supersede_older_certificates(newer=used)  # its first login
    with pytest.raises(IssuanceRefused) as caught:
        issue(bob)
    assert caught.value.code == "has_valid_certificate"
    assert bob.certificates.count() == 1
    assert issue(bob, via=Certificate.Channel.RENEWAL).pk != used.pk


def test_a_suspended_id_gets_no_certificate(ca, bob, olivia):
    suspend_id(user=bob, by=olivia)
    with pytest.raises(IssuanceRefused) as caught:
        issue(bob)

    assert caught.value.code == "id_suspended"
    assert not Certificate.objects.exists()


def test_an_operator_gets_no_certificate(ca, olivia):
    with pytest.raises(IssuanceRefused) as caught:
        issue(olivia)

    assert caught.value.code == "not_a_customer_id"
    assert not Certificate.objects.exists()


def test_the_same_csr_after_its_certificate_expired_is_refused_not_answered_with_the_expired_one(ca, bob):
    csr, _key = make_csr()
    issued_at = datetime(2026, 11, 26, 1, 0, tzinfo=UTC)
    expired = issue(bob, csr, now=issued_at)
    with pytest.raises(CsrRejected) as caught:
        issue(bob, csr, now=expired.not_after + timedelta(days=1))

    assert caught.value.code == "key_reused"
    assert list(Certificate.objects.all()) == [expired]


def test_a_public_key_certified_for_another_id_is_refused(ca, bob, charlie):
    csr, _key = make_csr()
    issue(bob, csr)
    with pytest.raises(CsrRejected) as caught:
        issue(charlie, csr)

    assert caught.value.code == "key_reused"
    assert Certificate.objects.filter(owner=charlie).count() == 0


def test_a_revoked_certificates_key_cannot_be_certified_again(ca, bob, olivia):
    csr, _key = make_csr()
    first = issue(bob, csr)
    revoke_certificate(certificate=first, reason=RevocationReason.KEY_COMPROMISE, by=olivia)
    with pytest.raises(CsrRejected) as caught:
        issue(bob, csr)

    assert caught.value.code == "key_reused"
    assert Certificate.objects.count() == 1


def test_without_a_ca_nothing_is_issued(bob):
    assert not CertificateAuthority.objects.exists()
    with pytest.raises(portal_ca.CANotInitialised):
        issue(bob)
    assert not Certificate.objects.exists()


# --- outside tools agree ------------------------------------------------------------------


def lint_findings(path: Path, linter: Path = LINT_PKIX_CERT) -> list[dict]:
    if not linter.exists():
        pytest.skip(f"pkilint is not installed at {linter}")
    result = subprocess.run(
        [str(linter), "lint", "-s", "ALL", "-f", "JSON", str(path)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode in (0, 1), result.stderr
    report = json.loads(result.stdout)
    assert report["results"], "pkilint ran no validator"
    return [
        {"code": finding["code"], "severity": finding["severity"], "path": result_entry["node_path"]}
        for result_entry in report["results"]
        for finding in result_entry["finding_descriptions"]
    ]


@pytest.mark.parametrize(
    "key_factory",
    [
        pytest.param(lambda: ec.generate_private_key(ec.SECP256R1()), id="p256"),
        pytest.param(lambda: ec.generate_private_key(ec.SECP384R1()), id="p384"),
        pytest.param(None, id="rsa2048"),
    ],
)
def test_pkilint_finds_no_error_in_a_freshly_issued_certificate(ca, bob, tmp_path, rsa_2048_key, key_factory):
    if not LINT_PKIX_CERT.exists():
        pytest.skip(f"pkilint is not installed at {LINT_PKIX_CERT}")
    key = key_factory() if key_factory else rsa_2048_key
    path = tmp_path / "cert.pem"
    path.write_text(issue(bob, make_csr(key)[0]).pem)

    findings = lint_findings(path)
    assert [f for f in findings if f["severity"] in SERIOUS] == []


def test_pkilint_finds_no_error_or_warning_in_the_cas_the_ocsp_responder_its_answers_and_make_runs_server(
    client, ca, bob, charlie, olivia, tmp_path
):
    """Every other certificate the portal makes, and an OCSP answer of each kind (RFC 6960 linter)."""
    good, revoked = issue(bob), issue(charlie)
    revoke_certificate(certificate=revoked, reason=RevocationReason.KEY_COMPROMISE, by=olivia)
    documents: dict[str, tuple[bytes, Path]] = {}
    for name, certificate in (("good", good.x509), ("revoked", revoked.x509), ("unknown", unstored_certificate())):
        answer = client.post("/pki/ocsp", ocsp_request(certificate, nonce=b"0123456789abcdef"),
                             content_type="application/ocsp-request")
        documents[f"ocsp-{name}"] = (answer.content, LINT_OCSP_RESPONSE)
    # The unsigned answers too: a malformed request, and a certificate of a CA the portal does not serve.
    for name, body in (("malformed", b"not DER"), ("unauthorized", foreign_request())):
        answer = client.post("/pki/ocsp", body, content_type="application/ocsp-request")
        assert ocsp.load_der_ocsp_response(answer.content).response_status.name.lower().startswith(name[:9])
        documents[f"ocsp-{name}"] = (answer.content, LINT_OCSP_RESPONSE)
    for record in CertificateAuthority.objects.all():
        documents[f"ca-{record.kind}"] = (record.certificate_pem.encode(), LINT_PKIX_CERT)
    (responder,) = ocsp.load_der_ocsp_response(documents["ocsp-good"][0]).certificates
    documents["ocsp-responder"] = (responder.public_bytes(serialization.Encoding.PEM), LINT_PKIX_CERT)
    tls = prepare_tls(server_hostnames("127.0.0.1"), tmp_path / "tls")
    server = x509.load_pem_x509_certificates(tls.certificate.read_bytes())[0]
    documents["make-run-server"] = (server.public_bytes(serialization.Encoding.PEM), LINT_PKIX_CERT)
    documents["make-run-tls-ca"] = (tls.server_ca.read_bytes(), LINT_PKIX_CERT)

    findings = {}
    for name, (content, linter) in documents.items():
        (tmp_path / name).write_bytes(content)
        findings[name] = [f for f in lint_findings(tmp_path / name, linter) if f["severity"] in SERIOUS]
    assert findings == {name: [] for name in documents}


def openssl(*args: str) -> subprocess.CompletedProcess:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed")
    return subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=60)


def test_openssl_verifies_a_freshly_issued_certificate_against_the_chain(ca, bob, charlie, tmp_path, rsa_2048_key):
    (tmp_path / "chain.pem").write_text(portal_ca.chain_pem())
    for name, user, key in (("ec", bob, None), ("rsa", charlie, rsa_2048_key)):
        (tmp_path / f"{name}.pem").write_text(issue(user, make_csr(key)[0]).pem)
        result = openssl("verify", "-purpose", "sslclient", "-CAfile", str(tmp_path / "chain.pem"),
                         str(tmp_path / f"{name}.pem"))
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.strip().endswith(": OK")


def test_openssl_refuses_a_revoked_certificate_when_checking_the_published_crl(ca, bob, charlie, olivia, tmp_path):
    (tmp_path / "chain.pem").write_text(portal_ca.chain_pem())
    revoked, kept = issue(bob), issue(charlie)
    revoke_certificate(certificate=revoked, reason=RevocationReason.KEY_COMPROMISE, by=olivia)
    crl = x509.load_der_x509_crl(bytes(current_crl().der))
    (tmp_path / "crl.pem").write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "revoked.pem").write_text(revoked.pem)
    (tmp_path / "kept.pem").write_text(kept.pem)

    def verify(name: str) -> subprocess.CompletedProcess:
        return openssl("verify", "-crl_check", "-CAfile", str(tmp_path / "chain.pem"),
                       "-CRLfile", str(tmp_path / "crl.pem"), str(tmp_path / name))

    refused = verify("revoked.pem")
    assert refused.returncode != 0
    assert "certificate revoked" in refused.stdout + refused.stderr
    accepted = verify("kept.pem")
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
