"""The operators' door: /operator/ needs the operator's own certificate, then the password.

Through Django here (the certificate as nginx passes it); tests/site/test_nginx.py shows nginx
refusing /operator/ to anyone without an operator's certificate before Django is asked.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography import x509
from django.contrib.auth import authenticate
from django.utils import timezone

from accounts.models import AuditEntry, User
from accounts.services import verify_password
from certificates.models import Certificate
from certificates.services import OPERATOR_UNIT
from tests.support.clients import CertificateClient, issue_for, issue_for_operator, operator_signed_in
from tests.support.personas import PASSWORD

pytestmark = pytest.mark.django_db



@pytest.fixture
def oscar(db) -> User:
    """A second bank operator."""
    return User.objects.create_superuser("oscar-operator", "oscar@bank.example", PASSWORD)


@pytest.fixture
def olivias_certificate(ca, behind_proxy, olivia) -> Certificate:
    return issue_for_operator(olivia)[0]


def operator_login(client, login_id: str, password: str):
    return client.post("/operator/login/?next=/operator/", {"username": login_id, "password": password})


def refused(response, client) -> bool:
    return response.status_code == 200 and "_auth_user_id" not in client.session


def test_an_operator_logs_in_with_her_certificate_and_password_and_the_session_is_bound_to_it(
    olivia, olivias_certificate
):
    client = CertificateClient(olivias_certificate, HTTP_X_REAL_IP="198.51.100.9")

    response = operator_login(client, olivia.login_id, PASSWORD)

    assert (response.status_code, response["Location"]) == (302, "/operator/")
    assert client.session["certportal_certificate_sha256"] == olivias_certificate.fingerprint_sha256
    assert client.get("/operator/").status_code == 200
    entry = AuditEntry.objects.get(action=AuditEntry.Action.LOGIN_SUCCEEDED)
    assert (entry.subject, entry.certificate_serial, entry.remote_addr) == (
        olivia, olivias_certificate.serial_number, "198.51.100.9")
    assert entry.detail["site"] == "operator"


def test_an_operators_certificate_says_so_in_its_subject(olivias_certificate):
    subject = olivias_certificate.x509.subject
    assert subject.get_attributes_for_oid(x509.NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value == OPERATOR_UNIT
    assert subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == "olivia-operator"
    assert olivias_certificate.issued_via == Certificate.Channel.OPERATOR_ACCESS


def test_without_a_certificate_the_password_is_not_even_checked_and_nothing_is_counted(ca, behind_proxy, olivia):
    client = CertificateClient(None, HTTP_ACCEPT_LANGUAGE="en")

    for password in ("wrong-password", PASSWORD):
        response = operator_login(client, olivia.login_id, password)
        assert refused(response, client)
        assert "The operators&#x27; site needs your bank operator" in response.content.decode()

    olivia.refresh_from_db()
    assert olivia.failed_password_attempts == 0
    assert not AuditEntry.objects.filter(detail__reason="wrong_password").exists()
    assert AuditEntry.objects.filter(action=AuditEntry.Action.LOGIN_FAILED, detail__site="operator",
                                     detail__reason="certificate_missing").count() == 2


def test_a_customers_password_at_the_operators_login_never_touches_the_customers_failure_count(
    bob, olivias_certificate, settings
):
    """The penetration test's 4 -> 0: a customer's right password here reset the count of failures."""
    settings.LOCKOUT_THRESHOLD = 5
    for _ in range(4):
        verify_password(user=bob, password="wrong-password")
    bobs_certificate, _key = issue_for(bob)
    before = AuditEntry.objects.filter(subject=bob).count()

    for certificate in (None, bobs_certificate, olivias_certificate):
        client = CertificateClient(certificate)
        assert refused(operator_login(client, bob.login_id, PASSWORD), client)
        assert refused(operator_login(client, bob.login_id, "wrong-password"), client)

    bob.refresh_from_db()
    assert (bob.failed_password_attempts, bob.state) == (4, User.State.ACTIVE)
    # Nor is the attempt written under bob's name, which his contract's administrator reads.
    assert AuditEntry.objects.filter(subject=bob).count() == before
    assert AuditEntry.objects.filter(detail__site="operator", detail__login_id="bob-user").count() == 6


def test_a_customers_certificate_is_refused_with_the_operators_own_password(alice, olivia, olivias_certificate):
    client = CertificateClient(issue_for(alice)[0])
    assert refused(operator_login(client, olivia.login_id, PASSWORD), client)
    olivia.refresh_from_db()
    assert olivia.failed_password_attempts == 0


def test_an_operators_certificate_does_not_let_another_operator_in(oscar, olivias_certificate):
    client = CertificateClient(olivias_certificate, HTTP_ACCEPT_LANGUAGE="en")
    response = operator_login(client, oscar.login_id, PASSWORD)
    assert refused(response, client)
    assert "belongs to another login ID" in response.content.decode()
    oscar.refresh_from_db()
    assert oscar.failed_password_attempts == 0


def test_wrong_passwords_with_her_own_certificate_lock_the_operator(olivia, olivias_certificate, settings):
    settings.LOCKOUT_THRESHOLD = 3
    client = CertificateClient(olivias_certificate, HTTP_X_REAL_IP="198.51.100.9")

    for _ in range(3):
        assert refused(operator_login(client, olivia.login_id, "wrong-password"), client)

    olivia.refresh_from_db()
    assert olivia.state == User.State.LOCKED
    assert AuditEntry.objects.get(action=AuditEntry.Action.ID_LOCKED, subject=olivia).remote_addr == "198.51.100.9"
    assert refused(operator_login(client, olivia.login_id, PASSWORD), client)


def test_the_right_password_resets_the_operators_own_count(olivia, olivias_certificate, settings):
    settings.LOCKOUT_THRESHOLD = 3
    client = CertificateClient(olivias_certificate)
    operator_login(client, olivia.login_id, "wrong-password")

    assert operator_login(client, olivia.login_id, PASSWORD).status_code == 302
    olivia.refresh_from_db()
    assert olivia.failed_password_attempts == 0


def test_an_expired_operator_certificate_is_refused(ca, behind_proxy, olivia):
    old, _key = issue_for_operator(olivia, now=timezone.now() - timedelta(days=400))
    client = CertificateClient(old, HTTP_ACCEPT_LANGUAGE="en")
    response = operator_login(client, olivia.login_id, PASSWORD)
    assert refused(response, client)
    assert "no longer valid" in response.content.decode()


def test_a_session_not_opened_with_a_certificate_does_not_reach_the_operators_site(olivia, olivias_certificate):
    client = CertificateClient(olivias_certificate)
    client.force_login(olivia)  # a session from anywhere but the operators' login
    response = client.get("/operator/")
    assert response.status_code == 302 and response["Location"].startswith("/operator/login/")


def test_another_certificate_on_a_later_request_ends_the_operators_session(olivia, oscar, olivias_certificate):
    client = operator_signed_in(olivia, olivias_certificate)
    client.defaults.update(CertificateClient(issue_for_operator(oscar)[0]).defaults)

    response = client.get("/operator/")

    assert response.status_code == 302 and response["Location"] == "/operator/login/"
    assert "_auth_user_id" not in client.session
    assert AuditEntry.objects.filter(action=AuditEntry.Action.LOGOUT, subject=olivia,
                                     detail__reason="certificate_changed").exists()


def test_the_first_login_with_a_renewed_operator_certificate_revokes_the_older_one(ca, behind_proxy, olivia):
    older, _key = issue_for_operator(olivia, now=timezone.now() - timedelta(days=300))
    operator_signed_in(olivia, older)
    renewed, _key = issue_for_operator(olivia)

    operator_signed_in(olivia, renewed)

    older.refresh_from_db()
    assert older.revocation_reason == "superseded"


def test_djangos_password_only_authenticate_signs_in_nobody_and_counts_nothing(bob, olivia):
    for user in (bob, olivia):
        assert authenticate(username=user.login_id, password=PASSWORD) is None
        assert authenticate(username=user.login_id, password="wrong-password") is None
        user.refresh_from_db()
        assert user.failed_password_attempts == 0
