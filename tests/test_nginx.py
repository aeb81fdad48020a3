"""The production path: Debian's nginx with deploy/nginx.conf in front of gunicorn (plain HTTP).

nginx does the TLS handshake, verifies the client certificate against the portal's CA and
CRL, and passes it in X-SSL-Client-Cert; Django trusts that header only from nginx's address.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest
from cryptography import x509

from accounts.models import AuditEntry
from certificates.services import revoke_certificate

from .clients import issue_for
from .conftest import PASSWORD
from .servers import Browser, plain_get, write_client_files

# Not marked embedded: production runs PostgreSQL; on CI this runs once, against it.


@pytest.fixture
def alice_certificate(alice, tmp_path):
    certificate, key = issue_for(alice)
    return certificate, write_client_files(tmp_path / "alice", certificate, key)


def test_login_through_nginx_works_with_the_certificate_and_password(nginx_portal, alice, alice_certificate):
    _certificate, files = alice_certificate
    browser = Browser(nginx_portal, files)
    response = browser.log_in(alice.login_id, PASSWORD)
    assert (response.status, response.location) == (302, "/notices/"), nginx_portal.logs()
    page = browser.get("/notices/")
    assert page.status == 200
    assert "重要なお知らせ" in page.text
    entry = AuditEntry.objects.get(action=AuditEntry.Action.LOGIN_SUCCEEDED)
    assert entry.subject == alice
    assert entry.remote_addr == "127.0.0.1"  # the customer's address as nginx saw it (X-Real-IP)


def test_without_a_certificate_nginx_serves_the_login_screen_and_login_is_refused(
    nginx_portal, alice, alice_certificate
):
    browser = Browser(nginx_portal, language="en")
    screen = browser.get("/")
    assert screen.status == 200
    assert "電子証明書取得" in screen.text
    response = browser.log_in(alice.login_id, PASSWORD)
    assert "No electronic certificate was presented" in response.text
    assert "sessionid" not in browser.cookies


def test_a_certificate_header_sent_to_nginx_by_the_client_is_not_passed_on(nginx_portal, alice, alice_certificate):
    certificate, _files = alice_certificate
    forged = {"X-SSL-Client-Cert": quote(certificate.pem, safe=""), "X-SSL-Client-Verify": "SUCCESS"}
    browser = Browser(nginx_portal, language="en")
    response = browser.post_form("/", {"login_id": alice.login_id, "password": PASSWORD}, headers=forged)
    assert response.status == 200
    assert "No electronic certificate was presented" in response.text
    assert not AuditEntry.objects.filter(action=AuditEntry.Action.LOGIN_SUCCEEDED).exists()


def test_a_certificate_header_sent_straight_to_gunicorn_from_another_address_is_refused_and_audited(
    nginx_portal, alice, alice_certificate
):
    certificate, _files = alice_certificate
    forged = {"X-SSL-Client-Cert": quote(certificate.pem, safe=""), "X-SSL-Client-Verify": "SUCCESS",
              "Host": "127.0.0.1"}
    nginx_portal.ensure_serving()
    # 127.0.0.2 is this machine too, but not the trusted proxy's address.
    response = plain_get("127.0.0.1", nginx_portal.upstream_port, "/", headers=forged,
                         source_address=("127.0.0.2", 0))
    assert response.status == 400
    entry = AuditEntry.objects.get(action=AuditEntry.Action.UNTRUSTED_PROXY_HEADER)
    assert entry.remote_addr == "127.0.0.2"
    # From nginx's own address the same gunicorn accepts the header (that is what nginx sends).
    as_nginx = {**forged, "X-Forwarded-Proto": "https"}
    assert plain_get("127.0.0.1", nginx_portal.upstream_port, "/", headers=as_nginx).status == 200


def test_both_crls_are_served_over_plain_http_and_everything_else_moves_to_https(nginx_portal):
    nginx_portal.ensure_serving()
    for path, issuer_suffix in (("/pki/crl", "Client Certificate CA"), ("/pki/root.crl", "Root CA")):
        crl = plain_get("127.0.0.1", nginx_portal.http_port, path, headers={"Host": "127.0.0.1"})
        assert crl.status == 200
        assert crl.headers["Content-Type"] == "application/pkix-crl"
        issuer = x509.load_der_x509_crl(crl.body).issuer.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
        assert issuer.endswith(issuer_suffix)
    login = plain_get("127.0.0.1", nginx_portal.http_port, "/", headers={"Host": "127.0.0.1"})
    assert login.status == 301
    assert login.headers["Location"].startswith("https://127.0.0.1")


@pytest.fixture
def revoked_alice(alice, tmp_path, ca):
    certificate, key = issue_for(alice)
    revoke_certificate(certificate=certificate, reason="key_compromise", by=None)
    return write_client_files(tmp_path / "revoked", certificate, key)


def test_nginx_refuses_a_revoked_certificate_by_its_crl_with_a_page_that_explains(revoked_alice, nginx_portal, alice):
    # revoked_alice comes first: the CRL nginx loads at start already lists the certificate.
    response = Browser(nginx_portal, revoked_alice).get("/")
    assert response.status == 400
    assert "電子証明書を確認できませんでした" in response.text
    assert "could not be verified" in response.text
    assert "certificate revoked" in (nginx_portal.servers[0].output() + _error_log(nginx_portal))


def _error_log(portal) -> str:
    log = portal.servers[0].log.parent / "error.log"
    return log.read_text(errors="replace") if log.exists() else ""
