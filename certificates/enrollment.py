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
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.decorators import form_posts_only
from accounts.models import User

from . import ca
from .authentication import start_obtaining
from .csr import CertificateRefused
from .forms import ObtainIdentifyForm, OneTimeCodeForm
from .json_body import UnreadableBody, read_json_object
from .models import Certificate
from .otp import CodeRefused, verify_one_time_code
from .services import issue_certificate, renew_instead

# The session key of an obtain in progress: {"user": pk, "code": pk, "verified_at": epoch seconds}.
OBTAIN_SESSION_KEY = "certportal_obtain"
# After the code is accepted, the page has this long to send its CSR.
OBTAIN_VERIFIED_FOR = timedelta(minutes=30)
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
    started = start_obtaining(login_id=form.cleaned_data["login_id"], password=form.cleaned_data["password"],
                              remote_addr=request.client_address)
    if started.has_certificate_in_use:
        return render(request, "certificates/enroll/obtain_renew_instead.html",
                      {"refusal": renew_instead(started.user.login_id)})
    if started.refusal:
        form.add_error(None, started.refusal)
        response = render(request, template, {"form": form}, status=started.status)
        if started.retry_after is not None:
            response["Retry-After"] = str(started.retry_after)
        return response
    request.session.cycle_key()
    request.session[OBTAIN_SESSION_KEY] = {"user": started.user.pk, "code": started.code.pk, "verified_at": None}
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
