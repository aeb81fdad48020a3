"""Expiry reminders and administrators' digests: which are due, recording them, sending each once.

The daily job records every reminder it owes before sending any. Recording is one
INSERT ... SELECT ... ON CONFLICT DO NOTHING for all thresholds: the database picks the due
certificates and the unique constraint on (certificate, threshold) drops those already
recorded, by this run or by a concurrent one, so two runs started together record each
reminder once and each run reads back only the rows it inserted (stamped with its run id).
The tasks are queued after the records commit; each task claims its reminder with a
compare-and-set UPDATE (queued -> sending) before talking to the provider, so a redelivered
task does not send again, except the one a dead worker was sending when it died. The caller
hands in how the tasks are queued (`enqueue`), so that this module never imports notices.tasks.
"""

from __future__ import annotations

import enum
import logging
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import requests
from anymail.exceptions import AnymailInvalidAddress, AnymailRecipientsRefused, AnymailRequestsAPIError
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError

from accounts import audit
from accounts.japan_time import japan_day_start
from accounts.models import User
from certificates.models import Certificate

from . import emails
from .models import NoticeAction, PendingTrackingEvent, Reminder, ReminderAttempt

log = logging.getLogger(__name__)

READ_BATCH = 2000
# A task may run this much before its reminder's next attempt is due (the clocks of the worker's ETA
# and of the database row differ a little).
DUE_SLACK = timedelta(seconds=1)
# Unmatched tracking events older than this belong to no e-mail of ours: the sweep drops them.
PENDING_EVENTS_KEPT = timedelta(days=7)

# How reminders' IDs reach the workers, handed in by the caller (notices.tasks.enqueue): this module
# never imports the tasks module, which imports it.
Enqueue = Callable[[list[int]], None]


class TryLater(Exception):  # noqa: N818 (a signal to the task, not an error)
    """The reminder could not be sent now; its task should run again in `seconds`."""

    def __init__(self, seconds: float, reason: str) -> None:
        super().__init__(reason)
        self.seconds = max(1.0, seconds)


class ResendRefused(Exception):
    pass


class BrokerUnavailable(Exception):
    """The reminders were recorded (committed) but their tasks could not be queued: the sweep queues
    them once the broker is back."""

    def __init__(self, result: JobResult, error: Exception) -> None:
        super().__init__(f"the Celery broker is unreachable ({error})")
        self.result = result


class Outcome(enum.StrEnum):
    SENT = "sent"
    FAILED = "failed"
    CANCELLED = "cancelled"
    ALREADY_DONE = "already_done"
    GONE = "gone"
    UNCERTAIN = "uncertain"


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


def run_reminder_job(*, enqueue: Enqueue, today: date | None = None, now: datetime | None = None) -> JobResult:
    """Record every reminder due on `today` (a Japan-time date) and queue one task for each.

    `enqueue` queues the reminders' IDs (notices.tasks.enqueue), called once the records are committed.
    `now` bounds the selection from below: a certificate already expired gets no reminder.
    Re-running, or running twice at once, records nothing twice.
    """
    now = now or timezone.now()
    today = today or timezone.localdate(now)
    result = JobResult(run=uuid.uuid4(), today=today)
    with transaction.atomic():
        result.skipped = _record_expiry_reminders(run=result.run, today=today, now=now)
        if settings.ADMIN_DIGEST_ENABLED:
            # Dated and selected on the real day, whatever day is caught up: one digest a day at most.
            _record_digests(run=result.run, today=timezone.localdate(now), now=now)
        result.queued = list(
            Reminder.objects.filter(run=result.run, state=Reminder.State.QUEUED).order_by("pk").values_list(
                "pk", flat=True
            )
        )
        result.requeued = _claim_stranded(now=now, excluding_run=result.run)
        ids = result.queued + result.requeued

        def queue_them() -> None:
            try:
                enqueue(ids)
            except (BrokerError, OSError) as error:
                raise BrokerUnavailable(result, error) from error

        if ids:
            transaction.on_commit(queue_them)
    return result


def _claim_stranded(*, now: datetime, excluding_run: uuid.UUID | None = None) -> list[int]:
    """Reminders whose task was lost, moved forward so that the next sweep leaves them to the task
    queued now (a reminder still "sending" past its lease is taken over by that task)."""
    stranded = Reminder.objects.stranded(now=now)
    if excluding_run is not None:
        stranded = stranded.exclude(run=excluding_run)
    ids = list(stranded.order_by("pk").values_list("pk", flat=True))
    # The same filter (not the ids): one query however many were found.
    stranded.filter(state=Reminder.State.QUEUED).update(next_attempt_at=now)
    return ids


def _record_expiry_reminders(*, run: uuid.UUID, today: date, now: datetime) -> int:
    """Every threshold's reminders in one INSERT ... SELECT; returns how many were recorded skipped.

    The certificates due within the widest threshold are selected once, as telling which certificate
    each ID relies on is most of the work and the same for every threshold. Each is paired with
    every threshold whose window holds it. Inside a smaller threshold's window, the larger threshold's
    reminder is recorded skipped: the smaller one says it all.
    """
    thresholds = sorted(settings.REMINDER_THRESHOLDS_DAYS)
    due = (
        Certificate.objects.due_for_reminder(thresholds[-1], today, now)
        .exclude(owner__state=User.State.SUSPENDED)  # it cannot renew; its administrator is told
        .order_by()
        .values(due_id=F("pk"), due_owner=F("owner_id"), due_expiry=F("not_after"))
    )
    due_sql, due_params = due.query.sql_with_params()
    windows, window_params = [], []
    skip_before = now  # the smallest threshold skips none: every due certificate expires after now
    for days in thresholds:
        window_end = japan_day_start(today + timedelta(days=days + 1))
        windows.append("SELECT %s AS days, %s AS window_end, %s AS skip_before")
        window_params += [days, *(connection.ops.adapt_datetimefield_value(at) for at in (window_end, skip_before))]
        skip_before = window_end

    def stored(name: str, value: object) -> object:
        return Reminder._meta.get_field(name).get_db_prep_save(value, connection)

    constants = {
        "kind": Reminder.Kind.EXPIRY, "items": [], "run": run, "created_at": now, "queued_at": now,
        "next_attempt_at": now, "attempts": 0, "sent_to": "", "message_id": "", "last_error": "",
    }
    columns = ["recipient_id", "certificate_id", "threshold_days", "state", *constants]
    quote = connection.ops.quote_name
    reminders = quote(Reminder._meta.db_table)
    # Those recorded already, by an earlier run or a concurrent one, are dropped by the unique constraint
    # (certificate, threshold): a probe of its index per row, whatever the table's statistics say.
    # (The join's condition is in WHERE, which SQLite needs before ON CONFLICT.)
    sql = (
        f"INSERT INTO {reminders} ({', '.join(map(quote, columns))}) "  # noqa: S608 (names from the model)
        f"SELECT due.due_owner, due.due_id, threshold.days, "
        f"CASE WHEN due.due_expiry < threshold.skip_before THEN %s ELSE %s END, {', '.join(['%s'] * len(constants))} "
        f"FROM ({due_sql}) due, ({' UNION ALL '.join(windows)}) threshold "
        f"WHERE due.due_expiry < threshold.window_end "
        f"ON CONFLICT DO NOTHING"
    )
    params = [
        Reminder.State.SKIPPED, Reminder.State.QUEUED, *(stored(name, value) for name, value in constants.items()),
        *due_params, *window_params,
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
    return Reminder.objects.filter(run=run, kind=Reminder.Kind.EXPIRY, state=Reminder.State.SKIPPED).count()


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


def queue_after_commit(reminder_ids: Iterable[int], *, enqueue: Enqueue) -> None:
    """One task per reminder, queued once the records are committed (never for a rolled-back one)."""
    ids = list(reminder_ids)
    if ids:
        transaction.on_commit(lambda: enqueue(ids))


# --- sending ------------------------------------------------------------------------------


def backoff_seconds(attempts: int) -> float:
    """Exponential: base, 2x base, 4x base ... capped."""
    return min(settings.REMINDER_RETRY_BASE_SECONDS * 2 ** max(0, attempts - 1), settings.REMINDER_RETRY_MAX_SECONDS)


def deliver_reminder(*, reminder_id: int, now: datetime | None = None) -> Outcome:
    """Send one reminder unless it was already sent. Raises TryLater while the provider fails.

    The compare-and-set queued -> sending is the claim: of two tasks for one reminder only one
    sends. Every try is recorded (ReminderAttempt) before the provider is called. A try whose
    outcome is unknown (no answer in time, the worker died mid-send) may have sent the e-mail: one
    more is sent only after REMINDER_UNCERTAIN_HOLD_SECONDS (or the lease), when a tracking event
    has not settled it meanwhile; after a second unknown outcome none is.
    """
    now = now or timezone.now()
    claimed = Reminder.objects.filter(
        pk=reminder_id, state=Reminder.State.QUEUED, next_attempt_at__lte=now + DUE_SLACK
    ).update(state=Reminder.State.SENDING, sending_since=now, attempts=F("attempts") + 1)
    if not claimed:
        reminder = Reminder.objects.filter(pk=reminder_id).only("state", "sending_since", "next_attempt_at").first()
        if reminder is None:
            return Outcome.GONE
        if reminder.state == Reminder.State.QUEUED:
            # A retry woken early (it never waits longer than half the broker's visibility timeout).
            raise TryLater((reminder.next_attempt_at - now).total_seconds(), "its next attempt is not due yet")
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
        ReminderAttempt.objects.filter(reminder_id=reminder_id, outcome=ReminderAttempt.Outcome.SENDING).update(
            outcome=ReminderAttempt.Outcome.UNCERTAIN, finished_at=now, error="the worker died while sending it"
        )
        log.warning("reminder %s: the worker sending it died; sending it again", reminder_id)

    reminder = Reminder.objects.select_related("recipient", "certificate").get(pk=reminder_id)
    # Since it was (re)queued: an operator's resend starts the count again.
    unknown = reminder.tries.filter(
        outcome=ReminderAttempt.Outcome.UNCERTAIN, started_at__gte=reminder.queued_at
    ).count()
    if unknown >= 2:
        log.error("reminder %s: %s tries without an answer from the provider; not sent again", reminder_id, unknown)
        _finish(reminder_id, Reminder.State.UNCERTAIN, failing_since=None,
                last_error="the provider did not answer twice: probably sent, not sent a third time")
        return Outcome.UNCERTAIN
    if reminder.kind == Reminder.Kind.EXPIRY and not _still_relied_on(reminder.certificate_id):
        # Recorded days ago (the provider was down, say) and replaced by a certificate in use, or
        # revoked since: not sent. (One delayed past the expiry still goes: it then says how to
        # obtain a new certificate; one renewed but never used still goes: it says to use the file.)
        _finish(reminder_id, Reminder.State.CANCELLED, last_error="the certificate was renewed or revoked")
        return Outcome.CANCELLED
    if reminder.kind == Reminder.Kind.DIGEST:
        reminder.items = still_due_items(reminder.items, now=now)
        if not reminder.items:
            _finish(reminder_id, Reminder.State.CANCELLED, items=[],
                    last_error="every listed ID has renewed (or was revoked) since the digest was recorded")
            return Outcome.CANCELLED
        Reminder.objects.filter(pk=reminder_id).update(items=reminder.items)
    attempt = ReminderAttempt.objects.create(reminder=reminder, number=reminder.attempts, started_at=now)
    try:
        message = emails.reminder_message(reminder, now=now, attempt_id=attempt.pk)
        message.send()
    except (AnymailRecipientsRefused, AnymailInvalidAddress) as refusal:
        _close(attempt, ReminderAttempt.Outcome.REFUSED, error=str(refusal))
        _finish(reminder_id, Reminder.State.FAILED, last_error=str(refusal))
        return Outcome.FAILED
    except Exception as error:  # noqa: BLE001 (whatever breaks a send is recorded, retried and given up)
        return _failed_try(reminder, attempt, error, now=now)
    status = getattr(message, "anymail_status", None)
    message_id = (status.message_id or "") if status is not None else ""
    _close(attempt, ReminderAttempt.Outcome.ACCEPTED, message_id=message_id)
    _finish(
        reminder_id, Reminder.State.SENT, sent_at=now, sent_to=message.to[0], message_id=message_id,
        last_error="", failing_since=None,
    )
    if message_id:
        apply_pending_events(message_ids=[message_id])
    return Outcome.SENT


def outcome_unknown(error: BaseException) -> bool:
    """True when the provider may have accepted the e-mail although the send raised: the request was
    sent and no answer came (read timeout, connection dropped mid-response), or it answered 2xx with
    something unreadable. A connection never made, or an error answer, sent nothing."""
    if isinstance(error, AnymailRequestsAPIError) and error.status_code is not None:
        return 200 <= error.status_code < 300  # an answer: an error status sent nothing
    if isinstance(error, requests.ConnectTimeout):
        return False
    if isinstance(error, requests.ConnectionError):
        cause = error.__cause__ or error
        text = repr(cause.args) if getattr(cause, "args", None) else repr(cause)
        return not any(sign in text for sign in ("NewConnectionError", "Connection refused", "Name or service"))
    return isinstance(error, requests.RequestException)


def _failed_try(reminder: Reminder, attempt: ReminderAttempt, error: Exception, *, now: datetime) -> Outcome:
    unknown = outcome_unknown(error)
    text = f"{type(error).__name__}: {error}"
    if error.__cause__ is not None:
        text += f" ({type(error.__cause__).__name__}: {error.__cause__})"
    if unknown:
        text = f"no answer from the provider, the e-mail may have been sent: {text}"
    elif not isinstance(error, AnymailRequestsAPIError):
        log.warning("reminder %s: sending raised %s", reminder.pk, text)
    _close(attempt, ReminderAttempt.Outcome.UNCERTAIN if unknown else ReminderAttempt.Outcome.FAILED, error=text)
    if now >= reminder.queued_at + timedelta(hours=settings.REMINDER_GIVE_UP_HOURS):
        log.error("reminder %s: giving up after %s attempts: %s", reminder.pk, reminder.attempts, text)
        _finish(reminder.pk, Reminder.State.FAILED, last_error=text)
        return Outcome.FAILED
    delay = settings.REMINDER_UNCERTAIN_HOLD_SECONDS if unknown else backoff_seconds(reminder.attempts)
    Reminder.objects.filter(pk=reminder.pk, state=Reminder.State.SENDING).update(
        state=Reminder.State.QUEUED, sending_since=None, next_attempt_at=now + timedelta(seconds=delay),
        last_error=text[:2000], failing_since=Coalesce(F("failing_since"), Value(now)),
    )
    if unknown:
        # A tracking event that arrived while this try was waiting settles it now (no second copy).
        named = ReminderAttempt.objects.filter(pk=attempt.pk).values_list("message_id", flat=True).first()
        if named and apply_pending_events(message_ids=[named]):
            return Outcome.ALREADY_DONE
    raise TryLater(delay, text)


def _still_relied_on(certificate_id: int) -> bool:
    """Not revoked, and no newer certificate of the ID used yet: its reminder still tells the truth."""
    return Certificate.objects.relied_on().filter(pk=certificate_id).exists()


def still_due_items(items: list[dict], *, now: datetime) -> list[dict]:
    """A digest's list as of `now`: the listed IDs whose relied-on certificate is still inside the
    renewal window (renewed and used, or revoked, since: dropped), each with its current expiry."""
    login_ids = [item["login_id"] for item in items]
    unused_renewal = Certificate.objects.filter(
        owner=OuterRef("owner"), not_before__gt=OuterRef("not_before"), revoked_at__isnull=True,
        first_used_at__isnull=True,
    )
    due = (
        Certificate.objects.due_for_reminder(settings.RENEWAL_WINDOW_DAYS, timezone.localdate(now), now)
        .filter(owner__login_id__in=login_ids)
        .annotate(renewed_unused=Exists(unused_renewal))
        .order_by("not_after", "owner__login_id")
        .values_list("owner__login_id", "not_after", "renewed_unused")
    )
    return [
        {"login_id": login_id, "not_after": not_after.isoformat(), "renewed_unused": renewed_unused}
        for login_id, not_after, renewed_unused in due
    ]


def _close(attempt: ReminderAttempt, outcome: str, *, message_id: str = "", error: str = "") -> None:
    fields = {"outcome": outcome, "finished_at": timezone.now(), "error": error[:2000]}
    if message_id:  # else keep the one a tracking event may have named meanwhile
        fields["message_id"] = message_id
    ReminderAttempt.objects.filter(pk=attempt.pk).update(**fields)


def _finish(reminder_id: int, state: Reminder.State, **fields) -> None:
    Reminder.objects.filter(pk=reminder_id, state=Reminder.State.SENDING).update(
        state=state, sending_since=None, last_error=fields.pop("last_error", "")[:2000], **fields
    )


# --- tracking events ------------------------------------------------------------------------

S = Reminder.State
# event type -> (new state, the states it may follow). A delivery or a bounce proves the e-mail went
# out: it settles a reminder held after an unknown outcome (queued) or left uncertain. A bounce may
# follow a "delivered" (an asynchronous bounce); nothing moves a reminder back from bounced or failed.
TRANSITIONS: dict[str, tuple[Reminder.State, tuple[Reminder.State, ...]]] = {
    "delivered": (S.DELIVERED, (S.SENT, S.QUEUED, S.UNCERTAIN)),
    "bounced": (S.BOUNCED, (S.SENT, S.DELIVERED, S.QUEUED, S.UNCERTAIN)),
    "rejected": (S.FAILED, (S.SENT, S.UNCERTAIN)),
    "failed": (S.FAILED, (S.SENT, S.UNCERTAIN)),
}


def record_tracking_event(
    *, message_id: str, event_type: str, at: datetime | None = None, detail: str = "", attempt_id: str = "",
    reminder_id: str = "",
) -> int:
    """Apply one provider event to the attempt that sent that e-mail (by its message id, or by the
    attempt id the e-mail carries in its metadata) and to its reminder. An event that matches no
    attempt yet, or whose reminder is being sent right now, is kept and applied later.
    Returns how many reminders changed."""
    if not message_id or event_type not in TRANSITIONS:
        return 0
    at = at or timezone.now()
    attempt = ReminderAttempt.objects.filter(message_id=message_id).first()
    if attempt is None and attempt_id.isdigit():
        attempt = ReminderAttempt.objects.filter(pk=int(attempt_id)).first()
        if attempt is not None and not attempt.message_id:
            # Its send has not returned yet (or never did: no answer in time): the event names its id.
            ReminderAttempt.objects.filter(pk=attempt.pk, message_id="").update(message_id=message_id)
    if attempt is None and not reminder_id:
        # Not one of our reminders (a one-time code's e-mail, say): nothing to apply it to.
        log.info("tracking event %s for message %s matches no reminder", event_type, message_id)
        return 0
    if attempt is None or not _apply(attempt, event_type=event_type, at=at, detail=detail):
        PendingTrackingEvent.objects.create(message_id=message_id, event_type=event_type, occurred_at=at,
                                            detail=detail[:2000])
        log.info("tracking event %s for message %s kept until its attempt is recorded", event_type, message_id)
        return 0
    return 1


def _apply(attempt: ReminderAttempt, *, event_type: str, at: datetime, detail: str) -> bool:
    """False when it cannot be applied yet (the reminder is being sent right now)."""
    state, follows = TRANSITIONS[event_type]
    ReminderAttempt.objects.filter(pk=attempt.pk).update(event=event_type, tracked_at=at)
    fields = {"state": state, "tracked_at": at, "failing_since": None}
    if state in (S.BOUNCED, S.FAILED) and detail:
        fields["last_error"] = detail[:2000]
    reminders = Reminder.objects.filter(pk=attempt.reminder_id)
    if reminders.filter(state__in=follows).update(**fields):
        reminders.filter(message_id="").update(message_id=attempt.message_id or "")
        return True
    if reminders.filter(state=S.SENDING).exists():
        return False
    log.info("tracking event %s for attempt %s changed no reminder", event_type, attempt.pk)
    return True


def apply_pending_events(*, message_ids: Iterable[str] | None = None, now: datetime | None = None) -> int:
    """Apply kept events whose attempt is now known (all of them, or those of `message_ids`)."""
    pending = PendingTrackingEvent.objects.order_by("occurred_at", "pk")
    if message_ids is not None:
        pending = pending.filter(message_id__in=list(message_ids))
    applied = 0
    for event in pending:
        attempt = ReminderAttempt.objects.filter(message_id=event.message_id).first()
        if attempt is not None and _apply(attempt, event_type=event.event_type, at=event.occurred_at,
                                          detail=event.detail):
            event.delete()
            applied += 1
    if message_ids is None:
        cutoff = (now or timezone.now()) - PENDING_EVENTS_KEPT
        PendingTrackingEvent.objects.filter(received_at__lt=cutoff).delete()
    return applied


# --- the sweep ------------------------------------------------------------------------------


@dataclass
class SweepResult:
    requeued: list[int] = field(default_factory=list)
    events_applied: int = 0
    alerted: list[int] = field(default_factory=list)


def sweep(*, enqueue: Enqueue, now: datetime | None = None) -> SweepResult:
    """Every few minutes (beat; `manage.py sweep_reminders` is its twin): re-queue reminders whose
    task was lost, apply tracking events kept for later, and log at ERROR, once an hour each, the
    reminders still failing after REMINDER_ALERT_AFTER_MINUTES."""
    now = now or timezone.now()
    result = SweepResult()
    with transaction.atomic():
        result.requeued = _claim_stranded(now=now)
        queue_after_commit(result.requeued, enqueue=enqueue)
    result.events_applied = apply_pending_events(now=now)
    result.alerted = alert_failing(now=now)
    return result


def alert_failing(*, now: datetime) -> list[int]:
    hours = settings.REMINDER_ALERT_AFTER_MINUTES / 60
    due = (
        Reminder.objects.failing_for(hours, now=now)
        .filter(Q(alerted_at__isnull=True) | Q(alerted_at__lte=now - timedelta(hours=1)))
        .select_related("recipient")
        .order_by("failing_since", "pk")
    )
    alerted = []
    for reminder in due[:READ_BATCH]:
        log.error(
            "reminder %s to %s has been failing since %s (%s attempts): %s", reminder.pk,
            reminder.recipient.login_id, timezone.localtime(reminder.failing_since).isoformat(timespec="minutes"),
            reminder.attempts, reminder.last_error,
        )
        alerted.append(reminder.pk)
    Reminder.objects.filter(pk__in=alerted).update(alerted_at=now)
    return alerted


# --- operators ----------------------------------------------------------------------------


def resend_reminder(*, reminder: Reminder, by: User, enqueue: Enqueue, now: datetime | None = None) -> Reminder:
    """Queue a reminder again (after a bounce or a failure, once the address is corrected)."""
    now = now or timezone.now()
    with transaction.atomic():
        reminder = Reminder.objects.select_for_update(of=("self",)).select_related("recipient", "certificate").get(
            pk=reminder.pk
        )
        if reminder.state in (Reminder.State.QUEUED, Reminder.State.SENDING):
            raise ResendRefused(f"Reminder {reminder.pk} is already {reminder.get_state_display()}.")
        if reminder.state == Reminder.State.SKIPPED:
            raise ResendRefused(
                f"Reminder {reminder.pk} was skipped: its certificate was already inside 10 days, "
                "so the 10-day reminder is the one to resend."
            )
        if reminder.state == Reminder.State.CANCELLED:
            raise ResendRefused(
                f"Reminder {reminder.pk} was cancelled ({reminder.last_error or 'renewed or revoked'}): "
                "it would tell the customer something no longer true."
            )
        previous_state, previous_message_id = reminder.state, reminder.message_id
        reminder.state = Reminder.State.QUEUED
        reminder.queued_at = reminder.next_attempt_at = now
        reminder.message_id = reminder.last_error = ""
        reminder.sent_at = reminder.tracked_at = reminder.failing_since = reminder.alerted_at = None
        reminder.save(update_fields=[
            "state", "queued_at", "next_attempt_at", "message_id", "last_error", "sent_at", "tracked_at",
            "failing_since", "alerted_at",
        ])
        audit.record(
            NoticeAction.REMINDER_RESENT, subject=reminder.recipient, actor=by,
            certificate_serial=reminder.certificate.serial_number if reminder.certificate else "",
            reminder=reminder.pk, kind=reminder.kind, threshold_days=reminder.threshold_days,
            previous_state=previous_state, previous_message_id=previous_message_id or None,
        )
        queue_after_commit([reminder.pk], enqueue=enqueue)
    return reminder
