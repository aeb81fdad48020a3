from datetime import datetime

from django.contrib import admin, messages
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.translation import get_language, gettext
from django.utils.translation import gettext_lazy as _

from accounts.japan_time import japan_time

from .emails import reminder_message
from .models import Notice, Reminder, ReminderAttempt
from .reminders import ResendRefused, resend_reminder
from .tasks import enqueue


@admin.register(Notice)
class NoticeAdmin(admin.ModelAdmin):
    list_display = ("title_ja", "title_en", "published_from", "published_until")
    search_fields = ("title_ja", "title_en")


class ReminderAttemptInline(admin.TabularInline):
    """Every try at sending, with its outcome and the provider's message id: a duplicate shows here."""

    model = ReminderAttempt
    fields = ("number", "started_at", "finished_at", "outcome", "message_id", "event", "tracked_at", "error")
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ("number", "pk")

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Reminder)
class ReminderAdmin(admin.ModelAdmin):
    """Every reminder e-mail and what became of it. Read-only: states change through the
    sending task, the provider's tracking webhook and the resend action (a service)."""

    class Media:
        css = {"all": ["certportal/admin-lists.css"]}  # long codes wrap: no list wider than a 1280 px window

    list_display = (
        "queued_at", "what", "recipient", "certificate_serial", "state", "sent_at", "message_id",
    )
    list_filter = ("state", "kind", "threshold_days", "digest_date", "failing_since")
    search_fields = (
        "recipient__login_id", "recipient__email", "message_id", "tries__message_id", "certificate__serial_number",
    )
    list_select_related = ("recipient", "certificate")
    date_hierarchy = "queued_at"
    fields = [
        "kind", "recipient", "certificate", "threshold_days", "digest_date", "listed_ids", "state", "run",
        "created_at", "queued_at", "next_attempt_at", "sending_since", "attempts", "sent_at", "sent_to",
        "message_id", "tracked_at", "last_error", "email_text",
    ]
    readonly_fields = fields
    actions = ["resend"]
    inlines = [ReminderAttemptInline]

    @admin.display(description=_("listed IDs"))
    def listed_ids(self, reminder: Reminder) -> str:
        """The digest's list as it was recorded, each expiry in Japan time."""
        if reminder.kind != Reminder.Kind.DIGEST:
            return "—"
        rows = [
            (item["login_id"], japan_time(datetime.fromisoformat(item["not_after"]), get_language()))
            for item in reminder.items
        ]
        return format_html("<ul>{}</ul>", format_html_join("", "<li>{} — {}</li>", rows)) if rows else "—"

    @admin.display(description=_("e-mail"))
    def email_text(self, reminder: Reminder) -> str:
        """The e-mail as it was sent (or as it would be now, if not yet sent): subject and plain text."""
        message = reminder_message(reminder, now=reminder.sent_at or timezone.now())
        return format_html(
            '<div class="reminder-email"><p><strong>{}</strong> {}</p><p><strong>{}</strong> {}</p><pre>{}</pre></div>',
            _("To:"), ", ".join(message.to), _("Subject:"), message.subject, message.body,
        )

    @admin.display(description=_("kind"), ordering="kind")
    def what(self, reminder: Reminder) -> str:
        """One column for the kind and its threshold or day, so that the list fits a 1280 px window."""
        if reminder.kind == Reminder.Kind.DIGEST:
            return gettext("administrator digest of %(date)s") % {"date": reminder.digest_date}
        return gettext("%(days)d-day reminder") % {"days": reminder.threshold_days}

    @admin.display(description=_("certificate serial number"), ordering="certificate__serial_number")
    def certificate_serial(self, reminder: Reminder) -> str:
        return reminder.certificate.serial_number if reminder.certificate else "—"

    def has_add_permission(self, request) -> bool:
        return False  # the daily job records reminders

    def has_change_permission(self, request, obj=None) -> bool:
        # The list's resend action needs it; a reminder's own page is view-only, or its Save would write
        # back the state as read, over what the sending task or the webhook wrote meanwhile.
        return obj is None and super().has_change_permission(request)

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # the record that a reminder went out is kept

    @admin.action(description=_("Resend the selected reminders"), permissions=["change"])
    def resend(self, request, queryset):
        resent = 0
        for reminder in queryset:
            try:
                resend_reminder(reminder=reminder, by=request.user, enqueue=enqueue)
                resent += 1
            except ResendRefused as refusal:
                self.message_user(request, str(refusal), messages.WARNING)
        if resent:
            self.message_user(request, _("%(count)d reminder(s) queued again.") % {"count": resent}, messages.SUCCESS)
