"""Delivery tracking: anymail's tracking webhook moves a reminder to delivered, bounced or failed.

anymail's views (mounted under /anymail/, e.g. /anymail/postmark/tracking/) check the HTTP
basic-auth secret ANYMAIL_WEBHOOK_SECRET and parse the provider's payload; this receiver
only maps the normalised event onto the reminder with that provider message id. anymail
accepts unauthenticated calls (with a warning) when no secret is configured; we refuse them.
"""

from __future__ import annotations

import functools
import logging
from datetime import datetime

from anymail import urls as anymail_urls
from anymail.signals import AnymailTrackingEvent, tracking
from django.conf import settings
from django.core.exceptions import BadRequest
from django.dispatch import receiver
from django.http import HttpResponseForbidden
from django.urls.resolvers import URLPattern
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from .models import Reminder

log = logging.getLogger(__name__)

S = Reminder.State
# event type -> (new state, the states it may follow). A bounce may follow a "delivered" (an
# asynchronous bounce); nothing moves a reminder back from bounced or failed.
TRANSITIONS: dict[str, tuple[Reminder.State, tuple[Reminder.State, ...]]] = {
    "delivered": (S.DELIVERED, (S.SENT,)),
    "bounced": (S.BOUNCED, (S.SENT, S.DELIVERED)),
    "rejected": (S.FAILED, (S.SENT,)),
    "failed": (S.FAILED, (S.SENT,)),
}


def record_tracking_event(*, message_id: str, event_type: str, at: datetime | None = None, detail: str = "") -> int:
    """Apply one provider event; returns how many reminders changed (0 for unknown or stale events)."""
    if not message_id or event_type not in TRANSITIONS:
        return 0
    state, follows = TRANSITIONS[event_type]
    fields = {"state": state, "tracked_at": at or timezone.now()}
    if state in (S.BOUNCED, S.FAILED) and detail:
        fields["last_error"] = detail[:2000]
    changed = Reminder.objects.for_message_id(message_id).filter(state__in=follows).update(**fields)
    if not changed:
        log.info("tracking event %s for message %s changed no reminder", event_type, message_id)
    return changed


@receiver(tracking, dispatch_uid="notices.reminder_tracking")
def on_tracking_event(sender, event: AnymailTrackingEvent, esp_name: str, **kwargs) -> None:
    record_tracking_event(
        message_id=event.message_id or "", event_type=event.event_type, at=event.timestamp,
        detail=event.description or event.mta_response or "",
    )


def _refused_without_a_secret(view):
    @functools.wraps(view)
    def guarded(request, *args, **kwargs):
        if not settings.ANYMAIL.get("WEBHOOK_SECRET"):
            log.warning("refused an e-mail webhook call: ANYMAIL_WEBHOOK_SECRET is not set")
            return HttpResponseForbidden("Webhooks are disabled until ANYMAIL_WEBHOOK_SECRET is set.")
        return view(request, *args, **kwargs)

    return csrf_exempt(guarded)


# What a provider's parser raises on a payload of the wrong shape or encoding (anymail trusts the
# provider's format), and what json raises for nesting deeper than it can recurse.
UNREADABLE_PAYLOAD = (ValueError, KeyError, IndexError, TypeError, AttributeError, RecursionError)


def _unreadable_payload_refused(callback):
    """anymail's view, with a payload it cannot parse answered 400 rather than 500.

    Only the parsing is guarded: a failure while recording the events still answers 500, which
    providers take as "try again later".
    """
    view_class = getattr(callback, "view_class", None)
    if view_class is None:
        return callback

    class Guarded(view_class):
        def parse_events(self, request):
            try:
                return list(super().parse_events(request))
            except UNREADABLE_PAYLOAD as error:
                log.warning("refused an unreadable %s webhook payload: %r", self.esp_name, error)
                raise BadRequest("The webhook payload could not be read.") from None

    Guarded.__name__ = Guarded.__qualname__ = view_class.__name__
    return Guarded.as_view(**callback.view_initkwargs)


# include("notices.webhooks") under /anymail/: anymail's own URLs, each refused without a secret.
urlpatterns = [
    URLPattern(pattern.pattern, _refused_without_a_secret(_unreadable_payload_refused(pattern.callback)),
               pattern.default_args, pattern.name)
    for pattern in anymail_urls.urlpatterns
]
