"""Each app owns its audit actions: adding one never migrates accounts, and the admin sites still name them."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.db import models
from django.utils import translation

import accounts.models
from accounts.models import AuditEntry, audit_action_choices, register_audit_actions
from certificates.models import CertificateAction
from notices.models import NoticeAction
from tests.support.clients import operator_signed_in


class NewCertificateAction(models.TextChoices):
    """An action the certificates app might add one day."""

    CERTIFICATE_HELD = "certificate_held", "certificate held"


@pytest.fixture
def registry(monkeypatch):
    """The registered actions as the apps left them, restored after the test."""
    monkeypatch.setattr(accounts.models, "_AUDIT_ACTIONS", dict(accounts.models._AUDIT_ACTIONS))
    monkeypatch.setattr(accounts.models, "_BANK_ONLY_ACTIONS", set(accounts.models._BANK_ONLY_ACTIONS))


def test_the_action_field_names_the_registry_not_a_list_of_actions():
    _name, _path, _args, kwargs = AuditEntry._meta.get_field("action").deconstruct()
    assert kwargs["choices"] is audit_action_choices


@pytest.mark.django_db  # makemigrations checks the applied history
def test_an_action_added_in_certificates_makes_no_accounts_migration(registry):
    register_audit_actions(NewCertificateAction)

    assert AuditEntry(action=NewCertificateAction.CERTIFICATE_HELD).get_action_display() == "certificate held"
    call_command("makemigrations", "accounts", check=True, dry_run=True, verbosity=0)  # SystemExit(1) if one is due


def test_a_bank_only_action_of_a_new_app_stays_off_the_contract_filter(registry):
    register_audit_actions(NewCertificateAction, bank_only={NewCertificateAction.CERTIFICATE_HELD})

    assert NewCertificateAction.CERTIFICATE_HELD in dict(audit_action_choices())
    assert NewCertificateAction.CERTIFICATE_HELD not in dict(AuditEntry.contract_actions())


def test_every_apps_actions_are_registered_in_the_apps_order():
    values = [value for value, _label in audit_action_choices()]
    assert values == [*AuditEntry.Action.values, *CertificateAction.values, *NoticeAction.values]


@pytest.mark.parametrize(("language", "issued", "resent"), [
    ("ja", "電子証明書発行", "リマインダー再送"),
    ("en", "certificate issued", "reminder resent"),
])
def test_an_entry_is_named_in_the_readers_language(language, issued, resent):
    with translation.override(language):
        assert AuditEntry(action=CertificateAction.CERTIFICATE_ISSUED).get_action_display() == issued
        assert AuditEntry(action=NoticeAction.REMINDER_RESENT).get_action_display() == resent


@pytest.mark.django_db
@pytest.mark.parametrize(("language", "issued", "exported"), [
    ("ja", "電子証明書発行", "ID一覧の書き出し"),
    ("en", "certificate issued", "IDs exported"),
])
def test_the_operators_audit_log_filters_and_names_every_apps_actions(
    behind_proxy, ca, olivia, bob, language, issued, exported
):
    AuditEntry.objects.create(action=CertificateAction.CERTIFICATE_ISSUED, subject=bob)
    AuditEntry.objects.create(action=AuditEntry.Action.IDS_EXPORTED, actor=olivia)
    client = operator_signed_in(olivia)

    response = client.get("/operator/accounts/auditentry/?action__exact=certificate_issued", secure=True,
                          HTTP_ACCEPT_LANGUAGE=language)

    assert response.status_code == 200
    listed = response.context["cl"].result_list
    assert {entry.action for entry in listed} == {CertificateAction.CERTIFICATE_ISSUED}  # bob's and olivia's own
    assert bob in {entry.subject for entry in listed}
    content = response.content.decode()
    # The filter offers every app's actions by name (the list itself shows only certificate_issued).
    assert f'<a href="?action__exact=ids_exported">{exported}</a>' in content
    assert f'<a href="?action__exact=certificate_issued">{issued}</a>' in content
    assert f'<td class="field-action">{issued}</td>' in content
