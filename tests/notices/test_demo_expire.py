"""`manage.py demo_expire`: the renewal guidance and a reminder on a developer's machine, clock untouched."""

from __future__ import annotations

import io

import pytest
from cryptography.hazmat.primitives.serialization import pkcs12
from django.core import mail
from django.core.management import CommandError, call_command
from django.utils import timezone

from accounts.models import User
from certificates.expiry import renewal_due
from certificates.models import Certificate
from notices.models import Reminder
from tests.support.clients import issue_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo(ca, settings):
    settings.DEBUG = True
    call_command("seed_demo", stdout=io.StringIO())
    user = User.objects.get(login_id="demo-user1")
    old, _key = issue_for(user)
    return user, old


def run(*args) -> str:
    out = io.StringIO()
    call_command("demo_expire", *args, stdout=out)
    return out.getvalue()


def test_it_issues_a_certificate_that_really_expires_in_the_days_given_and_sends_the_reminder(demo, tmp_path):
    user, old = demo
    p12 = tmp_path / "demo-user1.p12"

    output = run("demo-user1", "--days", "25", "--out", str(p12))

    new = Certificate.objects.valid().get(owner=user)
    assert new.pk != old.pk
    old.refresh_from_db()
    assert old.revoked_at is not None and old.revocation_reason == "superseded"
    password = output.split("(password: ")[1].split(")")[0]
    key, certificate, chain = pkcs12.load_key_and_certificates(p12.read_bytes(), password.encode())
    assert certificate.not_valid_after_utc == new.not_after  # the file says what the portal's record says
    assert len(chain) == 1
    assert renewal_due(user).days_left in (24, 25)  # the notices screen's guidance (Japan calendar days)
    reminder = Reminder.objects.get(certificate=new, threshold_days=30)
    assert reminder.state == Reminder.State.SENT
    recipients = sorted(message.to[0] for message in mail.outbox)
    assert recipients == ["admin@demo-shoji.example", "user1@demo-shoji.example"]  # the reminder and the digest
    assert "demo-user1" in mail.outbox[0].body + mail.outbox[1].body
    assert new.not_after - timezone.now() < timezone.timedelta(days=25)


def test_it_refuses_outside_debug_mode(demo, settings):
    settings.DEBUG = False

    with pytest.raises(CommandError, match="debug mode"):
        run("demo-user1")
    assert Certificate.objects.count() == 1


def test_it_refuses_an_id_outside_the_demo_contract_and_an_unreasonable_number_of_days(demo, bob):
    with pytest.raises(CommandError, match="not an ID of the demo contract"):
        run(bob.login_id)
    with pytest.raises(CommandError, match="between 1 and 60"):
        run("demo-user1", "--days", "0")
    assert Certificate.objects.count() == 1
