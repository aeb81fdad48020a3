"""The contract administrators' admin site (/manage/): a 管理者ID manages its own contract's user IDs.

It composes `accounts` (IDs, passwords, audit log) and this app (certificate state, revocation),
which is why it lives here, the lowest app that sees both. Everything a contract administrator
reaches goes through ContractScopedAdmin.get_queryset, scoped to request.user.contract, and
get_object answers 404 for anything outside it. Every change is a call to a service, which writes
the audit entry with the administrator as actor. There is no login form here: customers get a
session only from the certificate-and-password login (certificates.login), and every page asks
client_cert.session_bound_to_this_certificate, the rule CertificateSessionMiddleware enforces.
"""

from __future__ import annotations

from functools import update_wrapper

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.db.models.constants import LOOKUP_SEP
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path, resolve, reverse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.html import format_html, format_html_join
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect

from accounts import services as id_services
from accounts.admin import IDStateActions
from accounts.japan_time import japan_time
from accounts.models import AuditEntry, User, UserID
from accounts.views import portal_login_url

from .admin import CertificateStateFilter
from .client_cert import session_bound_to_this_certificate
from .forms import RevocationForm
from .models import Certificate
from .services import RevocationRefused, revoke_certificate
from .states import certificate_state, with_certificate_state


class ContractAdminSite(admin.AdminSite):
    site_header = gettext_lazy("Contract administration")
    site_title = gettext_lazy("Contract administration")
    index_title = gettext_lazy("Your contract's user IDs")
    enable_nav_sidebar = False

    def has_permission(self, request: HttpRequest) -> bool:
        user = request.user
        return (
            user.is_authenticated
            and user.is_active
            and user.is_contract_administrator
            and session_bound_to_this_certificate(request)
        )

    def admin_view(self, view, cacheable: bool = False):
        """Anonymous visitors go to the portal's login; anyone signed in but not allowed gets 403."""

        def inner(request, *args, **kwargs):
            request.current_app = self.name  # {% url 'admin:…' %} then points into this site, not the operators'
            if not self.has_permission(request):
                if request.user.is_authenticated:
                    raise PermissionDenied
                return redirect_to_login(request.get_full_path(), portal_login_url())
            return view(request, *args, **kwargs)

        if not cacheable:
            inner = never_cache(inner)
        if not getattr(view, "csrf_exempt", False):
            inner = csrf_protect(inner)
        return update_wrapper(inner, view)

    def get_urls(self):
        # view_on_site would look up any object of any contract by content type and ID.
        return [pattern for pattern in super().get_urls() if getattr(pattern, "name", None) != "view_on_site"]

    def each_context(self, request: HttpRequest) -> dict:
        context = super().each_context(request)
        context["site_url"] = self._portal_home()
        if self.has_permission(request):
            context["site_header"] = format_html("{} — {}", self.site_header, request.user.contract)
        return context

    @staticmethod
    def _portal_home() -> str:
        try:
            return reverse("important-notices")
        except NoReverseMatch:
            return "/"

    @method_decorator(never_cache)
    def login(self, request: HttpRequest, extra_context=None) -> HttpResponse:
        """No password-only login here: the portal's certificate login is the only way in."""
        if self.has_permission(request):
            return redirect(f"{self.name}:index")
        if request.user.is_authenticated:
            raise PermissionDenied
        target = request.GET.get("next", "")
        if not url_has_allowed_host_and_scheme(target, {request.get_host()}, require_https=request.is_secure()):
            target = reverse(f"{self.name}:index")
        return redirect_to_login(target, portal_login_url())

    def logout(self, request: HttpRequest, extra_context=None) -> HttpResponse:
        """The portal's logout, which audits it."""
        try:
            portal_logout = resolve(reverse("logout")).func
        except NoReverseMatch:
            return super().logout(request, extra_context)
        return portal_logout(request)

    def password_change(self, request: HttpRequest, extra_context=None) -> HttpResponse:
        """The portal's password change, which applies the password rules and audits it."""
        return redirect("password-change")

    def password_change_done(self, request: HttpRequest, extra_context=None) -> HttpResponse:
        return redirect("password-change")


site = ContractAdminSite(name="contract_admin")


# --- the scoping every page goes through --------------------------------------------------------


class ContractScopedAdmin(admin.ModelAdmin):
    """Read-only by default; shows only rows of the administrator's contract; 404 for the rest."""

    contract_lookup = "contract"

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).filter(**{self.contract_lookup: request.user.contract_id})

    def get_object(self, request: HttpRequest, object_id: str, from_field=None):
        obj = super().get_object(request, object_id, from_field)
        if obj is None:
            # Django's admin would redirect with "perhaps it was deleted"; outside the contract is simply not there.
            raise Http404(_("No such object."))
        return obj

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest | None = None) -> bool:
        # ?password__startswith=… in a list's URL would tell a hash apart one character at a time.
        if "password" in lookup.split(LOOKUP_SEP):
            return False
        return super().lookup_allowed(lookup, value, request)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self.admin_site.has_permission(request)

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        return self.admin_site.has_permission(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def history_view(self, request: HttpRequest, object_id: str, extra_context=None):
        # Django's change history would show the bank operators' edits; the audit log is the history here.
        raise Http404

    def _confirm(self, request: HttpRequest, *, obj, title: str, question: str, button: str, form=None, items=()):
        return TemplateResponse(request, "contract_admin/confirm.html", {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "object": obj,
            "title": title,
            "question": question,
            "button": button,
            "form": form,
            "items": items,
            "cancel_url": reverse(f"{self.admin_site.name}:{self.model._meta.app_label}_"
                                  f"{self.model._meta.model_name}_change", args=[obj.pk]),
        })


# --- user IDs (利用者ID) -------------------------------------------------------------------------


class UserIDForm(forms.ModelForm):
    class Meta:
        model = UserID
        fields = ["login_id", "email", "language"]
        # Login IDs are unique across all contracts: "already exists" would tell another contract's IDs.
        # The same words for an ID of this contract, so the reply never says whose it is.
        error_messages = {"login_id": {"unique": gettext_lazy("This login ID cannot be used. Choose another one.")}}


class UserIDChangeForm(forms.ModelForm):
    class Meta:
        model = UserID
        fields = ["email", "language"]


class UserIDAdmin(IDStateActions, ContractScopedAdmin):
    list_display = ("login_id", "email", "language", "state", "certificate_state", "certificate_valid_until_display")
    list_filter = ("state", CertificateStateFilter)
    search_fields = ("login_id", "email")
    ordering = ("login_id",)
    actions = ["suspend", "resume", "unlock"]
    change_form_template = "contract_admin/user_change_form.html"
    readonly_fields = (
        "login_id", "state", "failed_password_attempts", "must_change_password", "last_login", "date_joined",
        "certificates",
    )

    def get_queryset(self, request: HttpRequest):
        # Only user IDs: the contract's administrator IDs are the bank's to manage.
        queryset = super().get_queryset(request).filter(role=User.Role.USER)
        return with_certificate_state(queryset, timezone.now())

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self.admin_site.has_permission(request)

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return self.admin_site.has_permission(request)

    def get_form(self, request: HttpRequest, obj=None, change=False, **kwargs):
        kwargs["form"] = UserIDChangeForm if obj is not None else UserIDForm
        kwargs["fields"] = None
        return super().get_form(request, obj, change, **kwargs)

    def get_fields(self, request: HttpRequest, obj=None):
        if obj is None:
            return ["login_id", "email", "language"]
        return [
            "login_id", "email", "language", "state", "failed_password_attempts", "must_change_password",
            "last_login", "date_joined", "certificates",
        ]

    def get_readonly_fields(self, request: HttpRequest, obj=None):
        return () if obj is None else self.readonly_fields

    @admin.display(description=gettext_lazy("certificate"))
    def certificate_state(self, user: User) -> str:
        return certificate_state(user, timezone.now()).label

    @admin.display(description=gettext_lazy("certificate valid until"), ordering="certificate_valid_until")
    def certificate_valid_until_display(self, user: User) -> str | None:
        return user.certificate_valid_until and japan_time(user.certificate_valid_until)

    @admin.display(description=gettext_lazy("certificates"))
    def certificates(self, user: User) -> str:
        rows = [
            (
                reverse(f"{self.admin_site.name}:certificates_certificate_change", args=[certificate.pk]),
                certificate.serial_number,
                japan_time(certificate.not_after),
                certificate.state.label,
            )
            for certificate in user.certificates.order_by("-not_before")
        ]
        if not rows:
            return _("none")
        return format_html("<ul>{}</ul>", format_html_join(
            "", '<li><a href="{}">{}</a> — {} — {}</li>', rows
        ))

    def save_model(self, request: HttpRequest, obj: User, form, change: bool) -> None:
        if change:
            id_services.update_id_details(user=obj, email=obj.email, language=obj.language, by=request.user)
            return
        new = id_services.create_user_id(
            contract=request.user.contract, login_id=obj.login_id, email=obj.email, language=obj.language,
            by=request.user,
        )
        for field in UserID._meta.concrete_fields:
            setattr(obj, field.attname, getattr(new.user, field.attname))
        obj._state.adding = False
        request.temporary_password = new.temporary_password

    def response_add(self, request: HttpRequest, obj: User, post_url_continue=None) -> HttpResponse:
        """Show the temporary password once, on a page that is never cached."""
        response = TemplateResponse(request, "contract_admin/temporary_password.html", {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": _("User ID %(login_id)s added") % {"login_id": obj.login_id},
            "user_id": obj,
            "temporary_password": request.temporary_password,
        })
        response["Cache-Control"] = "no-store"
        return response

    # Per ID: a confirmation page (GET), then the service (POST).

    def get_urls(self):
        def wrap(view):
            return self.admin_site.admin_view(view)

        prefix = f"{self.model._meta.app_label}_{self.model._meta.model_name}"
        return [
            path("<path:object_id>/suspend/", wrap(self.suspend_view), name=f"{prefix}_suspend"),
            path("<path:object_id>/resume/", wrap(self.resume_view), name=f"{prefix}_resume"),
            path("<path:object_id>/unlock/", wrap(self.unlock_view), name=f"{prefix}_unlock"),
            path("<path:object_id>/reset-password/", wrap(self.reset_password_view),
                 name=f"{prefix}_reset_password"),
            *super().get_urls(),
        ]

    def _state_change_view(self, request, object_id, *, service, title, question, button, done):
        user = self.get_object(request, object_id)
        if request.method != "POST":
            return self._confirm(request, obj=user, title=title, question=question, button=button)
        try:
            service(user=user, by=request.user)
        except id_services.StateChangeRefused as refusal:
            self.message_user(request, str(refusal), messages.WARNING)
        else:
            self.message_user(request, done % {"login_id": user.login_id}, messages.SUCCESS)
        return redirect(f"{self.admin_site.name}:accounts_userid_change", user.pk)

    def suspend_view(self, request, object_id):
        return self._state_change_view(
            request, object_id, service=id_services.suspend_id, title=_("Suspend the user ID"),
            question=_("This ID will not be able to log in until it is resumed."), button=_("Yes, suspend"),
            done=_("%(login_id)s suspended."),
        )

    def resume_view(self, request, object_id):
        return self._state_change_view(
            request, object_id, service=id_services.resume_id, title=_("Resume the user ID"),
            question=_("This ID will be able to log in again."), button=_("Yes, resume"),
            done=_("%(login_id)s resumed."),
        )

    def unlock_view(self, request, object_id):
        return self._state_change_view(
            request, object_id, service=id_services.unlock_id, title=_("Unlock the user ID"),
            question=_("This ID will be able to log in again, with its failed attempts back at zero."),
            button=_("Yes, unlock"), done=_("%(login_id)s unlocked."),
        )

    def reset_password_view(self, request, object_id):
        user = self.get_object(request, object_id)
        if request.method != "POST":
            return self._confirm(
                request, obj=user, title=_("Reset the password"),
                question=_("A temporary password will replace the current one; the ID must change it at its next "
                           "login. The ID is logged out."),
                button=_("Yes, reset"),
            )
        password = id_services.reset_password(user=user, by=request.user)
        response = TemplateResponse(request, "contract_admin/temporary_password.html", {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": _("Password of %(login_id)s reset") % {"login_id": user.login_id},
            "user_id": user,
            "temporary_password": password,
        })
        response["Cache-Control"] = "no-store"
        return response


# --- certificates of the user IDs ---------------------------------------------------------------


class OwnerFilter(admin.SimpleListFilter):
    """By user ID, offering only the contract's own (the stock related filter would list every ID)."""

    title = gettext_lazy("user ID")
    parameter_name = "owner"

    def lookups(self, request, model_admin):
        return [
            (str(pk), login_id)
            for pk, login_id in User.objects.filter(contract_id=request.user.contract_id, role=User.Role.USER)
            .values_list("pk", "login_id")
        ]

    def queryset(self, request, queryset):
        return queryset.filter(owner_id=self.value()) if self.value() else queryset


class CertificateAdmin(ContractScopedAdmin):
    contract_lookup = "owner__contract"
    list_display = ("serial_number", "owner", "not_before", "not_after", "state_display", "issued_via")
    list_filter = (OwnerFilter, "issued_via")
    search_fields = ("serial_number", "owner__login_id")
    list_select_related = ("owner",)
    change_form_template = "contract_admin/certificate_change_form.html"
    fields = (
        "owner_login_id", "serial_number", "subject", "fingerprint", "not_before", "not_after", "state_display",
        "issued_via", "first_used_at", "revoked_at", "revocation_reason",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).filter(owner__role=User.Role.USER).select_related("owner")

    @admin.display(description=gettext_lazy("user ID"))
    def owner_login_id(self, certificate: Certificate) -> str:
        return certificate.owner.login_id

    @admin.display(description=gettext_lazy("SHA-256 fingerprint"))
    def fingerprint(self, certificate: Certificate) -> str:
        return certificate.fingerprint_display

    @admin.display(description=gettext_lazy("state"))
    def state_display(self, certificate: Certificate) -> str:
        return certificate.state.label

    def get_urls(self):
        prefix = f"{self.model._meta.app_label}_{self.model._meta.model_name}"
        return [
            path("<path:object_id>/revoke/", self.admin_site.admin_view(self.revoke_view), name=f"{prefix}_revoke"),
            *super().get_urls(),
        ]

    def revoke_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        certificate = self.get_object(request, object_id)
        form = RevocationForm(request.POST if request.method == "POST" else None, by_customer=True)
        if request.method == "POST" and form.is_valid():
            try:
                revoke_certificate(certificate=certificate, reason=form.cleaned_data["reason"], by=request.user)
            except RevocationRefused as refusal:
                self.message_user(request, str(refusal), messages.WARNING)
            else:
                self.message_user(
                    request, _("Certificate %(serial)s revoked.") % {"serial": certificate.serial_number},
                    messages.SUCCESS,
                )
            return redirect(f"{self.admin_site.name}:certificates_certificate_change", certificate.pk)
        return self._confirm(
            request, obj=certificate, title=_("Revoke the certificate"), form=form,
            question=_("The certificate will be revoked. Its owner can no longer log in with it, and the bank "
                       "publishes this at once. This cannot be undone."),
            button=_("Yes, revoke"),
            items=[certificate.owner.login_id, certificate.serial_number,
                   japan_time(certificate.not_after)],
        )


# --- the contract's audit log, read-only ---------------------------------------------------------


class ContractActionFilter(admin.SimpleListFilter):
    """Django's choices filter would offer every action, the bank's own (CA作成, CRL公開) included."""

    title = gettext_lazy("action")
    parameter_name = "action"

    def lookups(self, request, model_admin):
        return AuditEntry.contract_actions()

    def queryset(self, request, queryset):
        return queryset.filter(action=self.value()) if self.value() else queryset


class AuditEntryAdmin(ContractScopedAdmin):
    list_display = ("at", "action", "subject_login_id", "actor_display", "certificate_serial", "remote_addr")
    list_filter = (ContractActionFilter,)
    search_fields = ("subject__login_id", "certificate_serial")
    list_select_related = ("subject", "actor")
    date_hierarchy = "at"
    fields = ("at", "action", "subject_login_id", "actor_display", "certificate_serial", "remote_addr")
    readonly_fields = fields

    @admin.display(description=gettext_lazy("ID"), ordering="subject__login_id")
    def subject_login_id(self, entry: AuditEntry) -> str:
        return entry.subject.login_id if entry.subject else "—"

    @admin.display(description=gettext_lazy("by"))
    def actor_display(self, entry: AuditEntry) -> str:
        # Operators' login IDs are the bank's internal business.
        if entry.actor is None:
            return "—"
        return _("the bank") if entry.actor.is_staff else entry.actor.login_id


site.register(UserID, UserIDAdmin)
site.register(Certificate, CertificateAdmin)
site.register(AuditEntry, AuditEntryAdmin)
