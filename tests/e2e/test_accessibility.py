"""Every screen in Debian's Chromium: accessible (axe-core), no sideways scrolling on a phone, no CSP violation.

One gunicorn (its own TLS, debug off as in production) and one browser walk every customer
screen and dialog, the contract administrators' site and the operators' site, in Japanese and
in English. On each screen:

- axe-core (frontend/package-lock.json; `npm ci --prefix frontend`) runs the WCAG 2.0, 2.1 and
  2.2 A and AA rules on the customer and contract-administrator screens;
- at 390 px wide (a phone) the page is no wider than the screen (screenshots in
  test-artifacts/phone-390px/);
- the page reports no Content-Security-Policy violation (`securitypolicyviolation` events,
  read before axe runs, as axe's own probes would be refused too) and no script error.

axe is added by Playwright as an init script, which the page's policy does not govern (an
injected <script> would itself be refused by the policy this test checks).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from accounts.models import User
from certificates.models import Certificate
from notices.models import Notice
from tests.support.browser import needs_chromium
from tests.support.clients import issue_for, issue_for_operator
from tests.support.personas import PASSWORD
from tests.support.servers import Portal, production_environment, server_environment, start_gunicorn, write_client_files

AXE = Path(settings.BASE_DIR) / "frontend" / "node_modules" / "axe-core" / "axe.min.js"
ARTIFACTS = Path(settings.BASE_DIR) / "test-artifacts" / "phone-390px"  # every screen as a phone shows it
WCAG_A_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
PHONE_WIDTH = 390
DESKTOP = {"width": 1280, "height": 900}

pytestmark = [
    needs_chromium,
    pytest.mark.skipif(not AXE.exists(), reason="axe-core is not installed: run `npm ci --prefix frontend`"),
    pytest.mark.xdist_group("e2e"),
]

# Collects, in the page, what the Content-Security-Policy refused.
WATCH_CSP = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation",
  (event) => window.__cspViolations.push(
    `${event.violatedDirective} ${event.blockedURI} at ${event.sourceFile}:${event.lineNumber}`));
"""

# The innermost elements that reach past the phone's width: what to fix when a page is too wide.
WIDEST = """(limit) => [...document.body.querySelectorAll("*")]
  .filter((element) => element.getBoundingClientRect().right > limit
          && ![...element.children].some((child) => child.getBoundingClientRect().right > limit))
  .slice(0, 3).map((element) => element.outerHTML.slice(0, 100))"""

LABELS = {
    "ja": {"login_id": "ログインID", "password": "パスワード", "log_in": "ログイン", "obtain": "電子証明書取得",
           "send_code": "確認コードを送信", "code": "確認コード", "confirm": "確認", "obtain_button": "取得",
           "renew": "更新", "yes": "はい", "log_out": "ログアウト"},
    "en": {"login_id": "Login ID", "password": "Password", "log_in": "Log in",
           "obtain": "Obtain certificate (電子証明書取得)", "send_code": "Send confirmation code",
           "code": "Confirmation code", "confirm": "Confirm", "obtain_button": "Obtain", "renew": "Renew (更新)",
           "yes": "Yes (はい)", "log_out": "Log out"},
}


class Walk:
    """The findings of every screen visited: axe's violations, the page's width on a phone, CSP refusals."""

    def __init__(self) -> None:
        self.axe: dict[str, list[str]] = {}
        self.too_wide: dict[str, str] = {}
        self.csp: dict[str, list[str]] = {}
        self.errors: list[str] = []
        self.screens = 0

    def page(self, context):
        page = context.new_page()
        page.on("pageerror", lambda error: self.errors.append(f"{page.url}: {error}"))
        return page

    def check(self, page, screen: str, *, axe: bool = True, phone: bool = True) -> None:
        """Record what is wrong with the screen now shown (a dialog open included)."""
        page.wait_for_load_state("load")
        self.screens += 1
        # Read before axe runs: axe's own probes (a <style> it adds) would be refused too.
        refused = page.evaluate("window.__cspViolations || []")
        if refused:
            self.csp[screen] = refused
        if axe:
            result = page.evaluate("(tags) => axe.run(document, {runOnly: {type: 'tag', values: tags}})", WCAG_A_AA)
            found = [
                f"{violation['id']} ({len(violation['nodes'])}): {violation['nodes'][0]['html'][:120]}"
                for violation in result["violations"]
            ]
            if found:
                self.axe[screen] = found
        if phone:
            page.set_viewport_size({"width": PHONE_WIDTH, "height": 844})
            width = page.evaluate("document.documentElement.scrollWidth")
            slug = re.sub(r"[^a-z0-9]+", "-", screen.lower()).strip("-")
            page.screenshot(path=str(ARTIFACTS / f"{self.screens:02d}-{slug}.png"), full_page=True)
            page.set_viewport_size(DESKTOP)
            if width > PHONE_WIDTH:
                self.too_wide[screen] = f"{width} px: {page.evaluate(WIDEST, PHONE_WIDTH)}"

    def report(self) -> str:
        return json.dumps({"axe": self.axe, "wider than a phone": self.too_wide, "csp": self.csp,
                           "script errors": self.errors}, ensure_ascii=False, indent=1)


@pytest.fixture
def portal(transactional_db, ca, tmp_path):
    """gunicorn with its own TLS and debug off (error pages as customers see them), /static/ collected."""
    environment = {**production_environment(), "CERTPORTAL_TRUSTED_PROXIES": "",
                   "CERTPORTAL_PUBLIC_BASE_URL": "https://127.0.0.1"}
    done = subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput"], cwd=settings.BASE_DIR,
                          env=server_environment(tmp_path / "gunicorn-var", **environment),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    # Two sync workers, as `make run` has: Chromium may open a connection ahead of time and leave it idle,
    # which holds a sync worker until it closes; the other one serves the page meanwhile.
    server, port, tls_files = start_gunicorn(tmp_path, tls=True, environment=environment, workers=2)
    portal = Portal(host="127.0.0.1", port=port, ca_chain=tls_files.server_ca, servers=[server])
    portal.mail = tmp_path / "gunicorn-var" / "mail"
    try:
        yield portal
    finally:
        server.stop()


def context_for(chromium, origin: str, language: str, client_files: tuple[Path, Path] | None = None):
    options = {}
    if client_files:
        options["client_certificates"] = [
            {"origin": origin, "certPath": str(client_files[0]), "keyPath": str(client_files[1])}
        ]
    context = chromium.new_context(ignore_https_errors=True, locale=language, viewport=DESKTOP,
                                   accept_downloads=True, **options)
    context.add_cookies([{"name": "django_language", "value": language, "url": origin}])
    context.add_init_script(path=str(AXE))
    context.add_init_script(WATCH_CSP)
    context.set_default_timeout(20_000)
    return context


def code_mailed_to(folder: Path, email: str, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for mail in sorted(folder.glob("*"), key=lambda path: path.stat().st_mtime, reverse=True):
            text = mail.read_text(errors="replace")
            if email in text and (found := re.search(r"\b(\d{6})\b", text)):
                return found.group(1)
        time.sleep(0.1)
    raise AssertionError(f"no code mailed to {email} in {folder}")


def enroll_in_page(walk: Walk, page, labels: dict, *, button: str, screen: str) -> None:
    """Make the key, the CSR and the file in the page, checking both confirmation dialogs on the way."""
    page.locator("#p12-password").fill("File-pass-2026!")
    page.locator("#p12-password-again").fill("File-pass-2026!")
    page.get_by_role("button", name=button, exact=True).click()
    page.locator("#confirm-key").wait_for(state="visible")
    walk.check(page, f"{screen}: dialog, create the key")
    page.locator("#confirm-key").get_by_role("button", name=labels["yes"], exact=True).click()
    page.wait_for_function("() => document.getElementById('confirm-install').open", timeout=30_000)
    walk.check(page, f"{screen}: dialog, save the file")
    with page.expect_download(timeout=30_000):
        page.locator("#confirm-install").get_by_role("button", name=labels["yes"], exact=True).click()
    page.wait_for_url("**/done/**")
    walk.check(page, f"{screen}: issued")


def log_in_to_the_notices(page, origin: str, labels: dict, login_id: str) -> None:
    """The login screen with the browser's certificate and PASSWORD, through to 重要なお知らせ."""
    page.goto(origin + "/")
    page.get_by_label(labels["login_id"], exact=True).fill(login_id)
    page.get_by_label(labels["password"], exact=True).fill(PASSWORD)
    page.get_by_role("button", name=labels["log_in"], exact=True).click()
    page.wait_for_url("**/notices/")


def walk_as_customer(walk: Walk, chromium, portal: Portal, tmp_path: Path, language: str):
    labels = LABELS[language]
    origin = f"https://{portal.host}:{portal.port}"
    contract = User.objects.get(login_id="alice-admin").contract
    newcomer = User.objects.create_user(f"nora-{language}", f"nora-{language}@alpha.example", PASSWORD,
                                        contract=contract, role=User.Role.USER, language=language)
    administrator = User.objects.create_user(f"ada-{language}", f"ada-{language}@alpha.example", PASSWORD,
                                             contract=contract, role=User.Role.ADMINISTRATOR, language=language)

    # Without a certificate: the login screen, its error, 電子証明書取得 to the issued screen, an error page.
    context = context_for(chromium, origin, language)
    page = walk.page(context)
    page.goto(origin + "/")
    walk.check(page, f"{language} login")
    page.get_by_label(labels["login_id"], exact=True).fill(administrator.login_id)
    page.get_by_label(labels["password"], exact=True).fill("not-the-password")
    page.get_by_role("button", name=labels["log_in"], exact=True).click()
    page.get_by_role("alert").first.wait_for()
    walk.check(page, f"{language} login, refused")
    page.get_by_role("link", name=labels["obtain"], exact=True).click()
    page.wait_for_url("**/certificate/obtain/")
    walk.check(page, f"{language} obtain: identify")
    page.get_by_label(labels["login_id"], exact=True).fill(newcomer.login_id)
    page.get_by_label(labels["password"], exact=True).fill(PASSWORD)
    page.get_by_role("button", name=labels["send_code"]).click()
    page.wait_for_url("**/certificate/obtain/code/")
    walk.check(page, f"{language} obtain: code")
    page.get_by_label(labels["code"], exact=True).fill(code_mailed_to(portal.mail, newcomer.email))
    page.get_by_role("button", name=labels["confirm"], exact=True).click()
    page.wait_for_url("**/certificate/obtain/enroll/")
    walk.check(page, f"{language} obtain: enroll")
    enroll_in_page(walk, page, labels, button=labels["obtain_button"], screen=f"{language} obtain")
    page.goto(origin + "/certificate/obtain/")
    page.get_by_label(labels["login_id"], exact=True).fill("alice-admin")  # logged in with hers: in use
    page.get_by_label(labels["password"], exact=True).fill(PASSWORD)
    page.get_by_role("button", name=labels["send_code"]).click()
    page.get_by_role("alert").wait_for()
    walk.check(page, f"{language} obtain: renew instead")
    assert page.goto(origin + "/no-such-page/").status == 404
    walk.check(page, f"{language} error page (404)")
    page.goto(origin + "/")
    page.locator("main input[name=csrfmiddlewaretoken]").evaluate("(input) => { input.value = 'stale'; }")
    with page.expect_response(lambda answer: answer.request.method == "POST") as answer:
        page.get_by_role("button", name=labels["log_in"], exact=True).click()
    assert answer.value.status == 403
    walk.check(page, f"{language} error page (form expired, 403)")
    context.close()

    # An administrator 20 days before its certificate expires: notices with guidance, renewal, /manage/.
    certificate, key = issue_for(administrator, now=timezone.now() - timedelta(days=345))
    client_files = write_client_files(tmp_path / f"ada-{language}", certificate, key)
    context = context_for(chromium, origin, language, client_files)
    page = walk.page(context)
    log_in_to_the_notices(page, origin, labels, administrator.login_id)
    assert page.locator(".renewal-guidance").is_visible()
    walk.check(page, f"{language} important notices with renewal guidance")
    page.locator(".renewal-guidance").get_by_role("link").click()
    page.wait_for_url("**/certificate/renew/")
    walk.check(page, f"{language} renewal: prepare")
    page.wait_for_url("**/certificate/renew/start/", timeout=15_000)  # moves on by itself
    walk.check(page, f"{language} renewal: start")
    enroll_in_page(walk, page, labels, button=labels["renew"], screen=f"{language} renewal")
    page.goto(origin + "/notices/")
    assert page.locator(".newer-certificate").is_visible()
    walk.check(page, f"{language} important notices with a newer certificate")
    page.goto(origin + "/password/")
    walk.check(page, f"{language} password change")
    page.locator("header").get_by_role("button", name=labels["log_out"], exact=True).click()
    page.locator(".messages").wait_for()
    walk.check(page, f"{language} login, logged out")
    context.close()
    return administrator, newcomer, client_files


def walk_the_plain_notices(walk: Walk, chromium, portal: Portal, tmp_path: Path, language: str, user: User) -> None:
    labels = LABELS[language]
    origin = f"https://{portal.host}:{portal.port}"
    certificate, key = issue_for(user)
    context = context_for(chromium, origin, language, write_client_files(tmp_path / user.login_id, certificate, key))
    page = walk.page(context)
    log_in_to_the_notices(page, origin, labels, user.login_id)
    assert page.locator(".renewal-guidance").count() == 0 and page.locator("article.notice").count() == 1
    walk.check(page, f"{language} important notices")
    context.close()


def walk_the_contract_site(walk: Walk, chromium, portal: Portal, language: str, administrator: User,
                           newcomer: User, client_files: tuple[Path, Path]) -> None:
    labels = LABELS[language]
    origin = f"https://{portal.host}:{portal.port}"
    context = context_for(chromium, origin, language, client_files)
    page = walk.page(context)
    log_in_to_the_notices(page, origin, labels, administrator.login_id)
    user_id = f"{origin}/manage/accounts/userid/{newcomer.pk}"
    obtained = Certificate.objects.get(owner=newcomer)
    for path, screen in (
        ("/manage/", "index"), ("/manage/accounts/userid/", "IDs"), (f"{user_id}/change/", "an ID"),
        ("/manage/accounts/userid/add/", "add an ID"), (f"{user_id}/suspend/", "confirm suspending"),
        ("/manage/certificates/certificate/", "certificates"),
        (f"/manage/certificates/certificate/{obtained.pk}/change/", "a certificate"),
        (f"/manage/certificates/certificate/{obtained.pk}/revoke/", "confirm revoking"),
        ("/manage/accounts/auditentry/", "audit log"),
    ):
        answer = page.goto(path if path.startswith("http") else origin + path)
        assert answer.status == 200, (path, answer.status)
        walk.check(page, f"{language} contract administration: {screen}")
    page.goto(f"{user_id}/reset-password/")
    walk.check(page, f"{language} contract administration: confirm resetting a password")
    page.locator("#content input[type=submit]").click()
    page.locator(".temporary-password").wait_for()
    walk.check(page, f"{language} contract administration: the temporary password")
    context.close()


def walk_as_operator(walk: Walk, chromium, portal: Portal, language: str, tmp_path: Path) -> None:
    """The operators' Django admin, used at a bank's desk with the operator's certificate: under the policy."""
    origin = f"https://{portal.host}:{portal.port}"
    operator = User.objects.get(login_id="olivia-operator")
    certificate, key = issue_for_operator(operator)
    context = context_for(chromium, origin, language,
                          write_client_files(tmp_path / f"olivia-{language}", certificate, key))
    page = walk.page(context)
    page.goto(origin + "/operator/login/")
    walk.check(page, f"{language} operators: login", axe=False, phone=False)
    page.locator("#id_username").fill("olivia-operator")
    page.locator("#id_password").fill(PASSWORD)
    page.locator("input[type=submit]").click()
    page.wait_for_url("**/operator/")
    someone = User.objects.get(login_id="alice-admin")
    for path in ("/operator/", "/operator/accounts/user/", f"/operator/accounts/user/{someone.pk}/change/",
                 "/operator/certificates/certificate/", "/operator/accounts/auditentry/",
                 "/operator/notices/notice/add/"):
        answer = page.goto(origin + path)
        assert answer.status == 200, (path, answer.status)
        walk.check(page, f"{language} operators: {path}", axe=False, phone=False)
    context.close()


def test_every_screen_is_accessible_fits_a_phone_and_keeps_to_the_content_security_policy(
    chromium, portal, alice, olivia, tmp_path
):
    """Customers' screens and dialogs, the contract site (axe, phone width, CSP) and the operators' site (CSP)."""
    Notice.objects.create(title_ja="システムメンテナンスのお知らせ", title_en="Scheduled maintenance",
                          body_ja="12月20日 2:00〜5:00 はご利用いただけません。",
                          body_en="The service is unavailable on 20 December from 2:00 to 5:00.")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("*.png"):
        old.unlink()
    walk = Walk()
    for language in ("ja", "en"):
        alice.language = language
        alice.save(update_fields=["language"])
        walk_the_plain_notices(walk, chromium, portal, tmp_path / language, language, alice)
        administrator, newcomer, client_files = walk_as_customer(walk, chromium, portal, tmp_path, language)
        walk_the_contract_site(walk, chromium, portal, language, administrator, newcomer, client_files)
        walk_as_operator(walk, chromium, portal, language, tmp_path)
    print(f"{walk.screens} screens checked")
    assert walk.screens >= 60
    assert (walk.axe, walk.too_wide, walk.csp, walk.errors) == ({}, {}, {}, []), walk.report()
