"""Data fill: each reminder already sent gets the attempt that sent it, so the admin's attempt list
and the tracking webhook (which matches attempts) cover reminders recorded before attempts were."""

from django.db import migrations


def fill(apps, schema_editor):
    Reminder = apps.get_model("notices", "Reminder")
    ReminderAttempt = apps.get_model("notices", "ReminderAttempt")
    sent = Reminder.objects.exclude(message_id="").only("pk", "attempts", "sent_at", "queued_at", "message_id")
    batch = []
    for reminder in sent.iterator(chunk_size=2000):
        at = reminder.sent_at or reminder.queued_at
        batch.append(ReminderAttempt(
            reminder_id=reminder.pk, number=max(1, reminder.attempts), started_at=at, finished_at=at,
            outcome="accepted", message_id=reminder.message_id,
        ))
        if len(batch) >= 2000:
            ReminderAttempt.objects.bulk_create(batch)
            batch = []
    ReminderAttempt.objects.bulk_create(batch)


class Migration(migrations.Migration):
    dependencies = [("notices", "0004_attempts_and_failing_since")]

    operations = [migrations.RunPython(fill, migrations.RunPython.noop)]
