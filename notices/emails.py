"""The reminder e-mails' contents: an expiry reminder per certificate, a digest per contract administrator.

Rendered by accounts.emails (templates/emails/<language>/<kind>-subject.txt, -body.txt,
-body.html); days left and times come from accounts.japan_time, as on the screens.
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.core.mail import EmailMultiAlternatives

from accounts.emails import email_language, render_email
from accounts.japan_time import days_left, japan_time
from certificates.models import Certificate

from .models import Reminder


def reminder_message(reminder: Reminder, *, now: datetime, attempt_id: int | None = None) -> EmailMultiAlternatives:
    """The e-mail for `reminder` as of `now`, to the ID's address and in its language."""
    user = reminder.recipient
    language = email_language(user.language)
    context = {
        "login_id": user.login_id,
        "portal_url": settings.PUBLIC_BASE_URL + "/",
    }
    if reminder.kind == Reminder.Kind.DIGEST:
        template = "digest"
        rows = []
        for item in reminder.items:
            not_after = datetime.fromisoformat(item["not_after"])
            rows.append({
                "login_id": item["login_id"],
                "expires": japan_time(not_after, language),
                "days_left": days_left(not_after, now),
                "expired": not_after <= now,
                "renewed_unused": item.get("renewed_unused", False),
            })
        context.update(rows=rows, count=len(rows), date=reminder.digest_date)
    else:
        template = "expiry_reminder"
        not_after = reminder.certificate.not_after
        context.update(
            expires=japan_time(not_after, language),
            days_left=days_left(not_after, now),
            expired=not_after <= now,
            serial_number=reminder.certificate.serial_number,
            threshold_days=reminder.threshold_days,
            # Renewed, but the new certificate was never used: the customer imports it or renews again.
            renewed_unused=Certificate.objects.renewed_unused(reminder.certificate).exists(),
        )
    message = render_email(template, context, to=user.email, language=language)
    # anymail passes these to the provider; they come back in tracking events.
    message.tags = [f"expiry-{reminder.threshold_days}" if reminder.threshold_days else "admin-digest"]
    # The attempt id lets a tracking event find its attempt before the provider's message id is known.
    message.metadata = {"reminder_id": str(reminder.pk)}
    if attempt_id is not None:
        message.metadata["attempt_id"] = str(attempt_id)
    return message
