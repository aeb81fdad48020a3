"""The production path: Debian's nginx with deploy/nginx.conf in front of gunicorn (plain HTTP).

nginx does the TLS handshake, verifies the client certificate against the portal's CA and
CRL, and passes it in X-SSL-Client-Cert over gunicorn's unix socket; Django trusts that
header only on that socket (CERTPORTAL_PROXY_SOCKET), never from a TCP client, whatever its
address.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest
from cryptography import x509

from accounts.models import AuditEntry
from certificates.models import CertificateAction
from certificates.services import revoke_certificate
from tests.support.clients import issue_for, issue_for_operator
from tests.support.personas import PASSWORD
from tests.support.servers import BASE_DIR, Browser, plain_get, write_client_files

# Not marked embedded: production runs PostgreSQL; on CI this runs once, against it.
# gunicorn checks the passwords in its own process, with the production hashers.
pytestmark = pytest.mark.full_strength_hashing


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


def test_a_certificate_header_sent_to_gunicorn_over_tcp_is_refused_and_audited_even_from_nginxs_address(
    nginx_portal, alice, alice_certificate
):
    """gunicorn here also listens on TCP (production's does not): a local process there poses as nginx."""
    certificate, _files = alice_certificate
    forged = {"X-SSL-Client-Cert": quote(certificate.pem, safe=""), "X-SSL-Client-Verify": "SUCCESS",
              "X-Forwarded-Proto": "https", "X-Real-IP": "203.0.113.7", "Host": "127.0.0.1"}
    nginx_portal.ensure_serving()
    for source in ("127.0.0.1", "127.0.0.2"):
        response = plain_get("127.0.0.1", nginx_portal.upstream_port, "/", headers=forged, source_address=(source, 0))
        assert response.status == 400, nginx_portal.logs()
    entries = AuditEntry.objects.filter(action=CertificateAction.UNTRUSTED_PROXY_HEADER).order_by("id")
    # The peer's own address, not the one it claimed in X-Real-IP.
    assert [entry.remote_addr for entry in entries] == ["127.0.0.1", "127.0.0.2"]
    assert not AuditEntry.objects.filter(action=AuditEntry.Action.LOGIN_SUCCEEDED).exists()


def test_the_deploy_files_put_gunicorn_on_a_unix_socket_that_only_nginxs_user_can_open():
    # nginx_portal runs this very nginx.conf, upstream replaced by the test's socket path.
    site = (BASE_DIR / "deploy" / "nginx.conf").read_text()
    assert "server unix:/run/certportal/gunicorn.sock;" in site
    assert "127.0.0.1:8000" not in site
    socket_unit = (BASE_DIR / "deploy" / "certportal.socket").read_text()
    assert "ListenStream=/run/certportal/gunicorn.sock" in socket_unit
    assert "SocketGroup=www-data" in socket_unit and "SocketMode=0660" in socket_unit
    service = (BASE_DIR / "deploy" / "certportal.service").read_text()
    assert "--bind unix:/run/certportal/gunicorn.sock" in service
    assert "CERTPORTAL_PROXY_SOCKET=true" in service and "127.0.0.1" not in service


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


def test_nginx_lets_only_an_operators_certificate_reach_the_operators_login(
    nginx_portal, alice, alice_certificate, olivia, tmp_path
):
    certificate, key = issue_for_operator(olivia)
    olivias_files = write_client_files(tmp_path / "olivia", certificate, key)
    _alices, alices_files = alice_certificate

    for files in (None, alices_files):
        browser = Browser(nginx_portal, files)
        for path in ("/operator/", "/operator/login/", "//operator/login/", "/%6Fperator/login/"):
            response = browser.get(path)
            assert response.status == 403, (path, nginx_portal.logs())
            assert "csrftoken" not in browser.cookies and "nginx" in response.text  # nginx's own page
        assert browser.request("POST", "/operator/login/", form={"username": olivia.login_id,
                                                                  "password": PASSWORD}).status == 403
    # Django was never asked: not one login attempt, not one audit entry of the operators' site.
    assert not AuditEntry.objects.filter(detail__site="operator").exists()

    olivias = Browser(nginx_portal, olivias_files, language="en")
    assert olivias.get("/operator/login/").status == 200
    response = olivias.post_form("/operator/login/", {"username": olivia.login_id, "password": PASSWORD})
    assert (response.status, response.location) == (302, "/operator/"), response.text[:2000]
    assert olivias.get("/operator/").status == 200
    entry = AuditEntry.objects.get(action=AuditEntry.Action.LOGIN_SUCCEEDED, subject=olivia)
    assert entry.certificate_serial == certificate.serial_number and entry.remote_addr == "127.0.0.1"


def test_a_certificate_revoked_after_nginx_started_is_refused_at_the_handshake_by_ocsp_without_a_reload(
    nginx_portal, alice, bob, olivia, tmp_path
):
    nginx_portal.ensure_serving()  # nginx has loaded its CRL: neither certificate below is on it
    revoked, revoked_key = issue_for(alice)
    kept, kept_key = issue_for(bob)
    revoke_certificate(certificate=revoked, reason="key_compromise", by=olivia)

    refused = Browser(nginx_portal, write_client_files(tmp_path / "revoked", revoked, revoked_key)).get("/")
    assert refused.status == 400
    assert "電子証明書を確認できませんでした" in refused.text
    log = _error_log(nginx_portal)
    assert "certificate revoked" in log, log[-2000:]
    # The same nginx, no reload: a certificate the responder answers `good` for passes.
    browser = Browser(nginx_portal, write_client_files(tmp_path / "kept", kept, kept_key))
    assert browser.log_in(bob.login_id, PASSWORD).status == 302, nginx_portal.logs()
