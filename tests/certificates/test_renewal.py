"""Renewal screen by screen (電子証明書更新前処理中 → 更新開始 → 更新 → 発行完了), in Japanese and English.

The browser is the proxy-header CertificateClient holding the ID's certificate, logged in and
bound to that certificate as the login view binds it. The CSR is made here; the page's own
JavaScript making it in Chromium is tests/e2e/test_enroll_js.py.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
import time_machine
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.urls import reverse
from django.utils import timezone

from accounts.japan_time import japan_time
from accounts.models import AuditEntry
from certificates.models import Certificate, CertificateAction
from certificates.services import supersede_older_certificates
from tests.support.clients import CertificateClient, issue_for, signed_in
from tests.support.pki import make_csr

pytestmark = pytest.mark.embedded


@pytest.fixture
def alice_cert(ca, alice, behind_proxy):
    """Alice's certificate, 20 days before it expires, already used to log in."""
    issued_at = timezone.now() - timedelta(days=345)
    certificate, _key = issue_for(alice, now=issued_at)
    supersede_older_certificates(newer=certificate, now=issued_at + timedelta(hours=1))
    certificate.refresh_from_db()
    return certificate


@pytest.fixture
def browser(alice, alice_cert):
    return signed_in(alice, alice_cert)


def h1(response) -> str:
    return re.search(r"<h1>(.*?)</h1>", response.content.decode(), re.S).group(1).strip()


def post_csr(client, url_name="renewal-issue", csr=None):
    pem = csr if csr is not None else make_csr()[0]
    return client.post(
        reverse(url_name), data=json.dumps({"csr": pem.decode() if isinstance(pem, bytes) else pem}),
        content_type="application/json", HTTP_ACCEPT="application/json",
    )


# --- the screens, in both languages ---------------------------------------------------------


@pytest.mark.parametrize(
    ("language", "title"),
    [("ja", "電子証明書更新前処理中"), ("en", "Preparing certificate renewal (電子証明書更新前処理中)")],
)
def test_the_preparing_screen_moves_on_by_itself_to_the_start_screen(alice, alice_cert, language, title):
    response = signed_in(alice, alice_cert, language=language).get(reverse("renewal-prepare"))
    assert response.status_code == 200
    assert h1(response) == title
    # static/certportal/portal.js follows the link after its seconds (the e2e journey waits for it); no meta
    # refresh, which a screen reader user cannot stop (axe: meta-refresh).
    html = response.content.decode()
    assert f'<a href="{reverse("renewal-start")}" class="primary" data-proceed-after="2">' in html
    assert "portal.js" in html and "http-equiv" not in html


@pytest.mark.parametrize(
    ("language", "title", "button", "dialog", "yes"),
    [
        ("ja", "電子証明書更新開始", "更新", "Web アクセスの確認", "はい"),
        ("en", "Start certificate renewal (電子証明書更新開始)", "Renew (更新)",
         "Confirm web access (Web アクセスの確認)", "Yes (はい)"),
    ],
)
def test_the_start_screen_has_the_button_and_the_two_confirmations(
    alice, alice_cert, language, title, button, dialog, yes
):
    response = signed_in(alice, alice_cert, language=language).get(reverse("renewal-start"))
    html = response.content.decode()
    assert response.status_code == 200
    assert h1(response) == title
    assert re.search(rf'<button type="button" class="primary" id="enroll-start">{re.escape(button)}</button>', html)
    assert len(re.findall(rf"<h2 id=\"confirm-(key|install)-title\">{re.escape(dialog)}</h2>", html)) == 2
    assert len(re.findall(rf'data-answer="yes" autofocus>{re.escape(yes)}</button>', html)) == 2
    assert 'src="/static/certportal/enroll.js"' in html
    assert f'data-issue-url="{reverse("renewal-issue")}"' in html
    assert alice_cert.serial_number in html  # the certificate being renewed, which keeps working


@pytest.mark.parametrize(
    ("language", "title", "close", "restart"),
    [
        ("ja", "電子証明書発行 発行完了", "このウィンドウを閉じる", "ブラウザ"),
        ("en", "Certificate issued (電子証明書発行 発行完了)", "Close this window (このウィンドウを閉じる)",
         "exit the browser once"),
    ],
)
def test_the_issued_screen_shows_the_new_certificate_and_what_to_do_next(
    alice, alice_cert, language, title, close, restart
):
    client = signed_in(alice, alice_cert, language=language)
    issued = post_csr(client).json()
    new = Certificate.objects.get(serial_number=issued["serial"])
    response = client.get(issued["next"])
    html = response.content.decode()
    assert response.status_code == 200
    assert h1(response) == title
    assert f'id="close-window">{close}</button>' in html
    assert restart in html
    assert new.subject in html and "CN=alice-admin" in new.subject
    assert f'<dd class="serial">{new.serial_number}</dd>' in html
    assert new.fingerprint_display in html
    assert f'<dd class="not-after">{japan_time(new.not_after, language)}</dd>' in html
    for platform in ("Windows", "macOS", "iPhone", "Android", "Firefox", "Linux"):
        assert platform in html
    # The older certificate that may be deleted after the first login with the new one.
    older = re.search(r'<section class="older-certificates">(.*?)</section>', html, re.S).group(1)
    assert alice_cert.serial_number in older
    assert japan_time(alice_cert.not_after, language) in older


# --- issuing ----------------------------------------------------------------------------------


def test_renewing_issues_a_certificate_for_the_pages_key_and_the_old_one_keeps_working(browser, alice, alice_cert):
    pem, key = make_csr()
    response = post_csr(browser, csr=pem)
    assert response.status_code == 201
    body = response.json()
    issued = x509.load_pem_x509_certificate(body["certificate"].encode())
    assert issued.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo) == (
        key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    )
    new = Certificate.objects.get(serial_number=body["serial"])
    assert new.owner == alice and new.issued_via == Certificate.Channel.RENEWAL
    assert body["filename"] == f"certportal-alice-admin-{new.serial_number}.p12"
    assert body["compatibility_filename"] == f"certportal-alice-admin-{new.serial_number}-compat.p12"
    assert body["next"] == reverse("renewal-done", args=[new.serial_number])
    # The page puts the issuing CA and the root into the PKCS#12 files, after the certificate.
    chain = x509.load_pem_x509_certificates(body["chain"].encode())
    assert [c.subject for c in chain] == [issued.issuer, chain[1].issuer] and chain[1].subject == chain[1].issuer
    alice_cert.refresh_from_db()
    assert alice_cert.revoked_at is None and alice_cert.is_valid_at(timezone.now())
    # The session bound to the old certificate is still good for the next screen. Opened on its
    # own (a reload), it holds no key: the compatibility file is explained, not offered.
    done = browser.get(body["next"])
    assert done.status_code == 200
    html = done.content.decode()
    assert '<div id="compatibility-offer" hidden' in html
    assert '<p id="compatibility-unavailable">' in html and 'id="file-check"' in html


def test_a_double_submit_of_the_same_request_gets_the_same_certificate(browser, alice):
    pem, _key = make_csr()
    first, second = post_csr(browser, csr=pem), post_csr(browser, csr=pem)
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["serial"] == second.json()["serial"]
    assert alice.certificates.count() == 2


def test_a_second_tab_with_another_key_is_refused_clearly_and_nothing_more_is_issued(alice, alice_cert):
    first_tab, second_tab = signed_in(alice, alice_cert), signed_in(alice, alice_cert)
    assert post_csr(first_tab).status_code == 201
    refused = post_csr(second_tab)
    assert refused.status_code == 409
    assert refused.json()["code"] == "issuance_in_progress" and refused.json()["error"]
    assert alice.certificates.count() == 2
    assert AuditEntry.objects.filter(action=CertificateAction.ISSUANCE_REFUSED, subject=alice).exists()


def test_the_start_screen_says_when_an_abandoned_renewal_can_be_started_again(browser):
    post_csr(browser)
    html = browser.get(reverse("renewal-start")).content.decode()
    assert 'class="notice-box"' in html


def test_an_abandoned_renewal_can_be_started_again_after_the_hold(browser, alice, alice_cert, settings):
    abandoned = post_csr(browser).json()["serial"]
    with time_machine.travel(timezone.now() + timedelta(minutes=settings.PENDING_CERTIFICATE_HOLD_MINUTES + 1)):
        again = post_csr(browser)
    assert again.status_code == 201
    assert Certificate.objects.get(serial_number=abandoned).revoked_at is not None
    alice_cert.refresh_from_db()
    assert alice_cert.revoked_at is None  # the certificate in use is never touched by a renewal


def test_a_request_that_is_not_a_csr_is_refused_with_a_clear_message(browser, alice):
    garbage = "-----BEGIN CERTIFICATE REQUEST-----\nnot base64\n-----END CERTIFICATE REQUEST-----"
    response = post_csr(browser, csr=garbage)
    assert response.status_code == 400
    assert response.json()["error"]
    assert alice.certificates.count() == 1


def test_a_body_without_a_csr_is_refused(browser):
    response = browser.post(reverse("renewal-issue"), data="{}", content_type="application/json")
    assert response.status_code == 400 and response.json()["error"]


def test_issuing_needs_the_csrf_token(alice, alice_cert):
    client = signed_in(alice, alice_cert)
    client.handler.enforce_csrf_checks = True
    assert post_csr(client).status_code == 403


# --- who may renew what -----------------------------------------------------------------------


@pytest.mark.parametrize("url_name", ["renewal-prepare", "renewal-start"])
def test_renewal_needs_a_logged_in_id(ca, behind_proxy, url_name):
    response = CertificateClient(None).get(reverse(url_name))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_issuing_without_login_issues_nothing(ca, behind_proxy):
    assert post_csr(CertificateClient(None)).status_code == 302
    assert not Certificate.objects.exists()


def test_an_id_never_sees_another_ids_new_certificate(alice, alice_cert, charlie):
    charlie_cert, _key = issue_for(charlie, now=timezone.now() - timedelta(days=1))
    supersede_older_certificates(newer=charlie_cert)
    alices_new = post_csr(signed_in(alice, alice_cert)).json()
    charlie_browser = signed_in(charlie, charlie_cert)
    assert charlie_browser.get(alices_new["next"]).status_code == 404
    assert charlie_browser.get(reverse("renewal-done", args=["ABCDEF"])).status_code == 404
    assert charlie_browser.get(reverse("renewal-done", args=[charlie_cert.serial_number])).status_code == 200


def test_renewal_acts_only_on_the_logged_in_ids_own_certificate(alice, alice_cert, bob):
    response = post_csr(signed_in(alice, alice_cert))
    assert Certificate.objects.get(serial_number=response.json()["serial"]).owner == alice
    assert not bob.certificates.exists()


def test_a_bank_operator_has_no_renewal_screens(ca, olivia, behind_proxy):
    client = CertificateClient(None)
    client.force_login(olivia)
    for url_name in ("renewal-prepare", "renewal-start"):
        assert client.get(reverse(url_name)).status_code == 404
    assert post_csr(client).status_code == 404


def test_the_portal_itself_serves_the_pages_script_after_collectstatic(settings, tmp_path, db):
    """gunicorn on `make run` and behind nginx has no static handler of its own: WhiteNoise is it."""
    from django.core.management import call_command
    from django.test import Client

    settings.STATIC_ROOT = tmp_path / "static"
    call_command("collectstatic", "--noinput", verbosity=0)
    response = Client().get("/static/certportal/enroll.js")
    assert response.status_code == 200
    served = b"".join(response.streaming_content)
    assert served == (settings.BASE_DIR / "static" / "certportal" / "enroll.js").read_bytes()
