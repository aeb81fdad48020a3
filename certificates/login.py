"""Certificate-and-password login (the login screen at "/") and logout.

Login needs both halves: the client certificate presented in this TLS connection must be
the ID's own valid certificate from the portal's CA, and the password must be the ID's.
Every refusal says which half is wrong, opens no session, is audited and counts toward the
ID's lock. With a certificate problem the password is not checked at all, so a visitor
without the certificate learns nothing about it and a right guess resets nothing.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from django import forms
from django.contrib import auth, messages
from django.contrib.auth.hashers import make_password
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST

from accounts import audit
from accounts.models import AuditEntry, User
from accounts.services import PasswordCheck, record_failed_login, verify_password

from .client_cert import SESSION_CERTIFICATE_KEY
from .models import Certificate
from .services import supersede_older_certificates


class LoginForm(forms.Form):
    login_id = forms.CharField(label=gettext_lazy("Login ID"), max_length=32, strip=True,
                               widget=forms.TextInput(attrs={"autocomplete": "username", "autofocus": True}))
    password = forms.CharField(label=gettext_lazy("Password"), max_length=128, strip=False,
                               widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}))


class CertificateProblem(enum.Enum):
    MISSING = "certificate_missing"
    FOREIGN = "certificate_foreign"
    EXPIRED = "certificate_expired"
    REVOKED = "certificate_revoked"
    NOT_YET_VALID = "certificate_not_yet_valid"
    ANOTHER_ID = "certificate_of_another_id"

    @property
    def message(self) -> str:
        return {
            CertificateProblem.MISSING: _(
                "No electronic certificate was presented. Restart your browser, open this page again and "
                "choose the certificate of your login ID when the browser asks."
            ),
            CertificateProblem.FOREIGN: _(
                "The electronic certificate presented was not issued by this service. Restart your browser "
                "and choose the certificate of your login ID."
            ),
            CertificateProblem.EXPIRED: _(
                "The electronic certificate presented has expired. Obtain a new one with 「電子証明書取得」 below."
            ),
            CertificateProblem.REVOKED: _(
                "The electronic certificate presented is no longer valid. If you have renewed it, restart your "
                "browser and choose the new certificate; otherwise obtain one with 「電子証明書取得」 below."
            ),
            CertificateProblem.NOT_YET_VALID: _("The electronic certificate presented is not valid yet."),
            CertificateProblem.ANOTHER_ID: _(
                "The electronic certificate presented belongs to another login ID. Restart your browser and "
                "choose the certificate of the login ID you entered."
            ),
        }[self]


def certificate_problem(
    *, presented_der: bytes | None, presented: Certificate | None, user: User | None, now: datetime
) -> CertificateProblem | None:
    """What is wrong with the connection's certificate for logging in as `user`, if anything."""
    if presented_der is None:
        return CertificateProblem.MISSING
    if presented is None:
        return CertificateProblem.FOREIGN
    state = presented.state_at(now)
    if state == Certificate.State.REVOKED:
        return CertificateProblem.REVOKED
    if state == Certificate.State.EXPIRED:
        return CertificateProblem.EXPIRED
    if state == Certificate.State.NOT_YET_VALID:
        return CertificateProblem.NOT_YET_VALID
    if user is not None and presented.owner_id != user.pk:
        return CertificateProblem.ANOTHER_ID
    return None


@dataclass(frozen=True)
class LoginCheck:
    """The outcome of one login attempt: the ID and its certificate, or why not (already audited)."""

    user: User | None = None
    certificate: Certificate | None = None
    refusal: str = ""


def _state_refusal(user: User) -> str:
    if user.state == User.State.SUSPENDED:
        return _("This ID is suspended. Please contact your contract administrator.")
    return _(
        "This ID is locked after too many failed attempts. Ask your contract administrator or the bank to "
        "unlock it."
    )


def _count_certificate_failure(
    *, user: User, problem: CertificateProblem, presented: Certificate | None, remote_addr: str | None
) -> LoginCheck:
    """A login refused for its certificate counts toward the lock like a wrong password."""
    check = record_failed_login(
        user=user, reason=problem.value, remote_addr=remote_addr,
        certificate_serial=presented.serial_number if presented else "",
    )
    if check in (PasswordCheck.ID_NOT_ACTIVE, PasswordCheck.LOCKED_NOW):
        user.refresh_from_db(fields=["state"])
        return LoginCheck(refusal=_state_refusal(user))
    return LoginCheck(refusal=problem.message)


def check_login(
    *,
    login_id: str,
    password: str,
    presented_der: bytes | None,
    presented: Certificate | None,
    remote_addr: str | None,
    now: datetime,
) -> LoginCheck:
    """Both halves or nothing; every refusal audited and, for a known ID, counted toward the lock."""
    # Customers' IDs only: the bank's operators sign in to their own site.
    user = User.objects.filter(login_id=login_id, contract__isnull=False).first()
    if user is None:
        problem = certificate_problem(presented_der=presented_der, presented=presented, user=None, now=now)
        if problem is None:
            make_password(password)  # as slow as a real check: timing must not tell which IDs exist
        audit.record(AuditEntry.Action.LOGIN_FAILED, remote_addr=remote_addr, reason="unknown_id",
                     login_id=login_id[:32], certificate=problem.value if problem else None)
        return LoginCheck(refusal=problem.message if problem else _("The login ID or password is incorrect."))

    problem = certificate_problem(presented_der=presented_der, presented=presented, user=user, now=now)
    if problem is not None:
        # The password is not even checked: without the certificate nothing is learnt about it,
        # and a right guess cannot reset the count of failures.
        return _count_certificate_failure(user=user, problem=problem, presented=presented, remote_addr=remote_addr)
    password_check = verify_password(user=user, password=password, remote_addr=remote_addr)  # audits a failure
    if password_check in (PasswordCheck.ID_NOT_ACTIVE, PasswordCheck.LOCKED_NOW):
        user.refresh_from_db(fields=["state"])
        return LoginCheck(refusal=_state_refusal(user))
    if password_check != PasswordCheck.ACCEPTED:
        return LoginCheck(refusal=_("The login ID or password is incorrect."))
    return LoginCheck(user=user, certificate=presented)


@never_cache
@csrf_protect
@sensitive_post_parameters("password")
@require_http_methods(["GET", "HEAD", "POST"])
def login(request: HttpRequest) -> HttpResponse:
    if request.method != "POST" and request.user.is_authenticated and not request.user.is_staff:
        return redirect("important-notices")  # still logged in, with this certificate (the middleware checked)
    form = LoginForm(request.POST if request.method == "POST" else None)
    if request.method != "POST" or not form.is_valid():
        return render(request, "certificates/login.html", {"form": form})
    now = timezone.now()
    outcome = check_login(
        login_id=form.cleaned_data["login_id"],
        password=form.cleaned_data["password"],
        presented_der=request.client_certificate_der,
        presented=request.client_certificate,
        remote_addr=request.client_address,
        now=now,
    )
    if outcome.refusal:
        form.add_error(None, outcome.refusal)
        return render(request, "certificates/login.html", {"form": form})
    with transaction.atomic():
        auth.login(request, outcome.user, backend="django.contrib.auth.backends.ModelBackend")
        request.session[SESSION_CERTIFICATE_KEY] = outcome.certificate.fingerprint_sha256
        audit.record(AuditEntry.Action.LOGIN_SUCCEEDED, subject=outcome.user, remote_addr=request.client_address,
                     certificate_serial=outcome.certificate.serial_number)
        # The first login with a renewed certificate retires the ID's older ones.
        supersede_older_certificates(newer=outcome.certificate, now=now)
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
