"""Thin Celery wrappers: the daily reminder job and one task per reminder e-mail."""

from __future__ import annotations

from celery import shared_task

from accounts.jobs import recording

from . import reminders

SEND_EXPIRY_REMINDERS = "notices.tasks.send_expiry_reminders"


@shared_task(name=SEND_EXPIRY_REMINDERS)
def send_expiry_reminders() -> dict:
    """Beat runs this daily at REMINDER_TIME (Japan time); `manage.py send_expiry_reminders` is its twin."""
    with recording(SEND_EXPIRY_REMINDERS) as detail:
        detail.update(reminders.run_reminder_job().summary())
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
        raise self.retry(countdown=later.seconds, exc=later) from later
