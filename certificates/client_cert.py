"""The client certificate of a request, read in one place, and the session bound to it.

Two ways a certificate reaches Django, and only these two:

- gunicorn terminated TLS itself (`make run`): the verified peer certificate is on the
  connection, `request.META["gunicorn.socket"].getpeercert(binary_form=True)`;
- nginx terminated TLS in front of gunicorn (production): nginx passes the certificate it
  verified, URL-escaped PEM in settings.CLIENT_CERT_HEADER with settings.CLIENT_VERIFY_HEADER
  "SUCCESS". Those headers are believed only from nginx: with settings.PROXY_SOCKET, from a
  request that arrived on gunicorn's unix socket (which only nginx's user can open), else from
  settings.TRUSTED_PROXY_ADDRESSES. Anyone else sending them is trying to pose as a
  certificate holder, so the request is refused and audited.

ClientCertificateMiddleware (first in MIDDLEWARE) sets `request.client_certificate_der`
(bytes or None), `request.client_certificate` (the portal's Certificate with that
fingerprint, or None) and `request.client_address` (the customer's address, not the
proxy's); the statement that reads the certificate also reads the session's row, for
accounts.sessions. CertificateSessionMiddleware keeps a session (a customer's or an
operator's) bound to the certificate used at login: another certificate, or none, on a
later request ends it.
"""

from __future__ import annotations

import functools
import logging
import socket
from collections.abc import Callable
from urllib.parse import unquote

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from django.conf import settings
from django.contrib import auth, messages
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone
from django.utils.crypto import constant_time_compare
from django.utils.translation import gettext as _

from accounts import audit
from accounts.models import AuditEntry
from accounts.sessions import SESSION_AS_READ, SessionAsRead

from .models import Certificate, CertificateAction, certificate_fingerprint

logger = logging.getLogger(__name__)

# The session key holding the SHA-256 fingerprint of the certificate used to log in.
SESSION_CERTIFICATE_KEY = "certportal_certificate_sha256"
# nginx sets this to $remote_addr, the customer's address as nginx saw it.
REAL_IP_HEADER = "HTTP_X_REAL_IP"
FORWARDED_PROTO_HEADER = "HTTP_X_FORWARDED_PROTO"


class UntrustedProxyHeader(Exception):
    """A client-certificate header arrived from an address that is not the trusted proxy."""


class MalformedProxyHeader(Exception):
    """The trusted proxy sent a client-certificate header that is not a certificate."""


def _from_trusted_proxy(request: HttpRequest) -> bool:
    if settings.PROXY_SOCKET:
        return arrived_on_unix_socket(request)
    return request.META.get("REMOTE_ADDR") in settings.TRUSTED_PROXY_ADDRESSES


def arrived_on_unix_socket(request: HttpRequest) -> bool:
    """Whether gunicorn accepted this request's connection on a unix socket, not on TCP.

    Asked of the connection itself: gunicorn's REMOTE_ADDR is merely empty on a unix socket,
    which is not something to trust a header on.
    """
    connection = request.META.get("gunicorn.socket")
    return getattr(connection, "family", None) == socket.AF_UNIX


def _carries_certificate_headers(request: HttpRequest) -> bool:
    return bool(request.META.get(settings.CLIENT_CERT_HEADER) or request.META.get(settings.CLIENT_VERIFY_HEADER))


def client_address(request: HttpRequest) -> str | None:
    """The customer's IP address: the proxy's X-Real-IP when behind it, else the peer's."""
    if _from_trusted_proxy(request) and request.META.get(REAL_IP_HEADER):
        return request.META[REAL_IP_HEADER]
    return request.META.get("REMOTE_ADDR") or None  # gunicorn's is "" on a unix socket


def read_client_certificate(request: HttpRequest) -> bytes | None:
    """The DER of the client certificate presented in this request's TLS connection, if any.

    Raises UntrustedProxyHeader for certificate headers from anyone but the trusted proxy.
    """
    if _from_trusted_proxy(request):
        if request.META.get(settings.CLIENT_VERIFY_HEADER) != "SUCCESS":
            return None  # NONE (no certificate) or FAILED:reason; nginx let it through as optional
        escaped = request.META.get(settings.CLIENT_CERT_HEADER, "")
        try:
            return _der_of_proxied_certificate(escaped)
        except ValueError:
            raise MalformedProxyHeader(escaped[:80]) from None
    if _carries_certificate_headers(request):
        raise UntrustedProxyHeader(request.META.get("REMOTE_ADDR"))
    connection = request.META.get("gunicorn.socket")
    getpeercert = getattr(connection, "getpeercert", None)  # a plain socket when TLS is not gunicorn's
    if getpeercert is None:
        return None
    return getpeercert(binary_form=True) or None


@functools.lru_cache(maxsize=1024)
def _der_of_proxied_certificate(escaped: str) -> bytes:
    """The DER of the URL-escaped PEM certificate the proxy passed on: a customer's certificate is parsed once
    per process, not on each of their pages. Its state is still read from the database on every request."""
    return x509.load_pem_x509_certificate(unquote(escaped).encode()).public_bytes(serialization.Encoding.DER)


def presents_bound_certificate(request: HttpRequest) -> bool:
    """This request presents the certificate its session was bound to at login, and that certificate is valid now.

    The one rule for a certificate-bound session: CertificateSessionMiddleware ends a session
    for which it fails, and the admin sites ask it again (session_bound_to_this_certificate).
    """
    bound = request.session.get(SESSION_CERTIFICATE_KEY)
    certificate = getattr(request, "client_certificate", None)
    return (
        bound is not None
        and certificate is not None
        and certificate.fingerprint_sha256 == bound
        and certificate.is_valid_at(timezone.now())
    )


def session_bound_to_this_certificate(request: HttpRequest) -> bool:
    """Opened by a certificate login, and this request presents that same, valid certificate of its user.

    CertificateSessionMiddleware already ends a session whose certificate changed or is no
    longer valid; a site asks again so that it never depends on the middleware's order.
    """
    return presents_bound_certificate(request) and request.client_certificate.owner_id == request.user.pk


class ClientCertificateMiddleware:
    """First in MIDDLEWARE: a forged certificate header is refused before anything else answers.

    (SecurityMiddleware's HTTPS redirect, for one, would otherwise answer it unaudited.)
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.client_address = client_address(request)
        if not _from_trusted_proxy(request):
            # Only the proxy may say the customer's connection was HTTPS (SECURE_PROXY_SSL_HEADER).
            request.META.pop(FORWARDED_PROTO_HEADER, None)
        try:
            der = read_client_certificate(request)
        except UntrustedProxyHeader:
            audit.record(
                CertificateAction.UNTRUSTED_PROXY_HEADER,
                remote_addr=request.META.get("REMOTE_ADDR") or None,
                path=request.path[:200],
                user_agent=request.META.get("HTTP_USER_AGENT", "")[:200],
            )
            logger.warning("refused a client-certificate header from %s", request.META.get("REMOTE_ADDR"))
            return HttpResponseBadRequest(
                "Client-certificate headers are accepted only from the portal's TLS proxy.",
                content_type="text/plain; charset=utf-8",
            )
        except MalformedProxyHeader:
            logger.error("the trusted proxy sent an unreadable client certificate")
            return HttpResponseBadRequest("Unreadable client certificate.", content_type="text/plain; charset=utf-8")
        request.client_certificate_der = der
        # Looked up now rather than lazily so that `request.client_certificate is None` is a
        # plain test; it is one query on a unique index, and only when a certificate came.
        request.client_certificate = None
        if der is not None:
            request.client_certificate, as_read = _certificate_with_owner(
                der, request.COOKIES.get(settings.SESSION_COOKIE_NAME))
            if as_read is not None:
                setattr(request, SESSION_AS_READ, as_read)  # for accounts.sessions.SessionMiddleware
        return self.get_response(request)


def _certificate_with_owner(der: bytes, session_key: str | None) -> tuple[Certificate | None, SessionAsRead | None]:
    # One statement on every request of every customer: the certificate's state, its owner, the
    # owner's current certificate (the notices page's) and the session's row, read from the database each time.
    return Certificate.objects.presented(certificate_fingerprint(der), now=timezone.now(), session_key=session_key)


def _take_user_from_certificate(request: HttpRequest, certificate: Certificate) -> None:
    """Use the owner already read with the certificate as request.user: one query fewer per page.

    Only where Django's own lookup would give the same user: the session names this owner
    through a configured backend, the ID may sign in, and the session's password hash
    matches. Anything else (a key fallback, say) leaves request.user to Django's lazy lookup.
    """
    session, owner = request.session, certificate.owner
    if (
        session.get(auth.SESSION_KEY) == str(owner.pk)
        and session.get(auth.BACKEND_SESSION_KEY) in settings.AUTHENTICATION_BACKENDS
        and owner.is_active
        and constant_time_compare(session.get(auth.HASH_SESSION_KEY, ""), owner.get_session_auth_hash())
    ):
        request.user = request._cached_user = owner


class CertificateSessionMiddleware:
    """After AuthenticationMiddleware and MessageMiddleware: ends sessions bound to another certificate."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        ended = self._end_session_not_bound_to(request)
        if ended is not None:
            return ended
        return self.get_response(request)

    def _end_session_not_bound_to(self, request: HttpRequest) -> HttpResponse | None:
        """Log out a certificate-bound session whose connection no longer has that certificate.

        Sessions opened by either certificate login (customers' and operators') carry the binding;
        one without it (none is opened so) is left to the sites, which refuse it.
        """
        bound = request.session.get(SESSION_CERTIFICATE_KEY)
        if bound is None:
            return None
        certificate = request.client_certificate
        if presents_bound_certificate(request):
            _take_user_from_certificate(request, certificate)
            return None
        user = request.user if request.user.is_authenticated else None
        if certificate is None:
            reason = "certificate_missing" if request.client_certificate_der is None else "certificate_foreign"
        elif certificate.fingerprint_sha256 != bound:
            reason = "certificate_changed"
        else:
            reason = "certificate_no_longer_valid"
        audit.record(
            AuditEntry.Action.LOGOUT, subject=user, remote_addr=request.client_address, reason=reason,
            certificate_serial=certificate.serial_number if certificate else "",
        )
        auth.logout(request)
        messages.warning(request, _(
            "You were logged out because the certificate you logged in with is no longer valid (renewed or revoked)."
        ) if reason == "certificate_no_longer_valid" else _(
            "You were logged out because the certificate of this connection is not the one used to log in."
        ))
        return HttpResponseRedirect(reverse("admin:login" if user is not None and user.is_operator else "login"))
