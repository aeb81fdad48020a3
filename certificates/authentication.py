"""Who a customer is: the certificate-and-password login, and identifying an ID for 電子証明書取得.

Login needs both halves: the client certificate presented in this TLS connection must be
the ID's own valid certificate from the portal's CA, and the password must be the ID's.

Only someone holding that certificate can affect or learn anything about the ID: with it,
a wrong password is audited and counts toward the ID's lock, and a locked or suspended ID
is told so. Without it (no certificate, one the portal did not issue, an expired or revoked
one, another ID's), the password is not even hashed, nothing counts toward any lock, and
the reply depends only on the certificate presented, never on whether the ID exists or is
locked; such attempts are audited and bounded per client address (accounts.throttle).

Obtaining a certificate has no certificate by nature: the ID is proven by its password,
bounded per address and per typed ID, and every refusal reads the same and costs the same
hash whether the ID exists or not. The views (login.py, enrollment.py) call log_in and
start_obtaining and render what they return.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.contrib import auth
from django.contrib.auth.hashers import make_password
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts import audit
from accounts.models import AuditEntry, User
from accounts.services import PasswordCheck, refusal_for_state, verify_password
from accounts.throttle import (
    Scope,
    address_budget,
    address_key,
    obtain_id_budget,
    take_attempt,
    too_many_from_this_address,
)

from .client_cert import SESSION_CERTIFICATE_KEY
from .models import Certificate, CertificateAction, OneTimeCode, RevocationReason
from .otp import CodeRefused, send_one_time_code
from .services import supersede_older_certificates

# Every refusal of 電子証明書取得's first step reads the same, whether the ID exists, is locked or
# suspended, or the password is wrong: without a certificate, nothing about an ID is told.
OBTAIN_REFUSAL = gettext_lazy("The login ID or the password is not correct, or the ID is locked or suspended.")


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
        return LoginCheck(refusal=refusal_for_state(user.state))
    if password_check != PasswordCheck.ACCEPTED:
        return LoginCheck(refusal=_("The login ID or password is incorrect."))
    return LoginCheck(user=user, certificate=presented)


def log_in(request: HttpRequest, *, login_id: str, password: str, now: datetime | None = None) -> LoginCheck:
    """The certificate-and-password login of this request's connection: check_login, then, on success and in
    one transaction, the session opened and bound to the certificate, the login audited, and the ID's older
    certificates superseded (the first login with a renewed certificate retires them)."""
    now = now or timezone.now()
    outcome = check_login(
        login_id=login_id,
        password=password,
        presented_der=request.client_certificate_der,
        presented=request.client_certificate,
        remote_addr=request.client_address,
        now=now,
    )
    if outcome.refusal:
        return outcome
    with transaction.atomic():
        auth.login(request, outcome.user, backend="django.contrib.auth.backends.ModelBackend")
        request.session[SESSION_CERTIFICATE_KEY] = outcome.certificate.fingerprint_sha256
        audit.record(AuditEntry.Action.LOGIN_SUCCEEDED, subject=outcome.user, remote_addr=request.client_address,
                     certificate_serial=outcome.certificate.serial_number)
        supersede_older_certificates(newer=outcome.certificate, now=now)
    return outcome


# --- identifying an ID for 電子証明書取得 ------------------------------------------------------


@dataclass(frozen=True)
class ObtainStart:
    """The outcome of 電子証明書取得's first step: the ID and the code sent to it, or why not (already audited)."""

    user: User | None = None
    code: OneTimeCode | None = None
    refusal: str = ""
    status: int = 200
    retry_after: int | None = None
    has_certificate_in_use: bool = False  # the ID renews instead; told before any code is sent


def _identify(*, login_id: str, password: str, remote_addr: str | None) -> User | ObtainStart:
    """The ID whose password this is, or the refusal.

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
            return ObtainStart(refusal=too_many_from_this_address(), status=429,
                               retry_after=by_address.retry_after_seconds())
        return ObtainStart(refusal=_(
            "Too many attempts for this login ID. Please wait %(minutes)s minutes and try again."
        ) % {"minutes": settings.OBTAIN_ID_ATTEMPT_WINDOW_MINUTES}, status=429, retry_after=by_id.retry_after_seconds())
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
    return ObtainStart(refusal=str(OBTAIN_REFUSAL))


def start_obtaining(
    *, login_id: str, password: str, remote_addr: str | None, now: datetime | None = None
) -> ObtainStart:
    """電子証明書取得's first step: the ID proven by its password, not already holding a certificate in use,
    and a one-time code sent to its registered address; every refusal audited."""
    identified = _identify(login_id=login_id, password=password, remote_addr=remote_addr)
    if isinstance(identified, ObtainStart):
        return identified
    user = identified
    # Told before a code is sent; issuance refuses it too (certificates.services), under the ID's lock.
    if user.certificates.in_use(now or timezone.now()).exists():
        audit.record(CertificateAction.ISSUANCE_REFUSED, subject=user, remote_addr=remote_addr,
                     reason="has_valid_certificate", via=str(Certificate.Channel.OBTAIN))
        return ObtainStart(user=user, has_certificate_in_use=True)
    try:
        code = send_one_time_code(user=user, purpose=OneTimeCode.Purpose.OBTAIN, remote_addr=remote_addr)
    except CodeRefused as refusal:
        return ObtainStart(user=user, refusal=str(refusal.message),
                           status=503 if refusal.code == "mail_failed" else 429)
    return ObtainStart(user=user, code=code)
