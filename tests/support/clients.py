"""Test clients that present a client certificate the way the trusted nginx proxy does.

nginx verifies the TLS client certificate and passes it URL-escaped in X-SSL-Client-Cert
with X-SSL-Client-Verify: SUCCESS; Django trusts those headers only from
CERTPORTAL_TRUSTED_PROXIES. Tests that go through a real TLS handshake live elsewhere
(certificates/test_tls_login.py, site/test_nginx.py); these clients are for view-level tests.
"""

from __future__ import annotations

import html
import re
from urllib.parse import quote

from cryptography.hazmat.primitives import serialization
from django.test import Client
from django.urls import reverse

from certificates.client_cert import SESSION_CERTIFICATE_KEY
from certificates.models import Certificate
from certificates.operator_access import issue_operator_certificate
from certificates.services import issue_certificate

from .personas import PASSWORD
from .pki import make_csr

PROXY_ADDRESS = "127.0.0.1"


def issue_for(user, *, now=None, key=None) -> tuple[Certificate, object]:
    """Issue a real certificate for `user` through the service; returns it and its private key."""
    pem, key = make_csr(key)
    issuance = issue_certificate(user=user, csr=pem, via=Certificate.Channel.OPERATOR, now=now)
    return issuance.certificate, key


def certificate_headers(certificate: Certificate | None) -> dict[str, str]:
    if certificate is None:
        return {"REMOTE_ADDR": PROXY_ADDRESS, "HTTP_X_SSL_CLIENT_VERIFY": "NONE"}
    pem = certificate.x509.public_bytes(serialization.Encoding.PEM).decode()
    return {
        "REMOTE_ADDR": PROXY_ADDRESS,
        "HTTP_X_SSL_CLIENT_CERT": quote(pem, safe=""),
        "HTTP_X_SSL_CLIENT_VERIFY": "SUCCESS",
        "HTTP_X_FORWARDED_PROTO": "https",
    }


class CertificateClient(Client):
    """A browser holding one client certificate (or none), behind the trusted proxy.

    Needs settings.TRUSTED_PROXY_ADDRESSES to contain PROXY_ADDRESS (the `behind_proxy` fixture).
    """

    def __init__(self, certificate: Certificate | None = None, **defaults) -> None:
        super().__init__(**{**certificate_headers(certificate), **defaults})


def issue_for_operator(operator, *, now=None) -> tuple[Certificate, object]:
    """Issue a bank operator's own certificate, as manage.py issue_operator_certificate does."""
    pem, key = make_csr()
    issuance = issue_operator_certificate(operator=operator, csr=pem, issued_by="tests", now=now)
    return issuance.certificate, key


def operator_signed_in(operator, certificate: Certificate | None = None, **defaults) -> CertificateClient:
    """A browser holding the operator's certificate, logged in through the operators' login form.

    Needs the `behind_proxy` fixture, like CertificateClient.
    """
    if certificate is None:
        certificate, _key = issue_for_operator(operator)
    client = CertificateClient(certificate, **defaults)
    response = client.post("/operator/login/?next=/operator/",
                           {"username": operator.login_id, "password": PASSWORD})
    assert response.status_code == 302, response.content.decode()[:2000]
    return client


def signed_in(
    user, certificate: Certificate | None = None, *, language: str | None = None, through_the_form: bool = False
) -> CertificateClient:
    """A browser holding `user`'s certificate (issued here if not given), with a session as the certificate
    login leaves it: logged in and bound to that certificate. The login itself is tested in
    certificates/test_login.py; needs the `behind_proxy` fixture, like CertificateClient.

    `through_the_form` posts the real login form with PASSWORD instead, for a test that needs all the
    login does besides the session (the certificate's first use, older certificates superseded).
    """
    if certificate is None:
        certificate, _key = issue_for(user)
    client = CertificateClient(certificate)
    if through_the_form:
        user.set_password(PASSWORD)
        user.save()
        response = post_login(client, user)
        assert response["Location"] == reverse("important-notices"), "the login form refused the test's login"
    else:
        client.force_login(user)
        session = client.session
        session[SESSION_CERTIFICATE_KEY] = certificate.fingerprint_sha256
        session.save()
    if language is not None:
        client.cookies["django_language"] = language
    return client


def post_login(client: Client, user, password: str = PASSWORD, **extra):
    """The customers' login form posted with `user`'s login ID: the response, for the test to judge."""
    return client.post(reverse("login"), {"login_id": user.login_id, "password": password}, **extra)


def code_from_mail(message) -> str:
    """The six-digit one-time code in an e-mail the portal sent."""
    return re.search(r"\b(\d{6})\b", message.body).group(1)


def form_errors(response, field: str | None = None) -> str:
    """The error messages a form page shows, read from its HTML as the customer sees them: a field's
    (Django's `<ul class="errorlist" id="id_<field>_error">`) or, without `field`, the form's own."""
    page = response.content.decode()
    if field is not None:
        lists = re.findall(rf'<ul class="errorlist"[^>]*id="id_{field}_error"[^>]*>(.*?)</ul>', page, re.S)
    else:
        lists = [found for attributes, found in re.findall(r'<ul class="errorlist([^>]*)>(.*?)</ul>', page, re.S)
                 if " id=" not in attributes and "_error" not in attributes]
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", text)).strip() for text in lists)
