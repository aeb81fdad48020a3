"""anymail's Postmark tracking webhook updates a reminder's state, and is refused without the secret."""

from __future__ import annotations

import pytest
from django.test import Client

from notices.models import Reminder, ReminderAttempt
from tests.support.clients import issue_for
from tests.support.esp_standin import WEBHOOK_SECRET, delivery, post_event


@pytest.fixture
def sent_reminder(ca, bob) -> Reminder:
    """A reminder Postmark accepted with message id 'pm-1' (recorded as the sending task does)."""
    certificate, _key = issue_for(bob)
    reminder = Reminder.objects.create(
        kind=Reminder.Kind.EXPIRY, recipient=bob, certificate=certificate, threshold_days=30,
        run="00000000-0000-0000-0000-000000000001", state=Reminder.State.SENT, message_id="pm-1", attempts=1,
    )
    reminder.tries.create(number=1, started_at=reminder.queued_at, outcome=ReminderAttempt.Outcome.ACCEPTED,
                          message_id="pm-1")
    return reminder


@pytest.fixture
def client():
    """The provider calls without a CSRF token, as a real one does."""
    return Client(enforce_csrf_checks=True)


@pytest.fixture
def webhook_secret(settings):
    settings.ANYMAIL = {**settings.ANYMAIL, "WEBHOOK_SECRET": WEBHOOK_SECRET}


def bounce(message_id: str = "pm-1") -> dict:
    return {
        "RecordType": "Bounce", "ID": 42, "Type": "HardBounce", "TypeCode": 1, "MessageID": message_id,
        "Email": "bob@alpha.example", "BouncedAt": "2026-12-01T09:01:00Z", "Description": "The mailbox does not exist",
        "Details": "smtp;550 5.1.1 user unknown", "Tag": "expiry-30", "Inactive": True, "CanActivate": True,
        "ServerID": 1, "MessageStream": "outbound", "Metadata": {"reminder_id": "1"},
    }


def test_a_delivery_event_marks_the_reminder_delivered(client, sent_reminder, webhook_secret):
    assert post_event(client, delivery()).status_code == 200
    sent_reminder.refresh_from_db()
    assert sent_reminder.state == Reminder.State.DELIVERED
    assert sent_reminder.tracked_at is not None


def test_a_bounce_after_delivery_marks_the_reminder_bounced_with_the_reason(client, sent_reminder, webhook_secret):
    post_event(client, delivery())
    assert post_event(client, bounce()).status_code == 200
    sent_reminder.refresh_from_db()
    assert sent_reminder.state == Reminder.State.BOUNCED
    assert "mailbox does not exist" in sent_reminder.last_error
    # A late delivery event does not hide the bounce.
    post_event(client, delivery())
    sent_reminder.refresh_from_db()
    assert sent_reminder.state == Reminder.State.BOUNCED


def test_an_event_for_an_unknown_message_changes_nothing(client, sent_reminder, webhook_secret):
    assert post_event(client, delivery("pm-unknown")).status_code == 200
    sent_reminder.refresh_from_db()
    assert sent_reminder.state == Reminder.State.SENT


def test_a_call_without_the_secret_is_refused(client, sent_reminder, webhook_secret):
    assert post_event(client, delivery(), auth=None).status_code == 400
    assert post_event(client, delivery(), auth="hook-user:wrong").status_code == 400
    sent_reminder.refresh_from_db()
    assert sent_reminder.state == Reminder.State.SENT


def test_the_webhook_is_refused_while_no_secret_is_configured(client, sent_reminder, settings):
    settings.ANYMAIL = {key: value for key, value in settings.ANYMAIL.items() if key != "WEBHOOK_SECRET"}
    assert post_event(client, delivery()).status_code == 403
    sent_reminder.refresh_from_db()
    assert sent_reminder.state == Reminder.State.SENT


def test_an_event_for_an_earlier_attempts_message_is_applied(client, sent_reminder, webhook_secret):
    # A first copy went out without an answer in time; the second was accepted as pm-2.
    sent_reminder.tries.filter(number=1).update(outcome=ReminderAttempt.Outcome.UNCERTAIN, message_id="")
    sent_reminder.tries.create(number=2, started_at=sent_reminder.queued_at, message_id="pm-2",
                               outcome=ReminderAttempt.Outcome.ACCEPTED)
    Reminder.objects.filter(pk=sent_reminder.pk).update(message_id="pm-2")
    first = {**delivery("pm-1"), "Metadata": {"reminder_id": str(sent_reminder.pk),
                                              "attempt_id": str(sent_reminder.tries.get(number=1).pk)}}
    assert post_event(client, first).status_code == 200
    sent_reminder.refresh_from_db()
    assert sent_reminder.state == Reminder.State.DELIVERED
    attempt = sent_reminder.tries.get(number=1)
    assert attempt.message_id == "pm-1" and attempt.event == "delivered"
