from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _

from .models import Notice, Reminder, ReminderAttempt
from .reminders import ResendRefused, resend_reminder


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

    list_display = (
        "queued_at", "kind", "recipient", "certificate_serial", "threshold_days", "digest_date", "state",
        "attempts", "sent_at", "message_id",
    )
    list_filter = ("state", "kind", "threshold_days", "digest_date", "failing_since")
    search_fields = (
        "recipient__login_id", "recipient__email", "message_id", "tries__message_id", "certificate__serial_number",
    )
    list_select_related = ("recipient", "certificate")
    date_hierarchy = "queued_at"
    readonly_fields = [field.name for field in Reminder._meta.fields]
    actions = ["resend"]
    inlines = [ReminderAttemptInline]

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
                resend_reminder(reminder=reminder, by=request.user)
                resent += 1
            except ResendRefused as refusal:
                self.message_user(request, str(refusal), messages.WARNING)
        if resent:
            self.message_user(request, _("%(count)d reminder(s) queued again.") % {"count": resent}, messages.SUCCESS)
