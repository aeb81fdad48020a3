"""The renewal page's own JavaScript in Chromium: key, CSR, issuance, PKCS#12 download.

Chromium drives the real pages served by pytest-django's live_server (http://localhost is
a secure context, so WebCrypto works there). The browser presents Alice's certificate the
way the trusted nginx proxy passes it on (headers from 127.0.0.1), and clicks through the
guide's labels. The PKCS#12 file the page saves must open with OpenSSL and import with
NSS's pk12util. Screenshots of every screen go to test-artifacts/enroll/.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.serialization import pkcs12
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from certificates import ca as portal_ca
from certificates.models import Certificate
from certificates.services import supersede_older_certificates
from tests.support.browser import browser_for, needs_chromium, shot
from tests.support.clients import issue_for
from tests.support.personas import PASSWORD

FILE_PASSWORD = "Pkcs12-file-pass!"

pytestmark = needs_chromium


@pytest.fixture
def portal(live_server, behind_proxy, settings):
    # Plain http on localhost: cookies cannot be marked Secure there.
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = False
    return live_server


def test_the_page_makes_the_key_and_csr_and_saves_a_pkcs12_that_openssl_and_nss_open(
    chromium, portal, alice, ca, tmp_path
):
    issued_at = timezone.now() - timedelta(days=345)
    old, _key = issue_for(alice, now=issued_at)
    supersede_older_certificates(newer=old, now=issued_at + timedelta(hours=1))
    old.refresh_from_db()

    context = browser_for(chromium, portal, alice, old)
    page = context.new_page()
    posted = []
    page.on("request", lambda request: posted.append((request.url, request.post_data or "")))
    errors = []
    page.on("pageerror", lambda error: errors.append(error))

    page.goto(portal.url + reverse("renewal-prepare"))
    assert page.locator("h1").inner_text() == "電子証明書更新前処理中"
    shot(page, "01-renewal-prepare")

    page.wait_for_url(f"**{reverse('renewal-start')}", timeout=10_000)  # moved on by itself
    assert page.locator("h1").inner_text() == "電子証明書更新開始"
    shot(page, "02-renewal-start")

    page.locator("#p12-password").fill(FILE_PASSWORD)
    page.locator("#p12-password-again").fill(FILE_PASSWORD)
    renew = page.get_by_role("button", name="更新", exact=True)

    # Answering いいえ to the first confirmation issues nothing.
    renew.click()
    create_key = page.get_by_role("dialog", name="Web アクセスの確認")
    create_key.get_by_role("button", name="いいえ").click()
    assert page.locator("#enroll-error").is_visible()
    assert alice.certificates.count() == 1

    renew.click()
    create_key = page.get_by_role("dialog", name="Web アクセスの確認")
    assert create_key.count() == 1 and create_key.is_visible()
    assert "鍵を作成" in create_key.inner_text()
    shot(page, "03-confirm-create-key")
    create_key.get_by_role("button", name="はい").click()

    install = page.locator("#confirm-install")
    page.wait_for_function(
        "() => document.getElementById('confirm-install').open || !document.getElementById('enroll-error').hidden",
        timeout=15_000,
    )
    assert page.locator("#enroll-error").is_hidden(), page.locator("#enroll-error").inner_text()
    assert page.get_by_role("dialog", name="Web アクセスの確認").inner_text() == install.inner_text()
    shot(page, "04-confirm-install")
    with page.expect_download(timeout=15_000) as download_info:
        install.get_by_role("button", name="はい").click()
    download = download_info.value
    p12_path = tmp_path / download.suggested_filename
    download.save_as(p12_path)

    page.wait_for_url("**/certificate/renew/done/**", timeout=10_000)
    assert page.locator("h1").inner_text() == "電子証明書発行 発行完了"
    done_text = page.locator("main").inner_text()
    shot(page, "05-issued")
    page.get_by_role("button", name="このウィンドウを閉じる").click()
    if not page.is_closed():
        page.locator("#close-window-hint").wait_for(state="visible", timeout=5_000)
        shot(page, "06-close-window")
    context.close()
    assert errors == []

    # The server received the CSR and nothing else; it issued for the page's public key.
    issue_posts = [data for url, data in posted if url.endswith(reverse("renewal-issue"))]
    assert len(issue_posts) == 1 and set(json.loads(issue_posts[0])) == {"csr"}
    assert not any("PRIVATE KEY" in data for _url, data in posted)
    new = alice.certificates.exclude(pk=old.pk).get()
    assert new.issued_via == Certificate.Channel.RENEWAL
    assert download.suggested_filename == f"certportal-alice-admin-{new.serial_number}.p12"
    assert new.serial_number in done_text and new.fingerprint_display in done_text
    assert old.serial_number in done_text  # the certificate that may be deleted after the first login

    key, certificate, _chain = pkcs12.load_key_and_certificates(p12_path.read_bytes(), FILE_PASSWORD.encode())
    assert certificate.serial_number == int(new.serial_number, 16)
    assert portal_ca.spki_sha256(key.public_key()) == new.public_key_sha256

    info = subprocess.run(
        ["openssl", "pkcs12", "-info", "-nodes", "-in", str(p12_path), "-passin", f"pass:{FILE_PASSWORD}"],
        capture_output=True, text=True, timeout=30,
    )
    assert info.returncode == 0, info.stderr
    assert "MAC: sha256" in info.stderr + info.stdout
    assert "PBES2, PBKDF2, AES-256-CBC" in info.stderr + info.stdout
    assert "BEGIN PRIVATE KEY" in info.stdout and "CN=alice-admin" in info.stdout.replace(" = ", "=")
    wrong = subprocess.run(
        ["openssl", "pkcs12", "-info", "-nodes", "-in", str(p12_path), "-passin", "pass:not-the-password"],
        capture_output=True, text=True, timeout=30,
    )
    assert wrong.returncode != 0

    if shutil.which("pk12util") and shutil.which("certutil"):
        nssdb = tmp_path / "nssdb"
        nssdb.mkdir()
        subprocess.run(["certutil", "-N", "-d", f"sql:{nssdb}", "--empty-password"], check=True, timeout=30)
        imported = subprocess.run(
            ["pk12util", "-i", str(p12_path), "-d", f"sql:{nssdb}", "-W", FILE_PASSWORD],
            capture_output=True, text=True, timeout=30,
        )
        assert imported.returncode == 0, imported.stdout + imported.stderr
        keys = subprocess.run(["certutil", "-K", "-d", f"sql:{nssdb}"], capture_output=True, text=True, timeout=30)
        assert "ec " in keys.stdout and new.serial_number in keys.stdout



def test_an_id_without_a_certificate_obtains_one_in_english_with_the_emailed_code(
    chromium, portal, charlie, ca, tmp_path
):
    context = chromium.new_context(accept_downloads=True, extra_http_headers={"X-SSL-Client-Verify": "NONE"})
    context.add_cookies([{"name": "django_language", "value": "en", "url": portal.url}])
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(error))

    page.goto(portal.url + reverse("obtain-start"))
    assert page.locator("h1").inner_text() == "Obtain certificate (電子証明書取得)"
    page.get_by_label("Login ID").fill("charlie-admin")
    page.get_by_label("Password").fill(PASSWORD)
    shot(page, "11-obtain-identify")
    page.get_by_role("button", name="Send confirmation code").click()
    page.wait_for_url(f"**{reverse('obtain-code')}")
    shot(page, "12-obtain-code")
    code = re.search(r"\b(\d{6})\b", mail.outbox[-1].body).group(1)
    page.get_by_label("Confirmation code").fill(code)
    page.get_by_role("button", name="Confirm").click()

    page.wait_for_url(f"**{reverse('obtain-enroll')}")
    assert page.locator("h1").inner_text() == "Obtain certificate (電子証明書取得)"
    page.locator("#p12-password").fill(FILE_PASSWORD)
    page.locator("#p12-password-again").fill(FILE_PASSWORD)
    shot(page, "13-obtain-enroll")
    page.get_by_role("button", name="Obtain", exact=True).click()
    page.get_by_role("dialog", name="Confirm web access (Web アクセスの確認)").get_by_role(
        "button", name="Yes (はい)"
    ).click()
    install = page.locator("#confirm-install")
    install.wait_for(state="visible", timeout=15_000)
    with page.expect_download(timeout=15_000) as download_info:
        install.get_by_role("button", name="Yes (はい)").click()
    p12_path = tmp_path / "obtained.p12"
    download_info.value.save_as(p12_path)
    page.wait_for_url("**/certificate/obtain/done/**", timeout=10_000)
    assert page.locator("h1").inner_text() == "Certificate issued (電子証明書発行 発行完了)"
    assert page.locator("h1").evaluate("heading => heading === document.activeElement")
    shot(page, "14-obtain-issued")
    # The issued screen still holds the key: it makes the compatibility file too.
    with page.expect_download(timeout=15_000) as compatibility_info:
        page.get_by_role("button", name="Save the compatibility file").click()
    compatibility_path = tmp_path / compatibility_info.value.suggested_filename
    compatibility_info.value.save_as(compatibility_path)
    context.close()
    assert errors == []

    new = charlie.certificates.get()
    assert new.issued_via == Certificate.Channel.OBTAIN
    assert compatibility_path.name == f"certportal-charlie-admin-{new.serial_number}-compat.p12"
    for path in (p12_path, compatibility_path):
        key, certificate, chain = pkcs12.load_key_and_certificates(path.read_bytes(), FILE_PASSWORD.encode())
        assert portal_ca.spki_sha256(key.public_key()) == new.public_key_sha256
        assert len(chain) == 2  # the issuing CA and the root
