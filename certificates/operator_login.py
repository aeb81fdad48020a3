"""The bank operators' login to their site (/operator/): their own certificate, then their password.

As on the customers' login, the certificate is checked first: without the operator's own
valid certificate (services.OPERATOR_UNIT, from the portal's CA) in this TLS connection the
password is not checked at all, nothing is counted and nothing is learnt. Only then is the
password checked, through accounts.services.verify_password, counting toward that operator's
lock. A customer's ID typed here is refused like an unknown one: its failure count is never
read or written (Django's authenticate(), which tried any ID, is not used). The session is
bound to the certificate as customers' sessions are (client_cert.CertificateSessionMiddleware).
"""

from __future__ import annotations

from datetime import datetime

from django import forms
from django.contrib import auth
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.views import LoginView
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts import audit
from accounts.models import AuditEntry, User
from accounts.services import PasswordCheck, verify_password

from .authentication import CertificateProblem, LoginCheck, certificate_validity_problem
from .client_cert import SESSION_CERTIFICATE_KEY
from .models import Certificate
from .services import supersede_older_certificates

MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"


def _certificate_refusal(problem: CertificateProblem | None) -> str:
    if problem == CertificateProblem.ISSUER_REVOKED:
        return _("The issuing CA that certified your operator certificate has been revoked by the root's operator: "
                 "no certificate of it is accepted any more (deploy/README.md, Revoking the issuing CA).")
    if problem in (CertificateProblem.EXPIRED, CertificateProblem.REVOKED, CertificateProblem.NOT_YET_VALID):
        return _("Your operator certificate is no longer valid. Ask for a new one (manage.py "
                 "issue_operator_certificate), import it, restart the browser and choose it.")
    if problem == CertificateProblem.ANOTHER_ID:
        return _("The operator certificate presented belongs to another login ID. Restart the browser and "
                 "choose your own.")
    return _("The operators' site needs your bank operator's certificate. Restart the browser, open this page "
             "again and choose it when the browser asks.")


def check_operator_login(
    *,
    login_id: str,
    password: str,
    presented_der: bytes | None,
    presented: Certificate | None,
    remote_addr: str | None,
    now: datetime,
) -> LoginCheck:
    """The operator's own valid certificate, then the operator's password; every refusal audited."""
    operator = User.objects.filter(login_id=login_id, contract__isnull=True, is_staff=True).first()
    problem = certificate_validity_problem(presented_der=presented_der, presented=presented, now=now)
    if problem is None and not presented.owner.is_operator:
        problem = CertificateProblem.FOREIGN  # a customer's certificate: not for this site
    if problem is None and (operator is None or presented.owner_id != operator.pk):
        problem = CertificateProblem.ANOTHER_ID  # an operator's certificate, with an ID that is not theirs
    if problem is not None:
        audit.record(
            AuditEntry.Action.LOGIN_FAILED, subject=operator, remote_addr=remote_addr, site="operator",
            reason=problem.value, login_id=None if operator else login_id[:32],
            certificate_serial=presented.serial_number if presented else "",
        )
        return LoginCheck(refusal=_certificate_refusal(problem))
    checked = verify_password(user=operator, password=password, remote_addr=remote_addr)  # audits a failure
    if checked in (PasswordCheck.ID_NOT_ACTIVE, PasswordCheck.LOCKED_NOW):
        return LoginCheck(refusal=_("This operator ID is locked or suspended. Ask another operator to unlock it."))
    if checked != PasswordCheck.ACCEPTED:
        return LoginCheck(refusal=_("The login ID or password is incorrect."))
    return LoginCheck(user=operator, certificate=presented)


class OperatorLoginForm(AuthenticationForm):
    """Django admin's login form (its template and fields), answered by check_operator_login."""

    required_css_class = "required"

    def clean(self) -> dict:
        login_id, password = self.cleaned_data.get("username"), self.cleaned_data.get("password")
        if login_id is None or password is None:
            return self.cleaned_data  # the field's own error says what is missing
        request = self.request
        outcome = check_operator_login(
            login_id=login_id, password=password,
            presented_der=getattr(request, "client_certificate_der", None),
            presented=getattr(request, "client_certificate", None),
            remote_addr=request.client_address,
            now=timezone.now(),
        )
        if outcome.refusal:
            raise forms.ValidationError(outcome.refusal, code="refused")
        self.user_cache, self.certificate = outcome.user, outcome.certificate
        return self.cleaned_data


class OperatorLoginView(LoginView):
    """LoginView whose session is bound to the certificate, audited, and retires older certificates."""

    form_class = OperatorLoginForm

    def get_default_redirect_url(self) -> str:
        return reverse("admin:index")  # not settings.LOGIN_REDIRECT_URL, the customers' notices

    def form_valid(self, form: OperatorLoginForm) -> HttpResponse:
        request: HttpRequest = self.request
        operator, certificate = form.get_user(), form.certificate
        with transaction.atomic():
            auth.login(request, operator, backend=MODEL_BACKEND)
            request.session[SESSION_CERTIFICATE_KEY] = certificate.fingerprint_sha256
            audit.record(AuditEntry.Action.LOGIN_SUCCEEDED, subject=operator, remote_addr=request.client_address,
                         certificate_serial=certificate.serial_number, site="operator")
            # The first login with a renewed operator certificate revokes the older ones.
            supersede_older_certificates(newer=certificate, now=timezone.now())
        return HttpResponseRedirect(self.get_success_url())
