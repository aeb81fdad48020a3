"""Twin of the sweep beat runs every few minutes: re-queue reminders whose task was lost, apply
tracking events kept for later, and alert on reminders failing for an hour."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from notices.reminders import sweep
from notices.tasks import enqueue


class Command(BaseCommand):
    help = "Re-queue reminders whose task was lost, apply kept tracking events, alert on failing reminders."

    def handle(self, *args, **options) -> None:
        result = sweep(enqueue=enqueue)
        self.stdout.write(
            f"{len(result.requeued)} reminder(s) re-queued, {result.events_applied} tracking event(s) applied, "
            f"{len(result.alerted)} failing reminder(s) alerted"
        )
