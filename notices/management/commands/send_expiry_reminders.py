"""Twin of the daily beat task: record the reminders due today (or on --date) and queue them."""

from __future__ import annotations

from datetime import date

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from accounts.japan_time import days_left
from accounts.jobs import recording
from notices.models import Reminder
from notices.reminders import READ_BATCH, BrokerUnavailable, JobResult, run_reminder_job
from notices.tasks import SEND_EXPIRY_REMINDERS, enqueue


class Command(BaseCommand):
    help = "Record and queue the expiry reminders and administrator digests due today (Japan time)."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--date", help="Run as on this earlier Japan-time date (YYYY-MM-DD) instead of today, to catch up."
        )

    def handle(self, *args, date: str | None = None, **options) -> None:
        now = timezone.now()
        today = timezone.localdate(now)
        if date is not None:
            # Only today or a past day: `now` stays the real time, so an expired certificate gets no reminder.
            today = self._parse_date(date, today=today)
        try:
            with recording(SEND_EXPIRY_REMINDERS) as detail:
                result = run_reminder_job(enqueue=enqueue, today=today, now=now)
                detail.update(result.summary())
        except BrokerUnavailable as unavailable:
            # Recorded and committed, not queued: say what, and fail in one line (no traceback).
            result = unavailable.result
            self.stdout.write(self._summary(result, verb="recorded, not queued"))
            raise CommandError(
                f"{unavailable}; the {len(result.queued) + len(result.requeued)} reminder(s) recorded are queued by "
                "the sweep (every few minutes) once the broker is back"
            ) from None
        queued = (
            Reminder.objects.filter(pk__in=result.queued)
            .select_related("recipient", "certificate")
            .order_by("kind", "pk")
        )
        for reminder in queued.iterator(chunk_size=READ_BATCH):
            self.stdout.write(self._describe(reminder, today))
        self.stdout.write(self._summary(result, verb="queued"))

    @staticmethod
    def _summary(result: JobResult, *, verb: str) -> str:
        requeued = "re-queued" if verb == "queued" else "to re-queue"
        return (
            f"{result.today.isoformat()}: {len(result.queued)} e-mail(s) {verb}, {result.skipped} 30-day reminder(s) "
            f"skipped (already inside 10 days: the 10-day one is sent), {len(result.requeued)} stranded "
            f"reminder(s) {requeued}; run {result.run}"
        )

    @staticmethod
    def _parse_date(value: str, *, today: date) -> date:
        """A day to catch up; never a future one, whose reminders would block the real ones on their day."""
        try:
            day = date.fromisoformat(value)
        except ValueError:
            raise CommandError(f"--date must be a date as YYYY-MM-DD, not {value!r}") from None
        if day > today:
            raise CommandError(
                f"--date {day.isoformat()} is after today ({today.isoformat()}, Japan time): reminders recorded "
                "early would stop the real ones from being sent on their day; only a past date can be caught up"
            )
        return day

    @staticmethod
    def _describe(reminder: Reminder, today: date) -> str:
        user = reminder.recipient
        if reminder.kind == Reminder.Kind.DIGEST:
            return f"queued digest #{reminder.pk} to {user.login_id} <{user.email}>: {len(reminder.items)} ID(s)"
        certificate = reminder.certificate
        expires = timezone.localtime(certificate.not_after)
        return (
            f"queued {reminder.threshold_days}-day reminder #{reminder.pk} to {user.login_id} <{user.email}>: "
            f"certificate {certificate.serial_number} expires {expires:%Y-%m-%d %H:%M} JST "
            f"({days_left(certificate.not_after, today)} days left)"
        )
