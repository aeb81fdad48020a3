"""CERTPORTAL_PROXY_SOCKET: nginx's client-certificate headers are believed on a unix socket, on nothing else.

gunicorn puts the accepted connection in the WSGI environ ("gunicorn.socket"); on a unix
socket its REMOTE_ADDR is merely "". Here a real unix socket stands in the environ as
gunicorn's would; tests/site/test_nginx.py runs the same through nginx and gunicorn.
"""

from __future__ import annotations

import socket

import pytest

from accounts.models import AuditEntry
from certificates.client_cert import SESSION_CERTIFICATE_KEY
from certificates.models import CertificateAction
from tests.support.clients import certificate_headers, issue_for, post_login

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]



@pytest.fixture
def socket_mode(settings):
    settings.PROXY_SOCKET = True
    settings.TRUSTED_PROXY_ADDRESSES = []
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")


@pytest.fixture
def unix_connection():
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    yield ours
    ours.close()
    theirs.close()


def test_on_the_unix_socket_the_certificate_is_believed_and_the_address_is_nginxs_x_real_ip(
    ca, socket_mode, unix_connection, alice, client
):
    certificate, _key = issue_for(alice)
    environ = {**certificate_headers(certificate), "REMOTE_ADDR": "", "gunicorn.socket": unix_connection,
               "HTTP_X_REAL_IP": "203.0.113.7"}

    response = post_login(client, alice, **environ)

    assert (response.status_code, response["Location"]) == (302, "/notices/")
    assert client.session[SESSION_CERTIFICATE_KEY] == certificate.fingerprint_sha256
    assert AuditEntry.objects.get(action=AuditEntry.Action.LOGIN_SUCCEEDED).remote_addr == "203.0.113.7"


@pytest.mark.parametrize("address", ["127.0.0.1", "::1", "10.0.0.5"])
def test_over_tcp_the_certificate_headers_are_refused_and_audited_whatever_the_address(
    ca, socket_mode, alice, client, address
):
    certificate, _key = issue_for(alice)
    tcp = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET)
    try:
        environ = {**certificate_headers(certificate), "REMOTE_ADDR": address, "gunicorn.socket": tcp,
                   "HTTP_X_REAL_IP": "203.0.113.7"}
        response = post_login(client, alice, **environ)
    finally:
        tcp.close()

    assert response.status_code == 400
    entry = AuditEntry.objects.get(action=CertificateAction.UNTRUSTED_PROXY_HEADER)
    assert entry.remote_addr == address  # the peer's own, not the X-Real-IP it claimed
    assert "_auth_user_id" not in client.session


def test_on_the_unix_socket_without_a_certificate_the_login_says_so(ca, socket_mode, unix_connection, alice, client):
    environ = {**certificate_headers(None), "REMOTE_ADDR": "", "gunicorn.socket": unix_connection,
               "HTTP_X_REAL_IP": "203.0.113.7", "HTTP_ACCEPT_LANGUAGE": "en"}
    response = post_login(client, alice, **environ)
    assert response.status_code == 200
    assert "No electronic certificate was presented" in response.content.decode()
