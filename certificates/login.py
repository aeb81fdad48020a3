"""Certificate-and-password login (the login screen at "/") and logout.

Login needs both halves: the client certificate presented in this TLS connection must be
the ID's own valid certificate from the portal's CA, and the password must be the ID's.

Only someone holding that certificate can affect or learn anything about the ID: with it,
a wrong password is audited and counts toward the ID's lock, and a locked or suspended ID
is told so. Without it (no certificate, one the portal did not issue, an expired or revoked
one, another ID's), the password is not even hashed, nothing counts toward any lock, and
the reply depends only on the certificate presented, never on whether the ID exists or is
locked; such attempts are audited and bounded per client address (accounts.throttle).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from django import forms
from django.contrib import auth, messages
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
from accounts.decorators import form_posts_only
from accounts.models import AuditEntry, User
from accounts.services import PasswordCheck, verify_password
from accounts.throttle import Scope, address_budget, address_key, take_attempt, too_many_from_this_address

from .client_cert import SESSION_CERTIFICATE_KEY
from .models import Certificate, RevocationReason
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
    ISSUER_REVOKED = "certificate_issuer_revoked"
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
            CertificateProblem.ISSUER_REVOKED: _(
                "The bank has revoked the certification authority that issued the electronic certificate presented, "
                "so it can no longer be used. Please wait for the bank's notice."
            ),
            CertificateProblem.NOT_YET_VALID: _("The electronic certificate presented is not valid yet."),
            CertificateProblem.ANOTHER_ID: _(
                "The login ID entered is not the one of the electronic certificate presented. Check the login "
                "ID, or restart your browser and choose the certificate of that login ID."
            ),
        }[self]


def certificate_validity_problem(
    *, presented_der: bytes | None, presented: Certificate | None, now: datetime
) -> CertificateProblem | None:
    """Why the connection's certificate is not a valid certificate of the portal's CA at `now`, if it is not."""
    if presented_der is None:
        return CertificateProblem.MISSING
    if presented is None:
        return CertificateProblem.FOREIGN
    state = presented.state_at(now)
    if state == Certificate.State.REVOKED:
        # Read only on this refusal's path: every certificate of a revoked issuing CA is revoked with it.
        if presented.revocation_reason == RevocationReason.CA_COMPROMISE or presented.issuer.revoked_at is not None:
            return CertificateProblem.ISSUER_REVOKED
        return CertificateProblem.REVOKED
    if state == Certificate.State.EXPIRED:
        return CertificateProblem.EXPIRED
    if state == Certificate.State.NOT_YET_VALID:
        return CertificateProblem.NOT_YET_VALID
    return None


def certificate_problem(
    *, presented_der: bytes | None, presented: Certificate | None, login_id: str, now: datetime
) -> CertificateProblem | None:
    """Why the connection's certificate is not the valid certificate of the customer ID `login_id`, if it is not.

    Decided from the certificate and the typed ID alone: the answer is the same whether or
    not an ID of that name exists, and whatever its state.
    """
    problem = certificate_validity_problem(presented_der=presented_der, presented=presented, now=now)
    if problem is not None:
        return problem
    # Customers' IDs only: the bank's operators sign in to their own site.
    if presented.owner.login_id != login_id or presented.owner.contract_id is None:
        return CertificateProblem.ANOTHER_ID
    return None


@dataclass(frozen=True)
class LoginCheck:
    """The outcome of one login attempt: the ID and its certificate, or why not (already audited)."""

    user: User | None = None
    certificate: Certificate | None = None
    refusal: str = ""
    status: int = 200
    retry_after: int | None = None


def _state_refusal(user: User) -> str:
    if user.state == User.State.SUSPENDED:
        return _("This ID is suspended. Please contact your contract administrator.")
    return _(
        "This ID is locked after too many failed attempts. Ask your contract administrator or the bank to "
        "unlock it."
    )


def _refuse_without_certificate(
    *, login_id: str, problem: CertificateProblem, presented: Certificate | None, remote_addr: str | None,
    now: datetime,
) -> LoginCheck:
    """No valid certificate of this ID: counted against the address, never against the ID; no password hashed."""
    attempt = take_attempt(scope=Scope.LOGIN_ADDRESS, key=address_key(remote_addr), budget=address_budget(), now=now)
    # For the audit log only (operators and the ID's contract administrators read it); the reply ignores it.
    known = User.objects.filter(login_id=login_id, contract__isnull=False).first()
    audit.record(
        AuditEntry.Action.LOGIN_FAILED, subject=known, remote_addr=remote_addr,
        certificate_serial=presented.serial_number if presented else "",
        reason="address_rate_limited" if not attempt.allowed else problem.value,
        certificate=problem.value if not attempt.allowed else None,
        login_id=None if known else login_id[:32],
    )
    if not attempt.allowed:
        return LoginCheck(
            refusal=too_many_from_this_address(),
            status=429, retry_after=attempt.retry_after_seconds(now),
        )
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
    """Both halves or nothing; every refusal audited; only the certificate holder's wrong passwords lock."""
    problem = certificate_problem(presented_der=presented_der, presented=presented, login_id=login_id, now=now)
    if problem is not None:
        return _refuse_without_certificate(
            login_id=login_id, problem=problem, presented=presented, remote_addr=remote_addr, now=now
        )
    user = presented.owner
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
@form_posts_only
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
        response = render(request, "certificates/login.html", {"form": form}, status=outcome.status)
        if outcome.retry_after is not None:
            response["Retry-After"] = str(outcome.retry_after)
        return response
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
