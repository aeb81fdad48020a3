"""Both admin sites ask the middleware's one rule for a certificate-bound session, validity included.

CertificateSessionMiddleware ends a session whose certificate expired or was revoked; each site
asks again (client_cert.session_bound_to_this_certificate) so that it never depends on the
middleware's order. Here the sites are asked directly, as they would be before the middleware.
"""

from __future__ import annotations

from datetime import timedelta
from importlib import import_module

import pytest
import time_machine
from django.conf import settings
from django.contrib import admin
from django.test import RequestFactory

from certificates import contract_admin
from certificates.client_cert import SESSION_CERTIFICATE_KEY
from certificates.models import RevocationReason
from certificates.services import revoke_certificate
from tests.support.clients import issue_for, issue_for_operator

pytestmark = pytest.mark.embedded


def request_bound_to(user, certificate):
    """A request presenting `certificate`, whose session was bound to it at `user`'s login."""
    request = RequestFactory().get("/")
    request.user = user
    request.session = import_module(settings.SESSION_ENGINE).SessionStore()
    request.session[SESSION_CERTIFICATE_KEY] = certificate.fingerprint_sha256
    request.client_certificate = certificate
    return request


def test_the_contract_site_refuses_the_bound_certificate_once_it_has_expired(ca, alice):
    certificate, _key = issue_for(alice)
    request = request_bound_to(alice, certificate)
    assert contract_admin.site.has_permission(request)
    with time_machine.travel(certificate.not_after + timedelta(seconds=1)):
        assert not contract_admin.site.has_permission(request)


def test_the_contract_site_refuses_the_bound_certificate_once_it_is_revoked(ca, alice):
    certificate, _key = issue_for(alice)
    request = request_bound_to(alice, certificate)
    assert contract_admin.site.has_permission(request)
    revoke_certificate(certificate=certificate, reason=RevocationReason.KEY_COMPROMISE, by=None)
    request.client_certificate.refresh_from_db()
    assert not contract_admin.site.has_permission(request)


def test_the_contract_site_refuses_another_ids_certificate_even_when_bound(ca, alice, bob):
    certificate, _key = issue_for(bob)
    assert not contract_admin.site.has_permission(request_bound_to(alice, certificate))


def test_the_operators_site_refuses_the_bound_certificate_once_it_has_expired(ca, olivia):
    certificate, _key = issue_for_operator(olivia)
    request = request_bound_to(olivia, certificate)
    assert admin.site.has_permission(request)
    with time_machine.travel(certificate.not_after + timedelta(seconds=1)):
        assert not admin.site.has_permission(request)
