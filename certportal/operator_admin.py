"""The bank operators' admin site (/operator/): Django's admin under the portal's name, with the
overview of the estate (certportal.dashboard) and the IDs' CSV export."""

from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import path
from django.utils import timezone
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _

from accounts import audit
from accounts.models import AuditEntry


class OperatorAdminSite(admin.AdminSite):
    site_header = _("Certificate portal: bank operators")
    site_title = _("Certificate portal")
    index_title = _("Operations")
    index_template = "admin/operator_index.html"
    # The sidebar would take a quarter of a 1280 px window from every list.
    enable_nav_sidebar = False

    def get_urls(self):
        return [
            path("dashboard/", self.admin_view(self.dashboard_view), name="dashboard"),
            path("dashboard/ids.csv", self.admin_view(self.export_ids_view), name="export_ids"),
            *super().get_urls(),
        ]

    # certportal.dashboard imports the apps' admin modules, which register on this site: imported when used.

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
                remote_addr=getattr(request, "client_address", None) or request.META.get("REMOTE_ADDR"), format="csv",
            )
        rows = dashboard.id_csv_rows(now, get_language())
        response = StreamingHttpResponse(rows, content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="certportal-ids-{now:%Y%m%d-%H%M%S}.csv"'
        response["Cache-Control"] = "no-store"
        return response
