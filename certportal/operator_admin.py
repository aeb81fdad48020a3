"""The bank operators' admin site (/operator/): Django admin behind the operator's certificate and password.

nginx already refuses /operator/ to a connection without an operator's certificate
(deploy/nginx.conf); here the login is certificates.operator_login's, and every page asks
that the session was opened by it and that this request still presents that certificate.
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache

from certificates.client_cert import session_bound_to_this_certificate
from certificates.operator_login import OperatorLoginForm, OperatorLoginView


class OperatorAdminSite(admin.AdminSite):
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
