"""The bank operators' admin site (/operator/): Django admin behind the operator's certificate and password,
under the portal's name, with the overview of the estate (notices.dashboard) and the IDs' CSV export.

nginx already refuses /operator/ to a connection without an operator's certificate
(deploy/nginx.conf); here the login is certificates.operator_login's, and every page asks
that the session was opened by it and that this request still presents that certificate.
It lives in `notices`, the one app that sees the whole estate its overview counts (IDs,
certificates and the reminders); certportal/apps.py installs it as Django's admin.site.
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.translation import get_language, gettext_lazy
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache

from accounts import audit
from accounts.models import AuditEntry
from certificates.client_cert import session_bound_to_this_certificate
from certificates.operator_login import OperatorLoginForm, OperatorLoginView


class OperatorAdminSite(admin.AdminSite):
    site_header = gettext_lazy("Certificate portal: bank operators")
    site_title = gettext_lazy("Certificate portal")
    index_title = gettext_lazy("Operations")
    index_template = "admin/operator_index.html"
    # The sidebar would take a quarter of a 1280 px window from every list.
    enable_nav_sidebar = False
    login_form = OperatorLoginForm

    def has_permission(self, request: HttpRequest) -> bool:
        user = request.user
        return (
            user.is_active
            and user.is_authenticated
            and user.is_operator
            and session_bound_to_this_certificate(request)
        )

    @method_decorator(never_cache)
    def login(self, request: HttpRequest, extra_context=None) -> HttpResponse:
        """AdminSite.login with OperatorLoginView, whose session is bound to the certificate."""
        if request.method == "GET" and self.has_permission(request):
            return HttpResponseRedirect(reverse("admin:index", current_app=self.name))
        context = {
            **self.each_context(request),
            "title": _("Log in"),
            "subtitle": None,
            "app_path": request.get_full_path(),
            "username": request.user.get_username(),
        }
        if REDIRECT_FIELD_NAME not in request.GET and REDIRECT_FIELD_NAME not in request.POST:
            context[REDIRECT_FIELD_NAME] = reverse("admin:index", current_app=self.name)
        context.update(extra_context or {})
        request.current_app = self.name
        return OperatorLoginView.as_view(
            extra_context=context, authentication_form=self.login_form, template_name="admin/login.html"
        )(request)

    def get_urls(self):
        return [
            path("dashboard/", self.admin_view(self.dashboard_view), name="dashboard"),
            path("dashboard/ids.csv", self.admin_view(self.export_ids_view), name="export_ids"),
            *super().get_urls(),
        ]

    # notices.dashboard imports the apps' admin modules, which register on this site: imported when used.

    def dashboard_view(self, request: HttpRequest) -> HttpResponse:
        from . import dashboard

        return TemplateResponse(request, "admin/dashboard.html", {
            **self.each_context(request),
            "title": _("Overview"),
            **dashboard.overview(timezone.now()),
        })

    def export_ids_view(self, request: HttpRequest) -> HttpResponse:
        """Every customer ID with its contract, role and certificate, streamed; the export is audited first."""
        if not request.user.has_perm("accounts.view_user"):
            raise PermissionDenied
        from . import dashboard

        now = timezone.now()
        with transaction.atomic():
            audit.record(
                AuditEntry.Action.IDS_EXPORTED, actor=request.user,
                remote_addr=request.client_address, format="csv",
            )
        rows = dashboard.id_csv_rows(now, get_language())
        response = StreamingHttpResponse(rows, content_type="text/csv; charset=utf-8")
        day = timezone.localdate(now).isoformat()  # a file name, not a time shown to anyone
        response["Content-Disposition"] = f'attachment; filename="certportal-ids-{day}.csv"'
        response["Cache-Control"] = "no-store"
        return response
