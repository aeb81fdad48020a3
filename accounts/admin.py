"""The bank operators' admin for contracts, IDs and the audit log."""

from django.contrib import admin, messages
from django.contrib.auth.admin import GroupAdmin as DjangoGroupAdmin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.models import Group, Permission
from django.db import transaction
from django.utils.text import capfirst
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from . import audit, services
from .models import AuditEntry, Contract, JobRun, User


class IDInline(admin.TabularInline):
    model = User
    fields = ("login_id", "role", "email", "language", "state")
    readonly_fields = ("state",)
    extra = 0
    show_change_link = True
    can_delete = False


def _plain(value) -> object:
    """A form value as the audit log's JSON keeps it: objects by their key."""
    if hasattr(value, "pk"):
        return value.pk
    if hasattr(value, "__iter__") and not isinstance(value, str):
        return sorted(_plain(item) for item in value)
    return value if value is None or isinstance(value, bool | int) else str(value)


def record_id_saved(*, form, by: User, created: bool) -> None:
    """An operator's edit of an ID in the admin, in the audit log as the ID services write theirs:
    each changed field with its old and new value, passwords never."""
    changed = {
        name: {"old": _plain(form.initial.get(name)), "new": _plain(form.cleaned_data.get(name))}
        for name in form.changed_data
        if "password" not in name
    }
    audit.record(
        AuditEntry.Action.ID_CREATED if created else AuditEntry.Action.ID_CHANGED,
        subject=form.instance, actor=by, changed=changed, via="operator_admin",
    )


@admin.register(Contract)
class ContractAdmin(admin.ModelAdmin):
    list_display = ("number", "name", "created_at")
    search_fields = ("number", "name")
    inlines = [IDInline]

    class Media:
        css = {"all": ["certportal/admin-lists.css"]}  # long codes wrap: no list wider than a 1280 px window

    def save_formset(self, request, form, formset, change) -> None:
        super().save_formset(request, form, formset, change)  # inside the admin's transaction
        created = {user.pk for user in formset.new_objects}
        changed = {user.pk for user, _fields in formset.changed_objects}
        for id_form in formset.forms:
            if id_form.instance.pk in created | changed:
                record_id_saved(form=id_form, by=request.user, created=id_form.instance.pk in created)


class IDStateActions:
    """Unlock, suspend and resume from an ID list, each ID through its service."""

    def _apply(self, request, queryset, service, done_message) -> None:
        done = 0
        for user in queryset:
            try:
                service(user=user, by=request.user)
                done += 1
            except services.StateChangeRefused as refusal:
                self.message_user(request, str(refusal), messages.WARNING)
        if done:
            self.message_user(request, done_message % {"count": done}, messages.SUCCESS)

    @admin.action(description=_("Unlock the selected IDs"), permissions=["change"])
    def unlock(self, request, queryset) -> None:
        self._apply(request, queryset, services.unlock_id, gettext("%(count)d ID(s) unlocked."))

    @admin.action(description=_("Suspend the selected IDs"), permissions=["change"])
    def suspend(self, request, queryset) -> None:
        self._apply(request, queryset, services.suspend_id, gettext("%(count)d ID(s) suspended."))

    @admin.action(description=_("Resume the selected IDs"), permissions=["change"])
    def resume(self, request, queryset) -> None:
        self._apply(request, queryset, services.resume_id, gettext("%(count)d ID(s) resumed."))


PERMISSION_ACTIONS = {"add": _("add"), "change": _("change"), "delete": _("delete"), "view": _("view")}


def permission_label(permission: Permission) -> str:
    """A permission in the operator's language: its names in the database were written in English at migrate time."""
    action, _sep, _model = permission.codename.partition("_")
    model = permission.content_type.model_class()
    if action not in PERMISSION_ACTIONS or model is None:
        return str(permission)
    return gettext("%(model)s: %(action)s") % {
        "model": capfirst(model._meta.verbose_name), "action": PERMISSION_ACTIONS[action],
    }


class GroupAdmin(DjangoGroupAdmin):
    """Django's groups, their permissions named in the operator's language."""

    def formfield_for_manytomany(self, db_field, request=None, **kwargs):
        field = super().formfield_for_manytomany(db_field, request, **kwargs)
        if db_field.name == "permissions":
            field.label_from_instance = permission_label
        return field


admin.site.unregister(Group)
admin.site.register(Group, GroupAdmin)


@admin.register(User)
class UserAdmin(IDStateActions, DjangoUserAdmin):
    list_display = ("login_id", "contract", "role", "email", "state")
    list_filter = ("role", "state", "language", "is_staff")
    search_fields = ("login_id", "email")
    ordering = ("login_id",)
    list_select_related = ("contract",)
    readonly_fields = ("state", "failed_password_attempts", "last_login", "date_joined")
    fieldsets = (
        (None, {"fields": ("login_id", "password")}),
        (_("Contract"), {"fields": ("contract", "role", "email", "language")}),
        (_("State"), {"fields": ("state", "failed_password_attempts", "must_change_password", "last_login",
                                 "date_joined")}),
        (_("Bank operator"), {"fields": ("is_staff", "is_superuser", "groups", "user_permissions")}),
    )
    add_fieldsets = (
        (None, {"classes": ("wide",), "fields": ("login_id", "contract", "role", "email", "language",
                                                 "password1", "password2")}),
    )
    actions = ["unlock", "suspend", "resume"]

    class Media:
        css = {"all": ["certportal/admin-lists.css"]}  # long codes wrap: no list wider than a 1280 px window

    def get_fieldsets(self, request, obj=None):
        """A customer's ID is never staff: no superuser, group or permission controls on its page."""
        fieldsets = super().get_fieldsets(request, obj)
        if obj is not None and obj.contract_id is not None:
            return [(name, options) for name, options in fieldsets if "is_superuser" not in options["fields"]]
        return fieldsets

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        field = super().formfield_for_manytomany(db_field, request, **kwargs)
        if db_field.name == "user_permissions":
            field.label_from_instance = permission_label
        return field

    def save_model(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)  # inside the admin's transaction
        if form.has_changed():
            record_id_saved(form=form, by=request.user, created=not change)

    def user_change_password(self, request, id, form_url=""):
        """Django's set-password page, audited in the same transaction as the new password."""
        with transaction.atomic():
            response = super().user_change_password(request, id, form_url)
            if request.method == "POST" and response.status_code == 302:
                audit.record(AuditEntry.Action.PASSWORD_RESET, subject=User.objects.get(pk=id), actor=request.user,
                             via="operator_admin")
        return response


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records the portal writes itself (the audit log, job runs, the CA's): operators only read them."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    list_display = ("at", "action", "subject", "actor", "certificate_serial", "remote_addr")
    list_filter = ("action",)
    search_fields = ("subject__login_id", "actor__login_id", "certificate_serial")
    list_select_related = ("subject", "actor")
    ordering = ("-at", "-id")
    date_hierarchy = "at"

    class Media:
        css = {"all": ["certportal/admin-lists.css"]}  # long codes wrap: no list wider than a 1280 px window


@admin.register(JobRun)
class JobRunAdmin(ReadOnlyAdmin):
    """The record of scheduled jobs' successful runs, written by the jobs themselves."""

    list_display = ("name", "started_at", "finished_at", "host")
    list_filter = ("name",)
    ordering = ("-finished_at", "-id")
