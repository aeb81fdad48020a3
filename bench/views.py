"""Baselines measured in the same run and on the same server as the portal's own views."""

from django.contrib import auth
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.views.decorators.csrf import csrf_exempt

from accounts.models import AuditEntry, User
from certificates.models import Certificate
from certificates.services import issue_certificate


def hello(request: HttpRequest) -> HttpResponse:
    return HttpResponse("hello", content_type="text/plain")


@csrf_exempt
def plain_login(request: HttpRequest) -> HttpResponse:
    """A password-only session, with no certificate binding: the baseline of a logged-in page."""
    user = auth.authenticate(request, login_id=request.POST["login_id"], password=request.POST["password"])
    if user is None:
        return HttpResponseForbidden()
    auth.login(request, user)
    return HttpResponse("ok")


@csrf_exempt
def write_row(request: HttpRequest) -> HttpResponse:
    """A bare POST view that writes one row."""
    AuditEntry.objects.create(action=AuditEntry.Action.LOGOUT, detail={"bench": request.POST.get("n", "")})
    return HttpResponse("ok", status=201)


@csrf_exempt
def issue(request: HttpRequest) -> HttpResponse:
    """Issuance from a CSR through the portal's service, for an ID named in the request."""
    user = User.objects.get(login_id=request.POST["login_id"])
    issuance = issue_certificate(user=user, csr=request.POST["csr"], via=Certificate.Channel.OPERATOR)
    return HttpResponse(issuance.certificate.pem, status=201, content_type="application/x-pem-file")
