"""Obtaining (電子証明書取得) and renewing (更新) a certificate in the browser.

The page generates the key pair with WebCrypto, builds the CSR and, once the certificate
is back, the password-protected PKCS#12 file (static/certportal/enroll.js, from frontend/).
These views only ever receive the CSR: the private key never reaches the server.

Renewal acts on request.user alone; obtaining acts on the ID proven in this session by
its password and a one-time code e-mailed to its registered address. A certificate in a
URL is looked up among that ID's own certificates, 404 otherwise.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.hashers import make_password
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts import audit
from accounts.decorators import form_posts_only
from accounts.models import AuditEntry, User
from accounts.throttle import (
    Attempt,
    Scope,
    address_budget,
    address_key,
    obtain_id_budget,
    take_attempt,
    too_many_from_this_address,
)

from . import ca
from .csr import CertificateRefused
from .forms import ObtainIdentifyForm, OneTimeCodeForm
from .json_body import UnreadableBody, read_json_object
from .models import Certificate, CertificateAction, OneTimeCode
from .otp import CodeRefused, send_one_time_code, verify_one_time_code
from .services import issue_certificate, renew_instead

# The session key of an obtain in progress: {"user": pk, "code": pk, "verified_at": epoch seconds}.
OBTAIN_SESSION_KEY = "certportal_obtain"
# After the code is accepted, the page has this long to send its CSR.
OBTAIN_VERIFIED_FOR = timedelta(minutes=30)
# Every refusal of 電子証明書取得's first step reads the same, whether the ID exists, is locked or
# suspended, or the password is wrong: without a certificate, nothing about an ID is told.
OBTAIN_REFUSAL = gettext_lazy("The login ID or the password is not correct, or the ID is locked or suspended.")
# The page 電子証明書更新前処理中 moves on by itself after this many seconds.
PREPARE_SECONDS = 2


def _customer(request: HttpRequest) -> User:
    """The logged-in customer's ID; bank operators have no certificates to renew here."""
    if request.user.contract_id is None:
        raise Http404
    return request.user


def _older_certificates(certificate: Certificate) -> list[Certificate]:
    """The ID's earlier certificates, newest first, which the customer may delete from the browser."""
    return list(
        certificate.owner.certificates.filter(not_before__lt=certificate.not_before).exclude(pk=certificate.pk)[:5]
    )


def _issue(request: HttpRequest, *, user: User, via: Certificate.Channel, done_url_name: str) -> JsonResponse:
    """Issue from the page's CSR; the page needs the certificate, the file name and where to go next."""
    try:
        csr = read_json_object(request).get("csr")
    except UnreadableBody as unreadable:
        return JsonResponse({"error": str(unreadable.message)}, status=unreadable.status)
    if not isinstance(csr, str):
        return JsonResponse({"error": _("The request from the page could not be read. Reload it and try again.")},
                            status=400)
    try:
        issuance = issue_certificate(user=user, csr=csr, via=via, remote_addr=request.client_address)
    except CertificateRefused as refusal:
        status = 409 if refusal.code in ("issuance_in_progress", "has_valid_certificate") else 400
        return JsonResponse({"error": str(refusal.message), "code": refusal.code}, status=status)
    certificate = issuance.certificate
    name = f"certportal-{user.login_id}-{certificate.serial_number}"
    return JsonResponse({
        "certificate": certificate.pem,
        # The issuing CA and the root go into the file too: Windows and macOS show a complete
        # chain, and an importer never has to fetch them.
        "chain": ca.chain_pem(),
        "serial": certificate.serial_number,
        "filename": f"{name}.p12",
        "compatibility_filename": f"{name}-compat.p12",
        "friendly_name": f"{user.login_id} ({certificate.serial_number})",
        "next": reverse(done_url_name, args=[certificate.serial_number]),
        "created": issuance.created,
    }, status=201 if issuance.created else 200)


def _start_context(user: User, *, now: datetime) -> dict:
    """The certificate being renewed, and one issued moments ago that still holds the ID's slot."""
    hold = timedelta(minutes=settings.PENDING_CERTIFICATE_HOLD_MINUTES)
    pending = user.certificates.awaiting_first_use().filter(not_before__gt=now - hold, not_after__gt=now).first()
    current = user.certificates.in_use(now).first()
    return {
        "login_id": user.login_id,
        "current": current,
        "pending": pending,
        "pending_until": pending.not_before + hold if pending else None,
    }


# --- renewal (電子証明書の更新) --------------------------------------------------------------


@never_cache
@login_required
@require_GET
def renewal_prepare(request: HttpRequest) -> HttpResponse:
    """電子証明書更新前処理中: shown briefly, then the browser moves on to 電子証明書更新開始."""
    _customer(request)
    return render(request, "certificates/enroll/renewal_prepare.html", {
        "next_url": reverse("renewal-start"), "seconds": PREPARE_SECONDS,
    })


@never_cache
@login_required
@require_GET
def renewal_start(request: HttpRequest) -> HttpResponse:
    """電子証明書更新開始 with the button 更新; the page's script does the rest."""
    user = _customer(request)
    context = _start_context(user, now=timezone.now())
    context.update(mode="renewal", issue_url=reverse("renewal-issue"))
    return render(request, "certificates/enroll/start.html", context)


@login_required
@require_POST
def renewal_issue(request: HttpRequest) -> JsonResponse:
    user = _customer(request)
    return _issue(request, user=user, via=Certificate.Channel.RENEWAL, done_url_name="renewal-done")


@never_cache
@login_required
@require_GET
def renewal_done(request: HttpRequest, serial: str) -> HttpResponse:
    """電子証明書発行 発行完了: the new certificate, how to import it, and what may be deleted."""
    user = _customer(request)
    certificate = get_object_or_404(user.certificates, serial_number=serial)
    return render(request, "certificates/enroll/done.html", {
        "mode": "renewal", "certificate": certificate, "older": _older_certificates(certificate),
    })


# --- obtaining (電子証明書取得) from the login screen ---------------------------------------


def _too_many_attempts(request: HttpRequest, form, attempt: Attempt, message: str) -> HttpResponse:
    form.add_error(None, message)
    response = render(request, "certificates/enroll/obtain_identify.html", {"form": form}, status=429)
    response["Retry-After"] = str(attempt.retry_after_seconds())
    return response


def _obtain_state(request: HttpRequest) -> dict | None:
    return request.session.get(OBTAIN_SESSION_KEY)


def _obtain_user(request: HttpRequest, *, verified: bool) -> User | None:
    """The ID proven in this session (by its password, and by the code too when `verified`)."""
    state = _obtain_state(request)
    if not state:
        return None
    if verified:
        verified_at = state.get("verified_at")
        if verified_at is None or time.time() - verified_at > OBTAIN_VERIFIED_FOR.total_seconds():
            return None
    # An ID locked or suspended since it was proven gets no further.
    return User.objects.filter(pk=state["user"], contract__isnull=False, state=User.State.ACTIVE).first()


def _identify(request: HttpRequest, form, *, login_id: str, password: str, remote_addr: str | None):
    """The ID whose password this is, or the page saying no (429 once a budget is spent).

    Obtaining has no certificate by nature, so a wrong password here never counts toward the
    ID's login lock (anyone could lock it): each costs one attempt of the client address's
    budget and of the typed login ID's own budget, whether that ID exists or not. Every
    refusal reads the same and costs one password hash, for known, unknown and locked IDs.
    """
    by_address = take_attempt(scope=Scope.OBTAIN_ADDRESS, key=address_key(remote_addr), budget=address_budget())
    by_id = take_attempt(scope=Scope.OBTAIN_ID, key=login_id, budget=obtain_id_budget()) if by_address.allowed else None
    user = User.objects.filter(login_id=login_id, contract__isnull=False).first()
    if by_id is None or not by_id.allowed:
        audit.record(AuditEntry.Action.LOGIN_FAILED, subject=user, remote_addr=remote_addr, via="obtain",
                     reason="address_rate_limited" if not by_address.allowed else "id_rate_limited",
                     login_id=None if user else login_id[:32])
        if not by_address.allowed:
            return _too_many_attempts(request, form, by_address, too_many_from_this_address())
        return _too_many_attempts(request, form, by_id, _(
            "Too many attempts for this login ID. Please wait %(minutes)s minutes and try again."
        ) % {"minutes": settings.OBTAIN_ID_ATTEMPT_WINDOW_MINUTES})
    if user is None or not user.has_usable_password():
        make_password(password)  # the hash a known ID's check costs: the work done must not tell which IDs exist
        reason = "unknown_id" if user is None else "wrong_password"
    elif not user.check_password(password):
        reason = "wrong_password"
    elif user.state != User.State.ACTIVE:
        reason = user.state
    else:
        # A right password uses up nothing: the budgets count failures.
        by_address.give_back()
        by_id.give_back()
        return user
    audit.record(AuditEntry.Action.LOGIN_FAILED, subject=user, remote_addr=remote_addr, reason=reason,
                 via="obtain", login_id=None if user else login_id[:32])
    form.add_error(None, OBTAIN_REFUSAL)
    return render(request, "certificates/enroll/obtain_identify.html", {"form": form})


@never_cache
@sensitive_post_parameters("password")
@require_http_methods(["GET", "POST"])
@form_posts_only
def obtain_start(request: HttpRequest) -> HttpResponse:
    """電子証明書取得: the login ID and password, then a code to the registered address."""
    template = "certificates/enroll/obtain_identify.html"
    form = ObtainIdentifyForm(request.POST if request.method == "POST" else None)
    if request.method == "GET" or not form.is_valid():
        return render(request, template, {"form": form})
    remote_addr = request.client_address
    login_id, password = form.cleaned_data["login_id"], form.cleaned_data["password"]
    user = _identify(request, form, login_id=login_id, password=password, remote_addr=remote_addr)
    if isinstance(user, HttpResponse):
        return user
    # Told before a code is sent; issuance refuses it too (certificates.services), under the ID's lock.
    if user.certificates.in_use(timezone.now()).exists():
        audit.record(CertificateAction.ISSUANCE_REFUSED, subject=user, remote_addr=remote_addr,
                     reason="has_valid_certificate", via=str(Certificate.Channel.OBTAIN))
        return render(request, "certificates/enroll/obtain_renew_instead.html",
                      {"refusal": renew_instead(user.login_id)})
    try:
        code = send_one_time_code(user=user, purpose=OneTimeCode.Purpose.OBTAIN, remote_addr=remote_addr)
    except CodeRefused as refusal:
        form.add_error(None, str(refusal.message))
        return render(request, template, {"form": form}, status=503 if refusal.code == "mail_failed" else 429)
    request.session.cycle_key()
    request.session[OBTAIN_SESSION_KEY] = {"user": user.pk, "code": code.pk, "verified_at": None}
    return redirect("obtain-code")


@never_cache
@sensitive_post_parameters("code")
@require_http_methods(["GET", "POST"])
@form_posts_only
def obtain_code(request: HttpRequest) -> HttpResponse:
    """The six-digit code from the e-mail."""
    template = "certificates/enroll/obtain_code.html"
    state = _obtain_state(request)
    user = _obtain_user(request, verified=False)
    if user is None or not state.get("code"):
        return redirect("obtain-start")
    form = OneTimeCodeForm(request.POST if request.method == "POST" else None)
    context = {"form": form, "email": _masked(user.email)}
    if request.method == "GET" or not form.is_valid():
        return render(request, template, context)
    try:
        verify_one_time_code(code_id=state["code"], user=user, entered=form.cleaned_data["code"],
                             remote_addr=request.client_address)
    except CodeRefused as refusal:
        form.add_error("code", str(refusal.message))
        return render(request, template, context)
    request.session.cycle_key()
    request.session[OBTAIN_SESSION_KEY] = {"user": user.pk, "code": None, "verified_at": time.time()}
    return redirect("obtain-enroll")


def _masked(email: str) -> str:
    """a****@example.com: enough for the customer to recognise, not enough to harvest."""
    local, _at, domain = email.partition("@")
    return f"{local[:1]}***@{domain}"


@never_cache
@require_GET
def obtain_enroll(request: HttpRequest) -> HttpResponse:
    user = _obtain_user(request, verified=True)
    if user is None:
        messages.warning(request, _("Please confirm your ID again to obtain a certificate."))
        return redirect("obtain-start")
    context = _start_context(user, now=timezone.now())
    context.update(mode="obtain", issue_url=reverse("obtain-issue"))
    return render(request, "certificates/enroll/start.html", context)


@require_POST
def obtain_issue(request: HttpRequest) -> JsonResponse:
    user = _obtain_user(request, verified=True)
    if user is None:
        return JsonResponse({"error": _("Please confirm your ID again to obtain a certificate.")}, status=403)
    return _issue(request, user=user, via=Certificate.Channel.OBTAIN, done_url_name="obtain-done")


@never_cache
@require_GET
def obtain_done(request: HttpRequest, serial: str) -> HttpResponse:
    user = _obtain_user(request, verified=False)
    if user is None:
        raise Http404
    certificate = get_object_or_404(user.certificates, serial_number=serial)
    return render(request, "certificates/enroll/done.html", {
        "mode": "obtain", "certificate": certificate, "older": _older_certificates(certificate),
    })
