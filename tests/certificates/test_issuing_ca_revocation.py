"""Revoking the issuing CA (`manage.py sign_root_crl --revoke-issuing-ca`), or its expiry, stops it.

Run through the root's real command: afterwards no channel issues (each refusal audited with
the reason), every certificate it issued is refused at login, answered `revoked` by OCSP
(cACompromise when its key was compromised, RFC 6960 2.7) and refused by nginx at the handshake,
and no new OCSP responder is certified by it.
"""

from __future__ import annotations

import io
import json
import threading
import time
from datetime import timedelta

import pytest
import time_machine
from cryptography import x509
from cryptography.x509 import ocsp
from django.core import mail
from django.core.management import CommandError, call_command
from django.db import connection, connections, transaction
from django.urls import reverse
from django.utils import timezone, translation

from accounts.models import AuditEntry
from certificates.client_cert import SESSION_CERTIFICATE_KEY
from certificates.models import Certificate, CertificateAction, CertificateAuthority, DelegatedKey, RevocationReason
from certificates.services import IssuanceRefused, issue_certificate, revoke_certificate, revoke_issuing_ca
from certificates.tasks import renew_ocsp_responder
from tests.support.clients import CertificateClient, code_from_mail, form_errors, issue_for, issue_for_operator
from tests.support.personas import PASSWORD
from tests.support.pki import ask, make_csr, ocsp_request
from tests.support.servers import Browser, write_client_files


def revoke_the_issuing_ca(reason: str = "key_compromise") -> str:
    out = io.StringIO()
    call_command("sign_root_crl", "--revoke-issuing-ca", reason, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def issuance_refusal_audited(user, reason: str, via: str) -> None:
    assert AuditEntry.objects.filter(
        action=CertificateAction.ISSUANCE_REFUSED, subject=user, detail__reason=reason, detail__via=via
    ).exists()


def issuing() -> CertificateAuthority:
    return CertificateAuthority.objects.get(kind=CertificateAuthority.Kind.ISSUING)


@pytest.fixture
def certified(ca, alice, bob, olivia):
    """Alice's and the operator's certificates in use; Bob's revoked for his own key's sake earlier."""
    alices, alices_key = issue_for(alice)
    bobs, _key = issue_for(bob)
    revoke_certificate(certificate=bobs, reason="key_compromise", by=olivia, now=timezone.now() - timedelta(hours=1))
    olivias, _key = issue_for_operator(olivia)
    return {"alice": alices, "alice_key": alices_key, "bob": bobs, "olivia": olivias}


def test_the_roots_command_revokes_the_issuing_ca_and_every_certificate_it_issued(certified, key_ceremony):
    bobs_revocation = Certificate.objects.get(pk=certified["bob"].pk).revoked_at

    out = revoke_the_issuing_ca("key_compromise")

    ca = issuing()
    assert ca.revoked_at is not None and ca.revocation_reason == "key_compromise"
    assert "2 certificate(s)" in out
    for name in ("alice", "olivia"):
        certificate = Certificate.objects.get(pk=certified[name].pk)
        assert (certificate.revoked_at, certificate.revocation_reason) == (ca.revoked_at, "ca_compromise")
        assert AuditEntry.objects.filter(
            action=CertificateAction.CERTIFICATE_REVOKED, certificate_serial=certificate.serial_number,
            detail__reason="ca_compromise",
        ).exists()
    bobs = Certificate.objects.get(pk=certified["bob"].pk)  # revoked before, for its own reason: kept
    assert (bobs.revoked_at, bobs.revocation_reason) == (bobs_revocation, "key_compromise")
    root = CertificateAuthority.objects.get(kind=CertificateAuthority.Kind.ROOT)
    entry = x509.load_der_x509_crl(bytes(root.crl_der)).get_revoked_certificate_by_serial_number(
        ca.certificate.serial_number
    )
    assert entry.revocation_date_utc == ca.revoked_at


def test_without_the_roots_secret_nothing_is_revoked(certified):
    with pytest.raises(CommandError, match="CERTPORTAL_ROOT_CA_PASSPHRASE"):
        revoke_the_issuing_ca()

    assert issuing().revoked_at is None
    assert Certificate.objects.get(pk=certified["alice"].pk).revoked_at is None


def test_another_reason_is_given_to_its_certificates_as_it_is(certified, key_ceremony):
    revoke_the_issuing_ca("cessation_of_operation")

    assert Certificate.objects.get(pk=certified["alice"].pk).revocation_reason == "cessation_of_operation"


def test_ca_compromise_is_not_a_reason_an_operator_gives_one_certificate(certified, key_ceremony):
    with pytest.raises(CommandError):
        call_command("revoke_certificate", certified["alice"].serial_number, "--reason", "ca_compromise")
    with pytest.raises(CommandError):
        revoke_the_issuing_ca("ca_compromise")
    assert Certificate.objects.get(pk=certified["alice"].pk).revoked_at is None


# --- no channel issues any more -----------------------------------------------------------------


@pytest.fixture
def revoked_ca(certified, key_ceremony, settings):
    revoke_the_issuing_ca("key_compromise")
    settings.ROOT_CA_PASSPHRASE = None  # the ceremony is over
    return certified


def assert_refused_for_the_revoked_ca(message: str) -> None:
    with translation.override("en"):
        assert "revoked the certification authority that issues" in message, message


def test_the_obtain_screen_refuses_with_the_reason(
    revoked_ca, charlie, behind_proxy, django_capture_on_commit_callbacks
):
    browser = CertificateClient(None, HTTP_ACCEPT_LANGUAGE="en")
    with django_capture_on_commit_callbacks(execute=True):
        browser.post(reverse("obtain-start"), {"login_id": charlie.login_id, "password": PASSWORD})
    assert browser.post(reverse("obtain-code"), {"code": code_from_mail(mail.outbox[-1])}).status_code == 302

    response = browser.post(reverse("obtain-issue"), data=json.dumps({"csr": make_csr()[0].decode()}),
                            content_type="application/json")

    assert response.status_code == 400
    assert response.json()["code"] == "issuing_ca_revoked"
    assert_refused_for_the_revoked_ca(response.json()["error"])
    issuance_refusal_audited(charlie, "issuing_ca_revoked", "obtain")
    assert not Certificate.objects.filter(owner=charlie).exists()


def test_renewal_is_refused_and_a_session_of_its_certificate_ended(revoked_ca, alice, behind_proxy):
    client = CertificateClient(revoked_ca["alice"])
    client.force_login(alice)
    session = client.session
    session[SESSION_CERTIFICATE_KEY] = revoked_ca["alice"].fingerprint_sha256
    session.save()

    response = client.post(reverse("renewal-issue"), data=json.dumps({"csr": make_csr()[0].decode()}),
                           content_type="application/json", HTTP_ACCEPT="application/json")

    assert response.status_code == 302 and response["Location"] == reverse("login")
    assert AuditEntry.objects.filter(
        action=AuditEntry.Action.LOGOUT, subject=alice, detail__reason="certificate_no_longer_valid"
    ).exists()
    # The service the renewal page calls refuses as well, whoever reaches it.
    with pytest.raises(IssuanceRefused) as caught:
        issue_certificate(user=alice, csr=make_csr()[0], via=Certificate.Channel.RENEWAL)
    assert caught.value.code == "issuing_ca_revoked"
    issuance_refusal_audited(alice, "issuing_ca_revoked", "renewal")


@pytest.mark.parametrize(
    ("command", "login_id", "via"),
    [("issue_certificate", "bob-user", "operator"), ("issue_operator_certificate", "olivia-operator",
                                                      "operator_access")],
)
def test_the_operators_commands_refuse_with_the_reason(revoked_ca, bob, olivia, tmp_path, command, login_id, via):
    csr = tmp_path / "request.csr"
    csr.write_bytes(make_csr()[0])

    with translation.override("en"), pytest.raises(CommandError) as caught:
        call_command(command, login_id, "--csr", str(csr), stdout=io.StringIO())

    assert_refused_for_the_revoked_ca(str(caught.value))
    issuance_refusal_audited(bob if via == "operator" else olivia, "issuing_ca_revoked", via)


def test_an_expired_issuing_ca_refuses_every_issuance_with_its_own_reason(ca, bob):
    after = ca.certificate.not_valid_after_utc + timedelta(minutes=1)
    with time_machine.travel(after, tick=False), pytest.raises(IssuanceRefused) as caught:
        issue_certificate(user=bob, csr=make_csr()[0], via=Certificate.Channel.OPERATOR)

    assert caught.value.code == "issuing_ca_expired"
    with translation.override("ja"):
        assert "有効期限が切れている" in str(caught.value.message)
    issuance_refusal_audited(bob, "issuing_ca_expired", "operator")
    assert not Certificate.objects.filter(owner=bob).exists()


# --- its certificates are refused ---------------------------------------------------------------


def test_login_with_one_of_its_certificates_is_refused_with_the_reason_and_audited(revoked_ca, alice, behind_proxy):
    response = CertificateClient(revoked_ca["alice"], HTTP_ACCEPT_LANGUAGE="ja").post(
        reverse("login"), {"login_id": alice.login_id, "password": PASSWORD}
    )

    assert response.status_code == 200
    text = form_errors(response)
    assert "認証局を銀行が失効させた" in text
    assert AuditEntry.objects.filter(
        action=AuditEntry.Action.LOGIN_FAILED, detail__reason="certificate_issuer_revoked"
    ).exists()
    assert not AuditEntry.objects.filter(action=AuditEntry.Action.LOGIN_SUCCEEDED).exists()


def test_the_operators_login_refuses_the_operators_certificate_of_it(revoked_ca, behind_proxy):
    response = CertificateClient(revoked_ca["olivia"], HTTP_ACCEPT_LANGUAGE="en").post(
        "/operator/login/", {"username": "olivia-operator", "password": PASSWORD}
    )

    assert response.status_code == 200
    assert "issuing CA that certified your operator certificate has been revoked" in response.content.decode()
    assert AuditEntry.objects.filter(
        action=AuditEntry.Action.LOGIN_FAILED, detail__site="operator", detail__reason="certificate_issuer_revoked"
    ).exists()


def test_ocsp_answers_revoked_with_ca_compromise_at_the_cas_revocation_time(certified, key_ceremony, client):
    assert ask(client, certified["alice"].x509).certificate_status == ocsp.OCSPCertStatus.GOOD

    revoke_the_issuing_ca("key_compromise")

    answer = ask(client, certified["alice"].x509)
    assert answer.certificate_status == ocsp.OCSPCertStatus.REVOKED
    assert answer.revocation_reason == x509.ReasonFlags.ca_compromise
    assert answer.revocation_time_utc == issuing().revoked_at
    bobs = ask(client, certified["bob"].x509)  # revoked earlier for its own key: its own time and reason
    assert bobs.revocation_reason == x509.ReasonFlags.key_compromise


def test_no_new_ocsp_responder_is_certified_by_it_and_then_no_answer_is_signed(certified, key_ceremony, client):
    assert renew_ocsp_responder() is True  # the hourly task, before the revocation
    revoke_the_issuing_ca("key_compromise")
    # The responder certified before the revocation still signs, until it expires.
    assert ask(client, certified["alice"].x509).certificate_status == ocsp.OCSPCertStatus.REVOKED
    due = DelegatedKey.objects.get().not_after - timedelta(days=1)
    expired = DelegatedKey.objects.get().not_after + timedelta(minutes=1)

    with time_machine.travel(due, tick=False):
        assert renew_ocsp_responder() is False
        with translation.override("en"), pytest.raises(CommandError, match="revoked"):
            call_command("renew_ocsp_responder", stdout=io.StringIO())
    with time_machine.travel(expired, tick=False):
        response = client.post("/pki/ocsp", ocsp_request(certified["alice"].x509),
                               content_type="application/ocsp-request")

    assert response.status_code == 200
    assert ocsp.load_der_ocsp_response(response.content).response_status == ocsp.OCSPResponseStatus.UNAUTHORIZED
    assert DelegatedKey.objects.count() == 1


def test_nginx_refuses_its_certificates_at_the_handshake_without_a_reload(nginx_portal, alice, key_ceremony, tmp_path):
    nginx_portal.ensure_serving()  # nginx has loaded the CRLs: neither lists the CA nor the certificate
    renew_ocsp_responder()  # the hourly task has certified the responder, as in production
    certificate, key = issue_for(alice)
    files = write_client_files(tmp_path / "alice", certificate, key)

    revoke_the_issuing_ca("key_compromise")

    refused = Browser(nginx_portal, files).get("/")
    assert refused.status == 400
    assert "電子証明書を確認できませんでした" in refused.text
    log = (nginx_portal.servers[0].log.parent / "error.log").read_text(errors="replace")
    assert "certificate revoked" in log, log[-2000:]


# --- the race with an issuance in flight --------------------------------------------------------


def test_an_issuance_signed_while_the_ca_is_being_revoked_is_rolled_back_not_left_valid(transactional_db, ca, bob):
    if connection.vendor != "postgresql":
        pytest.skip("row locks of PostgreSQL (SQLite serialises whole transactions)")
    revoking, release = threading.Event(), threading.Event()
    outcome: dict[str, object] = {}

    def root_operator():
        try:
            with transaction.atomic():
                revoke_issuing_ca(reason=RevocationReason.KEY_COMPROMISE)
                revoking.set()
                release.wait(timeout=30)  # the CA's row stays locked, its revocation not yet committed
        finally:
            connections.close_all()

    def customer():
        try:
            outcome["issued"] = issue_certificate(user=bob, csr=make_csr()[0], via=Certificate.Channel.OPERATOR)
        except IssuanceRefused as refusal:
            outcome["refused"] = refusal.code
        finally:
            connections.close_all()

    operator = threading.Thread(target=root_operator)
    operator.start()
    assert revoking.wait(timeout=30)
    issuing_thread = threading.Thread(target=customer)
    issuing_thread.start()
    # The issuance has read the CA as not revoked (uncommitted) and waits on the CA's row at its insert.
    deadline = time.monotonic() + 30
    while not _a_backend_waits_for_a_lock() and time.monotonic() < deadline:
        time.sleep(0.05)
    release.set()
    operator.join(timeout=30)
    issuing_thread.join(timeout=30)

    assert outcome == {"refused": "issuing_ca_revoked"}
    assert not Certificate.objects.filter(owner=bob).exists()


def _a_backend_waits_for_a_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                       "AND datname = current_database()")
        return cursor.fetchone()[0] > 0


# --- what it signs stays lint-clean -------------------------------------------------------------


def test_pkilint_finds_no_error_or_warning_in_the_crls_and_answers_of_a_revoked_issuing_ca(
    certified, key_ceremony, client, tmp_path
):
    """Both CRLs before and after, the answer for a certificate revoked with it, and an operator's certificate."""
    from cryptography.hazmat.primitives import serialization

    from certificates.crl import current_crl

    from .test_issuance import LINT_OCSP_RESPONSE, LINT_PKIX_CERT, SERIOUS, lint_findings

    def root_crl() -> bytes:
        return bytes(CertificateAuthority.objects.get(kind=CertificateAuthority.Kind.ROOT).crl_der)

    documents = {"root-crl-before": root_crl(), "operator-certificate": bytes(certified["olivia"].der)}
    renew_ocsp_responder()
    revoke_the_issuing_ca("key_compromise")
    documents["root-crl-listing-the-issuing-ca"] = root_crl()
    documents["issuing-crl-with-ca-compromise"] = bytes(current_crl().der)
    documents["ocsp-ca-compromise"] = client.post(
        "/pki/ocsp", ocsp_request(certified["alice"].x509, nonce=b"0123456789abcdef"),
        content_type="application/ocsp-request",
    ).content
    assert x509.load_der_x509_crl(documents["issuing-crl-with-ca-compromise"]).get_revoked_certificate_by_serial_number(
        certified["alice"].x509.serial_number
    ).extensions.get_extension_for_class(x509.CRLReason).value.reason == x509.ReasonFlags.ca_compromise

    findings = {}
    for name, content in documents.items():
        path = tmp_path / name
        if name.endswith("-certificate"):
            path.write_bytes(x509.load_der_x509_certificate(content).public_bytes(serialization.Encoding.PEM))
            found = lint_findings(path, LINT_PKIX_CERT)
        elif name.startswith("ocsp"):
            path.write_bytes(content)
            found = lint_findings(path, LINT_OCSP_RESPONSE)
        else:
            path.write_bytes(content)
            found = lint_crl_findings(path)
        findings[name] = [finding for finding in found if finding["severity"] in SERIOUS]
    assert findings == {name: [] for name in documents}


def lint_crl_findings(path) -> list[dict]:
    import subprocess
    import sys
    from pathlib import Path

    lint_crl = Path(sys.executable).parent / "lint_crl"
    if not lint_crl.exists():
        pytest.skip(f"pkilint is not installed at {lint_crl}")
    result = subprocess.run([str(lint_crl), "lint", "-t", "CRL", "-p", "PKIX", "-s", "ALL", "-f", "JSON", str(path)],
                            capture_output=True, text=True, timeout=120)
    report = json.loads(result.stdout)
    assert report["results"], result.stderr
    return [finding for entry in report["results"] for finding in entry["finding_descriptions"]]
