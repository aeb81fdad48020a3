"""Expiry reminders and administrators' digests: which are due, recording them, sending each once.

The daily job records every reminder it owes before sending any. Recording is one
INSERT ... SELECT ... ON CONFLICT DO NOTHING per threshold: the database picks the due
certificates and the unique constraint on (certificate, threshold) drops those already
recorded, by this run or by a concurrent one, so two runs started together record each
reminder once and each run reads back only the rows it inserted (stamped with its run id).
The tasks are queued after the records commit; each task claims its reminder with a
compare-and-set UPDATE (queued -> sending) before talking to the provider, so a redelivered
task does not send again, except the one a dead worker was sending when it died.
"""

from __future__ import annotations

import enum
import logging
import smtplib
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from anymail.exceptions import AnymailAPIError, AnymailInvalidAddress, AnymailRecipientsRefused
from django.conf import settings
from django.db import connection, models, transaction
from django.db.models import Case, Exists, F, OuterRef, Value, When
from django.utils import timezone

from accounts import audit
from accounts.models import AuditEntry, User
from certificates.japan_time import japan_day_start
from certificates.models import Certificate

from . import emails
from .models import Reminder

log = logging.getLogger(__name__)

# A reminder recorded but still queued this long after its attempt was due lost its task.
STRANDED_AFTER = timedelta(hours=1)
READ_BATCH = 2000


class TryLater(Exception):  # noqa: N818 (a signal to the task, not an error)
    """The reminder could not be sent now; its task should run again in `seconds`."""

    def __init__(self, seconds: float, reason: str) -> None:
        super().__init__(reason)
        self.seconds = max(1.0, seconds)


class ResendRefused(Exception):
    pass


class Outcome(enum.StrEnum):
    SENT = "sent"
    FAILED = "failed"
    CANCELLED = "cancelled"
    ALREADY_DONE = "already_done"
    GONE = "gone"


@dataclass
class JobResult:
    run: uuid.UUID
    today: date
    queued: list[int] = field(default_factory=list)  # reminders this run recorded and queued
    skipped: int = 0  # 30-day reminders recorded as skipped: the certificate was already inside 10 days
    requeued: list[int] = field(default_factory=list)  # earlier reminders whose task was lost

    def summary(self) -> dict:
        return {"date": self.today.isoformat(), "queued": len(self.queued), "skipped": self.skipped,
                "requeued": len(self.requeued)}


# --- selecting and recording ------------------------------------------------------------------


def run_reminder_job(*, today: date | None = None, now: datetime | None = None) -> JobResult:
    """Record every reminder due on `today` (a Japan-time date) and queue one task for each.

    `now` bounds the selection from below: a certificate already expired gets no reminder.
    Re-running, or running twice at once, records nothing twice.
    """
    now = now or timezone.now()
    today = today or timezone.localdate(now)
    result = JobResult(run=uuid.uuid4(), today=today)
    with transaction.atomic():
        result.skipped = _record_expiry_reminders(run=result.run, today=today, now=now)
        if settings.ADMIN_DIGEST_ENABLED:
            _record_digests(run=result.run, today=today, now=now)
        result.queued = list(
            Reminder.objects.filter(run=result.run, state=Reminder.State.QUEUED).order_by("pk").values_list(
                "pk", flat=True
            )
        )
        result.requeued = list(
            Reminder.objects.stranded(older_than=now - STRANDED_AFTER).exclude(run=result.run).values_list(
                "pk", flat=True
            )
        )
        queue_after_commit(result.queued + result.requeued)
    return result


def _record_expiry_reminders(*, run: uuid.UUID, today: date, now: datetime) -> int:
    """One INSERT ... SELECT per threshold, smallest first; returns how many were recorded skipped."""
    thresholds = sorted(settings.REMINDER_THRESHOLDS_DAYS)
    skipped = 0
    for index, threshold in enumerate(thresholds):
        state: models.Expression = Value(Reminder.State.QUEUED)
        if index > 0:
            # Inside a smaller threshold already: that reminder says it all; this one is skipped.
            inside_smaller = japan_day_start(today + timedelta(days=thresholds[index - 1] + 1))
            state = Case(
                When(not_after__lt=inside_smaller, then=Value(Reminder.State.SKIPPED)),
                default=Value(Reminder.State.QUEUED),
                output_field=models.CharField(),
            )
        already = Reminder.objects.filter(
            kind=Reminder.Kind.EXPIRY, certificate=OuterRef("pk"), threshold_days=threshold
        )
        due = (
            Certificate.objects.due_for_reminder(threshold, today, now)
            .exclude(owner__state=User.State.SUSPENDED)  # it cannot renew; its administrator is told
            .exclude(Exists(already))
            .order_by()
        )
        columns = {
            "kind": Value(Reminder.Kind.EXPIRY),
            "recipient_id": F("owner_id"),
            "certificate_id": F("pk"),
            "threshold_days": Value(threshold, output_field=models.PositiveSmallIntegerField()),
            "items": Value([], output_field=models.JSONField()),
            "state": state,
            "run": Value(run, output_field=models.UUIDField()),
            "created_at": Value(now, output_field=models.DateTimeField()),
            "queued_at": Value(now, output_field=models.DateTimeField()),
            "next_attempt_at": Value(now, output_field=models.DateTimeField()),
            "attempts": Value(0, output_field=models.PositiveSmallIntegerField()),
            "sent_to": Value(""),
            "message_id": Value(""),
            "last_error": Value(""),
        }
        _insert_ignoring_conflicts(due.values_list(*columns.values()), list(columns))
        if index > 0:
            skipped += Reminder.objects.filter(run=run, threshold_days=threshold, state=Reminder.State.SKIPPED).count()
    return skipped


def _insert_ignoring_conflicts(select: models.QuerySet, columns: list[str]) -> int:
    """INSERT INTO reminder (columns) <select> ON CONFLICT DO NOTHING (PostgreSQL and SQLite >= 3.24)."""
    sql, params = select.query.sql_with_params()
    quoted = ", ".join(connection.ops.quote_name(column) for column in columns)
    table = connection.ops.quote_name(Reminder._meta.db_table)
    with connection.cursor() as cursor:
        # Only identifiers from the model and the ORM's own SQL are interpolated; values are parameters.
        cursor.execute(f"INSERT INTO {table} ({quoted}) {sql} ON CONFLICT DO NOTHING", params)  # noqa: S608
        return cursor.rowcount


def _record_digests(*, run: uuid.UUID, today: date, now: datetime) -> None:
    """One digest per administrator ID of each contract with IDs inside the renewal window."""
    window = (
        Certificate.objects.due_for_reminder(settings.RENEWAL_WINDOW_DAYS, today, now)
        .filter(owner__contract__isnull=False)
        .order_by("owner__contract_id", "not_after", "owner__login_id")
        .values_list("owner__contract_id", "owner__login_id", "not_after")
    )
    listed: dict[int, list[dict]] = defaultdict(list)
    for contract_id, login_id, not_after in window.iterator(chunk_size=READ_BATCH):
        listed[contract_id].append({"login_id": login_id, "not_after": not_after.isoformat()})
    if not listed:
        return
    administrators = _administrators_of(listed)
    Reminder.objects.bulk_create(
        [
            Reminder(
                kind=Reminder.Kind.DIGEST, recipient_id=admin_id, digest_date=today, items=listed[contract_id],
                run=run, created_at=now, queued_at=now, next_attempt_at=now,
            )
            for admin_id, contract_id in administrators
        ],
        batch_size=1000,
        ignore_conflicts=True,  # a concurrent run recorded today's digest first: it sends it
    )


def _administrators_of(listed: dict[int, list[dict]]) -> list[tuple[int, int]]:
    contract_ids = list(listed)
    found: list[tuple[int, int]] = []
    for start in range(0, len(contract_ids), READ_BATCH):
        found += User.objects.filter(
            role=User.Role.ADMINISTRATOR, contract_id__in=contract_ids[start : start + READ_BATCH]
        ).exclude(state=User.State.SUSPENDED).values_list("pk", "contract_id")
    return found


def queue_after_commit(reminder_ids: Iterable[int]) -> None:
    """One task per reminder, queued once the records are committed (never for a rolled-back one)."""
    ids = list(reminder_ids)
    if ids:
        transaction.on_commit(lambda: enqueue(ids))


def enqueue(reminder_ids: Iterable[int]) -> None:
    from .tasks import send_reminder  # the tasks module imports this one

    # One producer (one broker connection) for the whole batch, not one acquired per task.
    with send_reminder.app.producer_or_acquire() as producer:
        for reminder_id in reminder_ids:
            send_reminder.apply_async((reminder_id,), producer=producer)


# --- sending ------------------------------------------------------------------------------


def backoff_seconds(attempts: int) -> float:
    """Exponential: base, 2x base, 4x base ... capped."""
    return min(settings.REMINDER_RETRY_BASE_SECONDS * 2 ** max(0, attempts - 1), settings.REMINDER_RETRY_MAX_SECONDS)


def deliver_reminder(*, reminder_id: int, now: datetime | None = None) -> Outcome:
    """Send one reminder unless it was already sent. Raises TryLater while the provider fails.

    The compare-and-set queued -> sending is the claim: of two tasks for one reminder only
    one sends. A reminder left "sending" longer than the lease was being sent by a worker
    that died; it is sent again (the one e-mail that may go out twice).
    """
    now = now or timezone.now()
    claimed = Reminder.objects.filter(pk=reminder_id, state=Reminder.State.QUEUED).update(
        state=Reminder.State.SENDING, sending_since=now, attempts=F("attempts") + 1
    )
    if not claimed:
        reminder = Reminder.objects.filter(pk=reminder_id).only("state", "sending_since").first()
        if reminder is None:
            return Outcome.GONE
        if reminder.state != Reminder.State.SENDING:
            return Outcome.ALREADY_DONE
        lease_end = reminder.sending_since + timedelta(seconds=settings.REMINDER_SENDING_LEASE_SECONDS)
        if now < lease_end:
            raise TryLater((lease_end - now).total_seconds(), "another worker is sending it")
        taken_over = Reminder.objects.filter(
            pk=reminder_id, state=Reminder.State.SENDING, sending_since=reminder.sending_since
        ).update(sending_since=now, attempts=F("attempts") + 1)
        if not taken_over:
            return Outcome.ALREADY_DONE
        log.warning("reminder %s: the worker sending it died; sending it again", reminder_id)

    reminder = Reminder.objects.select_related("recipient", "certificate").get(pk=reminder_id)
    if reminder.kind == Reminder.Kind.EXPIRY and not _still_current(reminder.certificate_id):
        # Recorded days ago (the provider was down, say) and renewed or revoked since: not sent.
        # (One delayed past the expiry still goes: it then says how to obtain a new certificate.)
        _finish(reminder_id, Reminder.State.CANCELLED, last_error="the certificate was renewed or revoked")
        return Outcome.CANCELLED
    message = emails.reminder_message(reminder, now=now)
    try:
        message.send()
    except (AnymailRecipientsRefused, AnymailInvalidAddress) as refusal:
        _finish(reminder_id, Reminder.State.FAILED, last_error=str(refusal))
        return Outcome.FAILED
    except (AnymailAPIError, OSError, smtplib.SMTPException) as error:
        if now >= reminder.queued_at + timedelta(hours=settings.REMINDER_GIVE_UP_HOURS):
            log.error("reminder %s: giving up after %s attempts: %s", reminder_id, reminder.attempts, error)
            _finish(reminder_id, Reminder.State.FAILED, last_error=str(error))
            return Outcome.FAILED
        delay = backoff_seconds(reminder.attempts)
        Reminder.objects.filter(pk=reminder_id, state=Reminder.State.SENDING).update(
            state=Reminder.State.QUEUED, sending_since=None, next_attempt_at=now + timedelta(seconds=delay),
            last_error=str(error)[:2000],
        )
        raise TryLater(delay, f"the provider failed: {error}") from error
    status = getattr(message, "anymail_status", None)
    _finish(
        reminder_id, Reminder.State.SENT, sent_at=now, sent_to=message.to[0],
        message_id=(status.message_id or "") if status is not None else "", last_error="",
    )
    return Outcome.SENT


def _still_current(certificate_id: int) -> bool:
    """Not revoked, and no newer certificate issued: its reminder still tells the truth."""
    return Certificate.objects.current().filter(pk=certificate_id).exists()


def _finish(reminder_id: int, state: Reminder.State, **fields) -> None:
    Reminder.objects.filter(pk=reminder_id, state=Reminder.State.SENDING).update(
        state=state, sending_since=None, last_error=fields.pop("last_error", "")[:2000], **fields
    )


# --- operators ----------------------------------------------------------------------------


def resend_reminder(*, reminder: Reminder, by: User, now: datetime | None = None) -> Reminder:
    """Queue a reminder again (after a bounce or a failure, once the address is corrected)."""
    now = now or timezone.now()
    with transaction.atomic():
        reminder = Reminder.objects.select_for_update(of=("self",)).select_related("recipient", "certificate").get(
            pk=reminder.pk
        )
        if reminder.state in (Reminder.State.QUEUED, Reminder.State.SENDING):
            raise ResendRefused(f"Reminder {reminder.pk} is already {reminder.get_state_display()}.")
        previous_state, previous_message_id = reminder.state, reminder.message_id
        reminder.state = Reminder.State.QUEUED
        reminder.queued_at = reminder.next_attempt_at = now
        reminder.message_id = reminder.last_error = ""
        reminder.sent_at = reminder.tracked_at = None
        reminder.save(update_fields=[
            "state", "queued_at", "next_attempt_at", "message_id", "last_error", "sent_at", "tracked_at",
        ])
        audit.record(
            AuditEntry.Action.REMINDER_RESENT, subject=reminder.recipient, actor=by,
            certificate_serial=reminder.certificate.serial_number if reminder.certificate else "",
            reminder=reminder.pk, kind=reminder.kind, threshold_days=reminder.threshold_days,
            previous_state=previous_state, previous_message_id=previous_message_id or None,
        )
        queue_after_commit([reminder.pk])
    return reminder
