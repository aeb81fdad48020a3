"""The operators' overview (/operator/dashboard/) and the IDs' CSV export, against a known estate."""

from __future__ import annotations

import csv
import io
import re
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine
from django.core.management import call_command

from accounts.japan_time import japan_day_start
from accounts.models import AuditEntry, JobRun, User
from certificates.crl import current_crl
from certificates.models import Certificate, RevocationReason
from certificates.services import issue_certificate, revoke_certificate, supersede_older_certificates
from certificates.tasks import refresh_crl
from notices import dashboard
from notices.models import Reminder
from notices.reminders import run_reminder_job
from notices.tasks import enqueue
from tests.support.clients import operator_signed_in
from tests.support.personas import PASSWORD
from tests.support.pki import make_csr

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)  # 09:00 in Japan
TODAY = date(2026, 12, 1)



def day(offset: int, hour: int = 12) -> datetime:
    """`hour` o'clock in Japan, `offset` Japan-time days from TODAY."""
    return japan_day_start(TODAY + timedelta(days=offset)) + timedelta(hours=hour)


@pytest.fixture
def estate(ca, contract_a, olivia):
    """IDs of contract A whose certificates expire on known Japan-time days, and a month of reminders."""
    counter = iter(range(100))

    def certificate(not_after: datetime | None, *, login_id: str | None = None, issued_at=NOW - timedelta(days=300)):
        login_id = login_id or f"id-{next(counter):03d}"
        user = User.objects.filter(login_id=login_id).first() or User.objects.create_user(
            login_id, f"{login_id}@alpha.example", None, contract=contract_a, role=User.Role.USER)
        issued = issue_certificate(user=user, csr=make_csr()[0], via=Certificate.Channel.OPERATOR,
                                   now=issued_at).certificate
        if not_after is not None:
            Certificate.objects.filter(pk=issued.pk).update(not_after=not_after)
        issued.refresh_from_db()
        return issued

    # Week 0 (today .. day 6): three, one of them at 23:59 on day 6.
    certificate(day(0, hour=18))
    certificate(day(3))
    certificate(day(6, hour=23) + timedelta(minutes=59))
    # Week 4 (days 28 .. 34): the day -30 certificate, expiring late on day 30.
    certificate(day(30, hour=23))
    # Week 25 (days 175 .. 181): one; day 182 is beyond the 26 weeks.
    certificate(day(181))
    certificate(day(182))
    # Week 1: 03:00 in Japan on day 7, which is still day 6 in UTC.
    certificate(day(7, hour=3))
    # Not counted: expired this morning, revoked, superseded by a renewal.
    certificate(day(0, hour=8))
    revoked = certificate(day(10))
    revoke_certificate(certificate=revoked, reason=RevocationReason.KEY_COMPROMISE, by=olivia, now=NOW)
    old = certificate(day(12), login_id="renewed")
    supersede_older_certificates(newer=old, now=NOW - timedelta(days=2))  # in use, then renewed
    renewal = certificate(None, login_id="renewed", issued_at=NOW - timedelta(days=1))  # the new one lasts a year
    supersede_older_certificates(newer=renewal, now=NOW - timedelta(hours=12))  # and used: the old one is retired

    # Reminders by the Japan-time day they were recorded and their state now (digests: one per ID and day).
    admins = [User.objects.create_user(f"admin-{n}", f"admin-{n}@alpha.example", None, contract=contract_a,
                                       role=User.Role.ADMINISTRATOR) for n in range(4)]

    def reminder(recorded_at: datetime, state: Reminder.State, admin: int) -> None:
        Reminder.objects.create(
            kind=Reminder.Kind.DIGEST, recipient=admins[admin], digest_date=recorded_at.date(), state=state,
            run=uuid.uuid4(), created_at=recorded_at, queued_at=recorded_at,
        )

    reminder(day(0, hour=9), Reminder.State.SENT, 0)
    reminder(day(0, hour=9), Reminder.State.DELIVERED, 1)
    reminder(day(0, hour=9), Reminder.State.QUEUED, 2)  # not an outcome yet
    reminder(day(-3, hour=0), Reminder.State.BOUNCED, 0)  # 00:00 in Japan: day -3, though day -4 in UTC
    reminder(day(-29, hour=9), Reminder.State.FAILED, 0)  # the oldest day shown
    reminder(day(-29, hour=9), Reminder.State.CANCELLED, 1)
    reminder(day(-30, hour=23), Reminder.State.FAILED, 0)  # 31 days ago: not shown


def test_certificates_expiring_per_week_are_counted_by_japan_calendar_day(estate):
    weeks = dashboard.expiring_per_week(NOW)

    assert len(weeks) == 26
    assert (weeks[0].first, weeks[0].last, weeks[-1].last) == (TODAY, date(2026, 12, 7), date(2027, 5, 31))
    counts = {index: week.count for index, week in enumerate(weeks) if week.count}
    assert counts == {0: 3, 1: 1, 4: 1, 25: 1}


def test_the_weeks_are_the_certificates_the_reminder_job_will_write_to(estate):
    """The chart and the reminders count the same certificates: those due within 30 days are in weeks 0-4."""
    weeks = dashboard.expiring_per_week(NOW)
    due = Certificate.objects.due_for_reminder(30, TODAY, NOW).count()
    assert due == 5 == sum(week.count for week in weeks[:5])


def test_reminder_outcomes_are_counted_per_japan_day_for_the_last_30_days(estate):
    outcomes = dashboard.reminder_outcomes_per_day(NOW)

    assert len(outcomes) == 30
    assert (outcomes[0].day, outcomes[-1].day) == (TODAY - timedelta(days=29), TODAY)
    nonzero = {row.day: {state: n for state, n in row.counts.items() if n} for row in outcomes if any(row.ordered)}
    assert nonzero == {
        TODAY - timedelta(days=29): {"failed": 1, "cancelled": 1},
        TODAY - timedelta(days=3): {"bounced": 1},
        TODAY: {"sent": 1, "delivered": 1},
    }


def test_each_scheduled_job_shows_its_last_success_whether_beat_or_its_command_ran_it(ca, settings):
    with time_machine.travel(NOW - timedelta(hours=3), tick=False):
        refresh_crl()  # the hourly task, as beat's worker runs it
    with time_machine.travel(NOW - timedelta(hours=1), tick=False):
        call_command("refresh_crl", stdout=io.StringIO())  # its twin

    jobs = {job.key: job for job in dashboard.scheduled_jobs(NOW)}

    assert set(jobs) == set(settings.CELERY_BEAT_SCHEDULE)
    assert jobs["refresh-crl"].last_run.finished_at == NOW - timedelta(hours=1)
    assert jobs["refresh-crl"].age == timedelta(hours=1)
    assert jobs["send-expiry-reminders"].last_run is None
    assert JobRun.objects.filter(name="certificates.tasks.refresh_crl").count() == 2


def test_the_reminder_command_records_its_run_and_a_failed_run_records_nothing(ca):
    with time_machine.travel(NOW, tick=False):
        call_command("send_expiry_reminders", stdout=io.StringIO())
        with pytest.raises(Exception, match="after today"):
            call_command("send_expiry_reminders", "--date", "2030-01-01", stdout=io.StringIO())

    (run,) = JobRun.objects.filter(name="notices.tasks.send_expiry_reminders")
    assert run.detail["date"] == TODAY.isoformat() and run.finished_at == NOW


def test_the_crl_age_is_the_time_since_it_was_signed(ca):
    current_crl(now=NOW - timedelta(hours=2))

    crl = dashboard.crl_status(NOW)

    assert crl.age == timedelta(hours=2)
    assert crl.next_update == NOW - timedelta(hours=2) + timedelta(hours=24)


def test_the_overview_page_draws_accessible_charts_with_the_numbers_as_tables(estate, operator_client):
    with time_machine.travel(NOW, tick=False):
        response = operator_client.get("/operator/dashboard/", secure=True)
        english = operator_client.get("/operator/dashboard/", secure=True, HTTP_ACCEPT_LANGUAGE="en")

    assert response.status_code == 200
    content = response.content.decode()
    assert content.count('role="img"') == 2
    assert '<title id="expiring-chart-title">週ごとの有効期限切れ電子証明書数</title>' in content
    assert "<title>2026年12月1日: 3</title>" in content  # week 0's bar, its date written the screens' way
    assert re.search(r'<th scope="row">2026年12月1日 – 2026年12月7日</th><td class="number">3</td>', content)
    assert re.search(r'<th scope="row">2026年12月8日 – 2026年12月14日</th><td class="number">1</td>', content)
    assert re.search(r'<th scope="row">2026年12月29日 – 2027年1月4日</th><td class="number">1</td>', content)
    assert "<script" not in content.split('id="content-main"')[1] and 'style="' not in content
    assert "certportal/dashboard.css" in content
    english_content = english.content.decode()
    assert "Certificates expiring per week (next 26 weeks)" in english_content
    assert "Reminder outcomes per day (last 30 days)" in english_content


def test_the_overview_is_for_operators_only(estate, client, alice):
    client.force_login(alice)  # a customer, even an administrator, is not staff
    assert client.get("/operator/dashboard/", secure=True).status_code == 302
    assert client.get("/operator/dashboard/ids.csv", secure=True).status_code == 302


def test_the_id_export_streams_every_customer_id_and_is_audited(estate, operator_client, olivia, alice, bob,
                                                                 charlie):
    with time_machine.travel(NOW, tick=False):
        response = operator_client.get("/operator/dashboard/ids.csv", secure=True, HTTP_ACCEPT_LANGUAGE="en")

    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    text = b"".join(response.streaming_content).decode("utf-8")
    assert text.startswith("\ufeff")
    rows = {row["login_id"]: row for row in csv.DictReader(io.StringIO(text.lstrip("\ufeff")))}
    assert "olivia-operator" not in rows  # operators are not customers
    assert rows["charlie-admin"] == {
        "login_id": "charlie-admin", "contract_number": "3000001", "contract_name": "Beta Industries K.K.",
        "role": "administrator ID", "id_state": "active", "certificate_state": "none", "certificate_valid_until": "",
    }
    assert rows["id-003"]["certificate_state"] == "valid, renewal due"
    assert rows["id-003"]["certificate_valid_until"] == "2026-12-31T23:00:00+09:00"
    assert rows["id-004"]["certificate_state"] == "valid"
    assert rows["id-007"]["certificate_state"] == "expired"
    assert rows["id-008"]["certificate_state"] == "revoked"
    entry = AuditEntry.objects.get(action=AuditEntry.Action.IDS_EXPORTED)
    assert entry.actor == olivia


def test_a_formula_in_a_customer_name_is_exported_as_text(ca, contract_a, bob, operator_client):
    contract_a.name = "=HYPERLINK(\"http://evil.example\")"
    contract_a.save()

    text = b"".join(operator_client.get("/operator/dashboard/ids.csv", secure=True).streaming_content).decode()

    assert "'=HYPERLINK" in text


def test_an_operator_without_the_view_permission_on_ids_cannot_export_them(db, ca, behind_proxy):
    staff = User.objects.create_user("oscar-operator", "oscar@bank.example", PASSWORD, is_staff=True)
    client = operator_signed_in(staff)

    assert client.get("/operator/dashboard/ids.csv", secure=True).status_code == 403
    assert not AuditEntry.objects.filter(action=AuditEntry.Action.IDS_EXPORTED).exists()


def test_the_reminder_job_and_the_overview_agree_after_a_real_run(estate):
    """The job records its reminders; the overview's today's row counts those that reached an outcome."""
    result = run_reminder_job(enqueue=enqueue, today=TODAY, now=NOW)
    assert len(result.queued) >= 4
    Reminder.objects.filter(pk__in=result.queued).update(state=Reminder.State.SENT)

    today_row = dashboard.reminder_outcomes_per_day(NOW)[-1]
    assert today_row.counts["sent"] == 1 + len(result.queued)
