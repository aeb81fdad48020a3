"""The operators' lists in Chromium at 1280 px: every column readable, no table wider than the page."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from accounts.models import AuditEntry
from certificates.models import Certificate, CertificateAction
from certificates.services import issue_certificate
from notices.models import Reminder
from tests.support.browser import needs_chromium
from tests.support.clients import certificate_headers, issue_for_operator, operator_signed_in
from tests.support.pki import make_csr

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "operator-admin"

pytestmark = needs_chromium

LISTS = [
    "/operator/accounts/user/",
    "/operator/accounts/contract/",
    "/operator/accounts/auditentry/",
    "/operator/certificates/certificate/",
    "/operator/notices/reminder/",
    "/operator/dashboard/",
]


@pytest.fixture
def estate(ca, alice, bob, charlie, olivia):
    """Rows with the longest values the lists show: serial numbers, subjects, addresses, message IDs."""
    now = timezone.now()
    for user in (alice, bob, charlie):
        certificate = issue_certificate(user=user, csr=make_csr()[0], via=Certificate.Channel.OPERATOR,
                                        now=now - timedelta(days=340)).certificate
        Reminder.objects.create(
            kind=Reminder.Kind.EXPIRY, recipient=user, certificate=certificate, threshold_days=30, run=uuid.uuid4(),
            state=Reminder.State.DELIVERED, sent_at=now, attempts=1, sent_to=user.email,
            message_id=f"{uuid.uuid4()}-{uuid.uuid4()}",
        )
        AuditEntry.objects.create(action=CertificateAction.CERTIFICATE_ISSUED, subject=user, actor=olivia,
                                  certificate_serial=certificate.serial_number, remote_addr="2001:db8::1234:5678")


@pytest.mark.parametrize("language", ["ja", "en"])
def test_no_operator_list_is_wider_than_a_1280_px_window(chromium, live_server, settings, behind_proxy, estate, olivia,
                                                        language):
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = False  # plain http on localhost
    certificate, _key = issue_for_operator(olivia)
    client = operator_signed_in(olivia, certificate)
    # The browser presents olivia's certificate as nginx would pass it (live_server has no TLS).
    headers = certificate_headers(certificate)
    context = chromium.new_context(viewport={"width": 1280, "height": 900}, locale=language, extra_http_headers={
        "X-SSL-Client-Cert": headers["HTTP_X_SSL_CLIENT_CERT"], "X-SSL-Client-Verify": "SUCCESS",
    })
    context.add_cookies([
        {"name": "sessionid", "value": client.session.session_key, "url": live_server.url},
        {"name": "django_language", "value": language, "url": live_server.url},
    ])
    page = context.new_page()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    overflowing = []
    for path in LISTS:
        response = page.goto(live_server.url + path)
        assert response.status == 200, path
        page.screenshot(path=str(ARTIFACTS / f"{language}-{path.strip('/').replace('/', '-')}.png"), full_page=True)
        widths = page.evaluate("""() => ({
            page: document.documentElement.scrollWidth,
            tables: [...document.querySelectorAll('#content table')].map(
                t => [t.scrollWidth, t.parentElement.clientWidth]),
        })""")
        if widths["page"] > 1280 or any(table > room for table, room in widths["tables"]):
            overflowing.append(f"{path}: {widths}")
    context.close()
    assert not overflowing, "\n".join(overflowing)
