"""The bank's notices shown on the important-notices screen (重要なお知らせ)."""

from __future__ import annotations

import functools
from datetime import date, datetime, timedelta

from django.conf import settings
from django.db import connections, models, router
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import get_language, gettext
from django.utils.translation import gettext_lazy as _

from accounts.japan_time import japan_day_start
from accounts.statements import Columns, fetch_all


class NoticeAction(models.TextChoices):
    """The notices app's entries in the audit log (registered by NoticesConfig.ready)."""

    REMINDER_RESENT = "reminder_resent", _("reminder resent")


class NoticeQuerySet(models.QuerySet):
    def published(self, now: datetime | None = None) -> NoticeQuerySet:
        now = now or timezone.now()
        return self.filter(Q(published_until__isnull=True) | Q(published_until__gt=now), published_from__lte=now)


def published_notices(now: datetime) -> list[Notice]:
    """The notices published at `now`, newest first: Notice.objects.published(now), with a statement built
    once per process (accounts/statements.py), as it is read on every view of the notices screen.

    Read from the database each time, so that a save, an edit or a deletion shows at once on every node.
    """
    db = router.db_for_read(Notice)
    sql, columns = _published_statement(Notice, db)
    at = connections[db].ops.adapt_datetimefield_value(now)
    return [columns.instance(db, row) for row in fetch_all(db, sql, [at, at])]


@functools.cache
def _published_statement(model, db: str) -> tuple[str, Columns]:
    n = Columns(model, "n", db)
    return (
        f"SELECT {n.sql} FROM {n.table} WHERE {n['published_from']} <= %s "  # noqa: S608 (names from the model)
        f"AND ({n['published_until']} IS NULL OR {n['published_until']} > %s) "
        f"ORDER BY {n['published_from']} DESC, {n['id']} DESC",
        n,
    )


class Notice(models.Model):
    title_ja = models.CharField(_("title (Japanese)"), max_length=200)
    title_en = models.CharField(_("title (English)"), max_length=200)
    body_ja = models.TextField(_("body (Japanese)"))
    body_en = models.TextField(_("body (English)"))
    published_from = models.DateTimeField(_("published from"), default=timezone.now)
    published_until = models.DateTimeField(_("published until"), null=True, blank=True)

    objects = NoticeQuerySet.as_manager()

    class Meta:
        verbose_name = _("notice")
        verbose_name_plural = _("notices")
        ordering = ["-published_from"]
        constraints = [
            models.CheckConstraint(
                name="notice_period_is_ordered",
                condition=Q(published_until__isnull=True) | Q(published_until__gt=models.F("published_from")),
            )
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def title(self) -> str:
        return self.title_in(get_language())

    @property
    def body(self) -> str:
        return self.body_in(get_language())

    def title_in(self, language: str | None) -> str:
        return self.title_en if language == "en" else self.title_ja

    def body_in(self, language: str | None) -> str:
        return self.body_en if language == "en" else self.body_ja


class ReminderQuerySet(models.QuerySet):
    def recorded_on_japan_days(self, first: date, last: date) -> ReminderQuerySet:
        """Recorded by the daily job on a Japan-time calendar day from `first` to `last`, both included."""
        return self.filter(
            created_at__gte=japan_day_start(first), created_at__lt=japan_day_start(last + timedelta(days=1))
        )

    def failed(self) -> ReminderQuerySet:
        return self.filter(state=Reminder.State.FAILED)

    def stranded(self, *, now: datetime) -> ReminderQuerySet:
        """Reminders whose task was lost (the broker was down when they were recorded, or lost the
        message, or the worker died): queued and due for an attempt for more than
        REMINDER_REQUEUE_AFTER_SECONDS, or left "sending" past the sending lease."""
        unclaimed = now - timedelta(seconds=settings.REMINDER_REQUEUE_AFTER_SECONDS)
        lease = timedelta(seconds=settings.REMINDER_SENDING_LEASE_SECONDS)
        return self.filter(
            Q(state=Reminder.State.QUEUED, next_attempt_at__lt=unclaimed)
            | Q(state=Reminder.State.SENDING, sending_since__lt=now - lease)
        )

    def failing_for(self, hours: float, *, now: datetime | None = None) -> ReminderQuerySet:
        """Still owed, and every attempt for at least `hours` has failed: what the operators' alert counts."""
        now = now or timezone.now()
        return self.filter(
            state__in=(Reminder.State.QUEUED, Reminder.State.SENDING),
            failing_since__lte=now - timedelta(hours=hours),
        )


class Reminder(models.Model):
    """One e-mail the portal owes someone: a certificate's 30- or 10-day expiry reminder, or a
    contract administrator's daily digest. Recorded before it is sent; the unique constraints make
    a second one for the same certificate and threshold, or administrator and day, impossible."""

    class Kind(models.TextChoices):
        EXPIRY = "expiry", _("expiry reminder")
        DIGEST = "digest", _("administrator digest")

    class State(models.TextChoices):
        QUEUED = "queued", _("queued for sending")
        SENDING = "sending", _("being sent")
        SENT = "sent", _("sent")
        DELIVERED = "delivered", _("delivered")
        BOUNCED = "bounced", _("bounced")
        FAILED = "failed", _("failed to send")
        # The 30-day reminder of a certificate first seen inside 10 days: only the 10-day one goes out.
        SKIPPED = "skipped", _("skipped (the 10-day reminder was sent instead)")
        # Still unsent when its certificate was replaced by one in use, or revoked: it would say something untrue.
        CANCELLED = "cancelled", _("cancelled (the certificate was renewed or revoked)")
        # Two attempts whose outcome the provider never told (timeouts, a worker that died mid-send):
        # it was probably sent, maybe twice; a third copy is never sent. Tracking events still settle it.
        UNCERTAIN = "uncertain", _("sent, unconfirmed (the provider did not answer)")

    kind = models.CharField(_("kind"), max_length=8, choices=Kind.choices)
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="reminders", verbose_name=_("ID")
    )
    certificate = models.ForeignKey(
        "certificates.Certificate", on_delete=models.PROTECT, null=True, blank=True,
        related_name="reminders", verbose_name=_("certificate"),
    )
    threshold_days = models.PositiveSmallIntegerField(_("threshold (days)"), null=True, blank=True)
    digest_date = models.DateField(_("digest date (Japan)"), null=True, blank=True)
    # The digest's list as it stood when recorded: [{"login_id", "not_after", "days_left"}].
    items = models.JSONField(_("listed IDs"), default=list, blank=True)
    state = models.CharField(_("state"), max_length=10, choices=State.choices, default=State.QUEUED)
    run = models.UUIDField(_("recorded by run"), db_index=True)
    created_at = models.DateTimeField(_("recorded at"), default=timezone.now, editable=False)
    queued_at = models.DateTimeField(_("queued at"), default=timezone.now)
    # When its task should next run; a queued reminder long past this lost its task and is re-queued.
    next_attempt_at = models.DateTimeField(_("next attempt at"), default=timezone.now)
    sending_since = models.DateTimeField(_("sending since"), null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(_("send attempts"), default=0)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    sent_to = models.EmailField(_("sent to"), blank=True)
    message_id = models.CharField(_("provider message ID"), max_length=255, blank=True)
    tracked_at = models.DateTimeField(_("last tracking event at"), null=True, blank=True)
    last_error = models.TextField(_("last error"), blank=True)
    # Since when every attempt has failed (cleared when one succeeds); the operators' alert reads it.
    failing_since = models.DateTimeField(_("failing since"), null=True, blank=True)
    alerted_at = models.DateTimeField(_("last alerted at"), null=True, blank=True)

    objects = ReminderQuerySet.as_manager()

    class Meta:
        verbose_name = _("reminder e-mail")
        verbose_name_plural = _("reminder e-mails")
        ordering = ["-queued_at", "-id"]
        indexes = [
            # The tracking webhook finds a reminder by the provider's message id.
            models.Index(fields=["message_id"], name="reminder_by_message_id", condition=~Q(message_id="")),
            # The sweep re-queues reminders whose task was lost.
            models.Index(fields=["next_attempt_at"], name="reminder_queued", condition=Q(state="queued")),
            # The sweep's alert reads reminders failing for an hour.
            models.Index(fields=["failing_since"], name="reminder_failing", condition=Q(failing_since__isnull=False)),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["certificate", "threshold_days"], name="one_reminder_per_certificate_and_threshold",
                condition=Q(kind="expiry"),
            ),
            models.UniqueConstraint(
                fields=["recipient", "digest_date"], name="one_digest_per_administrator_and_day",
                condition=Q(kind="digest"),
            ),
            models.CheckConstraint(
                name="reminder_kind_has_its_fields",
                condition=Q(kind="expiry", certificate__isnull=False, threshold_days__isnull=False,
                            digest_date__isnull=True)
                | Q(kind="digest", certificate__isnull=True, threshold_days__isnull=True, digest_date__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        if self.kind == self.Kind.DIGEST:
            return gettext("Administrator digest of %(date)s to %(login_id)s") % {
                "date": self.digest_date, "login_id": self.recipient,
            }
        return gettext("%(days)d-day reminder to %(login_id)s") % {
            "days": self.threshold_days, "login_id": self.recipient,
        }


class ReminderAttempt(models.Model):
    """One try at handing a reminder to the provider, recorded (committed) before the provider is
    called: a tracking event for it is matched even before the try ends, and a duplicate is visible."""

    class Outcome(models.TextChoices):
        SENDING = "sending", _("being sent")
        ACCEPTED = "accepted", _("accepted by the provider")
        # The request may have reached the provider, which did not answer (read timeout, connection
        # dropped mid-response, worker died): the e-mail may have gone out.
        UNCERTAIN = "uncertain", _("uncertain (no answer from the provider)")
        # The provider answered with an error, or could not be reached: nothing was sent.
        FAILED = "failed", _("failed (nothing sent)")
        REFUSED = "refused", _("recipient refused")

    reminder = models.ForeignKey(Reminder, on_delete=models.CASCADE, related_name="tries", verbose_name=_("reminder"))
    number = models.PositiveSmallIntegerField(_("attempt"))
    started_at = models.DateTimeField(_("started at"))
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    outcome = models.CharField(_("outcome"), max_length=10, choices=Outcome.choices, default=Outcome.SENDING)
    message_id = models.CharField(_("provider message ID"), max_length=255, blank=True)
    error = models.TextField(_("error"), blank=True)
    # The last tracking event for this attempt's e-mail (delivered, bounced ...).
    event = models.CharField(_("last tracking event"), max_length=16, blank=True)
    tracked_at = models.DateTimeField(_("tracked at"), null=True, blank=True)

    class Meta:
        verbose_name = _("send attempt")
        verbose_name_plural = _("send attempts")
        ordering = ["reminder", "number"]
        indexes = [
            # The tracking webhook finds an attempt by the provider's message id.
            models.Index(fields=["message_id"], name="attempt_by_message_id", condition=~Q(message_id="")),
        ]

    def __str__(self) -> str:
        return f"attempt {self.number} of reminder {self.reminder_id}"


class PendingTrackingEvent(models.Model):
    """A tracking event that matched no attempt yet (it arrived before the attempt's message id was
    committed): kept, and applied when the attempt records its message id or by the sweep."""

    message_id = models.CharField(_("provider message ID"), max_length=255, db_index=True)
    event_type = models.CharField(_("event"), max_length=16)
    occurred_at = models.DateTimeField(_("occurred at"))
    detail = models.TextField(_("detail"), blank=True)
    received_at = models.DateTimeField(_("received at"), default=timezone.now)

    class Meta:
        verbose_name = _("unmatched tracking event")
        verbose_name_plural = _("unmatched tracking events")
        ordering = ["received_at"]

    def __str__(self) -> str:
        return f"{self.event_type} {self.message_id}"
