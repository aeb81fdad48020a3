"""Operators' admin for certificates; adds certificate state to the ID list of `accounts`."""

from datetime import timedelta

from django.conf import settings
from django.contrib import admin, messages
from django.db.models import Exists, Max, OuterRef, Q
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.admin import ReadOnlyAdmin, UserAdmin
from accounts.japan_time import japan_today
from accounts.models import User

from .forms import RevocationForm
from .models import Certificate, CertificateAuthority, RevocationList
from .services import RevocationRefused, revoke_certificate
from .states import IDCertificateState


def threshold_choice(days: int) -> tuple[str, str]:
    """A filter's choice for a reminder threshold (REMINDER_THRESHOLDS_DAYS): its value is the days."""
    return str(days), _("expires within %(days)d days") % {"days": days}


def threshold_days(value: str | None) -> int | None:
    """The reminder threshold a filter's value names, or None."""
    return next((days for days in settings.REMINDER_THRESHOLDS_DAYS if value == str(days)), None)


class CertificateStateFilter(admin.SimpleListFilter):
    title = _("certificate state")
    parameter_name = "certificate"

    def lookups(self, request, model_admin):
        return [
            (IDCertificateState.VALID, IDCertificateState.VALID.label),
            *(threshold_choice(days) for days in sorted(settings.REMINDER_THRESHOLDS_DAYS, reverse=True)),
            *((state, state.label) for state in (IDCertificateState.EXPIRED, IDCertificateState.NONE,
                                                 IDCertificateState.REVOKED)),
        ]

    def queryset(self, request, queryset):
        now = timezone.now()
        mine = Certificate.objects.filter(owner=OuterRef("pk"))
        valid = mine.valid(now)
        value = self.value()
        if value == IDCertificateState.VALID:
            return queryset.filter(Exists(valid))
        if (days := threshold_days(value)) is not None:
            # Inside the window and not yet renewed: no valid certificate lasts beyond its last day,
            # counted in Japan-time calendar days as the reminders and the notices screen count them.
            last_day = japan_today(now) + timedelta(days=days)
            return queryset.filter(Exists(valid)).exclude(Exists(valid.lasting_beyond_japan_day(last_day)))
        if value == IDCertificateState.EXPIRED:
            return queryset.filter(Exists(mine.not_revoked().expired(now))).exclude(Exists(valid))
        if value == IDCertificateState.NONE:
            return queryset.filter(contract__isnull=False).exclude(Exists(mine))
        if value == IDCertificateState.REVOKED:
            return queryset.filter(Exists(mine.revoked())).exclude(Exists(valid))
        return queryset


class IDWithCertificateAdmin(UserAdmin):
    list_display = (*UserAdmin.list_display, "certificate_expires")
    list_filter = (CertificateStateFilter, *UserAdmin.list_filter)

    def get_queryset(self, request):
        now = timezone.now()
        return super().get_queryset(request).annotate(
            certificate_expires_at=Max(
                "certificates__not_after",
                filter=Q(certificates__revoked_at__isnull=True, certificates__not_after__gt=now),
            )
        )

    @admin.display(description=_("certificate valid until"), ordering="certificate_expires_at")
    def certificate_expires(self, user):
        return user.certificate_expires_at


admin.site.unregister(User)
admin.site.register(User, IDWithCertificateAdmin)


class CertificateOwnStateFilter(admin.SimpleListFilter):
    """A certificate's own state, through the named querysets (in_state: state_at in SQL)."""

    title = _("state")
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [
            *Certificate.State.choices,
            threshold_choice(max(settings.REMINDER_THRESHOLDS_DAYS)),  # the first reminder's window
            ("current", _("current (not revoked, not superseded)")),
        ]

    def queryset(self, request, queryset):
        now = timezone.now()
        value = self.value()
        if value in Certificate.State.values:
            return queryset.in_state(value, now)
        if value == str(first := max(settings.REMINDER_THRESHOLDS_DAYS)):
            return queryset.valid(now).expiring_by_japan_day(japan_today(now) + timedelta(days=first))
        if value == "current":
            return queryset.newest_issued()
        return queryset


@admin.register(Certificate)
class CertificateAdmin(admin.ModelAdmin):
    # No subject column: it repeats the ID and the contract, and would push the list past a 1280 px window.
    list_display = ("serial_number", "owner", "contract", "not_before", "not_after", "state_display", "issued_via")
    list_filter = (CertificateOwnStateFilter, "issued_via", "revocation_reason")
    search_fields = ("serial_number", "owner__login_id", "owner__contract__number", "subject", "fingerprint_sha256")
    list_select_related = ("owner__contract",)
    exclude = ("der",)
    readonly_fields = (
        "owner", "issuer", "serial_number", "subject", "public_key_sha256", "fingerprint_sha256", "not_before",
        "not_after", "issued_via", "first_used_at", "superseded_at", "revoked_at", "revocation_reason",
    )
    actions = ["revoke"]

    class Media:
        css = {"all": ["certportal/admin-lists.css"]}  # long codes wrap: no list wider than a 1280 px window

    @admin.display(description=_("state"))
    def state_display(self, certificate: Certificate) -> str:
        return certificate.state.label

    @admin.display(description=_("contract"), ordering="owner__contract__number")
    def contract(self, certificate: Certificate):
        return certificate.owner.contract or "—"

    def has_add_permission(self, request) -> bool:
        return False  # certificates come from CSRs through the issuance service only

    def has_change_permission(self, request, obj=None) -> bool:
        # The list's revoke action needs it; a certificate's own page is view-only, or its Save would
        # write back every column as read, undoing a revocation committed meanwhile.
        return obj is None and super().has_change_permission(request)

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(description=_("Revoke the selected certificates"), permissions=["change"])
    def revoke(self, request, queryset):
        form = RevocationForm(request.POST if "confirm" in request.POST else None)
        if form.is_valid():
            revoked = 0
            for certificate in queryset:
                try:
                    revoke_certificate(certificate=certificate, reason=form.cleaned_data["reason"], by=request.user)
                    revoked += 1
                except RevocationRefused as refusal:
                    self.message_user(request, str(refusal), messages.WARNING)
            if revoked:
                self.message_user(request, _("%(count)d certificate(s) revoked.") % {"count": revoked},
                                  messages.SUCCESS)
            return None
        return TemplateResponse(request, "admin/certificates/certificate/revoke_confirmation.html", {
            **self.admin_site.each_context(request),
            "title": _("Revoke certificates"),
            "certificates": queryset,
            "form": form,
            "opts": self.model._meta,
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        })


@admin.register(CertificateAuthority)
class CertificateAuthorityAdmin(ReadOnlyAdmin):
    list_display = ("kind", "subject", "created_at", "last_crl_number")
    exclude = ("encrypted_key_pem",)


@admin.register(RevocationList)
class RevocationListAdmin(ReadOnlyAdmin):
    list_display = ("number", "this_update", "next_update")
    exclude = ("der",)
