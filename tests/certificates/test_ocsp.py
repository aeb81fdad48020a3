"""OCSP (RFC 6960) at /pki/ocsp: answers read from the database, signed by a delegated responder."""

from __future__ import annotations

import base64
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
import time_machine
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID
from django.core.management import call_command
from django.utils import timezone

from certificates import ca as portal_ca
from certificates.models import DelegatedKey, RevocationReason
from certificates.ocsp import renew_responder
from certificates.services import revoke_certificate
from tests.support.clients import issue_for
from tests.support.pki import ask, foreign_request, ocsp_request, unstored_certificate

OCSP_REQUEST = "application/ocsp-request"


def test_a_revocation_is_answered_revoked_at_once_with_its_time_and_reason(client, ca, alice, olivia):
    certificate, _key = issue_for(alice)
    before = ask(client, certificate.x509)
    assert before.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    assert before.certificate_status == ocsp.OCSPCertStatus.GOOD

    revoke_certificate(certificate=certificate, reason=RevocationReason.KEY_COMPROMISE, by=olivia)
    certificate.refresh_from_db()
    after = ask(client, certificate.x509)
    assert after.certificate_status == ocsp.OCSPCertStatus.REVOKED
    assert after.revocation_time_utc == certificate.revoked_at.replace(microsecond=0)
    assert after.revocation_reason == x509.ReasonFlags.key_compromise


def test_the_answer_is_signed_by_a_delegated_responder_that_the_issuing_ca_certified(client, ca, alice, settings):
    certificate, _key = issue_for(alice)
    answer = ask(client, certificate.x509)
    (responder,) = answer.certificates
    responder.verify_directly_issued_by(portal_ca.unlock().certificate)
    assert list(responder.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.OCSP_SIGNING
    ]
    responder.extensions.get_extension_for_class(x509.OCSPNoCheck)
    assert responder.not_valid_after_utc - responder.not_valid_before_utc == timedelta(days=30)
    responder.public_key().verify(
        answer.signature, answer.tbs_response_bytes, ec.ECDSA(answer.signature_hash_algorithm)
    )
    assert answer.next_update_utc - answer.this_update_utc == timedelta(minutes=settings.OCSP_VALIDITY_MINUTES)
    assert abs(answer.this_update_utc - timezone.now()) < timedelta(minutes=1)


def test_a_serial_the_portal_never_issued_is_unknown(client, ca):
    assert ask(client, unstored_certificate()).certificate_status == ocsp.OCSPCertStatus.UNKNOWN


def test_the_nonce_is_echoed_and_sha256_cert_ids_are_answered_in_kind(client, ca, alice):
    certificate, _key = issue_for(alice)
    answer = ask(client, certificate.x509, nonce=b"0123456789abcdef", algorithm=hashes.SHA256)
    assert answer.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == b"0123456789abcdef"
    assert isinstance(answer.hash_algorithm, hashes.SHA256)
    assert answer.certificate_status == ocsp.OCSPCertStatus.GOOD


def test_the_get_form_takes_the_request_in_url_encoded_base64(client, ca, alice):
    certificate, _key = issue_for(alice)
    encoded = base64.b64encode(ocsp_request(certificate.x509)).decode()
    for path in (f"/pki/ocsp/{encoded}", f"/pki/ocsp/{quote(encoded, safe='')}"):
        response = client.get(path)
        answer = ocsp.load_der_ocsp_response(response.content)
        assert answer.certificate_status == ocsp.OCSPCertStatus.GOOD, path


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        pytest.param("post", "/pki/ocsp", b"not an OCSP request", id="post-garbage"),
        pytest.param("post", "/pki/ocsp", b"", id="post-empty"),
        pytest.param("get", "/pki/ocsp/%%%not-base64", None, id="get-not-base64"),
        pytest.param("get", "/pki/ocsp/" + base64.b64encode(b"\x30\x03\x02\x01\x01").decode(), None, id="get-not-ocsp"),
        pytest.param("post", "/pki/ocsp", b"x" * 5000, id="post-oversized"),
    ],
)
def test_a_malformed_request_gets_a_malformed_request_answer_not_an_error(client, ca, method, path, body):
    response = client.post(path, body, content_type=OCSP_REQUEST) if method == "post" else client.get(path)
    assert response.status_code == 200
    assert ocsp.load_der_ocsp_response(response.content).response_status == (
        ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    )


def test_a_nonce_longer_than_32_octets_is_refused_as_malformed(client, ca, alice):
    certificate, _key = issue_for(alice)
    assert ask(client, certificate.x509, nonce=b"n" * 33).response_status == ocsp.OCSPResponseStatus.MALFORMED_REQUEST


def test_a_certificate_of_another_issuer_is_not_answered_for(client, ca):
    response = client.post("/pki/ocsp", foreign_request(), content_type=OCSP_REQUEST)
    assert ocsp.load_der_ocsp_response(response.content).response_status == ocsp.OCSPResponseStatus.UNAUTHORIZED


@pytest.mark.django_db
def test_before_init_ca_the_responder_says_try_later(client):
    response = client.post("/pki/ocsp", foreign_request(), content_type=OCSP_REQUEST)
    assert response.status_code == 200
    assert ocsp.load_der_ocsp_response(response.content).response_status == ocsp.OCSPResponseStatus.TRY_LATER


def test_the_responder_is_certified_lazily_then_renewed_when_a_third_of_its_life_is_left(client, ca, alice):
    certificate, _key = issue_for(alice)
    assert not DelegatedKey.objects.exists()
    first = ask(client, certificate.x509).certificates[0]
    assert DelegatedKey.objects.count() == 1
    assert renew_responder() == (DelegatedKey.objects.get(), False)

    with time_machine.travel(first.not_valid_before_utc + timedelta(days=19), tick=False):
        call_command("renew_ocsp_responder", stdout=open("/dev/null", "w"))  # noqa: SIM115
        assert DelegatedKey.objects.count() == 1  # 11 of 30 days left: not yet
    with time_machine.travel(first.not_valid_before_utc + timedelta(days=21), tick=False):
        call_command("renew_ocsp_responder", stdout=open("/dev/null", "w"))  # noqa: SIM115
        assert DelegatedKey.objects.count() == 2
        renewed = ask(client, certificate.x509).certificates[0]
    assert renewed.serial_number != first.serial_number
    assert renewed.public_key() != first.public_key()


# --- outside tools agree ------------------------------------------------------------------


def openssl_ocsp(url: str, issuer: Path, chain: Path, certificate: Path) -> str:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed")
    result = subprocess.run(
        ["openssl", "ocsp", "-url", url, "-issuer", str(issuer), "-CAfile", str(chain), "-cert", str(certificate)],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Response verify OK" in result.stderr + result.stdout, result.stdout + result.stderr
    return result.stdout


def test_openssl_ocsp_gets_good_revoked_with_its_reason_and_unknown(live_server, ca, alice, bob, olivia, tmp_path):
    issuer, chain = tmp_path / "issuer.pem", tmp_path / "chain.pem"
    issuer.write_bytes(portal_ca.unlock().certificate.public_bytes(serialization.Encoding.PEM))
    chain.write_text(portal_ca.chain_pem())
    good, _key = issue_for(alice)
    revoked, _key = issue_for(bob)
    revoke_certificate(certificate=revoked, reason=RevocationReason.AFFILIATION_CHANGED, by=olivia)
    files = {}
    for name, cert in (("good", good.x509), ("revoked", revoked.x509), ("unknown", unstored_certificate())):
        files[name] = tmp_path / f"{name}.pem"
        files[name].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    url = f"{live_server.url}/pki/ocsp"

    assert f"{files['good']}: good" in openssl_ocsp(url, issuer, chain, files["good"])
    answer = openssl_ocsp(url, issuer, chain, files["revoked"])
    assert f"{files['revoked']}: revoked" in answer
    assert "Reason: affiliationChanged" in answer
    assert f"{files['unknown']}: unknown" in openssl_ocsp(url, issuer, chain, files["unknown"])


def test_the_workers_hourly_task_renews_the_responder_ten_days_before_it_expires(client, ca, alice):
    """The beat entry names the task, hourly; run through the Celery app it renews while the old one is valid."""
    from celery import current_app
    from django.conf import settings

    entry = settings.CELERY_BEAT_SCHEDULE["renew-ocsp-responder"]
    assert entry["schedule"].minute == {30} and len(entry["schedule"].hour) == 24
    current_app.loader.import_default_modules()  # the worker's autodiscovery of the apps' tasks
    task = current_app.tasks[entry["task"]]
    certificate, _key = issue_for(alice)
    assert task.apply().get() is True  # none yet: certified
    first = DelegatedKey.objects.get()

    with time_machine.travel(first.not_after - timedelta(days=10, hours=1), tick=False):
        assert task.apply().get() is False  # 10 days and an hour left: not yet
    with time_machine.travel(first.not_after - timedelta(days=9, hours=23), tick=False):
        assert task.apply().get() is True
        renewed = ask(client, certificate.x509).certificates[0]
        assert renewed.not_valid_before_utc < first.not_after  # well before the old one expires
    assert renewed.serial_number != first.certificate.serial_number
    assert DelegatedKey.objects.count() == 2
