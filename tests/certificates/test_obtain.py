"""電子証明書取得 from the login screen: login ID and password, a one-time code by e-mail, then issuance.

The code is read from the e-mail actually sent (django.core.mail.outbox); e-mails leave only
after the transaction commits, so requests that send one run inside
django_capture_on_commit_callbacks(execute=True).
"""

from __future__ import annotations

import json
import re
import socket
from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditEntry, User
from certificates import otp
from certificates.models import Certificate, CertificateAction, OneTimeCode
from certificates.services import supersede_older_certificates
from tests.support.clients import CertificateClient, code_from_mail, issue_for
from tests.support.hashing import CountingHasher
from tests.support.personas import PASSWORD
from tests.support.pki import make_csr

pytestmark = pytest.mark.embedded


@pytest.fixture
def browser(ca, behind_proxy) -> CertificateClient:
    """A browser without any certificate, on the login screen's side of the portal."""
    return CertificateClient(None)


def h1(response) -> str:
    return re.search(r"<h1>(.*?)</h1>", response.content.decode(), re.S).group(1).strip()


def errors(response) -> str:
    return " ".join(re.findall(r'<ul class="errorlist[^"]*"[^>]*>(.*?)</ul>', response.content.decode(), re.S))


def identify(client, login_id, password=PASSWORD, *, capture):
    with capture(execute=True):
        return client.post(reverse("obtain-start"), {"login_id": login_id, "password": password})


def enter_code(client, code):
    return client.post(reverse("obtain-code"), {"code": code})


def post_csr(client, pem=None):
    pem = pem or make_csr()[0]
    return client.post(reverse("obtain-issue"), data=json.dumps({"csr": pem.decode()}),
                       content_type="application/json")


# --- the whole way, in both languages ---------------------------------------------------------


@pytest.mark.parametrize(
    ("language", "title", "button", "dialog", "yes", "issued"),
    [
        ("ja", "電子証明書取得", "取得", "Web アクセスの確認", "はい", "電子証明書発行 発行完了"),
        ("en", "Obtain certificate (電子証明書取得)", "Obtain", "Confirm web access (Web アクセスの確認)", "Yes (はい)",
         "Certificate issued (電子証明書発行 発行完了)"),
    ],
)
def test_an_id_without_a_certificate_obtains_one_with_the_code_from_the_email(
    browser, charlie, django_capture_on_commit_callbacks, language, title, button, dialog, yes, issued
):
    browser.cookies["django_language"] = language
    User.objects.filter(pk=charlie.pk).update(language=language)  # the e-mail goes in the ID's language
    start = browser.get(reverse("obtain-start"))
    assert start.status_code == 200 and h1(start) == title

    response = identify(browser, "charlie-admin", capture=django_capture_on_commit_callbacks)
    assert response.status_code == 302 and response["Location"] == reverse("obtain-code")
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["charlie@beta.example"]
    assert ("確認コード" if language == "ja" else "confirmation code") in message.subject
    code = code_from_mail(message)
    assert code in message.alternatives[0][0]  # the HTML part says the same

    code_page = browser.get(reverse("obtain-code"))
    assert h1(code_page) == {"ja": "確認コードの入力", "en": "Enter the confirmation code"}[language]
    assert "c***@beta.example" in code_page.content.decode()  # the address, masked
    response = enter_code(browser, code)
    assert response.status_code == 302 and response["Location"] == reverse("obtain-enroll")

    enroll = browser.get(reverse("obtain-enroll"))
    html = enroll.content.decode()
    assert h1(enroll) == title
    assert f'id="enroll-start">{button}</button>' in html
    assert len(re.findall(rf'<h2 id="confirm-(key|install)-title">{re.escape(dialog)}</h2>', html)) == 2
    assert len(re.findall(rf'data-answer="yes" autofocus>{re.escape(yes)}</button>', html)) == 2
    assert f'data-issue-url="{reverse("obtain-issue")}"' in html and 'data-common-name="charlie-admin"' in html

    created = post_csr(browser)
    assert created.status_code == 201
    certificate = Certificate.objects.get(serial_number=created.json()["serial"])
    assert certificate.owner == charlie and certificate.issued_via == Certificate.Channel.OBTAIN

    done = browser.get(created.json()["next"])
    assert done.status_code == 200 and h1(done) == issued
    assert certificate.fingerprint_display in done.content.decode()
    actions = set(AuditEntry.objects.filter(subject=charlie).values_list("action", flat=True))
    assert {
        CertificateAction.ONE_TIME_CODE_SENT, CertificateAction.ONE_TIME_CODE_ACCEPTED,
        CertificateAction.CERTIFICATE_ISSUED,
    } <= actions
    # Who proved the ID and had the certificate issued, and from where.
    issued_entry = AuditEntry.objects.get(action=CertificateAction.CERTIFICATE_ISSUED, subject=charlie)
    accepted_entry = AuditEntry.objects.get(action=CertificateAction.ONE_TIME_CODE_ACCEPTED, subject=charlie)
    assert issued_entry.remote_addr == accepted_entry.remote_addr == "127.0.0.1"


def test_once_the_obtained_certificate_is_in_use_the_same_session_cannot_obtain_another(
    browser, charlie, django_capture_on_commit_callbacks
):
    identify(browser, "charlie-admin", capture=django_capture_on_commit_callbacks)
    enter_code(browser, code_from_mail(mail.outbox[0]))
    created = post_csr(browser)
    assert created.status_code == 201
    certificate = Certificate.objects.get(serial_number=created.json()["serial"])
    # The customer logs in with it, in the same browser session.
    logged_in = CertificateClient(certificate)
    logged_in.cookies = browser.cookies
    response = logged_in.post(reverse("login"), {"login_id": "charlie-admin", "password": PASSWORD})
    assert response.status_code == 302
    # Past the hold on a fresh certificate, still inside the 30 minutes the code's proof lasts.
    with time_machine.travel(timezone.now() + timedelta(minutes=11)):
        again = post_csr(logged_in)
    assert again.status_code == 409 and again.json()["code"] == "has_valid_certificate"
    assert list(charlie.certificates.all()) == [certificate]
    assert AuditEntry.objects.filter(action=CertificateAction.ISSUANCE_REFUSED, subject=charlie,
                                     detail__reason="has_valid_certificate").exists()


def test_a_csr_that_is_not_text_is_refused_with_a_reason_not_an_error(
    browser, charlie, django_capture_on_commit_callbacks
):
    identify(browser, "charlie-admin", capture=django_capture_on_commit_callbacks)
    enter_code(browser, code_from_mail(mail.outbox[0]))
    # JSON may carry a lone surrogate, which no text encoding can write.
    response = browser.post(reverse("obtain-issue"), data='{"csr": "\\ud800"}', content_type="application/json")
    assert response.status_code == 400 and response.json()["code"] == "not_a_csr"
    assert not charlie.certificates.exists()


def test_an_id_whose_certificate_expired_obtains_a_new_one(browser, charlie, django_capture_on_commit_callbacks):
    expired, _key = issue_for(charlie, now=timezone.now() - timedelta(days=400))
    supersede_older_certificates(newer=expired, now=timezone.now() - timedelta(days=399))
    identify(browser, "charlie-admin", capture=django_capture_on_commit_callbacks)
    enter_code(browser, code_from_mail(mail.outbox[0]))
    created = post_csr(browser)
    assert created.status_code == 201
    done = browser.get(created.json()["next"]).content.decode()
    older = re.search(r'<section class="older-certificates">(.*?)</section>', done, re.S).group(1)
    assert expired.serial_number in older


def test_the_code_is_stored_only_as_a_keyed_hash(browser, charlie, django_capture_on_commit_callbacks):
    identify(browser, "charlie-admin", capture=django_capture_on_commit_callbacks)
    code = code_from_mail(mail.outbox[0])
    record = OneTimeCode.objects.get(user=charlie)
    assert code not in (record.code_hash, record.salt)
    assert len(record.code_hash) == 64
    assert record.expires_at - record.created_at == timedelta(minutes=10)


def test_the_email_is_sent_only_when_the_code_is_committed(browser, charlie, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        browser.post(reverse("obtain-start"), {"login_id": "charlie-admin", "password": PASSWORD})
    assert mail.outbox == [] and len(callbacks) == 1


# --- wrong, expired and used-up codes ---------------------------------------------------------


def test_a_wrong_code_is_refused_counted_and_audited(browser, charlie, django_capture_on_commit_callbacks):
    identify(browser, "charlie-admin", capture=django_capture_on_commit_callbacks)
    right = code_from_mail(mail.outbox[0])
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    response = enter_code(browser, wrong)
    assert response.status_code == 200
    assert "確認コードが正しくありません。あと 4 回入力できます。" in errors(response)
    assert OneTimeCode.objects.get(user=charlie).attempts == 1
    assert AuditEntry.objects.filter(action=CertificateAction.ONE_TIME_CODE_FAILED, subject=charlie,
                                     detail__reason="wrong_code").count() == 1
    assert enter_code(browser, right)["Location"] == reverse("obtain-enroll")


def test_after_five_wrong_codes_even_the_right_one_is_refused(browser, charlie, django_capture_on_commit_callbacks):
    identify(browser, "charlie-admin", capture=django_capture_on_commit_callbacks)
    right = code_from_mail(mail.outbox[0])
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    for _ in range(otp.MAX_ATTEMPTS):
        enter_code(browser, wrong)
    response = enter_code(browser, right)
    assert response.status_code == 200
    assert "確認コードの入力誤りが上限に達しました" in errors(response)
    assert browser.get(reverse("obtain-enroll"))["Location"] == reverse("obtain-start")
    assert post_csr(browser).status_code == 403
    assert not charlie.certificates.exists()


def test_an_expired_code_is_refused(browser, charlie, django_capture_on_commit_callbacks):
    identify(browser, "charlie-admin", capture=django_capture_on_commit_callbacks)
    code = code_from_mail(mail.outbox[0])
    with time_machine.travel(timezone.now() + timedelta(minutes=10, seconds=1)):
        response = enter_code(browser, code)
    assert "確認コードの有効期限が切れました" in errors(response)
    assert AuditEntry.objects.filter(action=CertificateAction.ONE_TIME_CODE_FAILED, detail__reason="expired").exists()


def test_the_code_typed_in_full_width_digits_or_with_a_space_is_accepted(
    browser, charlie, django_capture_on_commit_callbacks
):
    identify(browser, "charlie-admin", capture=django_capture_on_commit_callbacks)
    code = code_from_mail(mail.outbox[0])
    full_width = "".join(chr(ord(digit) + 0xFEE0) for digit in code)  # １２３４５６, as a Japanese IME types it
    response = enter_code(browser, f"{full_width[:3]}\u3000{full_width[3:]}")
    assert response.status_code == 302 and response["Location"] == reverse("obtain-enroll")


def test_a_code_works_only_once(browser, charlie, django_capture_on_commit_callbacks):
    identify(browser, "charlie-admin", capture=django_capture_on_commit_callbacks)
    code = code_from_mail(mail.outbox[0])
    record = OneTimeCode.objects.get(user=charlie)
    otp.verify_one_time_code(code_id=record.pk, user=charlie, entered=code)
    with pytest.raises(otp.CodeRefused) as refused:
        otp.verify_one_time_code(code_id=record.pk, user=charlie, entered=code)
    assert refused.value.code == "no_code"


def test_a_new_code_replaces_the_previous_one(browser, charlie, django_capture_on_commit_callbacks):
    identify(browser, "charlie-admin", capture=django_capture_on_commit_callbacks)
    first = code_from_mail(mail.outbox[0])
    identify(browser, "charlie-admin", capture=django_capture_on_commit_callbacks)
    second = code_from_mail(mail.outbox[1])
    older = OneTimeCode.objects.filter(user=charlie).order_by("created_at").first()
    with pytest.raises(otp.CodeRefused):
        otp.verify_one_time_code(code_id=older.pk, user=charlie, entered=first)
    assert enter_code(browser, second)["Location"] == reverse("obtain-enroll")


def test_a_code_of_another_id_is_useless(charlie, bob, ca):
    with pytest.raises(otp.CodeRefused) as refused:
        # Bob's session can never point at Charlie's code: the lookup is scoped to the ID.
        record = otp.send_one_time_code(user=charlie, purpose=OneTimeCode.Purpose.OBTAIN)
        otp.verify_one_time_code(code_id=record.pk, user=bob, entered="000000")
    assert refused.value.code == "no_code"


# --- who is refused ---------------------------------------------------------------------------


@pytest.mark.parametrize("language", ["ja", "en"])
def test_an_id_with_a_valid_certificate_is_told_to_log_in_and_renew(
    browser, charlie, django_capture_on_commit_callbacks, language
):
    certificate, _key = issue_for(charlie, now=timezone.now() - timedelta(days=100))
    supersede_older_certificates(newer=certificate, now=timezone.now() - timedelta(days=99))
    browser.cookies["django_language"] = language
    response = identify(browser, "charlie-admin", capture=django_capture_on_commit_callbacks)
    assert response.status_code == 200
    expected = {
        "ja": "重要なお知らせ画面から更新してください",
        "en": "renew it from the important-notices screen",
    }[language]
    assert expected in response.content.decode()
    # A customer who no longer has it (a new PC) is told the way out.
    assert {"ja": "失効を依頼してから", "en": "ask your contract administrator or the bank to revoke it"}[language] \
        in response.content.decode()
    assert mail.outbox == [] and not OneTimeCode.objects.exists()
    assert AuditEntry.objects.filter(action=CertificateAction.ISSUANCE_REFUSED, subject=charlie,
                                     detail__reason="has_valid_certificate").exists()


REFUSED = "ログインIDまたはパスワードが正しくないか、IDがロックまたは利用停止されています。"


def test_a_wrong_password_sends_no_code_and_never_counts_toward_the_login_lock(
    browser, charlie, django_capture_on_commit_callbacks
):
    response = identify(browser, "charlie-admin", "not-the-password", capture=django_capture_on_commit_callbacks)
    assert REFUSED in errors(response)
    assert mail.outbox == []
    charlie.refresh_from_db()
    assert (charlie.state, charlie.failed_password_attempts) == (User.State.ACTIVE, 0)
    assert AuditEntry.objects.filter(action=AuditEntry.Action.LOGIN_FAILED, subject=charlie, detail__via="obtain",
                                     detail__reason="wrong_password").exists()


def test_an_unknown_id_gets_the_same_answer_as_a_wrong_password(browser, django_capture_on_commit_callbacks):
    response = identify(browser, "nobody-here", capture=django_capture_on_commit_callbacks)
    assert REFUSED in errors(response)
    assert AuditEntry.objects.filter(action=AuditEntry.Action.LOGIN_FAILED, detail__reason="unknown_id").exists()


def test_known_unknown_locked_and_suspended_ids_get_the_same_reply_for_the_same_hashing(
    ca, behind_proxy, charlie, bob, alice, settings, django_capture_on_commit_callbacks
):
    settings.PASSWORD_HASHERS = ["tests.support.hashing.CountingHasher"]
    for user in (charlie, bob, alice):
        user.set_password(PASSWORD)
        user.save()
    User.objects.filter(pk=bob.pk).update(state=User.State.LOCKED)
    User.objects.filter(pk=alice.pk).update(state=User.State.SUSPENDED)
    replies = {}
    for login_id, password in [("charlie-admin", "not-the-password"), ("nobody-here", "not-the-password"),
                               ("bob-user", "not-the-password"), ("bob-user", PASSWORD),
                               ("alice-admin", PASSWORD)]:
        CountingHasher.hashed = 0
        response = identify(CertificateClient(None), login_id, password, capture=django_capture_on_commit_callbacks)
        replies[login_id, password] = (response.status_code, errors(response), CountingHasher.hashed)
    assert set(replies.values()) == {(200, f"<li>{REFUSED}</li>", 1)}, replies
    assert mail.outbox == []


def test_a_bank_operator_cannot_obtain_a_certificate(browser, olivia, django_capture_on_commit_callbacks):
    response = identify(browser, "olivia-operator", capture=django_capture_on_commit_callbacks)
    assert REFUSED in errors(response)
    assert mail.outbox == []


def test_the_later_steps_need_the_earlier_ones(browser):
    assert browser.get(reverse("obtain-code"))["Location"] == reverse("obtain-start")
    assert browser.get(reverse("obtain-enroll"))["Location"] == reverse("obtain-start")
    assert post_csr(browser).status_code == 403
    assert browser.get(reverse("obtain-done", args=["ABCDEF"])).status_code == 404


def test_a_session_never_sees_another_ids_certificate(browser, charlie, bob, django_capture_on_commit_callbacks):
    bobs, _key = issue_for(bob)
    identify(browser, "charlie-admin", capture=django_capture_on_commit_callbacks)
    enter_code(browser, code_from_mail(mail.outbox[0]))
    assert browser.get(reverse("obtain-done", args=[bobs.serial_number])).status_code == 404


# --- attempt limits ---------------------------------------------------------------------------


def test_an_id_gets_at_most_five_codes_an_hour(ca, behind_proxy, charlie, django_capture_on_commit_callbacks):
    for _ in range(otp.CODES_PER_HOUR):
        response = identify(CertificateClient(None), "charlie-admin", capture=django_capture_on_commit_callbacks)
        assert response.status_code == 302
    refused = identify(CertificateClient(None), "charlie-admin", capture=django_capture_on_commit_callbacks)
    assert refused.status_code == 429
    assert "確認コードの上限に達しました" in errors(refused)
    assert len(mail.outbox) == otp.CODES_PER_HOUR
    assert AuditEntry.objects.filter(action=CertificateAction.ONE_TIME_CODE_FAILED,
                                     detail__reason="too_many_codes").exists()
    with time_machine.travel(timezone.now() + timedelta(hours=1, seconds=1)):
        again = identify(CertificateClient(None), "charlie-admin", capture=django_capture_on_commit_callbacks)
    assert again.status_code == 302


def from_address(address: str) -> CertificateClient:
    """A new browser (new cookies) at this client address, as the proxy reports it."""
    return CertificateClient(None, HTTP_X_REAL_IP=address)


def test_an_ids_wrong_passwords_are_bounded_without_locking_its_login(
    ca, behind_proxy, charlie, settings, django_capture_on_commit_callbacks
):
    settings.OBTAIN_ID_ATTEMPT_LIMIT = 3
    # From three addresses, each in a new browser: neither cookies nor addresses reset an ID's budget.
    for number in range(3):
        response = identify(from_address(f"198.51.100.{number}"), "charlie-admin", "not-the-password",
                            capture=django_capture_on_commit_callbacks)
        assert response.status_code == 200 and REFUSED in errors(response)
    refused = identify(from_address("198.51.100.9"), "charlie-admin", capture=django_capture_on_commit_callbacks)
    assert refused.status_code == 429  # even the right password, once the budget is spent
    assert "このログインIDの試行回数が上限に達しました。60 分待ってから" in errors(refused)
    assert 0 < int(refused["Retry-After"]) <= 3600
    assert mail.outbox == []
    charlie.refresh_from_db()
    assert (charlie.state, charlie.failed_password_attempts) == (User.State.ACTIVE, 0)  # its login is untouched
    # An unknown ID reads the same at every step.
    for number in range(3):
        assert errors(identify(from_address(f"198.51.100.{number}"), "nobody-here", "not-the-password",
                               capture=django_capture_on_commit_callbacks)) == errors(response)
    unknown = identify(from_address("198.51.100.9"), "nobody-here", capture=django_capture_on_commit_callbacks)
    assert (unknown.status_code, errors(unknown)) == (429, errors(refused))
    with time_machine.travel(timezone.now() + timedelta(minutes=61)):
        assert identify(from_address("198.51.100.9"), "charlie-admin",
                        capture=django_capture_on_commit_callbacks).status_code == 302


def test_an_address_gets_a_bounded_number_of_wrong_passwords_whatever_the_ids(
    ca, behind_proxy, charlie, settings, django_capture_on_commit_callbacks
):
    settings.ADDRESS_ATTEMPT_LIMIT = 3
    for number in range(3):
        assert identify(from_address("203.0.113.5"), f"guess-{number}",
                        capture=django_capture_on_commit_callbacks).status_code == 200
    refused = identify(from_address("203.0.113.5"), "charlie-admin", capture=django_capture_on_commit_callbacks)
    assert refused.status_code == 429
    assert "このネットワークアドレスからの試行回数が上限に達しました" in errors(refused)
    assert AuditEntry.objects.filter(action=AuditEntry.Action.LOGIN_FAILED, subject=charlie,
                                     detail__reason="address_rate_limited", remote_addr="203.0.113.5").exists()
    assert identify(from_address("203.0.113.6"), "charlie-admin",
                    capture=django_capture_on_commit_callbacks).status_code == 302


def test_a_right_password_uses_up_no_attempt(ca, behind_proxy, charlie, settings, django_capture_on_commit_callbacks):
    settings.OBTAIN_ID_ATTEMPT_LIMIT = settings.ADDRESS_ATTEMPT_LIMIT = 2
    for _ in range(3):
        assert identify(from_address("203.0.113.7"), "charlie-admin",
                        capture=django_capture_on_commit_callbacks).status_code == 302
    for _ in range(2):
        assert identify(from_address("203.0.113.7"), "charlie-admin", "not-the-password",
                        capture=django_capture_on_commit_callbacks).status_code == 200
    assert identify(from_address("203.0.113.7"), "charlie-admin",
                    capture=django_capture_on_commit_callbacks).status_code == 429


def test_an_id_suspended_after_its_code_was_accepted_gets_no_certificate(
    browser, charlie, django_capture_on_commit_callbacks
):
    identify(browser, "charlie-admin", capture=django_capture_on_commit_callbacks)
    enter_code(browser, code_from_mail(mail.outbox[0]))
    User.objects.filter(pk=charlie.pk).update(state=User.State.SUSPENDED)
    assert post_csr(browser).status_code == 403
    assert not charlie.certificates.exists()


def test_when_the_mail_server_refuses_the_customer_is_told_and_it_is_audited(transactional_db, ca, behind_proxy,
                                                                               charlie, settings):
    """A real SMTP connection to a port where nothing listens (committed for real: transactional_db)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", closed_port, 5
    response = CertificateClient(None).post(reverse("obtain-start"), {"login_id": "charlie-admin",
                                                                       "password": PASSWORD})
    assert response.status_code == 503
    assert "確認コードのメールを送信できませんでした" in errors(response)
    assert AuditEntry.objects.filter(action=CertificateAction.ONE_TIME_CODE_FAILED, subject=charlie,
                                     detail__reason="mail_failed").exists()
