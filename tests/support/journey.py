"""The customer's whole journey through the guide in Chromium, on a running stack: shared by the
one-node journeys (tests/e2e/test_e2e_journey.py) and the two-node one (test_multi_node_journey.py)."""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from cryptography.hazmat.primitives.serialization import pkcs12
from django.utils import translation

from accounts.models import AuditEntry, User
from certificates import ca as portal_ca
from certificates.authentication import CertificateProblem
from certificates.models import Certificate
from notices.models import Reminder
from tests.support.browser import needs_chromium
from tests.support.personas import PASSWORD
from tests.support.stack import Stack

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
JST = ZoneInfo("Asia/Tokyo")
# The stack's clock when it restarts on reminder day: the beat fires at 09:00 (REMINDER_TIME) a few seconds later.
REMINDER_DAY_START = clock_time(8, 59, 15)  # beat must be up before 09:00, even on a loaded machine

pytestmark = [
    pytest.mark.xdist_group("e2e"),
    needs_chromium,
]

LABELS = {
    "ja": {
        "obtain": "電子証明書取得", "login_id": "ログインID", "password": "パスワード", "send_code": "確認コードを送信",
        "code": "確認コード", "confirm": "確認", "obtain_button": "取得", "web_access": "Web アクセスの確認",
        "yes": "はい", "issued": "電子証明書発行 発行完了", "close": "このウィンドウを閉じる", "log_in": "ログイン",
        "prepare": "電子証明書更新前処理中", "start": "電子証明書更新開始", "renew": "更新",
        "reminder_subject": "あと30日", "days_left": "残り30日", "notices": "重要なお知らせ",
    },
    "en": {
        "obtain": "Obtain certificate (電子証明書取得)", "login_id": "Login ID", "password": "Password",
        "send_code": "Send confirmation code", "code": "Confirmation code", "confirm": "Confirm",
        "obtain_button": "Obtain", "web_access": "Confirm web access (Web アクセスの確認)", "yes": "Yes (はい)",
        "issued": "Certificate issued (電子証明書発行 発行完了)", "close": "Close this window (このウィンドウを閉じる)",
        "log_in": "Log in", "prepare": "Preparing certificate renewal (電子証明書更新前処理中)",
        "start": "Start certificate renewal (電子証明書更新開始)", "renew": "Renew (更新)",
        "reminder_subject": "expires in 30 days", "days_left": "Days left: 30",
        "notices": "Important notices (重要なお知らせ)",
    },
}


class Screens:
    """Screenshots of every screen, numbered in the order the customer sees them."""

    def __init__(self, name: str) -> None:
        self.folder = ARTIFACTS / name
        self.folder.mkdir(parents=True, exist_ok=True)
        for old in self.folder.glob("*.png"):
            old.unlink()
        self.count = 0

    def shot(self, page, name: str) -> None:
        self.count += 1
        page.screenshot(path=str(self.folder / f"{self.count:02d}-{name}.png"), full_page=True)


def browser_context(chromium, stack: Stack, language: str, *, pfx: Path | None = None, passphrase: str = ""):
    """A freshly started browser: no cookies but the language, and the certificate file imported (or none)."""
    options = {}
    if pfx is not None:
        options["client_certificates"] = [{"origin": stack.origin, "pfxPath": str(pfx), "passphrase": passphrase}]
    # The portal's CA is not one Chromium trusts; tests/certificates/test_tls_login.py checks the server certificate.
    context = chromium.new_context(accept_downloads=True, ignore_https_errors=True, locale=language, **options)
    context.add_cookies([{"name": "django_language", "value": language, "url": stack.origin}])
    context.set_default_timeout(20_000)
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda error: page.errors.append(error))
    return context, page


def heading(page) -> str:
    return page.locator("h1").inner_text().strip()


def enroll_in_page(page, screens: Screens, labels: dict, *, button: str, file_password: str, save_to: Path,
                   done_url: str) -> None:
    """The page makes the key and CSR, the portal issues, the page saves the PKCS#12 file (Playwright download)."""
    page.locator("#p12-password").fill(file_password)
    page.locator("#p12-password-again").fill(file_password)
    page.get_by_role("button", name=button, exact=True).click()
    create_key = page.get_by_role("dialog", name=labels["web_access"])
    create_key.wait_for(state="visible")
    screens.shot(page, "confirm-create-key")
    create_key.get_by_role("button", name=labels["yes"], exact=True).click()
    install = page.locator("#confirm-install")
    page.wait_for_function(
        # A function, not an expression: the page's Content-Security-Policy refuses eval of a string.
        "() => document.getElementById('confirm-install').open || !document.getElementById('enroll-error').hidden",
        timeout=30_000,
    )
    assert page.locator("#enroll-error").is_hidden(), page.locator("#enroll-error").inner_text()
    assert page.get_by_role("dialog", name=labels["web_access"]).inner_text() == install.inner_text()
    screens.shot(page, "confirm-install")
    with page.expect_download(timeout=30_000) as download_info:
        install.get_by_role("button", name=labels["yes"], exact=True).click()
    download_info.value.save_as(save_to)
    page.wait_for_url(done_url, timeout=20_000)
    assert heading(page) == labels["issued"]


def what_went_wrong(page, stack: Stack) -> str:
    audit = AuditEntry.objects.order_by("pk").values_list("action", "detail", "certificate_serial")
    return f"at {page.url}:\n{page.locator('main').inner_text()}\naudit: {list(audit)}\n{stack.logs()}"


def log_in(page, stack: Stack, labels: dict, login_id: str) -> None:
    page.goto(stack.origin + "/")
    page.get_by_label(labels["login_id"], exact=True).fill(login_id)
    page.get_by_label(labels["password"], exact=True).fill(PASSWORD)


def certificate_in(pfx: Path, password: str):
    key, certificate, _chain = pkcs12.load_key_and_certificates(pfx.read_bytes(), password.encode())
    return key, certificate


def the_journey(chromium, stack: Stack, user: User, administrator: User, language: str, tmp_path: Path) -> None:
    labels = LABELS[language]
    screens = Screens(f"{stack.name}-{language}")
    file_password = f"File-pass-{language}-2026!"
    started = time.monotonic()

    # --- 1. 電子証明書取得: an ID with no certificate obtains one --------------------------------
    stack.start()
    context, page = browser_context(chromium, stack, language)
    page.goto(stack.origin + "/")
    assert page.get_by_role("link", name=labels["obtain"], exact=True).is_visible()
    screens.shot(page, "login-screen")
    page.get_by_role("link", name=labels["obtain"], exact=True).click()
    page.wait_for_url("**/certificate/obtain/")
    assert heading(page) == labels["obtain"]
    page.get_by_label(labels["login_id"], exact=True).fill(user.login_id)
    page.get_by_label(labels["password"], exact=True).fill(PASSWORD)
    screens.shot(page, "obtain-identify")
    page.get_by_role("button", name=labels["send_code"]).click()
    page.wait_for_url("**/certificate/obtain/code/")
    screens.shot(page, "obtain-code")
    mail = stack.wait_for_mail(lambda m: user.email in m.to, timeout=20, what=f"with the code to {user.email}")
    code = re.search(r"\b(\d{6})\b", mail.text).group(1)
    page.get_by_label(labels["code"], exact=True).fill(code)
    page.get_by_role("button", name=labels["confirm"], exact=True).click()
    page.wait_for_url("**/certificate/obtain/enroll/")
    assert heading(page) == labels["obtain"]
    screens.shot(page, "obtain-enroll")
    first_pfx = tmp_path / f"{stack.name}-{language}-first.p12"
    enroll_in_page(page, screens, labels, button=labels["obtain_button"], file_password=file_password,
                   save_to=first_pfx, done_url="**/certificate/obtain/done/**")
    screens.shot(page, "obtain-issued")
    assert page.errors == []
    context.close()

    first = user.certificates.get()
    assert first.issued_via == Certificate.Channel.OBTAIN
    key, certificate = certificate_in(first_pfx, file_password)
    assert certificate.serial_number == int(first.serial_number, 16)
    assert portal_ca.spki_sha256(key.public_key()) == first.public_key_sha256
    print(f"[{stack.name}-{language}] obtained {first.serial_number} at {time.monotonic() - started:.1f}s")

    # --- 2. The browser restarted with the file imported: certificate and password ---------
    context, page = browser_context(chromium, stack, language, pfx=first_pfx, passphrase=file_password)
    log_in(page, stack, labels, user.login_id)
    screens.shot(page, "login-with-certificate")
    page.get_by_role("button", name=labels["log_in"], exact=True).click()
    page.wait_for_url("**/notices/")
    assert heading(page) == labels["notices"], what_went_wrong(page, stack)
    assert page.locator(".renewal-guidance").count() == 0  # a year left: nothing to renew yet
    screens.shot(page, "important-notices")
    context.close()
    first.refresh_from_db()
    assert first.first_used_at is not None

    # --- 3. 30 days before expiry: the worker's reminder, the guidance after login ----------
    expiry_day = first.not_after.astimezone(JST).date()
    reminder_day = expiry_day - timedelta(days=30)
    stack.restart(at=datetime.combine(reminder_day, REMINDER_DAY_START, tzinfo=JST))
    reminder = stack.wait_for_mail(
        lambda m: user.email in m.to and labels["reminder_subject"] in m.subject, timeout=100,
        what=f"with the 30-day reminder to {user.email}",
    )
    assert first.serial_number in reminder.text
    assert "電子証明書の更新はこちら" in reminder.text  # the guide's label, verbatim in both languages
    if stack.kind == "production":
        assert f"{stack.origin}/" in reminder.text  # the link: where nginx serves the portal (its ports change)
    recorded = Reminder.objects.get(certificate=first, threshold_days=30)
    deadline = time.monotonic() + 10  # the worker records "sent" just after the provider took the e-mail
    while recorded.state != Reminder.State.SENT and time.monotonic() < deadline:
        time.sleep(0.1)
        recorded.refresh_from_db()
    assert recorded.state == Reminder.State.SENT
    assert recorded.created_at.astimezone(JST).date() == reminder_day
    assert recorded.created_at.astimezone(JST).time() >= clock_time(9, 0)  # by the beat, at REMINDER_TIME
    stack.wait_for_mail(lambda m: administrator.email in m.to, timeout=20, what="with the administrator's digest")
    print(f"[{stack.name}-{language}] reminder sent at {time.monotonic() - started:.1f}s")

    context, page = browser_context(chromium, stack, language, pfx=first_pfx, passphrase=file_password)
    log_in(page, stack, labels, user.login_id)
    page.get_by_role("button", name=labels["log_in"], exact=True).click()
    page.wait_for_url("**/notices/")
    assert heading(page) == labels["notices"], what_went_wrong(page, stack)
    guidance = page.locator(".renewal-guidance")
    assert guidance.is_visible()
    assert labels["days_left"] in guidance.inner_text()
    screens.shot(page, "important-notices-renewal-guidance")

    # --- 4. The renewal, screen by screen -------------------------------------------------
    guidance.get_by_role("link", name="電子証明書の更新はこちら").click()
    page.wait_for_url("**/certificate/renew/")
    assert heading(page) == labels["prepare"]
    screens.shot(page, "renewal-prepare")
    page.wait_for_url("**/certificate/renew/start/", timeout=15_000)  # moves on by itself
    assert heading(page) == labels["start"]
    screens.shot(page, "renewal-start")
    new_pfx = tmp_path / f"{stack.name}-{language}-renewed.p12"
    enroll_in_page(page, screens, labels, button=labels["renew"], file_password=file_password, save_to=new_pfx,
                   done_url="**/certificate/renew/done/**")
    renewed = user.certificates.exclude(pk=first.pk).get()
    details = page.locator("main").inner_text()
    assert renewed.serial_number in details and renewed.fingerprint_display in details
    assert first.serial_number in details  # the old certificate, to delete after the first login
    screens.shot(page, "renewal-issued")
    page.get_by_role("button", name=labels["close"], exact=True).click()
    if not page.is_closed():
        page.locator("#close-window-hint").wait_for(state="visible")
        screens.shot(page, "close-window")
    assert page.errors == []
    context.close()
    assert renewed.issued_via == Certificate.Channel.RENEWAL
    assert renewed.not_before.astimezone(JST).date() == reminder_day  # issued on the stack's day
    key, certificate = certificate_in(new_pfx, file_password)
    assert certificate.serial_number == int(renewed.serial_number, 16)
    assert portal_ca.spki_sha256(key.public_key()) == renewed.public_key_sha256

    # The browser restarted with the new file: login lands on the notices, nothing left to renew.
    context, page = browser_context(chromium, stack, language, pfx=new_pfx, passphrase=file_password)
    log_in(page, stack, labels, user.login_id)
    page.get_by_role("button", name=labels["log_in"], exact=True).click()
    page.wait_for_url("**/notices/")
    assert heading(page) == labels["notices"], what_went_wrong(page, stack)
    assert page.locator(".renewal-guidance").count() == 0
    screens.shot(page, "important-notices-new-certificate")
    context.close()
    first.refresh_from_db()
    assert first.revoked_at is not None  # superseded at the new certificate's first login

    # The old file no longer logs in, and the screen says why.
    context, page = browser_context(chromium, stack, language, pfx=first_pfx, passphrase=file_password)
    log_in(page, stack, labels, user.login_id)
    page.get_by_role("button", name=labels["log_in"], exact=True).click()
    with translation.override(language):
        refused = str(CertificateProblem.REVOKED.message)
    page.get_by_role("alert").filter(has_text=refused).wait_for(state="visible")
    assert "/notices/" not in page.url
    screens.shot(page, "old-certificate-refused")
    context.close()

    if stack.kind == "production":
        # Once certportal-crl.service has exported the CRL and reloaded nginx, nginx itself refuses it.
        stack.reload_crl()
        context, page = browser_context(chromium, stack, language, pfx=first_pfx, passphrase=file_password)
        answer = page.goto(stack.origin + "/")
        assert answer.status == 400
        assert "電子証明書を確認できませんでした" in page.content()
        assert "certificate revoked" in (stack.crl.parent / "error.log").read_text(errors="replace")
        screens.shot(page, "old-certificate-refused-by-nginx")
        context.close()
    print(f"[{stack.name}-{language}] journey done in {time.monotonic() - started:.1f}s, {screens.count} screens")


def journey_user(contract, language: str) -> User:
    return User.objects.create_user(
        f"erin-{language}", f"erin-{language}@alpha.example", PASSWORD, contract=contract, role=User.Role.USER,
        language=language,
    )
