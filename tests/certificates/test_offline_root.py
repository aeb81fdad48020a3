"""The root key is offline: only `init_ca` and `sign_root_crl` are given its secret.

Every service (web, worker, beat) runs with the issuing key alone, and the root's CRL is
signed for a long validity by its operator and served from the database.
"""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.core.management import CommandError, call_command
from django.utils import timezone

from accounts.models import AuditEntry
from certificates import ca as portal_ca
from certificates import keys
from certificates.models import CertificateAction, CertificateAuthority, RevocationList
from certificates.tasks import refresh_crl
from tests.support.clients import issue_for
from tests.support.personas import PASSWORD
from tests.support.servers import Browser, Portal, production_environment, start_gunicorn, write_client_files

# The portal started here checks the passwords in its own process, with the production hashers.
pytestmark = pytest.mark.full_strength_hashing


def run(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_sign_root_crl_signs_a_crl_for_a_year_that_the_issuing_ca_certificate_points_to(ca, key_ceremony, client):
    out = run("sign_root_crl", "--days", "400")

    root = CertificateAuthority.objects.get(kind="root")
    response = client.get("/pki/root.crl")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pkix-crl"
    crl = x509.load_der_x509_crl(response.content)
    assert crl.is_signature_valid(root.certificate.public_key())
    assert crl.next_update_utc - crl.last_update_utc == timedelta(days=400)
    assert f"Root CRL #{root.last_crl_number}" in out
    points = portal_ca.unlock().certificate.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert [name.value for point in points for name in point.full_name] == ["https://127.0.0.1:8443/pki/root.crl"]


def test_sign_root_crl_without_the_roots_secret_says_which_secret_it_needs(ca):
    before = CertificateAuthority.objects.get(kind="root").last_crl_number

    with pytest.raises(CommandError, match="CERTPORTAL_ROOT_CA_PASSPHRASE"):
        run("sign_root_crl")
    assert CertificateAuthority.objects.get(kind="root").last_crl_number == before


def test_only_the_roots_command_revokes_the_issuing_ca_and_its_next_crl_lists_it(ca, key_ceremony, tmp_path):
    run("sign_root_crl", "--revoke-issuing-ca", "key_compromise", "--out", str(tmp_path / "root.crl"))

    issuing = CertificateAuthority.objects.get(kind="issuing")
    crl = x509.load_der_x509_crl((tmp_path / "root.crl").read_bytes())
    entry = crl.get_revoked_certificate_by_serial_number(issuing.certificate.serial_number)
    assert entry is not None
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason == x509.ReasonFlags.key_compromise
    assert AuditEntry.objects.filter(action=CertificateAction.CERTIFICATE_REVOKED, detail__ca=issuing.subject).exists()


def test_the_hourly_crl_job_re_signs_with_the_issuing_key_alone(ca, settings):
    assert settings.ROOT_CA_PASSPHRASE is None
    refresh_crl()
    RevocationList.objects.update(next_update=timezone.now())  # due again

    number = refresh_crl()

    assert number == RevocationList.objects.latest("number").number == 2


@pytest.mark.embedded
def test_a_portal_without_the_roots_secret_issues_refreshes_its_crl_and_logs_in(transactional_db, ca, alice, tmp_path):
    environment = production_environment()  # debug off, the issuing key's secret and nothing of the root's
    assert not any("ROOT" in name for name in environment)
    server, port, tls_files = start_gunicorn(tmp_path, tls=True, environment=environment)
    try:
        portal = Portal(host="127.0.0.1", port=port, ca_chain=tls_files.server_ca, servers=[server], starting=[
            (server, lambda: Browser(portal).get("/pki/ca.pem")),
        ])
        certificate, key = issue_for(alice)  # this test process has no root secret either
        browser = Browser(portal, write_client_files(tmp_path / "alice", certificate, key))

        response = browser.log_in(alice.login_id, PASSWORD)
        assert response.status == 302, portal.logs()

        RevocationList.objects.all().delete()  # the server must sign a CRL itself
        crl = browser.get("/pki/crl")
        assert crl.status == 200, portal.logs()
        issuing = portal_ca.unlock().certificate
        assert x509.load_der_x509_crl(crl.body).is_signature_valid(issuing.public_key())
        root_crl = browser.get("/pki/root.crl")
        assert root_crl.status == 200, portal.logs()
    finally:
        server.stop()


def test_rewrap_ca_keys_moves_keys_of_one_old_passphrase_to_two_secrets_at_600000_rounds(ca, key_ceremony, settings):
    old = "the-single-old-ca-passphrase"
    for authority in CertificateAuthority.objects.all():
        key = serialization.load_pem_private_key(
            authority.encrypted_key_pem.encode(), keys.passphrase_for(authority.kind).encode()
        )
        authority.encrypted_key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(old.encode()),  # what earlier versions stored
        ).decode()
        authority.save()
        assert keys.kdf_iterations(authority.encrypted_key_pem) == 2048
    settings.LEGACY_CA_PASSPHRASE = old

    out = run("rewrap_ca_keys")

    assert "2,048 → 600,000" in out
    for authority in CertificateAuthority.objects.all():
        assert keys.kdf_iterations(authority.encrypted_key_pem) == 600_000
        key = serialization.load_pem_private_key(
            authority.encrypted_key_pem.encode(), keys.passphrase_for(authority.kind).encode()
        )
        assert key.public_key() == authority.certificate.public_key()
        with pytest.raises(ValueError):
            serialization.load_pem_private_key(authority.encrypted_key_pem.encode(), old.encode())


def test_an_ocsp_response_is_signed_through_the_key_backend_and_verifies(ca, bob):
    """The entry point the OCSP responder's key uses (here the issuing key answers for itself)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509 import ocsp

    certificate, _key = issue_for(bob)
    issuing = portal_ca.unlock()
    builder = (
        ocsp.OCSPResponseBuilder()
        .add_response(
            cert=certificate.x509, issuer=issuing.certificate, algorithm=hashes.SHA256(),
            cert_status=ocsp.OCSPCertStatus.GOOD, this_update=timezone.now(),
            next_update=timezone.now() + timedelta(hours=1), revocation_time=None, revocation_reason=None,
        )
    )

    response = keys.signed_ocsp_response(
        builder, key_name="issuing", reference=issuing.record.encrypted_key_pem, responder=issuing.certificate,
    )

    assert response.certificate_status == ocsp.OCSPCertStatus.GOOD
    assert response.serial_number == certificate.x509.serial_number
    assert response.responder_key_hash == x509.SubjectKeyIdentifier.from_public_key(
        issuing.certificate.public_key()
    ).digest
    assert response.certificates[0] == issuing.certificate
    issuing.certificate.public_key().verify(
        response.signature, response.tbs_response_bytes, ec.ECDSA(hashes.SHA384())
    )
