"""Thin Celery wrappers: the daily reminder job and one task per reminder e-mail."""

from __future__ import annotations

from collections.abc import Iterable

from celery import shared_task
from django.conf import settings

from accounts.jobs import recording

from . import reminders

SEND_EXPIRY_REMINDERS = "notices.tasks.send_expiry_reminders"


@shared_task(name=SEND_EXPIRY_REMINDERS)
def send_expiry_reminders() -> dict:
    """Beat runs this daily at REMINDER_TIME (Japan time); `manage.py send_expiry_reminders` is its twin."""
    with recording(SEND_EXPIRY_REMINDERS) as detail:
        detail.update(reminders.run_reminder_job(enqueue=enqueue).summary())
    return detail


@shared_task(bind=True, name="notices.tasks.send_reminder", max_retries=None, acks_late=True)
def send_reminder(self, reminder_id: int) -> str:
    """Send one reminder; while the provider fails, run again after an exponential backoff.

    Retries are unlimited here: deliver_reminder gives up (state "failed") only once
    REMINDER_GIVE_UP_HOURS have passed since the reminder was queued.
    """
    try:
        return str(reminders.deliver_reminder(reminder_id=reminder_id))
    except reminders.TryLater as later:
        # Never held by a worker longer than half the broker's visibility timeout (the lease), or Redis
        # would hand a copy to another worker; woken early, the task finds it not due and waits again.
        countdown = min(later.seconds, max(1.0, settings.REMINDER_SENDING_LEASE_SECONDS / 2))
        raise self.retry(countdown=countdown, exc=later) from later


def enqueue(reminder_ids: Iterable[int]) -> None:
    """One send_reminder task per ID, the reminder jobs' way of queueing (reminders.run_reminder_job's `enqueue`)."""
    # One producer (one broker connection) for the whole batch, not one acquired per task.
    with send_reminder.app.producer_or_acquire() as producer:
        for reminder_id in reminder_ids:
            send_reminder.apply_async((reminder_id,), producer=producer)


@shared_task(name="notices.tasks.sweep_reminders")
def sweep_reminders() -> dict:
    """Beat runs this every REMINDER_SWEEP_SECONDS; `manage.py sweep_reminders` is its twin."""
    result = reminders.sweep(enqueue=enqueue)
    return {"requeued": len(result.requeued), "events_applied": result.events_applied,
            "alerted": len(result.alerted)}
