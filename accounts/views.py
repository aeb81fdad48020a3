"""An ID's own password change (required after a temporary password)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import logout, update_session_auth_hash
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters

from . import audit, services
from .decorators import form_posts_only
from .forms import PasswordChangeForm
from .models import AuditEntry, User


def portal_login_url() -> str:
    """Customers get a session only from the certificate-and-password login at the portal's root."""
    try:
        return reverse("login")
    except NoReverseMatch:
        return "/"


def _safe_next(request: HttpRequest) -> str | None:
    target = request.POST.get("next") or request.GET.get("next")
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}, require_https=request.is_secure()):
        return target
    return None


LOCKED = (services.PasswordCheck.LOCKED_NOW, services.PasswordCheck.ID_NOT_ACTIVE)


def _locked_out(request: HttpRequest) -> HttpResponse:
    """The wrong current password that locked the ID ends its session, as the lock ends any login."""
    audit.record(AuditEntry.Action.LOGOUT, subject=request.user, remote_addr=request.client_address,
                 reason="id_locked")
    logout(request)
    messages.error(request, services.refusal_for_state(User.State.LOCKED))
    return redirect(portal_login_url())


@never_cache
@sensitive_post_parameters("current_password", "new_password", "new_password_again")
@form_posts_only
def password_change(request: HttpRequest) -> HttpResponse:
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path(), portal_login_url())
    form = PasswordChangeForm(request.user, request.POST if request.method == "POST" else None,
                              remote_addr=request.client_address)
    if request.method == "POST" and not form.is_valid() and form.password_check in LOCKED:
        return _locked_out(request)
    if request.method == "POST" and form.is_valid():
        try:
            user = services.change_password(user=request.user, new_password=form.cleaned_data["new_password"])
        except ValidationError as refusal:
            form.add_error("new_password", refusal)
        else:
            update_session_auth_hash(request, user)  # stay logged in: the session hash follows the password
            messages.success(request, _("Your password has been changed."))
            return redirect(_safe_next(request) or reverse("password-change"))
    return render(request, "accounts/password_change.html", {
        "form": form,
        "next": _safe_next(request) or "",
        "required": request.user.must_change_password,
    })
