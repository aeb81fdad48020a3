"""Login over a real TLS handshake, on the embedded default: gunicorn terminating TLS itself (`make run`).

The client certificate is the one presented in the handshake and read from gunicorn's socket.
"""

from __future__ import annotations

import ssl
from datetime import timedelta
from urllib.parse import quote

import pytest
from cryptography.hazmat.primitives import serialization
from django.utils import timezone

from accounts.models import AuditEntry, User
from certificates.models import CertificateAction
from tests.support.clients import issue_for, issue_for_operator
from tests.support.personas import PASSWORD
from tests.support.pki import self_signed_certificate
from tests.support.servers import Browser, write_client_files

# gunicorn checks the passwords in its own process, with the production hashers.
pytestmark = [pytest.mark.embedded, pytest.mark.full_strength_hashing]


@pytest.fixture
def alice_files(alice, tmp_path):
    certificate, key = issue_for(alice)
    return write_client_files(tmp_path / "alice", certificate, key)


@pytest.fixture
def bob_files(bob, tmp_path):
    certificate, key = issue_for(bob)
    return write_client_files(tmp_path / "bob", certificate, key)


def test_login_works_with_the_ids_certificate_in_the_handshake_and_its_password(tls_portal, alice, alice_files):
    browser = Browser(tls_portal, alice_files)
    response = browser.log_in(alice.login_id, PASSWORD)
    assert response.status == 302, tls_portal.logs()
    assert response.location == "/notices/"
    session_cookie = next(c for c in response.headers.get_all("Set-Cookie") if c.startswith("sessionid="))
    assert all(flag in session_cookie for flag in ("Secure", "HttpOnly", "SameSite=Strict"))
    page = browser.get("/notices/")
    assert page.status == 200
    assert "重要なお知らせ" in page.text
    assert AuditEntry.objects.filter(action=AuditEntry.Action.LOGIN_SUCCEEDED, subject=alice).exists()


def test_without_a_certificate_the_login_screen_opens_but_login_is_refused(tls_portal, alice, alice_files):
    browser = Browser(tls_portal)
    screen = browser.get("/")
    assert screen.status == 200
    assert "電子証明書取得" in screen.text
    response = browser.log_in(alice.login_id, PASSWORD)
    assert response.status == 200
    assert "電子証明書が提示されませんでした" in response.text
    assert "sessionid" not in browser.cookies
    assert AuditEntry.objects.filter(action=AuditEntry.Action.LOGIN_FAILED, subject=alice).exists()


def test_without_a_certificate_no_number_of_wrong_passwords_locks_the_id(tls_portal, alice, alice_files):
    browser = Browser(tls_portal)
    for attempt in range(6):  # past the default threshold of 5
        assert "電子証明書が提示されませんでした" in browser.log_in(alice.login_id, f"guess-{attempt}").text
    alice.refresh_from_db()
    assert (alice.state, alice.failed_password_attempts) == (User.State.ACTIVE, 0)
    assert Browser(tls_portal, alice_files).log_in(alice.login_id, PASSWORD).status == 302


def test_the_certificate_of_another_id_is_refused(tls_portal, alice, bob_files):
    browser = Browser(tls_portal, bob_files, language="en")
    response = browser.log_in(alice.login_id, PASSWORD)
    assert response.status == 200
    assert "is not the one of the electronic certificate presented" in response.text
    assert "sessionid" not in browser.cookies


def test_a_session_used_over_a_connection_with_another_certificate_is_logged_out(
    tls_portal, alice, alice_files, bob_files
):
    browser = Browser(tls_portal, alice_files)
    assert browser.log_in(alice.login_id, PASSWORD).status == 302
    assert browser.get("/notices/").status == 200
    # The session cookie carried over a connection that presents Bob's certificate.
    thief = Browser(tls_portal, bob_files, cookies=browser.cookies)
    response = thief.get("/notices/")
    assert (response.status, response.location) == (302, "/")
    # The session is gone for its owner too.
    assert browser.get("/notices/").status == 302
    assert AuditEntry.objects.filter(action=AuditEntry.Action.LOGOUT, subject=alice).get().detail == {
        "reason": "certificate_changed"
    }


def test_a_session_used_over_a_connection_without_a_certificate_is_logged_out(tls_portal, alice, alice_files):
    browser = Browser(tls_portal, alice_files)
    assert browser.log_in(alice.login_id, PASSWORD).status == 302
    response = Browser(tls_portal, cookies=browser.cookies).get("/notices/")
    assert (response.status, response.location) == (302, "/")


def test_an_expired_certificate_reaches_the_login_screen_which_says_to_obtain_a_new_one(tls_portal, alice, tmp_path):
    # Not a failed handshake (a bare connection error in the browser): the portal judges the dates.
    certificate, key = issue_for(alice, now=timezone.now() - timedelta(days=400))
    browser = Browser(tls_portal, write_client_files(tmp_path / "expired", certificate, key))
    screen = browser.get("/")
    assert screen.status == 200, tls_portal.logs()
    response = browser.log_in(alice.login_id, PASSWORD)
    assert response.status == 200
    assert "有効期限が切れています" in response.text and "電子証明書取得" in response.text
    assert "sessionid" not in browser.cookies


def test_a_certificate_from_another_ca_is_refused_in_the_handshake(tls_portal, tmp_path):
    cert, key = self_signed_certificate("alice-admin", days=1)
    (tmp_path / "foreign.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "foreign.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ))
    browser = Browser(tls_portal, (tmp_path / "foreign.pem", tmp_path / "foreign.key"))
    with pytest.raises((ssl.SSLError, ConnectionError)):
        browser.get("/")


def test_certificate_headers_sent_straight_to_gunicorn_are_refused_and_audited(tls_portal, alice, alice_files):
    certificate = alice.certificates.get()
    forged = {"X-SSL-Client-Cert": quote(certificate.pem, safe=""), "X-SSL-Client-Verify": "SUCCESS"}
    response = Browser(tls_portal).get("/", headers=forged)
    assert response.status == 400
    entry = AuditEntry.objects.get(action=CertificateAction.UNTRUSTED_PROXY_HEADER)
    assert entry.remote_addr == "127.0.0.1"


def test_an_operator_reaches_the_operators_site_with_her_certificate_in_the_handshake(
    tls_portal, olivia, alice_files, tmp_path
):
    """`make run`'s path: no nginx in front, so Django alone holds the operators' door."""
    certificate, key = issue_for_operator(olivia)
    olivias = Browser(tls_portal, write_client_files(tmp_path / "olivia", certificate, key))
    response = olivias.post_form("/operator/login/", {"username": olivia.login_id, "password": PASSWORD})
    assert (response.status, response.location) == (302, "/operator/"), tls_portal.logs()
    assert olivias.get("/operator/").status == 200
    # Without her certificate (none, or a customer's), the same password opens nothing.
    for files in (None, alice_files):
        other = Browser(tls_portal, files)
        refused = other.post_form("/operator/login/", {"username": olivia.login_id, "password": PASSWORD})
        assert refused.status == 200 and "sessionid" not in other.cookies
        assert olivias.cookies.get("sessionid") and other.get("/operator/").status == 302
