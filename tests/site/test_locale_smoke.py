"""One walk per language over every screen a customer or an administrator sees.

Each screen must answer 200 in the chosen language (<html lang>, and its heading in that
language), so that a screen left out of the catalogue or broken in one language shows here.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from gettext import GNUTranslations
from pathlib import Path

import pytest
from django.conf import settings
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from certificates.client_cert import SESSION_CERTIFICATE_KEY
from certificates.services import supersede_older_certificates
from tests.support.clients import CertificateClient, issue_for
from tests.support.personas import PASSWORD
from tests.support.pki import make_csr

pytestmark = [pytest.mark.embedded, pytest.mark.usefixtures("ca", "behind_proxy")]

HEADINGS = {
    "ja": {
        "login": "ログイン", "obtain-start": "電子証明書取得", "obtain-code": "確認コード",
        "obtain-enroll": "電子証明書取得",
        "obtain-done": "電子証明書発行 発行完了", "important-notices": "重要なお知らせ",
        "renewal-prepare": "電子証明書更新前処理中", "renewal-start": "電子証明書更新開始",
        "renewal-done": "電子証明書発行 発行完了", "password-change": "パスワード", "manage": "契約管理",
    },
    "en": {
        "login": "Log in", "obtain-start": "Obtain certificate (電子証明書取得)", "obtain-code": "code",
        "obtain-enroll": "Obtain certificate (電子証明書取得)",
        "obtain-done": "Certificate issued (電子証明書発行 発行完了)",
        "important-notices": "Important notices (重要なお知らせ)",
        "renewal-prepare": "Preparing certificate renewal (電子証明書更新前処理中)",
        "renewal-start": "Start certificate renewal (電子証明書更新開始)",
        "renewal-done": "Certificate issued (電子証明書発行 発行完了)", "password-change": "password",
        "manage": "Contract administration",
    },
}



def check(response, language: str, screen: str) -> None:
    html = response.content.decode()
    assert response.status_code == 200, (screen, response.status_code)
    assert f'<html lang="{language}"' in html, screen
    headings = " ".join(re.findall(r"<h1[^>]*>(.*?)</h1>", html, re.S)) + " " + (
        re.search(r"<title>(.*?)</title>", html, re.S).group(1)
    )
    assert HEADINGS[language][screen].lower() in headings.lower(), (screen, headings)


def client_in(language: str, certificate=None) -> CertificateClient:
    client = CertificateClient(certificate)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = language
    return client


@pytest.mark.parametrize("language", ["ja", "en"])
def test_every_customer_screen_speaks_the_chosen_language(language, alice, bob, django_capture_on_commit_callbacks):
    for user in (alice, bob):
        user.set_password(PASSWORD)
        user.save()

    # The login screen and 電子証明書取得, for bob who has no certificate yet.
    anonymous = client_in(language)
    check(anonymous.get(reverse("login")), language, "login")
    check(anonymous.get(reverse("obtain-start")), language, "obtain-start")
    with django_capture_on_commit_callbacks(execute=True):
        anonymous.post(reverse("obtain-start"), {"login_id": bob.login_id, "password": PASSWORD})
    check(anonymous.get(reverse("obtain-code")), language, "obtain-code")
    code = re.search(r"\b(\d{6})\b", mail.outbox[-1].body).group(1)
    response = anonymous.post(reverse("obtain-code"), {"code": code}, follow=True)
    check(response, language, "obtain-enroll")
    issued = anonymous.post(reverse("obtain-issue"), data=json.dumps({"csr": make_csr()[0].decode()}),
                            content_type="application/json").json()
    done_url = issued["next"]
    check(anonymous.get(done_url), language, "obtain-done")

    # alice, 20 days before her certificate expires: notices with guidance, then the renewal.
    issued_at = timezone.now() - timedelta(days=345)
    certificate, _key = issue_for(alice, now=issued_at)
    supersede_older_certificates(newer=certificate, now=issued_at + timedelta(hours=1))
    browser = client_in(language, certificate)
    assert browser.post(reverse("login"), {"login_id": alice.login_id, "password": PASSWORD}).status_code == 302
    assert browser.session[SESSION_CERTIFICATE_KEY] == certificate.fingerprint_sha256
    check(browser.get(reverse("important-notices")), language, "important-notices")
    check(browser.get(reverse("renewal-prepare")), language, "renewal-prepare")
    check(browser.get(reverse("renewal-start")), language, "renewal-start")
    renewed = browser.post(reverse("renewal-issue"), data=json.dumps({"csr": make_csr()[0].decode()}),
                           content_type="application/json", HTTP_ACCEPT="application/json").json()
    done_url = renewed["next"]
    check(browser.get(done_url), language, "renewal-done")
    check(browser.get(reverse("password-change")), language, "password-change")
    check(browser.get("/manage/"), language, "manage")


def test_the_notices_screen_links_an_administrator_to_its_contract_site_and_no_one_else(alice, bob):
    for user, linked in ((alice, True), (bob, False)):
        user.set_password(PASSWORD)
        user.save()
        certificate, _key = issue_for(user)
        browser = client_in("ja", certificate)
        browser.post(reverse("login"), {"login_id": user.login_id, "password": PASSWORD})
        html = browser.get(reverse("important-notices")).content.decode()
        assert (f'href="{reverse("contract_admin:index")}"' in html) is linked, user.login_id


def test_the_japanese_texts_write_ブラウザ_as_the_guide_does_and_full_width_question_marks():
    base = Path(settings.BASE_DIR)
    texts = {}
    for mo in [base / "locale/ja/LC_MESSAGES/django.mo", *base.glob("*/locale/ja/LC_MESSAGES/django.mo")]:
        with mo.open("rb") as catalogue:
            texts.update({f"{mo}: {msgid}": text for msgid, text in GNUTranslations(catalogue)._catalog.items()})
    for path in [*base.glob("templates/emails/ja/*"), base / "deploy/errors/certificate-error.html"]:
        texts[str(path)] = path.read_text()
    assert len(texts) > 100
    for where, text in texts.items():
        assert "ブラウザー" not in text, where
        assert not re.search(r"[\u3040-\u30ff\u4e00-\u9fff]\?", text), where


@pytest.mark.parametrize(("language", "not_found", "expired"), [
    ("ja", "ページが見つかりません", "画面の有効期限が切れました"),
    ("en", "Page not found", "The form has expired"),
])
def test_the_error_pages_are_the_portals_own_in_the_chosen_language(settings, language, not_found, expired):
    settings.DEBUG = False
    client = client_in(language)
    missing = client.get("/no-such-page/")
    assert missing.status_code == 404
    assert f'<html lang="{language}"' in missing.content.decode() and not_found in missing.content.decode()
    client = CertificateClient(enforce_csrf_checks=True)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = language
    refused = client.post(reverse("login"), {"login_id": "x", "password": "y"})
    assert refused.status_code == 403
    assert expired in refused.content.decode()
