"""Expiry reminders in one process: selection by Japan-time days, exactly-once recording and
sending, the e-mails' content per language, the administrators' digest, retries and the
operators' resend. The real worker, broker and faults are in test_reminder_worker.py."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from io import StringIO
from zoneinfo import ZoneInfo

import pytest
import time_machine
from dateutil.relativedelta import relativedelta
from django.core import mail
from django.core.management import CommandError, call_command
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext

from accounts.models import AuditEntry, User
from certificates.models import Certificate, RevocationReason
from certificates.services import revoke_certificate
from certportal.celery import app as celery_app
from notices.models import NoticeAction, PendingTrackingEvent, Reminder, ReminderAttempt
from notices.reminders import (
    Outcome,
    ResendRefused,
    TryLater,
    deliver_reminder,
    resend_reminder,
    run_reminder_job,
    sweep,
)
from notices.tasks import enqueue
from tests.support.clients import issue_for, issue_for_operator, operator_signed_in
from tests.support.esp_standin import PostmarkStandIn

JST = ZoneInfo("Asia/Tokyo")
TODAY = date(2026, 12, 1)
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=JST)  # the job's default time on TODAY


def expiring(user: User, *, days_left: int, today: date = TODAY, hour: int = 9) -> Certificate:
    """Issue a real certificate for `user` whose expiry date (JST) is `days_left` days after `today`."""
    expires = datetime(today.year, today.month, today.day, hour, 0, tzinfo=JST) + timedelta(days=days_left)
    return expiring_at(user, expires)


def expiring_at(user: User, expires: datetime) -> Certificate:
    # issue_certificate makes not_after = not_before + 12 months - 1 second
    certificate, _key = issue_for(user, now=expires + timedelta(seconds=1) - relativedelta(months=12))
    assert certificate.not_after == expires
    return certificate


def reminders_of(certificate: Certificate) -> dict[int, str]:
    return dict(certificate.reminders.values_list("threshold_days", "state"))



@pytest.fixture
def use_postmark(settings):
    """anymail's real Postmark backend, talking to a local stand-in of Postmark's API."""
    standin = PostmarkStandIn().start()
    settings.EMAIL_BACKEND = "anymail.backends.postmark.EmailBackend"
    settings.ANYMAIL = standin.anymail_settings()
    yield standin
    standin.stop()


@pytest.fixture
def eager_tasks():
    """Run queued tasks in this process (on commit), instead of writing to the real broker."""
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False


def run_job(*, today: date = TODAY, now: datetime | None = None, capture, execute: bool = True):
    """The daily job at 09:00 JST on `today`, its tasks run (eagerly) at that time too."""
    now = now or datetime(today.year, today.month, today.day, 9, tzinfo=JST)
    with time_machine.travel(now, tick=False), capture(execute=execute):
        return run_reminder_job(enqueue=enqueue, today=today, now=now)


# --- selection -----------------------------------------------------------------------------


@pytest.mark.embedded
def test_a_certificate_inside_30_days_gets_the_30_day_reminder_once(ca, bob, eager_tasks,
                                                                       django_capture_on_commit_callbacks):
    certificate = expiring(bob, days_left=30)
    first = run_job(capture=django_capture_on_commit_callbacks)
    second = run_job(capture=django_capture_on_commit_callbacks)
    assert reminders_of(certificate) == {30: Reminder.State.SENT}
    assert [m.to for m in mail.outbox if "bob" in m.to[0]] == [["bob@alpha.example"]]
    assert len(second.queued) == 0 < len(first.queued)


def test_a_certificate_31_days_from_expiry_gets_nothing_yet(ca, bob, django_capture_on_commit_callbacks):
    certificate = expiring(bob, days_left=31)
    run_job(capture=django_capture_on_commit_callbacks, execute=False)
    assert reminders_of(certificate) == {}


def test_days_are_japan_time_calendar_days(ca, bob, charlie, django_capture_on_commit_callbacks):
    # 00:30 JST on 31 December is still 30 December in UTC: 30 Japan-time days from 1 December.
    inside = expiring_at(bob, datetime(2026, 12, 31, 0, 30, tzinfo=JST))
    # 00:30 JST on 1 January is 31 December in UTC, but 31 Japan-time days away: not yet.
    outside = expiring_at(charlie, datetime(2027, 1, 1, 0, 30, tzinfo=JST))
    run_job(capture=django_capture_on_commit_callbacks, execute=False)
    assert reminders_of(inside) == {30: Reminder.State.QUEUED}
    assert reminders_of(outside) == {}


def test_a_missed_day_is_caught_up(ca, bob, django_capture_on_commit_callbacks):
    certificate = expiring(bob, days_left=30)
    # The job did not run for five days: on day 25 the 30-day reminder is still owed.
    run_job(today=TODAY + timedelta(days=5), capture=django_capture_on_commit_callbacks, execute=False)
    assert reminders_of(certificate) == {30: Reminder.State.QUEUED}


@pytest.mark.embedded
def test_a_certificate_already_inside_10_days_gets_only_the_10_day_email(ca, bob, eager_tasks,
                                                                        django_capture_on_commit_callbacks):
    certificate = expiring(bob, days_left=8)
    result = run_job(capture=django_capture_on_commit_callbacks)
    assert reminders_of(certificate) == {10: Reminder.State.SENT, 30: Reminder.State.SKIPPED}
    assert result.skipped == 1
    assert len([m for m in mail.outbox if m.to == ["bob@alpha.example"]]) == 1


@pytest.mark.embedded
def test_each_threshold_of_three_is_recorded_once_and_only_the_nearest_is_sent(
        ca, alice, bob, charlie, settings, django_capture_on_commit_callbacks):
    settings.REMINDER_THRESHOLDS_DAYS = (30, 10, 3)
    two, five, twenty = (expiring(user, days_left=days) for user, days in ((alice, 2), (bob, 5), (charlie, 20)))
    first = run_job(capture=django_capture_on_commit_callbacks, execute=False)
    assert reminders_of(two) == {3: Reminder.State.QUEUED, 10: Reminder.State.SKIPPED, 30: Reminder.State.SKIPPED}
    assert reminders_of(five) == {10: Reminder.State.QUEUED, 30: Reminder.State.SKIPPED}
    assert reminders_of(twenty) == {30: Reminder.State.QUEUED}
    assert first.skipped == 3
    # Three days on, the 20-day one is at 17 (nothing new) and the 5-day one at 2: its 3-day reminder now.
    later = run_job(today=TODAY + timedelta(days=3), capture=django_capture_on_commit_callbacks, execute=False)
    assert reminders_of(five) == {3: Reminder.State.QUEUED, 10: Reminder.State.QUEUED, 30: Reminder.State.SKIPPED}
    assert reminders_of(twenty) == {30: Reminder.State.QUEUED}
    assert later.skipped == 0
    newly_queued = Reminder.objects.filter(pk__in=later.queued, kind=Reminder.Kind.EXPIRY)
    assert list(newly_queued) == [five.reminders.get(threshold_days=3)]


def test_the_10_day_reminder_follows_the_30_day_one(ca, bob, eager_tasks, django_capture_on_commit_callbacks):
    certificate = expiring(bob, days_left=30)
    run_job(capture=django_capture_on_commit_callbacks)
    for day in range(1, 21):  # every day until 10 days are left
        run_job(today=TODAY + timedelta(days=day), capture=django_capture_on_commit_callbacks)
    assert reminders_of(certificate) == {30: Reminder.State.SENT, 10: Reminder.State.SENT}
    subjects = [m.subject for m in mail.outbox if m.to == ["bob@alpha.example"]]
    assert len(subjects) == 2
    assert "あと30日" in subjects[0] and "あと10日" in subjects[1]


def test_revoked_renewed_and_expired_certificates_get_no_reminder(ca, alice, bob, charlie,
                                                                   django_capture_on_commit_callbacks):
    revoked = expiring(alice, days_left=20)
    revoke_certificate(certificate=revoked, reason=RevocationReason.KEY_COMPROMISE, by=None)
    renewed = expiring(bob, days_left=20)
    issue_for(bob, now=NOW - timedelta(days=1))  # renewed yesterday, not used yet: a newer certificate
    expired = expiring_at(charlie, NOW - timedelta(hours=1))
    run_job(capture=django_capture_on_commit_callbacks, execute=False)
    assert Reminder.objects.filter(kind=Reminder.Kind.EXPIRY).count() == 0
    assert reminders_of(revoked) == reminders_of(renewed) == reminders_of(expired) == {}


@pytest.mark.embedded
def test_the_database_refuses_a_second_reminder_for_the_same_certificate_and_threshold(ca, bob):
    certificate = expiring(bob, days_left=20)
    fields = {"kind": Reminder.Kind.EXPIRY, "recipient": bob, "certificate": certificate, "threshold_days": 30,
              "run": "00000000-0000-0000-0000-000000000001"}
    Reminder.objects.create(**fields)
    with pytest.raises(IntegrityError), transaction.atomic():
        Reminder.objects.create(**fields)


def test_selecting_and_recording_takes_the_same_queries_for_3_or_30_due_certificates(
    ca, contract_a, django_capture_on_commit_callbacks
):
    def queries_for(count: int, today: date) -> int:
        users = User.objects.bulk_create(
            User(login_id=f"user-{today:%m%d}-{n:03}", email=f"u{n}@alpha.example", password="!",
                 contract=contract_a, role=User.Role.USER)
            for n in range(count)
        )
        for n, user in enumerate(users):
            expiring(user, days_left=5 + n % 20, today=today)
        with CaptureQueriesContext(connection) as queries:
            result = run_job(today=today, capture=django_capture_on_commit_callbacks, execute=False)
        assert len(result.queued) >= count
        return len(queries)

    assert queries_for(3, TODAY) == queries_for(30, TODAY + timedelta(days=60))


# --- the e-mails ---------------------------------------------------------------------------


def test_the_japanese_email_says_when_how_many_days_and_how_to_renew(ca, bob, eager_tasks,
                                                                     django_capture_on_commit_callbacks):
    expiring(bob, days_left=20)
    run_job(capture=django_capture_on_commit_callbacks)
    [message] = [m for m in mail.outbox if m.to == ["bob@alpha.example"]]
    assert message.subject == "【重要】電子証明書の有効期限まであと20日です（bob-user）"
    for text in (message.body, message.alternatives[0].content):
        assert "2026年12月21日 09:00（日本時間）" in text
        assert "残り20日" in text
        assert "「重要なお知らせ」" in text and "「電子証明書の更新はこちら」" in text and "「電子証明書取得」" in text
    assert message.alternatives[0].mimetype == "text/html"


def test_an_english_speaking_id_gets_the_email_in_english(ca, bob, eager_tasks, django_capture_on_commit_callbacks):
    bob.language = User.Language.ENGLISH
    bob.save()
    expiring(bob, days_left=1)
    run_job(capture=django_capture_on_commit_callbacks)
    [message] = [m for m in mail.outbox if m.to == ["bob@alpha.example"]]
    assert message.subject == "Important: the electronic certificate of bob-user expires in 1 day"
    assert "2 December 2026, 09:00 (Japan time)" in message.body
    assert "(1 day left)" in message.body
    # The screen labels the customer must find are shown as the screens show them.
    assert "「重要なお知らせ」" in message.body and "「電子証明書の更新はこちら」" in message.body
    # 電子証明書取得 in the English the login screen's link says beside it.
    assert "「電子証明書取得」 (Obtain certificate) on the login screen" in message.body
    assert "「電子証明書取得」</strong> (Obtain certificate) on the login screen" in message.alternatives[0].content
    assert "<html lang=\"en\">" in message.alternatives[0].content


@pytest.mark.embedded
def test_the_embedded_default_writes_the_email_to_a_file(ca, bob, settings, tmp_path, eager_tasks,
                                                         django_capture_on_commit_callbacks):
    settings.EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    settings.EMAIL_FILE_PATH = str(tmp_path)
    certificate = expiring(bob, days_left=20)
    run_job(capture=django_capture_on_commit_callbacks)
    written = "".join(path.read_text() for path in tmp_path.iterdir())
    assert "To: bob@alpha.example" in written
    assert reminders_of(certificate) == {30: Reminder.State.SENT}


def test_sending_through_postmark_records_its_message_id(ca, bob, use_postmark, eager_tasks,
                                                         django_capture_on_commit_callbacks):
    certificate = expiring(bob, days_left=20)
    run_job(capture=django_capture_on_commit_callbacks)
    reminder = certificate.reminders.get()
    [accepted] = use_postmark.accepted_for(reminder.pk)
    assert reminder.state == Reminder.State.SENT
    assert reminder.message_id == accepted.message_id
    assert accepted.to == "bob@alpha.example" and accepted.tag == "expiry-30"
    assert "あと20日" in accepted.subject and "「電子証明書の更新はこちら」" in accepted.html


# --- exactly once, retries -----------------------------------------------------------------


def queued_reminder(bob, days_left: int = 20) -> Reminder:
    certificate = expiring(bob, days_left=days_left)
    # In the test's transaction: nothing is queued to a broker.
    run_reminder_job(enqueue=enqueue, today=TODAY, now=NOW)
    return certificate.reminders.get(threshold_days=30)


def test_a_task_delivered_twice_sends_once(ca, bob):
    reminder = queued_reminder(bob)
    assert deliver_reminder(reminder_id=reminder.pk, now=NOW) == Outcome.SENT
    assert deliver_reminder(reminder_id=reminder.pk, now=NOW) == Outcome.ALREADY_DONE
    assert len(mail.outbox) == 1


@pytest.mark.parametrize("meanwhile", ["renewed", "revoked"])
def test_a_reminder_still_unsent_when_its_certificate_was_renewed_or_revoked_is_cancelled(ca, bob, meanwhile):
    reminder = queued_reminder(bob)
    if meanwhile == "renewed":
        issue_for(bob, now=NOW)  # not used yet: the old certificate still works, but the ID has renewed
    else:
        revoke_certificate(certificate=reminder.certificate, reason=RevocationReason.KEY_COMPROMISE, by=None, now=NOW)
    assert deliver_reminder(reminder_id=reminder.pk, now=NOW + timedelta(hours=1)) == Outcome.CANCELLED
    assert mail.outbox == []
    reminder.refresh_from_db()
    assert reminder.state == Reminder.State.CANCELLED
    # Not sent later either.
    assert deliver_reminder(reminder_id=reminder.pk, now=NOW + timedelta(hours=2)) == Outcome.ALREADY_DONE


def test_a_reminder_being_sent_elsewhere_is_left_alone_until_its_lease_ends(ca, bob, settings):
    reminder = queued_reminder(bob)
    Reminder.objects.filter(pk=reminder.pk).update(state=Reminder.State.SENDING, sending_since=NOW)
    with pytest.raises(TryLater):
        deliver_reminder(reminder_id=reminder.pk, now=NOW + timedelta(seconds=5))
    assert len(mail.outbox) == 0
    # The worker sending it died: after the lease it goes out (this once, maybe twice).
    later = NOW + timedelta(seconds=settings.REMINDER_SENDING_LEASE_SECONDS + 1)
    assert deliver_reminder(reminder_id=reminder.pk, now=later) == Outcome.SENT
    assert len(mail.outbox) == 1


def test_a_provider_down_for_a_day_is_retried_with_backoff_and_sent_once_when_back(ca, bob, use_postmark):
    reminder = queued_reminder(bob)
    use_postmark.outage_status = 503
    now, delays = NOW, []
    while now < NOW + timedelta(days=1):
        with pytest.raises(TryLater) as later:
            deliver_reminder(reminder_id=reminder.pk, now=now)
        delays.append(later.value.seconds)
        now += timedelta(seconds=later.value.seconds)
    assert delays[:4] == [60, 120, 240, 480] and max(delays) == 3600
    reminder.refresh_from_db()
    assert reminder.state == Reminder.State.QUEUED and "503" in reminder.last_error
    use_postmark.outage_status = None
    assert deliver_reminder(reminder_id=reminder.pk, now=now) == Outcome.SENT
    assert deliver_reminder(reminder_id=reminder.pk, now=now) == Outcome.ALREADY_DONE
    assert len(use_postmark.accepted_for(reminder.pk)) == 1


def test_a_reminder_is_given_up_as_failed_after_the_give_up_window(ca, bob, use_postmark, settings):
    reminder = queued_reminder(bob)
    use_postmark.outage_status = 500
    after = NOW + timedelta(hours=settings.REMINDER_GIVE_UP_HOURS, seconds=1)
    assert deliver_reminder(reminder_id=reminder.pk, now=after) == Outcome.FAILED
    reminder.refresh_from_db()
    assert reminder.state == Reminder.State.FAILED


# --- the administrators' digest ------------------------------------------------------------


@pytest.mark.embedded
def test_a_contract_administrator_gets_one_digest_a_day_listing_ids_not_yet_renewed(
    ca, alice, bob, charlie, eager_tasks, django_capture_on_commit_callbacks
):
    expiring(bob, days_left=20)
    expiring(charlie, days_left=5)  # another contract: not on alice's list
    run_job(capture=django_capture_on_commit_callbacks)
    run_job(capture=django_capture_on_commit_callbacks)  # again the same day: no second digest
    [digest] = [m for m in mail.outbox if m.to == ["alice@alpha.example"]]
    assert "1件" in digest.subject
    assert "bob-user" in digest.body and "残り20日" in digest.body and "charlie" not in digest.body
    # The next day brings the next digest.
    run_job(today=TODAY + timedelta(days=1), capture=django_capture_on_commit_callbacks)
    assert len([m for m in mail.outbox if m.to == ["alice@alpha.example"]]) == 2
    assert Reminder.objects.filter(kind=Reminder.Kind.DIGEST, recipient=alice).count() == 2


def test_the_digest_setting_turns_the_digest_off(ca, alice, bob, settings, django_capture_on_commit_callbacks):
    settings.ADMIN_DIGEST_ENABLED = False
    expiring(bob, days_left=20)
    run_job(capture=django_capture_on_commit_callbacks, execute=False)
    assert not Reminder.objects.filter(kind=Reminder.Kind.DIGEST).exists()
    assert Reminder.objects.filter(kind=Reminder.Kind.EXPIRY).count() == 1


# --- the command twin ----------------------------------------------------------------------


def test_the_command_prints_what_it_queued(ca, alice, bob, django_capture_on_commit_callbacks, eager_tasks):
    expiring(bob, days_left=20, today=date(2027, 3, 1))
    out = StringIO()
    with time_machine.travel(datetime(2027, 3, 1, 9, tzinfo=JST), tick=False), \
            django_capture_on_commit_callbacks(execute=True):
        call_command("send_expiry_reminders", stdout=out)
    assert "queued 30-day reminder" in out.getvalue() and "bob-user <bob@alpha.example>" in out.getvalue()
    assert "(20 days left)" in out.getvalue()
    assert "queued digest" in out.getvalue() and "to alice-admin <alice@alpha.example>: 1 ID(s)" in out.getvalue()
    assert "2027-03-01: 2 e-mail(s) queued" in out.getvalue()


def test_the_command_refuses_a_malformed_date(db):
    with pytest.raises(CommandError, match="YYYY-MM-DD"):
        call_command("send_expiry_reminders", "--date", "1/3/2027")


def test_the_command_refuses_a_date_after_today_in_japan_and_records_nothing(ca, bob):
    certificate = expiring(bob, days_left=45)
    # On 16 December the certificate is 30 days from expiry: a run "as on" that day would record the
    # 30-day reminder 45 days early, and the unique constraint would then block the real one.
    with time_machine.travel(datetime(2026, 12, 1, 0, 30, tzinfo=JST), tick=False):
        for day in ("2026-12-02", "2026-12-16", "9999-12-31"):
            with pytest.raises(CommandError, match=r"after today \(2026-12-01, Japan time\)"):
                call_command("send_expiry_reminders", "--date", day, stdout=StringIO())
    assert reminders_of(certificate) == {}
    assert not Reminder.objects.exists()


def test_the_command_catches_up_a_past_date_and_accepts_today_in_japan(ca, bob, django_capture_on_commit_callbacks):
    certificate = expiring(bob, days_left=30)
    # 00:30 JST on 6 December is still 5 December in UTC: 6 December is today in Japan, not the future.
    with time_machine.travel(datetime(2026, 12, 6, 0, 30, tzinfo=JST), tick=False), \
            django_capture_on_commit_callbacks(execute=False):
        call_command("send_expiry_reminders", "--date", "2026-12-05", stdout=StringIO())
        call_command("send_expiry_reminders", "--date", "2026-12-06", stdout=StringIO())
    assert reminders_of(certificate) == {30: Reminder.State.QUEUED}


# --- operators -----------------------------------------------------------------------------


def test_operators_filter_failed_reminders_and_resend_one_through_the_admin(
    ca, bob, olivia, behind_proxy, eager_tasks, django_capture_on_commit_callbacks
):
    reminder = queued_reminder(bob)
    Reminder.objects.filter(pk=reminder.pk).update(state=Reminder.State.FAILED, last_error="550 no such user")
    client = operator_signed_in(olivia)
    listing = client.get("/operator/notices/reminder/", {"state__exact": "failed"})
    assert listing.status_code == 200 and "bob-user" in listing.content.decode()
    assert "bob-user" not in client.get("/operator/notices/reminder/", {"state__exact": "sent"}).content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/operator/notices/reminder/", {"action": "resend", "_selected_action": [reminder.pk]}, follow=True
        )
    assert response.status_code == 200
    reminder.refresh_from_db()
    assert reminder.state == Reminder.State.SENT
    entry = AuditEntry.objects.get(action=NoticeAction.REMINDER_RESENT)
    assert entry.actor == olivia and entry.subject == bob and entry.detail["previous_state"] == "failed"
    assert len(mail.outbox) == 1


def test_a_reminders_own_page_is_view_only(ca, bob, olivia, behind_proxy):
    # A Save there would write back the state as read, over what the task or the webhook wrote meanwhile.
    reminder = queued_reminder(bob)
    client = operator_signed_in(olivia)
    url = f"/operator/notices/reminder/{reminder.pk}/change/"
    assert client.get(url).status_code == 200
    assert client.post(url, {"state": "sent"}).status_code == 403
    reminder.refresh_from_db()
    assert reminder.state == Reminder.State.QUEUED


def test_a_reminder_whose_task_was_lost_is_queued_again_by_the_next_run(ca, bob, eager_tasks,
                                                                        django_capture_on_commit_callbacks):
    certificate = expiring(bob, days_left=20)
    run_job(capture=django_capture_on_commit_callbacks, execute=False)  # the broker never got the task
    assert reminders_of(certificate) == {30: Reminder.State.QUEUED}
    result = run_job(today=TODAY + timedelta(days=1), capture=django_capture_on_commit_callbacks)
    assert result.requeued == [certificate.reminders.get().pk] and result.queued == []
    assert reminders_of(certificate) == {30: Reminder.State.SENT}
    assert len(mail.outbox) == 1


def test_beat_runs_the_reminder_job_daily_at_the_configured_japan_time(settings):
    celery_app.loader.import_default_modules()  # what a worker does at start: autodiscover the apps' tasks
    for name, entry in settings.CELERY_BEAT_SCHEDULE.items():
        assert entry["task"] in celery_app.tasks, name  # the name beat sends is a task the worker runs
    entry = settings.CELERY_BEAT_SCHEDULE["send-expiry-reminders"]
    assert entry["schedule"].hour == {9} and entry["schedule"].minute == {0}
    assert settings.CELERY_TIMEZONE == "Asia/Tokyo"


def test_a_reminder_sent_after_the_expiry_points_to_obtaining_a_new_certificate(ca, bob):
    reminder = queued_reminder(bob, days_left=5)  # the 10-day reminder, delayed (provider down) past expiry
    reminder = Reminder.objects.get(certificate=reminder.certificate, threshold_days=10)
    assert deliver_reminder(reminder_id=reminder.pk, now=NOW + timedelta(days=6)) == Outcome.SENT
    [message] = mail.outbox
    assert message.subject == "【重要】電子証明書の有効期限が切れました（bob-user）"
    assert "ログイン画面の「電子証明書取得」" in message.body and "「電子証明書の更新はこちら」" not in message.body


def test_an_operators_own_certificate_gets_no_expiry_reminder(ca, olivia, bob):
    """Operators renew theirs with manage.py issue_operator_certificate, not on the notices screen."""
    issue_for_operator(olivia, now=NOW + timedelta(days=15) - relativedelta(months=12))
    expiring(bob, days_left=15)
    run_reminder_job(enqueue=enqueue, today=TODAY, now=NOW)
    assert set(Reminder.objects.values_list("recipient__login_id", flat=True)) == {"bob-user"}


# --- until the customer really renewed --------------------------------------------------------


def used(certificate: Certificate, at: datetime) -> Certificate:
    """The customer logged in with it (what the login does to a certificate's first use)."""
    Certificate.objects.filter(pk=certificate.pk).update(first_used_at=at)
    certificate.refresh_from_db()
    return certificate


def test_a_renewal_never_used_leaves_the_old_certificates_reminders_and_says_what_to_do(
    ca, alice, bob, eager_tasks, django_capture_on_commit_callbacks
):
    old = used(expiring(bob, days_left=30), NOW - timedelta(days=300))
    issue_for(bob, now=NOW - timedelta(hours=1))  # renewed; the new file was lost, never imported
    run_job(capture=django_capture_on_commit_callbacks)
    for day in range(1, 21):
        run_job(today=TODAY + timedelta(days=day), capture=django_capture_on_commit_callbacks)
    assert reminders_of(old) == {30: Reminder.State.SENT, 10: Reminder.State.SENT}
    to_bob = [m for m in mail.outbox if m.to == ["bob@alpha.example"]]
    assert len(to_bob) == 2
    assert "更新済みの電子証明書がまだ使われていません" in to_bob[0].body
    assert "もう一度「電子証明書の更新はこちら」から更新してください" in to_bob[1].alternatives[0].content
    digests = [m for m in mail.outbox if m.to == ["alice@alpha.example"]]
    assert len(digests) == 21 and all("bob-user" in m.body and "未使用" in m.body for m in digests)


def test_the_english_reminder_of_an_unused_renewal_says_to_import_the_file_or_renew_again(ca, bob):
    bob.language = User.Language.ENGLISH
    bob.save()
    reminder = queued_reminder(bob)
    used(reminder.certificate, NOW - timedelta(days=300))
    issue_for(bob, now=NOW)
    assert deliver_reminder(reminder_id=reminder.pk, now=NOW + timedelta(minutes=5)) == Outcome.SENT
    [message] = mail.outbox
    assert "Import the new certificate file you saved" in message.body
    assert "renew again" in message.body


def test_a_renewal_once_used_cancels_the_old_reminder_and_leaves_the_digest(
    ca, alice, bob, django_capture_on_commit_callbacks
):
    old = used(expiring(bob, days_left=20), NOW - timedelta(days=300))
    run_job(capture=django_capture_on_commit_callbacks, execute=False)
    renewed, _key = issue_for(bob, now=NOW)
    used(renewed, NOW + timedelta(minutes=30))
    [reminder] = old.reminders.all()
    digest = Reminder.objects.get(kind=Reminder.Kind.DIGEST)
    assert deliver_reminder(reminder_id=reminder.pk, now=NOW + timedelta(hours=1)) == Outcome.CANCELLED
    # The digest is checked again when sent: no listed ID still has to renew, so none is sent.
    assert deliver_reminder(reminder_id=digest.pk, now=NOW + timedelta(hours=1)) == Outcome.CANCELLED
    assert mail.outbox == []
    digest.refresh_from_db()
    assert digest.state == Reminder.State.CANCELLED and digest.items == []


def test_a_digest_lists_only_the_ids_that_still_must_renew_when_it_is_sent(ca, alice, contract_a):
    users = User.objects.bulk_create(
        User(login_id=f"staff-{n}", email=f"s{n}@alpha.example", password="!", contract=contract_a,
             role=User.Role.USER)
        for n in range(4)
    )
    certificates = [used(expiring(user, days_left=15), NOW - timedelta(days=300)) for user in users]
    run_reminder_job(enqueue=enqueue, today=TODAY, now=NOW)
    digest = Reminder.objects.get(kind=Reminder.Kind.DIGEST)
    assert len(digest.items) == 4
    revoke_certificate(certificate=certificates[0], reason=RevocationReason.KEY_COMPROMISE, by=None, now=NOW)
    used(issue_for(users[1], now=NOW)[0], NOW + timedelta(minutes=1))  # renewed and used
    issue_for(users[2], now=NOW)  # renewed, never used: still listed
    assert deliver_reminder(reminder_id=digest.pk, now=NOW + timedelta(hours=1)) == Outcome.SENT
    [message] = mail.outbox
    assert "staff-0" not in message.body and "staff-1" not in message.body
    assert "staff-2" in message.body and "staff-3" in message.body
    assert "2件" in message.subject


def test_a_catch_up_run_never_adds_a_second_digest_for_a_day(ca, alice, bob, django_capture_on_commit_callbacks):
    expiring(bob, days_left=20)
    with time_machine.travel(datetime(2026, 12, 1, 9, 0, tzinfo=JST), tick=False), \
            django_capture_on_commit_callbacks(execute=False):
        call_command("send_expiry_reminders", stdout=StringIO())
        call_command("send_expiry_reminders", "--date", "2026-11-29", stdout=StringIO())
        call_command("send_expiry_reminders", "--date", "2026-11-30", stdout=StringIO())
    assert list(Reminder.objects.filter(kind=Reminder.Kind.DIGEST).values_list("digest_date", flat=True)) == [TODAY]


# --- errors, alerts and the operators' view ---------------------------------------------------


def test_a_timeout_set_as_a_string_fails_visibly_is_retried_and_given_up(ca, bob, use_postmark, settings):
    settings.ANYMAIL = {**settings.ANYMAIL, "REQUESTS_TIMEOUT": "10"}  # what the environment gave before parsing
    reminder = queued_reminder(bob)
    with pytest.raises(TryLater) as later:
        deliver_reminder(reminder_id=reminder.pk, now=NOW)
    assert later.value.seconds == settings.REMINDER_RETRY_BASE_SECONDS
    reminder.refresh_from_db()
    assert reminder.state == Reminder.State.QUEUED and "ValueError" in reminder.last_error
    assert reminder.failing_since == NOW
    [attempt] = reminder.tries.all()
    assert attempt.outcome == ReminderAttempt.Outcome.FAILED and "ValueError" in attempt.error
    after = NOW + timedelta(hours=settings.REMINDER_GIVE_UP_HOURS, seconds=1)
    assert deliver_reminder(reminder_id=reminder.pk, now=after) == Outcome.FAILED
    reminder.refresh_from_db()
    assert reminder.state == Reminder.State.FAILED and "ValueError" in reminder.last_error
    assert use_postmark.accepted == []


def test_reminders_failing_for_an_hour_are_logged_at_error_once_an_hour(ca, bob, use_postmark, caplog):
    use_postmark.outage_status = 503
    reminder = queued_reminder(bob)
    with pytest.raises(TryLater):
        deliver_reminder(reminder_id=reminder.pk, now=NOW)
    assert list(Reminder.objects.failing_for(1, now=NOW + timedelta(minutes=59))) == []
    assert list(Reminder.objects.failing_for(1, now=NOW + timedelta(minutes=61))) == [reminder]
    caplog.set_level("ERROR", logger="notices.reminders")
    for minutes in (61, 66, 71, 100, 122):  # the sweep's runs
        sweep(enqueue=enqueue, now=NOW + timedelta(minutes=minutes))
    alerts = [r for r in caplog.records if r.levelname == "ERROR" and f"reminder {reminder.pk} " in r.getMessage()]
    assert len(alerts) == 2  # at 61 and at 122 minutes: once an hour, not every sweep
    assert "503" in alerts[0].getMessage()


def test_resend_refuses_skipped_and_cancelled_reminders_with_a_reason(ca, bob, olivia):
    certificate = expiring(bob, days_left=5)
    run_reminder_job(enqueue=enqueue, today=TODAY, now=NOW)
    skipped = certificate.reminders.get(threshold_days=30)
    assert skipped.state == Reminder.State.SKIPPED
    with pytest.raises(ResendRefused, match="10-day reminder is the one to resend"):
        resend_reminder(reminder=skipped, by=olivia, enqueue=enqueue)
    cancelled = certificate.reminders.get(threshold_days=10)
    Reminder.objects.filter(pk=cancelled.pk).update(state=Reminder.State.CANCELLED)
    with pytest.raises(ResendRefused, match="no longer true"):
        resend_reminder(reminder=cancelled, by=olivia, enqueue=enqueue)
    assert mail.outbox == []


def test_the_admin_shows_every_attempt_of_a_reminder(ca, bob, olivia, behind_proxy, use_postmark):
    reminder = queued_reminder(bob)
    use_postmark.outage_status = 503
    with pytest.raises(TryLater):
        deliver_reminder(reminder_id=reminder.pk, now=NOW)
    use_postmark.outage_status = None
    deliver_reminder(reminder_id=reminder.pk, now=NOW + timedelta(minutes=1))
    [accepted] = use_postmark.accepted
    client = operator_signed_in(olivia)
    page = client.get(f"/operator/notices/reminder/{reminder.pk}/change/").content.decode()
    assert page.count("失敗（未送信）") == 1 and "送信事業者が受付" in page  # the operators' admin is in Japanese
    assert accepted.message_id in page and "503" in page


def test_a_tracking_event_before_its_attempt_is_recorded_is_kept_and_applied(ca, bob, use_postmark):
    from notices.reminders import record_tracking_event

    reminder = queued_reminder(bob)
    # The provider's webhook for a message id no attempt has yet (the send has not returned).
    assert record_tracking_event(message_id="early-id", event_type="delivered", at=NOW,
                                 reminder_id=str(reminder.pk)) == 0
    assert PendingTrackingEvent.objects.count() == 1
    ReminderAttempt.objects.create(reminder=reminder, number=1, started_at=NOW, message_id="early-id",
                                   outcome=ReminderAttempt.Outcome.ACCEPTED)
    Reminder.objects.filter(pk=reminder.pk).update(state=Reminder.State.SENT)
    # An event for an e-mail that is not a reminder (no reminder id in its metadata) is not kept.
    assert record_tracking_event(message_id="otp-mail", event_type="delivered", at=NOW) == 0
    assert PendingTrackingEvent.objects.count() == 1
    assert sweep(enqueue=enqueue, now=NOW + timedelta(minutes=5)).events_applied == 1
    reminder.refresh_from_db()
    assert reminder.state == Reminder.State.DELIVERED and not PendingTrackingEvent.objects.exists()


def test_the_sweep_requeues_a_reminder_whose_task_was_lost_within_minutes(ca, bob, settings, eager_tasks,
                                                                          django_capture_on_commit_callbacks):
    reminder = queued_reminder(bob)  # recorded; its task never reached the broker
    soon = NOW + timedelta(seconds=settings.REMINDER_REQUEUE_AFTER_SECONDS - 1)
    with django_capture_on_commit_callbacks(execute=True):
        assert sweep(enqueue=enqueue, now=soon).requeued == []
    later = NOW + timedelta(seconds=settings.REMINDER_REQUEUE_AFTER_SECONDS + 1)
    with time_machine.travel(later, tick=False), django_capture_on_commit_callbacks(execute=True):
        assert sweep(enqueue=enqueue, now=later).requeued == [reminder.pk]
    reminder.refresh_from_db()
    assert reminder.state == Reminder.State.SENT and len(mail.outbox) == 1
    assert settings.CELERY_BEAT_SCHEDULE["sweep-reminders"]["task"] == "notices.tasks.sweep_reminders"
    assert settings.CELERY_BEAT_SCHEDULE["sweep-reminders"]["schedule"] <= 600  # every few minutes
