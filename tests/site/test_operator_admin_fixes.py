"""The operators' and contract administrators' admin, as operators tripped over it (issue 15)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine
from django.contrib.auth.models import Permission
from django.utils import translation

from accounts.japan_time import JAPAN, japan_day_start
from accounts.models import AuditEntry, User
from certificates.models import Certificate, CertificateAction
from certificates.services import issue_certificate
from notices.models import Reminder
from tests.support.clients import signed_in
from tests.support.pki import make_csr

pytestmark = pytest.mark.django_db

# 09:00 in Japan on 1 December 2026.
NOW = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
TODAY = date(2026, 12, 1)



def get(client, url: str, **extra):
    response = client.get(url, secure=True, **extra)
    assert response.status_code == 200, (url, response.status_code)
    return response


def listed(response) -> list[str]:
    return [str(obj) for obj in response.context["cl"].result_list]


def certificate_expiring(user: User, not_after: datetime) -> Certificate:
    """A certificate of `user` issued a year before NOW, its recorded expiry moved to `not_after`."""
    certificate = issue_certificate(
        user=user, csr=make_csr()[0], via=Certificate.Channel.OPERATOR, now=NOW - timedelta(days=300)
    ).certificate
    Certificate.objects.filter(pk=certificate.pk).update(not_after=not_after)
    certificate.refresh_from_db()
    return certificate


# --- expiry filters by Japan calendar day ---------------------------------------------------------


def test_the_30_day_filter_counts_japan_calendar_days_as_the_reminders_do(ca, operator_client, bob, alice):
    # Day -30 at 09:00 in Japan: bob's certificate expires at 23:00 on the 30th day, less than 31 x 24 h
    # but more than 30 x 24 h away. Its notices screen says 30 days left and the reminder is due today.
    certificate_expiring(bob, japan_day_start(TODAY + timedelta(days=30)) + timedelta(hours=23))
    certificate_expiring(alice, japan_day_start(TODAY + timedelta(days=31)))  # 31 days left: not yet
    assert list(Certificate.objects.due_for_reminder(30, TODAY, NOW).values_list("owner__login_id", flat=True)) \
        == ["bob-user"]

    with time_machine.travel(NOW, tick=False):
        assert listed(get(operator_client, "/operator/accounts/user/?certificate=30")) == ["bob-user"]
        certificates = listed(get(operator_client, "/operator/certificates/certificate/?state=30"))
    assert len(certificates) == 1 and "bob-user" in certificates[0]


# --- the certificate list --------------------------------------------------------------------------


def test_the_certificate_list_has_a_state_filter_and_a_contract_column(ca, operator_client, olivia, bob, charlie):
    valid = certificate_expiring(bob, NOW + timedelta(days=100))
    expired = certificate_expiring(charlie, NOW - timedelta(days=1))

    with time_machine.travel(NOW, tick=False):
        response = get(operator_client, "/operator/certificates/certificate/")
        only_valid = get(operator_client, "/operator/certificates/certificate/?state=valid")
        only_expired = get(operator_client, "/operator/certificates/certificate/?state=expired")

    content = response.content.decode()
    assert "2000001 Alpha Trading K.K." in content and "3000001 Beta Industries K.K." in content
    customers = lambda answer: [obj.pk for obj in answer.context["cl"].result_list if obj.owner != olivia]  # noqa: E731
    assert customers(only_valid) == [valid.pk]  # (olivia's own certificate, valid too, is listed beside it)
    assert customers(only_expired) == [expired.pk]


# --- a customer's ID page ---------------------------------------------------------------------------


def test_a_customers_id_page_has_no_superuser_group_or_permission_controls(operator_client, bob):
    content = get(operator_client, f"/operator/accounts/user/{bob.pk}/change/").content.decode()

    for field in ("is_superuser", "is_staff", "groups", "user_permissions"):
        assert f'name="{field}"' not in content, field
    assert 'name="email"' in content


def test_an_operators_page_names_permissions_in_the_operators_language(operator_client, olivia):
    other = User.objects.create_superuser("oscar-operator", "oscar@bank.example", "Correct-horse-2026")
    add_contract = Permission.objects.get(codename="add_contract")

    content = get(operator_client, f"/operator/accounts/user/{other.pk}/change/").content.decode()
    assert 'name="user_permissions"' in content
    assert f'<option value="{add_contract.pk}">契約: 追加</option>' in content
    assert "Can add contract" not in content

    english = get(operator_client, f"/operator/accounts/user/{other.pk}/change/", HTTP_ACCEPT_LANGUAGE="en")
    assert f'<option value="{add_contract.pk}">Contract: add</option>' in english.content.decode()


def test_a_groups_page_names_permissions_in_the_operators_language(operator_client):
    view_certificate = Permission.objects.get(codename="view_certificate")

    content = get(operator_client, "/operator/auth/group/add/").content.decode()

    assert f'<option value="{view_certificate.pk}">電子証明書: 表示</option>' in content
    assert "Can view certificate" not in content


# --- a reminder's page ------------------------------------------------------------------------------


def test_a_digests_page_has_a_translated_title_the_listed_ids_in_japan_time_and_the_e_mail(operator_client, alice):
    digest = Reminder.objects.create(
        kind=Reminder.Kind.DIGEST, recipient=alice, digest_date=TODAY, run="00000000-0000-0000-0000-000000000001",
        items=[{"login_id": "bob-user", "not_after": "2026-12-20T15:30:00+00:00"}],
    )

    with time_machine.travel(NOW, tick=False):
        content = get(operator_client, f"/operator/notices/reminder/{digest.pk}/change/").content.decode()

    assert "2026-12-01 の管理者向け一覧（alice-admin 宛）" in content  # the title, in Japanese
    assert "digest 2026" not in content
    assert "<li>bob-user — 2026年12月21日 00:30（日本時間）</li>" in content  # 15:30 UTC, in Japan time
    assert "2026-12-20T15:30:00+00:00" not in content  # not the raw JSON
    assert "alice@alpha.example" in content  # the e-mail: to, subject and text as sent
    assert "bob-user" in content.split("<pre>")[1]


def test_an_expiry_reminders_page_shows_its_e_mail_in_english_for_an_english_operator(ca, operator_client, bob):
    certificate = certificate_expiring(bob, NOW + timedelta(days=10))
    reminder = Reminder.objects.create(
        kind=Reminder.Kind.EXPIRY, recipient=bob, certificate=certificate, threshold_days=10,
        run="00000000-0000-0000-0000-000000000002",
    )

    with time_machine.travel(NOW, tick=False):
        content = get(operator_client, f"/operator/notices/reminder/{reminder.pk}/change/",
                      HTTP_ACCEPT_LANGUAGE="en").content.decode()

    assert "10-day reminder to bob-user" in content
    assert certificate.serial_number in content.split("<pre>")[1]


# --- the header ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("language", "header"), [("ja", "電子証明書ポータル 銀行運用者"),
                                                  ("en", "Certificate portal: bank operators")])
def test_the_operators_site_is_headed_with_the_portals_name(operator_client, language, header):
    content = get(operator_client, "/operator/", HTTP_ACCEPT_LANGUAGE=language).content.decode()

    assert header in content
    assert "Django" not in content


# --- the contract administrators' audit filter -----------------------------------------------------


def test_the_contract_audit_filter_lists_only_actions_about_contracts():
    with translation.override("ja"):
        labels = [str(label) for _value, label in AuditEntry.contract_actions()]
    assert "ID作成" in labels
    assert "CA作成" not in labels and "CRL公開" not in labels
    values = {value for value, _label in AuditEntry.contract_actions()}
    assert AuditEntry.Action.IDS_EXPORTED not in values
    assert CertificateAction.CERTIFICATE_REVOKED in values


def test_the_contract_sites_audit_filter_offers_no_bank_only_action(ca, behind_proxy, alice):
    response = signed_in(alice).get("/manage/accounts/auditentry/", HTTP_ACCEPT_LANGUAGE="ja")

    assert response.status_code == 200
    (action_filter,) = [spec for spec in response.context["cl"].filter_specs if spec.parameter_name == "action"]
    offered = {value for value, _label in action_filter.lookup_choices}
    assert CertificateAction.CA_CREATED not in offered and CertificateAction.CRL_PUBLISHED not in offered
    assert AuditEntry.Action.LOGIN_SUCCEEDED in offered
    content = response.content.decode()
    assert "CA作成" not in content and "CRL公開" not in content


def test_japan_day_start_is_midnight_in_japan():
    assert japan_day_start(TODAY) == datetime(2026, 12, 1, tzinfo=JAPAN)
    assert japan_day_start(TODAY).astimezone(UTC) == datetime(2026, 11, 30, 15, 0, tzinfo=UTC)
