"""Certificate-and-password login, view level: the certificate arrives the way nginx passes it.

The real TLS handshakes are in test_tls_login.py (gunicorn's own TLS) and site/test_nginx.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest
import time_machine
from cryptography.hazmat.primitives import serialization
from django.conf import settings
from django.http import HttpResponse
from django.test import Client
from django.urls import reverse

from accounts.models import AuditEntry, User
from accounts.services import suspend_id
from certificates.client_cert import SESSION_CERTIFICATE_KEY
from certificates.models import CertificateAction
from certificates.services import revoke_certificate
from tests.support.clients import PROXY_ADDRESS, CertificateClient, form_errors, issue_for, post_login
from tests.support.hashing import CountingHasher
from tests.support.personas import PASSWORD
from tests.support.pki import self_signed_certificate

pytestmark = [pytest.mark.embedded, pytest.mark.usefixtures("ca", "behind_proxy")]



def self_signed_headers() -> dict[str, str]:
    cert, _key = self_signed_certificate("alice-admin")
    return {
        "REMOTE_ADDR": PROXY_ADDRESS,
        "HTTP_X_SSL_CLIENT_CERT": quote(cert.public_bytes(serialization.Encoding.PEM).decode(), safe=""),
        "HTTP_X_SSL_CLIENT_VERIFY": "SUCCESS",
        "HTTP_X_FORWARDED_PROTO": "https",
    }


def failures(user: User) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(subject=user, action=AuditEntry.Action.LOGIN_FAILED))


class TestLoginSucceeds:
    def test_a_password_hash_upgraded_at_login_keeps_the_session_it_opens(self, alice, settings):
        certificate, _key = issue_for(alice)
        settings.PASSWORD_HASHERS = ["tests.support.hashing.FewIterationsPBKDF2", *settings.PASSWORD_HASHERS]
        client = CertificateClient(certificate)
        assert post_login(client, alice).status_code == 302
        alice.refresh_from_db()
        assert alice.password.startswith("pbkdf2_sha256$1000$")  # re-hashed by the login
        assert client.get(reverse("important-notices")).status_code == 200


    def test_it_logs_in_with_the_ids_own_certificate_and_password(self, alice):
        certificate, _key = issue_for(alice)
        client = CertificateClient(certificate)
        response = post_login(client, alice)
        assert response.status_code == 302
        assert response["Location"] == reverse("important-notices")
        assert client.session[SESSION_CERTIFICATE_KEY] == certificate.fingerprint_sha256
        assert int(client.session["_auth_user_id"]) == alice.pk
        entry = AuditEntry.objects.get(action=AuditEntry.Action.LOGIN_SUCCEEDED)
        assert (entry.subject, entry.certificate_serial) == (alice, certificate.serial_number)

    def test_the_important_notices_screen_follows_the_login(self, alice):
        certificate, _key = issue_for(alice)
        client = CertificateClient(certificate)
        response = post_login(client, alice, follow=True)
        assert response.redirect_chain[-1][0] == reverse("important-notices")
        assert "重要なお知らせ" in response.content.decode()

    def test_the_first_login_with_a_renewed_certificate_supersedes_the_older_one(self, alice):
        old, _ = issue_for(alice, now=datetime.now(UTC) - timedelta(days=340))
        assert post_login(CertificateClient(old), alice).status_code == 302
        new, _ = issue_for(alice)
        assert post_login(CertificateClient(old), alice).status_code == 302  # the old one still works until then
        old.refresh_from_db()
        assert old.revoked_at is None
        assert post_login(CertificateClient(new), alice).status_code == 302
        old.refresh_from_db()
        assert old.revocation_reason == "superseded"
        response = post_login(CertificateClient(old), alice)
        assert response.status_code == 200
        assert "no longer valid" in form_errors(response) or "有効ではありません" in form_errors(response)

    def test_a_successful_login_clears_the_count_of_failed_passwords(self, alice):
        certificate, _key = issue_for(alice)
        client = CertificateClient(certificate)
        post_login(client, alice, "wrong-password-1")
        alice.refresh_from_db()
        assert alice.failed_password_attempts == 1
        post_login(client, alice)
        alice.refresh_from_db()
        assert alice.failed_password_attempts == 0


class TestLoginRefuses:
    def test_it_refuses_a_login_without_a_certificate(self, alice):
        issue_for(alice)
        client = CertificateClient(None, HTTP_ACCEPT_LANGUAGE="en")
        response = post_login(client, alice)
        assert response.status_code == 200
        assert "No electronic certificate was presented" in form_errors(response)
        assert "_auth_user_id" not in client.session
        assert [entry.detail["reason"] for entry in failures(alice)] == ["certificate_missing"]
        alice.refresh_from_db()
        assert alice.failed_password_attempts == 0

    def test_it_refuses_a_certificate_the_portal_did_not_issue(self, alice):
        issue_for(alice)
        client = Client(**self_signed_headers(), HTTP_ACCEPT_LANGUAGE="en")
        response = post_login(client, alice)
        assert "not issued by this service" in form_errors(response)
        assert "_auth_user_id" not in client.session
        assert [entry.detail["reason"] for entry in failures(alice)] == ["certificate_foreign"]

    def test_it_refuses_the_certificate_of_another_id(self, alice, bob):
        issue_for(alice)
        bobs, _key = issue_for(bob)
        client = CertificateClient(bobs, HTTP_ACCEPT_LANGUAGE="en")
        response = post_login(client, alice)
        assert "is not the one of the electronic certificate presented" in form_errors(response)
        assert "_auth_user_id" not in client.session
        assert failures(alice)[0].certificate_serial == bobs.serial_number

    def test_it_refuses_the_certificate_of_an_id_of_another_contract(self, alice, charlie):
        charlies, _key = issue_for(charlie)
        response = post_login(CertificateClient(charlies, HTTP_ACCEPT_LANGUAGE="en"), alice)
        assert "is not the one of the electronic certificate presented" in form_errors(response)

    def test_it_refuses_a_wrong_password_and_counts_it(self, alice):
        certificate, _key = issue_for(alice)
        client = CertificateClient(certificate, HTTP_ACCEPT_LANGUAGE="en")
        response = post_login(client, alice, "not-the-password")
        assert "The login ID or password is incorrect." in form_errors(response)
        assert "_auth_user_id" not in client.session
        alice.refresh_from_db()
        assert alice.failed_password_attempts == 1
        assert failures(alice)[0].detail["reason"] == "wrong_password"

    def test_a_wrong_password_without_the_certificate_is_not_counted_against_the_id(self, alice):
        issue_for(alice)
        response = post_login(CertificateClient(None, HTTP_ACCEPT_LANGUAGE="en"), alice, "not-the-password")
        # The certificate is reported, whatever the password: no password oracle without the certificate.
        assert "No electronic certificate was presented" in form_errors(response)
        alice.refresh_from_db()
        assert alice.failed_password_attempts == 0

    def test_attempts_without_the_certificate_never_lock_the_id_and_are_bounded_per_address(self, alice, settings):
        certificate, _key = issue_for(alice)
        settings.LOCKOUT_THRESHOLD, settings.ADDRESS_ATTEMPT_LIMIT = 2, 4
        attacker = CertificateClient(None, HTTP_ACCEPT_LANGUAGE="en", HTTP_X_REAL_IP="203.0.113.66")
        for password in ("guess-1", "guess-2", "guess-3", PASSWORD):
            response = post_login(attacker, alice, password)
            assert response.status_code == 200 and "No electronic certificate was presented" in form_errors(response)
        refused = post_login(attacker, alice, "guess-4")
        assert refused.status_code == 429
        assert "Too many attempts from this network address. Please wait 15 minutes" in form_errors(refused)
        assert 0 < int(refused["Retry-After"]) <= 15 * 60
        alice.refresh_from_db()
        assert (alice.state, alice.failed_password_attempts) == (User.State.ACTIVE, 0)
        assert not AuditEntry.objects.filter(action=AuditEntry.Action.ID_LOCKED).exists()
        assert [entry.detail["reason"] for entry in failures(alice)][0] == "address_rate_limited"
        # Another address is not affected, and the holder of the certificate logs in even from that one.
        other = CertificateClient(None, HTTP_ACCEPT_LANGUAGE="en", HTTP_X_REAL_IP="203.0.113.67")
        assert post_login(other, alice).status_code == 200
        assert post_login(CertificateClient(certificate, HTTP_X_REAL_IP="203.0.113.66"), alice).status_code == 302

    def test_the_threshold_th_wrong_password_locks_the_id(self, alice, settings):
        certificate, _key = issue_for(alice)
        client = CertificateClient(certificate, HTTP_ACCEPT_LANGUAGE="en")
        for _ in range(settings.LOCKOUT_THRESHOLD - 1):
            assert "incorrect" in form_errors(post_login(client, alice, "not-the-password"))
        response = post_login(client, alice, "not-the-password")
        assert "locked" in form_errors(response)
        alice.refresh_from_db()
        assert alice.state == User.State.LOCKED
        # Even the right password and certificate are refused now.
        response = post_login(client, alice)
        assert "locked" in form_errors(response)
        assert "_auth_user_id" not in client.session

    def test_it_refuses_a_suspended_id(self, alice):
        certificate, _key = issue_for(alice)
        suspend_id(user=alice, by=None)
        client = CertificateClient(certificate, HTTP_ACCEPT_LANGUAGE="en")
        response = post_login(client, alice)
        assert "suspended" in form_errors(response)
        assert "_auth_user_id" not in client.session

    def test_an_unknown_login_id_with_a_valid_certificate_is_told_they_do_not_match(self, alice):
        certificate, _key = issue_for(alice)
        client = CertificateClient(certificate, HTTP_ACCEPT_LANGUAGE="en")
        response = client.post(reverse("login"), {"login_id": "nobody-here", "password": PASSWORD})
        assert "is not the one of the electronic certificate presented" in form_errors(response)
        entry = AuditEntry.objects.get(action=AuditEntry.Action.LOGIN_FAILED)
        assert entry.detail == {"reason": "certificate_of_another_id", "login_id": "nobody-here"}

    def test_it_refuses_a_bank_operator_on_the_customers_login(self, alice, olivia):
        certificate, _key = issue_for(alice)
        response = post_login(CertificateClient(certificate, HTTP_ACCEPT_LANGUAGE="en"), olivia)
        assert "is not the one of the electronic certificate presented" in form_errors(response)
        olivia.refresh_from_db()
        assert olivia.failed_password_attempts == 0

    def test_it_refuses_a_revoked_certificate(self, alice):
        certificate, _key = issue_for(alice)
        revoke_certificate(certificate=certificate, reason="key_compromise", by=None)
        response = post_login(CertificateClient(certificate, HTTP_ACCEPT_LANGUAGE="en"), alice)
        assert "no longer valid" in form_errors(response)

    def test_it_refuses_an_expired_certificate(self, alice):
        certificate, _key = issue_for(alice, now=datetime.now(UTC) - timedelta(days=400))
        response = post_login(CertificateClient(certificate, HTTP_ACCEPT_LANGUAGE="en"), alice)
        assert "has expired" in form_errors(response)
        assert "電子証明書取得" in form_errors(response)

    def test_a_failed_verification_at_the_proxy_counts_as_no_certificate(self, alice):
        certificate, _key = issue_for(alice)
        client = CertificateClient(certificate, HTTP_X_SSL_CLIENT_VERIFY="FAILED:certificate revoked",
                                   HTTP_ACCEPT_LANGUAGE="en")
        assert "No electronic certificate was presented" in form_errors(post_login(client, alice))


class TestNothingIsLearntWithoutTheCertificate:
    """Known, unknown, locked and suspended IDs get the same reply for the same (no) hashing."""

    @pytest.mark.parametrize("presented", ["none", "foreign", "expired", "revoked", "another_ids"])
    def test_the_reply_does_not_depend_on_the_id(self, alice, bob, charlie, settings, presented):
        settings.PASSWORD_HASHERS = ["tests.support.hashing.CountingHasher"]
        settings.LOCKOUT_THRESHOLD = 1
        for user in (alice, bob, charlie):
            user.set_password(PASSWORD)
            user.save()
        certificate = issue_for(charlie, now=datetime.now(UTC) - timedelta(days=400))[0] if presented == "expired" \
            else issue_for(charlie)[0]
        if presented == "revoked":
            revoke_certificate(certificate=certificate, reason="key_compromise", by=None)
        headers = {
            "none": lambda: CertificateClient(None).defaults,
            "foreign": self_signed_headers,
        }.get(presented, lambda: CertificateClient(certificate).defaults)()
        User.objects.filter(pk=bob.pk).update(state=User.State.LOCKED)
        replies = {}
        for login_id in ("alice-admin", "nobody-here", "bob-user"):
            for password in (PASSWORD, "not-the-password"):
                CountingHasher.hashed = 0
                response = Client(**headers).post(reverse("login"), {"login_id": login_id, "password": password})
                replies[login_id, password] = (response.status_code, form_errors(response), CountingHasher.hashed)
        assert len(set(replies.values())) == 1, replies
        status, _text, hashed = next(iter(replies.values()))
        assert (status, hashed) == (200, 0)
        alice.refresh_from_db()
        assert (alice.state, alice.failed_password_attempts) == (User.State.ACTIVE, 0)


class TestMessagesInBothLanguages:
    def test_the_refusal_is_in_japanese_by_default(self, alice):
        issue_for(alice)
        response = post_login(CertificateClient(None), alice)
        assert "電子証明書が提示されませんでした" in form_errors(response)

    def test_the_refusal_is_in_english_when_chosen(self, alice):
        issue_for(alice)
        client = CertificateClient(None)
        client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
        assert "No electronic certificate was presented" in form_errors(post_login(client, alice))


class TestLoginScreen:
    @pytest.mark.parametrize("language", ["ja", "en"])
    def test_it_links_to_obtaining_a_certificate_in_both_languages(self, language):
        client = CertificateClient(None)
        client.cookies[settings.LANGUAGE_COOKIE_NAME] = language
        html = client.get(reverse("login")).content.decode()
        label = {"ja": "電子証明書取得", "en": "Obtain certificate (電子証明書取得)"}[language]
        assert f'<a href="{reverse("obtain-start")}">{label}</a>' in html
        assert f'<html lang="{language}">' in html

    def test_a_logged_in_customer_opening_the_login_screen_gets_the_important_notices(self, alice):
        certificate, _key = issue_for(alice)
        client = CertificateClient(certificate)
        post_login(client, alice)
        assert client.get(reverse("login"))["Location"] == reverse("important-notices")

    def test_the_language_switch_is_remembered_in_a_cookie(self):
        client = CertificateClient(None)
        response = client.post(reverse("set_language"), {"language": "en", "next": reverse("login")})
        assert response.cookies[settings.LANGUAGE_COOKIE_NAME].value == "en"
        assert "Log in" in client.get(reverse("login")).content.decode()


class TestSessionBinding:
    def test_the_session_goes_on_with_the_same_certificate(self, alice):
        certificate, _key = issue_for(alice)
        client = CertificateClient(certificate)
        post_login(client, alice)
        assert client.get(reverse("important-notices")).status_code == 200

    def test_a_request_with_another_certificate_is_logged_out(self, alice, bob):
        certificate, _key = issue_for(alice)
        bobs, _key = issue_for(bob)
        client = CertificateClient(certificate)
        post_login(client, alice)
        client.defaults.update(CertificateClient(bobs).defaults)
        response = client.get(reverse("important-notices"))
        assert response.status_code == 302
        assert response["Location"] == reverse("login")
        assert "_auth_user_id" not in client.session
        entry = AuditEntry.objects.get(action=AuditEntry.Action.LOGOUT)
        assert (entry.subject, entry.detail["reason"]) == (alice, "certificate_changed")
        assert "この接続の電子証明書がログイン時のものと異なるため、ログアウトしました。" in client.get(
            response["Location"]
        ).content.decode()

    def test_a_request_without_a_certificate_is_logged_out(self, alice):
        certificate, _key = issue_for(alice)
        client = CertificateClient(certificate)
        post_login(client, alice)
        client.defaults.update(CertificateClient(None).defaults)
        client.defaults.pop("HTTP_X_SSL_CLIENT_CERT")
        response = client.get(reverse("important-notices"))
        assert response["Location"] == reverse("login")
        assert client.get(reverse("important-notices"))["Location"].startswith(reverse("login"))

    def test_a_session_whose_certificate_was_revoked_meanwhile_ends(self, alice):
        certificate, _key = issue_for(alice)
        client = CertificateClient(certificate)
        post_login(client, alice)
        revoke_certificate(certificate=certificate, reason="key_compromise", by=None)
        response = client.get(reverse("important-notices"))
        assert response["Location"] == reverse("login")
        assert "ログインに使用した電子証明書が有効ではなくなった" in client.get(response["Location"]).content.decode()

    def test_the_session_ends_after_the_idle_timeout(self, alice):
        certificate, _key = issue_for(alice)
        client = CertificateClient(certificate)
        with time_machine.travel(datetime.now(UTC), tick=False) as traveller:
            post_login(client, alice)
            traveller.shift(timedelta(seconds=settings.SESSION_COOKIE_AGE - 60))
            assert client.get(reverse("important-notices")).status_code == 200  # activity renews it
            traveller.shift(timedelta(seconds=settings.SESSION_COOKIE_AGE + 1))
            assert client.get(reverse("important-notices"))["Location"].startswith(reverse("login"))

    def test_the_idle_timeout_is_fifteen_minutes_by_default(self):
        assert settings.SESSION_COOKIE_AGE == 15 * 60
        assert settings.SESSION_REFRESH_SECONDS <= 60
        assert "accounts.idle.IdleTimeoutMiddleware" in settings.MIDDLEWARE

    def test_logout_ends_the_session_and_is_audited(self, alice):
        certificate, _key = issue_for(alice)
        client = CertificateClient(certificate)
        post_login(client, alice)
        response = client.post(reverse("logout"))
        assert response["Location"] == reverse("login")
        assert "_auth_user_id" not in client.session
        assert AuditEntry.objects.filter(action=AuditEntry.Action.LOGOUT, subject=alice).exists()


class TestProxyHeaders:
    def test_a_certificate_header_from_an_untrusted_address_is_refused_and_audited(self, alice):
        certificate, _key = issue_for(alice)
        client = CertificateClient(certificate, REMOTE_ADDR="192.0.2.10")
        response = post_login(client, alice)
        assert response.status_code == 400
        assert "_auth_user_id" not in client.session
        entry = AuditEntry.objects.get(action=CertificateAction.UNTRUSTED_PROXY_HEADER)
        assert entry.remote_addr == "192.0.2.10"
        assert not AuditEntry.objects.filter(action=AuditEntry.Action.LOGIN_SUCCEEDED).exists()

    def test_an_unreadable_certificate_from_the_proxy_is_refused_every_time_and_a_good_one_still_read(self, alice):
        certificate, _key = issue_for(alice)
        pem = certificate.x509.public_bytes(serialization.Encoding.PEM).decode()
        broken = pem.replace(pem.splitlines()[5], "A" * 64)  # a corrupted line of the certificate's body
        for _ in range(2):  # a certificate is parsed once per process; a failure is never remembered as a success
            answer = CertificateClient(certificate, HTTP_X_SSL_CLIENT_CERT=quote(broken, safe="")).get(reverse("login"))
            assert answer.status_code == 400
            assert answer.content == b"Unreadable client certificate."
        client = CertificateClient(certificate)
        assert post_login(client, alice).status_code == 302
        assert client.get(reverse("important-notices")).status_code == 200
        revoke_certificate(certificate=certificate, reason="key_compromise", by=None)  # read on every request
        assert client.get(reverse("important-notices")).status_code == 302

    def test_no_address_is_trusted_unless_configured(self, alice, settings):
        settings.TRUSTED_PROXY_ADDRESSES = []
        certificate, _key = issue_for(alice)
        assert post_login(CertificateClient(certificate), alice).status_code == 400

    def test_only_the_proxy_may_say_the_connection_was_https(self, rf):
        from certificates.client_cert import ClientCertificateMiddleware

        seen = {}

        def view(request):
            seen[request.META["REMOTE_ADDR"]] = request.is_secure()
            return HttpResponse()

        middleware = ClientCertificateMiddleware(view)
        middleware(rf.get("/", REMOTE_ADDR=PROXY_ADDRESS, HTTP_X_FORWARDED_PROTO="https"))
        middleware(rf.get("/", REMOTE_ADDR="192.0.2.10", HTTP_X_FORWARDED_PROTO="https"))
        assert seen == {PROXY_ADDRESS: True, "192.0.2.10": False}

    def test_the_customers_address_from_the_proxy_is_audited(self, alice):
        certificate, _key = issue_for(alice)
        post_login(CertificateClient(certificate, HTTP_X_REAL_IP="198.51.100.7"), alice)
        assert AuditEntry.objects.get(action=AuditEntry.Action.LOGIN_SUCCEEDED).remote_addr == "198.51.100.7"
