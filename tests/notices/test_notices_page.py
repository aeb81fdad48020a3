"""The important-notices screen (重要なお知らせ): renewal guidance from 30 days before expiry, the bank's notices."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.conf import settings
from django.urls import reverse

from certificates.expiry import renewal_due
from notices.models import Notice
from tests.support.clients import CertificateClient, issue_for
from tests.support.personas import PASSWORD

pytestmark = [pytest.mark.embedded, pytest.mark.usefixtures("ca", "behind_proxy")]


JST = ZoneInfo("Asia/Tokyo")
# 20:00 UTC is 05:00 the next day in Japan: the expiry shown must be the Japanese date.
ISSUED = datetime(2026, 3, 10, 20, 0, tzinfo=UTC)
LINK = '<a href="{}">電子証明書の更新はこちら</a>'
LINK_EN = '<a href="{}">Renew your electronic certificate here (電子証明書の更新はこちら)</a>'


@pytest.fixture
def certificate(alice):
    certificate, _key = issue_for(alice, now=ISSUED)
    return certificate


def notices_page(certificate, *, at: datetime, language: str = "ja") -> str:
    with time_machine.travel(at, tick=False):
        client = CertificateClient(certificate)
        client.cookies[settings.LANGUAGE_COOKIE_NAME] = language
        response = client.post(reverse("login"), {"login_id": certificate.owner.login_id, "password": PASSWORD})
        assert response["Location"] == reverse("important-notices")
        page = client.get(reverse("important-notices"))
        assert page.status_code == 200
        return page.content.decode()


class TestRenewalGuidance:
    def test_it_appears_30_days_before_expiry(self, certificate):
        html = notices_page(certificate, at=certificate.not_after - timedelta(days=30))
        assert LINK.format(reverse("renewal-prepare")) in html
        assert "残り30日" in html

    def test_it_does_not_appear_31_days_before_expiry(self, certificate):
        html = notices_page(certificate, at=certificate.not_after - timedelta(days=31))
        assert "電子証明書の更新はこちら" not in html
        assert "重要なお知らせ" in html

    def test_it_shows_the_expiry_in_japan_time(self, certificate):
        expiry = certificate.not_after.astimezone(JST)
        assert (expiry.day, expiry.hour) == (11, 4)  # 2027-03-10 19:59:59 UTC
        html = notices_page(certificate, at=certificate.not_after - timedelta(days=3))
        assert "有効期限：<strong>2027年3月11日 04:59（日本時間）</strong>" in html
        assert "残り" + "1日" not in html and "残り3日" in html

    def test_it_shows_the_expiry_in_japan_time_in_english(self, certificate):
        html = notices_page(certificate, at=certificate.not_after - timedelta(days=10), language="en")
        assert "Expires on: <strong>11 March 2027, 04:59 (Japan time)</strong>" in html
        assert "Days left: 10" in html
        # In English with the guide's label beside it, as the English e-mails name it.
        assert LINK_EN.format(reverse("renewal-prepare")) in html

    def test_on_the_expiry_date_it_says_today(self, certificate):
        html = notices_page(certificate, at=certificate.not_after - timedelta(hours=2))
        assert "本日が有効期限です。" in html

    def test_it_disappears_once_a_renewed_certificate_is_issued(self, certificate, alice):
        at = certificate.not_after - timedelta(days=20)
        with time_machine.travel(at, tick=False):
            CertificateClient(certificate).post(reverse("login"), {"login_id": alice.login_id, "password": PASSWORD})
            issue_for(alice, now=at)
        html = notices_page(certificate, at=at + timedelta(minutes=5))
        assert 'class="notice-box renewal-guidance"' not in html
        # Still logged in with the older one: told to restart the browser and use the new one ...
        newer = re.search(r'<section class="notice-box newer-certificate">(.*?)</section>', html, re.S).group(1)
        assert "新しい電子証明書" in newer
        # ... or, had its file not been saved, to renew again.
        assert "新しい電子証明書のファイルを保存していない場合" in newer
        assert LINK.format(reverse("renewal-prepare")) in newer


class TestRenewalWindowFunction:
    """Calendar days in Japan time, as the customer reads the date."""

    def test_the_window_opens_at_midnight_japan_time_30_days_before_the_expiry_date(self, certificate, alice):
        expiry_date = certificate.not_after.astimezone(JST).date()
        opening = datetime.combine(expiry_date - timedelta(days=30), datetime.min.time(), tzinfo=JST)
        assert renewal_due(alice, now=opening).days_left == 30
        assert renewal_due(alice, now=opening - timedelta(seconds=1)) is None

    def test_an_expired_certificate_has_no_guidance(self, certificate, alice):
        assert renewal_due(alice, now=certificate.not_after) is None

    def test_a_revoked_certificate_has_no_guidance(self, certificate, alice):
        from certificates.services import revoke_certificate

        revoke_certificate(certificate=certificate, reason="key_compromise", by=None)
        assert renewal_due(alice, now=certificate.not_after - timedelta(days=5)) is None

    def test_another_ids_certificate_does_not_count(self, certificate, bob):
        assert renewal_due(bob, now=certificate.not_after - timedelta(days=5)) is None


class TestBankNotices:
    @pytest.fixture
    def notices(self, db):
        now = certificate_now = ISSUED + timedelta(days=100)
        Notice.objects.create(
            title_ja="システムメンテナンスのお知らせ", title_en="Scheduled maintenance",
            body_ja="4月1日 2:00～5:00 はご利用いただけません。", body_en="Unavailable on April 1, 2:00-5:00.",
            published_from=now - timedelta(days=1),
        )
        Notice.objects.create(
            title_ja="終了したお知らせ", title_en="An ended notice", body_ja="本文", body_en="body",
            published_from=now - timedelta(days=10), published_until=now - timedelta(days=2),
        )
        Notice.objects.create(
            title_ja="予定のお知らせ", title_en="A future notice", body_ja="本文", body_en="body",
            published_from=now + timedelta(days=2),
        )
        return certificate_now

    def test_published_notices_are_listed_in_japanese(self, certificate, notices):
        html = notices_page(certificate, at=notices)
        assert "システムメンテナンスのお知らせ" in html
        assert "4月1日 2:00～5:00 はご利用いただけません。" in html
        assert "終了したお知らせ" not in html and "予定のお知らせ" not in html
        assert "Scheduled maintenance" not in html

    def test_published_notices_are_listed_in_english(self, certificate, notices):
        html = notices_page(certificate, at=notices, language="en")
        assert "Scheduled maintenance" in html
        assert "Unavailable on April 1, 2:00-5:00." in html
        assert "An ended notice" not in html and "A future notice" not in html
        assert "システムメンテナンスのお知らせ" not in html

    def test_a_notice_is_shown_as_text_never_as_markup(self, certificate):
        now = ISSUED + timedelta(days=1)
        Notice.objects.create(
            title_ja="<script>alert(1)</script>", title_en="x", body_ja="<b>太字</b>\n二行目", body_en="x",
            published_from=now - timedelta(days=1),
        )
        html = notices_page(certificate, at=now)
        assert "<script>alert(1)</script>" not in html and "<b>太字</b>" not in html
        assert "<h3>&lt;script&gt;alert(1)&lt;/script&gt;</h3>" in html
        assert "<p>&lt;b&gt;太字&lt;/b&gt;<br>二行目</p>" in html

    def test_the_expiry_is_in_bold_and_the_days_are_counted(self, certificate):
        html = notices_page(certificate, at=certificate.not_after - timedelta(days=3), language="en")
        assert re.search(r"Expires on: <strong>\d+ \w+ \d{4}, \d\d:\d\d \(Japan time\)</strong>", html)
        assert "Days left: 3" in html

    def test_without_notices_it_says_so(self, certificate):
        html = notices_page(certificate, at=ISSUED + timedelta(days=1), language="en")
        assert "There are no notices at the moment." in html


def test_the_screen_needs_a_login(db):
    response = CertificateClient(None).get(reverse("important-notices"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
