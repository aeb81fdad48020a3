"""The login screen at "/" (certificate and password) and logout; the rules are certificates.authentication's."""

from __future__ import annotations

from django.contrib import auth, messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST

from accounts import audit
from accounts.decorators import form_posts_only
from accounts.models import AuditEntry

from .authentication import log_in
from .forms import LoginForm


@never_cache
@csrf_protect
@sensitive_post_parameters("password")
@require_http_methods(["GET", "HEAD", "POST"])
@form_posts_only
def login(request: HttpRequest) -> HttpResponse:
    if request.method != "POST" and request.user.is_authenticated and not request.user.is_staff:
        return redirect("important-notices")  # still logged in, with this certificate (the middleware checked)
    form = LoginForm(request.POST if request.method == "POST" else None)
    if request.method != "POST" or not form.is_valid():
        return render(request, "certificates/login.html", {"form": form})
    outcome = log_in(request, login_id=form.cleaned_data["login_id"], password=form.cleaned_data["password"])
    if outcome.refusal:
        form.add_error(None, outcome.refusal)
        response = render(request, "certificates/login.html", {"form": form}, status=outcome.status)
        if outcome.retry_after is not None:
            response["Retry-After"] = str(outcome.retry_after)
        return response
    return redirect("important-notices")


@require_POST
@csrf_protect
def logout(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        audit.record(AuditEntry.Action.LOGOUT, subject=request.user, remote_addr=request.client_address,
                     reason="logout")
    auth.logout(request)
    messages.info(request, _("You have logged out. Close the browser to finish."))
    return redirect("login")
